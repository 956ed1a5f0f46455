import { once } from 'node:events'
import { createServer, connect, type AddressInfo, type Socket } from 'node:net'
import { describe, expect, it } from 'vitest'
import { parseDuration } from '../../src/core/duration.js'
import { CircuitBreaker, type CircuitState } from '../../src/policies/circuit-breaker.js'
import { Deadlines, type Timed } from '../../src/policies/deadline.js'
import { InvalidOptionError } from 'stratacache'

describe('circuit breaker', () => {
  function breaker() {
    let now = 0
    const changes: CircuitState[] = []
    const b = new CircuitBreaker(
      { failureThreshold: 3, breakMs: 1_000 },
      () => now,
      (s) => changes.push(s),
    )
    return { b, changes, advance: (ms: number) => (now += ms) }
  }

  it('opens after the threshold of consecutive failures, and a success resets the count', () => {
    const { b, changes } = breaker()
    b.failure()
    b.failure()
    b.success()
    b.failure()
    b.failure()
    expect(b.state).toBe('closed')
    b.failure()
    expect(b.state).toBe('open')
    expect(b.allow()).toBe(false)
    expect(changes).toEqual(['open'])
  })

  it('lets exactly one probe through after the break; its success closes the circuit', () => {
    const { b, changes, advance } = breaker()
    for (let i = 0; i < 3; i++) b.failure()
    advance(999)
    expect(b.retryInMs()).toBe(1)
    expect(b.allow()).toBe(false)
    advance(1)
    expect(b.allow()).toBe(true)
    expect(b.state).toBe('half-open')
    expect(b.allow()).toBe(false)
    b.success()
    expect(b.state).toBe('closed')
    expect(changes).toEqual(['open', 'half-open', 'closed'])
  })

  it('reopens when the probe fails, and late failures of calls sent earlier do not extend the break', () => {
    const { b, advance } = breaker()
    for (let i = 0; i < 3; i++) b.failure()
    advance(500)
    b.failure() // a call sent before the circuit opened fails late
    expect(b.retryInMs()).toBe(500)
    advance(500)
    expect(b.allow()).toBe(true)
    b.failure()
    expect(b.state).toBe('open')
    expect(b.retryInMs()).toBe(1_000)
  })
})

/** Settles like `promise`, or rejects with `makeError()` once the deadline passes first: how L2Guard uses `track`. */
function race<T>(deadlines: Deadlines, promise: Promise<T>, makeError: () => Error): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const pending: Timed = { deadline: 0, done: false, slot: undefined, onTimeout: () => reject(makeError()) }
    deadlines.track(pending)
    promise.then(
      (value) => {
        if (pending.done) return
        pending.done = true
        deadlines.untrack(pending)
        resolve(value)
      },
      (error: unknown) => {
        if (pending.done) return
        pending.done = true
        deadlines.untrack(pending)
        reject(error instanceof Error ? error : new Error(String(error)))
      },
    )
  })
}

describe('deadlines', () => {
  it('passes through values and errors that settle in time', async () => {
    const d = new Deadlines(1_000)
    const late = () => new Error('late')
    await expect(race(d, Promise.resolve(1), late)).resolves.toBe(1)
    await expect(race(d, Promise.reject(new Error('own')), late)).rejects.toThrow('own')
    d.stop()
  })

  it('rejects with the timeout error once the deadline passes, and ignores the late result', async () => {
    const d = new Deadlines(20)
    const timedOut = () => new Error('timed out')
    let settle!: (v: string) => void
    const slow = new Promise<string>((resolve) => (settle = resolve))
    const raced = race(d, slow, timedOut)
    await expect(raced).rejects.toThrow('timed out')
    settle('late')
    await expect(race(d, Promise.resolve('next'), timedOut)).resolves.toBe('next')
    d.stop()
  })

  it('holds a call only until it settles: an untracked call leaves its slot and is never timed out', async () => {
    const d = new Deadlines(10)
    let timedOut = 0
    const calls: Timed[] = Array.from({ length: 100 }, () => ({
      deadline: 0,
      done: false,
      slot: undefined,
      onTimeout: () => void timedOut++,
    }))
    for (const call of calls) d.track(call)
    const slot = calls[0]!.slot!
    expect(slot.size).toBeGreaterThan(0)
    for (const call of calls.slice(0, 99)) {
      call.done = true
      d.untrack(call)
    }
    expect(calls.slice(0, 99).every((call) => call.slot === undefined && !slot.has(call))).toBe(true)
    await expect.poll(() => timedOut).toBe(1) // the one still waiting
    expect(calls[99]!.slot).toBeUndefined()
    d.stop()
  })

  it('stops its timer once no call is waiting, and starts it again for the next call', async () => {
    // The timer reads the clock on every tick: a clock nobody reads is a timer that does not run. A cache closed right
    // after a burst of calls then leaves nothing ticking for a timeout (test/integration/lifecycle.test.ts).
    let reads = 0
    const d = new Deadlines(100, () => (reads++, performance.now()))
    const call: Timed = { deadline: 0, done: false, slot: undefined, onTimeout: () => {} }
    d.track(call)
    await expect.poll(() => reads).toBeGreaterThan(2) // ticking while the call waits
    call.done = true
    d.untrack(call)
    // It notices at its next tick (10 ms here) and stops; its deadline was 100 ms away.
    await new Promise((resolve) => setTimeout(resolve, 30))
    const after = reads
    await new Promise((resolve) => setTimeout(resolve, 60))
    expect(reads).toBe(after)
    let timedOut = false
    d.track({ deadline: 0, done: false, slot: undefined, onTimeout: () => void (timedOut = true) })
    await expect.poll(() => timedOut).toBe(true)
    d.stop()
  })

  it('settles with the answer that arrived while a task queued just before the expiry blocked the loop', async () => {
    // A loopback connection: what the server writes lands in the client's socket buffer at once, unread until the
    // event loop's next poll phase.
    const server = createServer()
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    const accepted = once(server, 'connection') as Promise<[Socket]>
    const client = connect((server.address() as AddressInfo).port, '127.0.0.1')
    await once(client, 'connect')
    const [peer] = await accepted
    try {
      // Created just before the deadlines' own timer with the same period (10 ms), so it runs just before the
      // sweep in the same timers phase, and the task it queues runs just before the expiry in the check phase:
      // the answer is written, then the loop blocks past the deadline, and no poll phase comes in between.
      let blocked = false
      const blocker = setInterval(() => {
        if (blocked) return
        blocked = true
        setImmediate(() => {
          peer.write('answer')
          const until = performance.now() + 150
          while (performance.now() < until) {
            // Blocking on purpose: a long synchronous task.
          }
        })
      }, 10)
      const d = new Deadlines(100)
      const answer = once(client, 'data').then(([chunk]) => String(chunk))
      const settled = await race(d, answer, () => new Error('timed out')).then(
        (value) => value,
        (error: Error) => error.message,
      )
      clearInterval(blocker)
      d.stop()
      expect(blocked).toBe(true)
      expect(settled).toBe('answer')
    } finally {
      client.destroy()
      peer.destroy()
      server.close()
    }
  })

  describe('after the event loop was blocked', () => {
    /**
     * Deadlines on a clock the test moves by hand; the timer still ticks in real time. A jump of the clock between two
     * ticks is what the timer sees of a blocked loop (a tick that comes late); a step within one resolution (10 ms
     * here) is the timer's own jitter.
     */
    function onHandClock(timeoutMs: number) {
      const clock = { now: 0 }
      const deadlines = new Deadlines(timeoutMs, () => clock.now)
      /** A call that records the clock's time when it times out (-1 until then). */
      const newCall = () => {
        const call = { deadline: 0, done: false, slot: undefined, timedOutAt: -1 } as Timed & {
          timedOutAt: number
        }
        call.onTimeout = () => void (call.timedOutAt = clock.now)
        return call
      }
      const call = newCall()
      /** Moves the clock by `step` ms between real ticks until `call` times out (or 1 s on the clock passes). */
      const stepUntilTimedOut = async (step: number) => {
        while (call.timedOutAt === -1 && clock.now < 1_000) {
          clock.now += step
          await ticks()
          // The sweep queues its expiry for the check phase (setImmediate). When a stall makes the sweep and this
          // tick due in the same timers phase, the sweep runs first (it is due first) but its expiry runs after us:
          // one check phase lets it run at this step's time, before the loop reads `timedOutAt` and steps on.
          await new Promise((resolve) => setImmediate(resolve))
        }
      }
      return { clock, deadlines, call, newCall, stepUntilTimedOut }
    }
    const ticks = () => new Promise((resolve) => setTimeout(resolve, 30))

    it('moves the deadline of a pending call by the block: it times out after a timeout of time the loop was free', async () => {
      const { clock, deadlines, call, stepUntilTimedOut } = onHandClock(100)
      deadlines.track(call)
      clock.now = 300 // blocked for 300 ms right after the call was asked: 290 ms later than the timer's tick
      await ticks()
      expect(call.timedOutAt).toBe(-1)
      await stepUntilTimedOut(10)
      // The deadline (100) plus the block (290): the call had 100 ms of a free loop, as if there were no block.
      expect(call.timedOutAt).toBeGreaterThanOrEqual(390)
      expect(call.timedOutAt).toBeLessThanOrEqual(410)
      deadlines.stop()
    })

    it('moves it by nine timeouts at most: a call ends within ten however long the loop stays blocked', async () => {
      const { clock, deadlines, call } = onHandClock(100)
      deadlines.track(call)
      clock.now = 60_000
      // Without the cap the deadline would move to 60,090 and, the clock standing still, never come.
      await expect.poll(() => call.timedOutAt).toBe(60_000)
      deadlines.stop()
    })

    it('gives no credit to a call asked right after the block, before the timer has seen it', async () => {
      const { clock, deadlines, call, newCall, stepUntilTimedOut } = onHandClock(100)
      const before = newCall()
      deadlines.track(before)
      clock.now = 300
      deadlines.track(call) // in the same task: no tick in between
      await stepUntilTimedOut(10)
      // The call asked after the block has its 100 ms; the one pending during it has its 100 ms plus the block.
      expect(call.timedOutAt).toBeGreaterThanOrEqual(400)
      expect(call.timedOutAt).toBeLessThanOrEqual(420)
      expect(before.timedOutAt).toBeGreaterThanOrEqual(390)
      deadlines.stop()
    })

    it('counts a busy turn shorter than half a timeout as no block: the call keeps its deadline under load', async () => {
      const { deadlines, call, stepUntilTimedOut } = onHandClock(100)
      deadlines.track(call)
      // Each tick 40 ms after the last (30 ms late): a loop slowed by its work, but reading its sockets every turn.
      await stepUntilTimedOut(40)
      expect(call.timedOutAt).toBe(120)
      deadlines.stop()
    })
  })

  it('times out many pending calls in order with one timer and stops it when the queue empties', async () => {
    const d = new Deadlines(10)
    const never = new Promise<never>(() => {})
    const results = await Promise.allSettled(
      Array.from({ length: 2_000 }, () => race(d, never, () => new Error('t'))),
    )
    expect(results.every((r) => r.status === 'rejected')).toBe(true)
    d.stop()
  })
})

describe('durations', () => {
  it.each([
    [250, 250],
    ['250ms', 250],
    ['30s', 30_000],
    ['1.5s', 1_500],
    ['5m', 300_000],
    ['1h', 3_600_000],
    ['2d', 172_800_000],
    [' 10 s ', 10_000],
  ])('parses %j as %d ms', (input, ms) => {
    expect(parseDuration(input, 'ttl')).toBe(ms)
  })

  it.each([['5 minutes'], ['-1s'], [-5], [NaN], [Infinity], ['1w'], [null], [{}]])(
    'refuses %j naming the option',
    (input) => {
      expect(() => parseDuration(input, 'product.ttl')).toThrow(InvalidOptionError)
      expect(() => parseDuration(input, 'product.ttl')).toThrow(/`product.ttl`.*'30s'/)
    },
  )
})
