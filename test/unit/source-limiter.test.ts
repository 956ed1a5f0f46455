import { getEventListeners } from 'node:events'
import fc from 'fast-check'
import { afterEach, describe, expect, it, vi } from 'vitest'
import {
  SourceLimiter,
  type SourceLimiterOptions,
  type SourceLimiterTimers,
} from '../../src/policies/source-limiter.js'
import { fakeClock, type FakeClock } from '../helpers/fake-clock.js'

/** Timers driven by the fake clock: `advance` moves the clock to each due timer in turn and runs it. */
function manualTimers(clock: FakeClock) {
  let nextId = 0
  const pending = new Map<number, { at: number; callback: () => void }>()
  let fired = 0
  const timers: SourceLimiterTimers = {
    setTimeout: (callback, ms) => {
      pending.set(++nextId, { at: clock.now() + ms, callback })
      return nextId
    },
    clearTimeout: (handle) => void pending.delete(handle as number),
  }
  return {
    timers,
    get count() {
      return pending.size
    },
    get fired() {
      return fired
    },
    /** Moves time forward by `ms`, firing due timers in order, and lets promise callbacks run after each. */
    async advance(ms: number) {
      const target = clock.now() + ms
      for (;;) {
        let next: [number, { at: number; callback: () => void }] | undefined
        for (const entry of pending) if (next === undefined || entry[1].at < next[1].at) next = entry
        if (next === undefined || next[1].at > target) break
        pending.delete(next[0])
        clock.set(Math.max(clock.now(), next[1].at))
        fired++
        next[1].callback()
        await flush()
      }
      clock.set(target)
      await flush()
    },
  }
}

const flush = () => new Promise<void>((resolve) => setImmediate(resolve))

function setup(options: Partial<SourceLimiterOptions> = {}, start = 0) {
  const clock = fakeClock(start)
  const time = manualTimers(clock)
  const limiter = new SourceLimiter(
    'user',
    { maxConcurrent: Infinity, maxPerSecond: Infinity, maxWaitMs: 10_000, ...options },
    clock.now,
    time.timers,
  )
  return { clock, time, limiter }
}

/** Calls `acquire` and records how it settled, so tests can look without awaiting. */
function track(limiter: SourceLimiter, signal?: AbortSignal) {
  const state: { release?: () => void; error?: unknown } = {}
  limiter.acquire(signal).then(
    (release) => void (state.release = release),
    (error: unknown) => void (state.error = error),
  )
  return state
}

describe('source limiter', () => {
  it('lets exactly maxConcurrent of 100 concurrent acquirers run, and hands each freed slot to a waiter', async () => {
    const { limiter, time } = setup({ maxConcurrent: 7 })
    const calls = Array.from({ length: 100 }, () => track(limiter))
    await flush()
    expect(calls.filter((c) => c.release).length).toBe(7)
    expect([limiter.active, limiter.waiting]).toEqual([7, 93])
    expect(limiter.tryAcquire()).toBeUndefined()

    let peak = 0
    const done = new Set<(typeof calls)[number]>()
    while (done.size < 100) {
      const running = calls.filter((c) => c.release && !done.has(c))
      expect(running.length).toBe(Math.min(7, 100 - done.size))
      for (const c of running.slice(0, 3)) {
        c.release!()
        done.add(c)
      }
      await flush()
      peak = Math.max(peak, limiter.active)
    }
    expect(peak).toBe(7)
    expect([limiter.active, limiter.waiting, time.count]).toEqual([0, 0, 0])
    expect(calls.every((c) => c.error === undefined)).toBe(true)
  })

  it('serves waiters first come, first served, and tryAcquire does not jump the queue', async () => {
    const { limiter } = setup({ maxConcurrent: 1 })
    const holder = limiter.tryAcquire()!
    const order: number[] = []
    const releases = Array.from({ length: 5 }, (_, i) =>
      limiter.acquire().then((release) => {
        order.push(i)
        return release
      }),
    )
    holder()
    expect(limiter.tryAcquire()).toBeUndefined()
    for (const pending of releases) (await pending)()
    expect(order).toEqual([0, 1, 2, 3, 4])
    expect(limiter.active).toBe(0)
  })

  it('releases once when a release function is called twice', () => {
    const { limiter } = setup({ maxConcurrent: 2 })
    const first = limiter.tryAcquire()!
    limiter.tryAcquire()!
    first()
    first()
    expect(limiter.active).toBe(1)
    expect(limiter.tryAcquire()).toBeDefined()
    expect(limiter.tryAcquire()).toBeUndefined()
  })

  it('starts exactly maxPerSecond loads per second over 5 simulated seconds, with one timer at a time', async () => {
    const { limiter, time, clock } = setup({ maxPerSecond: 20, maxWaitMs: 60_000 })
    const startedAt: number[] = []
    for (let i = 0; i < 110; i++) void limiter.acquire().then(() => startedAt.push(clock.now()))
    await flush()
    for (let ms = 0; ms < 5_000; ms += 10) {
      await time.advance(10)
      expect(time.count).toBeLessThanOrEqual(1)
    }
    const perSecond = [0, 1, 2, 3, 4].map(
      (s) => startedAt.filter((t) => t >= s * 1_000 && t < (s + 1) * 1_000).length,
    )
    expect(perSecond).toEqual([20, 20, 20, 20, 20])
    // The last 10 started at 5 s; one timer per refill, not a polling loop, and none once the queue is empty.
    expect([startedAt.length, limiter.waiting, time.fired, time.count]).toEqual([110, 0, 5, 0])
    expect(limiter.startsPerSecond()).toBe(10)
    await time.advance(1_000)
    expect(limiter.startsPerSecond()).toBe(0)
  })

  it('refuses tryAcquire once maxPerSecond loads started within the last second, and lets a steady stream through', async () => {
    const { limiter, time } = setup({ maxPerSecond: 4 })
    for (let i = 0; i < 4; i++) expect(limiter.tryAcquire()).toBeDefined()
    expect(limiter.tryAcquire()).toBeUndefined()
    await time.advance(999)
    expect(limiter.tryAcquire()).toBeUndefined()
    await time.advance(1)
    expect(limiter.tryAcquire()).toBeDefined()
    expect(limiter.tryAcquire()).toBeDefined()
    expect(limiter.tryAcquire()).toBeDefined()
    expect(limiter.tryAcquire()).toBeDefined()
    expect(limiter.tryAcquire()).toBeUndefined()
  })

  it('spaces starts 1 / maxPerSecond seconds apart when maxPerSecond is below 1', async () => {
    const { limiter, time } = setup({ maxPerSecond: 0.5 })
    expect(limiter.tryAcquire()).toBeDefined()
    await time.advance(1_999)
    expect(limiter.tryAcquire()).toBeUndefined()
    await time.advance(1)
    expect(limiter.tryAcquire()).toBeDefined()
  })

  it('rejects a waiter with ERR_STRATA_SOURCE_BUSY after maxWait, naming the lacking limit, and never gives it a slot', async () => {
    const { limiter, time } = setup({ maxConcurrent: 1, maxPerSecond: 10, maxWaitMs: 250 })
    const holder = limiter.tryAcquire()!
    const byConcurrency = track(limiter)
    await time.advance(249)
    expect(byConcurrency.error).toBeUndefined()
    await time.advance(1)
    expect(byConcurrency.error).toMatchObject({
      code: 'ERR_STRATA_SOURCE_BUSY',
      namespace: 'user',
      reason: 'concurrency',
      waitedMs: 250,
    })
    holder()
    expect([limiter.active, limiter.waiting, time.count]).toEqual([0, 0, 0])

    for (let i = 0; i < 9; i++) limiter.tryAcquire()!()
    const byRate = track(limiter)
    await time.advance(250)
    expect(byRate.error).toMatchObject({ code: 'ERR_STRATA_SOURCE_BUSY', reason: 'rate', waitedMs: 250 })
    expect(String((byRate.error as Error).message)).toContain('source.maxPerSecond')
    await time.advance(1_000)
    expect([byRate.release, limiter.active, time.count]).toEqual([undefined, 0, 0])
  })

  it("rejects with the signal's reason when aborted while waiting, and the slot goes to the next waiter", async () => {
    const { limiter, time } = setup({ maxConcurrent: 1 })
    const holder = limiter.tryAcquire()!
    const controller = new AbortController()
    const aborted = track(limiter, controller.signal)
    const next = track(limiter)
    const gone = new Error('caller gone')
    controller.abort(gone)
    await flush()
    expect(aborted.error).toBe(gone)
    expect(limiter.waiting).toBe(1)
    holder()
    await flush()
    expect(aborted.release).toBeUndefined()
    expect(next.release).toBeDefined()
    expect(limiter.active).toBe(1)

    const before = new Error('before')
    const already = track(limiter, AbortSignal.abort(before))
    await flush()
    expect(already.error).toBe(before)
    next.release!()
    expect([limiter.active, limiter.waiting, time.count]).toEqual([0, 0, 0])
  })

  it('leaves no timer pending once nobody waits, and never sets one without limits', async () => {
    const unlimited = setup()
    const releases = await Promise.all(Array.from({ length: 50 }, () => unlimited.limiter.acquire()))
    expect(unlimited.limiter.active).toBe(50)
    expect(unlimited.time.count).toBe(0)
    releases.forEach((release) => release())

    const { limiter, time } = setup({ maxConcurrent: 1, maxPerSecond: 2, maxWaitMs: 5_000 })
    const calls = Array.from({ length: 4 }, () => track(limiter))
    await flush()
    // Waiting for a slot: only the head's deadline timer.
    expect(time.count).toBe(1)
    let running = 0
    for (let step = 0; step < 40; step++) {
      await time.advance(100)
      const call = calls[running]
      if (call?.release) {
        call.release()
        running++
      }
      // At 200 ms the third call waits for the rate window (two starts in the last second): one timer, at 1 s.
      if (step === 1) expect([limiter.waiting, time.count]).toEqual([2, 1])
    }
    expect(running).toBe(4)
    expect(calls.every((c) => c.error === undefined)).toBe(true)
    expect([limiter.active, limiter.waiting, time.count]).toEqual([0, 0, 0])
  })

  it('counts the loads started in the last second', async () => {
    const { limiter, time } = setup()
    for (let i = 0; i < 5; i++) limiter.tryAcquire()
    await time.advance(500)
    for (let i = 0; i < 3; i++) limiter.tryAcquire()
    await time.advance(499)
    expect(limiter.startsPerSecond()).toBe(8)
    await time.advance(1)
    expect(limiter.startsPerSecond()).toBe(3)
    await time.advance(500)
    expect(limiter.startsPerSecond()).toBe(0)
  })

  it.each([
    ['source.maxConcurrent', { maxConcurrent: 0 }],
    ['source.maxConcurrent', { maxConcurrent: 2.5 }],
    ['source.maxConcurrent', { maxConcurrent: Number.NaN }],
    ['source.maxPerSecond', { maxPerSecond: 0 }],
    ['source.maxPerSecond', { maxPerSecond: -1 }],
    ['source.maxWait', { maxWaitMs: 0 }],
    ['source.maxWait', { maxWaitMs: '1s' as unknown as number }],
  ])('refuses an invalid %s at construction', (option, bad) => {
    expect(() => setup(bad)).toThrow(expect.objectContaining({ code: 'ERR_STRATA_INVALID_OPTION', option }))
  })

  it('keeps admitting loads when the clock it was given steps back 1 h (a wall clock under NTP)', async () => {
    const { limiter, time, clock } = setup({ maxPerSecond: 2, maxWaitMs: 2_000 }, 1_750_000_000_000)
    limiter.tryAcquire()!()
    limiter.tryAcquire()!()
    clock.set(clock.now() - 3_600_000)
    // The two starts were a moment ago, not an hour ahead: the window frees one second after them.
    expect(limiter.tryAcquire()).toBeUndefined()
    const waiter = track(limiter)
    await time.advance(999)
    expect(waiter.release).toBeUndefined()
    await time.advance(1)
    expect(waiter.error).toBeUndefined()
    expect(waiter.release).toBeDefined()
    expect(limiter.tryAcquire()).toBeDefined()
    // And the rate still holds after the step.
    expect(limiter.tryAcquire()).toBeUndefined()
    expect(limiter.startsPerSecond()).toBe(2)
  })

  describe('with its default clock and timers', () => {
    afterEach(() => void vi.restoreAllMocks())

    it('measures on performance.now, so Date.now stepping back 1 h does not block a load', async () => {
      const limiter = new SourceLimiter('user', {
        maxConcurrent: Infinity,
        maxPerSecond: 2,
        maxWaitMs: 3_000,
      })
      limiter.tryAcquire()!()
      limiter.tryAcquire()!()
      const wall = Date.now()
      vi.spyOn(Date, 'now').mockImplementation(() => wall - 3_600_000)
      const started = performance.now()
      const release = await limiter.acquire()
      const waited = performance.now() - started
      release()
      expect(waited).toBeGreaterThan(900)
      expect(waited).toBeLessThan(2_500)
    })
  })

  it('arms no timer longer than a Node timer holds for a maxWait of 30 days, and re-arms it until the deadline', async () => {
    const clock = fakeClock(0)
    const time = manualTimers(clock)
    const delays: number[] = []
    const timers: SourceLimiterTimers = {
      setTimeout: (callback, ms) => (delays.push(ms), time.timers.setTimeout(callback, ms)),
      clearTimeout: time.timers.clearTimeout,
    }
    const maxWaitMs = 30 * 86_400_000
    const limiter = new SourceLimiter(
      'user',
      { maxConcurrent: 1, maxPerSecond: Infinity, maxWaitMs },
      clock.now,
      timers,
    )
    limiter.tryAcquire()!
    const waiter = track(limiter)
    await flush()
    expect(delays).toEqual([2_147_483_647])
    await time.advance(2_147_483_647)
    // Fired at Node's limit, before the deadline: armed again for the rest, not rejected, not spinning.
    expect(waiter.error).toBeUndefined()
    expect(delays).toEqual([2_147_483_647, maxWaitMs - 2_147_483_647])
    await time.advance(maxWaitMs - 2_147_483_647)
    expect(waiter.error).toMatchObject({ code: 'ERR_STRATA_SOURCE_BUSY', waitedMs: maxWaitMs })
  })

  it('listens to a shared signal once however many wait on it, and rejects all of them when it aborts', async () => {
    const { limiter, time } = setup({ maxConcurrent: 1 })
    const holder = limiter.tryAcquire()!
    const controller = new AbortController()
    const waiters = Array.from({ length: 50 }, () => track(limiter, controller.signal))
    const own = new AbortController()
    const other = track(limiter, own.signal)
    await flush()
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(1)
    expect(getEventListeners(own.signal, 'abort')).toHaveLength(1)
    const closed = new Error('closed')
    controller.abort(closed)
    await flush()
    expect(waiters.every((w) => w.error === closed && w.release === undefined)).toBe(true)
    expect(limiter.waiting).toBe(1)
    holder()
    await flush()
    expect(other.release).toBeDefined()
    // Nobody waits on either signal any more: no listener is left behind.
    expect(getEventListeners(own.signal, 'abort')).toHaveLength(0)
    other.release!()
    expect([limiter.active, limiter.waiting, time.count]).toEqual([0, 0, 0])
  })

  it('removes its listener from a shared signal once every waiter on it got room or gave up', async () => {
    const { limiter, time } = setup({ maxConcurrent: 1, maxWaitMs: 500 })
    const signal = new AbortController().signal
    const holder = limiter.tryAcquire()!
    const first = track(limiter, signal)
    const second = track(limiter, signal)
    await flush()
    expect(getEventListeners(signal, 'abort')).toHaveLength(1)
    holder()
    await flush()
    expect(first.release).toBeDefined()
    expect(getEventListeners(signal, 'abort')).toHaveLength(1)
    await time.advance(500)
    expect(second.error).toMatchObject({ code: 'ERR_STRATA_SOURCE_BUSY' })
    expect(getEventListeners(signal, 'abort')).toHaveLength(0)
  })

  it('never runs more than maxConcurrent loads, nor starts more than maxPerSecond in any second, under any interleaving', async () => {
    type Step =
      | { kind: 'acquire' }
      | { kind: 'try' }
      | { kind: 'release'; pick: number }
      | { kind: 'abort'; pick: number }
      | { kind: 'advance'; ms: number }
    const step = fc.oneof(
      fc.constant<Step>({ kind: 'acquire' }),
      fc.constant<Step>({ kind: 'try' }),
      fc.nat(99).map<Step>((pick) => ({ kind: 'release', pick })),
      fc.nat(99).map<Step>((pick) => ({ kind: 'abort', pick })),
      fc.integer({ min: 1, max: 700 }).map<Step>((ms) => ({ kind: 'advance', ms })),
    )
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 5 }),
        fc.integer({ min: 1, max: 8 }),
        fc.array(step, { maxLength: 80 }),
        async (maxConcurrent, maxPerSecond, steps) => {
          const { limiter, time, clock } = setup({ maxConcurrent, maxPerSecond, maxWaitMs: 1_500 })
          const starts: number[] = []
          const held: (() => void)[] = []
          const controllers: AbortController[] = []
          const onStart = (release: () => void) => {
            starts.push(clock.now())
            held.push(release)
            expect(limiter.active).toBeLessThanOrEqual(maxConcurrent)
          }
          for (const s of steps) {
            if (s.kind === 'acquire') {
              const controller = new AbortController()
              controllers.push(controller)
              limiter.acquire(controller.signal).then(onStart, () => {})
            } else if (s.kind === 'try') {
              const release = limiter.tryAcquire()
              if (release) onStart(release)
            } else if (s.kind === 'release') {
              if (held.length > 0) held.splice(s.pick % held.length, 1)[0]!()
            } else if (s.kind === 'abort') {
              if (controllers.length > 0) controllers[s.pick % controllers.length]!.abort()
            } else {
              await time.advance(s.ms)
            }
            await flush()
            expect(limiter.active).toBeLessThanOrEqual(maxConcurrent)
            expect(limiter.active).toBe(held.length)
          }
          for (const [i, t] of starts.entries()) {
            const inWindow = starts.slice(i).filter((u) => u < t + 1_000).length
            expect(inWindow).toBeLessThanOrEqual(maxPerSecond)
          }
          // Wind down: every waiter either starts or times out, and nothing is left behind.
          for (const c of controllers) c.abort()
          for (const release of held.splice(0)) release()
          await time.advance(2_000)
          expect([limiter.active, limiter.waiting, time.count]).toEqual([0, 0, 0])
        },
      ),
      { numRuns: 200 },
    )
  })
})
