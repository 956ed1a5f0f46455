// The first minute of a cache: how its reads were answered, so that restarts with and without warm start compare.
//
// A process that starts cold answers its first reads from L2 or the source until L1 has learnt the hot set; one
// that ran `cache.warmStart()` before taking traffic answers more of them from L1. Operators compare the two from
// `stats().startup` or Prometheus's `first_minute_*_total` counters (labelled by `start`).
//
// Invariants:
// - The window is real time (`performance.now()`), not the injected clock: it measures a process's start.
// - During the window the counts follow the namespaces' counters; when it ends they are frozen, and never change again.
// - `start` is 'warm' once a `warmStart()` that copied at least one entry finished inside the window; it never goes
//   back to 'cold'.
// - The timer is unref'd: it never keeps a process alive, and `stop()` (close) clears it.

/** How long after its creation a cache counts its reads as "first minute" reads. */
export const STARTUP_WINDOW_MS = 60_000

/** Reads of every namespace, as counted since each was declared. */
export interface ReadTotals {
  readonly l1Hits: number
  readonly l2Hits: number
  readonly misses: number
}

/** The reads of the cache's first minute (`cache.stats().startup`). */
export interface StartupStats {
  /** 'warm' once `cache.warmStart()` copied at least one entry into L1 within the first minute, else 'cold'. */
  readonly start: 'cold' | 'warm'
  /** Whether the minute is over (or the cache closed before): the counts below no longer change. */
  readonly complete: boolean
  /** Reads in the first minute (each `get`, each item of a `getMany`): `l1Hits + l2Hits + misses`. */
  readonly reads: number
  readonly l1Hits: number
  readonly l2Hits: number
  readonly misses: number
}

export class StartupWindow {
  readonly #startedAt = performance.now()
  readonly #windowMs: number
  readonly #totals: () => ReadTotals
  #start: 'cold' | 'warm' = 'cold'
  #final: StartupStats | undefined
  readonly #timer: NodeJS.Timeout

  constructor(totals: () => ReadTotals, windowMs = STARTUP_WINDOW_MS) {
    this.#totals = totals
    this.#windowMs = windowMs
    this.#timer = setTimeout(() => this.#close(), windowMs).unref()
  }

  /** A warm start finished, having copied `keys` entries into L1. */
  warmed(keys: number): void {
    if (keys > 0 && this.#final === undefined && performance.now() - this.#startedAt < this.#windowMs) {
      this.#start = 'warm'
    }
  }

  /** `current`: the totals, when the caller has them already (`cache.stats()` sums the namespaces it snapshots). */
  stats(current?: ReadTotals): StartupStats {
    return this.#final ?? this.#snapshot(false, current)
  }

  /** Freezes the counts now (the cache closes within its first minute). */
  stop(): void {
    clearTimeout(this.#timer)
    this.#close()
  }

  #close(): void {
    this.#final ??= this.#snapshot(true)
  }

  #snapshot(complete: boolean, current = this.#totals()): StartupStats {
    const { l1Hits, l2Hits, misses } = current
    return Object.freeze({
      start: this.#start,
      complete,
      reads: l1Hits + l2Hits + misses,
      l1Hits,
      l2Hits,
      misses,
    })
  }
}
