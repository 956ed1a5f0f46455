// Protects a namespace's source of truth: caps how many loads run at once and how many start per second.
import { clearTimeout, setTimeout } from 'node:timers'
import { InvalidOptionError, SourceBusyError } from '../errors.js'

export interface SourceLimiterOptions {
  /**
   * Most loads running at once; a load holds its slot from `acquire` until its release function is called.
   * A whole number of 1 or more, or `Infinity` for no limit.
   */
  readonly maxConcurrent: number
  /**
   * Most loads started in any window of one second: a start is refused while `maxPerSecond` others started
   * in the last 1,000 ms, so a burst of `maxPerSecond` is allowed but never more within one second. A fraction
   * above 1 rounds down; below 1, one load starts per `1 / maxPerSecond` seconds. `Infinity` for no limit.
   * @example
   * // At most 50 loads in any second, and at most 8 at a time.
   * { maxConcurrent: 8, maxPerSecond: 50, maxWaitMs: 200 }
   */
  readonly maxPerSecond: number
  /** Longest time `acquire` waits for room before rejecting with `SourceBusyError`, in ms. `Infinity` waits for ever. */
  readonly maxWaitMs: number
}

/** How the limiter sets its single timer. Injectable so tests can drive it with a fake clock. */
export interface SourceLimiterTimers {
  setTimeout(callback: () => void, ms: number): unknown
  clearTimeout(handle: unknown): void
}

const nodeTimers: SourceLimiterTimers = {
  // Ref'd: the timer exists only while a caller waits, and a waiting caller is pending work. A job that awaits
  // room in a loop must not see the process exit under it. With nobody waiting there is no timer at all.
  setTimeout: (callback, ms) => setTimeout(callback, ms),
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
}

/** Milliseconds from a clock that never steps back: intervals must not follow the wall clock (NTP, VM resume). */
const monotonicNow = (): number => performance.now()

/** The longest delay a Node timer holds (2^31−1 ms, about 24.8 days); Node fires a longer one after 1 ms. */
const MAX_TIMER_MS = 2_147_483_647

/** A caller of `acquire` waiting for room. Whoever settles it first sets `settled`; later attempts do nothing. */
interface Waiter {
  readonly resolve: (release: () => void) => void
  readonly reject: (reason: unknown) => void
  readonly startedAt: number
  readonly deadline: number
  readonly signal: AbortSignal | undefined
  settled: boolean
}

/** The one 'abort' listener on a signal that waiters passed, and how many unsettled waiters passed it. */
interface Watched {
  waiters: number
  readonly onAbort: () => void
}

const BUCKETS = 10
const BUCKET_MS = 100

/**
 * Admits loads while there is a free concurrency slot and the rate window has room; otherwise callers of
 * `acquire` wait in one FIFO queue. One timer at most is pending, for the head waiter only: at the earlier of
 * its deadline and the moment the rate window next has room. Time comes from a monotonic clock
 * (`performance.now` unless one is injected); the timer only says when to look at it again.
 */
export class SourceLimiter {
  readonly #namespace: string
  readonly #maxConcurrent: number
  readonly #maxWaitMs: number
  readonly #clock: () => number
  /** Added to `#clock` readings so that time never goes back, even if the injected clock does. */
  #clockOffset = 0
  #lastNow = -Infinity
  readonly #timers: SourceLimiterTimers
  /** One listener per distinct signal waiters passed (for a namespace: the cache's), however many wait on it. */
  readonly #signals = new Map<AbortSignal, Watched>()
  /** Starts allowed per rate window, and the window's length in ms; `#limit` is Infinity without a rate limit. */
  readonly #limit: number
  readonly #windowMs: number
  /** Start times still inside the rate window, oldest first, from `#startsHead` on (only with a rate limit). */
  #starts: number[] = []
  #startsHead = 0
  #active = 0
  #queue: Waiter[] = []
  #queueHead = 0
  #waiting = 0
  #timer: unknown
  #timerAt = Infinity
  /** Ring of 100 ms buckets counting starts, for `startsPerSecond`; `#bucketIds[i]` is the bucket's time / 100. */
  readonly #bucketIds: number[] = new Array<number>(BUCKETS).fill(-Infinity)
  readonly #bucketCounts: number[] = new Array<number>(BUCKETS).fill(0)

  /**
   * @param monotonic Milliseconds from a clock that does not follow the wall clock: `performance.now` by default.
   *   Tests inject a fake one. A clock that steps back (a wall clock under NTP) is tolerated: the limiter's time
   *   holds still for that instant and goes on from there, so recorded starts never lie "in the future". A wall
   *   clock stepping forward still ends waits early; do not pass one.
   * @throws InvalidOptionError when an option cannot work (`source.maxConcurrent`, `source.maxPerSecond`, `source.maxWait`).
   */
  constructor(
    namespace: string,
    options: SourceLimiterOptions,
    monotonic: () => number = monotonicNow,
    timers: SourceLimiterTimers = nodeTimers,
  ) {
    const { maxConcurrent, maxPerSecond, maxWaitMs } = options
    if (
      typeof maxConcurrent !== 'number' ||
      !(maxConcurrent >= 1) ||
      (maxConcurrent !== Infinity && !Number.isInteger(maxConcurrent))
    ) {
      throw new InvalidOptionError(
        'source.maxConcurrent',
        maxConcurrent,
        'a whole number of 1 or more, or Infinity for no limit',
      )
    }
    if (typeof maxPerSecond !== 'number' || !(maxPerSecond > 0)) {
      throw new InvalidOptionError(
        'source.maxPerSecond',
        maxPerSecond,
        'a positive number of loads per second, or Infinity for no limit',
      )
    }
    if (typeof maxWaitMs !== 'number' || !(maxWaitMs > 0)) {
      throw new InvalidOptionError('source.maxWait', maxWaitMs, 'a positive number of ms')
    }
    this.#namespace = namespace
    this.#maxConcurrent = maxConcurrent
    this.#maxWaitMs = maxWaitMs
    this.#clock = monotonic
    this.#timers = timers
    if (maxPerSecond === Infinity) {
      this.#limit = Infinity
      this.#windowMs = 0
    } else if (maxPerSecond >= 1) {
      // Round down so that no window of one second ever holds more than maxPerSecond starts.
      this.#limit = Math.floor(maxPerSecond)
      this.#windowMs = 1_000
    } else {
      this.#limit = 1
      this.#windowMs = 1_000 / maxPerSecond
    }
  }

  /** Loads running now (acquired and not yet released). */
  get active(): number {
    return this.#active
  }

  /** Callers of `acquire` waiting for room. */
  get waiting(): number {
    return this.#waiting
  }

  /**
   * A release function now if there is room (a concurrency slot and room in the rate window), else undefined.
   * Never waits, and never jumps ahead of callers already waiting in `acquire`.
   */
  tryAcquire(): (() => void) | undefined {
    const now = this.#now()
    // Serve waiters whose room has come (their timer may not have fired yet) before looking for room of our own.
    if (this.#waiting > 0) this.#drain(now)
    if (this.#waiting > 0 || this.#lacking(now) !== undefined) return undefined
    return this.#start(now)
  }

  /**
   * Waits (FIFO, fair) until there is room, then resolves to a release function. Rejects with `SourceBusyError`
   * (`reason` 'concurrency' or 'rate', whichever was lacking at the deadline, and `waitedMs`) once `maxWaitMs`
   * has passed (or `maxWaitMs`, when shorter: the caller's own deadline), or with the signal's reason if `signal`
   * aborts first. A waiter that gave up never holds a slot.
   */
  acquire(signal?: AbortSignal, maxWaitMs = this.#maxWaitMs): Promise<() => void> {
    // The signal's reason as given: an AbortError DOMException by default, or whatever the caller passed to abort().
    if (signal?.aborted) return Promise.reject(signal.reason as Error)
    const now = this.#now()
    if (this.#waiting > 0) this.#drain(now)
    if (this.#waiting === 0 && this.#lacking(now) === undefined) return Promise.resolve(this.#start(now))
    return new Promise<() => void>((resolve, reject) => {
      const waiter: Waiter = {
        resolve,
        reject,
        startedAt: now,
        deadline: now + Math.min(this.#maxWaitMs, maxWaitMs),
        signal,
        settled: false,
      }
      if (signal !== undefined) this.#watch(signal)
      this.#queue.push(waiter)
      this.#waiting++
      this.#schedule(now)
    })
  }

  /** Loads started in the last second: a sliding count over 10 buckets of 100 ms, the current one partial. */
  startsPerSecond(): number {
    const current = Math.floor(this.#now() / BUCKET_MS)
    let total = 0
    for (let i = 0; i < BUCKETS; i++) {
      const id = this.#bucketIds[i]!
      if (id > current - BUCKETS && id <= current) total += this.#bucketCounts[i]!
    }
    return total
  }

  /** What is missing for a start at `now`, or undefined when there is room. */
  #lacking(now: number): 'concurrency' | 'rate' | undefined {
    if (this.#active >= this.#maxConcurrent) return 'concurrency'
    if (this.#limit !== Infinity && this.#startsInWindow(now) >= this.#limit) return 'rate'
    return undefined
  }

  /** Forgets starts that left the rate window, and counts those still in it. */
  #startsInWindow(now: number): number {
    const starts = this.#starts
    let head = this.#startsHead
    while (head < starts.length && starts[head]! + this.#windowMs <= now) head++
    if (head === starts.length) {
      this.#starts = []
      this.#startsHead = 0
      return 0
    }
    if (head > 1024 && head * 2 > starts.length) {
      this.#starts = starts.slice(head)
      this.#startsHead = 0
    } else {
      this.#startsHead = head
    }
    return this.#starts.length - this.#startsHead
  }

  /** Takes a slot and a place in the rate window; the returned function gives the slot back, once. */
  #start(now: number): () => void {
    this.#active++
    if (this.#limit !== Infinity) this.#starts.push(now)
    const id = Math.floor(now / BUCKET_MS)
    const slot = ((id % BUCKETS) + BUCKETS) % BUCKETS
    if (this.#bucketIds[slot] !== id) {
      this.#bucketIds[slot] = id
      this.#bucketCounts[slot] = 0
    }
    this.#bucketCounts[slot]!++
    let released = false
    return () => {
      if (released) return
      released = true
      this.#active--
      // The freed slot goes to the first waiter, before any later tryAcquire or acquire can see it.
      if (this.#waiting > 0) this.#drain(this.#now())
    }
  }

  /** The first waiter that has not given up, or undefined; forgets settled ones at the head. */
  #head(): Waiter | undefined {
    const queue = this.#queue
    let head = this.#queueHead
    while (head < queue.length && queue[head]!.settled) head++
    if (head === queue.length) {
      this.#queue = []
      this.#queueHead = 0
      return undefined
    }
    if (head > 1024 && head * 2 > queue.length) {
      this.#queue = queue.slice(head)
      this.#queueHead = 0
    } else {
      this.#queueHead = head
    }
    return this.#queue[this.#queueHead]
  }

  #settle(waiter: Waiter): void {
    waiter.settled = true
    this.#waiting--
    if (waiter.signal !== undefined) this.#unwatch(waiter.signal)
  }

  /**
   * Counts one more waiter on `signal`, listening to it once however many wait: with one listener per waiter, 11
   * waiters on the cache's signal raised MaxListenersExceededWarning.
   */
  #watch(signal: AbortSignal): void {
    let watched = this.#signals.get(signal)
    if (watched === undefined) {
      watched = { waiters: 0, onAbort: () => this.#abortWaiters(signal) }
      this.#signals.set(signal, watched)
      signal.addEventListener('abort', watched.onAbort, { once: true })
    }
    watched.waiters++
  }

  #unwatch(signal: AbortSignal): void {
    const watched = this.#signals.get(signal)
    if (watched === undefined || --watched.waiters > 0) return
    this.#signals.delete(signal)
    signal.removeEventListener('abort', watched.onAbort)
  }

  /** Rejects every waiter that passed `signal` with its reason, in queue order. */
  #abortWaiters(signal: AbortSignal): void {
    // The signal's reason as given: an AbortError DOMException by default, or whatever was passed to abort().
    const reason = signal.reason as Error
    const queue = this.#queue
    for (let i = this.#queueHead; i < queue.length; i++) {
      const waiter = queue[i]!
      if (waiter.settled || waiter.signal !== signal) continue
      this.#settle(waiter)
      waiter.reject(reason)
    }
    // The head may have left: its timer (deadline or rate) belongs to the next waiter now.
    this.#drain(this.#now())
  }

  /** The limiter's time: the injected clock, never going back (a backward step is absorbed into an offset). */
  #now(): number {
    let now = this.#clock() + this.#clockOffset
    if (now < this.#lastNow) {
      this.#clockOffset += this.#lastNow - now
      now = this.#lastNow
    }
    this.#lastNow = now
    return now
  }

  /** Hands room to waiters in order, rejects those past their deadline, then sets the timer for the next one. */
  #drain(now: number): void {
    let waiter = this.#head()
    // Grant before expiring: a waiter whose room came at its deadline gets the room.
    while (waiter !== undefined && this.#lacking(now) === undefined) {
      this.#settle(waiter)
      waiter.resolve(this.#start(now))
      waiter = this.#head()
    }
    // All waiters share maxWaitMs, so deadlines come in queue order: the expired ones are a prefix.
    while (waiter !== undefined && waiter.deadline <= now) {
      this.#settle(waiter)
      const reason = this.#lacking(now) ?? 'concurrency'
      waiter.reject(new SourceBusyError(this.#namespace, reason, now - waiter.startedAt))
      waiter = this.#head()
    }
    this.#schedule(now)
  }

  /**
   * Keeps exactly one timer while someone waits, none otherwise. It is due at the head waiter's deadline, or
   * sooner when only the rate window stands in its way and room comes back first. A lack of concurrency needs
   * no timer: a release drains the queue.
   */
  #schedule(now: number): void {
    const head = this.#head()
    let at = Infinity
    if (head !== undefined) {
      at = head.deadline
      if (this.#lacking(now) === 'rate') {
        // Room comes back when enough of the oldest starts leave the window to go below the limit.
        const starts = this.#starts
        const freeing = starts[starts.length - this.#limit]
        if (freeing !== undefined) at = Math.min(at, freeing + this.#windowMs)
      }
    }
    if (at === this.#timerAt) return
    if (this.#timer !== undefined) this.#timers.clearTimeout(this.#timer)
    this.#timer = undefined
    this.#timerAt = at
    if (at === Infinity) return
    // At least 1 ms, so a timer that fires a little early (or a clock that lags) cannot spin; at most what a Node
    // timer holds (a longer `source.maxWait` is re-armed when this one fires, rather than fired after 1 ms).
    const delay = Math.min(MAX_TIMER_MS, Math.max(1, Math.ceil(at - now)))
    this.#timer = this.#timers.setTimeout(this.#onTimer, delay)
  }

  readonly #onTimer = (): void => {
    this.#timer = undefined
    this.#timerAt = Infinity
    this.#drain(this.#now())
  }
}
