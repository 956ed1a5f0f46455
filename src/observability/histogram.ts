// Latency histograms: fixed buckets, one array increment per observation, snapshots for stats() and exporters.

/**
 * Upper bounds (ms) of the buckets, Prometheus style: an observation falls in the first bucket whose bound it does
 * not exceed; the last bucket (Infinity) takes the rest. From 0.05 ms (an L1-speed read) to 10 s (a stuck loader).
 */
export const LATENCY_BUCKETS_MS: readonly number[] = Object.freeze([
  0.05,
  0.1,
  0.25,
  0.5,
  1,
  2.5,
  5,
  10,
  25,
  50,
  100,
  250,
  500,
  1_000,
  2_500,
  5_000,
  10_000,
  Infinity,
])

/** A histogram as stats() reports it: counts per bucket (not cumulative), their total and the sum. */
export interface HistogramSnapshot {
  /** Upper bounds in ms, the same for every histogram: {@link LATENCY_BUCKETS_MS}. */
  readonly bucketsMs: readonly number[]
  /** Observations per bucket (`counts[i]` fell in `(bucketsMs[i-1], bucketsMs[i]]`). */
  readonly counts: readonly number[]
  readonly count: number
  readonly sumMs: number
}

export class Histogram {
  readonly #counts = new Array<number>(LATENCY_BUCKETS_MS.length).fill(0)
  #count = 0
  #sum = 0

  /** Records one observation of `ms` milliseconds (`times` identical ones at once). */
  observe(ms: number, times = 1): void {
    const buckets = LATENCY_BUCKETS_MS
    let i = 0
    // Eighteen buckets: a linear scan that usually stops within the first few is cheaper than a binary search.
    while (ms > buckets[i]!) i++
    this.#counts[i]! += times
    this.#count += times
    this.#sum += ms * times
  }

  /** Adds another histogram's observations (for a sliding window built of slices). */
  add(other: HistogramSnapshot): void {
    for (let i = 0; i < other.counts.length; i++) this.#counts[i]! += other.counts[i]!
    this.#count += other.count
    this.#sum += other.sumMs
  }

  reset(): void {
    this.#counts.fill(0)
    this.#count = 0
    this.#sum = 0
  }

  get count(): number {
    return this.#count
  }

  snapshot(): HistogramSnapshot {
    return Object.freeze({
      bucketsMs: LATENCY_BUCKETS_MS,
      counts: Object.freeze([...this.#counts]),
      count: this.#count,
      sumMs: this.#sum,
    })
  }
}

/**
 * The `q` quantile (0 < q <= 1) of a snapshot, as the upper bound of the bucket that holds it: an over-estimate by
 * at most one bucket, never an under-estimate (so an objective met here is met). 0 for an empty histogram.
 */
export function quantileMs(snapshot: HistogramSnapshot, q: number): number {
  if (snapshot.count === 0) return 0
  const rank = Math.ceil(q * snapshot.count)
  let seen = 0
  for (let i = 0; i < snapshot.counts.length; i++) {
    seen += snapshot.counts[i]!
    if (seen >= rank) return snapshot.bucketsMs[i]!
  }
  return Infinity
}
