// L1: a bounded in-process store of decoded values (W-TinyLFU eviction), with per-entry TTL and an optional byte budget.
import { systemClock, type Clock } from '../core/clock.js'
import { rejectUnknown, type OptionKeys, type OptionPlace } from '../core/known-options.js'
import { EntryTooLargeError, InvalidArgumentError, InvalidOptionError } from '../errors.js'
import { WTinyLfu, type L1Node, type L1Owner } from './w-tiny-lfu.js'

export interface MemoryStoreOptions<V = unknown> {
  /**
   * Most entries held; past it, the eviction policy (W-TinyLFU) picks what goes. Required: an unbounded L1 is refused.
   * @example 10_000
   */
  maxEntries: number
  /**
   * Optional byte budget over the entries' estimated sizes; the eviction policy picks what goes past it.
   * Sizes come from `sizeOf`, from `set(..., { size })`, or from a structural estimate.
   */
  maxBytes?: number
  /**
   * Size of a value in bytes, for `maxBytes`: a finite number of 0 or more (a fraction rounds up). Anything else
   * (NaN, negative, undefined) makes `set` throw `InvalidArgumentError`. @default a structural estimate (strings
   * 2 bytes a character)
   */
  sizeOf?: (value: V, key: string) => number
  /** Time source for TTLs, in milliseconds. @default Date.now */
  clock?: Clock
}

/** Every key of `MemoryStoreOptions`, checked against the type by the compiler. */
const MEMORY_STORE_OPTION_KEYS = {
  maxEntries: true,
  maxBytes: true,
  sizeOf: true,
  clock: true,
} as const satisfies OptionKeys<MemoryStoreOptions>
const MEMORY_STORE_PLACE: OptionPlace = { where: 'new MemoryStore()', at: (path) => `MemoryStore.${path}` }

export interface MemorySetOptions {
  /** Time to live in milliseconds; the entry is gone once it has passed. @default no expiry */
  ttl?: number
  /** Size in bytes for the byte budget, a finite number of 0 or more (a fraction rounds up); overrides `sizeOf`. */
  size?: number
}

/**
 * A bounded in-process store: adaptive W-TinyLFU eviction (a small LRU window for new entries, a frequency-filtered
 * segmented LRU for the rest; see docs/architecture.md) by entry count and optional byte budget, and a TTL per
 * entry. A value just set is always readable at once. A hit is a `Map` lookup, a clock read, a frequency-sketch
 * increment and a relink: no allocation.
 *
 * @example
 * const store = new MemoryStore<string>({ maxEntries: 1000 })
 * store.set('a', 'alpha', { ttl: 60_000 })
 * store.get('a') // 'alpha'
 */
export class MemoryStore<V = unknown> implements L1Owner<V> {
  readonly maxEntries: number
  readonly maxBytes: number
  readonly #sizeOf: ((value: V, key: string) => number) | undefined
  readonly #clock: Clock
  readonly #map = new Map<string, L1Node<V>>()
  readonly #policy: WTinyLfu<V>

  constructor(options: MemoryStoreOptions<V>) {
    if (options === null || typeof options !== 'object' || Array.isArray(options)) {
      throw new InvalidOptionError('MemoryStore options', options, 'an object such as { maxEntries: 10_000 }')
    }
    // Before any value: `maxByte` ignored would leave the store without a byte budget, without a word.
    rejectUnknown(options, MEMORY_STORE_OPTION_KEYS, MEMORY_STORE_PLACE)
    const { maxEntries, maxBytes, sizeOf, clock } = options
    validateBounds(maxEntries, maxBytes, 'MemoryStore.')
    if (sizeOf !== undefined && typeof sizeOf !== 'function') {
      throw new InvalidOptionError('MemoryStore.sizeOf', sizeOf, 'a function (value, key) => bytes')
    }
    if (clock !== undefined && typeof clock?.now !== 'function') {
      throw new InvalidOptionError(
        'MemoryStore.clock',
        clock,
        'an object with a now() method returning epoch milliseconds',
      )
    }
    this.maxEntries = maxEntries
    this.maxBytes = maxBytes ?? Infinity
    this.#sizeOf = sizeOf
    this.#clock = clock ?? systemClock
    this.#policy = new WTinyLfu<V>(this.maxEntries, this.maxBytes)
  }

  /** Number of entries held, including expired ones not yet noticed. */
  get size(): number {
    return this.#policy.size
  }

  /** Sum of the held entries' sizes in bytes (0 unless sizes are tracked: `maxBytes`, `sizeOf` or `size`). */
  get bytes(): number {
    return this.#policy.bytes
  }

  /** Entries evicted for room (including new entries refused by admission; not expiry or delete) since the store was made. */
  get evictions(): number {
    return this.#policy.evictions
  }

  /** The value for `key`, counting a use of it; undefined when absent or expired. */
  get(key: string): V | undefined {
    const node = this.#map.get(key)
    if (node === undefined) return undefined
    if (node.expiresAt !== Infinity && node.expiresAt <= this.#clock.now()) {
      this.#remove(node)
      return undefined
    }
    this.#policy.touch(node)
    return node.value
  }

  /** The value for `key` without counting a use; undefined when absent or expired. */
  peek(key: string): V | undefined {
    const node = this.#map.get(key)
    if (node === undefined || (node.expiresAt !== Infinity && node.expiresAt <= this.#clock.now()))
      return undefined
    return node.value
  }

  /** Whether an unexpired entry exists for `key`, without counting a use. */
  has(key: string): boolean {
    const node = this.#map.get(key)
    return node !== undefined && (node.expiresAt === Infinity || node.expiresAt > this.#clock.now())
  }

  /** Remaining time to live of `key` in ms: Infinity for no TTL, undefined when absent or expired. */
  ttl(key: string): number | undefined {
    const node = this.#map.get(key)
    if (node === undefined) return undefined
    const remaining = node.expiresAt - this.#clock.now()
    return remaining > 0 ? remaining : undefined
  }

  /**
   * Stores `value` under `key` (readable at once), evicting past the bounds as the policy decides.
   * A `ttl` of 0 or less stores nothing and removes any previous entry.
   * @throws EntryTooLargeError when the entry alone exceeds `maxBytes`.
   * @throws InvalidArgumentError when the size (`options.size` or what `sizeOf` returned) is not a finite number of
   *   0 or more. In both cases nothing is stored and any previous entry for `key` is removed.
   */
  set(key: string, value: V, options?: MemorySetOptions): this {
    const ttl = options?.ttl
    if (ttl !== undefined && !(ttl > 0)) {
      this.delete(key)
      return this
    }
    const expiresAt = ttl === undefined ? Infinity : this.#clock.now() + ttl
    const size = this.#measure(key, value, options?.size)
    if (size > this.maxBytes) {
      this.delete(key)
      throw new EntryTooLargeError(key, size, this.maxBytes)
    }
    const existing = this.#map.get(key)
    if (existing !== undefined) {
      existing.value = value
      existing.expiresAt = expiresAt
      this.#policy.resize(existing, size)
    } else {
      const node: L1Node<V> = {
        key,
        value,
        expiresAt,
        size,
        owner: this,
        hash: 0,
        region: 0,
        newer: undefined,
        older: undefined,
      }
      this.#map.set(key, node)
      this.#policy.add(node)
    }
    return this
  }

  /** Removes `key`; true when an entry was there. */
  delete(key: string): boolean {
    const node = this.#map.get(key)
    if (node === undefined) return false
    this.#remove(node)
    return true
  }

  /** Removes every entry whose key starts with `prefix`; returns how many. */
  deletePrefix(prefix: string): number {
    let removed = 0
    for (const [key, node] of this.#map) {
      if (key.startsWith(prefix)) {
        this.#remove(node)
        removed++
      }
    }
    return removed
  }

  /** Removes every entry. */
  clear(): void {
    for (const node of this.#map.values()) this.#policy.remove(node)
    this.#map.clear()
  }

  /** Keys in retention order (the newest window entries first, the next to be evicted last), expired ones included until noticed. */
  *keys(): IterableIterator<string> {
    for (const node of this.#policy.nodes()) yield node.key
  }

  /** @internal Called by the policy when it evicts one of this store's nodes. */
  unindex(node: L1Node<V>): void {
    if (this.#map.get(node.key) === node) this.#map.delete(node.key)
  }

  #remove(node: L1Node<V>): void {
    this.#map.delete(node.key)
    this.#policy.remove(node)
  }

  #measure(key: string, value: V, given: number | undefined): number {
    if (given !== undefined) return this.#checked(key, given, 'options.size')
    if (this.#sizeOf !== undefined) return this.#checked(key, this.#sizeOf(value, key), 'sizeOf(value, key)')
    if (this.maxBytes === Infinity) return 0
    return estimateSize(value) + key.length * 2
  }

  /**
   * A size the byte count can trust, rounded up to whole bytes. One NaN would make the total NaN, and `NaN >
   * maxBytes` is false: the budget would be off for good. So a bad size is refused, and the key dropped.
   */
  #checked(key: string, size: unknown, argument: string): number {
    if (typeof size === 'number' && Number.isFinite(size) && size >= 0) return Math.ceil(size)
    this.delete(key)
    throw new InvalidArgumentError(argument, size, `a finite number of bytes, 0 or more, for "${key}"`)
  }
}

/** Checks L1 bounds: a positive whole `maxEntries` (required) and an optional positive whole `maxBytes`. */
export function validateBounds(maxEntries: unknown, maxBytes: unknown, path: string): void {
  if (!Number.isSafeInteger(maxEntries) || (maxEntries as number) < 1) {
    throw new InvalidOptionError(
      `${path}maxEntries`,
      maxEntries,
      'a positive whole number of entries (an unbounded L1 grows until the process runs out of memory)',
    )
  }
  if (maxBytes !== undefined && (!Number.isSafeInteger(maxBytes) || (maxBytes as number) < 1)) {
    throw new InvalidOptionError(
      `${path}maxBytes`,
      maxBytes,
      'a positive whole number of bytes, or leave it out',
    )
  }
}

/**
 * A rough size in bytes of a JavaScript value: strings at 2 bytes a character, numbers at 8, objects as the sum of
 * their keys and values plus a small overhead. Bounded in depth and in work so a huge or cyclic value stays cheap.
 */
export function estimateSize(value: unknown): number {
  let budget = 10_000
  const seen = new Set<object>()
  const walk = (v: unknown, depth: number): number => {
    if (--budget < 0) return 0
    switch (typeof v) {
      case 'string':
        return 16 + v.length * 2
      case 'number':
      case 'boolean':
      case 'undefined':
        return 8
      case 'bigint':
        return 16
      case 'object': {
        if (v === null) return 8
        if (seen.has(v) || depth > 32) return 0
        seen.add(v)
        if (ArrayBuffer.isView(v)) return 64 + v.byteLength
        let total = 32
        if (Array.isArray(v)) {
          for (const item of v) total += 8 + walk(item, depth + 1)
        } else {
          for (const k in v) {
            if (Object.hasOwn(v, k))
              total += 16 + k.length * 2 + walk((v as Record<string, unknown>)[k], depth + 1)
          }
        }
        return total
      }
      default:
        return 16
    }
  }
  return walk(value, 0)
}
