// What a namespace counts and times: hits and misses as they happen, and the snapshots read from them (stats, slo).
//
// Invariants:
// - Recording never throws into a read: counters only add, channels publish only with subscribers, and what runs
//   after a flight settled (`flightSettled`) is isolated by the flight registry.
// - L1 hits are counted, never timed: the hit path in namespace.ts bumps `l1Hits` inline, and the read histogram
//   counts them in its first bucket. Reads past L1 are timed once per flight, for all of its callers.
// - `stats()` is a frozen snapshot; nothing read from it changes afterwards.
import { AccessLog } from '../observability/access-log.js'
import { channels } from '../observability/channels.js'
import { Histogram, type HistogramSnapshot } from '../observability/histogram.js'
import type { LabeledReads } from '../observability/labels.js'
import { SloTracker, type SloReport } from '../observability/slo.js'
import type { Flight } from '../read/flights.js'
import type { NamespaceContext } from './context.js'

/**
 * Counters of one namespace since the cache was created. A read is one `get`, or one item of a `getMany` (`peek` is
 * not counted), and each is exactly one of `l1Hits`, `l2Hits`, `misses`; `latencyMs.read` counts each once too
 * (docs/observability.md, "How the counts add up").
 */
export interface NamespaceStats {
  /** Reads answered from this process's memory, fresh or stale (negative entries included). */
  readonly l1Hits: number
  /** Reads answered from L2, fresh or stale, including those that joined another read's L2 lookup of the key. */
  readonly l2Hits: number
  /**
   * L2 lookups the host tier answered (`host`) instead of L2: counted in `l2Hits` too (once per lookup: readers
   * that joined it count in `l2Hits` only).
   */
  readonly hostHits: number
  /**
   * Reads that found no usable value in any tier: each went to the loader, joined a load under way, or waited for
   * another process's load. Fail-safe and soft-timeout stale answers are misses too.
   */
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
  /**
   * Stale values served, by reason, once per lookup that produced one (readers that joined it are not counted
   * again). `swr` and `busOutage` answers are also counted as hits of their tier; `failSafe` and `softTimeout`
   * answers as misses (the read went to the loader first).
   */
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
  /**
   * `#lock` keys found holding something that cannot be a live lock (no expiry, not a lock token) and replaced:
   * each is logged as a warning, since something other than the cache writes under its keys.
   */
  readonly locksBroken: number
  /** Loaded values not stored because a write of the same entry happened while they loaded (they were older). */
  readonly staleLoadsDropped: number
  /**
   * Times a generation read of this process found Redis restored from a snapshot or replaced by a promoted replica
   * (another server id) and moved the namespace to a new generation, so entries older than the source are not
   * served (docs/consistency.md, "When Redis comes back with older data").
   */
  readonly l2Restores: number
  /**
   * Changes (`set`, `write`, `delete`) whose L2 step or announcement failed: each rejected, and its key is
   * invalidated again (in L2 and in every process's L1) once Redis answers (docs/consistency.md, "When a write
   * cannot reach Redis").
   */
  readonly repairsQueued: number
  /** Of those, the changes repaired since (their keys invalidated everywhere). */
  readonly repairsDone: number
  /** Changes still to repair: until then other processes may serve the value they replaced. */
  readonly repairsPending: number
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
  /**
   * Source writes that passed their timeout, each aborted: `write()`'s (`timeouts.write`; the key was dropped) and
   * write-behind flush calls (`writeBehind.writeTimeout`; retried).
   */
  readonly writeTimeouts: number
  /** Write-behind: `write()`s refused because the queue held `writeBehind.maxQueued` writes (nothing queued). */
  readonly writesRefused: number
  /** Warm-up jobs (`ns.warm()`, `stratacache warm`) this process finished, aborted ones included. */
  readonly warmUps: number
  /** Keys those warm-ups loaded from the source (not reads: they count in `loads`, not in hits or misses). */
  readonly warmUpKeysLoaded: number
  /** Keys those warm-ups found fresh already (in L1, or in L2 and copied to L1). */
  readonly warmUpKeysFresh: number
  /** Keys those warm-ups could not warm (bad parameters, a failed load). */
  readonly warmUpKeysFailed: number
  /**
   * Of `warmUpKeysLoaded`, keys L2 did not take or did not confirm within `timeouts.l2` (unreachable, an error,
   * slow): other processes load them again.
   */
  readonly warmUpKeysNotStored: number
  /** Time spent in those warm-ups, summed, in ms. */
  readonly warmUpMs: number
  /** Warm starts (`cache.warmStart()`, `ns.warmStart()`) this process ran. */
  readonly warmStarts: number
  /** Keys warm starts copied from L2 into L1 (a saved hot key still fresh in L2). */
  readonly warmStartKeys: number
  /** Time those warm starts took, summed, in ms (reading the saved list and copying its entries). */
  readonly warmStartMs: number
  /**
   * Regions: cached values (L1 or L2) a `strong` or `bounded` namespace refused to serve because a peer region was
   * not heard from for longer than its bound allows (docs/consistency.md, "Regions"); each read went to the source.
   */
  readonly regionRefused: number
  /**
   * Regions: cached values an `eventual` namespace served while a peer region was split from this one (they may
   * miss the peer's invalidations since).
   */
  readonly regionSplitServes: number
  /** Latency histograms in ms (buckets in `bucketsMs`, counts per bucket, not cumulative). */
  readonly latencyMs: {
    /** Loader calls (`load`, or one `loadMany` batch), failed ones included. */
    readonly load: HistogramSnapshot
    /** Reads answered from L2 (L1 missed): one entry per read, so its count is `l2Hits`. */
    readonly l2Hit: HistogramSnapshot
    /**
     * Reads no tier could answer: the loader's time plus the tiers' (and any wait for another process). One entry
     * per read, so its count is `misses`.
     */
    readonly miss: HistogramSnapshot
    /**
     * Every read (each `get`, each `getMany` item): the above, plus L1 hits counted in the first bucket without
     * being timed. Its count is `l1Hits + l2Hits + misses`. The read latency objective (`slo.readP99`) is checked on
     * it.
     */
    readonly read: HistogramSnapshot
    /**
     * Invalidation lag: each bus message from another process naming this namespace, from its publication to its
     * entries dropped here, measured on Redis's clock (`clockSync`), so host clock skew does not show as lag.
     */
    readonly invalidation: HistogramSnapshot
  }
  /** What a miss costs a reader over a hit, on average: mean miss latency minus mean hit latency (L1 and L2), ms. */
  readonly missPenaltyMs: number
  /** With `labels`: reads per label set (at most `maxLabelSets`, then `_other`); empty without. */
  readonly byLabels: readonly LabeledReads[]
}

/** The mutable counters behind `NamespaceStats` (stale reads by reason, flat). */
export type Counters = {
  -readonly [
    K in Exclude<
      keyof NamespaceStats,
      'hitRatio' | 'staleServed' | 'loadsPerSecond' | 'latencyMs' | 'missPenaltyMs' | 'byLabels'
    >
  ]: number
} & { staleSwr: number; staleFailSafe: number; staleSoftTimeout: number; staleBusOutage: number }

/** Latency of loader calls, and of reads past L1 by outcome. */
export interface Latency {
  readonly load: Histogram
  readonly l2Hit: Histogram
  readonly miss: Histogram
  readonly invalidation: Histogram
}

const NO_LABELS: readonly LabeledReads[] = Object.freeze([])

/** Every counter at 0. */
export function newCounters(): Counters {
  return {
    l1Hits: 0,
    l2Hits: 0,
    hostHits: 0,
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
    locksBroken: 0,
    sourceBusy: 0,
    staleLoadsDropped: 0,
    l2Restores: 0,
    repairsQueued: 0,
    repairsDone: 0,
    repairsPending: 0,
    writesQueued: 0,
    writesFlushed: 0,
    writeRetries: 0,
    writesDeadLettered: 0,
    writesClaimed: 0,
    writeTimeouts: 0,
    writesRefused: 0,
    warmUps: 0,
    warmUpKeysLoaded: 0,
    warmUpKeysFresh: 0,
    warmUpKeysFailed: 0,
    warmUpKeysNotStored: 0,
    warmUpMs: 0,
    warmStarts: 0,
    warmStartKeys: 0,
    warmStartMs: 0,
    regionRefused: 0,
    regionSplitServes: 0,
  }
}

export function newLatency(): Latency {
  return {
    load: new Histogram(),
    l2Hit: new Histogram(),
    miss: new Histogram(),
    invalidation: new Histogram(),
  }
}

export class Recorder<P, V> {
  readonly #ctx: NamespaceContext<P, V>
  /** Samples this namespace's counters for its objectives; undefined without `slo`. */
  #slo: SloTracker | undefined

  constructor(ctx: NamespaceContext<P, V>) {
    this.#ctx = ctx
  }

  publishHit(params: unknown, tier: 'l1' | 'l2'): void {
    channels.hit.publish({ namespace: this.#ctx.name, key: this.#ctx.keys.build(params), tier })
  }

  hitL2(key: string): void {
    this.#ctx.counters.l2Hits++
    if (channels.hit.hasSubscribers) channels.hit.publish({ namespace: this.#ctx.name, key, tier: 'l2' })
  }

  miss(key: string): void {
    this.#ctx.counters.misses++
    if (channels.miss.hasSubscribers) channels.miss.publish({ namespace: this.#ctx.name, key })
  }

  /**
   * An L2 hit outside any flight (a strong read that read L2 itself rather than join another reader's L2 read):
   * counted and timed like a flight's, so the read histogram still counts every read.
   */
  hitL2Alone(key: string, params: P, started: number): void {
    const ctx = this.#ctx
    this.hitL2(key)
    ctx.latency.l2Hit.observe(performance.now() - started, 1)
    ctx.labeled?.count(params, 'l2Hits', 1)
    ctx.accessLog?.record(key, 'l2', ctx.l1?.byKey(key)?.size ?? 0, 1)
  }

  /**
   * What every caller of a settled flight waited (those who joined late waited less: counted as the whole). The
   * reader that started it was counted as an L2 hit or a miss when that was known; those who joined it are counted
   * here, with the same outcome, so that each read is one hit or miss and one entry of the read histogram.
   */
  flightSettled(flight: Flight<V>, params: P, key: string): void {
    const ctx = this.#ctx
    if (flight.callers > 1) {
      if (flight.missed) ctx.counters.misses += flight.callers - 1
      else ctx.counters.l2Hits += flight.callers - 1
    }
    ;(flight.missed ? ctx.latency.miss : ctx.latency.l2Hit).observe(
      performance.now() - flight.started,
      flight.callers,
    )
    ctx.labeled?.count(params, flight.missed ? 'misses' : 'l2Hits', flight.callers)
    ctx.accessLog?.record(key, flight.missed ? 'miss' : 'l2', ctx.l1?.byKey(key)?.size ?? 0, flight.callers)
  }

  /** The sampled access log, flushed to L2 and closed before the cache closes; undefined without `accessLog`. */
  startAccessLog(): AccessLog | undefined {
    const { rt: runtime, name } = this.#ctx
    const config = this.#ctx.options.accessLog
    if (config === undefined) return undefined
    const log = new AccessLog(name, `${runtime.service}:${name}#access`, config, runtime.l2, () =>
      runtime.clock.now(),
    )
    runtime.beforeClose(() => log.close())
    return log
  }

  /** Starts sampling the counters for the namespace's objectives (`slo`), if it declares any. */
  startSlo(): void {
    const slo = this.#ctx.options.slo
    this.#slo =
      slo === undefined
        ? undefined
        : new SloTracker(
            slo,
            () => {
              const s = this.stats()
              const { swr, failSafe, softTimeout, busOutage } = s.staleServed
              return {
                read: s.latencyMs.read,
                reads: s.l1Hits + s.l2Hits + s.misses,
                staleReads: swr + failSafe + softTimeout + busOutage,
              }
            },
            this.#ctx.clock.now(),
          )
  }

  /** The objectives' compliance; a change of verdict is published on `stratacache:slo` and logged. */
  slo(): SloReport | undefined {
    if (this.#slo === undefined) return undefined
    const { rt, name } = this.#ctx
    const { report, changed } = this.#slo.evaluate(name, this.#ctx.clock.now())
    if (changed) {
      const fields = { service: rt.service, namespace: name, report }
      if (report.ok) rt.logger.info(fields, 'stratacache: namespace objectives met again')
      else rt.logger.warn(fields, 'stratacache: namespace objectives breached')
      if (channels.slo.hasSubscribers) channels.slo.publish({ service: rt.service, report })
    }
    return report
  }

  /** A frozen snapshot of this namespace's counters. */
  stats(): NamespaceStats {
    const { staleSwr, staleFailSafe, staleSoftTimeout, staleBusOutage, ...c } = this.#ctx.counters
    const reads = c.l1Hits + c.l2Hits + c.misses
    return Object.freeze({
      ...c,
      loadsPerSecond: this.#ctx.source.startsPerSecond(),
      hitRatio: reads === 0 ? 0 : (c.l1Hits + c.l2Hits) / reads,
      staleServed: Object.freeze({
        swr: staleSwr,
        failSafe: staleFailSafe,
        softTimeout: staleSoftTimeout,
        busOutage: staleBusOutage,
      }),
      latencyMs: this.#latencySnapshot(c.l1Hits),
      missPenaltyMs: this.#missPenalty(c.l1Hits),
      byLabels: this.#ctx.labeled?.snapshot() ?? NO_LABELS,
    })
  }

  #latencySnapshot(l1Hits: number): NamespaceStats['latencyMs'] {
    const latency = this.#ctx.latency
    const read = new Histogram()
    read.observe(0, l1Hits)
    read.add(latency.l2Hit.snapshot())
    read.add(latency.miss.snapshot())
    return Object.freeze({
      load: latency.load.snapshot(),
      l2Hit: latency.l2Hit.snapshot(),
      miss: latency.miss.snapshot(),
      read: read.snapshot(),
      invalidation: latency.invalidation.snapshot(),
    })
  }

  #missPenalty(l1Hits: number): number {
    const miss = this.#ctx.latency.miss.snapshot()
    const hit = this.#ctx.latency.l2Hit.snapshot()
    if (miss.count === 0) return 0
    // L1 hits count as 0 ms: they are not timed, and cost well under a bucket's width.
    const hits = hit.count + l1Hits
    return miss.sumMs / miss.count - (hits === 0 ? 0 : hit.sumMs / hits)
  }
}
