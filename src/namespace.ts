// A key family: its key schema and policies, and the read path L1 → L2 → single-flight → loader → L2 → L1.
import type { Entry } from './codecs/envelope.js'
import { ValueCodec } from './codecs/value-codec.js'
import { randomBytes } from 'node:crypto'
import { escapeKeyText, KeySchema } from './core/keys.js'
import type { CacheRuntime } from './core/runtime.js'
import {
  CacheClosedError,
  DecodeError,
  InvalidArgumentError,
  LoaderError,
  LoaderTimeoutError,
  LoadManyResultError,
  NoLoaderError,
  InvalidOptionError,
  NoWriterError,
  SerializationError,
  SourceBusyError,
  UntrustedValueError,
  ValueTooLargeError,
  WriteError,
} from './errors.js'
import { channels, traces, type GetTraceContext } from './observability/channels.js'
import { Histogram, type HistogramSnapshot } from './observability/histogram.js'
import { SloTracker, type SloReport } from './observability/slo.js'
import { LabeledCounters, type LabeledReads } from './observability/labels.js'
import { AccessLog } from './observability/access-log.js'
import type { LoadContext, NamespaceOptions, ResolvedNamespaceOptions } from './options.js'
import type { WriteContext } from './write/write-behind.js'
import type { Invalidation } from './bus/wire.js'
import type { L2Write } from './tiers/l2-store.js'
import type { IndexedNode } from './core/param-index.js'
import { NamespaceL1 } from './core/namespace-l1.js'
import { CrossProcessLock, type LockHolder } from './policies/cross-process-lock.js'
import type { L2Guard } from './policies/l2-guard.js'
import { SourceLimiter } from './policies/source-limiter.js'
import { WriteBehindQueue } from './write/write-behind.js'

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
  /** Values over `maxValueBytes`: served and kept in L1, not written to L2 (`set` rejects them). */
  readonly oversized: number
  /**
   * L2 values refused as untrusted (tampered, copied from another key, unknown key id, or plaintext in a namespace
   * that encrypts), each read as a miss and published on `stratacache:security`.
   */
  readonly untrustedValues: number
  /** Stale values served, by reason. Each is also counted as a hit of its tier. */
  readonly staleServed: {
    /** Stale-while-revalidate: answered at once, refreshed in the background. */
    readonly swr: number
    /** The loader failed or hit its hard timeout (or was throttled after failing), and the stale value answered. */
    readonly failSafe: number
    /** The loader passed its soft timeout; the stale value answered while the load went on. */
    readonly softTimeout: number
    /**
     * An L1 entry kept through an invalidation-bus outage (it may have missed an invalidation) answered while it
     * was revalidated in the background. Not counted in `swr`.
     */
    readonly busOutage: number
  }
  /** Background refreshes started (stale-while-revalidate, refresh-ahead, hot keys). */
  readonly refreshes: number
  /** Loads that hit their hard timeout. */
  readonly loadTimeouts: number
  /** Times this process found another process loading the key and waited for its value. */
  readonly lockWaits: number
  /** Loaded values not stored because a write of the same entry happened while they loaded (they were older). */
  readonly staleLoadsDropped: number
  /** Loads the source limit refused (`overflow: 'error'`, or a wait past `source.maxWait`) or answered stale. */
  readonly sourceBusy: number
  /** Loads started in the last second: the source's QPS from this process. */
  readonly loadsPerSecond: number
  /** Write-behind: writes this process queued. */
  readonly writesQueued: number
  /** Write-behind: queued writes (from any process) this process's flusher wrote to the source and acknowledged. */
  readonly writesFlushed: number
  /** Write-behind: failed flush attempts of one write, each retried after a delay. */
  readonly writeRetries: number
  /** Write-behind: writes moved to the dead-letter stream (failed `maxAttempts` times, or did not decode). */
  readonly writesDeadLettered: number
  /** Write-behind: writes taken over from another process's flusher that stopped acknowledging. */
  readonly writesClaimed: number
  /** Latency histograms in ms (buckets in `bucketsMs`, counts per bucket, not cumulative). */
  readonly latencyMs: {
    /** Loader calls (`load`, or one `loadMany` batch), failed ones included. */
    readonly load: HistogramSnapshot
    /** `get`s answered from L2 (L1 missed). */
    readonly l2Hit: HistogramSnapshot
    /** `get`s no tier could answer: the loader's time plus the tiers' (and any wait for another process). */
    readonly miss: HistogramSnapshot
    /**
     * Every `get`: the above, plus L1 hits counted in the first bucket without being timed (`getMany` is not
     * timed). The read latency objective (`slo.readP99`) is checked on it.
     */
    readonly read: HistogramSnapshot
  }
  /** What a miss costs a reader over a hit, on average: mean miss latency minus mean hit latency (L1 and L2), ms. */
  readonly missPenaltyMs: number
  /** With `labels`: reads per label set (at most `maxLabelSets`, then `_other`); empty without. */
  readonly byLabels: readonly LabeledReads[]
}

type Counters = {
  -readonly [
    K in Exclude<
      keyof NamespaceStats,
      'hitRatio' | 'staleServed' | 'loadsPerSecond' | 'latencyMs' | 'missPenaltyMs' | 'byLabels'
    >
  ]: number
} & { staleSwr: number; staleFailSafe: number; staleSoftTimeout: number; staleBusOutage: number }

/** One of the hottest keys, as `ns.hotKeys()` reports it. */
export interface HotKey {
  readonly key: string
  /** Reads in the last tracking interval, plus half of the interval before, and so on (a decaying count). */
  readonly score: number
}

/** An in-process load (or batch member) under way for one key. Writes that race it mark it cancelled. */
interface Flight<V> {
  promise: Promise<V>
  /** Set by set/delete/clear while the load runs: its result is returned to its callers but not cached. */
  cancelled: boolean
  /**
   * A load still running after the flight already answered (with a stale value, at the soft timeout). The flight
   * stays registered until it settles, so later readers get the stale answer instead of starting another load.
   */
  continuation?: Promise<unknown>
  /** Readers waiting on it: the one who started it and those who joined. */
  callers: number
  /** Neither tier had a usable value: it went to the loader (or a fail-safe fallback). */
  missed: boolean
  /** performance.now() when it started. */
  started: number
}

const NO_TAGS: readonly string[] = Object.freeze([])

/** What `updatePolicy()` may change at run time. */
const POLICY_OPTIONS = new Set([
  'ttl',
  'jitter',
  'negativeTtl',
  'staleFor',
  'staleWhileRevalidate',
  'failSafeThrottle',
  'refreshAhead',
  'timeouts',
])

/** A change of freshness and resilience policy, for `ns.updatePolicy()`. */
export type PolicyPatch = Partial<
  Pick<
    NamespaceOptions<string, readonly string[], never, never>,
    | 'ttl'
    | 'jitter'
    | 'negativeTtl'
    | 'staleFor'
    | 'staleWhileRevalidate'
    | 'failSafeThrottle'
    | 'refreshAhead'
    | 'timeouts'
  >
>
const NO_LABELS: readonly LabeledReads[] = Object.freeze([])

/** Longest a lock waiter sleeps before reading L2 again, in case the announcement it waits for was lost. */
const LOCK_RECHECK_MS = 250

/** What writes look at: whether a set, delete or clear raced the work. */
type Cancellable = Pick<Flight<unknown>, 'cancelled' | 'continuation'>

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
  #options: ResolvedNamespaceOptions
  /** The options as declared, and how to resolve them again (for `updatePolicy`). */
  readonly #declared: NamespaceOptions<string, readonly string[], P, V>
  readonly #resolve:
    ((raw: NamespaceOptions<string, readonly string[], P, V>) => ResolvedNamespaceOptions) | undefined
  /** Earlier policies, for `rollbackPolicy()`: declared options and their resolution. */
  readonly #previous: {
    declared: NamespaceOptions<string, readonly string[], P, V>
    resolved: ResolvedNamespaceOptions
  }[] = []
  #current: NamespaceOptions<string, readonly string[], P, V>
  /** `service:namespace:v{schemaVersion}:` — every key of this namespace starts with it. */
  readonly prefix: string
  readonly #rt: CacheRuntime
  readonly #clock: CacheRuntime['clock']
  readonly #hitClock: CacheRuntime['clock']
  readonly #keys: KeySchema
  /** This namespace's L1 entries on the cache's shared list, or undefined when this namespace skips L1. */
  readonly #l1: NamespaceL1 | undefined
  readonly #tags: ((params: P, value: V) => readonly string[]) | undefined
  readonly #write: ((params: P, value: V, context: WriteContext) => unknown) | undefined
  /** The durable queue of `write()`s with write-behind. */
  readonly #writeBehind: WriteBehindQueue<P, V> | undefined
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
    oversized: 0,
    untrustedValues: 0,
    staleSwr: 0,
    staleBusOutage: 0,
    staleFailSafe: 0,
    staleSoftTimeout: 0,
    refreshes: 0,
    loadTimeouts: 0,
    lockWaits: 0,
    sourceBusy: 0,
    staleLoadsDropped: 0,
    writesQueued: 0,
    writesFlushed: 0,
    writeRetries: 0,
    writesDeadLettered: 0,
    writesClaimed: 0,
  }
  readonly #source: SourceLimiter
  /** The sampled access log; undefined without `accessLog`. */
  readonly #accessLog: AccessLog | undefined
  /** Reads per label set; undefined without `labels`. */
  readonly #labeled: LabeledCounters<P> | undefined
  /** Samples this namespace's counters for its objectives; undefined without `slo`. */
  readonly #slo: SloTracker | undefined
  /** Latency of loader calls, and of reads past L1 by outcome (L1 hits are not timed: they cost well under 50 µs). */
  readonly #latency = { load: new Histogram(), l2Hit: new Histogram(), miss: new Histogram() }
  /** Background refreshes under way, by full key (never joined by readers: they are served the stale value). */
  readonly #refreshing = new Map<string, Flight<V | undefined>>()
  /** Fail-safe throttle: keys whose loader failed, and until when it is not called again. */
  readonly #throttled = new Map<string, number>()
  readonly #lock: CrossProcessLock | undefined
  /** Redaction, serialization, compression, encryption and the envelope, for L2. */
  readonly #codec: ValueCodec
  #hotKeys: readonly HotKey[] = []
  /**
   * Whether this process knows the namespace's generation (`invalidateAll()` bumps it; keys depend on it). Until it
   * does, reads skip L2 (they would read keys of a generation that may be over) and writes to L2 wait for it.
   */
  #generationKnown: boolean
  /** The read of the generation under way: resolves to its L2 error, or undefined once known. */
  #generationLoad: Promise<unknown> | undefined
  /** `service:namespace:vN#gen`: outside the namespace's key prefix, so `clear()` leaves it. */
  readonly #generationKey: string

  /** @internal Use `cache.namespace()`. */
  constructor(
    runtime: CacheRuntime,
    options: ResolvedNamespaceOptions,
    functions: Pick<
      NamespaceOptions<string, readonly string[], P, V>,
      'load' | 'loadMany' | 'tags' | 'write' | 'writeMany' | 'labels'
    >,
    resolve?: (raw: NamespaceOptions<string, readonly string[], P, V>) => ResolvedNamespaceOptions,
  ) {
    this.#rt = runtime
    this.#clock = runtime.clock
    this.#hitClock = runtime.hitClock
    this.name = options.name
    this.#options = options
    this.#declared = functions as NamespaceOptions<string, readonly string[], P, V>
    this.#current = this.#declared
    this.#resolve = resolve
    this.#keys = new KeySchema({
      service: runtime.service,
      namespace: options.name,
      schemaVersion: options.schemaVersion,
      template: options.key,
      dimensions: options.dimensions,
      maxKeyLength: runtime.maxKeyLength,
    })
    this.prefix = this.#keys.prefix
    this.#generationKey = `${this.prefix.slice(0, -1)}#gen`
    this.#generationKnown = runtime.l2 === undefined
    this.#l1 =
      options.l1TtlMs > 0 && runtime.l1 !== undefined ? new NamespaceL1(runtime.l1, this.#keys) : undefined
    this.#codec = new ValueCodec(runtime.serializer, options.schemaVersion, options.codec)
    // Redact loaded values at the source, so L1, L2 and the caller of a miss all see the same redacted shape.
    const { load, loadMany } = functions
    const codec = this.#codec
    this.#load =
      load === undefined || options.codec.redactor === undefined
        ? load
        : async (params, context) => codec.redact(await load(params, context))
    this.#loadMany =
      loadMany === undefined || options.codec.redactor === undefined
        ? loadMany
        : async (params, context) => {
            const values = await loadMany(params, context)
            // A malformed result is reported as such (LoadManyResultError) by the caller, not redacted.
            return isArray(values) ? values.map((value) => codec.redact(value)) : values
          }
    this.#tags = functions.tags
    this.#write = functions.write
    this.#lock =
      options.lock === false || runtime.l2 === undefined
        ? undefined
        : new CrossProcessLock(runtime.l2, runtime.service, options.lock)
    // Always present: with no limits it only counts loads per second, and never waits or arms a timer.
    this.#source = new SourceLimiter(
      options.name,
      {
        maxConcurrent: options.source.maxConcurrent,
        maxPerSecond: options.source.maxPerSecond,
        maxWaitMs: options.source.maxWaitMs,
      },
      () => this.#clock.now(),
    )
    runtime.onClose(() => this.#l1?.clear())
    runtime.onInvalidation(options.name, (invalidation) => {
      if (invalidation === 'l2-ready') {
        if (!this.#generationKnown) void this.#loadGeneration()
        return
      }
      if (invalidation !== 'missed') return this.#applyInvalidation(invalidation)
      // Deaf for a while: the generation may have moved on too, so read it again. Meanwhile the last known one
      // stays in use (turning L2 off until the answer came would drop the writes of loads in flight): a bump
      // missed during the outage is picked up within a round trip, and the suspect L1 entries revalidate.
      this.#suspectEverything()
      void this.#loadGeneration()
    })
    void this.#loadGeneration()
    this.#writeBehind = this.#startWriteBehind(runtime, functions)
    this.#accessLog = this.#startAccessLog(runtime)
    this.#labeled =
      functions.labels === undefined ? undefined : new LabeledCounters(functions.labels, options.maxLabelSets)
    this.#slo =
      options.slo === undefined
        ? undefined
        : new SloTracker(
            options.slo,
            () => {
              const s = this.stats()
              const { swr, failSafe, softTimeout, busOutage } = s.staleServed
              return {
                read: s.latencyMs.read,
                reads: s.l1Hits + s.l2Hits + s.misses,
                staleReads: swr + failSafe + softTimeout + busOutage,
              }
            },
            this.#clock.now(),
          )
    if (options.hotKeys !== false && this.#l1 !== undefined) {
      const timer = setInterval(() => this.#sweepHotKeys(), options.hotKeys.intervalMs).unref()
      runtime.onClose(() => clearInterval(timer))
    }
  }

  /** The write-behind queue, flushing from this process unless `writeBehind.flush` is false. */
  #startWriteBehind(
    runtime: CacheRuntime,
    functions: Pick<NamespaceOptions<string, readonly string[], P, V>, 'write' | 'writeMany'>,
  ): WriteBehindQueue<P, V> | undefined {
    const config = this.options.writeBehind
    if (config === undefined) return undefined
    if (runtime.l2 === undefined) {
      throw new InvalidOptionError(
        `${this.name}.writeStrategy`,
        'write-behind',
        "a cache with an L2 store (write-behind queues writes in a Redis stream), or 'write-through'",
      )
    }
    const queue = new WriteBehindQueue<P, V>({
      namespace: this.name,
      stream: `${runtime.service}:${this.name}#wb`,
      l2: runtime.l2,
      serializer: runtime.serializer,
      clock: runtime.clock,
      signal: runtime.signal,
      config,
      counters: this.#counters,
      write: functions.write,
      writeMany: functions.writeMany,
      background: (work) => runtime.background(work),
      logger: runtime.logger,
    })
    queue.start()
    runtime.beforeClose(() => queue.stop())
    return queue
  }

  #startAccessLog(runtime: CacheRuntime): AccessLog | undefined {
    const config = this.options.accessLog
    if (config === undefined) return undefined
    const log = new AccessLog(this.name, `${runtime.service}:${this.name}#access`, config, runtime.l2, () =>
      runtime.clock.now(),
    )
    runtime.beforeClose(() => log.close())
    return log
  }

  /** The namespace's options, resolved: the declaration, or the policy `updatePolicy()` set since. */
  get options(): ResolvedNamespaceOptions {
    return this.#options
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
    if (patch === null || typeof patch !== 'object') {
      throw new InvalidArgumentError('patch', patch, "an object such as { ttl: '10m', staleFor: '1h' }")
    }
    for (const name of Object.keys(patch)) {
      if (!POLICY_OPTIONS.has(name)) {
        throw new InvalidArgumentError(
          `patch.${name}`,
          (patch as Record<string, unknown>)[name],
          `one of ${[...POLICY_OPTIONS].join(', ')}: the key schema, consistency, tiers and codecs are part of the declaration`,
        )
      }
    }
    const declared = { ...this.#current, ...patch } as NamespaceOptions<string, readonly string[], P, V>
    const resolved = this.#resolve === undefined ? this.#options : this.#resolve(declared)
    this.#previous.push({ declared: this.#current, resolved: this.#options })
    this.#current = declared
    this.#options = resolved
    this.#rt.logger.info(
      { service: this.#rt.service, namespace: this.name, changed: Object.keys(patch) },
      'stratacache: namespace policy updated',
    )
    return resolved
  }

  /** Restores the policy in force before the last `updatePolicy()`. Resolves to false when there is none. */
  rollbackPolicy(): boolean {
    const previous = this.#previous.pop()
    if (previous === undefined) return false
    this.#current = previous.declared
    this.#options = previous.resolved
    this.#rt.logger.info(
      { service: this.#rt.service, namespace: this.name },
      'stratacache: namespace policy rolled back',
    )
    return true
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
    if (traces.get.hasSubscribers) {
      const context: GetTraceContext = { service: this.#rt.service, namespace: this.name, tier: undefined }
      return traces.get.tracePromise(() => this.#get(params, context), context)
    }
    return this.#get(params, undefined)
  }

  #get(params: P, trace: GetTraceContext | undefined): Promise<V> {
    if (this.#rt.closed) return Promise.reject(new CacheClosedError('get'))
    let key: string
    try {
      // The hot path: an L1 hit walks the index by the parameters' own texts and reads the clock; no key string is
      // built, nothing decoded, nothing allocated but the promise.
      if (this.#l1 !== undefined) {
        const node = this.#l1.find(params)
        if (node !== undefined) {
          const now = this.#hitClock.now()
          if (node.expiresAt > now) {
            if (node.refreshAt > now) {
              this.#l1.touch(node)
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
            // Stale, or due for refresh-ahead: the slower path decides.
            const served = this.#serveAging(node, params)
            if (served !== undefined) {
              if (trace !== undefined) trace.tier = 'l1'
              return served
            }
          } else {
            this.#l1.remove(node)
          }
        }
      }
      if (!this.#generationKnown) return this.#getAfterGeneration(params, trace)
      key = this.#keys.build(params)
    } catch (error) {
      return Promise.reject(error instanceof Error ? error : new Error(String(error)))
    }
    return this.#join(key, params, trace)
  }

  /** Joins the load of `key` under way, or starts one. */
  #join(key: string, params: P, trace: GetTraceContext | undefined): Promise<V> {
    let flight = this.#flights.get(key)
    if (flight !== undefined) flight.callers++
    else flight = this.#startFlight(key, params, this.#staleInL1(params))
    if (trace === undefined) return flight.promise
    const joined = flight
    return flight.promise.then((value) => {
      trace.tier = joined.missed ? 'source' : 'l2'
      return value
    })
  }

  /** An L1 miss before the generation is known: read it first (bounded by the L2 timeout), then go on. */
  async #getAfterGeneration(params: P, trace: GetTraceContext | undefined): Promise<V> {
    await this.#loadGeneration()
    return this.#join(this.#keys.build(params), params, trace)
  }

  /**
   * An L1 entry past its refresh point: fresh but due for refresh-ahead (answer, refresh in the background), or
   * stale (with stale-while-revalidate: answer, refresh in the background; without: undefined, so the caller loads
   * in the foreground with this entry as its fail-safe fallback).
   */
  #serveAging(node: IndexedNode<Entry>, params: unknown): Promise<V> | undefined {
    const entry = node.value
    const now = this.#clock.now()
    const stale = node.suspect || now >= entry.freshUntil
    if (stale && !this.options.staleWhileRevalidate) return undefined
    this.#l1!.touch(node)
    this.#counters.l1Hits++
    this.#labeled?.count(params as P, 'l1Hits')
    this.#accessLog?.record(node.key, 'l1', node.size, 1, node.hash)
    node.hits++
    if (node.suspect) this.#counters.staleBusOutage++
    else if (stale) this.#counters.staleSwr++
    if (channels.hit.hasSubscribers) this.#publishHit(params, 'l1')
    this.#refreshInBackground(node.key, params as P)
    return Promise.resolve(entry.value as V)
  }

  /** The stale L1 entry for `params`, still inside its stale window, for a fail-safe fallback. */
  #staleInL1(params: unknown): Entry | undefined {
    if (this.#l1 === undefined || this.options.staleForMs === 0) return undefined
    const node = this.#l1.find(params)
    return node !== undefined && node.expiresAt > this.#clock.now() ? node.value : undefined
  }

  /**
   * The hottest keys of this namespace, by a decaying count of L1 reads, as of the last tracking interval. Empty
   * unless `hotKeys` is declared (and L1 is on).
   */
  hotKeys(): readonly HotKey[] {
    return this.#hotKeys
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
    if (!this.#generationKnown) await this.#loadGeneration()
    const keys = list.map((params) => this.#keys.build(params))
    const results = new Array<V>(list.length)
    const waits: Promise<unknown>[] = []
    const wanted = new Map<string, { params: P; indices: number[] }>()
    for (let i = 0; i < keys.length; i++) {
      const key = keys[i]!
      const node = this.#l1?.find(list[i])
      if (node !== undefined) {
        const now = this.#clock.now()
        if (node.expiresAt <= now) {
          this.#l1!.remove(node)
        } else if (node.refreshAt > now) {
          this.#l1!.touch(node)
          this.#counters.l1Hits++
          this.#labeled?.count(list[i]!, 'l1Hits')
          this.#accessLog?.record(node.key, 'l1', node.size, 1, node.hash)
          node.hits++
          if (channels.hit.hasSubscribers) this.#publishHit(list[i], 'l1')
          results[i] = node.value.value as V
          continue
        } else {
          const served = this.#serveAging(node, list[i])
          if (served !== undefined) {
            results[i] = node.value.value as V
            continue
          }
        }
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

  /** The fresh cached value for `params` from L1 or L2 without loading; undefined when neither holds a fresh one. */
  async peek<const Q extends P>(params: Q & CheckedParams<Q, P>): Promise<V | undefined> {
    if (this.#rt.closed) throw new CacheClosedError('peek')
    if (!this.#generationKnown) await this.#loadGeneration()
    const key = this.#keys.build(params)
    const entry = this.#l1Peek(params) ?? (await this.#readL2(key))
    return entry !== undefined && entry.freshUntil > this.#clock.now() ? (entry.value as V) : undefined
  }

  /**
   * Stores `value` for `params` in L1 and L2 (with the namespace's TTL and jitter), replacing what was there.
   * A load of the same key already under way is still answered to its callers but no longer cached.
   * @throws SerializationError when the serializer cannot represent the value (nothing is stored).
   * @throws L2 errors (ERR_STRATA_L2_*) when L2 could not take the write; L1 already holds the value.
   */
  async set<const Q extends P>(params: Q & CheckedParams<Q, P>, value: V): Promise<void> {
    if (this.#rt.closed) throw new CacheClosedError('set')
    await this.#requireGenerationOrForget(params)
    const key = this.#keys.build(params)
    this.#cancelFlight(key)
    value = this.#codec.redact(value)
    const entry = this.#newEntry(value)
    const tags = this.#tagsFor(params, key, value)
    if (tags === undefined) {
      throw new SerializationError(this.name, key, {
        cause: new Error('the namespace tags() function failed'),
      })
    }
    let bytes: Buffer | undefined
    let size: number | undefined
    if (this.#needsBytes()) {
      try {
        ;({ bytes, size } = this.#codec.encode(entry, key))
      } catch (cause) {
        if (cause instanceof ValueTooLargeError) {
          this.#counters.oversized++
          throw cause
        }
        this.#counters.serializeErrors++
        throw new SerializationError(this.name, key, { cause })
      }
    }
    this.#fillL1(params, key, entry, size, tags)
    if (this.#rt.l2 !== undefined && bytes !== undefined) {
      try {
        const ttl = entry.staleUntil - entry.createdAt
        // Bump the version first: a load that started before this write can then no longer store its older value.
        await this.#rt.l2.bumpVersion(this.#versionKey(key), this.#versionTtl())
        await Promise.all([
          this.#rt.l2.set(key, bytes, ttl),
          ...tags.map((tag) => this.#rt.l2!.addToSet(this.#tagKey(tag), key, ttl)),
        ])
      } catch (error) {
        this.#counters.l2Errors++
        // L2 may still hold the old value for other processes: do not be the one process serving the new one.
        this.#l1Delete(params)
        throw error
      }
      // Written through: the other processes drop their L1 copies and read the new value from L2.
      await this.#broadcast({ kind: 'keys', namespace: this.name, keys: [key] })
    }
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
   * source took the value but L2 could not be updated (this process's L1 copy is dropped), or, with write-behind,
   * when the write could not be queued (nothing was queued); SerializationError for a value the serializer refuses.
   */
  async write<const Q extends P>(params: Q & CheckedParams<Q, P>, value: V): Promise<void> {
    if (this.#rt.closed) throw new CacheClosedError('write')
    if (this.#writeBehind !== undefined) {
      await this.#requireGeneration()
      return this.#writeBehindOne(params, this.#keys.build(params), value)
    }
    const key = this.#keys.build(params)
    if (this.#write === undefined) throw new NoWriterError(this.name)
    try {
      await this.#write(params, value, { namespace: this.name, key, signal: this.#rt.signal })
    } catch (cause) {
      throw new WriteError(this.name, key, { cause })
    }
    if (this.options.writeStrategy === 'write-through') await this.set(params, value)
    else await this.delete(params)
  }

  async #writeBehindOne(params: P & CheckedParams<P, P>, key: string, value: V): Promise<void> {
    let bytes: Uint8Array
    try {
      const serialized = this.#rt.serializer.serialize(value)
      bytes = typeof serialized === 'string' ? Buffer.from(serialized, 'utf8') : serialized
    } catch (cause) {
      this.#counters.serializeErrors++
      throw new SerializationError(this.name, key, { cause })
    }
    try {
      await this.#writeBehind!.append(key, params, value, bytes)
    } catch (error) {
      this.#counters.l2Errors++
      throw error
    }
    try {
      await this.set(params, value)
    } catch {
      // The write is queued and will reach the source; only the cache update failed (counted by set). This process
      // answers with the queued value meanwhile; other processes may read the older cached value until it expires.
    }
  }

  /**
   * Write-behind: flushes now, from this process, every queued write it can take (those of other processes
   * included), and resolves when none is left to flush here (writes waiting for a retry delay stay queued).
   * Resolves even when the source or Redis fails. Without write-behind, resolves at once.
   */
  async flushWrites(): Promise<void> {
    if (this.#rt.closed) throw new CacheClosedError('flushWrites')
    await this.#writeBehind?.flush()
  }

  /**
   * Write-behind: the queue's size in Redis: writes in the stream (`queued`, including those being flushed), those
   * handed to a flusher and not yet acknowledged (`inFlight`), and dead letters (`deadLetters`, in the stream named
   * `deadLetterStream`).
   * @throws L2 errors (ERR_STRATA_L2_*) when Redis cannot be asked.
   */
  async writeQueue(): Promise<{
    queued: number
    inFlight: number
    deadLetters: number
    deadLetterStream: string
  }> {
    if (this.#rt.closed) throw new CacheClosedError('writeQueue')
    if (this.#writeBehind === undefined) {
      throw new InvalidArgumentError(
        'writeQueue()',
        this.name,
        "a namespace with writeStrategy: 'write-behind'",
      )
    }
    const size = await this.#writeBehind.size()
    return { ...size, deadLetterStream: this.#writeBehind.deadLetterStream }
  }

  /**
   * Removes the entry for `params` from L1 and L2.
   * @throws L2 errors (ERR_STRATA_L2_*) when L2 could not be reached; L1 is already cleared.
   */
  async delete<const Q extends P>(params: Q & CheckedParams<Q, P>): Promise<void> {
    if (this.#rt.closed) throw new CacheClosedError('delete')
    await this.#requireGenerationOrForget(params)
    const key = this.#keys.build(params)
    this.#cancelFlight(key)
    this.#l1Delete(params)
    if (this.#rt.l2 !== undefined) {
      try {
        await this.#rt.l2.bumpVersion(this.#versionKey(key), this.#versionTtl())
        await this.#rt.l2.delete([key])
      } catch (error) {
        this.#counters.l2Errors++
        throw error
      }
      await this.#broadcast({ kind: 'keys', namespace: this.name, keys: [key] })
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
      // Versions, locks and tag sets of the namespace go too, but the count is of entries.
      const deleted = await this.#rt.l2.deletePrefix(this.prefix, (key) => isEntryKey(key, this.prefix))
      await this.#broadcast({ kind: 'namespace', namespace: this.name })
      return deleted
    } catch (error) {
      this.#counters.l2Errors++
      throw error
    } finally {
      // A get during the scan may have read a value before its UNLINK and put it in L1, or be reading one now:
      // forget again, so nothing from before the clear survives it in this process.
      this.#forgetEverything()
    }
  }

  /** Tells the other processes to drop L1 entries. Awaited by writes, so peers were told when a write resolves. */
  async #broadcast(invalidation: Invalidation): Promise<void> {
    await this.#rt.bus?.publish(invalidation)
  }

  /** Another process wrote: drop what it names from L1, and stop any load of it here from caching an older value. */
  #applyInvalidation(invalidation: Invalidation): void {
    if (invalidation.kind === 'namespace') {
      this.#forgetEverything()
      if (invalidation.generation !== undefined) this.#applyGeneration(invalidation.generation, false)
      return
    }
    if (invalidation.kind === 'tags') {
      this.#dropTagged(invalidation.tags)
      return
    }
    for (const key of invalidation.keys) {
      this.#cancelFlight(key)
      const node = this.#l1?.byKey(key)
      if (node !== undefined) this.#l1!.remove(node)
    }
  }

  /**
   * Drops every entry tagged with one of `tags`: from L1 here, from L2 (each tag's set of keys, renamed then
   * scanned and unlinked in bounded steps: the cost grows with the tagged entries, not with all keys), and from the
   * other processes' L1 through the bus. Resolves to the number of L2 entries deleted.
   * @throws L2 errors (ERR_STRATA_L2_*) when L2 could not be reached; L1 is already cleared.
   */
  async invalidateTag(...tags: string[]): Promise<number> {
    if (this.#rt.closed) throw new CacheClosedError('invalidateTag')
    for (const tag of tags) this.#tagKey(tag)
    this.#dropTagged(tags)
    if (this.#rt.l2 === undefined) return 0
    let deleted = 0
    try {
      for (const tag of tags) {
        const key = this.#tagKey(tag)
        deleted += await this.#rt.l2.deleteSetMembers(key, `${key}#${randomBytes(6).toString('base64url')}`)
      }
    } catch (error) {
      this.#counters.l2Errors++
      throw error
    } finally {
      // Loads that read L2 before the unlink may have refilled L1 meanwhile: drop again.
      this.#dropTagged(tags)
    }
    await this.#broadcast({ kind: 'tags', namespace: this.name, tags })
    return deleted
  }

  /**
   * Invalidates every entry of this namespace at once, lazily: bumps the namespace's generation in Redis (one INCR),
   * so every process builds keys of the new generation from now on and entries of older ones are never read again;
   * they expire by their TTL. Costs the same whatever the number of keys (`clear()` deletes them, scanning). Every
   * process drops its L1 copies: this one before resolving, the others when the bus tells them (a process that
   * missed the message reads the generation again when its bus reconnects).
   * @throws L2 errors (ERR_STRATA_L2_*) when Redis could not be reached; this process's L1 is already cleared.
   */
  async invalidateAll(): Promise<void> {
    if (this.#rt.closed) throw new CacheClosedError('invalidateAll')
    this.#forgetEverything()
    const l2 = this.#rt.l2
    if (l2 === undefined) return
    let generation: number
    try {
      generation = await l2.increment(this.#generationKey)
    } catch (error) {
      this.#counters.l2Errors++
      throw error
    }
    this.#applyGeneration(generation, false)
    await this.#broadcast({ kind: 'namespace', namespace: this.name, generation })
  }

  /** The namespace's generation as this process knows it (0 until the first `invalidateAll()`). */
  get generation(): number {
    return this.#keys.generation
  }

  /** L2, once the generation is known (keys depend on it); undefined before, as when there is no L2. */
  get #l2(): L2Guard | undefined {
    return this.#generationKnown ? this.#rt.l2 : undefined
  }

  /** Reads the generation from Redis, once at a time. Resolves to the L2 error when it could not. */
  #loadGeneration(): Promise<unknown> {
    if (this.#generationLoad !== undefined) return this.#generationLoad
    const l2 = this.#rt.l2
    if (l2 === undefined || this.#rt.closed) return Promise.resolve(undefined)
    const load = l2.getVersion(this.#generationKey).then(
      (generation) => {
        this.#applyGeneration(generation, true)
        return undefined
      },
      (error: unknown) => {
        this.#counters.l2Errors++
        return error
      },
    )
    this.#generationLoad = load
    this.#rt.background(
      load.then(() => {
        if (this.#generationLoad === load) this.#generationLoad = undefined
      }),
    )
    return load
  }

  /** For writes to L2: the generation, read now if need be. @throws the L2 error when it cannot be read. */
  async #requireGeneration(): Promise<void> {
    if (this.#generationKnown) return
    const error = await this.#loadGeneration()
    if (!this.#generationKnown) throw error instanceof Error ? error : new Error(String(error))
  }

  /** For set and delete: as `#requireGeneration`, but a failure drops this process's L1 copy first, as an L2 failure later in a write would. */
  async #requireGenerationOrForget(params: P): Promise<void> {
    try {
      await this.#requireGeneration()
    } catch (error) {
      this.#l1Delete(params)
      throw error
    }
  }

  /**
   * Adopts `generation`: read from Redis (`exact`: it is the truth, even if lower, say after Redis lost its data) or
   * announced on the bus (only ever forward: a late message must not take a process back). A change drops L1 and
   * loads in flight: they belong to the other generation's keys.
   */
  #applyGeneration(generation: number, exact: boolean): void {
    const current = this.#keys.generation
    if (exact ? generation !== current : generation > current) {
      this.#forgetEverything()
      this.#keys.setGeneration(generation)
    }
    this.#generationKnown = true
  }

  #dropTagged(tags: readonly string[]): void {
    this.#l1?.removeTagged(tags, (node) => this.#cancelFlight(node.key))
  }

  /** The key of an entry's version counter in L2 (bumped by every write of the entry). */
  #versionKey(key: string): string {
    return key + '#v'
  }

  /** A version must outlive any load that could still store under it: the entry's whole life, and a margin. */
  #versionTtl(): number {
    return this.options.ttlMs + this.options.jitterMs + this.options.staleForMs + 60_000
  }

  /** The Redis set holding the keys of this namespace's entries tagged `tag`; braces keep its snapshot in its slot. */
  #tagKey(tag: string): string {
    const escaped = typeof tag === 'string' && tag.length > 0 ? escapeKeyText(tag) : undefined
    if (escaped === undefined)
      throw new InvalidArgumentError('tag', tag, 'a non-empty string such as "tenant:t1"')
    return `${this.prefix}#tag{${escaped}}`
  }

  /** The entry's tags, or undefined when the tags function failed: such a value is served but cached nowhere. */
  #tagsFor(params: unknown, key: string, value: unknown): readonly string[] | undefined {
    if (this.#tags === undefined || value === null || value === undefined) return NO_TAGS
    try {
      const tags: unknown = this.#tags(params as P, value as V)
      if (!isArray(tags)) throw new TypeError(`tags() must return an array of strings, got ${typeof tags}`)
      const list = tags as readonly unknown[]
      for (const tag of list) this.#tagKey(tag as string)
      return list as readonly string[]
    } catch (cause) {
      this.#counters.serializeErrors++
      if (channels.serializeError.hasSubscribers) {
        const error = new SerializationError(this.name, key, { cause })
        channels.serializeError.publish({ namespace: this.name, key, error })
      }
      return undefined
    }
  }

  /**
   * The bus was down: invalidations may have been missed. Entries are kept but treated as stale: the next read
   * revalidates them (in the background with stale-while-revalidate, in the foreground otherwise), and they can
   * still answer if the source fails. Without a stale window they are dropped. Dropping them all would throw away
   * the fail-safe values just when Redis came back empty, and send every key to the source at once.
   */
  #suspectEverything(): void {
    if (this.options.staleForMs === 0) {
      this.#forgetEverything()
      return
    }
    if (this.#l1 === undefined) return
    for (const node of this.#l1.nodes()) {
      node.suspect = true
      node.refreshAt = -Infinity
    }
  }

  #forgetEverything(): void {
    for (const flight of this.#flights.values()) flight.cancelled = true
    for (const flight of this.#refreshing.values()) flight.cancelled = true
    this.#flights.clear()
    this.#refreshing.clear()
    this.#throttled.clear()
    this.#l1?.clear()
  }

  /**
   * Compliance with this namespace's objectives (`slo`) over their window; undefined without objectives. A change of
   * verdict (breach or recovery) is published on the `stratacache:slo` channel and logged.
   */
  slo(): SloReport | undefined {
    if (this.#slo === undefined) return undefined
    const { report, changed } = this.#slo.evaluate(this.name, this.#clock.now())
    if (changed) {
      const fields = { service: this.#rt.service, namespace: this.name, report }
      if (report.ok) this.#rt.logger.info(fields, 'stratacache: namespace objectives met again')
      else this.#rt.logger.warn(fields, 'stratacache: namespace objectives breached')
      if (channels.slo.hasSubscribers) channels.slo.publish({ service: this.#rt.service, report })
    }
    return report
  }

  /** A frozen snapshot of this namespace's counters. */
  stats(): NamespaceStats {
    const { staleSwr, staleFailSafe, staleSoftTimeout, staleBusOutage, ...c } = this.#counters
    const reads = c.l1Hits + c.l2Hits + c.misses
    return Object.freeze({
      ...c,
      loadsPerSecond: this.#source.startsPerSecond(),
      hitRatio: reads === 0 ? 0 : (c.l1Hits + c.l2Hits) / reads,
      staleServed: Object.freeze({
        swr: staleSwr,
        failSafe: staleFailSafe,
        softTimeout: staleSoftTimeout,
        busOutage: staleBusOutage,
      }),
      latencyMs: this.#latencySnapshot(c.l1Hits),
      missPenaltyMs: this.#missPenalty(c.l1Hits),
      byLabels: this.#labeled?.snapshot() ?? NO_LABELS,
    })
  }

  #latencySnapshot(l1Hits: number): NamespaceStats['latencyMs'] {
    const read = new Histogram()
    read.observe(0, l1Hits)
    read.add(this.#latency.l2Hit.snapshot())
    read.add(this.#latency.miss.snapshot())
    return Object.freeze({
      load: this.#latency.load.snapshot(),
      l2Hit: this.#latency.l2Hit.snapshot(),
      miss: this.#latency.miss.snapshot(),
      read: read.snapshot(),
    })
  }

  #missPenalty(l1Hits: number): number {
    const miss = this.#latency.miss.snapshot()
    const hit = this.#latency.l2Hit.snapshot()
    if (miss.count === 0) return 0
    // L1 hits count as 0 ms: they are not timed, and cost well under a bucket's width.
    const hits = hit.count + l1Hits
    return miss.sumMs / miss.count - (hits === 0 ? 0 : hit.sumMs / hits)
  }

  // --- the miss path ---------------------------------------------------------------------------------------

  #startFlight(key: string, params: P, stale?: Entry): Flight<V> {
    const flight = { cancelled: false, callers: 1, missed: false, started: performance.now() } as Flight<V>
    flight.promise = this.#fetch(key, params, flight, stale)
    this.#flights.set(key, flight)
    return flight
  }

  /**
   * A foreground read after L1: L2, then (unless another process is loading it) the loader, under the fail-safe,
   * timeouts and cross-process lock. `stale` is an L1 entry still inside its stale window, the fallback if the
   * loader fails.
   */
  async #fetch(key: string, params: P, flight: Flight<V>, stale: Entry | undefined): Promise<V> {
    try {
      const fromL2 = await this.#readL2(key)
      if (fromL2 !== undefined) {
        const now = this.#clock.now()
        if (now < fromL2.freshUntil || this.options.staleWhileRevalidate) {
          this.#hitL2(key)
          // A set or delete may have raced this read; then its result stays out of L1.
          if (!flight.cancelled) this.#fillL1(params, key, fromL2)
          if (now >= this.#refreshAt(fromL2)) {
            if (now >= fromL2.freshUntil) this.#counters.staleSwr++
            // After this flight has left the map, or the refresh would see it and stand down.
            queueMicrotask(() => this.#refreshInBackground(key, params))
          }
          return fromL2.value as V
        }
        // Stale in L2 and no stale-while-revalidate: the fallback, unless L1 had a newer one.
        if (stale === undefined || fromL2.createdAt > stale.createdAt) stale = fromL2
      }
      this.#miss(key)
      flight.missed = true
      if (stale !== undefined && this.#isThrottled(key)) {
        this.#counters.staleFailSafe++
        return stale.value as V
      }
      return await this.#loadCoordinated(key, params, flight, stale)
    } finally {
      // What every caller of this flight waited (those who joined late waited less: counted as the whole).
      ;(flight.missed ? this.#latency.miss : this.#latency.l2Hit).observe(
        performance.now() - flight.started,
        flight.callers,
      )
      this.#labeled?.count(params, flight.missed ? 'misses' : 'l2Hits', flight.callers)
      this.#accessLog?.record(
        key,
        flight.missed ? 'miss' : 'l2',
        this.#l1?.byKey(key)?.size ?? 0,
        flight.callers,
      )
      // Runs after startFlight registered the flight: the body always awaits before it can get here.
      const leave = () => {
        if (this.#flights.get(key) === flight) this.#flights.delete(key)
      }
      if (flight.continuation === undefined) leave()
      else flight.continuation.then(leave, leave)
    }
  }

  /**
   * Loads `key` once across processes: takes the L2 lock, or waits for the process holding it to announce the
   * value, re-reading L2 when woken; after `lock.wait` in all, or when L2 cannot coordinate, it loads by itself.
   */
  async #loadCoordinated(key: string, params: P, flight: Cancellable, stale: Entry | undefined): Promise<V> {
    const lock = this.#generationKnown ? this.#lock : undefined
    let holder: LockHolder | undefined
    if (lock !== undefined && !flight.cancelled) {
      const deadline = this.#clock.now() + lock.options.waitMs
      let waited = false
      for (;;) {
        const acquired = await lock.acquire(key)
        if (acquired === 'unavailable') break
        if (acquired !== 'held') {
          holder = acquired
          break
        }
        if (!waited) this.#counters.lockWaits++
        waited = true
        const watch = await lock.watch(key)
        // Registered first, then read: a value announced in between is found here rather than missed.
        const landed = await this.#readL2Fresh(key)
        if (landed !== undefined) {
          watch?.cancel()
          return this.#adopt(params, key, flight, landed)
        }
        const remaining = deadline - this.#clock.now()
        if (watch === undefined || remaining <= 0) {
          watch?.cancel()
          break
        }
        // Sleep until the value is announced, the holder's lock would have expired (a dead holder), or a short
        // slice has passed: an announcement can be lost (our pub/sub connection reconnecting), and then the value
        // is found by reading L2 again rather than after a whole lock TTL.
        await watch.wait(Math.min(remaining, (await lock.lockTtl(key)) + 25, LOCK_RECHECK_MS))
        const after = await this.#readL2Fresh(key)
        if (after !== undefined) return this.#adopt(params, key, flight, after)
      }
    }
    return this.#loadAndStore(key, params, flight, stale, holder)
  }

  /** A value another process loaded: counted as an L2 hit, kept in L1. */
  #adopt(params: P, key: string, flight: Cancellable, entry: Entry): V {
    this.#hitL2(key)
    if (!flight.cancelled) this.#fillL1(params, key, entry)
    return entry.value as V
  }

  async #readL2Fresh(key: string): Promise<Entry | undefined> {
    const entry = await this.#readL2(key)
    return entry !== undefined && entry.freshUntil > this.#clock.now() ? entry : undefined
  }

  /**
   * Calls the loader under the timeouts, stores its value (awaiting the L2 write when holding the lock, so waiters
   * find it when woken), then releases the lock. With a stale fallback: answers stale at the soft timeout while the
   * load goes on, and answers stale (throttling the key) when the load fails.
   */
  async #loadAndStore(
    key: string,
    params: P,
    flight: Cancellable,
    stale: Entry | undefined,
    holder: LockHolder | undefined,
  ): Promise<V> {
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
    // The entry's version before loading: if a write bumps it meanwhile, this load's value is not stored in L2.
    const version = await this.#versionBeforeLoad(key)
    const stored = this.#callLoadWithTimeout(key, params, release).then(
      async (value) => {
        const written = this.#store(params, key, value, flight, undefined, version)
        if (holder !== undefined) {
          // The holder's own callers have their value now; waiters in other processes are told once it is in L2.
          const announced = (written ?? Promise.resolve(false)).then((landed) => holder.release(landed))
          this.#rt.background(announced)
        }
        // Strong and bounded: a caller may have joined this flight after another process's write was acknowledged.
        // If that write won the race (the guarded store was refused), answer with its newer value from L2.
        if (this.options.consistency !== 'eventual' && written !== undefined && !(await written)) {
          const newer = await this.#readL2Fresh(key)
          if (newer !== undefined) return this.#adopt(params, key, flight, newer)
        }
        return value
      },
      async (error: unknown) => {
        await holder?.release(false)
        throw error
      },
    )
    if (stale === undefined) return stored
    const soft = this.options.softTimeoutMs
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
      this.#counters.staleSoftTimeout++
      // The load goes on and updates the cache when it lands; its failure throttles the key like any other.
      flight.continuation = stored.catch(() => this.#throttle(key))
      return stale.value as V
    }
    if ('value' in outcome) return outcome.value
    this.#throttle(key)
    this.#counters.staleFailSafe++
    return stale.value as V
  }

  /**
   * Room at the source for one load, by the namespace's `source` policy: a release function, 'stale' (answer with
   * the stale value instead: only offered when one exists), or a SourceBusyError.
   */
  async #acquireSource(hasStale: boolean): Promise<(() => void) | 'stale'> {
    const room = this.#source.tryAcquire()
    if (room !== undefined) return room
    const { overflow, maxConcurrent } = this.options.source
    if (overflow === 'error' || (overflow === 'stale' && hasStale)) {
      this.#counters.sourceBusy++
      if (overflow === 'stale') {
        this.#counters.staleFailSafe++
        return 'stale'
      }
      throw new SourceBusyError(this.name, this.#source.active >= maxConcurrent ? 'concurrency' : 'rate', 0)
    }
    try {
      return await this.#source.acquire(this.#rt.signal)
    } catch (error) {
      this.#counters.sourceBusy++
      throw error
    }
  }

  /** The loader under the hard timeout, holding its source slot until it settles. */
  async #callLoadWithTimeout(key: string, params: P, release: () => void): Promise<V> {
    try {
      return await this.#callLoadTimed(key, params)
    } finally {
      release()
    }
  }

  /** The loader under the hard timeout: its signal aborts and the call rejects with LoaderTimeoutError. */
  async #callLoadTimed(key: string, params: P): Promise<V> {
    const hard = this.options.hardTimeoutMs
    if (hard === Infinity) return this.#loadOne(key, params, this.#rt.signal)
    const controller = new AbortController()
    const signal = AbortSignal.any([this.#rt.signal, controller.signal])
    let timer: ReturnType<typeof setTimeout> | undefined
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const error = new LoaderTimeoutError(this.name, key, hard)
        this.#counters.loadTimeouts++
        controller.abort(error)
        reject(error)
      }, hard)
    })
    try {
      return await Promise.race([this.#loadOne(key, params, signal), timeout])
    } finally {
      clearTimeout(timer)
    }
  }

  #loadOne(key: string, params: P, signal: AbortSignal): Promise<V> {
    if (this.#writeBehind !== undefined) return this.#loadOneAfterQueue(key, params, signal)
    if (this.#load !== undefined) return this.#callLoad(key, params, this.#load, signal)
    if (this.#loadMany === undefined) return Promise.reject(new NoLoaderError(this.name, key))
    return this.#callLoadMany([key], [params], signal).then(([value]) => value as V)
  }

  /** With write-behind: this process's own queued write of `key` answers before the source is asked. */
  async #loadOneAfterQueue(key: string, params: P, signal: AbortSignal): Promise<V> {
    const queued = await this.#writeBehind!.pending(key)
    if (queued !== undefined) return queued.value
    if (this.#load !== undefined) return this.#callLoad(key, params, this.#load, signal)
    if (this.#loadMany === undefined) throw new NoLoaderError(this.name, key)
    const [value] = await this.#callLoadMany([key], [params], signal)
    return value as V
  }

  /**
   * Refreshes `key` in the background, once per key in this process and, through the lock, once across processes:
   * if another process holds the lock it is refreshing already. Failures throttle the key (fail-safe).
   */
  #refreshInBackground(key: string, params: P): void {
    if (this.#rt.closed || this.#refreshing.has(key) || this.#flights.has(key) || this.#isThrottled(key))
      return
    if (this.#load === undefined && this.#loadMany === undefined) return
    const flight = { cancelled: false, callers: 0, missed: true, started: 0 } as Flight<V | undefined>
    this.#refreshing.set(key, flight)
    this.#counters.refreshes++
    flight.promise = this.#refresh(key, params, flight)
    const done = () => {
      if (this.#refreshing.get(key) === flight) this.#refreshing.delete(key)
    }
    flight.promise.then(done, () => {
      this.#throttle(key)
      done()
    })
  }

  async #refresh(key: string, params: P, flight: Cancellable): Promise<V | undefined> {
    let holder: LockHolder | undefined
    if (this.#lock !== undefined && this.#generationKnown) {
      const acquired = await this.#lock.acquire(key)
      if (acquired === 'held') return undefined
      if (acquired !== 'unavailable') holder = acquired
    }
    // Another process may have refreshed it just before we took the lock.
    const current = await this.#readL2(key)
    if (current !== undefined && this.#clock.now() < this.#refreshAt(current)) {
      await holder?.release(false)
      if (!flight.cancelled) this.#fillL1(params, key, current)
      return current.value as V
    }
    return this.#loadAndStore(key, params, flight, undefined, holder)
  }

  /** The time after which a read of `entry` triggers a background refresh: refresh-ahead, else its freshness end. */
  #refreshAt(entry: Entry): number {
    const fraction = this.options.refreshAhead
    if (fraction >= 1) return entry.freshUntil
    return entry.createdAt + fraction * (entry.freshUntil - entry.createdAt)
  }

  #isThrottled(key: string): boolean {
    const until = this.#throttled.get(key)
    if (until === undefined) return false
    if (until > this.#clock.now()) return true
    this.#throttled.delete(key)
    return false
  }

  #throttle(key: string): void {
    if (this.options.failSafeThrottleMs === 0 || this.options.staleForMs === 0) return
    const now = this.#clock.now()
    if (this.#throttled.size >= 10_000) {
      for (const [k, until] of this.#throttled) if (until <= now) this.#throttled.delete(k)
    }
    if (this.#throttled.size < 10_000) this.#throttled.set(key, now + this.options.failSafeThrottleMs)
  }

  /** Every hot-keys interval: rank this namespace's L1 entries by decaying reads, refresh the hottest before expiry. */
  #sweepHotKeys(): void {
    const config = this.options.hotKeys
    if (config === false || this.#rt.closed) return
    const now = this.#clock.now()
    if (this.#l1 === undefined) return
    const nodes = [...this.#l1.nodes()]
    nodes.sort((a, b) => b.hits - a.hits)
    const top = nodes.slice(0, config.track).filter((n) => n.hits > 0)
    this.#hotKeys = Object.freeze(top.map((n) => Object.freeze({ key: n.key, score: n.hits })))
    if (config.refresh) {
      for (const node of top) {
        if (this.#refreshing.size >= config.concurrency) break
        // Due within the next two intervals: refresh now, so a hot key is never read cold.
        if (node.value.freshUntil - now <= 2 * config.intervalMs)
          this.#refreshInBackground(node.key, node.params as P)
      }
    }
    for (const node of nodes) node.hits = Math.floor(node.hits / 2)
  }

  #batchFlight(key: string): BatchFlight<V> {
    let resolve!: (value: V) => void
    let reject!: (error: unknown) => void
    const promise = new Promise<V>((res, rej) => {
      resolve = res
      reject = rej
    })
    const flight: BatchFlight<V> = {
      promise,
      cancelled: false,
      resolve,
      reject,
      callers: 1,
      missed: false,
      started: performance.now(),
    }
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
      let missing: typeof batch = []
      batch.forEach((item, i) => {
        let entry = entries[i]
        if (entry !== undefined && entry.freshUntil <= this.#clock.now()) {
          if (this.options.staleWhileRevalidate) {
            this.#counters.staleSwr++
            queueMicrotask(() => this.#refreshInBackground(item.key, item.params))
          } else {
            entry = undefined
          }
        }
        if (entry === undefined) {
          this.#miss(item.key)
          this.#labeled?.count(item.params, 'misses')
          this.#accessLog?.record(item.key, 'miss', 0)
          item.flight.missed = true
          missing.push(item)
          return
        }
        this.#hitL2(item.key)
        this.#labeled?.count(item.params, 'l2Hits')
        this.#accessLog?.record(item.key, 'l2', 0)
        if (!item.flight.cancelled) this.#fillL1(item.params, item.key, entry)
        item.flight.resolve(entry.value as V)
      })
      if (missing.length === 0) return
      if (this.#writeBehind !== undefined) missing = await this.#answerQueued(missing)
      if (missing.length === 0) return
      if (this.#loadMany !== undefined) {
        const release = await this.#acquireSource(false)
        let values: readonly V[]
        try {
          values = await this.#callLoadMany(
            missing.map((m) => m.key),
            missing.map((m) => m.params),
          )
        } finally {
          if (release !== 'stale') release()
        }
        const writes: L2Write[] = []
        missing.forEach((item, i) => {
          const value = values[i] as V
          void this.#store(item.params, item.key, value, item.flight, writes)
          item.flight.resolve(value)
        })
        void this.#writeL2(writes)
      } else if (this.#load !== undefined) {
        const load = this.#load
        await Promise.all(
          missing.map(async (item) => {
            try {
              const release = await this.#acquireSource(false)
              let value: V
              try {
                value = await this.#callLoad(item.key, item.params, load)
              } finally {
                if (release !== 'stale') release()
              }
              void this.#store(item.params, item.key, value, item.flight)
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

  /** With write-behind: answers batch members this process has a queued write for; resolves to the others. */
  async #answerQueued<T extends { key: string; params: P; flight: BatchFlight<V> }>(
    items: T[],
  ): Promise<T[]> {
    const queued = await Promise.all(items.map((item) => this.#writeBehind!.pending(item.key)))
    const rest: T[] = []
    items.forEach((item, i) => {
      const write = queued[i]
      if (write === undefined) rest.push(item)
      else {
        void this.#store(item.params, item.key, write.value, item.flight)
        item.flight.resolve(write.value)
      }
    })
    return rest
  }

  async #callLoad(key: string, params: P, load = this.#load!, signal = this.#rt.signal): Promise<V> {
    const started = performance.now()
    this.#counters.loads++
    const context: LoadContext = { namespace: this.name, key, signal }
    try {
      const value = traces.load.hasSubscribers
        ? await traces.load.tracePromise(async () => load(params, context), {
            service: this.#rt.service,
            namespace: this.name,
            keys: 1,
          })
        : await load(params, context)
      const durationMs = performance.now() - started
      this.#latency.load.observe(durationMs)
      if (channels.load.hasSubscribers)
        channels.load.publish({ namespace: this.name, keys: [key], durationMs })
      return value
    } catch (cause) {
      this.#counters.loadErrors++
      const durationMs = performance.now() - started
      this.#latency.load.observe(durationMs)
      if (channels.load.hasSubscribers) {
        channels.load.publish({ namespace: this.name, keys: [key], durationMs, error: cause })
      }
      throw new LoaderError(this.name, key, { cause })
    }
  }

  async #callLoadMany(keys: string[], params: P[], signal = this.#rt.signal): Promise<readonly V[]> {
    const started = performance.now()
    this.#counters.loads++
    let values: readonly V[]
    let failure: Error | undefined
    const context: LoadContext = { namespace: this.name, key: keys[0]!, signal }
    try {
      const loadMany = this.#loadMany!
      values = traces.load.hasSubscribers
        ? await traces.load.tracePromise(async () => loadMany(params, context), {
            service: this.#rt.service,
            namespace: this.name,
            keys: keys.length,
          })
        : await loadMany(params, context)
      if (!Array.isArray(values) || values.length !== keys.length) {
        failure = new LoadManyResultError(this.name, keys.length, values)
      }
    } catch (cause) {
      failure = new LoaderError(this.name, keys[0]!, { cause })
    }
    if (failure !== undefined) this.#counters.loadErrors++
    const durationMs = performance.now() - started
    this.#latency.load.observe(durationMs)
    if (channels.load.hasSubscribers) {
      channels.load.publish({ namespace: this.name, keys, durationMs, error: failure })
    }
    if (failure !== undefined) throw failure
    return values!
  }

  // --- tiers -------------------------------------------------------------------------------------------------

  #readL2(key: string): Promise<Entry | undefined> | undefined {
    const l2 = this.#l2
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
    const l2 = this.#l2
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
    const result = this.#codec.decode(bytes, key)
    if (!result.ok && result.security !== undefined) {
      // Never returned, never a throw: a miss, counted, and a security event for whoever watches.
      this.#counters.untrustedValues++
      if (channels.security.hasSubscribers) {
        const { security: problem, keyId } = result
        const error = new UntrustedValueError(this.name, key, problem, keyId)
        channels.security.publish({ namespace: this.name, key, problem, keyId, error })
      }
      return undefined
    }
    if (!result.ok) {
      this.#counters.decodeErrors++
      if (channels.decodeError.hasSubscribers) {
        const error = new DecodeError(key, result.reason, { cause: result.cause })
        channels.decodeError.publish({ namespace: this.name, key, error })
      }
      return undefined
    }
    return result.entry.staleUntil > this.#clock.now() ? result.entry : undefined
  }

  #newEntry(value: V): Entry<V> {
    const now = this.#clock.now()
    const { ttlMs, jitterMs, negativeTtlMs } = this.options
    const negative = value === null || value === undefined
    const ttl = negative ? negativeTtlMs : ttlMs + Math.round(this.#rt.random() * jitterMs)
    const staleFor = negative ? 0 : this.options.staleForMs
    return { value, createdAt: now, freshUntil: now + ttl, staleUntil: now + ttl + staleFor }
  }

  /**
   * Caches a freshly loaded value in L1 and L2 unless a write raced the load. L2 is written in the background:
   * the caller already has its value and must not wait for Redis. With `writes`, the L2 write is queued there.
   */
  #store(
    params: P,
    key: string,
    value: V,
    flight: Cancellable,
    writes?: L2Write[],
    version?: number,
  ): Promise<boolean> | undefined {
    // A load that finished after close() (its loader ignored the signal) must not refill L1 or write to L2.
    if (flight.cancelled || this.#rt.closed) return undefined
    const tags = this.#tagsFor(params, key, value)
    // An entry whose tags are unknown could escape a tag invalidation: serve it, cache it nowhere.
    if (tags === undefined) return undefined
    const entry = this.#newEntry(value)
    let bytes: Buffer | undefined
    let size: number | undefined
    if (this.#needsBytes()) {
      try {
        ;({ bytes, size } = this.#codec.encode(entry, key))
      } catch (cause) {
        const tooLarge = cause instanceof ValueTooLargeError
        // Too large for L2 is not too large for L1: it is weighed against the L1 budget at its real size.
        if (tooLarge) {
          size = cause.size
          this.#counters.oversized++
        } else {
          this.#counters.serializeErrors++
        }
        if (channels.serializeError.hasSubscribers) {
          channels.serializeError.publish({
            namespace: this.name,
            key,
            error: tooLarge ? cause : new SerializationError(this.name, key, { cause }),
          })
        }
      }
    }
    this.#fillL1(params, key, entry, size, tags)
    if (bytes === undefined || this.#l2 === undefined) return undefined
    const write = { key, value: bytes, ttlMs: entry.staleUntil - entry.createdAt }
    if (tags.length > 0) this.#tagInL2(key, tags, write.ttlMs)
    if (writes !== undefined) {
      writes.push(write)
      return undefined
    }
    if (version === undefined) return this.#writeL2([write])
    return this.#writeL2Guarded(write, version)
  }

  /** The version a load starts under; undefined when L2 cannot say (the value is then stored unguarded). */
  async #versionBeforeLoad(key: string): Promise<number | undefined> {
    const l2 = this.#l2
    if (l2 === undefined) return undefined
    try {
      return await l2.getVersion(this.#versionKey(key))
    } catch {
      this.#counters.l2Errors++
      return undefined
    }
  }

  /**
   * Writes a loaded value to L2 only if no write bumped the entry's version since the load started. When one did,
   * the value is older than what the writer stored: it is dropped from this process's L1 too.
   */
  #writeL2Guarded(write: L2Write, version: number): Promise<boolean> {
    const l2 = this.#rt.l2!
    const work = l2
      .setIfVersion(write.key, write.value, write.ttlMs, this.#versionKey(write.key), version)
      .then(
        (stored) => {
          if (!stored) {
            this.#counters.staleLoadsDropped++
            const node = this.#l1?.byKey(write.key)
            if (node !== undefined) this.#l1!.remove(node)
          }
          return stored
        },
        () => {
          this.#counters.l2Errors++
          return false
        },
      )
    this.#rt.background(work)
    return work
  }

  /** Adds the key to each tag's set in L2, in the background (tracked for close()). */
  #tagInL2(key: string, tags: readonly string[], ttlMs: number): void {
    const l2 = this.#l2
    if (l2 === undefined) return
    const work = Promise.all(tags.map((tag) => l2.addToSet(this.#tagKey(tag), key, ttlMs))).then(
      () => true,
      () => {
        this.#counters.l2Errors++
        return false
      },
    )
    this.#rt.background(work)
  }

  /** Writes to L2 in the background (tracked for close()); resolves to whether the write landed. */
  #writeL2(writes: L2Write[]): Promise<boolean> | undefined {
    const l2 = this.#l2
    if (l2 === undefined || writes.length === 0) return undefined
    const work = (
      writes.length === 1 ? l2.set(writes[0]!.key, writes[0]!.value, writes[0]!.ttlMs) : l2.setMany(writes)
    ).then(
      () => true,
      () => {
        this.#counters.l2Errors++
        return false
      },
    )
    this.#rt.background(work)
    return work
  }

  /**
   * Puts an entry in L1 for no longer than the L2 entry lives, nor than the namespace's L1 TTL. `tags` are the
   * entry's tags when the caller computed them already (they are computed here otherwise: a copy read from L2).
   */
  #fillL1(params: unknown, key: string, entry: Entry, size = 0, knownTags?: readonly string[]): void {
    const l1 = this.#l1
    if (l1 === undefined || this.#rt.closed) return
    const tags = knownTags ?? this.#tagsFor(params, key, entry.value)
    const now = this.#clock.now()
    // An L1 copy lives until its entry's stale window ends (or less, by l1.ttl): never past the L2 entry.
    const ttl = Math.min(this.options.l1TtlMs, entry.staleUntil - now)
    if (ttl <= 0 || size > l1.maxBytes || tags === undefined) {
      // Expired already, too large for the whole L1 budget, or untaggable: serve it without keeping it in L1.
      l1.removeParams(params)
      return
    }
    l1.put(params, key, entry, { expiresAt: now + ttl, refreshAt: this.#refreshAt(entry), size, tags })
  }

  #l1Peek(params: unknown): Entry | undefined {
    const node = this.#l1?.find(params)
    return node === undefined || node.expiresAt <= this.#clock.now() ? undefined : node.value
  }

  #l1Delete(params: unknown): void {
    this.#l1?.removeParams(params)
  }

  /** Whether values must be encoded: for L2, or to measure them against an L1 byte budget. */
  #needsBytes(): boolean {
    return this.#rt.l2 !== undefined || (this.#l1 !== undefined && this.#l1.maxBytes !== Infinity)
  }

  #cancelFlight(key: string): void {
    for (const flights of [this.#flights, this.#refreshing]) {
      const flight = flights.get(key)
      if (flight === undefined) continue
      flight.cancelled = true
      flights.delete(key)
    }
    this.#throttled.delete(key)
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

/** Whether an L2 key is an entry, not one of its bookkeeping keys (`#v` version, `#lock`, `#tag{…}` set). */
export function isEntryKey(key: string, prefix: string): boolean {
  const mark = key.indexOf('#', prefix.length)
  // A plain key has no '#'; a hashed one has one, right after the prefix (and its generation, if any), followed by
  // a SHA-256 digest in base64url. Tag sets (`#tag{…}`), versions (`#v`) and locks (`#lock`) are bookkeeping.
  if (mark === -1) return true
  if (!DIGEST.test(key.slice(mark + 1))) return false
  return mark === prefix.length || GENERATION_SEGMENT.test(key.slice(prefix.length, mark))
}

/** A SHA-256 digest in base64url, as a hashed key ends. */
const DIGEST = /^[A-Za-z0-9_-]{43}$/

/** The generation segment of a key of generation 1 or more: `g12:`. */
const GENERATION_SEGMENT = /^g[1-9][0-9]*:$/

/** Array.isArray without narrowing, so a typed list keeps its element type. */
function isArray(value: unknown): boolean {
  return Array.isArray(value)
}
