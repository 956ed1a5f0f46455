// The L2 circuit breaker against a real Redis frozen (SIGSTOP) and thawed (SIGCONT): a call sent under one circuit
// state that settles under another does not move the circuit. And late outcomes of another kind: answers that came
// in time while the event loop was blocked are answers, not timeouts.
import { spawnSync } from 'node:child_process'
import { channelNames, createCache, type Cache, type L2ErrorMessage } from 'stratacache'
import { redisStore } from 'stratacache/redis'
import { describe, expect, it } from 'vitest'
import type { CircuitState } from '../../src/policies/circuit-breaker.js'
import { L2Guard } from '../../src/policies/l2-guard.js'
import { redisSuite } from '../helpers/suite.js'
import { codeOf, recordChannel, sleep, timed } from './support.js'

// Long enough that the steps below fit inside one call's deadline on a loaded machine.
const L2_TIMEOUT = 1_000

const suite = redisSuite()
const closers = suite.closers

// Each get is its own call here (`coalesceGets: false`): these tests count calls one by one against the breaker's
// threshold. Coalesced gets are one call (test/integration/coalesced-gets.test.ts).
async function guarded(breakMs: number) {
  const store = redisStore({ url: suite.redis.url, coalesceGets: false })
  await store.connect()
  const changes: CircuitState[] = []
  const guard = new L2Guard(
    store,
    L2_TIMEOUT,
    { failureThreshold: 3, breakMs },
    { onCircuit: (state) => changes.push(state) },
  )
  closers.push(async () => {
    guard.close()
    await store.close()
  })
  await guard.set('circuit-late:k', new TextEncoder().encode('v'), 60_000)
  return { guard, changes }
}

describe('circuit breaker with a paused Redis', () => {
  it('stays open when a call sent before it opened is answered after', async () => {
    const { guard, changes } = await guarded(60_000)
    suite.redis.pause()
    const early = [1, 2, 3].map(() => timed(() => guard.get('circuit-late:k')))
    await sleep(L2_TIMEOUT / 2)
    const late = timed(() => guard.get('circuit-late:k')) // sent while closed, deadline half a timeout later
    const failed = await Promise.all(early)
    expect(failed.map((r) => !r.ok && codeOf(r.error))).toEqual(Array(3).fill('ERR_STRATA_L2_TIMEOUT'))
    expect(guard.circuit).toBe('open')

    suite.redis.resume() // Redis answers the late call before its deadline
    const answered = await late
    expect(answered.ok && new TextDecoder().decode(answered.value)).toBe('v')
    expect(guard.circuit).toBe('open')
    expect(changes).toEqual(['open'])
    const refused = await timed(() => guard.get('circuit-late:k'))
    expect(!refused.ok && codeOf(refused.error)).toBe('ERR_STRATA_L2_CIRCUIT_OPEN')
  })

  it('does not reopen when a call sent before the half-open probe times out while the probe is in flight', async () => {
    const breakMs = 100
    const { guard, changes } = await guarded(breakMs)
    suite.redis.pause()
    const early = [1, 2, 3].map(() => timed(() => guard.get('circuit-late:k')))
    await sleep(L2_TIMEOUT / 2)
    const late = timed(() => guard.get('circuit-late:k')) // sent while closed; times out after the probe is sent
    await Promise.all(early)
    expect(guard.circuit).toBe('open')
    await sleep(breakMs + 50)

    const probe = timed(() => guard.get('circuit-late:k'))
    expect(guard.circuit).toBe('half-open')
    const lateResult = await late
    expect(!lateResult.ok && codeOf(lateResult.error)).toBe('ERR_STRATA_L2_TIMEOUT')
    expect(guard.circuit).toBe('half-open') // the late timeout is not the probe's failure

    suite.redis.resume() // the probe is answered before its deadline
    const probed = await probe
    expect(probed.ok).toBe(true)
    expect(guard.circuit).toBe('closed')
    expect(changes).toEqual(['open', 'half-open', 'closed'])
  })
})

describe('the half-open probe of a cache', () => {
  const breakMs = 100

  /** A cache with L1 off whose circuit opens on one L2 failure and lets a probe through `breakMs` later. */
  async function probedCache(service: string) {
    const cache = createCache({
      service,
      l1: false,
      l2: redisStore({ url: suite.redis.url }),
      logger: false,
      timeouts: { l2: 300 },
      circuitBreaker: { failureThreshold: 1, breakFor: breakMs },
    })
    closers.push(() => cache.close())
    await cache.connect()
    return cache
  }

  /** Opens the circuit with `read` while Redis is paused (it times out in L2, then loads), then waits for half-open. */
  async function openThenHalfOpen(cache: Cache, read: () => Promise<unknown>) {
    suite.redis.pause()
    await read()
    expect(cache.stats().l2!.circuit).toBe('open')
    suite.redis.resume()
    await sleep(breakMs + 50)
  }

  /**
   * Watches the probe from now on; the returned check, once it has settled, asserts the circuit closed and nothing
   * it started was refused or failed in L2.
   */
  function watchProbe(cache: Cache) {
    const errors = recordChannel<L2ErrorMessage>(channelNames.l2Error)
    closers.push(() => errors.stop())
    const refusedBefore = cache.stats().l2!.refused
    return async () => {
      await sleep(300)
      expect(cache.stats().l2!.circuit).toBe('closed')
      expect(cache.stats().l2!.refused).toBe(refusedBefore)
      expect(errors.messages.map((m) => `${m.operation}: ${String(m.error)}`)).toEqual([])
    }
  }

  it('lets a refresh-ahead that its L2 hit starts take the cross-process lock', async () => {
    const cache = await probedCache('circuit-probe-refresh')
    let loads = 0
    // Due for refresh 10 ms after it is written: the probe's hit below starts one.
    const item = cache.namespace('item', {
      key: 'item:{id}',
      ttl: '10s',
      jitter: 0,
      refreshAhead: 0.001,
      load: async ({ id }: { id: number }) => `${id}:${++loads}`,
    })
    expect(await item.get({ id: 1 })).toBe('1:1')
    await sleep(50)
    await openThenHalfOpen(cache, () => item.get({ id: 1 }))

    const probeWasClean = watchProbe(cache)
    const refreshesBefore = cache.stats().namespaces.item!.refreshes
    // The half-open probe: an L2 hit on the entry written first, due for refresh.
    expect(await item.get({ id: 1 })).toBe('1:1')
    // The refresh's lock attempt came after the probe's success closed the circuit, not while it was in flight.
    await probeWasClean()
    expect(cache.stats().namespaces.item!.refreshes).toBe(refreshesBefore + 1)
  })

  it('lets the load that its L2 miss starts subscribe for the lock (review: refused as the probe was in flight)', async () => {
    const cache = await probedCache('circuit-probe-miss')
    const item = cache.namespace('item', {
      key: 'item:{id}',
      ttl: '10s',
      load: async ({ id }: { id: number }) => `v${id}`,
    })
    expect(await item.peek({ id: 0 })).toBeUndefined() // the generation is known
    await openThenHalfOpen(cache, () => item.get({ id: 1 }))

    const probeWasClean = watchProbe(cache)
    // The half-open probe: an L2 miss, so the read goes on to the lock and the loader at once.
    expect(await item.get({ id: 2 })).toBe('v2')
    await probeWasClean()
  })
})

describe('L2 deadlines after a blocked event loop', () => {
  /** A guard over its own store (one GET per get) with `key` cached, closed after the test. */
  async function stallGuard(timeoutMs: number, failureThreshold: number, key: string): Promise<L2Guard> {
    const store = redisStore({ url: suite.redis.url, coalesceGets: false })
    await store.connect()
    const guard = new L2Guard(store, timeoutMs, { failureThreshold, breakMs: 1_000 })
    closers.push(async () => {
      guard.close()
      await store.close()
    })
    await guard.set(key, new TextEncoder().encode('v'), 60_000)
    return guard
  }

  it('settles a call Redis answered in time with its answer, not a timeout, when the loop was blocked past the deadline', async () => {
    const guard = await stallGuard(100, 3, 'stall:k')
    // The commands are written while Redis is frozen, so no answer can be read before the loop blocks.
    suite.redis.pause()
    const calls = [1, 2, 3].map(() => timed(() => guard.get('stall:k')))
    await sleep(20)
    // Block in the check phase, as a task after I/O would: the timers run next, before the poll reads the answers.
    await new Promise((resolve) => setImmediate(resolve))
    suite.redis.resume()
    // A long synchronous task: Redis answers at once, but nothing reads the socket.
    busyFor(300)
    // Still blocking, until Redis has surely answered (on a loaded machine it may take a while to be scheduled
    // after SIGCONT): it answers a new connection's PING only after the commands that were waiting for it.
    const ping = spawnSync('redis-cli', ['-p', String(suite.redis.port), 'PING'], {
      encoding: 'utf8',
      timeout: 10_000,
    })
    expect(ping.stdout.trim()).toBe('PONG')
    const results = await Promise.all(calls)
    expect(outcomes(results)).toEqual(['answered', 'answered', 'answered'])
    expect(guard.stats()).toMatchObject({ timeouts: 0, succeeded: 4 })
    expect(guard.circuit).toBe('closed')
  })

  // Deadlines of 200 ms and blocks of 500 ms: once the loop is free, Redis has the rest of the timeout to answer,
  // which a loaded CI machine must not eat (Redis may be scheduled late too).
  it('gives calls whose commands were not yet written when the loop blocked their whole timeout once it is free', async () => {
    const guard = await stallGuard(200, 2, 'stall:unsent')
    for (let round = 0; round < 2; round++) {
      const calls = await askThenBlock('task', () =>
        [1, 2, 3].map(() => timed(() => guard.get('stall:unsent'))),
      )
      const results = await Promise.all(calls)
      expect(outcomes(results)).toEqual(['answered', 'answered', 'answered'])
    }
    expect(guard.stats()).toMatchObject({ timeouts: 0, succeeded: 7 })
    expect(guard.circuit).toBe('closed')
  })

  // Coalesced gets become one MGET in the next tick, after the task: the block that catches them unwritten comes
  // in a microtask, as an app's code after an `await` would run.
  it.each([
    { coalesceGets: false, blockIn: 'task' },
    { coalesceGets: true, blockIn: 'microtask' },
  ] as const)(
    'answers cache reads from Redis, not from the loader, when the app blocks the loop right after asking (coalesceGets: $coalesceGets, block in a $blockIn)',
    async ({ coalesceGets, blockIn }) => {
      const cache = createCache({
        service: 'stall',
        l2: redisStore({ url: suite.redis.url, coalesceGets }),
        timeouts: { l2: 200 },
        circuitBreaker: { failureThreshold: 2 },
        logger: false,
      })
      closers.push(() => cache.close())
      await cache.connect()
      let loads = 0
      const item = cache.namespace('stall', {
        key: 'i:{id}',
        ttl: '1m',
        l1: false,
        load: ({ id }: { id: number }) => {
          loads++
          return `v${id}`
        },
      })
      await item.getMany([1, 2, 3, 4].map((id) => ({ id })))
      loads = 0
      for (let round = 0; round < 2; round++) {
        const reads = await askThenBlock(blockIn, () => [1, 2, 3, 4].map((id) => item.get({ id })))
        expect(await Promise.all(reads)).toEqual(['v1', 'v2', 'v3', 'v4'])
      }
      expect(loads).toBe(0)
      expect(cache.stats().l2).toMatchObject({ timeouts: 0, circuit: 'closed' })
    },
  )
})

/**
 * Runs `ask` in a timer callback, then blocks the event loop for 500 ms (a seed, a big JSON.parse) in the same task
 * or in a microtask after it, as an app's request handler might: the client writes the commands `ask` sent only
 * after that (node-redis in the check phase), so Redis has not even seen them when their deadline passes.
 */
function askThenBlock<T>(blockIn: 'task' | 'microtask', ask: () => T): Promise<T> {
  return new Promise((resolve) =>
    setTimeout(() => {
      const asked = ask()
      if (blockIn === 'task') busyFor(500)
      else void Promise.resolve().then(() => busyFor(500))
      resolve(asked)
    }, 5),
  )
}

/** Each timed call's outcome: 'answered', or its error's code. */
function outcomes(results: readonly Awaited<ReturnType<typeof timed>>[]): string[] {
  return results.map((r) => (r.ok ? 'answered' : String(codeOf(r.error))))
}

/** A long synchronous task (a seed, a big JSON.parse): nothing else runs on the event loop meanwhile. */
function busyFor(ms: number): void {
  const until = performance.now() + ms
  while (performance.now() < until) {
    // Blocking on purpose.
  }
}
