// A source call bounded in time: past its deadline its signal is aborted and the caller stops waiting for it.

/** The longest delay a Node timer honours: a larger one fires after 1 ms (TimeoutOverflowWarning). */
export const MAX_TIMER_MS = 2 ** 31 - 1

/** `ms` as a delay safe to hand to setTimeout / setInterval: at least 1, at most {@link MAX_TIMER_MS}. */
export function timerDelay(ms: number): number {
  return Math.min(Math.max(1, Math.ceil(ms)), MAX_TIMER_MS)
}

/** How a bounded call ended: it settled by itself (fulfilled or rejected), or its time ran out first. */
export type CallOutcome =
  { readonly ok: true } | { readonly ok: false; readonly error: unknown; readonly timedOut: boolean }

/**
 * The signal of one bounded call, made the first time the call reads it. An `AbortController` with its signal costs
 * about 3.6 µs and the parent's listener 0.6 µs: most of a bounded call's ~4-5 µs, measured on Node 20, and many
 * source functions never look at their signal. Read it through a getter (`get signal() { return s.signal }`), never
 * by spreading an object that holds one: a spread reads it.
 */
export interface CallSignal {
  readonly signal: AbortSignal
}

/**
 * Calls `call` with a signal that aborts when `parent` aborts or after `timeoutMs` (then with `timeoutError()` as
 * its reason). Resolves when the call settles or when the time runs out, whichever comes first, and never
 * rejects. A call still running at its deadline is abandoned: a source that ignores its signal can still finish the
 * work after this resolved. What it does later is ignored (its rejection included), except that `late`, if given,
 * is told how it settled; an error thrown by `late` is dropped.
 */
export async function callWithin(
  call: (callSignal: CallSignal) => unknown,
  parent: AbortSignal,
  timeoutMs: number,
  timeoutError: () => Error,
  late?: (outcome: CallOutcome) => unknown,
): Promise<CallOutcome> {
  let controller: AbortController | undefined
  /** The timeout's error, once the time ran out. */
  let expiredWith: Error | undefined
  /** Whether this function returned: a signal made after that is not tied to `parent` (no listener left behind). */
  let done = false
  // Forwarded by hand rather than with AbortSignal.any: Node 20.0-20.2 lack it, and it leaks on some versions.
  const forward = () => controller!.abort(parent.reason)
  const callSignal: CallSignal = {
    get signal() {
      if (controller === undefined) {
        controller = new AbortController()
        if (expiredWith !== undefined) controller.abort(expiredWith)
        else if (parent.aborted) forward()
        else if (!done) parent.addEventListener('abort', forward, { once: true })
      }
      return controller.signal
    },
  }
  let timer: ReturnType<typeof setTimeout> | undefined
  const expired = new Promise<CallOutcome>((resolve) => {
    timer = setTimeout(() => {
      const error = (expiredWith = timeoutError())
      controller?.abort(error)
      resolve({ ok: false, error, timedOut: true })
    }, timerDelay(timeoutMs))
    // The timer alone does not keep the process alive: whatever the call waits on does, if anything (a write-behind
    // write it abandons stays queued in Redis).
    timer.unref()
  })
  // Through a promise chain, so that a call that throws synchronously settles like one that rejects.
  const settled = Promise.resolve(callSignal)
    .then(call)
    .then(
      (): CallOutcome => ({ ok: true }),
      (error: unknown): CallOutcome => ({ ok: false, error, timedOut: false }),
    )
  try {
    const outcome = await Promise.race([settled, expired])
    if (late !== undefined && !outcome.ok && outcome.timedOut) {
      settled.then(late).catch(() => {})
    }
    return outcome
  } finally {
    done = true
    clearTimeout(timer)
    if (controller !== undefined) parent.removeEventListener('abort', forward)
  }
}
