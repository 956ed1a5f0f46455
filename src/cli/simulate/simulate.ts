// Shadow evaluation: replays an access log against a policy and predicts hit ratios, source load and staleness.
import { MemoryStore } from '../../tiers/memory-store.js'
import type { AccessRecord } from '../access-log.js'
import { LruStore } from './lru-store.js'
import type { SimulationPolicy } from './policy.js'

/** What replaying a log against one policy predicts (or, for `observe`, what production did). */
export interface SimulationResult {
  /** Reads replayed (after the policy's namespace filter). */
  readonly reads: number
  readonly l1Hits: number
  /** Reads L2 answered, fresh or stale. */
  readonly l2Hits: number
  /** Reads answered with a value past its TTL (inside the stale window); each also started one refresh. */
  readonly staleReads: number
  /** Reads neither tier could answer. */
  readonly misses: number
  /**
   * Loads from the source: misses plus the refreshes started by stale reads. Null for `observe`: the log records
   * reads, not the background refreshes, and its misses include reads that joined another read's load.
   */
  readonly sourceCalls: number | null
  /** From the first replayed read to the last. */
  readonly durationMs: number
  /** Share of all reads answered by L1. */
  readonly l1HitRatio: number
  /** Share of the reads that reached L2 (L1 misses) answered by it. */
  readonly l2HitRatio: number
  /** Share of all reads answered by a cache tier. */
  readonly hitRatio: number
  /** Share of all reads answered stale; null when the log cannot tell (observed). */
  readonly staleShare: number | null
  /**
   * Misses per second of the full traffic (scaled up by the sample rate): the one source-load figure a log can
   * also observe, so the one to compare with production. Null for a log of one instant.
   */
  readonly missesPerSecond: number | null
  /** Source calls per second of the full traffic (scaled up by the sample rate); null as above, and for `observe`. */
  readonly sourceCallsPerSecond: number | null
  /**
   * Bytes loaded from the source per second of full traffic (sum of the loaded values' `s`); null as above, and
   * for `observe` (which cannot see refreshes).
   */
  readonly sourceBytesPerSecond: number | null
}

export interface SimulateOptions {
  /**
   * Share of keys the log holds (0 to 1]. The recorder samples by key hash, so every read of a sampled key is in the
   * log: hit ratios carry over, the L1 is shrunk by the same share to hold the same share of keys, and per-second
   * figures are scaled back up. @default 1
   */
  readonly sampleRate?: number
  /** Called every 65,536 reads replayed. */
  readonly onProgress?: ((replayed: number) => void) | undefined
}

interface L1 {
  get(key: string): unknown
  set(key: string, value: true, options: { ttl: number }): unknown
}

/**
 * Replays `records` (sorted by time) against `policy`. The model, per read at time t of key k:
 * 1. L1 holds k until `ttl` after it was last loaded: a hit there is an L1 hit.
 * 2. Else L2 (unbounded, as Redis with room) holds k until `ttl + staleFor` after it was last loaded. Before `ttl`
 *    it is a fresh L2 hit; after, a stale read that starts one refresh (a source call) which lands at once. Either
 *    way the value goes to L1 for the rest of its freshness.
 * 3. Else it is a miss: one source call, and the value goes to L2 and L1 for `ttl`.
 * One process is modelled (one L1); concurrent misses of one key count once, as single-flight makes them.
 */
export function simulate(
  records: readonly AccessRecord[],
  policy: SimulationPolicy,
  options: SimulateOptions = {},
): SimulationResult {
  const sampleRate = options.sampleRate ?? 1
  let now = 0
  const clock = { now: () => now }
  const l1: L1 | undefined =
    policy.l1 === false
      ? undefined
      : policy.l1.policy === 'lru'
        ? new LruStore<true>(scaled(policy.l1.maxEntries, sampleRate), clock)
        : new MemoryStore<true>({ maxEntries: scaled(policy.l1.maxEntries, sampleRate), clock })
  /** When each key was last loaded from the source. */
  const loadedAt = new Map<string, number>()
  const { ttlMs, staleForMs } = policy
  let reads = 0
  let l1Hits = 0
  let l2Hits = 0
  let staleReads = 0
  let misses = 0
  let sourceCalls = 0
  let sourceBytes = 0
  let first: number | undefined
  let last = 0

  for (const record of records) {
    if (policy.namespace !== undefined && record.ns !== policy.namespace) continue
    now = record.t
    first ??= now
    last = now
    reads++
    if (options.onProgress !== undefined && (reads & 0xffff) === 0) options.onProgress(reads)
    // Namespaces are separate key spaces even if two hashes collide across them.
    const key = `${record.ns}\u0000${record.k}`
    if (l1?.get(key) !== undefined) {
      l1Hits++
      continue
    }
    const loaded = loadedAt.get(key)
    const age = loaded === undefined ? Infinity : now - loaded
    if (age < ttlMs) {
      l2Hits++
      l1?.set(key, true, { ttl: ttlMs - age })
    } else if (age < ttlMs + staleForMs) {
      // Served stale; the one background refresh it starts is modelled as landing at once.
      l2Hits++
      staleReads++
      sourceCalls++
      sourceBytes += record.s
      loadedAt.set(key, now)
      l1?.set(key, true, { ttl: ttlMs })
    } else {
      misses++
      sourceCalls++
      sourceBytes += record.s
      loadedAt.set(key, now)
      l1?.set(key, true, { ttl: ttlMs })
    }
  }
  return summarize({
    reads,
    l1Hits,
    l2Hits,
    staleReads,
    misses,
    sourceCalls,
    sourceBytes,
    durationMs: first === undefined ? 0 : last - first,
    sampleRate,
    staleKnown: true,
  })
}

/**
 * What production did, from the outcomes the log recorded (`o`), for the reads `namespace` selects: the quantities
 * a log of reads can show (hits by tier, misses); source calls and staleness are null, as the log cannot tell them.
 */
export function observe(
  records: readonly AccessRecord[],
  namespace: string | undefined,
  options: Pick<SimulateOptions, 'sampleRate'> = {},
): SimulationResult {
  let reads = 0
  let l1Hits = 0
  let l2Hits = 0
  let misses = 0
  let first: number | undefined
  let last = 0
  for (const record of records) {
    if (namespace !== undefined && record.ns !== namespace) continue
    first ??= record.t
    last = record.t
    reads++
    if (record.o === 'l1') l1Hits++
    else if (record.o === 'l2') l2Hits++
    else misses++
  }
  return summarize({
    reads,
    l1Hits,
    l2Hits,
    staleReads: 0,
    misses,
    // Unknown: background refreshes are not reads, so not in the log (and a recorded miss may have joined a load).
    sourceCalls: null,
    sourceBytes: null,
    durationMs: first === undefined ? 0 : last - first,
    sampleRate: options.sampleRate ?? 1,
    staleKnown: false,
  })
}

function summarize(c: {
  reads: number
  l1Hits: number
  l2Hits: number
  staleReads: number
  misses: number
  sourceCalls: number | null
  sourceBytes: number | null
  durationMs: number
  sampleRate: number
  staleKnown: boolean
}): SimulationResult {
  const perSecond = (n: number | null) =>
    n !== null && c.durationMs > 0 ? n / (c.durationMs / 1000) / c.sampleRate : null
  const ratio = (n: number, d: number) => (d > 0 ? n / d : 0)
  return {
    reads: c.reads,
    l1Hits: c.l1Hits,
    l2Hits: c.l2Hits,
    staleReads: c.staleReads,
    misses: c.misses,
    sourceCalls: c.sourceCalls,
    durationMs: c.durationMs,
    l1HitRatio: ratio(c.l1Hits, c.reads),
    l2HitRatio: ratio(c.l2Hits, c.reads - c.l1Hits),
    hitRatio: ratio(c.l1Hits + c.l2Hits, c.reads),
    staleShare: c.staleKnown ? ratio(c.staleReads, c.reads) : null,
    missesPerSecond: perSecond(c.misses),
    sourceCallsPerSecond: perSecond(c.sourceCalls),
    sourceBytesPerSecond: perSecond(c.sourceBytes),
  }
}

/** The L1 size for a sample holding `rate` of the keys: the same share of the entries, at least one. */
function scaled(maxEntries: number, rate: number): number {
  return Math.max(1, Math.round(maxEntries * rate))
}
