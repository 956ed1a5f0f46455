// Callbacks that reach user code (the logger) cannot stop the circuit breaker or the deadline sweep.
import { describe, expect, it } from 'vitest'
import { CircuitBreaker } from '../../src/policies/circuit-breaker.js'
import { Deadlines, type Timed } from '../../src/policies/deadline.js'

describe('a throwing state-change callback', () => {
  it('neither escapes the breaker nor stops it from changing state', () => {
    let now = 0
    const b = new CircuitBreaker(
      { failureThreshold: 2, breakMs: 100 },
      () => now,
      () => {
        throw new Error('logger down')
      },
    )
    b.failure()
    expect(() => b.failure()).not.toThrow()
    expect(b.state).toBe('open')
    now = 100
    expect(b.allow()).toBe(true) // half-open: the probe goes through
    expect(() => b.success()).not.toThrow()
    expect(b.state).toBe('closed')
  })
})

/** A call to time whose timeout runs `onTimeout`. */
const timed = (onTimeout: () => void): Timed => ({ deadline: 0, done: false, slot: undefined, onTimeout })

describe('a throwing timeout handler', () => {
  it('neither escapes the sweep (a timer callback) nor keeps the calls behind it from timing out', async () => {
    const d = new Deadlines(10)
    const timedOut: number[] = []
    d.track(
      timed(() => {
        throw new Error('logger down')
      }),
    )
    for (let i = 0; i < 3; i++) d.track(timed(() => void timedOut.push(i)))
    await expect.poll(() => timedOut).toEqual([0, 1, 2])
    d.track(timed(() => void timedOut.push(3))) // the sweep still runs for later calls
    await expect.poll(() => timedOut).toEqual([0, 1, 2, 3])
    d.stop()
  })
})
