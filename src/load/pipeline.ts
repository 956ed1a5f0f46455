// load/: what happens when the source is called. A miss (from get, getMany or a refresh) goes through these steps:
//   coordinate (the cross-process lock, or wait for the process holding it) → admit (the source limit) → take the
//   L2 fence → invoke the loader under its timeouts (invoke.ts) → store, fenced (storage/) → release the lock.
//   One function runs the steps from admission on for one key and for a batch alike (`#loadItems`): `get` and a
//   refresh call it with one key and `load`, `getMany` with its missing keys and one `loadMany`.
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
import { callWithin, type CallSignal } from '../core/bounded-call.js'
import { LoaderTimeoutError, NoLoaderError, SourceBusyError } from '../errors.js'
import { isHeld, type LockHolder } from '../policies/cross-process-lock.js'
import type { Flight } from '../read/flights.js'
import type { EntryStore, Stored, StoreOutcome } from '../storage/entry-store.js'
import type { L2Fence } from '../tiers/l2-store.js'
import { regionAllows } from '../regions/read-gate.js'
import type { NamespaceContext } from '../namespace/context.js'
import type { LoadInvoker, LoadLifetime } from './invoke.js'

/** A key of a `getMany` that missed L1: its parameters and the stale L1 entry, if any, for a fail-safe. */
export interface BatchItem<P> {
  readonly key: string
  readonly params: P
  readonly stale: Entry | undefined
}

/** The flight a load answers: its fence token, and where a continuation past the soft timeout is kept. */
export type LoadFlight = Pick<Flight<unknown>, 'token'> &
  Partial<Pick<Flight<unknown>, 'continuation' | 'answersUntil'>>

/** One key's load: its parameters, the stale entry a fail-safe may answer, its flight, and the lock it holds. */
export interface LoadItem<P> {
  readonly key: string
  readonly params: P
  readonly stale: Entry | undefined
  readonly flight: LoadFlight
  readonly holder: LockHolder | undefined
  /** Handed the fenced store of the loaded value, for a caller that must know whether it landed in L2 (warm-up). */
  readonly onStore?: ((written: Promise<StoreOutcome>) => void) | undefined
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
  async loadCoordinated(
    key: string,
    params: P,
    flight: Flight<V>,
    stale: Entry | undefined,
    onStore?: LoadItem<P>['onStore'],
  ): Promise<V> {
    const lock = this.#ctx.generation.known ? this.#ctx.lock : undefined
    let holder: LockHolder | undefined
    // With regions during a split, a value found in L2 while waiting is adopted only if it landed after this read
    // began (another process loaded it meanwhile) or the read gate allows it: else it is the copy the gate refused.
    const since = this.#ctx.clock.now()
    const usable = (stored: Stored | undefined): stored is Stored =>
      stored !== undefined &&
      (this.#ctx.rt.regions === undefined ||
        stored.entry.createdAt >= since ||
        regionAllows(this.#ctx, stored.entry.createdAt, this.#ctx.clock.now()))
    if (lock !== undefined) {
      // Monotonic: a wall-clock step must not stretch or cut the wait.
      const deadline = performance.now() + lock.options.waitMs
      let waited = false
      for (;;) {
        // Registered before the attempt: a release announced after the attempt is heard, and one before it lets
        // the attempt win. (Registered after a failed attempt, a release in between would go unheard: the waiter
        // would sleep until the lock's TTL.)
        const watch = await lock.watch(key)
        const acquired = await lock.acquire(key)
        if (acquired === 'unavailable') {
          watch?.cancel()
          break
        }
        if (!isHeld(acquired)) {
          watch?.cancel()
          // Won after waiting: the holder may have stored its value and unlocked between our last read and this
          // attempt (its announcement then wakes no one: we were reading, not waiting). Read once more, and hand
          // the lock back (in the background: the callers need not wait for it) rather than load a key whose value
          // just landed.
          if (waited) {
            const landed = await this.#store.readL2Fresh(key)
            if (usable(landed)) {
              this.#ctx.rt.background(acquired.release())
              return this.#adopt(params, key, flight.token, landed)
            }
          }
          holder = acquired
          break
        }
        if (!waited) this.#ctx.counters.lockWaits++
        waited = true
        // The value may have landed before the attempt (then the lock is free or held by a newer load).
        const landed = await this.#store.readL2Fresh(key)
        if (usable(landed)) {
          watch?.cancel()
          return this.#adopt(params, key, flight.token, landed)
        }
        const remaining = deadline - performance.now()
        if (watch === undefined || remaining <= 0) {
          watch?.cancel()
          break
        }
        // Sleep until the key is announced (its value landed, or its holder gave up), the holder's lock would have
        // expired (a dead holder, or one that extended it: we then find it held again), or our pub/sub connection
        // was lost or came back (an announcement may have been lost: the lock wakes every waiter). No polling
        // while we can hear.
        await watch.wait(lock.sleepFor(acquired.heldMs, remaining))
        const after = await this.#store.readL2Fresh(key)
        if (usable(after)) return this.#adopt(params, key, flight.token, after)
      }
    }
    return this.loadAndStore(key, params, flight, stale, holder, onStore)
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
   * The load pipeline of one key (`get`'s miss, a refresh): `#loadItems` for a batch of one, with `load` (or
   * `loadMany` of one key). Resolves to the value the caller gets.
   */
  loadAndStore(
    key: string,
    params: P,
    flight: LoadFlight,
    stale: Entry | undefined,
    holder: LockHolder | undefined,
    onStore?: LoadItem<P>['onStore'],
  ): Promise<V> {
    const item: LoadItem<P> = { key, params, stale, flight, holder, onStore }
    return this.#loadItems([item], async (callSignal, lifetime) => [
      await this.#loadOne(key, params, callSignal, lifetime),
    ])[0]!
  }

  /**
   * The load pipeline of a `getMany`'s missing keys that no other process is loading: `#loadItems` with one
   * `loadMany` call for them all (with write-behind, this process's queued writes answer first). Settles each key's
   * promise through `settle`; resolves once all are settled.
   */
  async loadBatch(items: LoadItem<P>[], settle: Settle<V>): Promise<void> {
    const ctx = this.#ctx
    const keys = items.map((item) => item.key)
    const answers = this.#loadItems(items, async (callSignal, lifetime) => {
      const writeBehind = ctx.writeBehind
      const queued =
        writeBehind === undefined ? undefined : await Promise.all(keys.map((key) => writeBehind.pending(key)))
      const ask = items.filter((_, i) => queued?.[i] === undefined)
      const loaded =
        ask.length === 0
          ? []
          : await this.#invoke.callLoadMany(
              ask.map((item) => item.key),
              ask.map((item) => item.params),
              callSignal,
              lifetime,
            )
      let next = 0
      return items.map((_, i) => (queued?.[i] !== undefined ? queued[i].value : (loaded[next++] as V)))
    })
    await Promise.all(
      answers.map((answer, i) => answer.then(settle.get(keys[i]!)!.resolve, settle.get(keys[i]!)!.reject)),
    )
  }

  /**
   * The one load pipeline, for one key or a batch: room at the source (the hard timeout runs from here), the L2
   * fences, one loader call (`call`, answering a value per item in order) under the hard timeout, then per item the
   * fenced store, the lock's release once the store settled, and the answer (`#answerLoaded`). With a stale
   * fallback, an item answers stale at the soft timeout while its load goes on, or when the load fails (its key
   * then throttled). One promise per item, in order; each settles on its own.
   */
  #loadItems(
    items: LoadItem<P>[],
    call: (callSignal: CallSignal, lifetime: LoadLifetime) => Promise<readonly V[]>,
  ): Promise<V>[] {
    const ctx = this.#ctx
    const startedAt = performance.now()
    const keys = items.map((item) => item.key)
    const admitted = this.#acquireSource(items.every((item) => item.stale !== undefined))
    // The fences are read while the load waits for room, and answered before the loader runs: a fence read that
    // reached Redis after the loader read the source could miss a write made in between (coherence/fence.ts).
    const fences = this.#store.readFences(keys)
    type Loaded =
      'stale' | { values: readonly V[]; fences: (L2Fence | undefined)[] | undefined; lifetime: LoadLifetime }
    const loaded = admitted.then((release): Loaded | Promise<Loaded> => {
      if (release === 'stale') return 'stale'
      const lifetime: LoadLifetime = {}
      return this.#callLoadTimed(keys[0]!, startedAt, async (callSignal) => {
        const read = await fences
        const values = await call(callSignal, lifetime)
        return { values, fences: read, lifetime }
      }).finally(release)
    })
    return items.map((item, i) => {
      const stored = loaded.then(
        async (outcome) => {
          if (outcome === 'stale') {
            await item.holder?.release()
            return { stale: item.stale!.value as V }
          }
          const value = outcome.values[i] as V
          const fence = outcome.fences?.[i]
          const { lifetime } = outcome
          const written = this.#store.store(item.params, item.key, value, item.flight.token, fence, lifetime)
          item.onStore?.(written)
          // The callers have their value now; waiters in other processes are told once it is in L2.
          const holder = item.holder
          if (holder !== undefined) ctx.rt.background(written.then(() => holder.release()))
          return { value: await this.#answerLoaded(item.key, item.params, value, written, item.onStore) }
        },
        async (error: unknown) => {
          await item.holder?.release()
          throw error
        },
      )
      return this.#answerWithFallback(item, stored)
    })
  }

  /** An item's answer: its loaded value; or, with a stale entry, stale at the soft timeout or on failure. */
  async #answerWithFallback(item: LoadItem<P>, stored: Promise<{ value: V } | { stale: V }>): Promise<V> {
    const ctx = this.#ctx
    const { key, stale, flight } = item
    if (stale === undefined)
      return stored.then((outcome) => ('value' in outcome ? outcome.value : outcome.stale))
    const soft = ctx.options.softTimeoutMs
    let timer: ReturnType<typeof setTimeout> | undefined
    const outcome = await Promise.race([
      stored.then(
        (answer) => answer,
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
    if ('stale' in outcome) return outcome.stale
    ctx.throttle.throttle(key)
    ctx.counters.staleFailSafe++
    return stale.value as V
  }

  /**
   * What a load's callers get. Eventual: the loaded value. Strong and bounded: a caller may have joined after
   * another process's write was acknowledged; if the fenced store was refused, that write won, so its newer value
   * is read from L2, or, when it deleted the entry (cache-aside), loaded again.
   */
  async #answerLoaded(
    key: string,
    params: P,
    value: V,
    written: Promise<StoreOutcome>,
    onStore: LoadItem<P>['onStore'],
  ): Promise<V> {
    if (this.#ctx.options.consistency === 'eventual' || (await written) !== 'refused') return value
    const newer = await this.#store.readL2Fresh(key)
    if (newer !== undefined) return this.#adopt(params, key, this.#ctx.fence.open(), newer)
    if (this.#ctx.options.consistency !== 'strong') return value
    // Once, not in a loop: a second refusal means writes keep coming, and this value is as new as any.
    const token = this.#ctx.fence.open()
    const [fence] = (await this.#store.readFences([key])) ?? []
    const lifetime: LoadLifetime = {}
    const reloaded = await this.#callLoadTimed(key, performance.now(), (callSignal) =>
      this.#loadOne(key, params, callSignal, lifetime),
    )
    const rewritten = this.#store.store(params, key, reloaded, token, fence, lifetime)
    onStore?.(rewritten)
    await rewritten
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
   * A loader call under the hard timeout, through the one bounded call (`callWithin`): past what is left of it, the
   * call's signal aborts (as when the cache closes) and the call rejects with LoaderTimeoutError. The deadline keeps
   * the process alive, as the load awaited on it does; the signal is made only for a loader that reads it.
   */
  async #callLoadTimed<T>(
    key: string,
    startedAt: number,
    call: (callSignal: CallSignal) => Promise<T>,
  ): Promise<T> {
    const { name, options, counters, rt } = this.#ctx
    const hard = options.hardTimeoutMs
    // What is left of the hard timeout after the wait for the source (at least 1 ms: the call is made).
    const left = Math.max(1, hard - (performance.now() - startedAt))
    const outcome = await callWithin(call, rt.signal, left, () => new LoaderTimeoutError(name, key, hard), {
      keepAlive: true,
    })
    if (outcome.ok) return outcome.value
    if (outcome.timedOut) counters.loadTimeouts++
    throw outcome.error
  }

  #loadOne(key: string, params: P, callSignal: CallSignal, lifetime: LoadLifetime): Promise<V> {
    const { writeBehind, load, loadMany } = this.#ctx
    if (writeBehind !== undefined) return this.#loadOneAfterQueue(key, params, callSignal, lifetime)
    if (load !== undefined) return this.#invoke.callLoad(key, params, load, callSignal, lifetime)
    if (loadMany === undefined) return Promise.reject(new NoLoaderError(this.#ctx.name, key))
    return this.#invoke.callLoadMany([key], [params], callSignal, lifetime).then(([value]) => value as V)
  }

  /** With write-behind: this process's own queued write of `key` answers before the source is asked. */
  async #loadOneAfterQueue(
    key: string,
    params: P,
    callSignal: CallSignal,
    lifetime: LoadLifetime,
  ): Promise<V> {
    const queued = await this.#ctx.writeBehind!.pending(key)
    if (queued !== undefined) return queued.value
    const { load, loadMany } = this.#ctx
    if (load !== undefined) return this.#invoke.callLoad(key, params, load, callSignal, lifetime)
    if (loadMany === undefined) throw new NoLoaderError(this.#ctx.name, key)
    const [value] = await this.#invoke.callLoadMany([key], [params], callSignal, lifetime)
    return value as V
  }
}
