// Bounds promises by one fixed timeout with a single sweeping timer, instead of a timer (or AbortSignal) per call.
import { setInterval, clearInterval } from 'node:timers'

interface Pending {
  readonly deadline: number
  done: boolean
  readonly reject: (reason: Error) => void
}

/**
 * Races promises against a shared timeout. All calls share one timeout length, so deadlines arrive in insertion
 * order and a FIFO queue swept by one timer suffices. A call times out between `timeoutMs` and
 * `timeoutMs + resolution` after it started.
 */
export class Deadlines {
  readonly timeoutMs: number
  readonly #resolution: number
  readonly #makeError: () => Error
  readonly #now: () => number
  #queue: Pending[] = []
  #head = 0
  #timer: ReturnType<typeof setInterval> | undefined

  constructor(
    timeoutMs: number,
    makeError: () => Error,
    now: () => number = performance.now.bind(performance),
  ) {
    this.timeoutMs = timeoutMs
    this.#resolution = Math.max(1, Math.min(10, Math.floor(timeoutMs / 10)))
    this.#makeError = makeError
    this.#now = now
  }

  /** Settles like `promise`, or rejects with the timeout error once the deadline passes first. */
  race<T>(promise: Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const pending: Pending = { deadline: this.#now() + this.timeoutMs, done: false, reject }
      this.#queue.push(pending)
      this.#timer ??= setInterval(this.#sweep, this.#resolution).unref()
      promise.then(
        (value) => {
          pending.done = true
          resolve(value)
        },
        (error: unknown) => {
          pending.done = true
          reject(error instanceof Error ? error : new Error(String(error)))
        },
      )
    })
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
        pending.reject(this.#makeError())
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
