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
 */
export class CircuitBreaker {
  readonly #options: CircuitBreakerOptions
  readonly #now: () => number
  readonly #onChange: (state: CircuitState) => void
  #state: CircuitState = 'closed'
  #failures = 0
  #openedAt = 0
  #probeInFlight = false

  constructor(options: CircuitBreakerOptions, now: () => number, onChange: (state: CircuitState) => void) {
    this.#options = options
    this.#now = now
    this.#onChange = onChange
  }

  get state(): CircuitState {
    return this.#state
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

  success(): void {
    this.#failures = 0
    this.#probeInFlight = false
    if (this.#state !== 'closed') this.#set('closed')
  }

  failure(): void {
    this.#probeInFlight = false
    // A call sent before the circuit opened may fail late; it must not extend the break.
    if (this.#state === 'open') return
    if (this.#state === 'half-open' || ++this.#failures >= this.#options.failureThreshold) {
      this.#openedAt = this.#now()
      this.#failures = 0
      this.#set('open')
    }
  }

  #set(state: CircuitState): void {
    this.#state = state
    // onChange reaches the user's logger. A logger that throws must not stop the caller of success() or failure()
    // from settling its L2 call, nor escape the timer that times calls out.
    try {
      this.#onChange(state)
    } catch {
      // Ignored: the state changed all the same.
    }
  }
}
