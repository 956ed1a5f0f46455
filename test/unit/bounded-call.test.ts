import { describe, expect, it, vi } from 'vitest'
import { callWithin, type CallOutcome } from '../../src/core/bounded-call.js'
import { deferred } from '../helpers/deferred.js'

const timeoutError = () => new Error('too slow')

describe('callWithin', () => {
  it('resolves with the timeout, aborting the call with that error, when the call outlives its deadline', async () => {
    const call = deferred<void>()
    let signal: AbortSignal | undefined
    const outcome = await callWithin(
      (s) => {
        signal = s.signal
        return call.promise
      },
      new AbortController().signal,
      20,
      timeoutError,
    )
    expect(outcome).toMatchObject({ ok: false, timedOut: true, error: { message: 'too slow' } })
    expect(signal!.aborted).toBe(true)
    expect(signal!.reason).toBe((outcome as { error: unknown }).error)
    call.resolve()
  })

  it('makes no signal for a call that never reads it, and leaves no listener on the parent', async () => {
    const parent = new AbortController()
    const added = vi.spyOn(parent.signal, 'addEventListener')
    const created = vi.spyOn(globalThis, 'AbortController')
    try {
      expect(await callWithin(() => 'done', parent.signal, 1_000, timeoutError)).toEqual({
        ok: true,
        value: 'done',
      })
      expect(created).not.toHaveBeenCalled()
      expect(added).not.toHaveBeenCalled()
    } finally {
      created.mockRestore()
    }
  })

  it('a signal read later is aborted as it would have been: after the timeout, or with the parent', async () => {
    // Read after the timeout: already aborted, with the timeout's error.
    const call = deferred<void>()
    let later: { signal: AbortSignal } | undefined
    const outcome = await callWithin(
      (s) => {
        later = s
        return call.promise
      },
      new AbortController().signal,
      20,
      timeoutError,
    )
    expect(later!.signal.aborted).toBe(true)
    expect(later!.signal.reason).toBe((outcome as { error: unknown }).error)
    call.resolve()
    // Read before, the parent aborting meanwhile: forwarded, with the parent's reason; the listener is removed after.
    const parent = new AbortController()
    const removed = vi.spyOn(parent.signal, 'removeEventListener')
    const second = await callWithin(
      async (s) => {
        const signal = s.signal
        parent.abort(new Error('closing'))
        expect(signal.aborted).toBe(true)
        throw signal.reason
      },
      parent.signal,
      1_000,
      timeoutError,
    )
    expect(second).toMatchObject({ ok: false, timedOut: false, error: { message: 'closing' } })
    expect(removed).toHaveBeenCalledTimes(1)
    // A parent aborted before the call reads its signal: the signal is made aborted.
    let early: AbortSignal | undefined
    await callWithin(
      (s) => void (early = s.signal),
      AbortSignal.abort(new Error('closed')),
      1_000,
      timeoutError,
    )
    expect(early!.aborted).toBe(true)
    expect((early!.reason as Error).message).toBe('closed')
  })

  it('tells `late` how an abandoned call settled: a success, then a failure', async () => {
    for (const settle of ['resolve', 'reject'] as const) {
      const call = deferred<void>()
      const late = vi.fn<(outcome: CallOutcome) => void>()
      await callWithin(() => call.promise, new AbortController().signal, 20, timeoutError, { late })
      expect(late).not.toHaveBeenCalled()
      if (settle === 'resolve') call.resolve()
      else call.reject(new Error('source failed'))
      await vi.waitFor(() => expect(late).toHaveBeenCalledTimes(1))
      expect(late.mock.calls[0]![0]).toEqual(
        settle === 'resolve'
          ? { ok: true, value: undefined }
          : { ok: false, timedOut: false, error: new Error('source failed') },
      )
    }
  })

  it('never calls `late` for a call that settled in time', async () => {
    const late = vi.fn()
    const outcome = await callWithin(async () => 'done', new AbortController().signal, 1_000, timeoutError, {
      late,
    })
    expect(outcome).toEqual({ ok: true, value: 'done' })
    await new Promise((resolve) => setTimeout(resolve, 20))
    expect(late).not.toHaveBeenCalled()
  })

  it('drops an error thrown by `late`: no unhandled rejection reaches the host', async () => {
    const unhandled = vi.fn()
    process.on('unhandledRejection', unhandled)
    try {
      const call = deferred<void>()
      const late = vi.fn(() => {
        throw new Error('late failed')
      })
      await callWithin(() => call.promise, new AbortController().signal, 20, timeoutError, { late })
      call.resolve()
      await vi.waitFor(() => expect(late).toHaveBeenCalledTimes(1))
      await new Promise((resolve) => setTimeout(resolve, 20))
      expect(unhandled).not.toHaveBeenCalled()
    } finally {
      process.off('unhandledRejection', unhandled)
    }
  })

  it('answers the value the call settled with, and settles a call that throws synchronously as a failure', async () => {
    const signal = new AbortController().signal
    expect(await callWithin(async () => ({ id: 7 }), signal, 1_000, timeoutError)).toEqual({
      ok: true,
      value: { id: 7 },
    })
    const thrown = new Error('sync throw')
    expect(
      await callWithin(
        () => {
          throw thrown
        },
        signal,
        1_000,
        timeoutError,
      ),
    ).toEqual({ ok: false, timedOut: false, error: thrown })
  })

  it('keeps the process alive with its deadline only when asked (`keepAlive`: a load awaited by a script)', async () => {
    const timers = vi.spyOn(globalThis, 'setTimeout')
    try {
      for (const keepAlive of [undefined, false, true]) {
        timers.mockClear()
        const call = deferred<void>()
        const outcome = callWithin(
          () => call.promise,
          new AbortController().signal,
          1_000,
          timeoutError,
          keepAlive === undefined ? {} : { keepAlive },
        )
        const timer = timers.mock.results[0]!.value as NodeJS.Timeout
        expect(timer.hasRef()).toBe(keepAlive === true)
        call.resolve()
        await outcome
      }
    } finally {
      timers.mockRestore()
    }
  })

  it('counts as timed out a call that rejects at once when its signal aborts at the deadline', async () => {
    const outcome = await callWithin(
      ({ signal }) =>
        new Promise((_, reject) => signal.addEventListener('abort', () => reject(signal.reason as Error))),
      new AbortController().signal,
      20,
      timeoutError,
    )
    expect(outcome).toMatchObject({ ok: false, timedOut: true, error: { message: 'too slow' } })
  })
})
