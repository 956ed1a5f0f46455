// A circuit breaker around L2: after repeated failures, skip Redis for a while, then let one probe through.

export type CircuitState = 'closed' | 'open' | 'half-open'

export interface CircuitBreakerOptions {
  /** Consecutive failures that open the circuit. */
  readonly failureThreshold: number
  /** How long the circuit stays open before one probe call is let through, in ms. */
  readonly breakMs: number
}

/**
 * Closed: calls pass; `failureThreshold` consecutive failures open it. Open: calls are refused until `breakMs`
 * has passed. Half-open: one probe passes; its success closes the circuit, its failure opens it again.
 *
 * Each state change starts a new epoch, and a call reports its outcome with the epoch it was sent in (`epoch`, read
 * right after `allow()`). An outcome from an earlier epoch is ignored: a late success of a call sent before the
 * circuit opened does not close it, and a late failure of a call sent before a probe closed it does not count
 * against the new closed state (nor take the probe's place in the half-open state).
 */
export class CircuitBreaker {
  readonly #options: CircuitBreakerOptions
  readonly #now: () => number
  readonly #onChange: (state: CircuitState) => void
  #state: CircuitState = 'closed'
  #failures = 0
  #openedAt = 0
  #probeInFlight = false
  #epoch = 0

  constructor(options: CircuitBreakerOptions, now: () => number, onChange: (state: CircuitState) => void) {
    this.#options = options
    this.#now = now
    this.#onChange = onChange
  }

  get state(): CircuitState {
    return this.#state
  }

  /** The current state's epoch: pass it back to `success()` / `failure()` for a call sent now. */
  get epoch(): number {
    return this.#epoch
  }

  /** Ms until a probe may pass while open; 0 otherwise. */
  retryInMs(): number {
    if (this.#state !== 'open') return 0
    return Math.max(0, this.#openedAt + this.#options.breakMs - this.#now())
  }

  /** Whether a call may go to L2 now. A true answer in the half-open state reserves the single probe. */
  allow(): boolean {
    if (this.#state === 'closed') return true
    if (this.#state === 'open') {
      if (this.#now() - this.#openedAt < this.#options.breakMs) return false
      this.#set('half-open')
    }
    if (this.#probeInFlight) return false
    this.#probeInFlight = true
    return true
  }

  /** A call sent in epoch `sentIn` (default: now) succeeded. Ignored when the circuit changed state since. */
  success(sentIn = this.#epoch): void {
    if (sentIn !== this.#epoch) return
    this.#failures = 0
    if (this.#state !== 'closed') this.#set('closed')
  }

  /** A call sent in epoch `sentIn` (default: now) failed to reach L2. Ignored when the circuit changed state since. */
  failure(sentIn = this.#epoch): void {
    // A call sent under an earlier state settles late: its outcome says nothing about the current one (a failure
    // sent before the circuit opened must not extend the break, one sent before the probe must not reopen it).
    if (sentIn !== this.#epoch) return
    // No call is sent while open (and the break may only just have ended); a failure reported now counts nothing.
    if (this.#state === 'open') return
    if (this.#state === 'half-open' || ++this.#failures >= this.#options.failureThreshold) {
      this.#openedAt = this.#now()
      this.#failures = 0
      this.#set('open')
    }
  }

  #set(state: CircuitState): void {
    this.#state = state
    this.#epoch++
    this.#probeInFlight = false
    // onChange reaches the user's logger. A logger that throws must not stop the caller of success() or failure()
    // from settling its L2 call, nor escape the timer that times calls out.
    try {
      this.#onChange(state)
    } catch {
      // Ignored: the state changed all the same.
    }
  }
}
