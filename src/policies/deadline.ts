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
  /** `Deadlines.#blocked` when the slot opened: what the loop is seen blocked after that is credited to its calls. */
  readonly blockedAtOpen: number
  readonly calls: Set<Timed>
}

/** The most a call's deadline moves for the time the event loop was blocked, in timeouts: a call ends by 10x. */
const MAX_BLOCKED_CREDIT = 9

/**
 * Times calls against a shared timeout. All calls share one timeout length, so deadlines arrive in insertion order:
 * calls are grouped in slots of `resolution` ms, kept in a FIFO queue swept by one timer, and a call that settles
 * leaves its slot at once. So only calls still waiting are held (a settled call's promise chain is garbage while
 * young, instead of being kept alive for a whole timeout and promoted to the old generation, which showed as GC
 * time on the L2 hit path). A call times out between `timeoutMs` and `timeoutMs + 2 * resolution` after it started.
 *
 * The timeout leaves out the time the event loop was blocked: a stretch of more than half a timeout in which the
 * loop ran nothing else (a long synchronous task, a long GC pause) moves the deadline of every call pending during it
 * by as much, at most `MAX_BLOCKED_CREDIT` timeouts. The app that blocks its loop right after asking has its
 * commands written only after the block (the client writes in a later phase), and Redis cannot answer a command it
 * has not received: timing such calls out would report a healthy Redis as not answering, and a few of them in a row
 * open the circuit. The timer sees the block as its own lateness (see `#observe`). A busy loop whose turns are
 * shorter than half a timeout is not blocked: it reads answers every turn, and its calls keep their deadlines (else a
 * dead Redis would be seen up to ten timeouts late under load).
 */
export class Deadlines {
  readonly timeoutMs: number
  readonly #resolution: number
  /** Lateness above this is a block (see `#observe`): half a timeout, or one resolution when that is more. */
  readonly #blockedAbove: number
  readonly #now: () => number
  #slots: Slot[] = []
  /** Calls tracked and neither untracked nor timed out: the timer runs only while there are some. */
  #pending = 0
  #head = 0
  #timer: ReturnType<typeof setInterval> | undefined
  #expiring = false
  /** When the loop was last seen running (a tick, an expiry, a call tracked), and the total time it was seen blocked. */
  #seenAt = 0
  #blocked = 0

  constructor(timeoutMs: number, now: () => number = performance.now.bind(performance)) {
    this.timeoutMs = timeoutMs
    this.#resolution = Math.max(1, Math.min(10, Math.floor(timeoutMs / 10)))
    this.#blockedAbove = Math.max(this.#resolution, timeoutMs / 2)
    this.#now = now
  }

  /** Starts timing `call`: its `onTimeout()` runs once the deadline passes, unless it was `done` first. */
  track(call: Timed): void {
    this.#pending++
    const now = this.#now()
    if (this.#timer === undefined) {
      this.#seenAt = now
      this.#timer = setInterval(this.#sweep, this.#resolution).unref()
    } else {
      // A block the timer has not seen yet (this call is asked right after it, before the tick) goes to the calls
      // pending during it, not to this one, which has all its time ahead.
      this.#observe(now, this.#resolution)
    }
    const deadline = now + this.timeoutMs
    let slot = this.#slots.length > this.#head ? this.#slots[this.#slots.length - 1] : undefined
    if (slot === undefined || now - slot.opened >= this.#resolution) {
      slot = { opened: now, deadline, blockedAtOpen: this.#blocked, calls: new Set() }
      this.#slots.push(slot)
    } else {
      slot.deadline = deadline
    }
    slot.calls.add(call)
    call.deadline = deadline
    call.slot = slot.calls
  }

  /** `call` settled (its `done` set by the caller): nothing holds it any longer. */
  untrack(call: Timed): void {
    if (call.slot === undefined) return
    call.slot.delete(call)
    call.slot = undefined
    this.#pending--
  }

  /**
   * No call is waiting (seen at a tick, not at each untrack: a lone caller's next call comes within a tick and reuses
   * the timer): the slots hold nothing, so the timer stops rather than tick until the last slot's deadline (a process
   * that closed its cache right after a burst of calls would still run it for a timeout). The next `track` starts it
   * again, and a block of the loop meanwhile is nobody's to credit.
   */
  #idle(): void {
    this.#slots = []
    this.#head = 0
    this.stop()
  }

  /** Stops the timer; pending calls are left to settle by themselves. */
  stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer)
    this.#timer = undefined
  }

  /**
   * The timer's tick. Expiry runs in the check phase (setImmediate), after the event loop's poll phase has read
   * what arrived meanwhile: after the loop was blocked, answers that came in time are waiting unread on their
   * sockets, and timing their calls out first would report a healthy Redis as not answering.
   */
  readonly #sweep = (): void => {
    if (this.#pending === 0) return this.#idle()
    this.#observe(this.#now(), this.#resolution)
    if (this.#expiring) return
    this.#expiring = true
    setImmediate(this.#expire)
  }

  /**
   * Adds to `#blocked` how much later than `expected` after it was last seen the loop runs at `now`: the timer's
   * tick is due one `resolution` after the last; the expiry right after the tick and one poll phase (a task queued
   * before it in the same check phase can also run long, with no poll phase after it). Lateness up to
   * `#blockedAbove` is the timer's jitter or a busy turn, not a block.
   */
  #observe(now: number, expected: number): void {
    const late = now - this.#seenAt - expected
    if (late > this.#blockedAbove) this.#blocked += late
    this.#seenAt = now
  }

  readonly #expire = (): void => {
    const now = this.#now()
    this.#observe(now, 0)
    this.#expiring = false
    const slots = this.#slots
    let head = this.#head
    // Slots end in order, give or take half a timeout: one opened later has a later deadline, and at most the credit
    // of the ones before it (the time between two openings includes the block that credits only the first), but for
    // the time between the loop last seen and the first's opening, which `track` keeps under half a timeout and a
    // resolution. A slot held back by one before it ends that much late at most.
    while (head < slots.length && this.#endOf(slots[head]!) <= now) {
      const { calls } = slots[head]!
      head++
      this.#pending -= calls.size
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
      this.#idle()
    } else if (head > 64 && head * 2 > slots.length) {
      this.#slots = slots.slice(head)
      this.#head = 0
    } else {
      this.#head = head
    }
  }

  /** When `slot`'s calls time out: its deadline, moved by the time the loop was seen blocked since it opened. */
  #endOf(slot: Slot): number {
    return slot.deadline + Math.min(this.#blocked - slot.blockedAtOpen, MAX_BLOCKED_CREDIT * this.timeoutMs)
  }
}
