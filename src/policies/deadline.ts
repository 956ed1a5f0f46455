// Bounds calls by one fixed timeout with a single sweeping timer, instead of a timer (or AbortSignal) per call.
import { clearInterval, setInterval } from 'node:timers'

/**
 * A call being timed. `track` sets `deadline`; whoever settles the call first sets `done`, and the other side then
 * does nothing. The queue holds the object until the sweep passes its deadline, so a settled call should drop what
 * it no longer needs (its promise's resolvers): the queue then keeps only a small record alive, not the call's
 * whole promise chain (which would otherwise outlive the young generation and cost a full GC to free).
 */
export interface Timed {
  deadline: number
  done: boolean
  onTimeout(): void
}

/**
 * Times calls against a shared timeout. All calls share one timeout length, so deadlines arrive in insertion
 * order and a FIFO queue swept by one timer suffices. A call times out between `timeoutMs` and
 * `timeoutMs + resolution` after it started.
 */
export class Deadlines {
  readonly timeoutMs: number
  readonly #resolution: number
  readonly #now: () => number
  #queue: Timed[] = []
  #head = 0
  #timer: ReturnType<typeof setInterval> | undefined

  constructor(timeoutMs: number, now: () => number = performance.now.bind(performance)) {
    this.timeoutMs = timeoutMs
    this.#resolution = Math.max(1, Math.min(10, Math.floor(timeoutMs / 10)))
    this.#now = now
  }

  /** Starts timing `call`: its `onTimeout()` runs once the deadline passes, unless it was `done` first. */
  track(call: Timed): void {
    call.deadline = this.#now() + this.timeoutMs
    this.#queue.push(call)
    this.#timer ??= setInterval(this.#sweep, this.#resolution).unref()
  }

  /** Stops the timer; pending calls are left to settle by themselves. */
  stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer)
    this.#timer = undefined
  }

  readonly #sweep = (): void => {
    const now = this.#now()
    const queue = this.#queue
    let head = this.#head
    while (head < queue.length) {
      const pending = queue[head]!
      if (!pending.done) {
        if (pending.deadline > now) break
        pending.done = true
        // A timer callback: a handler that throws must neither escape as an uncaught exception nor stop the sweep,
        // which would leave the calls behind it without their timeout.
        try {
          pending.onTimeout()
        } catch {
          // Ignored: the call is timed out all the same.
        }
      }
      head++
    }
    if (head === queue.length) {
      this.#queue = []
      this.#head = 0
      this.stop()
    } else if (head > 1024 && head * 2 > queue.length) {
      this.#queue = queue.slice(head)
      this.#head = 0
    } else {
      this.#head = head
    }
  }
}
