// load/: what happens when the source is called. A miss (from get, getMany or a refresh) goes through these steps:
//   coordinate (the cross-process lock, or wait for the process holding it) → admit (the source limit) → take the
//   L2 fence → invoke the loader under its timeouts (invoke.ts) → store, fenced (storage/) → release the lock.
//
// Invariants:
// - The L2 fence is requested before the loader is called, and the store is checked against it: a value whose load
//   started before a write or invalidation never lands in L2 (nor, by the local fence, in L1).
// - The source limit is taken before the loader and released when the call settles, whatever its outcome.
// - A lock taken is always released: after the store landed in L2 (so waiters find the value when woken), or at
//   once when the load failed or did not happen.
// - With a stale fallback, a caller gets stale rather than an error (failure, hard timeout, source busy) or a wait
//   past the soft timeout; a failed key is throttled, so the source is not asked again at once.
// - Strong and bounded namespaces never answer a value their store was refused for when a newer one can be read.
import type { Entry } from '../codecs/envelope.js'
import { LoaderTimeoutError, NoLoaderError, SourceBusyError } from '../errors.js'
import { isHeld, type LockHolder } from '../policies/cross-process-lock.js'
import type { Flight } from '../read/flights.js'
import type { EntryStore, Stored, StoreOutcome } from '../storage/entry-store.js'
import type { NamespaceContext } from '../namespace/context.js'
import type { LoadInvoker } from './invoke.js'

/** A key of a `getMany` that missed L1: its parameters and the stale L1 entry, if any, for a fail-safe. */
export interface BatchItem<P> {
  readonly key: string
  readonly params: P
  readonly stale: Entry | undefined
}

/** How a `getMany` settles the promise it handed out for each key. */
export type Settle<V> = Map<string, { resolve: (value: V) => void; reject: (error: unknown) => void }>

export class LoadPipeline<P, V> {
  readonly #ctx: NamespaceContext<P, V>
  readonly #store: EntryStore<P, V>
  readonly #invoke: LoadInvoker<P, V>

  constructor(ctx: NamespaceContext<P, V>, store: EntryStore<P, V>, invoke: LoadInvoker<P, V>) {
    this.#ctx = ctx
    this.#store = store
    this.#invoke = invoke
  }

  /**
   * Loads `key` once across processes: takes the L2 lock, or waits for the process holding it to announce the
   * value, re-reading L2 when woken; after `lock.wait` in all, or when L2 cannot coordinate, it loads by itself.
   */
  async loadCoordinated(key: string, params: P, flight: Flight<V>, stale: Entry | undefined): Promise<V> {
    const lock = this.#ctx.generation.known ? this.#ctx.lock : undefined
    let holder: LockHolder | undefined
    if (lock !== undefined) {
      // Monotonic: a wall-clock step must not stretch or cut the wait.
      const deadline = performance.now() + lock.options.waitMs
      let waited = false
      for (;;) {
        const acquired = await lock.acquire(key)
        if (acquired === 'unavailable') break
        if (!isHeld(acquired)) {
          holder = acquired
          break
        }
        if (!waited) this.#ctx.counters.lockWaits++
        waited = true
        const watch = await lock.watch(key)
        // Registered first, then read: a value announced in between is found here rather than missed.
        const landed = await this.#store.readL2Fresh(key)
        if (landed !== undefined) {
          watch?.cancel()
          return this.#adopt(params, key, flight.token, landed)
        }
        const remaining = deadline - performance.now()
        if (watch === undefined || remaining <= 0) {
          watch?.cancel()
          break
        }
        // Sleep until the value is announced, the holder's lock would have expired (a dead holder, or one that
        // extended it: we then find it held again), or our pub/sub connection was lost or came back (an
        // announcement may have been lost: the lock wakes every waiter). No polling while we can hear.
        await watch.wait(lock.sleepFor(acquired.heldMs, remaining))
        const after = await this.#store.readL2Fresh(key)
        if (after !== undefined) return this.#adopt(params, key, flight.token, after)
      }
    }
    return this.loadAndStore(key, params, flight, stale, holder)
  }

  /**
   * A value another process loaded (or wrote), kept in L1 unless fenced. Not counted as an L2 hit: the read that
   * waited for it was already counted as a miss (its wait is in the miss latency), and a refresh is not a read.
   */
  #adopt(params: P, key: string, token: number, stored: Stored): V {
    this.#store.fillFromL2(params, key, stored, token)
    return stored.entry.value as V
  }

  /**
   * The load pipeline of one key: room at the source, the fence, the loader under its timeouts, the fenced store
   * (awaited when holding the lock, so waiters find the value when woken), then the lock's release. With a stale
   * fallback: answers stale at the soft timeout while the load goes on, and stale (throttling the key) when the
   * load fails.
   */
  async loadAndStore(
    key: string,
    params: P,
    flight: Pick<Flight<unknown>, 'token' | 'continuation' | 'answersUntil'>,
    stale: Entry | undefined,
    holder: LockHolder | undefined,
  ): Promise<V> {
    const ctx = this.#ctx
    // The hard timeout runs from here: the wait for room at the source counts against it.
    const startedAt = performance.now()
    let release: (() => void) | 'stale'
    try {
      release = await this.#acquireSource(stale !== undefined)
    } catch (error) {
      await holder?.release(false)
      throw error
    }
    if (release === 'stale') {
      await holder?.release(false)
      return stale!.value as V
    }
    const fences = this.#store.readFences([key])
    const stored = this.#callLoadTimed(key, startedAt, (signal) => this.#loadOne(key, params, signal))
      .finally(release)
      .then(
        async (value) => {
          const written = this.#store.store(
            params,
            key,
            value,
            flight.token,
            await fences.then((f) => f?.[0]),
          )
          if (holder !== undefined) {
            // The holder's callers have their value now; waiters in other processes are told once it is in L2.
            ctx.rt.background(written.then((outcome) => holder.release(outcome === 'stored')))
          }
          return this.#answerLoaded(key, params, value, written)
        },
        async (error: unknown) => {
          await holder?.release(false)
          throw error
        },
      )
    if (stale === undefined) return stored
    const soft = ctx.options.softTimeoutMs
    let timer: ReturnType<typeof setTimeout> | undefined
    const outcome = await Promise.race([
      stored.then(
        (value) => ({ value }),
        (error: unknown) => ({ error }),
      ),
      soft === Infinity
        ? new Promise<never>(() => {})
        : new Promise<'soft'>((r) => (timer = setTimeout(() => r('soft'), soft))),
    ])
    clearTimeout(timer)
    if (outcome === 'soft') {
      ctx.counters.staleSoftTimeout++
      // The load goes on and updates the cache when it lands; its failure throttles the key like any other.
      // Readers joining meanwhile get the stale answer, but only while it is inside its stale window.
      flight.answersUntil = stale.staleUntil
      flight.continuation = stored.catch(() => ctx.throttle.throttle(key))
      return stale.value as V
    }
    if ('value' in outcome) return outcome.value
    ctx.throttle.throttle(key)
    ctx.counters.staleFailSafe++
    return stale.value as V
  }

  /**
   * What a load's callers get. Eventual: the loaded value. Strong and bounded: a caller may have joined after
   * another process's write was acknowledged; if the fenced store was refused, that write won, so its newer value
   * is read from L2, or, when it deleted the entry (cache-aside), loaded again.
   */
  async #answerLoaded(key: string, params: P, value: V, written: Promise<StoreOutcome>): Promise<V> {
    if (this.#ctx.options.consistency === 'eventual' || (await written) !== 'refused') return value
    const newer = await this.#store.readL2Fresh(key)
    if (newer !== undefined) return this.#adopt(params, key, this.#ctx.fence.open(), newer)
    if (this.#ctx.options.consistency !== 'strong') return value
    // Once, not in a loop: a second refusal means writes keep coming, and this value is as new as any.
    const token = this.#ctx.fence.open()
    const [fence] = (await this.#store.readFences([key])) ?? []
    const reloaded = await this.#callLoadTimed(key, performance.now(), (signal) =>
      this.#loadOne(key, params, signal),
    )
    await this.#store.store(params, key, reloaded, token, fence)
    return reloaded
  }

  /**
   * Room at the source for one load, by the namespace's `source` policy: a release function, 'stale' (answer with
   * the stale value instead: only offered when one exists), or a SourceBusyError.
   */
  async #acquireSource(hasStale: boolean): Promise<(() => void) | 'stale'> {
    const { source, counters } = this.#ctx
    const room = source.tryAcquire()
    if (room !== undefined) return room
    const { overflow, maxConcurrent } = this.#ctx.options.source
    if (overflow === 'error' || (overflow === 'stale' && hasStale)) {
      counters.sourceBusy++
      if (overflow === 'stale') {
        counters.staleFailSafe++
        return 'stale'
      }
      throw new SourceBusyError(this.#ctx.name, source.active >= maxConcurrent ? 'concurrency' : 'rate', 0)
    }
    try {
      // Never past the hard timeout: the load it makes room for must still have time to run.
      return await source.acquire(this.#ctx.rt.signal, this.#ctx.options.hardTimeoutMs)
    } catch (error) {
      counters.sourceBusy++
      throw error
    }
  }

  /**
   * A loader call under the hard timeout: its signal aborts (as when the cache closes) and the call rejects with
   * LoaderTimeoutError. One listener on the cache's signal, removed when the call settles (`AbortSignal.any` would
   * leave a dependant on that long-lived signal per call on Node 20).
   */
  async #callLoadTimed<T>(
    key: string,
    startedAt: number,
    call: (signal: AbortSignal) => Promise<T>,
  ): Promise<T> {
    const hard = this.#ctx.options.hardTimeoutMs
    // What is left of the hard timeout after the wait for the source (at least 1 ms: the call is made).
    const left = Math.max(1, hard - (performance.now() - startedAt))
    const controller = new AbortController()
    const cacheSignal = this.#ctx.rt.signal
    const onClose = () => controller.abort(cacheSignal.reason)
    if (cacheSignal.aborted) controller.abort(cacheSignal.reason)
    else cacheSignal.addEventListener('abort', onClose, { once: true })
    let timer: ReturnType<typeof setTimeout> | undefined
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const error = new LoaderTimeoutError(this.#ctx.name, key, hard)
        this.#ctx.counters.loadTimeouts++
        controller.abort(error)
        reject(error)
      }, left)
    })
    try {
      return await Promise.race([call(controller.signal), timeout])
    } finally {
      clearTimeout(timer)
      cacheSignal.removeEventListener('abort', onClose)
    }
  }

  #loadOne(key: string, params: P, signal: AbortSignal): Promise<V> {
    const { writeBehind, load, loadMany } = this.#ctx
    if (writeBehind !== undefined) return this.#loadOneAfterQueue(key, params, signal)
    if (load !== undefined) return this.#invoke.callLoad(key, params, load, signal)
    if (loadMany === undefined) return Promise.reject(new NoLoaderError(this.#ctx.name, key))
    return this.#invoke.callLoadMany([key], [params], signal).then(([value]) => value as V)
  }

  /** With write-behind: this process's own queued write of `key` answers before the source is asked. */
  async #loadOneAfterQueue(key: string, params: P, signal: AbortSignal): Promise<V> {
    const queued = await this.#ctx.writeBehind!.pending(key)
    if (queued !== undefined) return queued.value
    const { load, loadMany } = this.#ctx
    if (load !== undefined) return this.#invoke.callLoad(key, params, load, signal)
    if (loadMany === undefined) throw new NoLoaderError(this.#ctx.name, key)
    const [value] = await this.#invoke.callLoadMany([key], [params], signal)
    return value as V
  }

  /** One `loadMany` call for `items`, then a fenced store per key; failures answer stale where a value exists. */
  async loadBatch(
    items: (BatchItem<P> & { stale: Entry | undefined })[],
    token: number,
    holders: Map<string, LockHolder>,
    settle: Settle<V>,
  ): Promise<void> {
    const ctx = this.#ctx
    const releaseLocks = (landed: (key: string) => Promise<StoreOutcome> | undefined) => {
      for (const [key, holder] of holders) {
        const written = landed(key)
        ctx.rt.background(
          written === undefined
            ? holder.release(false)
            : written.then((outcome) => holder.release(outcome === 'stored')),
        )
      }
    }
    const fail = (item: (typeof items)[number], error: unknown) => {
      if (item.stale !== undefined) {
        ctx.throttle.throttle(item.key)
        ctx.counters.staleFailSafe++
        settle.get(item.key)!.resolve(item.stale.value as V)
      } else {
        settle.get(item.key)!.reject(error)
      }
    }
    const startedAt = performance.now() // the hard timeout includes the wait for room at the source
    let release: (() => void) | 'stale'
    try {
      release = await this.#acquireSource(false)
    } catch (error) {
      releaseLocks(() => undefined)
      for (const item of items) fail(item, error)
      return
    }
    const keys = items.map((item) => item.key)
    const fences = this.#store.readFences(keys)
    let values: readonly V[]
    try {
      values = await this.#callLoadTimed(keys[0]!, startedAt, async (signal) => {
        // With write-behind, this process's queued writes answer first; the source is asked for the rest.
        const writeBehind = ctx.writeBehind
        const queued =
          writeBehind === undefined
            ? undefined
            : await Promise.all(keys.map((key) => writeBehind.pending(key)))
        const ask = items.filter((_, i) => queued?.[i] === undefined)
        const loaded =
          ask.length === 0
            ? []
            : await this.#invoke.callLoadMany(
                ask.map((item) => item.key),
                ask.map((item) => item.params),
                signal,
              )
        let next = 0
        return items.map((_, i) => (queued?.[i] !== undefined ? queued[i].value : (loaded[next++] as V)))
      })
    } catch (error) {
      releaseLocks(() => undefined)
      for (const item of items) fail(item, error)
      return
    } finally {
      if (release !== 'stale') release()
    }
    const tokens = (await fences) ?? []
    const written = new Map<string, Promise<StoreOutcome>>()
    items.forEach((item, i) => {
      written.set(item.key, this.#store.store(item.params, item.key, values[i] as V, token, tokens[i]))
    })
    releaseLocks((key) => written.get(key))
    await Promise.all(
      items.map(async (item, i) => {
        try {
          settle
            .get(item.key)!
            .resolve(await this.#answerLoaded(item.key, item.params, values[i] as V, written.get(item.key)!))
        } catch (error) {
          settle.get(item.key)!.reject(error)
        }
      }),
    )
  }
}
