// Tells the operator, once per outage, that Redis cannot be reached or does not answer, why, and when it is back.
import { formatDuration } from '../core/format-duration.js'
import type { Logger } from '../options.js'
import type { CircuitState } from '../policies/circuit-breaker.js'
import type { L2Failure, L2Status, L2Store } from '../tiers/l2-store.js'
import { redactUrl } from '../tiers/redis-failure.js'

export interface L2OutageLogOptions {
  readonly service: string
  readonly store: L2Store
  /** The cache's logger, already isolated (what it throws is dropped). */
  readonly logger: Logger
  readonly failureThreshold: number
  readonly l2TimeoutMs: number
  readonly breakMs: number
  /** Monotonic ms. @default performance.now */
  readonly now?: () => number
}

/** What the log says is wrong, from the first line of an outage until the line saying it is over. */
interface Outage {
  readonly since: number
  /** `unreachable`: connection attempts fail. `unresponsive`: connected, but calls fail or time out. */
  kind: 'unreachable' | 'unresponsive'
  /** Failure reasons already logged in this outage: a new reason (WRONGPASS after ECONNREFUSED) is logged too. */
  readonly reasons: Set<string>
}

/**
 * Logs L2 outages as state changes: one warning when Redis cannot be reached (naming the address, the reason and
 * what to check) or stops answering (the circuit opened while connected), one when it is back with how long it was
 * down. Never a line per call: the circuit's re-openings, failed probes and each reconnection attempt stay silent.
 * The line that ends an outage is a warning too, so a log filtered to warnings never shows an outage without end.
 * Lines that begin an outage carry the field `outage: 'begin'`, the line that ends it `outage: 'end'`: the console
 * logger's repeat guard forgets one kind when it writes the other, so a second outage is never held back as a repeat.
 */
export class L2OutageLog {
  readonly #o: L2OutageLogOptions
  readonly #now: () => number
  #outage: Outage | undefined
  #circuit: CircuitState = 'closed'
  #lastFailure: { readonly failure: L2Failure; readonly error: unknown } | undefined

  constructor(options: L2OutageLogOptions) {
    this.#o = options
    this.#now = options.now ?? performance.now.bind(performance)
  }

  /** The last failed connection attempt, described, and its error; undefined once connected. For `connect()`. */
  get lastFailure(): { readonly failure: L2Failure; readonly error: unknown } | undefined {
    return this.#lastFailure
  }

  /**
   * The store reported a connection error. `lost`: it ended a connection that was ready; the next attempt says
   * whether Redis is gone (and why), so nothing is logged yet and a blip passes silently. Otherwise a connection
   * attempt failed: an outage, unless the store is connected all the same (its pub/sub connection failed alone:
   * the bus retries and reports it).
   */
  connectionError(error: unknown, lost: boolean): void {
    const status = this.#o.store.status
    if (lost || status === 'ready' || status === 'closed') return
    const failure = this.#describe(error)
    this.#lastFailure = { failure, error }
    const outage = this.#outage
    if (outage !== undefined && outage.kind === 'unreachable' && outage.reasons.has(failure.reason)) return
    if (outage === undefined) {
      this.#outage = { since: this.#now(), kind: 'unreachable', reasons: new Set([failure.reason]) }
    } else {
      outage.kind = 'unreachable'
      outage.reasons.add(failure.reason)
    }
    const retry =
      failure.retryMs === undefined
        ? 'your client retries by itself'
        : `retrying, at most ${formatDuration(failure.retryMs)} apart`
    this.#o.logger.warn(
      { service: this.#o.service, address: failure.address, reason: failure.reason, outage: 'begin' },
      `stratacache: ${failure.summary}. Reads fall through to your loaders meanwhile; writes reject. ` +
        `${failure.advice}; ${retry}.`,
    )
  }

  /** The store's connection status changed. */
  status(status: L2Status): void {
    if (status === 'ready') {
      this.#lastFailure = undefined
      this.#maybeOver()
    }
  }

  /** The circuit breaker changed state. */
  circuit(circuit: CircuitState): void {
    this.#circuit = circuit
    if (circuit === 'closed') {
      this.#maybeOver()
      return
    }
    // Re-openings after a failed probe are the same outage. While the store is not connected, its failed
    // connection attempt tells the story (with the reason): the circuit opening adds nothing to it.
    if (circuit !== 'open' || this.#outage !== undefined || this.#o.store.status !== 'ready') return
    this.#outage = { since: this.#now(), kind: 'unresponsive', reasons: new Set() }
    const { failureThreshold, l2TimeoutMs, breakMs } = this.#o
    this.#o.logger.warn(
      { service: this.#o.service, address: this.#address(), circuit, outage: 'begin' },
      `stratacache: Redis at ${this.#address()} does not answer: ${failureThreshold} ` +
        `${failureThreshold === 1 ? 'call' : 'calls in a row'} failed or took longer than timeouts.l2 ` +
        `(${formatDuration(l2TimeoutMs)}). Reads skip Redis and fall through to your loaders; writes reject; one ` +
        `call tries Redis again every ${formatDuration(breakMs)} (circuitBreaker.breakFor). A paused, overloaded ` +
        'or distant Redis does this: check its latency (redis-cli --latency) and slow log, or raise timeouts.l2.',
    )
  }

  /** Connected, and the circuit closed: the outage, if one was logged, is over. */
  #maybeOver(): void {
    const outage = this.#outage
    if (outage === undefined || this.#circuit !== 'closed' || this.#o.store.status !== 'ready') return
    this.#outage = undefined
    const downMs = Math.max(0, this.#now() - outage.since)
    this.#o.logger.warn(
      { service: this.#o.service, address: this.#address(), downMs: Math.round(downMs), outage: 'end' },
      `stratacache: Redis at ${this.#address()} is reachable again; it was ` +
        `${outage.kind === 'unreachable' ? 'unreachable' : 'not answering'} for ${formatDuration(downMs)}. ` +
        'Reads and writes use it again.',
    )
  }

  #address(): string {
    return this.#lastFailure?.failure.address ?? (this.#o.store.address || this.#o.store.name)
  }

  /** The store's own description, or a generic one for a store that has none (or whose description throws). */
  #describe(error: unknown): L2Failure {
    try {
      const described = this.#o.store.describeFailure?.(error)
      if (described !== undefined) return described
    } catch {
      // Fall back to the generic description.
    }
    const code = (error as { code?: unknown } | null)?.code
    const reason = typeof code === 'string' ? code : error instanceof Error ? error.name : 'Error'
    const message = redactUrl(error instanceof Error ? error.message : String(error))
    const address = this.#o.store.address || this.#o.store.name
    return {
      address,
      reason,
      summary: `cannot reach ${address} (${reason}: ${message})`,
      advice: 'Check that the server runs and that its address is right',
      retryMs: undefined,
    }
  }
}
