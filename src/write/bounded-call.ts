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
 * Calls `call` with a signal that aborts when `parent` aborts or after `timeoutMs` (then with `timeoutError()` as
 * its reason). Resolves when the call settles or when the time runs out, whichever comes first, and never
 * rejects. A call still running at its deadline is abandoned: a source that ignores its signal can still finish the
 * work after this resolved. What it does later is ignored (its rejection included), except that `late`, if given,
 * is told how it settled; an error thrown by `late` is dropped.
 */
export async function callWithin(
  call: (signal: AbortSignal) => unknown,
  parent: AbortSignal,
  timeoutMs: number,
  timeoutError: () => Error,
  late?: (outcome: CallOutcome) => unknown,
): Promise<CallOutcome> {
  const controller = new AbortController()
  // Forwarded by hand rather than with AbortSignal.any: Node 20.0-20.2 lack it, and it leaks on some versions.
  const forward = () => controller.abort(parent.reason)
  if (parent.aborted) forward()
  else parent.addEventListener('abort', forward, { once: true })
  let timer: ReturnType<typeof setTimeout> | undefined
  const expired = new Promise<CallOutcome>((resolve) => {
    timer = setTimeout(() => {
      const error = timeoutError()
      controller.abort(error)
      resolve({ ok: false, error, timedOut: true })
    }, timerDelay(timeoutMs))
    // The timer alone does not keep the process alive: whatever the call waits on does, if anything (a write-behind
    // write it abandons stays queued in Redis).
    timer.unref()
  })
  // Through a promise chain, so that a call that throws synchronously settles like one that rejects.
  const settled = Promise.resolve(controller.signal)
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
    clearTimeout(timer)
    parent.removeEventListener('abort', forward)
  }
}
