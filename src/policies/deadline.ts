// Bounds calls by one fixed timeout with a single sweeping timer, instead of a timer (or AbortSignal) per call.
import { clearInterval, setImmediate, setInterval } from 'node:timers'

/**
 * A call being timed. `track` sets `deadline` and `slot`; whoever settles the call first sets `done` (the sweep, or
 * the caller, who then calls `untrack` so that nothing holds the call any longer), and the other side does nothing.
 */
export interface Timed {
  deadline: number
  done: boolean
  /** The set of calls started in the same slice of time that holds this one until it settles; set by `track`. */
  slot: Set<Timed> | undefined
  onTimeout(): void
}

/** The calls started within one `resolution` of each other: they time out together, at the last one's deadline. */
interface Slot {
  readonly opened: number
  deadline: number
  readonly calls: Set<Timed>
}

/**
 * Times calls against a shared timeout. All calls share one timeout length, so deadlines arrive in insertion order:
 * calls are grouped in slots of `resolution` ms, kept in a FIFO queue swept by one timer, and a call that settles
 * leaves its slot at once. So only calls still waiting are held (a settled call's promise chain is garbage while
 * young, instead of being kept alive for a whole timeout and promoted to the old generation, which showed as GC
 * time on the L2 hit path). A call times out between `timeoutMs` and `timeoutMs + 2 * resolution` after it started.
 */
export class Deadlines {
  readonly timeoutMs: number
  readonly #resolution: number
  readonly #now: () => number
  #slots: Slot[] = []
  #head = 0
  #timer: ReturnType<typeof setInterval> | undefined
  #expiring = false
  /** When the pending expiry was queued, and how many times it was put back behind a blocked loop. */
  #queuedAt = 0
  #requeued = 0

  constructor(timeoutMs: number, now: () => number = performance.now.bind(performance)) {
    this.timeoutMs = timeoutMs
    this.#resolution = Math.max(1, Math.min(10, Math.floor(timeoutMs / 10)))
    this.#now = now
  }

  /** Starts timing `call`: its `onTimeout()` runs once the deadline passes, unless it was `done` first. */
  track(call: Timed): void {
    const now = this.#now()
    const deadline = now + this.timeoutMs
    let slot = this.#slots.length > this.#head ? this.#slots[this.#slots.length - 1] : undefined
    if (slot === undefined || now - slot.opened >= this.#resolution) {
      slot = { opened: now, deadline, calls: new Set() }
      this.#slots.push(slot)
    } else {
      slot.deadline = deadline
    }
    slot.calls.add(call)
    call.deadline = deadline
    call.slot = slot.calls
    this.#timer ??= setInterval(this.#sweep, this.#resolution).unref()
  }

  /** `call` settled (its `done` set by the caller): nothing holds it any longer. */
  untrack(call: Timed): void {
    call.slot?.delete(call)
    call.slot = undefined
  }

  /** Stops the timer; pending calls are left to settle by themselves. */
  stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer)
    this.#timer = undefined
  }

  /**
   * The timer's tick. Expiry runs in the check phase (setImmediate), after the event loop's poll phase has read
   * what arrived meanwhile: after the loop was blocked (a long synchronous task, a GC pause), answers that came in
   * time are waiting unread on their sockets, and timing their calls out first would report a healthy Redis as
   * not answering. (A call whose command could not even be written before the loop blocked still times out.)
   */
  readonly #sweep = (): void => {
    if (this.#expiring) return
    this.#expiring = true
    this.#requeued = 0
    this.#queuedAt = this.#now()
    setImmediate(this.#expire)
  }

  readonly #expire = (): void => {
    const now = this.#now()
    // The block can also fall between the tick and the expiry: an immediate queued before ours in the same check
    // phase (a task that awaited setImmediate) ran long, and no poll phase came between it and us. Go to the back
    // once more (an immediate queued during the check phase runs in the next one, after a poll); at most twice, so
    // that a loop blocked in every turn still times its calls out.
    if (now - this.#queuedAt > this.#resolution && this.#requeued < 2) {
      this.#requeued++
      this.#queuedAt = now
      setImmediate(this.#expire)
      return
    }
    this.#expiring = false
    const slots = this.#slots
    let head = this.#head
    while (head < slots.length && slots[head]!.deadline <= now) {
      const { calls } = slots[head]!
      head++
      for (const call of calls) {
        call.slot = undefined
        if (call.done) continue
        call.done = true
        // A timer callback: a handler that throws must neither escape as an uncaught exception nor stop the sweep,
        // which would leave the calls behind it without their timeout.
        try {
          call.onTimeout()
        } catch {
          // Ignored: the call is timed out all the same.
        }
      }
      calls.clear()
    }
    if (head === slots.length) {
      this.#slots = []
      this.#head = 0
      this.stop()
    } else if (head > 64 && head * 2 > slots.length) {
      this.#slots = slots.slice(head)
      this.#head = 0
    } else {
      this.#head = head
    }
  }
}
