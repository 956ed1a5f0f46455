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
  InvalidationNotSentError,
  SerializationError,
  SourceBusyError,
  UntrustedValueError,
  ValueTooLargeError,
  WriteError,
  WriteQueueFullError,
} from './errors.js'
import { channels, traces, type GetTraceContext } from './observability/channels.js'
import { Histogram, type HistogramSnapshot } from './observability/histogram.js'
import { SloTracker, type SloReport } from './observability/slo.js'
import { LabeledCounters, type LabeledReads } from './observability/labels.js'
import { AccessLog } from './observability/access-log.js'
import type { LoadContext, NamespaceOptions, ResolvedNamespaceOptions } from './options.js'
import type { WriteContext } from './write/write-behind.js'
import type { Invalidation } from './bus/wire.js'
import type { L2Fence } from './tiers/l2-store.js'
import type { IndexedNode } from './core/param-index.js'
import { NamespaceL1 } from './core/namespace-l1.js'
import { CrossProcessLock, type LockHolder } from './policies/cross-process-lock.js'
import type { L2Guard } from './policies/l2-guard.js'
import { SourceLimiter } from './policies/source-limiter.js'
import { WriteBehindQueue } from './write/write-behind.js'
import { LocalFence } from './coherence/fence.js'
import { GenerationTracker } from './coherence/generation.js'
import { FlightRegistry, type Flight } from './read/flights.js'

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
  /** Write-behind: source calls that passed `writeBehind.writeTimeout` (each aborted, and retried). */
  readonly writeTimeouts: number
  /** Write-behind: `write()`s refused because the queue held `writeBehind.maxQueued` writes (nothing queued). */
  readonly writesRefused: number
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

const NO_TAGS: readonly string[] = Object.freeze([])
/** The L1 tag of negative entries (never a user's tag: tags are non-empty strings escaped into keys). */
const NEGATIVE_TAG = '\u0000negative'
const NEGATIVE_TAGS: readonly string[] = Object.freeze([NEGATIVE_TAG])

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

/** An entry read from L2, with its size in bytes (what it weighs in L1). */
interface Stored {
  readonly entry: Entry
  readonly size: number
}

/** A key of a `getMany` that missed L1: its parameters and the stale L1 entry, if any, for a fail-safe. */
interface BatchItem<P> {
  readonly key: string
  readonly params: P
  readonly stale: Entry | undefined
}

/** `updatePolicy()` keeps this many earlier policies for `rollbackPolicy()`, dropping the oldest. */
const POLICY_HISTORY = 16

/** Writes retry a failed invalidation announcement once before reporting it. */
const PUBLISH_ATTEMPTS = 2

/** What became of a loaded value: in L2, refused by a fence (a write or invalidation won), or not written there. */
type StoreOutcome = 'stored' | 'refused' | 'skipped'
const SKIPPED: Promise<StoreOutcome> = Promise.resolve('skipped')
const REFUSED: Promise<StoreOutcome> = Promise.resolve('refused')

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
  /** Loads and background refreshes under way, by full key. */
  readonly #flights = new FlightRegistry<V>()
  /** Whether a loaded value may still be cached, for invalidations this process saw. */
  readonly #fence = new LocalFence()
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
    writeTimeouts: 0,
    writesRefused: 0,
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
  /** Fail-safe throttle: keys whose loader failed, and until when it is not called again. */
  readonly #throttled = new Map<string, number>()
  readonly #lock: CrossProcessLock | undefined
  /** Redaction, serialization, compression, encryption and the envelope, for L2. */
  readonly #codec: ValueCodec
  #hotKeys: readonly HotKey[] = []
  /** The namespace's generation (`invalidateAll()`), as this process knows it. */
  readonly #generation: GenerationTracker
  /**
   * The L2 keys of the namespace's invalidation marks, outside its key prefix so `clear()` leaves them: the
   * sequence, the mark of the last `clear()`, and the mark every tag invalidation sets (for negative entries).
   */
  readonly #marks: {
    readonly seq: string
    readonly cleared: string
    readonly negative: readonly string[]
    readonly negativeSet: string
  }

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
    const base = this.prefix.slice(0, -1)
    this.#generation = new GenerationTracker(`${base}#gen`, {
      l2: runtime.l2,
      get closed() {
        return runtime.closed
      },
      current: () => this.#keys.generation,
      change: (generation) => {
        this.#forgetEverything()
        this.#keys.setGeneration(generation)
      },
      failed: () => this.#counters.l2Errors++,
      background: (work) => runtime.background(work),
    })
    const cleared = `${base}#cleared`
    this.#marks = {
      seq: `${base}#seq`,
      cleared,
      negative: [cleared, `${base}#anytag`],
      negativeSet: `${this.prefix}#neg`,
    }
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
    // The cache's clock (a fake one in tests); the limiter never lets its readings go back, so a backward step of
    // the wall clock cannot freeze the source.
    this.#source = new SourceLimiter(
      options.name,
      {
        maxConcurrent: options.source.maxConcurrent,
        maxPerSecond: options.source.maxPerSecond,
        maxWaitMs: options.source.maxWaitMs,
      },
      () => this.#clock.now(),
    )
    runtime.onClose(() => this.#forgetEverything())
    runtime.onInvalidation(options.name, (invalidation) => {
      if (invalidation === 'l2-ready') {
        if (!this.#generation.known) void this.#generation.read()
        return
      }
      if (invalidation !== 'missed') return this.#applyInvalidation(invalidation)
      // Deaf for a while: the generation may have moved on too, so read it again. Meanwhile the last known one
      // stays in use (turning L2 off until the answer came would drop the writes of loads in flight): a bump
      // missed during the outage is picked up within a round trip, and the suspect L1 entries revalidate.
      this.#suspectEverything()
      void this.#generation.read()
    })
    void this.#generation.read()
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
    if (this.#previous.length > POLICY_HISTORY) this.#previous.shift()
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
      if (!this.#generation.known) return this.#getAfterGeneration(params, trace)
      key = this.#keys.build(params)
    } catch (error) {
      return Promise.reject(error instanceof Error ? error : new Error(String(error)))
    }
    return this.#join(key, params, trace)
  }

  /**
   * Joins the load of `key` under way, or starts one. A strong namespace joins only a flight at its loader (whose
   * store is fenced and re-read if refused), never one reading L2: that read may have been sent before a write
   * another process acknowledged since.
   */
  #join(key: string, params: P, trace: GetTraceContext | undefined): Promise<V> {
    let flight = this.#flights.joinable(key, this.#clock.now())
    if (flight !== undefined && flight.phase === 'l2' && this.options.consistency === 'strong') {
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
    const stored = await this.#readL2Fresh(key)
    if (stored !== undefined) {
      this.#hitL2(key)
      if (trace !== undefined) trace.tier = 'l2'
      return stored.entry.value as V
    }
    const flight = this.#flights.joinable(key, this.#clock.now())
    if (flight !== undefined && flight.phase === 'l2') {
      // Another read of L2 started meanwhile; after a few tries, join it (it started after this read did).
      if (tries > 1) return this.#readStrong(key, params, trace, tries - 1)
      flight.callers++
      return flight.promise
    }
    return this.#join(key, params, trace)
  }

  /** An L1 miss before the generation is known: read it first (bounded by the L2 timeout), then go on. */
  async #getAfterGeneration(params: P, trace: GetTraceContext | undefined): Promise<V> {
    await this.#generation.read()
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
    if (!this.#generation.known) await this.#generation.read()
    const keys = list.map((params) => this.#keys.build(params))
    const results = new Array<V>(list.length)
    const waits: Promise<unknown>[] = []
    const wanted = new Map<string, { item: BatchItem<P>; indices: number[] }>()
    for (let i = 0; i < keys.length; i++) {
      const key = keys[i]!
      const params = list[i] as P
      const node = this.#l1?.find(params)
      if (node !== undefined) {
        const now = this.#clock.now()
        if (node.expiresAt <= now) {
          this.#l1!.remove(node)
        } else if (node.refreshAt > now) {
          this.#l1!.touch(node)
          this.#counters.l1Hits++
          this.#labeled?.count(params, 'l1Hits')
          this.#accessLog?.record(node.key, 'l1', node.size, 1, node.hash)
          node.hits++
          if (channels.hit.hasSubscribers) this.#publishHit(params, 'l1')
          results[i] = node.value.value as V
          continue
        } else {
          const served = this.#serveAging(node, params)
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
      const now = this.#clock.now()
      for (const [key, { item, indices }] of wanted) {
        const flight = this.#flights.joinable(key, now)
        if (flight !== undefined) {
          waits.push(
            this.#join(key, item.params, undefined).then((value) =>
              indices.forEach((i) => (results[i] = value)),
            ),
          )
        } else {
          batch.push(item)
        }
      }
      if (batch.length > 0) {
        for (const [key, promise] of this.#fetchBatch(batch)) {
          const indices = wanted.get(key)!.indices
          waits.push(promise.then((value) => indices.forEach((i) => (results[i] = value))))
        }
      }
    }
    await Promise.all(waits)
    return results
  }

  /** The fresh cached value for `params` from L1 or L2 without loading; undefined when neither holds a fresh one. */
  async peek<const Q extends P>(params: Q & CheckedParams<Q, P>): Promise<V | undefined> {
    if (this.#rt.closed) throw new CacheClosedError('peek')
    if (!this.#generation.known) await this.#generation.read()
    const key = this.#keys.build(params)
    const now = this.#clock.now()
    const local = this.#l1Peek(params)
    if (local !== undefined && local.freshUntil > now) return local.value as V
    // L1 holds nothing, or a stale copy: L2 may hold a fresher one.
    const stored = await this.#readL2(key)
    return stored !== undefined && stored.entry.freshUntil > now ? (stored.entry.value as V) : undefined
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
    // Loads under way, and those starting until the write is done, are fenced: they read what this replaces.
    this.#fence.beginWrite(key)
    this.#cancelFlight(key)
    try {
      await this.#setFenced(params, key, value)
    } finally {
      this.#fence.endWrite(key)
      this.#cancelFlight(key)
    }
  }

  async #setFenced(params: P, key: string, value: V): Promise<void> {
    value = this.#codec.redact(value)
    const entry = this.#newEntry(value)
    const tags = this.#tagsFor(params, key, value)
    if (tags === undefined) {
      throw new SerializationError(this.name, key, {
        cause: new Error('the namespace tags() function failed'),
      })
    }
    let bytes: Buffer | undefined
    let size: number
    try {
      ;({ bytes, size } = this.#encodeIfNeeded(entry, key))
    } catch (cause) {
      if (cause instanceof ValueTooLargeError) {
        this.#counters.oversized++
        throw cause
      }
      this.#counters.serializeErrors++
      throw new SerializationError(this.name, key, { cause })
    }
    this.#fillL1(params, key, entry, size, tags)
    if (this.#rt.l2 !== undefined && bytes !== undefined) {
      try {
        const ttl = entry.staleUntil - entry.createdAt
        // Bump the version first: a load that started before this write can then no longer store its older value.
        await this.#rt.l2.bumpVersion(this.#versionKey(key), this.#versionTtl())
        await Promise.all([
          this.#rt.l2.set(key, bytes, ttl),
          ...tags.map((tag) => this.#rt.l2!.addToSet(this.#setKeyOf(tag), key, ttl)),
        ])
      } catch (error) {
        this.#counters.l2Errors++
        // L2 may still hold the old value for other processes: do not be the one process serving the new one.
        this.#l1Delete(params)
        throw error
      }
      // Written through: the other processes drop their L1 copies and read the new value from L2.
      await this.#broadcast({ kind: 'keys', namespace: this.name, keys: [key] }, `the value of "${key}"`)
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
   * when the write could not be queued (nothing was queued); WriteQueueFullError (with write-behind) when the queue
   * holds `writeBehind.maxQueued` writes (nothing was queued); SerializationError for a value the serializer refuses.
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
      // A full queue is a refusal (counted by the queue), not an L2 failure.
      if (!(error instanceof WriteQueueFullError)) this.#counters.l2Errors++
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
    // Reads that start before the UNLINK lands may read the old value: fenced until the delete is done.
    this.#fence.beginWrite(key)
    this.#cancelFlight(key)
    this.#l1Delete(params)
    try {
      if (this.#rt.l2 !== undefined) {
        try {
          await this.#rt.l2.bumpVersion(this.#versionKey(key), this.#versionTtl())
          await this.#rt.l2.delete([key])
        } catch (error) {
          this.#counters.l2Errors++
          throw error
        }
        await this.#broadcast({ kind: 'keys', namespace: this.name, keys: [key] }, `the deletion of "${key}"`)
      }
    } finally {
      this.#fence.endWrite(key)
      this.#cancelFlight(key)
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
    let deleted: number
    try {
      // Loads in any process that started before this can no longer store (the mark is checked by the store).
      await this.#rt.l2.markInvalidated(this.#marks.seq, [this.#marks.cleared], this.#fenceTtl())
      // Versions, locks and tag sets of the namespace go too, but the count is of entries.
      deleted = await this.#rt.l2.deletePrefix(this.prefix, (key) => isEntryKey(key, this.prefix))
    } catch (error) {
      this.#counters.l2Errors++
      throw error
    } finally {
      // A get during the scan may have read a value before its UNLINK and put it in L1, or be reading one now:
      // forget again, so nothing from before the clear survives it in this process.
      this.#forgetEverything()
    }
    await this.#broadcast({ kind: 'namespace', namespace: this.name }, 'the clear')
    return deleted
  }

  /**
   * Tells the other processes to drop L1 entries. Awaited by writes, so peers were told when a write resolves; a
   * failed announcement is retried once, then logged and thrown (InvalidationNotSentError), never swallowed.
   */
  async #broadcast(invalidation: Invalidation, what: string): Promise<void> {
    const bus = this.#rt.bus
    if (bus === undefined) return
    let error: unknown
    for (let attempt = 0; attempt < PUBLISH_ATTEMPTS; attempt++) {
      error = await bus.publish(invalidation)
      if (error === undefined) return
    }
    this.#rt.logger.warn(
      { service: this.#rt.service, namespace: this.name, kind: invalidation.kind },
      'stratacache: an invalidation could not be announced; other processes may serve their old L1 copies until they expire',
    )
    throw new InvalidationNotSentError(this.name, what, { cause: error })
  }

  /** Another process wrote: drop what it names from L1, and stop any load of it here from caching an older value. */
  #applyInvalidation(invalidation: Invalidation): void {
    if (invalidation.kind === 'namespace') {
      this.#forgetEverything()
      if (invalidation.generation !== undefined) this.#generation.announce(invalidation.generation)
      return
    }
    if (invalidation.kind === 'tags') {
      this.#dropTagged(invalidation.tags)
      return
    }
    for (const key of invalidation.keys) {
      this.#fence.touchKey(key)
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
      // First the marks: a load that started before this (in any process) can no longer store a value carrying
      // one of these tags, nor a negative entry (whose tags are unknown). Then the entries already stored.
      await this.#rt.l2.markInvalidated(
        this.#marks.seq,
        [...tags.map((tag) => this.#tagMark(tag)), this.#marks.negative[1]!],
        this.#fenceTtl(),
      )
      for (const key of [...tags.map((tag) => this.#tagKey(tag)), this.#marks.negativeSet]) {
        deleted += await this.#rt.l2.deleteSetMembers(key, `${key}#${randomBytes(6).toString('base64url')}`)
      }
    } catch (error) {
      this.#counters.l2Errors++
      throw error
    } finally {
      // Loads that read L2 before the unlink may have refilled L1 meanwhile: drop again.
      this.#dropTagged(tags)
    }
    await this.#broadcast(
      { kind: 'tags', namespace: this.name, tags },
      `the invalidation of ${tags.join(', ')}`,
    )
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
      generation = await l2.increment(this.#generation.key)
    } catch (error) {
      this.#counters.l2Errors++
      throw error
    }
    this.#generation.announce(generation)
    await this.#broadcast(
      { kind: 'namespace', namespace: this.name, generation },
      'the invalidation of every entry',
    )
  }

  /** The namespace's generation as this process knows it (0 until the first `invalidateAll()`). */
  get generation(): number {
    return this.#keys.generation
  }

  /** L2, once the generation is known (keys depend on it); undefined before, as when there is no L2. */
  get #l2(): L2Guard | undefined {
    return this.#generation.known ? this.#rt.l2 : undefined
  }

  /** For writes to L2: the generation, read now if need be. @throws the L2 error when it cannot be read. */
  #requireGeneration(): Promise<void> {
    return this.#generation.require()
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

  /** Drops L1 entries tagged with one of `tags`, and negative entries (their tags are unknown); fences loads. */
  #dropTagged(tags: readonly string[]): void {
    this.#fence.touchTags(tags)
    // A load's tags are unknown until its value arrives, so no read starting now may join any load started before
    // (the fence already keeps their values out of the tiers).
    this.#flights.cancelAll()
    this.#l1?.removeTagged([...tags, NEGATIVE_TAG], (node) => this.#throttled.delete(node.key))
  }

  /** The key of an entry's version counter in L2 (bumped by every write of the entry). */
  #versionKey(key: string): string {
    return key + '#v'
  }

  /** A version must outlive any load that could still store under it: the entry's whole life, and a margin. */
  #versionTtl(): number {
    return this.options.ttlMs + this.options.jitterMs + this.options.staleForMs + 60_000
  }

  /**
   * How long an invalidation mark must live: longer than any load that could still try to store under an older
   * fence (the entry's life, the loader's hard timeout and the lock wait, and a margin).
   */
  #fenceTtl(): number {
    const lockWait = this.options.lock === false ? 0 : this.options.lock.waitMs
    return this.#versionTtl() + this.options.hardTimeoutMs + lockWait
  }

  /** The invalidation mark of `tag` (a tag set's key plus `#inv`), checked by the store of every load. */
  #tagMark(tag: string): string {
    return `${this.#tagKey(tag)}#inv`
  }

  /** The L2 set of a tag of an entry: negative entries share one set, emptied by every tag invalidation. */
  #setKeyOf(tag: string): string {
    return tag === NEGATIVE_TAG ? this.#marks.negativeSet : this.#tagKey(tag)
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
    // A negative entry's tags cannot be computed from a value it does not have: every tag invalidation reaches it.
    if (value === null || value === undefined) return NEGATIVE_TAGS
    if (this.#tags === undefined) return NO_TAGS
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
    // Nothing cached here yet (the usual first subscription at start): nothing can be stale.
    if (this.#l1 === undefined || this.#l1.nodes().next().done === true) return
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

  /** Drops L1 and fences every load under way (a clear, a generation change, close). */
  #forgetEverything(): void {
    this.#fence.touchAll()
    this.#flights.cancelAll()
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

  /** Starts a foreground flight for `key`: L2, then the load pipeline. Its bookkeeping runs once it has left. */
  #startFlight(key: string, params: P, stale?: Entry): Flight<V> {
    return this.#flights.start(
      key,
      this.#fence.open(),
      (flight) => this.#fetch(key, params, flight, stale),
      (flight) => this.#flightSettled(flight, params, key),
    )
  }

  /** What every caller of a settled flight waited (those who joined late waited less: counted as the whole). */
  #flightSettled(flight: Flight<V>, params: P, key: string): void {
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
  }

  /**
   * A foreground read after L1: L2, then (unless another process is loading it) the loader, under the fail-safe,
   * timeouts and cross-process lock. `stale` is an L1 entry still inside its stale window, the fallback if the
   * loader fails.
   */
  async #fetch(key: string, params: P, flight: Flight<V>, stale: Entry | undefined): Promise<V> {
    const fromL2 = await this.#readL2(key)
    if (fromL2 !== undefined) {
      const { entry } = fromL2
      const now = this.#clock.now()
      if (now < entry.freshUntil || this.options.staleWhileRevalidate) {
        this.#hitL2(key)
        this.#fillFromL2(params, key, fromL2, flight.token)
        if (now >= this.#refreshAt(entry)) {
          if (now >= entry.freshUntil) this.#counters.staleSwr++
          // Once this flight has left the registry, or the refresh would see it and stand down.
          void flight.promise.then(() => this.#refreshInBackground(key, params))
        }
        return entry.value as V
      }
      // Stale in L2 and no stale-while-revalidate: the fallback, unless L1 had a newer one.
      if (stale === undefined || entry.createdAt > stale.createdAt) stale = entry
    }
    this.#miss(key)
    flight.missed = true
    flight.phase = 'load'
    if (stale !== undefined && this.#isThrottled(key)) {
      this.#counters.staleFailSafe++
      return stale.value as V
    }
    return this.#loadCoordinated(key, params, flight, stale)
  }

  /**
   * Loads `key` once across processes: takes the L2 lock, or waits for the process holding it to announce the
   * value, re-reading L2 when woken; after `lock.wait` in all, or when L2 cannot coordinate, it loads by itself.
   */
  async #loadCoordinated(key: string, params: P, flight: Flight<V>, stale: Entry | undefined): Promise<V> {
    const lock = this.#generation.known ? this.#lock : undefined
    let holder: LockHolder | undefined
    if (lock !== undefined) {
      // Monotonic: a wall-clock step must not stretch or cut the wait.
      const deadline = performance.now() + lock.options.waitMs
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
          return this.#adopt(params, key, flight.token, landed)
        }
        const remaining = deadline - performance.now()
        if (watch === undefined || remaining <= 0) {
          watch?.cancel()
          break
        }
        // Sleep until the value is announced, the holder's lock would have expired (a dead holder), or a short
        // slice has passed: an announcement can be lost (our pub/sub connection reconnecting), and then the value
        // is found by reading L2 again rather than after a whole lock TTL.
        await watch.wait(Math.min(remaining, (await lock.lockTtl(key)) + 25, LOCK_RECHECK_MS))
        const after = await this.#readL2Fresh(key)
        if (after !== undefined) return this.#adopt(params, key, flight.token, after)
      }
    }
    return this.#loadAndStore(key, params, flight, stale, holder)
  }

  /** A value another process loaded: counted as an L2 hit, kept in L1 unless fenced. */
  #adopt(params: P, key: string, token: number, stored: Stored): V {
    this.#hitL2(key)
    this.#fillFromL2(params, key, stored, token)
    return stored.entry.value as V
  }

  async #readL2Fresh(key: string): Promise<Stored | undefined> {
    const stored = await this.#readL2(key)
    return stored !== undefined && stored.entry.freshUntil > this.#clock.now() ? stored : undefined
  }

  /**
   * The load pipeline of one key: room at the source, the fence, the loader under its timeouts, the fenced store
   * (awaited when holding the lock, so waiters find the value when woken), then the lock's release. With a stale
   * fallback: answers stale at the soft timeout while the load goes on, and stale (throttling the key) when the
   * load fails.
   */
  async #loadAndStore(
    key: string,
    params: P,
    flight: Pick<Flight<unknown>, 'token' | 'continuation' | 'answersUntil'>,
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
    const fences = this.#readFences([key])
    const stored = this.#callLoadTimed(key, (signal) => this.#loadOne(key, params, signal))
      .finally(release)
      .then(
        async (value) => {
          const written = this.#store(params, key, value, flight.token, await fences.then((f) => f?.[0]))
          if (holder !== undefined) {
            // The holder's callers have their value now; waiters in other processes are told once it is in L2.
            this.#rt.background(written.then((outcome) => holder.release(outcome === 'stored')))
          }
          return this.#answerLoaded(key, params, value, written)
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
      // Readers joining meanwhile get the stale answer, but only while it is inside its stale window.
      flight.answersUntil = stale.staleUntil
      flight.continuation = stored.catch(() => this.#throttle(key))
      return stale.value as V
    }
    if ('value' in outcome) return outcome.value
    this.#throttle(key)
    this.#counters.staleFailSafe++
    return stale.value as V
  }

  /**
   * What a load's callers get. Eventual: the loaded value. Strong and bounded: a caller may have joined after
   * another process's write was acknowledged; if the fenced store was refused, that write won, so its newer value
   * is read from L2, or, when it deleted the entry (cache-aside), loaded again.
   */
  async #answerLoaded(key: string, params: P, value: V, written: Promise<StoreOutcome>): Promise<V> {
    if (this.options.consistency === 'eventual' || (await written) !== 'refused') return value
    const newer = await this.#readL2Fresh(key)
    if (newer !== undefined) return this.#adopt(params, key, this.#fence.open(), newer)
    if (this.options.consistency !== 'strong') return value
    // Once, not in a loop: a second refusal means writes keep coming, and this value is as new as any.
    const token = this.#fence.open()
    const [fence] = (await this.#readFences([key])) ?? []
    const reloaded = await this.#callLoadTimed(key, (signal) => this.#loadOne(key, params, signal))
    await this.#store(params, key, reloaded, token, fence)
    return reloaded
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

  /**
   * A loader call under the hard timeout: its signal aborts (as when the cache closes) and the call rejects with
   * LoaderTimeoutError. One listener on the cache's signal, removed when the call settles (`AbortSignal.any` would
   * leave a dependant on that long-lived signal per call on Node 20).
   */
  async #callLoadTimed<T>(key: string, call: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const hard = this.options.hardTimeoutMs
    const controller = new AbortController()
    const cacheSignal = this.#rt.signal
    const onClose = () => controller.abort(cacheSignal.reason)
    if (cacheSignal.aborted) controller.abort(cacheSignal.reason)
    else cacheSignal.addEventListener('abort', onClose, { once: true })
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
      return await Promise.race([call(controller.signal), timeout])
    } finally {
      clearTimeout(timer)
      cacheSignal.removeEventListener('abort', onClose)
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
    if (this.#rt.closed || this.#flights.has(key) || this.#isThrottled(key)) return
    if (this.#load === undefined && this.#loadMany === undefined) {
      // Nothing to load from: a suspect entry (a bus outage) is revalidated by reading L2 again.
      this.#revalidateFromL2(key, params)
      return
    }
    this.#counters.refreshes++
    this.#flights.startRefresh(
      key,
      this.#fence.open(),
      (flight) => this.#refresh(key, params, flight.token),
      (failed) => {
        if (failed) this.#throttle(key)
      },
    )
  }

  async #refresh(key: string, params: P, token: number): Promise<V | undefined> {
    let holder: LockHolder | undefined
    if (this.#lock !== undefined && this.#generation.known) {
      const acquired = await this.#lock.acquire(key)
      if (acquired === 'held') return undefined
      if (acquired !== 'unavailable') holder = acquired
    }
    // Another process may have refreshed it just before we took the lock.
    const current = await this.#readL2(key)
    if (current !== undefined && this.#clock.now() < this.#refreshAt(current.entry)) {
      await holder?.release(false)
      this.#fillFromL2(params, key, current, token)
      return current.entry.value as V
    }
    return this.#loadAndStore(key, params, { token }, undefined, holder)
  }

  /** A suspect L1 entry in a namespace without a loader: replaced by L2's copy, or dropped when L2 has none. */
  #revalidateFromL2(key: string, params: P): void {
    const token = this.#fence.open()
    const read = this.#readL2(key)
    if (read === undefined) return
    this.#rt.background(
      read.then((stored) => {
        if (stored !== undefined) this.#fillFromL2(params, key, stored, token)
        else if (this.#fence.mayFill(token, key, NO_TAGS, false)) this.#l1Delete(params)
      }),
    )
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
        if (this.#flights.refreshCount >= config.concurrency) break
        // Due within the next two intervals: refresh now, so a hot key is never read cold.
        if (node.value.freshUntil - now <= 2 * config.intervalMs)
          this.#refreshInBackground(node.key, node.params as P)
      }
    }
    for (const node of nodes) node.hits = Math.floor(node.hits / 2)
  }

  // --- getMany: the same pipeline, batched -----------------------------------------------------------------

  /**
   * The L1 misses of a `getMany`: one flight per key (joinable by `get`) and one MGET. Then, with a `loadMany`,
   * keys another process is loading wait for it through the single-key pipeline, and the rest are loaded with one
   * `loadMany` call under the same source limit, fence, hard timeout and fail-safe as `get`'s loads; without one,
   * every missing key takes the single-key pipeline.
   */
  #fetchBatch(items: BatchItem<P>[]): Map<string, Promise<V>> {
    const token = this.#fence.open()
    const settle = new Map<string, { resolve: (value: V) => void; reject: (error: unknown) => void }>()
    const promises = new Map<string, Promise<V>>()
    const flights = new Map<string, Flight<V>>()
    for (const item of items) {
      const flight = this.#flights.start(
        item.key,
        token,
        () =>
          new Promise<V>((resolve, reject) => {
            settle.set(item.key, { resolve, reject })
          }),
        (f) => this.#flightSettled(f, item.params, item.key),
      )
      flights.set(item.key, flight)
      promises.set(item.key, flight.promise)
    }
    const run = async () => {
      const found = await this.#readL2Many(items.map((item) => item.key))
      const now = this.#clock.now()
      const missing: (BatchItem<P> & { stale: Entry | undefined })[] = []
      items.forEach((item, i) => {
        const stored = found[i]
        const flight = flights.get(item.key)!
        let stale = item.stale
        if (stored !== undefined) {
          const { entry } = stored
          if (now < entry.freshUntil || this.options.staleWhileRevalidate) {
            this.#hitL2(item.key)
            this.#fillFromL2(item.params, item.key, stored, token)
            if (now >= this.#refreshAt(entry)) {
              if (now >= entry.freshUntil) this.#counters.staleSwr++
              void flight.promise.then(() => this.#refreshInBackground(item.key, item.params))
            }
            settle.get(item.key)!.resolve(entry.value as V)
            return
          }
          if (stale === undefined || entry.createdAt > stale.createdAt) stale = entry
        }
        this.#miss(item.key)
        flight.missed = true
        flight.phase = 'load'
        if (stale !== undefined && this.#isThrottled(item.key)) {
          this.#counters.staleFailSafe++
          settle.get(item.key)!.resolve(stale.value as V)
          return
        }
        missing.push({ ...item, stale })
      })
      if (missing.length === 0) return
      if (this.#loadMany === undefined) {
        // No batch loader: each key takes the single-key pipeline (lock, fence, timeouts, fail-safe) concurrently.
        for (const item of missing) {
          this.#loadCoordinated(item.key, item.params, flights.get(item.key)!, item.stale).then(
            settle.get(item.key)!.resolve,
            settle.get(item.key)!.reject,
          )
        }
        return
      }
      // Keys another process holds the lock of: wait for its value through the single-key pipeline.
      const mine: (typeof missing)[number][] = []
      const holders = new Map<string, LockHolder>()
      const lock = this.#generation.known ? this.#lock : undefined
      await Promise.all(
        missing.map(async (item) => {
          const acquired = lock === undefined ? 'unavailable' : await lock.acquire(item.key)
          if (acquired === 'held') {
            const flight = flights.get(item.key)!
            this.#loadCoordinated(item.key, item.params, flight, item.stale).then(
              settle.get(item.key)!.resolve,
              settle.get(item.key)!.reject,
            )
            return
          }
          if (acquired !== 'unavailable') holders.set(item.key, acquired)
          mine.push(item)
        }),
      )
      if (mine.length > 0) await this.#loadBatch(mine, token, holders, settle)
    }
    run().catch((error: unknown) => {
      // Settling a settled promise is a no-op, so this reaches exactly the unsettled ones.
      for (const { reject } of settle.values()) reject(error)
    })
    return promises
  }

  /** One `loadMany` call for `items`, then a fenced store per key; failures answer stale where a value exists. */
  async #loadBatch(
    items: (BatchItem<P> & { stale: Entry | undefined })[],
    token: number,
    holders: Map<string, LockHolder>,
    settle: Map<string, { resolve: (value: V) => void; reject: (error: unknown) => void }>,
  ): Promise<void> {
    const releaseLocks = (landed: (key: string) => Promise<StoreOutcome> | undefined) => {
      for (const [key, holder] of holders) {
        const written = landed(key)
        this.#rt.background(
          written === undefined
            ? holder.release(false)
            : written.then((outcome) => holder.release(outcome === 'stored')),
        )
      }
    }
    const fail = (item: (typeof items)[number], error: unknown) => {
      if (item.stale !== undefined) {
        this.#throttle(item.key)
        this.#counters.staleFailSafe++
        settle.get(item.key)!.resolve(item.stale.value as V)
      } else {
        settle.get(item.key)!.reject(error)
      }
    }
    let release: (() => void) | 'stale'
    try {
      release = await this.#acquireSource(false)
    } catch (error) {
      releaseLocks(() => undefined)
      for (const item of items) fail(item, error)
      return
    }
    const keys = items.map((item) => item.key)
    const fences = this.#readFences(keys)
    let values: readonly V[]
    try {
      values = await this.#callLoadTimed(keys[0]!, async (signal) => {
        // With write-behind, this process's queued writes answer first; the source is asked for the rest.
        const queued =
          this.#writeBehind === undefined
            ? undefined
            : await Promise.all(keys.map((key) => this.#writeBehind!.pending(key)))
        const ask = items.filter((_, i) => queued?.[i] === undefined)
        const loaded =
          ask.length === 0
            ? []
            : await this.#callLoadMany(
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
      written.set(item.key, this.#store(item.params, item.key, values[i] as V, token, tokens[i]))
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

  #readL2(key: string): Promise<Stored | undefined> | undefined {
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

  async #readL2Many(keys: string[]): Promise<(Stored | undefined)[]> {
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

  /**
   * Bytes from L2 to an entry and its size; foreign, corrupt or expired bytes are a miss (counted and published),
   * never a throw. Times written by another process's clock are clamped to this process's policy and clock.
   */
  #decode(key: string, bytes: Uint8Array): Stored | undefined {
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
    const entry = this.#clampTimes(result.entry)
    return entry.staleUntil > this.#clock.now() ? { entry, size: bytes.byteLength } : undefined
  }

  /**
   * Entry times are the writer's clock. An entry "created" in this process's future (a writer whose clock runs
   * ahead) is rebased to now, and no entry is fresh or stale for longer than this namespace's policy allows, so
   * a skewed writer cannot make L1 copies live for its skew. (A writer behind by more than an entry's life makes
   * its entries read as expired: keep clock skew well under the TTL; docs/consistency.md.)
   */
  #clampTimes(entry: Entry): Entry {
    const now = this.#clock.now()
    const negative = entry.value === null || entry.value === undefined
    const { ttlMs, jitterMs, negativeTtlMs, staleForMs } = this.options
    const shift = entry.createdAt > now ? entry.createdAt - now : 0
    const createdAt = entry.createdAt - shift
    const freshUntil = Math.min(
      entry.freshUntil - shift,
      createdAt + (negative ? negativeTtlMs : ttlMs + jitterMs),
    )
    const staleUntil = Math.min(entry.staleUntil - shift, freshUntil + (negative ? 0 : staleForMs))
    if (createdAt === entry.createdAt && freshUntil === entry.freshUntil && staleUntil === entry.staleUntil) {
      return entry
    }
    return { ...entry, createdAt, freshUntil, staleUntil }
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
   * The L2 fences loads of `keys` start under (their versions and the namespace's invalidation sequence), read in
   * one round trip; undefined when L2 cannot say, and then the loaded values are not written to L2.
   */
  #readFences(keys: readonly string[]): Promise<(L2Fence | undefined)[] | undefined> {
    const l2 = this.#l2
    if (l2 === undefined) return Promise.resolve(undefined)
    const versionKeys = keys.map((key) => this.#versionKey(key))
    return l2.readFence(versionKeys, this.#marks.seq).then(
      ({ versions, seq }) =>
        keys.map((_, i) => ({
          versionKey: versionKeys[i]!,
          version: versions[i]!,
          seq,
          marks: NO_TAGS,
          sets: NO_TAGS,
        })),
      () => {
        this.#counters.l2Errors++
        return undefined
      },
    )
  }

  /**
   * Caches a loaded value: in L1 unless the local fence says an invalidation this process saw came after the load
   * started; in L2 (in the background: the caller has its value) through the store script, which refuses it if
   * its version or an invalidation mark moved since `fence` was read, and adds it to its tag sets atomically.
   * Resolves to whether it landed in L2.
   */
  #store(params: P, key: string, value: V, token: number, fence: L2Fence | undefined): Promise<StoreOutcome> {
    // A load that finished after close() (its loader ignored the signal) must not refill L1 or write to L2.
    if (this.#rt.closed) return SKIPPED
    const negative = value === null || value === undefined
    const tags = this.#tagsFor(params, key, value)
    // An entry whose tags are unknown could escape a tag invalidation: serve it, cache it nowhere.
    if (tags === undefined) return SKIPPED
    if (!this.#fence.mayFill(token, key, tags, negative)) {
      this.#counters.staleLoadsDropped++
      return REFUSED
    }
    const entry = this.#newEntry(value)
    let bytes: Buffer | undefined
    let size: number
    try {
      ;({ bytes, size } = this.#encodeIfNeeded(entry, key))
    } catch (cause) {
      const tooLarge = cause instanceof ValueTooLargeError
      // Too large for L2 is not too large for L1: it is weighed against the L1 budget at its real size.
      size = tooLarge ? cause.size : 0
      if (tooLarge) this.#counters.oversized++
      else this.#counters.serializeErrors++
      if (channels.serializeError.hasSubscribers) {
        channels.serializeError.publish({
          namespace: this.name,
          key,
          error: tooLarge ? cause : new SerializationError(this.name, key, { cause }),
        })
      }
      // Unserializable and not weighed: too risky for a byte-bounded L1, harmless for an entry-bounded one.
      if (!tooLarge && this.#l1 !== undefined && this.#l1.maxBytes !== Infinity) return SKIPPED
    }
    this.#fillL1(params, key, entry, size, tags)
    const l2 = this.#l2
    if (bytes === undefined || l2 === undefined || fence === undefined) return SKIPPED
    const ttlMs = entry.staleUntil - entry.createdAt
    const work = l2
      .storeFenced(
        { key, value: bytes, ttlMs },
        {
          ...fence,
          marks: negative
            ? this.#marks.negative
            : [this.#marks.cleared, ...tags.map((t) => this.#tagMark(t))],
          sets: negative ? [this.#marks.negativeSet] : tags.map((t) => this.#tagKey(t)),
        },
      )
      .then(
        (stored): StoreOutcome => {
          if (stored) return 'stored'
          // A write or invalidation won the race: this value is older than what it left; drop it here too.
          this.#counters.staleLoadsDropped++
          const node = this.#l1?.byKey(key)
          if (node !== undefined && node.value === entry) this.#l1!.remove(node)
          return 'refused'
        },
        (): StoreOutcome => {
          this.#counters.l2Errors++
          return 'skipped'
        },
      )
    this.#rt.background(work)
    return work
  }

  /** Encodes `entry` for L2, or only to weigh it against an L1 byte budget; size 0 when neither needs bytes. */
  #encodeIfNeeded(entry: Entry, key: string): { bytes: Buffer | undefined; size: number } {
    if (!this.#needsBytes()) return { bytes: undefined, size: 0 }
    const { bytes, size } = this.#codec.encode(entry, key)
    return { bytes, size }
  }

  /** An entry read from L2, into L1 at its size, unless the fence says an invalidation came after `token`. */
  #fillFromL2(params: unknown, key: string, stored: Stored, token: number): void {
    if (this.#l1 === undefined) return
    const { entry } = stored
    const negative = entry.value === null || entry.value === undefined
    const tags = this.#tagsFor(params, key, entry.value)
    if (tags === undefined || !this.#fence.mayFill(token, key, tags, negative)) return
    this.#fillL1(params, key, entry, stored.size, tags)
  }

  /**
   * Puts an entry in L1 for no longer than the L2 entry lives, nor than the namespace's L1 TTL, weighed at `size`
   * bytes (its encoded size: every fill passes it, so `l1.maxBytes` holds whichever tier the value came from).
   */
  #fillL1(params: unknown, key: string, entry: Entry, size: number, tags: readonly string[]): void {
    const l1 = this.#l1
    if (l1 === undefined || this.#rt.closed) return
    const now = this.#clock.now()
    // An L1 copy lives until its entry's stale window ends (or less, by l1.ttl): never past the L2 entry.
    const ttl = Math.min(this.options.l1TtlMs, entry.staleUntil - now)
    if (ttl <= 0 || size > l1.maxBytes) {
      // Expired already, or too large for the whole L1 budget: serve it without keeping it in L1.
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

  /** Stops loads of `key` here from being joined; the fence already keeps their values out. */
  #cancelFlight(key: string): void {
    this.#flights.cancel(key)
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
