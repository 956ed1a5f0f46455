// A source call bounded in time: past its deadline its signal is aborted and the caller stops waiting for it.

/** The longest delay a Node timer honours: a larger one fires after 1 ms (TimeoutOverflowWarning). */
export const MAX_TIMER_MS = 2 ** 31 - 1

/** `ms` as a delay safe to hand to setTimeout / setInterval: at least 1, at most {@link MAX_TIMER_MS}. */
export function timerDelay(ms: number): number {
  return Math.min(Math.max(1, Math.ceil(ms)), MAX_TIMER_MS)
}

/** How a bounded call ended: it settled by itself (with its value, or its error), or its time ran out first. */
export type CallOutcome<T = unknown> =
  | { readonly ok: true; readonly value: T }
  | { readonly ok: false; readonly error: unknown; readonly timedOut: boolean }

/**
 * The signal of one bounded call, made the first time the call reads it. An `AbortController` with its signal costs
 * about 3.6 µs and the parent's listener 0.6 µs: most of a bounded call's ~4-5 µs, measured on Node 20, and many
 * source functions never look at their signal. Read it through a getter (`get signal() { return s.signal }`), never
 * by spreading an object that holds one: a spread reads it.
 */
export interface CallSignal {
  readonly signal: AbortSignal
}

export interface CallWithinOptions<T> {
  /**
   * Told how a call abandoned at its deadline settled later (its value or its error); what it throws is dropped.
   * Not called for a call that settled in time.
   */
  readonly late?: (outcome: CallOutcome<T>) => unknown
  /**
   * Whether the deadline's timer keeps the process alive. A loader awaited by a script that has nothing else to wait
   * on must still time out with its error rather than let the process exit; a background write abandoned at close
   * must not hold the process. @default false
   */
  readonly keepAlive?: boolean
}

/** What the deadline's promise resolves to: no call can answer it. */
const EXPIRED: unique symbol = Symbol('expired')

/**
 * The lazy signal of one bounded call, and the call's state, in one object: a call's cost is mostly allocation
 * (measured on the load path, where the garbage collector took a third of the CPU), so no closure is made until the
 * call reads its signal.
 */
class LazyCallSignal implements CallSignal {
  readonly #parent: AbortSignal
  #controller: AbortController | undefined
  /** The parent's listener, once a signal is made while the call runs. */
  #forward: (() => void) | undefined
  /** The timeout's error, once the time ran out. */
  expiredWith: Error | undefined
  /** Whether the bounded call returned: a signal made after that is not tied to the parent (no listener left). */
  #done = false

  constructor(parent: AbortSignal) {
    this.#parent = parent
  }

  get signal(): AbortSignal {
    if (this.#controller === undefined) {
      const controller = (this.#controller = new AbortController())
      const parent = this.#parent
      if (this.expiredWith !== undefined) controller.abort(this.expiredWith)
      else if (parent.aborted) controller.abort(parent.reason)
      else if (!this.#done) {
        // Forwarded by hand rather than with AbortSignal.any: Node 20.0-20.2 lack it, and it leaks on some versions.
        this.#forward = () => controller.abort(parent.reason)
        parent.addEventListener('abort', this.#forward, { once: true })
      }
    }
    return this.#controller.signal
  }

  expire(error: Error): void {
    this.expiredWith = error
    this.#controller?.abort(error)
  }

  finish(): void {
    this.#done = true
    if (this.#forward !== undefined) this.#parent.removeEventListener('abort', this.#forward)
  }
}

/**
 * Calls `call` with a signal that aborts when `parent` aborts or after `timeoutMs` (then with `timeoutError()` as
 * its reason). Resolves when the call settles or when the time runs out, whichever comes first, and never
 * rejects; a call that throws synchronously settles like one that rejects. A call still running at its deadline is
 * abandoned: a source that ignores its signal can still finish the work after this resolved. What it does later is
 * ignored (its rejection included), except that `options.late`, if given, is told how it settled. The one bounded
 * source call: loads, `write()`, write-behind flushes, audit records.
 */
export async function callWithin<T>(
  call: (callSignal: CallSignal) => T | PromiseLike<T>,
  parent: AbortSignal,
  timeoutMs: number,
  timeoutError: () => Error,
  options: CallWithinOptions<T> = {},
): Promise<CallOutcome<Awaited<T>>> {
  const callSignal = new LazyCallSignal(parent)
  let timer: ReturnType<typeof setTimeout> | undefined
  const expired = new Promise<typeof EXPIRED>((resolve) => {
    timer = setTimeout(() => {
      // Settled before the signal aborts: a call that rejects at once from its abort listener must still lose.
      resolve(EXPIRED)
      callSignal.expire(timeoutError())
    }, timerDelay(timeoutMs))
    // Unless asked, the timer alone does not keep the process alive: whatever the call waits on does, if anything
    // (a write-behind write it abandons stays queued in Redis).
    if (options.keepAlive !== true) timer.unref()
  })
  try {
    const result = call(callSignal)
    const first = await Promise.race([result, expired])
    if (first !== EXPIRED) return { ok: true, value: first as Awaited<T> }
    const late = options.late
    if (late !== undefined) {
      Promise.resolve(result)
        .then(
          (value) => late({ ok: true, value }),
          (error: unknown) => late({ ok: false, error, timedOut: false }),
        )
        .catch(() => {})
    }
    return { ok: false, error: callSignal.expiredWith, timedOut: true }
  } catch (error) {
    return { ok: false, error, timedOut: false }
  } finally {
    callSignal.finish()
    clearTimeout(timer)
  }
}
