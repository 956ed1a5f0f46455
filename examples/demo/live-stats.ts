// Turns the cache's running totals into per-second numbers for the dashboard: one sample a second, the last two
// minutes kept.
import type { Cache, CacheStats } from 'stratacache'

/** One second of the demo, as the dashboard charts it. Rates are per second; latencies in ms. */
export interface Sample {
  /** Epoch ms at the end of the second. */
  readonly t: number
  /** API requests (product and page reads, updates) answered in the second. */
  readonly requests: number
  /** Of those, requests answered with the cache bypassed (straight from the database): never cache reads. */
  readonly bypassed: number
  /**
   * Cache reads by the tier that answered them, and the share of each in % of those reads only. Null when the
   * cache was not read (bypassed: a share of nothing is no number), and when more requests bypassed the cache than
   * read it: the bypass was switched in that second, and its few cache reads sit at one edge of it (right after
   * the bypass ends they are mostly L2 and misses, since L1's copies expired meanwhile), so their shares would draw
   * a spike that is no second's hit ratio.
   */
  readonly reads: { readonly l1: number; readonly l2: number; readonly miss: number }
  readonly hitRatio: { readonly l1: number; readonly l2: number; readonly miss: number } | null
  /** Server-side request latency percentiles of the second (null when no request was answered). */
  readonly p50: number | null
  readonly p99: number | null
  /** Queries the database received: the load the cache keeps off the source. */
  readonly sourceQueries: number
  /** Stale values served, by reason. */
  readonly stale: { readonly swr: number; readonly failSafe: number; readonly softTimeout: number }
  /** L2 calls that failed, timed out or were skipped by the open circuit. */
  readonly l2Errors: number
  readonly l1Entries: number | null
  readonly l1Bytes: number | null
  /** Keys in the Redis database (DBSIZE); null without L2 or while it cannot be read. */
  readonly l2Keys: number | null
}

export interface LiveStatsSources {
  readonly cache: Cache
  /** The database's running count of queries. */
  readonly sourceQueries: () => number
  /** Keys in L2, or null when unknown. Bounded in time by the caller. */
  readonly l2Keys: () => Promise<number | null>
}

/** Most latency samples kept per second; beyond it, reservoir sampling keeps the percentiles honest. */
const MAX_LATENCIES = 20_000

export class LiveStats {
  readonly #sources: LiveStatsSources
  readonly #history: Sample[] = []
  readonly #keep: number
  #timer: NodeJS.Timeout | undefined
  #latencies: number[] = []
  #seen = 0
  #requests = 0
  #bypassed = 0
  #last: { stats: CacheStats; queries: number } | undefined
  #l2Keys: number | null = null
  #sampling = false

  constructor(sources: LiveStatsSources, keepSeconds = 120) {
    this.#sources = sources
    this.#keep = keepSeconds
  }

  /** Starts sampling once a second (the timer does not keep the process alive). */
  start(intervalMs = 1_000): void {
    this.#last = { stats: this.#sources.cache.stats(), queries: this.#sources.sourceQueries() }
    this.#timer = setInterval(() => void this.sample(), intervalMs)
    this.#timer.unref()
  }

  stop(): void {
    clearInterval(this.#timer)
    this.#timer = undefined
  }

  /** Records one answered API request and how long it took, in ms; `bypassed` when the cache was not asked. */
  record(latencyMs: number, bypassed = false): void {
    this.#requests++
    if (bypassed) this.#bypassed++
    this.#seen++
    if (this.#latencies.length < MAX_LATENCIES) {
      this.#latencies.push(latencyMs)
    } else {
      const slot = Math.floor(Math.random() * this.#seen)
      if (slot < MAX_LATENCIES) this.#latencies[slot] = latencyMs
    }
  }

  /** The samples so far, oldest first. */
  history(): readonly Sample[] {
    return this.#history
  }

  /** Takes one sample: the differences since the previous one. Called by the timer; tests may call it directly. */
  async sample(): Promise<Sample | undefined> {
    if (this.#sampling || this.#last === undefined) return undefined
    this.#sampling = true
    try {
      // Read the slow number first, so the counters below describe the same second as the latencies.
      this.#l2Keys = await this.#sources.l2Keys().catch(() => null)
      const stats = this.#sources.cache.stats()
      const queries = this.#sources.sourceQueries()
      const previous = this.#last
      this.#last = { stats, queries }
      const now = totals(stats)
      const before = totals(previous.stats)
      const l1 = now.l1Hits - before.l1Hits
      const l2 = now.l2Hits - before.l2Hits
      const miss = now.misses - before.misses
      const reads = l1 + l2 + miss
      const latencies = this.#latencies.sort((a, b) => a - b)
      const sample: Sample = {
        t: Date.now(),
        requests: this.#requests,
        bypassed: this.#bypassed,
        reads: { l1, l2, miss },
        hitRatio:
          reads === 0 || this.#bypassed > reads
            ? null
            : { l1: percent(l1, reads), l2: percent(l2, reads), miss: percent(miss, reads) },
        p50: percentile(latencies, 0.5),
        p99: percentile(latencies, 0.99),
        sourceQueries: queries - previous.queries,
        stale: {
          swr: now.swr - before.swr,
          failSafe: now.failSafe - before.failSafe,
          softTimeout: now.softTimeout - before.softTimeout,
        },
        l2Errors: now.l2Errors - before.l2Errors,
        l1Entries: stats.l1?.entries ?? null,
        l1Bytes: stats.l1?.bytes ?? null,
        l2Keys: this.#l2Keys,
      }
      this.#latencies = []
      this.#seen = 0
      this.#requests = 0
      this.#bypassed = 0
      this.#history.push(sample)
      if (this.#history.length > this.#keep) this.#history.shift()
      return sample
    } finally {
      this.#sampling = false
    }
  }
}

/** Sums the counters the dashboard shows over every namespace. */
function totals(stats: CacheStats) {
  const sum = { l1Hits: 0, l2Hits: 0, misses: 0, swr: 0, failSafe: 0, softTimeout: 0, l2Errors: 0 }
  for (const n of Object.values(stats.namespaces)) {
    sum.l1Hits += n.l1Hits
    sum.l2Hits += n.l2Hits
    sum.misses += n.misses
    sum.swr += n.staleServed.swr
    sum.failSafe += n.staleServed.failSafe
    sum.softTimeout += n.staleServed.softTimeout
    sum.l2Errors += n.l2Errors
  }
  return sum
}

function percent(part: number, whole: number): number {
  return Math.round((part / whole) * 1000) / 10
}

/** Nearest-rank percentile of sorted values, rounded to 0.01 ms. */
function percentile(sorted: readonly number[], q: number): number | null {
  if (sorted.length === 0) return null
  const value = sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!
  return Math.round(value * 100) / 100
}
