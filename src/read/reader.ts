// read/: how a get works past the L1 hit (which namespace.ts answers inline), and getMany and peek.
//   L1 aging entry → serve it and refresh in the background, or load with it as the fail-safe fallback
//   L1 miss → join the flight of the key (flights.ts) or start one → L2 → the load pipeline (load/pipeline.ts)
//   getMany → its L1 pass, then one flight per missing key, one MGET, and one batched load through the pipeline
//
// Invariants:
// - One flight per key in this process: readers of a key already loading join it, whichever of get and getMany
//   started it.
// - A strong namespace joins only a flight at its loader, never one reading L2 (that read may predate a write
//   another process acknowledged since).
// - Stale values answer only inside their stale window, and only when the policy allows: stale-while-revalidate,
//   a failed or throttled source, the soft timeout.
// - Before the generation is known, a read past L1 reads it first (keys depend on it).
import type { Entry } from '../codecs/envelope.js'
import type { IndexedNode } from '../core/param-index.js'
import type { BatchItem, LoadItem, LoadPipeline, Settle } from '../load/pipeline.js'
import type { NamespaceContext } from '../namespace/context.js'
import type { GetTraceContext } from '../observability/channels.js'
import { channels } from '../observability/channels.js'
import { isHeld } from '../policies/cross-process-lock.js'
import { refreshAt, type Refresher } from '../refresh/refresher.js'
import type { EntryStore, Stored, StoredReply } from '../storage/entry-store.js'
import { Flight, type FlightRegistry } from './flights.js'
import { forEachLimited } from '../core/limited.js'

/**
 * Keys of one `getMany` whose L2 work (lock attempt, fence read, and without `loadMany` the whole single-key load)
 * runs at once; the rest wait for a slot. The MGET and the `loadMany` call stay one command and one call.
 */
export const GET_MANY_CONCURRENCY = 64
import { regionAllows } from '../regions/read-gate.js'

export class Reader<P, V> {
  readonly #ctx: NamespaceContext<P, V>
  readonly #store: EntryStore<P, V>
  readonly #pipeline: LoadPipeline<P, V>
  readonly #refresher: Refresher<P, V>

  constructor(
    ctx: NamespaceContext<P, V>,
    store: EntryStore<P, V>,
    pipeline: LoadPipeline<P, V>,
    refresher: Refresher<P, V>,
  ) {
    this.#ctx = ctx
    this.#store = store
    this.#pipeline = pipeline
    this.#refresher = refresher
  }

  /**
   * Joins the load of `key` under way, or starts one. A strong namespace joins only a flight at its loader (whose
   * store is fenced and re-read if refused), never one reading L2: that read may have been sent before a write
   * another process acknowledged since.
   */
  join(key: string, params: P, trace: GetTraceContext | undefined): Promise<V> {
    let flight = this.#ctx.flights.joinable(key, this.#ctx.clock)
    if (flight !== undefined && flight.phase === 'l2' && this.#ctx.options.consistency === 'strong') {
      return this.#readStrong(key, params, trace)
    }
    if (flight !== undefined) flight.callers++
    else flight = this.#startFlight(key, params, this.#staleInL1(params))
    if (trace === undefined) return flight.promise
    const joined = flight
    return flight.promise.then((value) => {
      trace.tier = joined.missed ? 'source' : 'l2'
      return value
    })
  }

  /** A strong read that found another reader's L2 read under way: reads L2 itself, then joins or starts the load. */
  async #readStrong(key: string, params: P, trace: GetTraceContext | undefined, tries = 3): Promise<V> {
    const started = performance.now()
    const stored = await this.#store.readL2Fresh(key)
    if (stored !== undefined && regionAllows(this.#ctx, stored.entry.createdAt, this.#ctx.clock.now())) {
      this.#ctx.recorder.hitL2Alone(key, params, started)
      if (trace !== undefined) trace.tier = 'l2'
      return stored.entry.value as V
    }
    const flight = this.#ctx.flights.joinable(key, this.#ctx.clock)
    if (flight !== undefined && flight.phase === 'l2') {
      // Another read of L2 started meanwhile; after a few tries, join it (it started after this read did).
      if (tries > 1) return this.#readStrong(key, params, trace, tries - 1)
      flight.callers++
      return flight.promise
    }
    return this.join(key, params, trace)
  }

  /** An L1 miss before the generation is known: read it first (bounded by the L2 timeout), then go on. */
  async getAfterGeneration(params: P, trace: GetTraceContext | undefined): Promise<V> {
    await this.#ctx.generation.read()
    return this.join(this.#ctx.keys.build(params), params, trace)
  }

  /**
   * An L1 entry past its refresh point: fresh but due for refresh-ahead (answer, refresh in the background), or
   * stale (with stale-while-revalidate: answer, refresh in the background; without: undefined, so the caller loads
   * in the foreground with this entry as its fail-safe fallback).
   */
  serveAging(node: IndexedNode<Entry>, params: unknown): Promise<V> | undefined {
    const ctx = this.#ctx
    const entry = node.value
    const now = ctx.clock.now()
    const stale = node.suspect || now >= entry.freshUntil
    if (stale && !ctx.options.staleWhileRevalidate) return undefined
    ctx.l1!.touch(node)
    ctx.counters.l1Hits++
    ctx.labeled?.count(params as P, 'l1Hits')
    ctx.accessLog?.record(node.key, 'l1', node.size, 1, node.hash)
    node.hits++
    if (node.suspect) ctx.counters.staleBusOutage++
    else if (stale) ctx.counters.staleSwr++
    if (channels.hit.hasSubscribers) ctx.recorder.publishHit(params, 'l1')
    this.#refresher.refreshInBackground(node.key, params as P)
    return Promise.resolve(entry.value as V)
  }

  /** The stale L1 entry for `params`, still inside its stale window, for a fail-safe fallback. */
  #staleInL1(params: unknown): Entry | undefined {
    const l1 = this.#ctx.l1
    if (l1 === undefined || this.#ctx.options.staleForMs === 0) return undefined
    const node = l1.find(params)
    const now = this.#ctx.clock.now()
    return node !== undefined && node.expiresAt > now && regionAllows(this.#ctx, node.value.createdAt, now)
      ? node.value
      : undefined
  }

  /** Whether a cached entry may be served with regions (regions/read-gate.ts); true without. */
  regionAllows(createdAt: number, now: number): boolean {
    return regionAllows(this.#ctx, createdAt, now)
  }

  /** `ns.getMany(list)`, once the cache is known open and `list` an array. */
  async getMany(list: readonly P[]): Promise<V[]> {
    const ctx = this.#ctx
    if (!ctx.generation.known) await ctx.generation.read()
    const keys = list.map((params) => ctx.keys.build(params))
    const results = new Array<V>(list.length)
    const waits: Promise<unknown>[] = []
    const wanted = new Map<string, { item: BatchItem<P>; indices: number[] }>()
    for (let i = 0; i < keys.length; i++) {
      const key = keys[i]!
      const params = list[i] as P
      const node = ctx.l1?.find(params)
      if (node !== undefined) {
        const now = ctx.clock.now()
        if (node.expiresAt <= now || !regionAllows(ctx, node.value.createdAt, now)) {
          ctx.l1!.remove(node)
        } else if (node.refreshAt > now) {
          ctx.l1!.touch(node)
          ctx.counters.l1Hits++
          ctx.labeled?.count(params, 'l1Hits')
          ctx.accessLog?.record(node.key, 'l1', node.size, 1, node.hash)
          node.hits++
          if (channels.hit.hasSubscribers) ctx.recorder.publishHit(params, 'l1')
          results[i] = node.value.value as V
          continue
        } else {
          const served = this.serveAging(node, params)
          if (served !== undefined) {
            results[i] = node.value.value as V
            continue
          }
        }
      }
      const request = wanted.get(key)
      if (request !== undefined) request.indices.push(i)
      else wanted.set(key, { item: { key, params, stale: this.#staleInL1(params) }, indices: [i] })
    }
    if (wanted.size > 0) {
      // Keys already loading (or, without loadMany, every key) go through the single-key pipeline; the rest share
      // one batch: one MGET, one loadMany call.
      const batch: BatchItem<P>[] = []
      for (const [key, { item, indices }] of wanted) {
        const flight = ctx.flights.joinable(key, ctx.clock)
        if (flight !== undefined) {
          // Each position is a read of its own (a key listed twice is two reads), so each joins.
          for (const i of indices) {
            waits.push(this.join(key, item.params, undefined).then((value) => (results[i] = value)))
          }
        } else {
          batch.push(item)
        }
      }
      if (batch.length > 0) {
        for (const [key, promise] of this.#fetchBatch(batch, (key) => wanted.get(key)!.indices.length)) {
          const indices = wanted.get(key)!.indices
          waits.push(promise.then((value) => indices.forEach((i) => (results[i] = value))))
        }
      }
    }
    await Promise.all(waits)
    return results
  }

  /** `ns.peek(params)`, once the cache is known open. */
  async peek(params: P): Promise<V | undefined> {
    const ctx = this.#ctx
    if (!ctx.generation.known) await ctx.generation.read()
    const key = ctx.keys.build(params)
    const now = ctx.clock.now()
    const local = this.#store.l1Peek(params)
    // The region read gate as for `get`: during a split, a copy `get` would not serve is no answer here either.
    if (local !== undefined && local.freshUntil > now && regionAllows(ctx, local.createdAt, now)) {
      return local.value as V
    }
    // L1 holds nothing, a stale copy or one the gate refuses: L2 may hold a fresher one.
    const stored = await this.#store.readL2(key)
    if (stored === undefined || stored.entry.freshUntil <= now) return undefined
    return regionAllows(ctx, stored.entry.createdAt, ctx.clock.now()) ? (stored.entry.value as V) : undefined
  }

  /**
   * Starts a foreground flight for `key`: L2, then the load pipeline (`afterL2`). The flight is the read's reply
   * and settles itself: an L2 hit makes no promise or closure besides the flight's own.
   */
  #startFlight(key: string, params: P, stale?: Entry): Flight<V> {
    const ctx = this.#ctx
    const flight = new ReadFlight<P, V>(this, ctx.flights, key, ctx.fence.open(), params, stale)
    ctx.flights.register(flight)
    try {
      if (!this.#store.readL2Into(key, flight)) this.afterL2(flight, undefined)
    } catch (error) {
      // Never a throw out of a flight's start: the flight is registered, so it must settle.
      flight.reject(error instanceof Error ? error : new Error(String(error)))
    }
    return flight
  }

  /**
   * What L2 held for a read flight (`fromL2`: undefined on a miss or failure): answer it, or go to the loader (with
   * the flight's stale L1 entry, if any, as the fail-safe fallback). `ReadFlight`'s; settles `flight`.
   */
  afterL2(flight: ReadFlight<P, V>, fromL2: Stored | undefined): void {
    const ctx = this.#ctx
    const { key, params } = flight
    let stale = flight.stale
    const now = ctx.clock.now()
    // With regions: an entry a peer region may have changed beyond the namespace's bound is no answer, nor a fallback.
    if (fromL2 !== undefined && regionAllows(ctx, fromL2.entry.createdAt, now)) {
      const { entry } = fromL2
      if (now < entry.freshUntil || ctx.options.staleWhileRevalidate) {
        ctx.recorder.hitL2(key)
        this.#store.fillFromL2(params, key, fromL2, flight.token)
        flight.resolve(entry.value as V)
        if (now >= refreshAt(entry, ctx.options)) {
          if (now >= entry.freshUntil) ctx.counters.staleSwr++
          // The flight has left the registry (it settled), or the refresh would see it and stand down. This runs
          // inside the L2 guard's answer handler, after the guard told the circuit breaker of the success: a
          // half-open circuit closed by this very read lets the refresh's lock attempt through.
          this.#refresher.refreshInBackground(key, params)
        }
        return
      }
      // Stale in L2 and no stale-while-revalidate: the fallback, unless L1 had a newer one.
      if (stale === undefined || entry.createdAt > stale.createdAt) stale = entry
    }
    ctx.recorder.miss(key)
    flight.missed = true
    flight.phase = 'load'
    if (stale !== undefined && ctx.throttle.isThrottled(key)) {
      ctx.counters.staleFailSafe++
      flight.resolve(stale.value as V)
      return
    }
    flight.follow(this.#pipeline.loadCoordinated(key, params, flight, stale))
  }

  /** A read flight left the registry: its metrics, for all of its callers. */
  flightSettled(flight: ReadFlight<P, V>): void {
    this.#ctx.recorder.flightSettled(flight, flight.params, flight.key)
  }

  /**
   * The L1 misses of a `getMany`: one flight per key (joinable by `get`) and one MGET. Then, with a `loadMany`,
   * keys another process is loading wait for it through the single-key pipeline, and the rest are loaded with one
   * `loadMany` call under the same source limit, fence, hard timeout and fail-safe as `get`'s loads; without one,
   * every missing key takes the single-key pipeline. `readers(key)` is how many positions of the list ask for it.
   */
  #fetchBatch(items: BatchItem<P>[], readers: (key: string) => number): Map<string, Promise<V>> {
    const ctx = this.#ctx
    const token = ctx.fence.open()
    const settle: Settle<V> = new Map()
    const promises = new Map<string, Promise<V>>()
    const flights = new Map<string, Flight<V>>()
    for (const item of items) {
      const flight = ctx.flights.start(
        item.key,
        token,
        () =>
          new Promise<V>((resolve, reject) => {
            settle.set(item.key, { resolve, reject })
          }),
        (f) => ctx.recorder.flightSettled(f, item.params, item.key),
      )
      // A key listed more than once in the getMany: each listing is a reader of this flight.
      flight.callers = readers(item.key)
      flights.set(item.key, flight)
      promises.set(item.key, flight.promise)
    }
    const run = async () => {
      const found = await this.#store.readL2Many(items.map((item) => item.key))
      const now = ctx.clock.now()
      const missing: (BatchItem<P> & { stale: Entry | undefined })[] = []
      items.forEach((item, i) => {
        const stored = found[i]
        const flight = flights.get(item.key)!
        let stale = item.stale
        if (stored !== undefined && regionAllows(ctx, stored.entry.createdAt, now)) {
          const { entry } = stored
          if (now < entry.freshUntil || ctx.options.staleWhileRevalidate) {
            ctx.recorder.hitL2(item.key)
            this.#store.fillFromL2(item.params, item.key, stored, token)
            if (now >= refreshAt(entry, ctx.options)) {
              if (now >= entry.freshUntil) ctx.counters.staleSwr++
              void flight.promise.then(() => this.#refresher.refreshInBackground(item.key, item.params))
            }
            settle.get(item.key)!.resolve(entry.value as V)
            return
          }
          if (stale === undefined || entry.createdAt > stale.createdAt) stale = entry
        }
        ctx.recorder.miss(item.key)
        flight.missed = true
        flight.phase = 'load'
        if (stale !== undefined && ctx.throttle.isThrottled(item.key)) {
          ctx.counters.staleFailSafe++
          settle.get(item.key)!.resolve(stale.value as V)
          return
        }
        missing.push({ ...item, stale })
      })
      if (missing.length === 0) return
      if (ctx.loadMany === undefined) {
        // No batch loader: each key takes the single-key pipeline (lock, fence, timeouts, fail-safe), at most
        // GET_MANY_CONCURRENCY at once: a batch of thousands sent at once queued its own commands past the L2
        // timeout, opened the circuit breaker and called the source thousands of times at once.
        await forEachLimited(missing, GET_MANY_CONCURRENCY, async (item) => {
          const { resolve, reject } = settle.get(item.key)!
          try {
            resolve(
              await this.#pipeline.loadCoordinated(item.key, item.params, flights.get(item.key)!, item.stale),
            )
          } catch (error) {
            reject(error)
          }
        })
        return
      }
      // Keys another process holds the lock of: wait for its value through the single-key pipeline. The lock
      // attempts are bounded as above.
      const mine: LoadItem<P>[] = []
      const lock = ctx.generation.known ? ctx.lock : undefined
      await forEachLimited(missing, GET_MANY_CONCURRENCY, async (item) => {
        const flight = flights.get(item.key)!
        let acquired: Awaited<ReturnType<NonNullable<typeof lock>['acquire']>> | 'unavailable'
        try {
          acquired = lock === undefined ? 'unavailable' : await lock.acquire(item.key)
        } catch (error) {
          settle.get(item.key)!.reject(error)
          return
        }
        if (isHeld(acquired)) {
          this.#pipeline
            .loadCoordinated(item.key, item.params, flight, item.stale)
            .then(settle.get(item.key)!.resolve, settle.get(item.key)!.reject)
          return
        }
        mine.push({ ...item, flight, holder: acquired === 'unavailable' ? undefined : acquired })
      })
      if (mine.length > 0) await this.#pipeline.loadBatch(mine, settle)
    }
    run().catch((error: unknown) => {
      // Settling a settled promise is a no-op, so this reaches exactly the unsettled ones.
      for (const { reject } of settle.values()) reject(error)
    })
    return promises
  }
}

/**
 * A `get`'s flight: its read of L2 answers here (it is the read's reply), then `Reader.afterL2` settles it from L2
 * or sends it to the loader. One object for the flight, the read's context and its bookkeeping.
 */
class ReadFlight<P, V> extends Flight<V> implements StoredReply {
  readonly params: P
  /** An L1 entry still inside its stale window: the fallback if the loader fails. */
  readonly stale: Entry | undefined
  readonly #reader: Reader<P, V>

  constructor(
    reader: Reader<P, V>,
    registry: FlightRegistry<V>,
    key: string,
    token: number,
    params: P,
    stale: Entry | undefined,
  ) {
    super(registry, key, token)
    this.#reader = reader
    this.params = params
    this.stale = stale
  }

  stored(fromL2: Stored | undefined): void {
    try {
      this.#reader.afterL2(this, fromL2)
    } catch (error) {
      // Serving it (or starting its load) threw: the read fails, as every caller is told.
      this.reject(error instanceof Error ? error : new Error(String(error)))
    }
  }

  failed(error: Error): void {
    this.reject(error)
  }

  protected override settled(): void {
    this.#reader.flightSettled(this)
  }
}
