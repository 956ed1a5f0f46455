// One clock for every process that shares L2: entry times are written and read on Redis's clock.
//
// An entry's times (created, fresh until, stale until) are absolute instants, read by every process that shares
// L2. Written on each writer's own clock, a writer running ahead makes readers keep their L1 copies after the Redis
// key expired, and one running behind writes entries that every other process reads as expired (each read a miss
// and a load). So each cache measures how far its clock is from the L2 server's (TIME, the sample with the
// shortest round trip of a few), and `EntryStore` shifts entry times by that offset when it encodes them for L2
// and back when it decodes them: every process then reads an entry's times on the same clock, the one that also
// expires the Redis key.
//
// Invariants:
// - `offsetMs` is 0 until a measurement succeeds, and 0 while the measured skew is within SKEW_TOLERANCE_MS (hosts
//   kept in sync by NTP are within milliseconds; not shifting then costs nothing on the read and write paths).
// - The system clock is measured again on every new L2 connection (a failover may reach another server) and every
//   MEASURE_EVERY_MS. An injected clock is measured once (its later jumps are the test's, not skew). By default
//   (`clockSync: 'auto'`) its offset is applied only if the clock ran with real time during the measurement (a
//   simulated skewed host): a fake clock that stands still while real time passes would read as a skew that grows,
//   different in each cache that shares it, so it keeps offset 0.
// - A failed measurement keeps the last offset; it never throws, and a store without a clock leaves it at 0.
import type { Clock } from '../core/clock.js'
import { systemClock } from '../core/clock.js'
import { formatDuration } from '../core/format-duration.js'
import type { L2Guard } from '../policies/l2-guard.js'
import type { Logger } from '../options.js'

/** Skew below this is left alone: entries are written on the process's own clock. */
export const SKEW_TOLERANCE_MS = 250
/** How often the system clock is measured against L2's again (clocks drift and get stepped). */
export const MEASURE_EVERY_MS = 60_000
/** Round trips per measurement; the one with the shortest round trip gives the offset. */
const SAMPLES = 3
/**
 * For an injected clock on `'auto'`: the round trips are this far apart, so the measurement spans at least
 * 2 x this of real time, over which a clock that runs with real time moves as far as `performance.now()`.
 */
export const AUTO_SPACING_MS = 20
/** How far an injected clock may drift from real time over the measurement and still count as running with it. */
const AUTO_RATE_TOLERANCE_MS = 5

export class L2ClockSync {
  readonly #l2: L2Guard
  readonly #clock: Clock
  readonly #logger: Logger
  readonly #service: string
  #offsetMs = 0
  #measured = false
  #measuring: Promise<void> | undefined
  #timer: NodeJS.Timeout | undefined
  #stopped = false
  /** An injected clock on `clockSync: 'auto'`: corrected only if it runs with real time. */
  readonly #auto: boolean

  constructor(l2: L2Guard, clock: Clock, logger: Logger, service: string, auto = false) {
    this.#l2 = l2
    this.#clock = clock
    this.#logger = logger
    this.#service = service
    this.#auto = auto && clock !== systemClock
  }

  /** L2's clock minus this process's, in whole ms: add it to a local time to get L2's; 0 within the tolerance. */
  get offsetMs(): number {
    return this.#offsetMs
  }

  /**
   * Measures now (a new connection is ready), unless an injected clock was measured already. Resolves when done,
   * failed or not; concurrent calls share one measurement.
   */
  measure(): Promise<void> {
    if (this.#stopped || (this.#measured && this.#clock !== systemClock)) return Promise.resolve()
    this.#measuring ??= this.#sample().finally(() => {
      this.#measuring = undefined
      this.#schedule()
    })
    return this.#measuring
  }

  /** Stops measuring (the cache closes). */
  stop(): void {
    this.#stopped = true
    clearTimeout(this.#timer)
  }

  async #sample(): Promise<void> {
    let best: { rtt: number; offset: number } | undefined
    const first = { real: performance.now(), clock: this.#clock.now() }
    for (let i = 0; i < SAMPLES && !this.#stopped; i++) {
      if (this.#auto && i > 0) await new Promise((resolve) => setTimeout(resolve, AUTO_SPACING_MS))
      const started = performance.now()
      const before = this.#clock.now()
      let server: number
      try {
        server = await this.#l2.serverTime()
      } catch {
        // L2 down, or TIME refused (an ACL without +time): keep the last offset; the next connection retries.
        return
      }
      const rtt = performance.now() - started
      const offset = server - (before + this.#clock.now()) / 2
      if (best === undefined || rtt < best.rtt) best = { rtt, offset }
    }
    if (best === undefined || this.#stopped) return
    this.#measured = true
    if (this.#auto) {
      // A fake clock that stood still (or jumped) meanwhile is a test's time, not a skewed host's: left alone.
      const real = performance.now() - first.real
      const moved = this.#clock.now() - first.clock
      if (Math.abs(moved - real) > AUTO_RATE_TOLERANCE_MS) return
    }
    const skewed = Math.abs(best.offset) >= SKEW_TOLERANCE_MS
    const next = skewed ? Math.round(best.offset) : 0
    if ((next === 0) !== (this.#offsetMs === 0)) this.#report(best.offset, skewed)
    this.#offsetMs = next
  }

  #report(offsetMs: number, skewed: boolean): void {
    const fields = { service: this.#service, clockOffsetMs: Math.round(offsetMs) }
    if (skewed) {
      const direction = offsetMs > 0 ? 'behind' : 'ahead of'
      this.#logger.warn(
        fields,
        `stratacache: this process's clock is ${formatDuration(Math.abs(offsetMs))} ${direction} Redis's; ` +
          `entry times are written on Redis's clock so that other processes expire them on time (fix the host's ` +
          `clock sync: NTP)`,
      )
    } else {
      this.#logger.info(fields, "stratacache: this process's clock agrees with Redis's again")
    }
  }

  #schedule(): void {
    if (this.#stopped || this.#clock !== systemClock || this.#timer !== undefined) return
    this.#timer = setTimeout(() => {
      this.#timer = undefined
      void this.measure()
    }, MEASURE_EVERY_MS).unref()
  }
}
