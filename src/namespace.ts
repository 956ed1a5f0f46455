// A key family: its key schema and policies, and the read path L1 → L2 → single-flight → loader → L2 → L1.
// This file is the public surface: argument checks, tracing, the L1 hit (inline, it is the hot path), and
// delegation to the pieces listed in namespace/context.ts.
import type { Clock } from './core/clock.js'
import type { Entry } from './codecs/envelope.js'
import type { KeySchema } from './core/keys.js'
import type { NamespaceL1 } from './core/namespace-l1.js'
import type { IndexedNode } from './core/param-index.js'
import type { CacheRuntime } from './core/runtime.js'
import { CacheClosedError, InvalidArgumentError } from './errors.js'
import { channels, traces, type GetManyTraceContext, type GetTraceContext } from './observability/channels.js'
import type { SloReport } from './observability/slo.js'
import { LabeledCounters } from './observability/labels.js'
import type { AccessLog } from './observability/access-log.js'
import type { NamespaceOptions, ResolvedNamespaceOptions } from './options.js'
import type { GenerationTracker } from './coherence/generation.js'
import { Invalidator } from './coherence/invalidation.js'
import { Tags } from './coherence/tags.js'
import { LoadInvoker } from './load/invoke.js'
import { LoadPipeline } from './load/pipeline.js'
import { isArray, NamespaceContext, type NamespaceFunctions } from './namespace/context.js'
import { Policy, type PolicyPatch } from './namespace/policy.js'
import type { Counters, NamespaceStats, Recorder } from './namespace/recorder.js'
import { Reader } from './read/reader.js'
import { Refresher, type HotKey } from './refresh/refresher.js'
import {
  Warmer,
  type WarmOptions,
  type WarmProgress,
  type WarmResult,
  type WarmStartResult,
} from './refresh/warm.js'
import { EntryStore } from './storage/entry-store.js'
import { Writes } from './write/writes.js'
import type { RelayedInvalidation } from './regions/outbox-wire.js'

export type { NamespaceStats, HotKey, PolicyPatch, WarmOptions, WarmProgress, WarmResult, WarmStartResult }
export { isEntryKey } from './storage/entry-store.js'

/**
 * Checks a parameters object at compile time: every key must be declared (extra ones become `never`) and no
 * string literal may be empty. Missing and non-scalar parameters already fail `Q extends P`.
 *
 * What TypeScript then says: an extra (undeclared) parameter, or an empty string literal, reads "Type 'string' is
 * not assignable to type 'never'" on that property: remove it, or declare it in the key template or `dimensions`.
 */
export type CheckedParams<Q, P> = {
  [K in keyof Q]: K extends keyof P ? (Q[K] extends '' ? never : Q[K]) : never
}

/**
 * One key family. Made by `cache.namespace(name, options)`; `P` are its key parameters, `V` its value.
 *
 * @example
 * const product = await products.get({ tenantId: 't1', productId: 42, locale: 'en', currency: 'EUR' })
 */
/**
 * The back door to a namespace's declaration (its options as written, functions included), for `stratacache drill`,
 * which declares the same namespaces again on a cache of its own. A registered symbol: a cache made by another copy
 * of the library answers it too.
 */
export const DECLARATION = Symbol.for('stratacache.declaration')

/** The back door through which the cache's region relay applies another region's invalidation to a namespace. */
export const RELAYED = Symbol('stratacache.relayed')

/** `cache.invalidateTag()`'s way in: `invalidateTag` without the warning for a namespace that declares no tags. */
export const INVALIDATE_TAGS = Symbol('stratacache.invalidateTags')

export class Namespace<P, V> {
  readonly name: string
  /** `service:namespace:v{schemaVersion}:` — every key of this namespace starts with it. */
  readonly prefix: string
  // What the L1 hit path reads, in fields of its own so `#get` reaches it without a hop (the context's own objects).
  readonly #rt: CacheRuntime
  readonly #hitClock: Clock
  /** Whether the cache has regions (fixed at creation): then every L1 read goes through the region read gate. */
  readonly #gated: boolean
  readonly #keys: KeySchema
  readonly #l1: NamespaceL1 | undefined
  readonly #counters: Counters
  readonly #labeled: LabeledCounters<P> | undefined
  readonly #accessLog: AccessLog | undefined
  readonly #generation: GenerationTracker
  // The pieces.
  readonly #policy: Policy<P, V>
  readonly #recorder: Recorder<P, V>
  readonly #reader: Reader<P, V>
  readonly #refresher: Refresher<P, V>
  readonly #warmer: Warmer<P, V>
  readonly #writes: Writes<P, V>
  readonly #tags: Tags<P, V>
  readonly #invalidator: Invalidator<P, V>

  /** @internal Use `cache.namespace()`. */
  constructor(
    runtime: CacheRuntime,
    options: ResolvedNamespaceOptions,
    functions: NamespaceFunctions<P, V>,
    resolve?: (raw: NamespaceOptions<string, readonly string[], P, V>) => ResolvedNamespaceOptions,
  ) {
    this.#rt = runtime
    this.#hitClock = runtime.hitClock
    this.#gated = runtime.regions !== undefined
    this.name = options.name
    this.#policy = new Policy(
      runtime,
      options,
      functions as NamespaceOptions<string, readonly string[], P, V>,
      resolve,
    )
    const ctx = new NamespaceContext<P, V>(runtime, this.#policy, functions, () =>
      this.#invalidator.forgetEverything(),
    )
    this.#keys = ctx.keys
    this.prefix = ctx.prefix
    this.#generation = ctx.generation
    this.#l1 = ctx.l1
    this.#counters = ctx.counters
    this.#recorder = ctx.recorder
    // Each piece gets the context and the pieces it calls: storage ← load ← refresh ← read; tags ← invalidation ←
    // writes.
    this.#tags = new Tags(ctx)
    const store = new EntryStore(ctx, this.#tags)
    const pipeline = new LoadPipeline(ctx, store, new LoadInvoker(ctx))
    this.#refresher = new Refresher(ctx, store, pipeline)
    this.#warmer = new Warmer(ctx, store, pipeline)
    this.#reader = new Reader(ctx, store, pipeline, this.#refresher)
    this.#invalidator = new Invalidator(ctx, this.#tags)
    this.#writes = new Writes(ctx, store, this.#tags, this.#invalidator)
    // What starts work, in this order: the close and bus handlers, the generation's read (its GET goes first), the
    // write-behind queue (which refuses a cache without L2 before the access log arms its timer), the access log,
    // the labels (the objectives' first sample reads them), the objectives, the hot-keys timer.
    runtime.onClose(() => this.#invalidator.forgetEverything())
    runtime.onInvalidation(options.name, (invalidation, lagMs) => {
      if (lagMs !== undefined) ctx.latency.invalidation.observe(lagMs)
      this.#invalidator.receive(invalidation)
    })
    void this.#generation.read()
    ctx.writeBehind = this.#writes.startWriteBehind(functions)
    ctx.accessLog = this.#accessLog = this.#recorder.startAccessLog()
    ctx.labeled = this.#labeled =
      functions.labels === undefined ? undefined : new LabeledCounters(functions.labels, options.maxLabelSets)
    this.#recorder.startSlo()
    if (options.hotKeys !== false && this.#l1 !== undefined) {
      const timer = setInterval(() => this.#refresher.sweepHotKeys(), options.hotKeys.intervalMs).unref()
      runtime.onClose(() => clearInterval(timer))
    }
  }

  /** @internal The relay's way in (regions/region-relay.ts): another region's invalidation, applied here. */
  [RELAYED](relayed: RelayedInvalidation): Promise<void> {
    return this.#writes.applyRelayed(relayed)
  }

  /** @internal See `DECLARATION`. */
  get [DECLARATION](): NamespaceOptions<string, readonly string[], P, V> {
    return this.#policy.declared
  }

  /** The namespace's options, resolved: the declaration, or the policy `updatePolicy()` set since. */
  get options(): ResolvedNamespaceOptions {
    return this.#policy.options
  }

  /**
   * Changes this namespace's freshness and resilience policy at run time, without a restart: any of `ttl`,
   * `jitter`, `negativeTtl`, `staleFor`, `staleWhileRevalidate`, `failSafeThrottle`, `refreshAhead`, `timeouts`.
   * Checked like a declaration (the consistency class and classification rules apply). Entries cached from now on
   * follow it; entries already cached keep the times they were written with. It applies to this process only:
   * apply it in every process (from the same configuration source) to change the fleet. Returns the resolved
   * policy; `rollbackPolicy()` restores the one before.
   * @throws InvalidOptionError (or ClassificationError) naming the rule broken; the policy is then unchanged.
   */
  updatePolicy(patch: PolicyPatch): ResolvedNamespaceOptions {
    if (this.#rt.closed) throw new CacheClosedError('updatePolicy')
    return this.#policy.update(patch)
  }

  /** Restores the policy in force before the last `updatePolicy()`. Resolves to false when there is none. */
  rollbackPolicy(): boolean {
    return this.#policy.rollback()
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
   *
   * `params` holds exactly the key's parameters. A property TypeScript marks "not assignable to type 'never'" is
   * one the namespace does not declare (or an empty string literal): see `CheckedParams`.
   */
  get<const Q extends P>(params: Q & CheckedParams<Q, P>): Promise<V> {
    if (traces.get.hasSubscribers) {
      const context: GetTraceContext = { service: this.#rt.service, namespace: this.name, tier: undefined }
      return traces.get.tracePromise(() => this.#get(params, context), context)
    }
    return this.#get(params, undefined)
  }

  #get(params: P, trace: GetTraceContext | undefined): Promise<V> {
    if (this.#rt.closed) return Promise.reject(new CacheClosedError('get'))
    // The hot path: an L1 hit walks the index by the parameters' own texts and reads the clock; no key string is
    // built, nothing decoded, nothing allocated but the promise. It is kept this small so that V8 inlines what it
    // calls (measured: with the aging and region cases in this body, the sketch's increment stopped being inlined
    // and the hit cost ~6% more); every other case is `#l1Aging`'s or `#miss`'s.
    const l1 = this.#l1
    if (l1 !== undefined) {
      let node: IndexedNode<Entry> | undefined
      try {
        node = l1.find(params)
      } catch (error) {
        return rejected(error)
      }
      if (node !== undefined) {
        const now = this.#hitClock.now()
        if (node.refreshAt > now && node.expiresAt > now && !this.#gated) {
          return this.#hit(node, params, trace)
        }
        return this.#l1Aging(node, params, now, trace)
      }
    }
    return this.#miss(params, trace)
  }

  /** Serves an L1 node that is fresh and not due for refresh: counts the hit and answers its value. */
  #hit(node: IndexedNode<Entry>, params: P, trace: GetTraceContext | undefined): Promise<V> {
    this.#l1!.touch(node)
    this.#counters.l1Hits++
    node.hits++
    if (channels.hit.hasSubscribers) this.#publishHit(params, 'l1')
    if (this.#labeled !== undefined) this.#labeled.count(params, 'l1Hits')
    if (this.#accessLog !== undefined && this.#accessLog.samples(node.hash)) {
      this.#accessLog.record(node.key, 'l1', node.size, 1, node.hash)
    }
    if (trace !== undefined) trace.tier = 'l1'
    return Promise.resolve(node.value.value as V)
  }

  /**
   * An L1 node the common hit did not serve: expired (removed), refused by the region read gate
   * (regions/read-gate.ts: a peer region could have changed it), stale, or due for refresh-ahead.
   */
  #l1Aging(node: IndexedNode<Entry>, params: P, now: number, trace: GetTraceContext | undefined): Promise<V> {
    try {
      if (node.expiresAt > now && (!this.#gated || this.#reader.regionAllows(node.value.createdAt, now))) {
        if (node.refreshAt > now) return this.#hit(node, params, trace)
        const served = this.#reader.serveAging(node, params)
        if (served !== undefined) {
          if (trace !== undefined) trace.tier = 'l1'
          return served
        }
      } else {
        this.#l1!.remove(node)
      }
    } catch (error) {
      return rejected(error)
    }
    return this.#miss(params, trace)
  }

  /** Not in L1 (or not servable from it): L2, then the loader, joining any load of the key under way. */
  #miss(params: P, trace: GetTraceContext | undefined): Promise<V> {
    let key: string
    try {
      if (!this.#generation.known) return this.#reader.getAfterGeneration(params, trace)
      key = this.#keys.build(params)
    } catch (error) {
      return rejected(error)
    }
    return this.#reader.join(key, params, trace)
  }

  #publishHit(params: unknown, tier: 'l1' | 'l2'): void {
    this.#recorder.publishHit(params, tier)
  }

  /**
   * The hottest keys of this namespace, by a decaying count of L1 reads, as of the last tracking interval. Empty
   * unless `hotKeys` is declared (and L1 is on).
   */
  hotKeys(): readonly HotKey[] {
    return this.#refresher.hotKeys()
  }

  /**
   * Values for many parameter sets, in order. L1 misses are read from L2 in one round trip (MGET); what is still
   * missing is loaded with one `loadMany` call, or with `load` per key concurrently. Keys already loading join
   * their flight. Rejects with the first error if any key fails (the others are still cached).
   */
  getMany<const L extends readonly P[]>(
    list: L & NoInfer<{ readonly [I in keyof L]: CheckedParams<L[I], P> }>,
  ): Promise<V[]> {
    if (traces.getMany.hasSubscribers) {
      const context: GetManyTraceContext = {
        service: this.#rt.service,
        namespace: this.name,
        keys: isArray(list) ? list.length : 0,
      }
      return traces.getMany.tracePromise(() => this.#getMany(list), context)
    }
    return this.#getMany(list)
  }

  #getMany(list: readonly P[]): Promise<V[]> {
    if (this.#rt.closed) return Promise.reject(new CacheClosedError('getMany'))
    if (!isArray(list)) {
      return Promise.reject(new InvalidArgumentError('list', list, 'an array of key parameter objects'))
    }
    return this.#reader.getMany(list)
  }

  /**
   * Loads a set of keys before traffic needs them (after a deploy, before a campaign): each key fresh in L1 or L2
   * already is left alone (copied from L2 into L1), the others are loaded through the namespace's lock, source
   * limit and timeouts, `concurrency` at a time and at most `maxPerSecond` started per second. A key that fails
   * is counted and the job goes on. Resolves to the counts (`loaded`, `fresh`, `failed`), the duration and the
   * first errors.
   * @example const result = await products.warm(topSellers.map((id) => ({ productId: id })), { maxPerSecond: 50 })
   * @throws InvalidArgumentError (or UnknownOptionError) for keys that are not iterable or a bad option.
   */
  warm(keys: Iterable<P> | AsyncIterable<P>, options?: WarmOptions): Promise<WarmResult> {
    if (this.#rt.closed) return Promise.reject(new CacheClosedError('warm'))
    return this.#warmer.warm(keys, options)
  }

  /**
   * Saves the parameters of this namespace's `max` hottest L1 entries in L2, for the next process to start warm
   * (`warmStart()`); `cache.close({ saveHotKeys: true })` does it for every namespace. Resolves to how many were
   * saved: none in a personal or secret namespace, whose key parameters would sit in Redis in clear.
   */
  saveHotKeys(max?: number): Promise<number> {
    if (this.#rt.closed) return Promise.reject(new CacheClosedError('saveHotKeys'))
    if (max !== undefined && !(Number.isInteger(max) && max > 0)) {
      return Promise.reject(new InvalidArgumentError('max', max, 'a positive integer number of keys'))
    }
    return this.#warmer.saveHotKeys(max)
  }

  /**
   * Copies into L1 the entries, still fresh in L2, of the hot keys the last process saved (`saveHotKeys`), so this
   * one starts warm; the loader is not called. `cache.warmStart()` does it for every namespace. Takes every saved
   * key, as many as L1 holds, or the first `max` of them (the hottest first).
   */
  warmStart(max?: number): Promise<WarmStartResult> {
    if (this.#rt.closed) return Promise.reject(new CacheClosedError('warmStart'))
    if (max !== undefined && !(Number.isInteger(max) && max > 0)) {
      return Promise.reject(new InvalidArgumentError('max', max, 'a positive integer number of keys'))
    }
    return this.#warmer.warmStart(max)
  }

  /**
   * The fresh cached value for `params` from L1 or L2 without loading; undefined when neither holds a fresh one, or
   * when the region read gate refuses it as `get()` would (during a region split: strong namespaces, bounded ones
   * past `maxStaleness`; docs/consistency.md, "Regions").
   */
  peek<const Q extends P>(params: Q & CheckedParams<Q, P>): Promise<V | undefined> {
    if (this.#rt.closed) return Promise.reject(new CacheClosedError('peek'))
    return this.#reader.peek(params)
  }

  /**
   * Stores `value` for `params` in L1 and L2 (with the namespace's TTL and jitter), replacing what was there.
   * A load of the same key already under way is still answered to its callers but no longer cached.
   * @throws SerializationError when the serializer cannot represent the value (nothing is stored).
   * @throws L2 errors (ERR_STRATA_L2_*) when L2 could not take the write: this process's L1 copy is dropped (L2
   * may still hold the old value for the other processes), and the key is invalidated again in L2 and in every
   * process once Redis answers (`stats().repairsPending`).
   */
  set<const Q extends P>(params: Q & CheckedParams<Q, P>, value: V): Promise<void> {
    // Checks that the cache is open itself: write() reaches it too, after the source write.
    return this.#writes.set(params, value)
  }

  /**
   * Writes `value` to the source with the namespace's `write` function, then updates the cache by the namespace's
   * `writeStrategy`: write-through stores it in L2 and L1, cache-aside deletes it; either way the other processes
   * are told to drop their L1 copies before this resolves, and a load that started before the write cannot store its
   * older value afterwards (a version in L2, checked atomically). With `consistency: 'strong'`, every process reads
   * the new value once this resolves.
   *
   * With write-behind it resolves once the write is queued in Redis (durable there) and the cache holds the new
   * value; the source gets it later from a flusher (`flushWrites()` to flush now). Until then this process's reads
   * answer with the queued value rather than load the older one from the source.
   * @throws WriteError when the source write fails (the cache is unchanged); L2 errors (ERR_STRATA_L2_*) when the
   * source took the value but L2 could not be updated (this process's L1 copy is dropped, and the key is
   * invalidated again everywhere once Redis answers: `stats().repairsPending`), or, with write-behind,
   * when the write could not be queued (nothing was queued); WriteQueueFullError (with write-behind) when the queue
   * holds `writeBehind.maxQueued` writes (nothing was queued); SerializationError for a value the serializer refuses.
   */
  write<const Q extends P>(params: Q & CheckedParams<Q, P>, value: V): Promise<void> {
    if (this.#rt.closed) return Promise.reject(new CacheClosedError('write'))
    return this.#writes.write(params, value)
  }

  /**
   * Write-behind: flushes now, from this process, every queued write it can take (those of other processes
   * included), and resolves when none is left to flush here (writes waiting for a retry delay stay queued).
   * Resolves even when the source or Redis fails. Without write-behind, resolves at once.
   */
  flushWrites(): Promise<void> {
    if (this.#rt.closed) return Promise.reject(new CacheClosedError('flushWrites'))
    return this.#writes.flushWrites()
  }

  /**
   * Write-behind: the queue's size in Redis: writes in the stream (`queued`, including those being flushed), those
   * handed to a flusher and not yet acknowledged (`inFlight`), and dead letters (`deadLetters`, in the stream named
   * `deadLetterStream`).
   * @throws L2 errors (ERR_STRATA_L2_*) when Redis cannot be asked.
   */
  writeQueue(): Promise<{
    queued: number
    inFlight: number
    deadLetters: number
    deadLetterStream: string
  }> {
    if (this.#rt.closed) return Promise.reject(new CacheClosedError('writeQueue'))
    return this.#writes.writeQueue()
  }

  /**
   * Removes the entry for `params` from L1 and L2.
   * @throws L2 errors (ERR_STRATA_L2_*) when L2 could not be reached; L1 is already cleared, and the key is
   * invalidated again in L2 and in every process once Redis answers (`stats().repairsPending`).
   */
  delete<const Q extends P>(params: Q & CheckedParams<Q, P>): Promise<void> {
    // Checks that the cache is open itself, as set does: cache-aside write() reaches it too.
    return this.#writes.delete(params)
  }

  /**
   * Removes every entry of this namespace (this schema version) from L1 and L2, scanning L2 incrementally.
   * Resolves to the number of L2 keys deleted.
   * @throws L2 errors (ERR_STRATA_L2_*) when L2 could not be reached; L1 is already cleared.
   */
  clear(): Promise<number> {
    if (this.#rt.closed) return Promise.reject(new CacheClosedError('clear'))
    return this.#writes.clear()
  }

  /**
   * Drops every entry tagged with one of `tags`: from L1 here, from L2 (each tag's set of keys, renamed then
   * scanned and unlinked in bounded steps: the cost grows with the tagged entries, not with all keys), and from the
   * other processes' L1 through the bus. Resolves to the number of L2 entries deleted.
   * @throws L2 errors (ERR_STRATA_L2_*) when L2 could not be reached; L1 is already cleared.
   */
  invalidateTag(...tags: string[]): Promise<number> {
    if (!this.#rt.closed) this.#tags.warnIfTagless(tags)
    return this[INVALIDATE_TAGS](tags)
  }

  /** @internal See `INVALIDATE_TAGS`. */
  [INVALIDATE_TAGS](tags: string[]): Promise<number> {
    if (this.#rt.closed) return Promise.reject(new CacheClosedError('invalidateTag'))
    return this.#tags.invalidate(tags)
  }

  /**
   * Invalidates every entry of this namespace at once, lazily: bumps the namespace's generation in Redis (one INCR),
   * so every process builds keys of the new generation from now on and entries of older ones are never read again;
   * they expire by their TTL. Costs the same whatever the number of keys (`clear()` deletes them, scanning). Every
   * process drops its L1 copies: this one before resolving, the others when the bus tells them (a process that
   * missed the message reads the generation again when its bus reconnects).
   * @throws L2 errors (ERR_STRATA_L2_*) when Redis could not be reached; this process's L1 is already cleared.
   */
  invalidateAll(): Promise<void> {
    if (this.#rt.closed) return Promise.reject(new CacheClosedError('invalidateAll'))
    return this.#invalidator.invalidateAll()
  }

  /** The namespace's generation as this process knows it (0 until the first `invalidateAll()`). */
  get generation(): number {
    return this.#keys.generation
  }

  /**
   * Compliance with this namespace's objectives (`slo`) over their window; undefined without objectives. A change of
   * verdict (breach or recovery) is published on the `stratacache:slo` channel and logged.
   */
  slo(): SloReport | undefined {
    return this.#recorder.slo()
  }

  /** A frozen snapshot of this namespace's counters. */
  stats(): NamespaceStats {
    return this.#recorder.stats()
  }
}

/** A rejected promise with `error` as an Error (what the read path throws synchronously becomes a rejection). */
function rejected(error: unknown): Promise<never> {
  return Promise.reject(error instanceof Error ? error : new Error(String(error)))
}
