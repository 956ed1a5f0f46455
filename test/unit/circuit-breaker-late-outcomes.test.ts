// The circuit breaker judges a call by the state it was sent under: outcomes that arrive after a change are ignored.
import { describe, expect, it } from 'vitest'
import { CircuitBreaker, type CircuitState } from '../../src/policies/circuit-breaker.js'

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

describe('circuit breaker and late outcomes', () => {
  it('stays open when a call sent before it opened succeeds late', () => {
    const { b, changes } = breaker()
    const sentClosed = b.epoch
    for (let i = 0; i < 3; i++) b.failure(b.epoch)
    expect(b.state).toBe('open')
    b.success(sentClosed)
    expect(b.state).toBe('open')
    expect(b.allow()).toBe(false)
    expect(changes).toEqual(['open'])
  })

  it('keeps the half-open probe reserved when a call sent before the break settles late', () => {
    const { b, advance } = breaker()
    const sentClosed = b.epoch
    for (let i = 0; i < 3; i++) b.failure(b.epoch)
    advance(1_000)
    expect(b.allow()).toBe(true) // the probe
    const probe = b.epoch
    b.success(sentClosed)
    b.failure(sentClosed)
    expect(b.state).toBe('half-open')
    expect(b.allow()).toBe(false) // still one probe only
    b.success(probe)
    expect(b.state).toBe('closed')
  })

  it('does not reopen when a call sent before the probe fails late, nor count it against the new closed state', () => {
    const { b, advance } = breaker()
    const sentBeforeBreak = [b.epoch, b.epoch, b.epoch, b.epoch, b.epoch]
    for (let i = 0; i < 3; i++) b.failure(b.epoch)
    advance(1_000)
    expect(b.allow()).toBe(true)
    const probe = b.epoch
    // Late failures of calls sent before the break, while the probe is in flight: they are not the probe's.
    b.failure(sentBeforeBreak[0])
    expect(b.state).toBe('half-open')
    b.success(probe)
    expect(b.state).toBe('closed')
    // More late failures, now against the new closed state: none counts, however many.
    for (const epoch of sentBeforeBreak.slice(1)) b.failure(epoch)
    expect(b.state).toBe('closed')
    // Failures of calls sent now still count: two do not open it, a third does.
    b.failure(b.epoch)
    b.failure(b.epoch)
    expect(b.state).toBe('closed')
    b.failure(b.epoch)
    expect(b.state).toBe('open')
  })

  it('reopens when the probe itself fails', () => {
    const { b, advance } = breaker()
    for (let i = 0; i < 3; i++) b.failure(b.epoch)
    advance(1_000)
    expect(b.allow()).toBe(true)
    b.failure(b.epoch)
    expect(b.state).toBe('open')
    expect(b.retryInMs()).toBe(1_000)
  })
})
