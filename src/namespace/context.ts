// namespace/: one key family. `namespace.ts` is its public surface; this file is what its pieces share.
//
// The pieces, each given this context (and the pieces it calls) in its constructor:
//   read/reader.ts            a get past the L1 hit, getMany, peek: L1 aging, L2, single-flight
//   load/pipeline.ts          a miss on its way to the loader and back: lock, source limit, timeouts, fenced store
//   load/invoke.ts            the loader calls themselves: tracing, timing, LoaderError
//   refresh/refresher.ts      background refreshes (stale-while-revalidate, refresh-ahead, hot keys)
//   write/writes.ts           set, write, delete, clear
//   coherence/tags.ts         tag keys, an entry's tags, invalidateTag
//   coherence/invalidation.ts invalidations to and from other processes, invalidateAll, forgetting L1
//   storage/entry-store.ts    entries in and out of L1 and L2: decode, encode, fences, fills
//   namespace/recorder.ts     hits and misses, stats() and slo()
//   namespace/policy.ts       the options in force: updatePolicy and rollbackPolicy
//
// Invariants:
// - One context per namespace, made by its constructor. Its fields are set once: `writeBehind`, `accessLog` and
//   `labeled` by the namespace's constructor, after the pieces and the bus handler exist (a write-behind namespace
//   without L2 must fail before the access log arms its timer).
// - `options` is a getter over the policy in force, read where it is used and never kept: `updatePolicy()` swaps
//   it, and work under way follows the new policy from its next step.
// - Internal: not exported from the package. Fields are plain so the pieces can share them; only the namespace
//   hands the context out.
import { ValueCodec } from '../codecs/value-codec.js'
import type { Clock } from '../core/clock.js'
import { KeySchema } from '../core/keys.js'
import type { KeyLayout } from '../core/key-layout.js'
import { NamespaceL1 } from '../core/namespace-l1.js'
import type { CacheRuntime } from '../core/runtime.js'
import { LocalFence } from '../coherence/fence.js'
import { GenerationTracker } from '../coherence/generation.js'
import type { AccessLog } from '../observability/access-log.js'
import type { LabeledCounters } from '../observability/labels.js'
import type { LoadContext, NamespaceOptions, ResolvedNamespaceOptions } from '../options.js'
import { CrossProcessLock } from '../policies/cross-process-lock.js'
import { SourceLimiter } from '../policies/source-limiter.js'
import { FlightRegistry } from '../read/flights.js'
import { FailSafeThrottle } from '../refresh/fail-safe-throttle.js'
import type { WriteContext, WriteBehindQueue } from '../write/write-behind.js'
import type { Policy } from './policy.js'
import { newCounters, newLatency, Recorder, type Counters, type Latency } from './recorder.js'

/** The functions of a declaration (`cache.namespace(name, options)`), as the namespace receives them. */
export type NamespaceFunctions<P, V> = Pick<
  NamespaceOptions<string, readonly string[], P, V>,
  'load' | 'loadMany' | 'tags' | 'write' | 'writeMany' | 'labels'
>

export class NamespaceContext<P, V> {
  readonly name: string
  /** `service:namespace:v{schemaVersion}:` — every key of this namespace starts with it. */
  readonly prefix: string
  readonly rt: CacheRuntime
  readonly clock: Clock
  readonly hitClock: Clock
  readonly keys: KeySchema
  /** This namespace's L1 entries on the cache's shared list, or undefined when this namespace skips L1. */
  readonly l1: NamespaceL1 | undefined
  /** Redaction, serialization, compression, encryption and the envelope, for L2. */
  readonly codec: ValueCodec
  /** The declared loaders, redacting what they return when the namespace redacts. */
  readonly load: ((params: P, context: LoadContext) => Promise<V> | V) | undefined
  readonly loadMany:
    ((params: readonly P[], context: LoadContext) => Promise<readonly V[]> | readonly V[]) | undefined
  readonly tags: ((params: P, value: V) => readonly string[]) | undefined
  readonly write: ((params: P, value: V, context: WriteContext) => unknown) | undefined
  /** Loads and background refreshes under way, by full key. */
  readonly flights = new FlightRegistry<V>()
  /** Whether a loaded value may still be cached, for invalidations this process saw; pruned past the oldest live flight. */
  readonly fence = new LocalFence((current) => this.flights.oldestToken(current))
  readonly counters: Counters = newCounters()
  /** Latency of loader calls, and of reads past L1 by outcome (L1 hits are not timed: they cost well under 50 µs). */
  readonly latency: Latency = newLatency()
  /** The namespace's generation (`invalidateAll()`), as this process knows it. */
  readonly generation: GenerationTracker
  /**
   * The L2 keys of the namespace's invalidation marks and tag sets, per fence shard (one on one Redis node): the
   * sequence, the mark of the last `clear()` and the mark every tag invalidation sets (for negative entries), outside
   * the key prefix so `clear()` leaves them; the sets of negative entries and of each tag.
   */
  readonly marks: KeyLayout
  readonly lock: CrossProcessLock | undefined
  readonly source: SourceLimiter
  /** Fail-safe throttle: keys whose loader failed, and until when it is not called again. */
  readonly throttle: FailSafeThrottle<P, V>
  readonly recorder: Recorder<P, V>
  /** The durable queue of `write()`s with write-behind. */
  writeBehind: WriteBehindQueue<P, V> | undefined = undefined
  /**
   * Keys whose change did not reach Redis (write/repairs.ts): this process reads them from the source, not from L2,
   * whose copy may be the value the change replaced. Undefined without L2.
   */
  repairs: { has(key: string): boolean } | undefined = undefined
  /** The sampled access log; undefined without `accessLog`. */
  accessLog: AccessLog | undefined = undefined
  /** Reads per label set; undefined without `labels`. */
  labeled: LabeledCounters<P> | undefined = undefined
  readonly #policy: Policy<P, V>

  /** `forgetEverything` runs when the generation changes (it belongs to the invalidation piece, made later). */
  constructor(
    runtime: CacheRuntime,
    policy: Policy<P, V>,
    functions: NamespaceFunctions<P, V>,
    forgetEverything: () => void,
  ) {
    const options = policy.options
    this.rt = runtime
    this.clock = runtime.clock
    this.hitClock = runtime.hitClock
    this.name = options.name
    this.#policy = policy
    this.keys = new KeySchema({
      service: runtime.service,
      namespace: options.name,
      schemaVersion: options.schemaVersion,
      template: options.key,
      dimensions: options.dimensions,
      maxKeyLength: runtime.maxKeyLength,
      types: options.params,
      fenceShards: runtime.l2?.store.fenceShards ?? 1,
    })
    this.prefix = this.keys.prefix
    const base = this.prefix.slice(0, -1)
    this.generation = new GenerationTracker(`${base}#gen`, {
      l2: runtime.l2,
      get closed() {
        return runtime.closed
      },
      current: () => this.keys.generation,
      change: (generation) => {
        forgetEverything()
        this.keys.setGeneration(generation)
      },
      failed: () => this.counters.l2Errors++,
      background: (work) => runtime.background(work),
      originKeys:
        this.keys.layout.sharded && runtime.l2?.checksOrigins === true
          ? this.keys.layout.shards.map((shard) => shard.origin)
          : [],
    })
    this.marks = this.keys.layout
    this.l1 =
      options.l1TtlMs > 0 && runtime.l1 !== undefined ? new NamespaceL1(runtime.l1, this.keys) : undefined
    this.codec = new ValueCodec(runtime.serializer, options.schemaVersion, options.codec)
    // Redact loaded values at the source, so L1, L2 and the caller of a miss all see the same redacted shape.
    const { load, loadMany } = functions
    const codec = this.codec
    this.load =
      load === undefined || options.codec.redactor === undefined
        ? load
        : async (params, context) => codec.redact(await load(params, context))
    this.loadMany =
      loadMany === undefined || options.codec.redactor === undefined
        ? loadMany
        : async (params, context) => {
            const values = await loadMany(params, context)
            // A malformed result is reported as such (LoadManyResultError) by the caller, not redacted.
            return isArray(values) ? values.map((value) => codec.redact(value)) : values
          }
    this.tags = functions.tags
    this.write = functions.write
    this.lock =
      options.lock === false || runtime.l2 === undefined
        ? undefined
        : new CrossProcessLock(runtime.l2, runtime.service, options.lock, (lockKey) => {
            this.counters.locksBroken++
            // The runtime's logger is isolated: a throwing one cannot break the load.
            runtime.logger.warn(
              { service: runtime.service, namespace: options.name, key: lockKey },
              'stratacache: replaced a lock key that had no expiry or did not hold a lock token: something ' +
                'other than the cache writes under its keys (a script, a manual SET, another program)',
            )
          })
    // Always present: with no limits it only counts loads per second, and never waits or arms a timer.
    // The cache's clock (a fake one in tests); the limiter never lets its readings go back, so a backward step of
    // the wall clock cannot freeze the source.
    this.source = new SourceLimiter(
      options.name,
      {
        maxConcurrent: options.source.maxConcurrent,
        maxPerSecond: options.source.maxPerSecond,
        maxWaitMs: options.source.maxWaitMs,
      },
      () => this.clock.now(),
    )
    this.throttle = new FailSafeThrottle(this)
    this.recorder = new Recorder(this)
  }

  /** The namespace's options, resolved: the declaration, or the policy `updatePolicy()` set since. */
  get options(): ResolvedNamespaceOptions {
    return this.#policy.options
  }

  /**
   * Logs a warning the first time `kind` happens in this namespace, and not again: for what the application does
   * the same way on every call (a loader whose values cannot be cached in L2), which one line explains and the
   * counters then measure. The runtime's logger is isolated: a throwing one cannot break the caller.
   */
  warnOnce(kind: string, fields: Readonly<Record<string, unknown>>, message: string): void {
    if (this.#warned.has(kind)) return
    this.#warned.add(kind)
    this.rt.logger.warn({ service: this.rt.service, namespace: this.name, ...fields }, message)
  }

  readonly #warned = new Set<string>()
}

/** An entry without tags (frozen, shared). */
export const NO_TAGS: readonly string[] = Object.freeze([])

/** Array.isArray without narrowing, so a typed list keeps its element type. */
export function isArray(value: unknown): boolean {
  return Array.isArray(value)
}
