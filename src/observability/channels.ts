// diagnostics_channel names and message shapes: subscribe with `diagnostics_channel.subscribe(channelNames.hit, fn)`.
import diagnosticsChannel from 'node:diagnostics_channel'
import type { CircuitState } from '../policies/circuit-breaker.js'
import type { L2Status } from '../tiers/l2-store.js'
import type { SloReport } from './slo.js'
import type { UntrustedValueError, UntrustedValueProblem } from '../errors.js'

/** Every channel stratacache publishes on. Messages are plain objects, described by the types below. */
export const channelNames = {
  /** A value was served from a tier. {@link HitMessage} */
  hit: 'stratacache:hit',
  /** Neither L1 nor L2 held a usable value; the loader runs (or `peek` returns undefined). {@link MissMessage} */
  miss: 'stratacache:miss',
  /** The loader settled. {@link LoadMessage} */
  load: 'stratacache:load',
  /** An L2 call failed, timed out or was skipped by the open circuit. {@link L2ErrorMessage} */
  l2Error: 'stratacache:l2:error',
  /**
   * Redis answered an L2 call with an error reply (OOM, WRONGTYPE, NOPERM, BUSY…): Redis is up, so the circuit
   * breaker ignores it. Also published on `l2Error`, like every failed call. {@link L2ErrorReplyMessage}
   */
  l2ErrorReply: 'stratacache:l2:error-reply',
  /** L2 connection status or circuit breaker state changed. {@link L2StateMessage} */
  l2State: 'stratacache:l2:state',
  /** `cache.inspect()` found Redis using more memory than the cache's `l2Budget`. {@link L2BudgetMessage} */
  l2Budget: 'stratacache:l2:budget',
  /** Bytes in L2 did not decode; the read was a miss. {@link DecodeErrorMessage} */
  decodeError: 'stratacache:decode-error',
  /** A loaded or set value could not be serialized, so it was not written to L2. {@link SerializeErrorMessage} */
  serializeError: 'stratacache:serialize-error',
  /**
   * A value in L2 failed its integrity check (tampered, copied from another key, unknown key id, or plaintext in a
   * namespace that encrypts); the read was a miss and the value was never returned. {@link SecurityMessage}
   */
  security: 'stratacache:security',
  /** An invalidation from another process was applied to this process's L1. {@link BusReceivedMessage} */
  busReceived: 'stratacache:bus:received',
  /** A write-behind flush of one write failed; it is retried after a delay. {@link WriteBehindFailedMessage} */
  writeBehindFailed: 'stratacache:write-behind:failed',
  /** A queued write failed `maxAttempts` times (or did not decode) and moved to the dead letters. {@link WriteBehindDeadLetterMessage} */
  writeBehindDeadLetter: 'stratacache:write-behind:dead-letter',
  /** A namespace's objectives went from met to breached, or back. {@link SloMessage} */
  slo: 'stratacache:slo',
  /** A peer region counts as split from this one, or was heard from again. {@link RegionSplitMessage} */
  regionSplit: 'stratacache:region:split',
} as const

export interface RegionSplitMessage {
  /** This process's region. */
  readonly region: string
  readonly peer: string
  /** true: the split started; false: it ended (with the split's report). */
  readonly split: boolean
  readonly heardAgoMs: number
  readonly durationMs?: number
  readonly replayed?: number
  readonly convergeMs?: number
}

export interface HitMessage {
  readonly namespace: string
  readonly key: string
  readonly tier: 'l1' | 'l2'
}
export interface MissMessage {
  readonly namespace: string
  readonly key: string
}
export interface LoadMessage {
  readonly namespace: string
  /** The keys loaded: one for `load`, all of a batch for `loadMany`. */
  readonly keys: readonly string[]
  readonly durationMs: number
  readonly error?: unknown
}
export interface L2ErrorMessage {
  readonly operation: string
  readonly error: unknown
}
export interface L2ErrorReplyMessage {
  readonly operation: string
  /** The reply's kind, its first word: `OOM`, `WRONGTYPE`, `NOPERM`, `BUSY`, `ERR`… */
  readonly kind: string
  /** The L2Error the call rejected with (`reply` is `kind`); Redis's reply is its `cause`. */
  readonly error: unknown
}
export interface L2StateMessage {
  readonly status?: L2Status
  readonly circuit?: CircuitState
}
export interface L2BudgetMessage {
  /** The cache's service, or undefined for `inspectRedis()` on a bare store. */
  readonly service: string | undefined
  /** Redis `used_memory` at the inspection, in bytes. */
  readonly usedBytes: number
  /** The budget, `l2Budget.maxBytes`. */
  readonly maxBytes: number
}
export interface DecodeErrorMessage {
  readonly namespace: string
  readonly key: string
  readonly error: Error
}
export interface SerializeErrorMessage {
  readonly namespace: string
  readonly key: string
  readonly error: Error
}

export interface SecurityMessage {
  readonly namespace: string
  readonly key: string
  readonly problem: UntrustedValueProblem
  /** The key id the value claims, when it is encrypted. */
  readonly keyId?: string
  readonly error: UntrustedValueError
}

export interface BusReceivedMessage {
  /** The service of the cache that received and applied it. */
  readonly service: string
  readonly kind: 'keys' | 'namespace' | 'tags'
  readonly namespace: string
  readonly keys?: readonly string[]
  readonly tags?: readonly string[]
  readonly origin: string
  /** Publish time to applied, in ms (clocks of different hosts may disagree by their skew). */
  readonly lagMs: number
}

export interface SloMessage {
  readonly service: string
  /** The verdict that changed: `ok` false is a breach, true a recovery. */
  readonly report: SloReport
}
export interface WriteBehindFailedMessage {
  readonly namespace: string
  readonly key: string
  /** Failed attempts so far, this one included. */
  readonly attempts: number
  readonly error: unknown
}
export interface WriteBehindDeadLetterMessage {
  readonly namespace: string
  /** Undefined when the stream entry did not decode. */
  readonly key: string | undefined
  /** The entry's id in the write-behind stream. */
  readonly id: string
  readonly attempts: number
  readonly reason: string
}

/**
 * `TracingChannel`s (`node:diagnostics_channel`) around every `get`, `getMany` and loader call, for APM tools: each
 * publishes `start`, `end`, `asyncStart`, `asyncEnd` (and `error`) on `tracing:<name>:<event>`, with one context
 * object per call. The context carries the namespace and, once settled, the outcome; never key values or cached
 * data (they may be personal data).
 */
export const tracingChannelNames = {
  /** Around `ns.get`. Context: {@link GetTraceContext}. */
  get: 'stratacache:get',
  /** Around `ns.getMany`. Context: {@link GetManyTraceContext}. */
  getMany: 'stratacache:get-many',
  /** Around each loader call (`load`, or one `loadMany` batch). Context: {@link LoadTraceContext}. */
  load: 'stratacache:load',
} as const

export interface GetTraceContext {
  /** The cache's `service` (several caches may share a process). */
  readonly service: string
  readonly namespace: string
  /**
   * Where the value came from, set before the call settles: `'l1'`, `'l2'`, or `'source'` (this read, or the
   * load it joined, went to the loader). Undefined when the read failed.
   */
  tier: 'l1' | 'l2' | 'source' | undefined
  /** Set by Node: the value, or the error. */
  result?: unknown
  error?: unknown
}

export interface GetManyTraceContext {
  readonly service: string
  readonly namespace: string
  /** Parameter sets asked for: the list's length, repeats included. */
  readonly keys: number
  /** Set by Node: the values, or the error. */
  result?: unknown
  error?: unknown
}

export interface LoadTraceContext {
  readonly service: string
  readonly namespace: string
  /** Keys in the call: 1 for `load`, the batch size for `loadMany`. */
  readonly keys: number
  result?: unknown
  error?: unknown
}

// The channel objects below are typed by the two small interfaces that follow, not by `node:diagnostics_channel`'s
// own types: those changed shape across @types/node majors (`TracingChannel<StoreType, ContextType>` in 20,
// `TracingChannel<ContextType extends object, StoreType>` later), and these constants end up in the published
// declarations, which must type-check against every @types/node a user may have (test/package/types.test.ts).

/** What stratacache uses of a `TracingChannel`. @internal */
export interface TraceChannel<Context extends object> {
  readonly hasSubscribers: boolean
  tracePromise<T>(fn: () => Promise<T>, context: Context): Promise<T>
}

/** What stratacache uses of a `Channel`. @internal */
export interface PublishChannel<Message> {
  readonly hasSubscribers: boolean
  publish(message: Message): void
}

/** The tracing channel objects, made once; callers check `hasSubscribers` first. */
export const traces: {
  readonly get: TraceChannel<GetTraceContext>
  readonly getMany: TraceChannel<GetManyTraceContext>
  readonly load: TraceChannel<LoadTraceContext>
} = {
  get: diagnosticsChannel.tracingChannel(tracingChannelNames.get),
  getMany: diagnosticsChannel.tracingChannel(tracingChannelNames.getMany),
  load: diagnosticsChannel.tracingChannel(tracingChannelNames.load),
}

const channel = <Message>(name: string): PublishChannel<Message> => diagnosticsChannel.channel(name)

/** The channel objects, made once; publishing checks `hasSubscribers` first so an idle channel costs nothing. */
export const channels = {
  hit: channel<HitMessage>(channelNames.hit),
  miss: channel<MissMessage>(channelNames.miss),
  load: channel<LoadMessage>(channelNames.load),
  l2Error: channel<L2ErrorMessage>(channelNames.l2Error),
  l2ErrorReply: channel<L2ErrorReplyMessage>(channelNames.l2ErrorReply),
  l2State: channel<L2StateMessage>(channelNames.l2State),
  l2Budget: channel<L2BudgetMessage>(channelNames.l2Budget),
  decodeError: channel<DecodeErrorMessage>(channelNames.decodeError),
  serializeError: channel<SerializeErrorMessage>(channelNames.serializeError),
  busReceived: channel<BusReceivedMessage>(channelNames.busReceived),
  writeBehindFailed: channel<WriteBehindFailedMessage>(channelNames.writeBehindFailed),
  writeBehindDeadLetter: channel<WriteBehindDeadLetterMessage>(channelNames.writeBehindDeadLetter),
  slo: channel<SloMessage>(channelNames.slo),
  security: channel<SecurityMessage>(channelNames.security),
  regionSplit: channel<RegionSplitMessage>(channelNames.regionSplit),
}
