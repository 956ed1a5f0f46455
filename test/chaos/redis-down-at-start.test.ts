// Redis is not there at all: nothing listens on the port the cache is given.
import { channelNames, createCache, type CacheOptions, type L2ErrorMessage } from 'stratacache'
import { redisStore } from 'stratacache/redis'
import { afterEach, describe, expect, it } from 'vitest'
import { activeMs, codeOf, l2ErrorCode, outcome, recordChannel, sleep, timed, within } from './support.js'

const L2_TIMEOUT = 100
const LOADER_MS = 20
// A deadline the library promises (a call never waits past the L2 timeout, plus the loader), not a speed claim. It
// bounds a call's time less the time this process's event loop was blocked (`activeMs`): the library rightly moves an
// L2 deadline by that much (src/policies/deadline.ts), and a stall of the test process delays any call as much. The
// 400 ms slack absorbs a busy 2-core machine's shorter delays; a hang (the peers wait 1-10 s here) is a wait with the
// loop running, not a blocked loop, and still fails.
const GET_BOUND = L2_TIMEOUT + LOADER_MS + 400
const CONNECT_TIMEOUT = 300

// Nothing listens on port 1 (a privileged port that no service or test server uses): connecting is refused at once.
// A free port picked at random could be taken meanwhile by the redis-server of a test file running alongside.
const deadUrl = 'redis://127.0.0.1:1'
const closers: (() => Promise<void>)[] = []
afterEach(async () => {
  await Promise.all(closers.splice(0).map((close) => close()))
})

function newCache(options: Partial<CacheOptions> = {}) {
  const cache = createCache({
    service: 'chaos-down-at-start',
    l2: redisStore({ url: deadUrl }),
    timeouts: { l2: L2_TIMEOUT },
    ...options,
  })
  closers.push(() => cache.close())
  return cache
}

function declare(cache: ReturnType<typeof newCache>, loads = { count: 0 }) {
  return cache.namespace('item', {
    key: 'item:{id}',
    ttl: '1m',
    load: async ({ id }) => {
      loads.count++
      await sleep(LOADER_MS)
      return { id: String(id), from: 'loader' }
    },
  })
}

describe('Redis down from the start', () => {
  it('answers every get from the loader, none rejected, each within the L2 timeout plus the loader time', async () => {
    const loads = { count: 0 }
    const ns = declare(newCache({ circuitBreaker: { breakFor: '1m' } }), loads)
    const results = []
    for (let i = 0; i < 15; i++) results.push(await timed(() => ns.get({ id: i })))
    results.push(
      ...(await Promise.all([...Array(10).keys()].map((i) => timed(() => ns.get({ id: 100 + i }))))),
    )

    expect(results.filter((r) => !r.ok)).toEqual([])
    results.forEach((r, i) => {
      expect(r.ok && r.value).toEqual({ id: String(i < 15 ? i : 85 + i), from: 'loader' })
    })
    expect(Math.max(...results.map(activeMs))).toBeLessThan(GET_BOUND)
    expect(loads.count).toBe(25)
    // The values are still kept in L1.
    expect(await ns.get({ id: 3 })).toEqual({ id: '3', from: 'loader' })
    expect(ns.stats()).toMatchObject({ l1Hits: 1, misses: 25, loads: 25 })
  })

  it('opens the circuit after repeated failures, then skips L2 and reports ERR_STRATA_L2_CIRCUIT_OPEN', async () => {
    const l2Errors = recordChannel<L2ErrorMessage>(channelNames.l2Error)
    closers.push(async () => l2Errors.stop())
    const cache = newCache({ circuitBreaker: { failureThreshold: 3, breakFor: '1m' } })
    const ns = declare(cache)
    expect(cache.stats().l2).toMatchObject({ circuit: 'closed' })

    for (let i = 0; i < 3; i++) await ns.get({ id: i })
    expect(cache.stats().l2).toMatchObject({ circuit: 'open' })
    expect(cache.stats().l2?.status).not.toBe('ready')

    const seen = l2Errors.messages.length
    for (let i = 3; i < 8; i++) {
      const result = await timed(() => ns.get({ id: i }))
      expect(result.ok).toBe(true)
    }
    const afterOpen = l2Errors.messages.slice(seen).filter((m) => m.operation !== 'connection')
    // Reads (and the background writes after each load) are refused by the breaker without touching Redis.
    expect(afterOpen.length).toBeGreaterThanOrEqual(5)
    for (const message of afterOpen) {
      expect(codeOf(message.error)).toBe('ERR_STRATA_L2_CIRCUIT_OPEN')
    }
    // One L2 call per read, refused: the namespace's generation (the keys depend on it), not yet known.
    expect(afterOpen.filter((m) => m.operation === 'readGeneration')).toHaveLength(5)
    expect(ns.stats().l2Errors).toBeGreaterThanOrEqual(8)
    // Errors before the circuit opened carry a code too.
    for (const message of l2Errors.messages.slice(0, seen).filter((m) => m.operation !== 'connection')) {
      expect(String(codeOf(message.error))).toMatch(/^ERR_STRATA_L2_/)
    }
  })

  it('answers getMany from the loader too, in order, without rejecting', async () => {
    const ns = declare(newCache())
    const list = [3, 1, 2, 1].map((id) => ({ id }))
    const result = await timed(() => ns.getMany(list))
    expect(outcome(result)).toEqual({
      resolvedWith: list.map(({ id }) => ({ id: String(id), from: 'loader' })),
    })
    expect(activeMs(result)).toBeLessThan(GET_BOUND)
    expect(ns.stats()).toMatchObject({ misses: 4, loads: 3 }) // four reads (id 1 twice), three loads
  })

  it('reports the connection errors on the l2:error channel without any get rejecting', async () => {
    const l2Errors = recordChannel<L2ErrorMessage>(channelNames.l2Error)
    closers.push(async () => l2Errors.stop())
    const ns = declare(newCache())
    await ns.get({ id: 1 })
    await expect.poll(() => l2Errors.messages.some((m) => m.operation === 'connection')).toBe(true)
  })

  it('rejects cache.connect() with ERR_STRATA_L2_UNAVAILABLE after the connect timeout, and keeps serving', async () => {
    const cache = newCache({ timeouts: { l2: L2_TIMEOUT, connect: CONNECT_TIMEOUT } })
    const ns = declare(cache)
    // `within` turns a connect() that never gives up into a clear failure rather than the test timeout.
    const connect = await timed(() => within(cache.connect(), 5_000, 'connect()'))
    // The connect timeout ended it (the error names it), after attempts refused by the dead address.
    expect(outcome(connect)).toMatchObject({
      code: 'ERR_STRATA_L2_UNAVAILABLE',
      timeoutMs: CONNECT_TIMEOUT,
      reason: 'ECONNREFUSED',
    })
    // It waited out its timeout: a refused attempt is retried, not reported at once. The margin is for Node starting
    // a timer from the loop's clock, which lags the real one by what the current turn has run so far.
    expect(connect.ms).toBeGreaterThanOrEqual(CONNECT_TIMEOUT - 50)
    // And gave up there, not at the 2 s default (timeouts.connect ignored). The timeout is a plain timer, which a
    // stall of this process delays by as much: the bound is on the time less the time the loop was blocked.
    expect(activeMs(connect)).toBeLessThan(CONNECT_TIMEOUT + 400)
    expect(await ns.get({ id: 1 })).toEqual({ id: '1', from: 'loader' })
  })
})

describe('writes while Redis is down from the start', () => {
  it('set rejects with an ERR_STRATA_L2_ code and keeps no L1 copy other processes could not see', async () => {
    const loads = { count: 0 }
    const ns = declare(newCache(), loads)
    const result = await timed(() => within(ns.set({ id: 1 }, { id: '1', from: 'set' }), 2_000, 'set'))
    expect(outcome(result)).toMatchObject(l2ErrorCode)
    expect(activeMs(result)).toBeLessThan(GET_BOUND)
    expect(await ns.get({ id: 1 })).toEqual({ id: '1', from: 'loader' })
    expect(loads.count).toBe(1)
  })

  it('delete rejects with an ERR_STRATA_L2_ code, and L1 no longer holds the value', async () => {
    const loads = { count: 0 }
    const ns = declare(newCache(), loads)
    await ns.get({ id: 2 })
    const result = await timed(() => within(ns.delete({ id: 2 }), 2_000, 'delete'))
    expect(outcome(result)).toMatchObject(l2ErrorCode)
    await ns.get({ id: 2 })
    expect(loads.count).toBe(2)
  })

  it('clear rejects with an ERR_STRATA_L2_ code, and L1 no longer holds the namespace', async () => {
    const loads = { count: 0 }
    const ns = declare(newCache(), loads)
    const result = await timed(() => within(ns.clear(), 2_000, 'clear'))
    expect(outcome(result)).toMatchObject(l2ErrorCode)
    await ns.get({ id: 3 })
    await ns.get({ id: 3 })
    expect(loads.count).toBe(1)
  })

  it('clear called after the cache has been running a while rejects with an ERR_STRATA_L2_ code', async () => {
    const l2Errors = recordChannel<L2ErrorMessage>(channelNames.l2Error)
    closers.push(async () => l2Errors.stop())
    const loads = { count: 0 }
    const ns = declare(newCache(), loads)
    await ns.get({ id: 3 })
    // "A while": past the first connection attempt, in the background reconnect loop (commands no longer wait for
    // an attempt under way). Each of the two connections (commands, pub/sub) fails its first attempt once: a third
    // connection error comes from a reconnection.
    await expect
      .poll(() => l2Errors.messages.filter((m) => m.operation === 'connection').length)
      .toBeGreaterThanOrEqual(3)
    const result = await timed(() => within(ns.clear(), 2_000, 'clear'))
    expect(outcome(result)).toMatchObject(l2ErrorCode)
    await ns.get({ id: 3 })
    expect(loads.count).toBe(2)
  })
})
