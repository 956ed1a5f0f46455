// What a cache shares with its namespaces: the tiers, the codec, the clock, and the lifecycle.
import type { Entry } from '../codecs/envelope.js'
import type { Serializer } from '../codecs/serializer.js'
import type { L2Guard } from '../policies/l2-guard.js'
import type { HostTier } from '../storage/host-tier.js'
import type { WTinyLfu } from '../tiers/w-tiny-lfu.js'
import type { InvalidationBus } from '../bus/invalidation-bus.js'
import type { Invalidation } from '../bus/wire.js'
import type { Clock } from './clock.js'
import type { Logger } from '../options.js'
import type { RegionView } from '../regions/region-relay.js'

/** Internal: the cache-wide state every namespace reads. Not exported from the package. */
export interface CacheRuntime {
  readonly service: string
  /** The L1 eviction policy and budget that every namespace's L1 index shares; undefined when L1 is off. */
  readonly l1: WTinyLfu<Entry> | undefined
  readonly l2: L2Guard | undefined
  /** The tier between L1 and L2 shared by the host's processes (`host`); undefined without one. */
  readonly host: HostTier | undefined
  /**
   * L2's clock minus this process's clock, in ms (0 without L2, or while they agree within the tolerance): entry
   * times are shifted by it when written to L2 and back when read (`coherence/clock-sync.ts`).
   */
  readonly l2ClockOffsetMs: number
  readonly serializer: Serializer
  readonly clock: Clock
  /** The clock for L1 expiry checks on the hit path: `sampledClock(clock)`. */
  readonly hitClock: Clock
  readonly random: () => number
  /** The user's logger (silent by default). */
  readonly logger: Logger
  readonly maxKeyLength: number
  /** Aborted when the cache closes; handed to loaders. */
  readonly signal: AbortSignal
  readonly closed: boolean
  /** The invalidation bus, present with L2: namespaces publish their writes on it. */
  readonly bus: InvalidationBus | undefined
  /** With `regions`: the outbox writes append to, and how far the peer regions have been heard from. */
  readonly regions: RegionView | undefined
  /**
   * Registers the namespace's handler for invalidations from other processes (with their lag: publication to now,
   * in ms), for 'missed' (the bus was down, so invalidations may have been lost), 'l2-ready' (the L2 connection is
   * ready again) and 'deaf' (the pub/sub connection was lost).
   */
  onInvalidation(
    namespace: string,
    handler: (invalidation: Invalidation | 'missed' | 'l2-ready' | 'deaf', lagMs?: number) => void,
  ): void
  /** Registers work to run when the cache starts closing, while L2 is still open (write-behind flushers stop). */
  beforeClose(work: () => Promise<void>): void
  /** Registers work to run when the cache closes (namespaces drop their L1 index). */
  onClose(release: () => void): void
  /** Tracks a background promise (an L2 write after a load) so `close()` can wait for it. Must not reject. */
  background(work: Promise<unknown>): void
}
