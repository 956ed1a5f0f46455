// diagnostics_channel names and message shapes: subscribe with `diagnostics_channel.subscribe(channelNames.hit, fn)`.
import diagnosticsChannel from 'node:diagnostics_channel'
import type { CircuitState } from '../policies/circuit-breaker.js'
import type { L2Status } from '../tiers/l2-store.js'
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
  /** L2 connection status or circuit breaker state changed. {@link L2StateMessage} */
  l2State: 'stratacache:l2:state',
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
} as const

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
export interface L2StateMessage {
  readonly status?: L2Status
  readonly circuit?: CircuitState
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
  readonly kind: 'keys' | 'namespace' | 'tags'
  readonly namespace: string
  readonly keys?: readonly string[]
  readonly tags?: readonly string[]
  readonly origin: string
  /** Publish time to applied, in ms (clocks of different hosts may disagree by their skew). */
  readonly lagMs: number
}

/** The channel objects, made once; publishing checks `hasSubscribers` first so an idle channel costs nothing. */
export const channels = {
  hit: diagnosticsChannel.channel(channelNames.hit),
  miss: diagnosticsChannel.channel(channelNames.miss),
  load: diagnosticsChannel.channel(channelNames.load),
  l2Error: diagnosticsChannel.channel(channelNames.l2Error),
  l2State: diagnosticsChannel.channel(channelNames.l2State),
  decodeError: diagnosticsChannel.channel(channelNames.decodeError),
  serializeError: diagnosticsChannel.channel(channelNames.serializeError),
  busReceived: diagnosticsChannel.channel(channelNames.busReceived),
  security: diagnosticsChannel.channel(channelNames.security),
}
