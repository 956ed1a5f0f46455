// The dashboard's "start load" button: reads sent in-process (no sockets), paced, bounded in time, count and
// concurrency.
import { setTimeout as sleep } from 'node:timers/promises'
import type { FastifyInstance } from 'fastify'
import { workload } from './workload.js'

export interface LoadStatus {
  readonly running: boolean
  readonly sent: number
  readonly errors: number
  /** Requests not sent because `maxInFlight` were still outstanding (the service could not keep up). */
  readonly skipped: number
  /** Epoch ms when the current or last run stops (or stopped). */
  readonly endsAt: number | null
  readonly rate: number
}

/** The hard limits: a click can never start more than this. */
export const LOAD_LIMITS = { maxSeconds: 60, maxRate: 5_000, maxInFlight: 256 } as const

/** How often the pacer wakes up to send the requests that fell due, in ms. */
const TICK_MS = 10
/** The rate climbs linearly to its target over this long, as traffic does when a service comes up, in ms. */
const RAMP_MS = 3_000

/** How many requests are due `elapsed` ms into a run at `rate`/s that ramps up over `ramp` ms. */
export function dueBy(elapsed: number, rate: number, ramp: number): number {
  const seconds = elapsed / 1000
  const rampSeconds = ramp / 1000
  // The area under the rate curve: a triangle while ramping, then a rectangle.
  if (seconds <= rampSeconds) return Math.floor((rate * seconds * seconds) / (2 * rampSeconds))
  return Math.floor(rate * (seconds - rampSeconds / 2))
}

export class LoadGenerator {
  readonly #app: FastifyInstance
  readonly #products: number
  #run: { stop: AbortController; done: Promise<void> } | undefined
  #status: LoadStatus = { running: false, sent: 0, errors: 0, skipped: 0, endsAt: null, rate: 0 }

  constructor(app: FastifyInstance, products: number) {
    this.#app = app
    this.#products = products
  }

  get status(): LoadStatus {
    return this.#status
  }

  /**
   * Sends `rate` reads a second for `seconds` (both clamped to LOAD_LIMITS), so fewer than `rate * seconds`
   * requests; the rate climbs to its target over the first 3 seconds (a cold JIT and a cold cache meet the traffic
   * gradually, as they would when a service comes up).
   * Arrivals are open-loop, like real visitors: a slow response does not delay the next request, so a slow source
   * shows up as latency, not as less traffic. At most `maxInFlight` requests are outstanding; a request that falls
   * due beyond that is skipped and counted. A run already going is replaced.
   */
  async start(seconds: number, rate: number): Promise<LoadStatus> {
    await this.stop()
    const duration = Math.min(Math.max(seconds, 1), LOAD_LIMITS.maxSeconds) * 1000
    const perSecond = Math.min(Math.max(Math.round(rate), 1), LOAD_LIMITS.maxRate)
    const budget = Math.round((perSecond * duration) / 1000)
    const started = Date.now()
    const stop = new AbortController()
    const next = workload({ products: this.#products })
    this.#status = {
      running: true,
      sent: 0,
      errors: 0,
      skipped: 0,
      endsAt: started + duration,
      rate: perSecond,
    }
    const inFlight = new Set<Promise<void>>()
    const send = () => {
      const request = this.#app
        .inject({ method: 'GET', url: next() })
        .then(
          (response) => response.statusCode >= 500,
          () => true,
        )
        .then((failed) => {
          this.#status = {
            ...this.#status,
            sent: this.#status.sent + 1,
            errors: this.#status.errors + +failed,
          }
          inFlight.delete(request)
        })
      inFlight.add(request)
    }
    const pace = async () => {
      let issued = 0
      while (!stop.signal.aborted && issued < budget && Date.now() < started + duration) {
        const due = Math.min(
          budget,
          dueBy(Date.now() - started, perSecond, Math.min(RAMP_MS, duration / 2)) + 1,
        )
        for (; issued < due; issued++) {
          if (inFlight.size < LOAD_LIMITS.maxInFlight) send()
          else this.#status = { ...this.#status, skipped: this.#status.skipped + 1 }
        }
        await sleep(TICK_MS, undefined, { signal: stop.signal }).catch(() => {})
      }
      await Promise.all(inFlight)
      this.#status = { ...this.#status, running: false, endsAt: Math.min(Date.now(), started + duration) }
    }
    this.#run = { stop, done: pace() }
    return this.#status
  }

  /** Stops the run under way, if any, and waits for its requests in flight. */
  async stop(): Promise<void> {
    const run = this.#run
    if (run === undefined) return
    this.#run = undefined
    run.stop.abort()
    await run.done
  }
}
