// Service level objectives per namespace, evaluated over a sliding window of the namespace's own counters.
import { Histogram, quantileMs, type HistogramSnapshot } from './histogram.js'

/** What a namespace may promise, checked over the last `window`. */
export interface ResolvedSlo {
  /** The 99th percentile of `get` latency must not exceed this (ms). */
  readonly readP99Ms: number | undefined
  /** The share of reads answered with a stale value must not exceed this (0 to 1). */
  readonly staleReadsMax: number | undefined
  readonly windowMs: number
}

/** Cumulative counters of a namespace, as the tracker samples them. */
export interface SloSample {
  readonly read: HistogramSnapshot
  readonly reads: number
  readonly staleReads: number
}

/** One objective's verdict. */
export interface SloObjective {
  readonly objective: number
  /** Over the window; for `readP99`, the upper bound of the bucket holding the 99th percentile (never under). */
  readonly actual: number
  readonly ok: boolean
}

/** A namespace's compliance over its window. */
export interface SloReport {
  readonly namespace: string
  readonly windowMs: number
  /** Reads in the window (L1, L2 and misses). */
  readonly reads: number
  readonly readP99Ms: SloObjective | undefined
  readonly staleReads: SloObjective | undefined
  /** Every declared objective met (true with no reads: nothing was promised and broken). */
  readonly ok: boolean
}

/** Slices per window: the window slides in steps of a tenth of it. */
const SLICES = 10

/**
 * Keeps cumulative samples at slice boundaries, so the counts over the last window are the current sample minus
 * the one taken a window ago (to a slice's precision). Costs one sample per slice and nothing on the read path.
 */
export class SloTracker {
  readonly #slo: ResolvedSlo
  readonly #sample: () => SloSample
  /** Cumulative samples, oldest first, each with the time it was taken. */
  readonly #ring: { at: number; sample: SloSample }[] = []
  #lastOk: boolean | undefined

  constructor(slo: ResolvedSlo, sample: () => SloSample, now: number) {
    this.#slo = slo
    this.#sample = sample
    this.#ring.push({ at: now, sample: sample() })
  }

  /** Takes a sample when a slice has passed, dropping those older than the window. */
  tick(now: number): void {
    const slice = this.#slo.windowMs / SLICES
    if (now - this.#ring.at(-1)!.at >= slice) this.#ring.push({ at: now, sample: this.#sample() })
    // Keep the newest sample at least a window old: the baseline of the window.
    while (this.#ring.length > 1 && now - this.#ring[1]!.at >= this.#slo.windowMs) this.#ring.shift()
  }

  /** The verdict over the window ending `now`, and whether it changed since the last evaluation. */
  evaluate(namespace: string, now: number): { report: SloReport; changed: boolean } {
    this.tick(now)
    const base = this.#ring[0]!.sample
    const current = this.#sample()
    const window = new Histogram()
    window.add(current.read)
    // Current minus baseline: add the baseline negated.
    window.add({
      ...base.read,
      counts: base.read.counts.map((c) => -c),
      count: -base.read.count,
      sumMs: -base.read.sumMs,
    })
    const reads = current.reads - base.reads
    const stale = current.staleReads - base.staleReads
    const { readP99Ms, staleReadsMax } = this.#slo
    const latency =
      readP99Ms === undefined
        ? undefined
        : verdict(readP99Ms, reads === 0 ? 0 : quantileMs(window.snapshot(), 0.99))
    const staleness =
      staleReadsMax === undefined ? undefined : verdict(staleReadsMax, reads === 0 ? 0 : stale / reads)
    const ok = (latency?.ok ?? true) && (staleness?.ok ?? true)
    // Met until shown otherwise: a first evaluation that finds a breach is a change.
    const changed = (this.#lastOk ?? true) !== ok
    this.#lastOk = ok
    return {
      report: Object.freeze({
        namespace,
        windowMs: this.#slo.windowMs,
        reads,
        readP99Ms: latency,
        staleReads: staleness,
        ok,
      }),
      changed,
    }
  }
}

function verdict(objective: number, actual: number): SloObjective {
  return Object.freeze({ objective, actual, ok: actual <= objective })
}
