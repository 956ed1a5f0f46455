// Tells the operator, once per outage, that Redis cannot be reached or does not answer, why, and when it is back.
import { formatDuration } from '../core/format-duration.js'
import type { Logger } from '../options.js'
import type { CircuitState } from '../policies/circuit-breaker.js'
import type { L2Failure, L2Status, L2Store } from '../tiers/l2-store.js'
import { closedMidway, redactUrl } from '../tiers/redis-failure.js'

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

/**
 * How long a connection closed midway waits for another reason before it is logged as the outage's own: twice the
 * longest wait between attempts (the next attempt's failure replaces it), at least 1 s and at most 30 s.
 */
export function closedGraceMs(retryMs: number | undefined): number {
  return Math.min(30_000, Math.max(1_000, 2 * (retryMs ?? 1_000)))
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
 * A connection closed midway (`L2Failure.connectionClosed`) is held back until the next attempt's reason replaces it
 * (`closedGraceMs`), so a Redis killed during a handshake is one line, ECONNREFUSED, not a reset and then a refusal.
 * Lines that begin an outage carry the field `outage: 'begin'`, the line that ends it `outage: 'end'`: the console
 * logger's repeat guard forgets one kind when it writes the other, so a second outage is never held back as a repeat.
 */
export class L2OutageLog {
  readonly #o: L2OutageLogOptions
  readonly #now: () => number
  #outage: Outage | undefined
  #circuit: CircuitState = 'closed'
  #lastFailure: { readonly failure: L2Failure; readonly error: unknown } | undefined
  /** A connection closed midway, not logged yet (`#hold`). */
  #pending: { readonly since: number; readonly timer: ReturnType<typeof setTimeout> } | undefined

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
    // A connection closed midway (a handshake reset by a Redis being killed) says a connection ended, not why the
    // next cannot be made: held until the next attempt's reason replaces it, or logged if none comes.
    if (failure.connectionClosed === true) {
      this.#hold(failure)
      return
    }
    const since = this.#pending?.since
    this.#dropPending()
    this.#begin(failure, since)
  }

  /** Logs the line that begins an outage (or names a new reason in one); `since`: when a held failure came. */
  #begin(failure: L2Failure, since = this.#now()): void {
    const outage = this.#outage
    if (outage !== undefined && outage.kind === 'unreachable' && outage.reasons.has(failure.reason)) return
    if (outage === undefined) {
      this.#outage = { since, kind: 'unreachable', reasons: new Set([failure.reason]) }
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

  /** Holds a connection closed midway for `closedGraceMs`; the first one held keeps its time. */
  #hold(failure: L2Failure): void {
    if (this.#pending !== undefined) return
    const since = this.#now()
    const timer = setTimeout(() => {
      this.#pending = undefined
      const status = this.#o.store.status
      if (status !== 'ready' && status !== 'closed') this.#begin(failure, since)
    }, closedGraceMs(failure.retryMs))
    timer.unref?.()
    this.#pending = { since, timer }
  }

  #dropPending(): void {
    if (this.#pending === undefined) return
    clearTimeout(this.#pending.timer)
    this.#pending = undefined
  }

  /** The cache closes: a held failure is not logged. */
  stop(): void {
    this.#dropPending()
  }

  /** The store's connection status changed. */
  status(status: L2Status): void {
    if (status === 'ready' || status === 'closed') this.#dropPending()
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
    const name = error instanceof Error ? (error.constructor?.name ?? error.name) : 'Error'
    return {
      address,
      reason,
      summary: `cannot reach ${address} (${reason}: ${message})`,
      advice: 'Check that the server runs and that its address is right',
      retryMs: undefined,
      ...(closedMidway(typeof code === 'string' ? code : undefined, name) && { connectionClosed: true }),
    }
  }
}
