// The write-behind queue's budget: how many writes it may hold in Redis before write() refuses new ones.

/**
 * Admits a write while the queue (writes not yet flushed, dead letters included) holds fewer than `max`. The count
 * comes from Redis at most once per `maxAgeMs`, plus the writes this process admitted since; so the fleet may
 * overshoot by what its other processes queue within `maxAgeMs`. An admission waits for a new count only when there
 * is none yet or the last one was full; otherwise the count is refreshed in the background. Refusing is the
 * only way to stay bounded without losing a write: trimming the stream (`XADD MAXLEN`) would silently drop writes
 * the source never received.
 */
export class QueueBudget {
  readonly #max: number
  readonly #maxAgeMs: number
  readonly #count: () => Promise<number>
  readonly #onFull: (queued: number) => void
  readonly #onRoom: (queued: number) => void
  /** Entries at the last count; undefined until one succeeds. */
  #counted: number | undefined
  /** Admitted here since the last count started (those that failed to queue are given back). */
  #admitted = 0
  /** performance.now() when the last count started. */
  #countedAt = -Infinity
  #counting: Promise<void> | undefined
  #full = false

  constructor(options: {
    max: number
    maxAgeMs: number
    count: () => Promise<number>
    /** The queue was found full: once per episode, until a count finds room again. */
    onFull: (queued: number) => void
    /** A count found room again after the queue was full. */
    onRoom: (queued: number) => void
  }) {
    this.#max = options.max
    this.#maxAgeMs = options.maxAgeMs
    this.#count = options.count
    this.#onFull = options.onFull
    this.#onRoom = options.onRoom
  }

  /**
   * Reserves room for one write, or resolves to the number of entries that fill the queue (nothing reserved).
   * A count that fails admits the write: the append that follows will fail too if Redis is unreachable.
   */
  async admit(): Promise<number | undefined> {
    if (performance.now() - this.#countedAt >= this.#maxAgeMs) {
      const counting = this.#recount()
      // Waited for when there is no count yet, or when the last one would refuse: the queue may have drained since.
      if (this.#counted === undefined || this.#counted + this.#admitted >= this.#max) await counting
    }
    const queued = (this.#counted ?? 0) + this.#admitted
    if (this.#counted !== undefined && queued >= this.#max) {
      if (!this.#full) {
        this.#full = true
        this.#onFull(queued)
      }
      return queued
    }
    this.#admitted++
    return undefined
  }

  /** An admitted write could not be queued: its room is free again. */
  release(): void {
    if (this.#admitted > 0) this.#admitted--
  }

  #recount(): Promise<void> {
    this.#counting ??= (async () => {
      this.#countedAt = performance.now()
      const admittedBefore = this.#admitted
      try {
        const counted = await this.#count()
        // Writes admitted while counting may or may not be in the count: kept, erring on the full side.
        this.#admitted = Math.max(0, this.#admitted - admittedBefore)
        this.#counted = counted
        if (this.#full && counted + this.#admitted < this.#max) {
          this.#full = false
          this.#onRoom(counted)
        }
      } catch {
        // Unknown: the last count stands; the next admission after maxAgeMs asks again.
      } finally {
        this.#counting = undefined
      }
    })()
    return this.#counting
  }
}
