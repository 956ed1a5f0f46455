// A key family: its key schema and policies, and the read path L1 → L2 → single-flight → loader → L2 → L1.
import { decodeEnvelope, encodeEnvelope, type Entry } from './codecs/envelope.js'
import { KeySchema } from './core/keys.js'
import type { CacheRuntime } from './core/runtime.js'
import {
  CacheClosedError,
  DecodeError,
  InvalidArgumentError,
  LoaderError,
  LoadManyResultError,
  NoLoaderError,
  SerializationError,
} from './errors.js'
import { channels } from './observability/channels.js'
import type { LoadContext, NamespaceOptions, ResolvedNamespaceOptions } from './options.js'
import type { L2Write } from './tiers/l2-store.js'
import type { LruList, LruOwner } from './tiers/lru-list.js'
import { ParamIndex, type IndexedNode } from './core/param-index.js'

/**
 * Checks a parameters object at compile time: every key must be declared (extra ones become `never`) and no
 * string literal may be empty. Missing and non-scalar parameters already fail `Q extends P`.
 */
export type CheckedParams<Q, P> = {
  [K in keyof Q]: K extends keyof P ? (Q[K] extends '' ? never : Q[K]) : never
}

/** Counters of one namespace since the cache was created. */
export interface NamespaceStats {
  readonly l1Hits: number
  readonly l2Hits: number
  /** Reads that found no usable value in any tier (each one loads, or returns undefined for `peek`). */
  readonly misses: number
  /** (l1Hits + l2Hits) / all reads; 0 before the first read. */
  readonly hitRatio: number
  /** Loader calls: one per `load`, one per `loadMany` batch. */
  readonly loads: number
  readonly loadErrors: number
  /** L2 calls that failed, timed out or were skipped by the open circuit. */
  readonly l2Errors: number
  /** L2 values that did not decode (garbage, truncated, another format or schema): each was read as a miss. */
  readonly decodeErrors: number
  /** Values the serializer refused: served, kept in L1, not written to L2. */
  readonly serializeErrors: number
}

type Counters = { -readonly [K in Exclude<keyof NamespaceStats, 'hitRatio'>]: number }

/** An in-process load (or batch member) under way for one key. Writes that race it mark it cancelled. */
interface Flight<V> {
  promise: Promise<V>
  /** Set by set/delete/clear while the load runs: its result is returned to its callers but not cached. */
  cancelled: boolean
}

interface BatchFlight<V> extends Flight<V> {
  resolve(value: V): void
  reject(error: unknown): void
}

/**
 * One key family. Made by `cache.namespace(name, options)`; `P` are its key parameters, `V` its value.
 *
 * @example
 * const product = await products.get({ tenantId: 't1', productId: 42, locale: 'en', currency: 'EUR' })
 */
export class Namespace<P, V> {
  readonly name: string
  readonly options: ResolvedNamespaceOptions
  /** `service:namespace:v{schemaVersion}:` — every key of this namespace starts with it. */
  readonly prefix: string
  readonly #rt: CacheRuntime
  readonly #clock: CacheRuntime['clock']
  readonly #hitClock: CacheRuntime['clock']
  readonly #keys: KeySchema
  /** The cache's shared L1 recency list and budget, or undefined when this namespace skips L1. */
  readonly #l1: LruList<Entry> | undefined
  /** This namespace's L1 index: one Map level per parameter, so a hit builds no key string. */
  readonly #l1Index: ParamIndex<Entry>
  readonly #l1Owner: LruOwner<Entry> = {
    unindex: (node) => this.#l1Index.remove(node as IndexedNode<Entry>),
  }
  readonly #load: ((params: P, context: LoadContext) => Promise<V> | V) | undefined
  readonly #loadMany:
    ((params: readonly P[], context: LoadContext) => Promise<readonly V[]> | readonly V[]) | undefined
  /** Loads under way, by full key. */
  readonly #flights = new Map<string, Flight<V>>()
  readonly #counters: Counters = {
    l1Hits: 0,
    l2Hits: 0,
    misses: 0,
    loads: 0,
    loadErrors: 0,
    l2Errors: 0,
    decodeErrors: 0,
    serializeErrors: 0,
  }

  /** @internal Use `cache.namespace()`. */
  constructor(
    runtime: CacheRuntime,
    options: ResolvedNamespaceOptions,
    functions: Pick<NamespaceOptions<string, readonly string[], P, V>, 'load' | 'loadMany'>,
  ) {
    this.#rt = runtime
    this.#clock = runtime.clock
    this.#hitClock = runtime.hitClock
    this.name = options.name
    this.options = options
    this.#keys = new KeySchema({
      service: runtime.service,
      namespace: options.name,
      schemaVersion: options.schemaVersion,
      template: options.key,
      dimensions: options.dimensions,
      maxKeyLength: runtime.maxKeyLength,
    })
    this.prefix = this.#keys.prefix
    this.#l1Index = new ParamIndex<Entry>(this.#keys)
    this.#l1 = options.l1TtlMs > 0 ? runtime.l1 : undefined
    this.#load = functions.load
    this.#loadMany = functions.loadMany
    runtime.onClose(() => this.#dropL1())
  }

  /** Parameter names in key order (placeholders, then dimensions sorted). */
  get params(): readonly string[] {
    return this.#keys.params
  }

  /**
   * The full key for `params`, as stored in L2.
   * @throws InvalidKeyParamError naming a missing, undeclared, empty or non-scalar parameter.
   */
  key<const Q extends P>(params: Q & CheckedParams<Q, P>): string {
    return this.#keys.build(params)
  }

  /**
   * The value for `params`: from L1, else L2, else the loader (once per key however many callers wait), after
   * which it is written to L2 and L1. Rejects only when no tier and no loader can answer.
   */
  get<const Q extends P>(params: Q & CheckedParams<Q, P>): Promise<V> {
    if (this.#rt.closed) return Promise.reject(new CacheClosedError('get'))
    let key: string
    try {
      // The hot path: an L1 hit walks the index by the parameters' own texts and reads the clock; no key string is
      // built, nothing decoded, nothing allocated but the promise.
      if (this.#l1 !== undefined) {
        const entry = this.#l1Get(params)
        if (entry !== undefined) {
          this.#counters.l1Hits++
          if (channels.hit.hasSubscribers) this.#publishHit(params, 'l1')
          return Promise.resolve(entry.value as V)
        }
      }
      key = this.#keys.build(params)
    } catch (error) {
      return Promise.reject(error instanceof Error ? error : new Error(String(error)))
    }
    const flight = this.#flights.get(key)
    if (flight !== undefined) return flight.promise
    return this.#startFlight(key, params)
  }

  /**
   * Values for many parameter sets, in order. L1 misses are read from L2 in one round trip (MGET); what is still
   * missing is loaded with one `loadMany` call, or with `load` per key concurrently. Keys already loading join
   * their flight. Rejects with the first error if any key fails (the others are still cached).
   */
  async getMany<const L extends readonly P[]>(
    list: L & NoInfer<{ readonly [I in keyof L]: CheckedParams<L[I], P> }>,
  ): Promise<V[]> {
    if (this.#rt.closed) throw new CacheClosedError('getMany')
    if (!isArray(list)) throw new InvalidArgumentError('list', list, 'an array of key parameter objects')
    const keys = list.map((params) => this.#keys.build(params))
    const results = new Array<V>(list.length)
    const waits: Promise<unknown>[] = []
    const wanted = new Map<string, { params: P; indices: number[] }>()
    for (let i = 0; i < keys.length; i++) {
      const key = keys[i]!
      const entry = this.#l1 === undefined ? undefined : this.#l1Get(list[i])
      if (entry !== undefined) {
        this.#counters.l1Hits++
        if (channels.hit.hasSubscribers) this.#publishHit(list[i], 'l1')
        results[i] = entry.value as V
        continue
      }
      const flight = this.#flights.get(key)
      if (flight !== undefined) {
        waits.push(flight.promise.then((value) => (results[i] = value)))
      } else {
        const request = wanted.get(key)
        if (request !== undefined) request.indices.push(i)
        else wanted.set(key, { params: list[i]!, indices: [i] })
      }
    }
    if (wanted.size > 0) {
      const batch = [...wanted].map(([key, { params }]) => ({ key, params, flight: this.#batchFlight(key) }))
      void this.#fetchBatch(batch)
      for (const { key, flight } of batch) {
        const indices = wanted.get(key)!.indices
        waits.push(flight.promise.then((value) => indices.forEach((i) => (results[i] = value))))
      }
    }
    await Promise.all(waits)
    return results
  }

  /** The cached value for `params` from L1 or L2 without loading; undefined when neither holds a fresh one. */
  async peek<const Q extends P>(params: Q & CheckedParams<Q, P>): Promise<V | undefined> {
    if (this.#rt.closed) throw new CacheClosedError('peek')
    const key = this.#keys.build(params)
    const entry = this.#l1Peek(params) ?? (await this.#readL2(key))
    return entry?.value as V | undefined
  }

  /**
   * Stores `value` for `params` in L1 and L2 (with the namespace's TTL and jitter), replacing what was there.
   * A load of the same key already under way is still answered to its callers but no longer cached.
   * @throws SerializationError when the serializer cannot represent the value (nothing is stored).
   * @throws L2 errors (ERR_STRATA_L2_*) when L2 could not take the write; L1 already holds the value.
   */
  async set<const Q extends P>(params: Q & CheckedParams<Q, P>, value: V): Promise<void> {
    if (this.#rt.closed) throw new CacheClosedError('set')
    const key = this.#keys.build(params)
    this.#cancelFlight(key)
    const entry = this.#newEntry(value)
    let bytes: Buffer | undefined
    if (this.#needsBytes()) {
      try {
        bytes = encodeEnvelope(entry, this.options.schemaVersion, this.#rt.serializer)
      } catch (cause) {
        this.#counters.serializeErrors++
        throw new SerializationError(this.name, key, { cause })
      }
    }
    this.#fillL1(params, key, entry, bytes?.byteLength)
    if (this.#rt.l2 !== undefined && bytes !== undefined) {
      try {
        await this.#rt.l2.set(key, bytes, entry.staleUntil - entry.createdAt)
      } catch (error) {
        this.#counters.l2Errors++
        // L2 may still hold the old value for other processes: do not be the one process serving the new one.
        this.#l1Delete(params)
        throw error
      }
    }
  }

  /**
   * Removes the entry for `params` from L1 and L2.
   * @throws L2 errors (ERR_STRATA_L2_*) when L2 could not be reached; L1 is already cleared.
   */
  async delete<const Q extends P>(params: Q & CheckedParams<Q, P>): Promise<void> {
    if (this.#rt.closed) throw new CacheClosedError('delete')
    const key = this.#keys.build(params)
    this.#cancelFlight(key)
    this.#l1Delete(params)
    if (this.#rt.l2 !== undefined) {
      try {
        await this.#rt.l2.delete([key])
      } catch (error) {
        this.#counters.l2Errors++
        throw error
      }
    }
  }

  /**
   * Removes every entry of this namespace (this schema version) from L1 and L2, scanning L2 incrementally.
   * Resolves to the number of L2 keys deleted.
   * @throws L2 errors (ERR_STRATA_L2_*) when L2 could not be reached; L1 is already cleared.
   */
  async clear(): Promise<number> {
    if (this.#rt.closed) throw new CacheClosedError('clear')
    this.#forgetEverything()
    if (this.#rt.l2 === undefined) return 0
    try {
      return await this.#rt.l2.deletePrefix(this.prefix)
    } catch (error) {
      this.#counters.l2Errors++
      throw error
    } finally {
      // A get during the scan may have read a value before its UNLINK and put it in L1, or be reading one now:
      // forget again, so nothing from before the clear survives it in this process.
      this.#forgetEverything()
    }
  }

  #forgetEverything(): void {
    for (const flight of this.#flights.values()) flight.cancelled = true
    this.#flights.clear()
    this.#dropL1()
  }

  /** A frozen snapshot of this namespace's counters. */
  stats(): NamespaceStats {
    const c = this.#counters
    const reads = c.l1Hits + c.l2Hits + c.misses
    return Object.freeze({ ...c, hitRatio: reads === 0 ? 0 : (c.l1Hits + c.l2Hits) / reads })
  }

  // --- the miss path ---------------------------------------------------------------------------------------

  #startFlight(key: string, params: P): Promise<V> {
    const flight = { cancelled: false } as Flight<V>
    flight.promise = this.#fetch(key, params, flight)
    this.#flights.set(key, flight)
    return flight.promise
  }

  async #fetch(key: string, params: P, flight: Flight<V>): Promise<V> {
    try {
      const fromL2 = await this.#readL2(key)
      if (fromL2 !== undefined) {
        this.#hitL2(key)
        // A set or delete may have raced this read; then its result stays out of L1.
        if (!flight.cancelled) this.#fillL1(params, key, fromL2)
        return fromL2.value as V
      }
      this.#miss(key)
      if (this.#load === undefined) {
        if (this.#loadMany === undefined) throw new NoLoaderError(this.name, key)
        const [value] = await this.#callLoadMany([key], [params])
        this.#store(params, key, value as V, flight)
        return value as V
      }
      const value = await this.#callLoad(key, params)
      this.#store(params, key, value, flight)
      return value
    } finally {
      // Runs after startFlight registered the flight: the body always awaits before it can get here.
      if (this.#flights.get(key) === flight) this.#flights.delete(key)
    }
  }

  #batchFlight(key: string): BatchFlight<V> {
    let resolve!: (value: V) => void
    let reject!: (error: unknown) => void
    const promise = new Promise<V>((res, rej) => {
      resolve = res
      reject = rej
    })
    const flight: BatchFlight<V> = { promise, cancelled: false, resolve, reject }
    this.#flights.set(key, flight)
    const settle = () => {
      if (this.#flights.get(key) === flight) this.#flights.delete(key)
    }
    promise.then(settle, settle)
    return flight
  }

  /** Settles every flight of the batch exactly once, whatever fails. */
  async #fetchBatch(batch: { key: string; params: P; flight: BatchFlight<V> }[]): Promise<void> {
    try {
      const entries = await this.#readL2Many(batch.map((b) => b.key))
      const missing: typeof batch = []
      batch.forEach((item, i) => {
        const entry = entries[i]
        if (entry === undefined) {
          this.#miss(item.key)
          missing.push(item)
          return
        }
        this.#hitL2(item.key)
        if (!item.flight.cancelled) this.#fillL1(item.params, item.key, entry)
        item.flight.resolve(entry.value as V)
      })
      if (missing.length === 0) return
      if (this.#loadMany !== undefined) {
        const values = await this.#callLoadMany(
          missing.map((m) => m.key),
          missing.map((m) => m.params),
        )
        const writes: L2Write[] = []
        missing.forEach((item, i) => {
          const value = values[i] as V
          this.#store(item.params, item.key, value, item.flight, writes)
          item.flight.resolve(value)
        })
        this.#writeL2(writes)
      } else if (this.#load !== undefined) {
        const load = this.#load
        await Promise.all(
          missing.map(async (item) => {
            try {
              const value = await this.#callLoad(item.key, item.params, load)
              this.#store(item.params, item.key, value, item.flight)
              item.flight.resolve(value)
            } catch (error) {
              item.flight.reject(error)
            }
          }),
        )
      } else {
        for (const item of missing) item.flight.reject(new NoLoaderError(this.name, item.key))
      }
    } catch (error) {
      // Settling an already settled promise is a no-op, so this reaches exactly the unsettled ones.
      for (const item of batch) item.flight.reject(error)
    }
  }

  async #callLoad(key: string, params: P, load = this.#load!): Promise<V> {
    const started = performance.now()
    this.#counters.loads++
    try {
      const value = await load(params, { namespace: this.name, key, signal: this.#rt.signal })
      if (channels.load.hasSubscribers) {
        channels.load.publish({ namespace: this.name, keys: [key], durationMs: performance.now() - started })
      }
      return value
    } catch (cause) {
      this.#counters.loadErrors++
      if (channels.load.hasSubscribers) {
        channels.load.publish({
          namespace: this.name,
          keys: [key],
          durationMs: performance.now() - started,
          error: cause,
        })
      }
      throw new LoaderError(this.name, key, { cause })
    }
  }

  async #callLoadMany(keys: string[], params: P[]): Promise<readonly V[]> {
    const started = performance.now()
    this.#counters.loads++
    let values: readonly V[]
    let failure: Error | undefined
    try {
      values = await this.#loadMany!(params, { namespace: this.name, key: keys[0]!, signal: this.#rt.signal })
      if (!Array.isArray(values) || values.length !== keys.length) {
        failure = new LoadManyResultError(this.name, keys.length, values)
      }
    } catch (cause) {
      failure = new LoaderError(this.name, keys[0]!, { cause })
    }
    if (failure !== undefined) this.#counters.loadErrors++
    if (channels.load.hasSubscribers) {
      channels.load.publish({
        namespace: this.name,
        keys,
        durationMs: performance.now() - started,
        error: failure,
      })
    }
    if (failure !== undefined) throw failure
    return values!
  }

  // --- tiers -------------------------------------------------------------------------------------------------

  #readL2(key: string): Promise<Entry | undefined> | undefined {
    const l2 = this.#rt.l2
    if (l2 === undefined) return undefined
    return l2.get(key).then(
      (bytes) => (bytes === null ? undefined : this.#decode(key, bytes)),
      () => {
        // The guard already published the error; the read falls through to the loader.
        this.#counters.l2Errors++
        return undefined
      },
    )
  }

  async #readL2Many(keys: string[]): Promise<(Entry | undefined)[]> {
    const l2 = this.#rt.l2
    if (l2 === undefined) return keys.map(() => undefined)
    try {
      const values = await l2.getMany(keys)
      return values.map((bytes, i) => (bytes === null ? undefined : this.#decode(keys[i]!, bytes)))
    } catch {
      this.#counters.l2Errors++
      return keys.map(() => undefined)
    }
  }

  /** Bytes from L2 to an entry; foreign, corrupt or expired bytes are a miss (counted and published), never a throw. */
  #decode(key: string, bytes: Uint8Array): Entry | undefined {
    const result = decodeEnvelope(bytes, this.options.schemaVersion, this.#rt.serializer)
    if (!result.ok) {
      this.#counters.decodeErrors++
      if (channels.decodeError.hasSubscribers) {
        const error = new DecodeError(key, result.reason, { cause: result.cause })
        channels.decodeError.publish({ namespace: this.name, key, error })
      }
      return undefined
    }
    return result.entry.freshUntil > this.#clock.now() ? result.entry : undefined
  }

  #newEntry(value: V): Entry<V> {
    const now = this.#clock.now()
    const { ttlMs, jitterMs, negativeTtlMs } = this.options
    const ttl =
      value === null || value === undefined ? negativeTtlMs : ttlMs + Math.round(this.#rt.random() * jitterMs)
    return { value, createdAt: now, freshUntil: now + ttl, staleUntil: now + ttl }
  }

  /**
   * Caches a freshly loaded value in L1 and L2 unless a write raced the load. L2 is written in the background:
   * the caller already has its value and must not wait for Redis. With `writes`, the L2 write is queued there.
   */
  #store(params: P, key: string, value: V, flight: Flight<V>, writes?: L2Write[]): void {
    // A load that finished after close() (its loader ignored the signal) must not refill L1 or write to L2.
    if (flight.cancelled || this.#rt.closed) return
    const entry = this.#newEntry(value)
    let bytes: Buffer | undefined
    if (this.#needsBytes()) {
      try {
        bytes = encodeEnvelope(entry, this.options.schemaVersion, this.#rt.serializer)
      } catch (cause) {
        this.#counters.serializeErrors++
        if (channels.serializeError.hasSubscribers) {
          channels.serializeError.publish({
            namespace: this.name,
            key,
            error: new SerializationError(this.name, key, { cause }),
          })
        }
      }
    }
    this.#fillL1(params, key, entry, bytes?.byteLength)
    if (bytes === undefined || this.#rt.l2 === undefined) return
    const write = { key, value: bytes, ttlMs: entry.staleUntil - entry.createdAt }
    if (writes !== undefined) writes.push(write)
    else this.#writeL2([write])
  }

  #writeL2(writes: L2Write[]): void {
    const l2 = this.#rt.l2
    if (l2 === undefined || writes.length === 0) return
    const work =
      writes.length === 1 ? l2.set(writes[0]!.key, writes[0]!.value, writes[0]!.ttlMs) : l2.setMany(writes)
    this.#rt.background(work.catch(() => void this.#counters.l2Errors++))
  }

  /** Puts an entry in L1 for no longer than the L2 entry lives, nor than the namespace's L1 TTL. */
  #fillL1(params: unknown, key: string, entry: Entry, size = 0): void {
    const l1 = this.#l1
    if (l1 === undefined || this.#rt.closed) return
    const now = this.#clock.now()
    const ttl = Math.min(this.options.l1TtlMs, entry.freshUntil - now)
    const existing = this.#l1Index.find(params)
    if (ttl <= 0 || size > l1.maxBytes) {
      // Expired already, or larger than the whole L1 budget: serve it without keeping it in L1.
      if (existing !== undefined) this.#l1Remove(existing)
      return
    }
    if (existing !== undefined) {
      existing.value = entry
      existing.expiresAt = now + ttl
      l1.resize(existing, size)
      return
    }
    const node: IndexedNode<Entry> = {
      key,
      value: entry,
      expiresAt: now + ttl,
      size,
      owner: this.#l1Owner,
      newer: undefined,
      older: undefined,
      path: [],
      texts: [],
    }
    this.#l1Index.insert(params, node)
    l1.add(node)
  }

  /** The fresh L1 entry for `params`, marked used; an expired one is dropped. Throws for invalid parameters. */
  #l1Get(params: unknown): Entry | undefined {
    const node = this.#l1Index.find(params)
    if (node === undefined) return undefined
    if (node.expiresAt <= this.#hitClock.now()) {
      this.#l1Remove(node)
      return undefined
    }
    this.#l1!.touch(node)
    return node.value
  }

  #l1Peek(params: unknown): Entry | undefined {
    if (this.#l1 === undefined) return undefined
    const node = this.#l1Index.find(params)
    return node === undefined || node.expiresAt <= this.#clock.now() ? undefined : node.value
  }

  #l1Delete(params: unknown): void {
    if (this.#l1 === undefined) return
    const node = this.#l1Index.find(params)
    if (node !== undefined) this.#l1Remove(node)
  }

  #l1Remove(node: IndexedNode<Entry>): void {
    this.#l1Index.remove(node)
    this.#l1!.remove(node)
  }

  #dropL1(): void {
    if (this.#l1 !== undefined) for (const node of this.#l1Index.nodes()) this.#l1.remove(node)
    this.#l1Index.clear()
  }

  /** Whether values must be encoded: for L2, or to measure them against an L1 byte budget. */
  #needsBytes(): boolean {
    return this.#rt.l2 !== undefined || (this.#l1 !== undefined && this.#l1.maxBytes !== Infinity)
  }

  #cancelFlight(key: string): void {
    const flight = this.#flights.get(key)
    if (flight === undefined) return
    flight.cancelled = true
    this.#flights.delete(key)
  }

  #publishHit(params: unknown, tier: 'l1' | 'l2'): void {
    channels.hit.publish({ namespace: this.name, key: this.#keys.build(params), tier })
  }

  #hitL2(key: string): void {
    this.#counters.l2Hits++
    if (channels.hit.hasSubscribers) channels.hit.publish({ namespace: this.name, key, tier: 'l2' })
  }

  #miss(key: string): void {
    this.#counters.misses++
    if (channels.miss.hasSubscribers) channels.miss.publish({ namespace: this.name, key })
  }
}

/** Array.isArray without narrowing, so a typed list keeps its element type. */
function isArray(value: unknown): boolean {
  return Array.isArray(value)
}
