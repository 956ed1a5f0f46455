// What a cache shares with its namespaces: the tiers, the codec, the clock, and the lifecycle.
import type { Entry } from '../codecs/envelope.js'
import type { Serializer } from '../codecs/serializer.js'
import type { L2Guard } from '../policies/l2-guard.js'
import type { MemoryStore } from '../tiers/memory-store.js'
import type { Clock } from './clock.js'

/** Internal: the cache-wide state every namespace reads. Not exported from the package. */
export interface CacheRuntime {
  readonly service: string
  readonly l1: MemoryStore<Entry> | undefined
  /** Whether L1 tracks a byte budget (then entry sizes are measured on write). */
  readonly l1TracksBytes: boolean
  readonly l2: L2Guard | undefined
  readonly serializer: Serializer
  readonly clock: Clock
  readonly random: () => number
  readonly maxKeyLength: number
  /** Aborted when the cache closes; handed to loaders. */
  readonly signal: AbortSignal
  readonly closed: boolean
  /** Tracks a background promise (an L2 write after a load) so `close()` can wait for it. Must not reject. */
  background(work: Promise<unknown>): void
}
