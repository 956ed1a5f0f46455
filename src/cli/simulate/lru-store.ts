// A small LRU with per-entry TTL, the "lru" L1 of the simulator: the baseline W-TinyLFU is compared against.
import type { Clock } from '../../core/clock.js'

export class LruStore<V> {
  readonly maxEntries: number
  readonly #clock: Clock
  /** Insertion order is recency order: the first key is the least recently used. */
  readonly #map = new Map<string, { value: V; expiresAt: number }>()

  constructor(maxEntries: number, clock: Clock) {
    this.maxEntries = maxEntries
    this.#clock = clock
  }

  get size(): number {
    return this.#map.size
  }

  /** The value, made most recently used; undefined when absent or expired (an expired entry is dropped). */
  get(key: string): V | undefined {
    const entry = this.#map.get(key)
    if (entry === undefined) return undefined
    this.#map.delete(key)
    if (entry.expiresAt <= this.#clock.now()) return undefined
    this.#map.set(key, entry)
    return entry.value
  }

  /** Stores `value` for `ttl` ms as the most recently used entry, evicting the least recently used past the bound. */
  set(key: string, value: V, options: { ttl: number }): this {
    this.#map.delete(key)
    if (!(options.ttl > 0)) return this
    this.#map.set(key, { value, expiresAt: this.#clock.now() + options.ttl })
    while (this.#map.size > this.maxEntries) {
      const oldest = this.#map.keys().next().value as string
      this.#map.delete(oldest)
    }
    return this
  }
}
