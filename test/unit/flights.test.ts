// The in-process single-flight registry (read/flights.ts): a flight settles once, has left the registry before its
// callers resume, holds its fence token until it (and its continuation) settle, and never leaves a dead flight
// behind when its work or its bookkeeping throws. The read path over a real Redis is covered by the integration
// tests; these pin the rules the L2 hit path relies on now that a flight settles itself.
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { Flight, FlightRegistry } from '../../src/read/flights.js'

const clock = (now = 0) => ({ now: () => now })
const NO_TOKEN = Number.MAX_SAFE_INTEGER

/** A flight run by its maker (as the reader's own flights are), with bookkeeping that records when it ran. */
class OwnFlight extends Flight<string> {
  settledCalls = 0
  throwInSettled = false

  protected override settled(): void {
    this.settledCalls++
    if (this.throwInSettled) throw new Error('bookkeeping bug')
  }
}

/**
 * A registered flight of key 'k' that answered 'stale' at the soft timeout (window until clock time 1,000), its load
 * still running until `finish()`.
 */
function answeredAhead(token: number) {
  const registry = new FlightRegistry<string>()
  const flight = new OwnFlight(registry, 'k', token)
  registry.register(flight)
  let finish!: () => void
  flight.answersUntil = 1_000
  flight.continuation = new Promise<void>((resolve) => (finish = resolve))
  flight.resolve('stale')
  return { registry, flight, finish }
}

describe('FlightRegistry', () => {
  it('a flight answers every caller once: what comes after its first outcome is ignored', async () => {
    const registry = new FlightRegistry<string>()
    const flight = new OwnFlight(registry, 'k', 1)
    registry.register(flight)
    flight.resolve('first')
    flight.resolve('second')
    flight.reject(new Error('late'))
    await expect(flight.promise).resolves.toBe('first')
    expect(flight.settledCalls).toBe(1)
  })

  it('a settled flight has left the registry, its token released, before its callers resume', async () => {
    const registry = new FlightRegistry<string>()
    const flight = new OwnFlight(registry, 'k', 7)
    registry.register(flight)
    expect(registry.joinable('k', clock())).toBe(flight)
    expect(registry.oldestToken(NO_TOKEN)).toBe(7)
    const seen = flight.promise.then(() => ({
      joinable: registry.joinable('k', clock()),
      has: registry.has('k'),
      oldest: registry.oldestToken(NO_TOKEN),
    }))
    flight.resolve('v')
    expect(await seen).toEqual({ joinable: undefined, has: false, oldest: NO_TOKEN })
  })

  it('a rejected flight leaves the registry too, and its callers get the error', async () => {
    const registry = new FlightRegistry<string>()
    const flight = new OwnFlight(registry, 'k', 1)
    registry.register(flight)
    flight.reject(new Error('source down'))
    await expect(flight.promise).rejects.toThrow('source down')
    expect(registry.has('k')).toBe(false)
    expect(flight.settledCalls).toBe(1)
  })

  it('a throw in a flight’s bookkeeping neither reaches its callers nor leaves it registered', async () => {
    const registry = new FlightRegistry<string>()
    const flight = new OwnFlight(registry, 'k', 3)
    flight.throwInSettled = true
    registry.register(flight)
    expect(() => flight.resolve('v')).not.toThrow()
    await expect(flight.promise).resolves.toBe('v')
    expect(registry.has('k')).toBe(false)
    expect(registry.oldestToken(NO_TOKEN)).toBe(NO_TOKEN)
  })

  it('start(): a run that throws instead of rejecting fails the flight and unregisters it', async () => {
    const registry = new FlightRegistry<string>()
    let settled = 0
    const flight = registry.start(
      'k',
      1,
      () => {
        throw new Error('thrown at start')
      },
      () => settled++,
    )
    await expect(flight.promise).rejects.toThrow('thrown at start')
    expect(registry.has('k')).toBe(false)
    expect(settled).toBe(1)
  })

  it('start(): the flight answers what its run resolves to, and its bookkeeping sees the flight', async () => {
    const registry = new FlightRegistry<string>()
    const seen: Flight<string>[] = []
    const flight = registry.start(
      'k',
      1,
      (f) => {
        f.missed = true
        return Promise.resolve('loaded')
      },
      (f) => seen.push(f),
    )
    await expect(flight.promise).resolves.toBe('loaded')
    expect(seen).toEqual([flight])
    expect(seen[0]!.missed).toBe(true)
  })

  it('a flight that answered ahead of its load (soft timeout) stays joinable until that load settles', async () => {
    const { registry, flight, finish } = answeredAhead(2)
    await expect(flight.promise).resolves.toBe('stale')
    expect(registry.joinable('k', clock(999))).toBe(flight)
    expect(registry.oldestToken(NO_TOKEN)).toBe(2)
    expect(flight.settledCalls).toBe(0)
    finish()
    await flight.continuation
    await Promise.resolve()
    expect(registry.has('k')).toBe(false)
    expect(registry.oldestToken(NO_TOKEN)).toBe(NO_TOKEN)
    expect(flight.settledCalls).toBe(1)
  })

  it('a stale answer past its window is no longer joined, though its load goes on holding its token', async () => {
    const { registry, flight, finish } = answeredAhead(4)
    expect(registry.joinable('k', clock(1_000))).toBeUndefined()
    expect(registry.oldestToken(NO_TOKEN)).toBe(4)
    finish()
    await flight.continuation
    await Promise.resolve()
    expect(registry.oldestToken(NO_TOKEN)).toBe(NO_TOKEN)
  })

  it('a cancelled flight is no longer joined, keeps its token until it settles, and cannot unregister a newer one', async () => {
    const registry = new FlightRegistry<string>()
    const old = new OwnFlight(registry, 'k', 5)
    registry.register(old)
    registry.cancel('k')
    expect(registry.joinable('k', clock())).toBeUndefined()
    const newer = new OwnFlight(registry, 'k', 6)
    registry.register(newer)
    old.resolve('old value')
    await old.promise
    expect(registry.joinable('k', clock())).toBe(newer)
    expect(registry.oldestToken(NO_TOKEN)).toBe(6)
    newer.resolve('new value')
    expect(registry.has('k')).toBe(false)
  })

  it('a background refresh is seen by has() but never joined, and reports whether it failed', async () => {
    const registry = new FlightRegistry<string>()
    const outcomes: boolean[] = []
    let fail!: (error: Error) => void
    registry.startRefresh(
      'k',
      9,
      () => new Promise((_, reject) => (fail = reject)),
      (failed) => outcomes.push(failed),
    )
    expect(registry.has('k')).toBe(true)
    expect(registry.isRefreshing('k')).toBe(true)
    expect(registry.joinable('k', clock())).toBeUndefined()
    expect(registry.refreshCount).toBe(1)
    fail(new Error('source down'))
    await new Promise((resolve) => setImmediate(resolve))
    expect(outcomes).toEqual([true])
    expect(registry.has('k')).toBe(false)
    expect(registry.oldestToken(NO_TOKEN)).toBe(NO_TOKEN)
  })

  it('keys that are Object.prototype names are plain keys', async () => {
    const registry = new FlightRegistry<string>()
    for (const key of ['__proto__', 'constructor', 'toString', 'hasOwnProperty']) {
      expect(registry.joinable(key, clock())).toBeUndefined()
      expect(registry.has(key)).toBe(false)
      const flight = new OwnFlight(registry, key, 1)
      registry.register(flight)
      expect(registry.joinable(key, clock())).toBe(flight)
      flight.resolve('v')
      expect(registry.has(key)).toBe(false)
    }
  })

  it('matches a model under any interleaving of starts, settles, cancels and cancelAll', () => {
    type Op =
      | { kind: 'start'; key: number }
      | { kind: 'settle'; flight: number; fail: boolean }
      | { kind: 'cancel'; key: number }
      | { kind: 'cancelAll' }
    const op: fc.Arbitrary<Op> = fc.oneof(
      fc.record({ kind: fc.constant('start' as const), key: fc.nat(3) }),
      fc.record({ kind: fc.constant('settle' as const), flight: fc.nat(30), fail: fc.boolean() }),
      fc.record({ kind: fc.constant('cancel' as const), key: fc.nat(3) }),
      fc.constant({ kind: 'cancelAll' as const }),
    )
    fc.assert(
      fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
        const registry = new FlightRegistry<string>()
        const flights: OwnFlight[] = []
        // The model: which flight each key's readers join, and which flights are still running.
        const joined = new Map<string, OwnFlight>()
        const running = new Set<OwnFlight>()
        let token = 0
        for (const step of ops) {
          if (step.kind === 'start') {
            const key = `k${step.key}`
            if (joined.has(key)) continue // a reader joins instead of starting one
            const flight = new OwnFlight(registry, key, ++token)
            flight.promise.catch(() => {})
            registry.register(flight)
            flights.push(flight)
            joined.set(key, flight)
            running.add(flight)
          } else if (step.kind === 'settle') {
            const flight = flights[step.flight]
            if (flight === undefined) continue
            if (step.fail) flight.reject(new Error('x'))
            else flight.resolve('v')
            if (joined.get(flight.key) === flight) joined.delete(flight.key)
            running.delete(flight)
          } else if (step.kind === 'cancel') {
            registry.cancel(`k${step.key}`)
            joined.delete(`k${step.key}`)
          } else {
            registry.cancelAll()
            joined.clear()
          }
          for (let k = 0; k < 4; k++) {
            expect(registry.joinable(`k${k}`, clock())).toBe(joined.get(`k${k}`))
          }
          const oldest = Math.min(NO_TOKEN, ...[...running].map((f) => f.token))
          expect(registry.oldestToken(NO_TOKEN)).toBe(oldest)
        }
        for (const flight of flights) expect(flight.settledCalls).toBe(running.has(flight) ? 0 : 1)
      }),
    )
  })
})
