// The dashboard's "start load" button: reads sent in-process (no sockets), paced, and bounded in time and count.
import { setTimeout as sleep } from 'node:timers/promises'
import type { FastifyInstance } from 'fastify'
import { workload } from './workload.js'

export interface LoadStatus {
  readonly running: boolean
  readonly sent: number
  readonly errors: number
  /** Epoch ms when the current or last run stops (or stopped). */
  readonly endsAt: number | null
  readonly rate: number
}

/** The hard limits: a click can never start more than this. */
export const LOAD_LIMITS = { maxSeconds: 60, maxRate: 5_000, concurrency: 32 } as const

export class LoadGenerator {
  readonly #app: FastifyInstance
  readonly #products: number
  #run: { stop: AbortController; done: Promise<void> } | undefined
  #status: LoadStatus = { running: false, sent: 0, errors: 0, endsAt: null, rate: 0 }

  constructor(app: FastifyInstance, products: number) {
    this.#app = app
    this.#products = products
  }

  get status(): LoadStatus {
    return this.#status
  }

  /**
   * Starts `rate` reads a second for `seconds` (clamped to LOAD_LIMITS), so at most `rate * seconds` requests.
   * A run already going is replaced.
   */
  async start(seconds: number, rate: number): Promise<LoadStatus> {
    await this.stop()
    const duration = Math.min(Math.max(seconds, 1), LOAD_LIMITS.maxSeconds) * 1000
    const perSecond = Math.min(Math.max(Math.round(rate), 1), LOAD_LIMITS.maxRate)
    const budget = Math.round((perSecond * duration) / 1000)
    const started = Date.now()
    const stop = new AbortController()
    const next = workload({ products: this.#products })
    this.#status = { running: true, sent: 0, errors: 0, endsAt: started + duration, rate: perSecond }
    let issued = 0
    const worker = async () => {
      while (!stop.signal.aborted && issued < budget) {
        // Request i is due at i / rate seconds after the start: the pace holds even when some requests are slow.
        const due = started + (issued * 1000) / perSecond
        issued++
        const wait = due - Date.now()
        if (wait > 0) await sleep(wait, undefined, { signal: stop.signal }).catch(() => {})
        if (stop.signal.aborted || Date.now() >= started + duration) break
        const response = await this.#app.inject({ method: 'GET', url: next() }).catch(() => undefined)
        const failed = response === undefined || response.statusCode >= 500
        this.#status = {
          ...this.#status,
          sent: this.#status.sent + 1,
          errors: this.#status.errors + (failed ? 1 : 0),
        }
      }
    }
    const done = Promise.all(Array.from({ length: LOAD_LIMITS.concurrency }, worker)).then(() => {
      this.#status = { ...this.#status, running: false, endsAt: Math.min(Date.now(), started + duration) }
    })
    this.#run = { stop, done }
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
