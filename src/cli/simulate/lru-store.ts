// A small LRU with per-entry TTL, the "lru" L1 of the simulator: the baseline W-TinyLFU is compared against.
import type { Clock } from '../../core/clock.js'

interface Node<V> {
  readonly key: string
  value: V
  expiresAt: number
  /** Toward the most recently used end. */
  newer: Node<V> | undefined
  /** Toward the least recently used end. */
  older: Node<V> | undefined
}

/**
 * An LRU by entry count with a TTL per entry: a Map to nodes of a doubly linked recency list, O(1) per operation.
 * (Re-inserting into a Map to move a key to its end is shorter, but the holes deletions leave make finding the
 * oldest key a scan: ten times slower on a million-read log.)
 */
export class LruStore<V> {
  readonly maxEntries: number
  readonly #clock: Clock
  readonly #map = new Map<string, Node<V>>()
  #newest: Node<V> | undefined
  #oldest: Node<V> | undefined

  constructor(maxEntries: number, clock: Clock) {
    this.maxEntries = maxEntries
    this.#clock = clock
  }

  get size(): number {
    return this.#map.size
  }

  /** The value, made most recently used; undefined when absent or expired (an expired entry is dropped). */
  get(key: string): V | undefined {
    const node = this.#map.get(key)
    if (node === undefined) return undefined
    if (node.expiresAt <= this.#clock.now()) {
      this.#remove(node)
      return undefined
    }
    this.#unlink(node)
    this.#pushNewest(node)
    return node.value
  }

  /** Stores `value` for `ttl` ms as the most recently used entry, evicting the least recently used past the bound. */
  set(key: string, value: V, options: { ttl: number }): this {
    const existing = this.#map.get(key)
    if (existing !== undefined) this.#remove(existing)
    if (!(options.ttl > 0)) return this
    const node: Node<V> = {
      key,
      value,
      expiresAt: this.#clock.now() + options.ttl,
      newer: undefined,
      older: undefined,
    }
    this.#map.set(key, node)
    this.#pushNewest(node)
    while (this.#map.size > this.maxEntries && this.#oldest !== undefined) this.#remove(this.#oldest)
    return this
  }

  #remove(node: Node<V>): void {
    this.#map.delete(node.key)
    this.#unlink(node)
  }

  #unlink(node: Node<V>): void {
    if (node.newer === undefined) this.#newest = node.older
    else node.newer.older = node.older
    if (node.older === undefined) this.#oldest = node.newer
    else node.older.newer = node.newer
    node.newer = undefined
    node.older = undefined
  }

  #pushNewest(node: Node<V>): void {
    node.older = this.#newest
    if (this.#newest === undefined) this.#oldest = node
    else this.#newest.newer = node
    this.#newest = node
  }
}
