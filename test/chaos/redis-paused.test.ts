// Redis freezes (SIGSTOP): connections stay open, nothing answers, no error arrives. Then it thaws (SIGCONT).
import { channelNames, createCache, type CacheOptions, type L2StateMessage } from 'stratacache'
import { redisStore } from 'stratacache/redis'
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { startRedis, type RedisServer } from '../helpers/redis-server.js'
import {
  activeMs,
  integerReply,
  l2ErrorCode,
  outcome,
  recordChannel,
  sleep,
  timed,
  within,
} from './support.js'

const L2_TIMEOUT = 100
const LOADER_MS = 20
// A deadline the library promises (a call never waits past the L2 timeout, plus the loader), not a speed claim. It
// bounds a call's time less the time this process's event loop was blocked (`activeMs`): the library rightly moves an
// L2 deadline by that much (src/policies/deadline.ts), and a stall of the test process delays any call as much. The
// 400 ms slack absorbs a busy 2-core machine's shorter delays; a hang (the peers wait 1-10 s here, or until Redis
// is back) is a wait with the loop running, not a blocked loop, and still fails.
const GET_BOUND = L2_TIMEOUT + LOADER_MS + 400
const PAUSE_MS = 1_500

let redis: RedisServer
const closers: (() => Promise<void>)[] = []
beforeAll(async () => {
  redis = await startRedis()
})
afterAll(async () => {
  await redis.stop()
})
beforeEach(async () => {
  await redis.command('FLUSHALL')
})
afterEach(async () => {
  redis.resume()
  await Promise.all(closers.splice(0).map((close) => close()))
})

async function newCache(options: Partial<CacheOptions> = {}) {
  const cache = createCache({
    service: 'chaos-paused',
    l2: redisStore({ url: redis.url }),
    timeouts: { l2: L2_TIMEOUT },
    circuitBreaker: { breakFor: 200 },
    ...options,
  })
  closers.push(() => cache.close())
  await cache.connect()
  return cache
}

function declare(cache: Awaited<ReturnType<typeof newCache>>, loads = { count: 0 }) {
  return cache.namespace('item', {
    key: 'item:{id}',
    ttl: '1m',
    load: async ({ id }) => {
      loads.count++
      await sleep(LOADER_MS)
      return { id: String(id), n: loads.count }
    },
  })
}

describe('Redis paused', () => {
  it('never makes a get wait longer than the L2 timeout plus the loader, opens the circuit, and closes it after resume', async () => {
    const states = recordChannel<L2StateMessage>(channelNames.l2State)
    closers.push(async () => states.stop())
    const cache = await newCache()
    const ns = declare(cache)
    const warm = await ns.get({ id: 'warm' })

    redis.pause()
    const pausedAt = performance.now()
    const results = []
    for (let i = 0; i < 300 && performance.now() - pausedAt < PAUSE_MS; i++) {
      results.push(await timed(() => ns.get({ id: `paused-${i}` })))
      results.push(await timed(() => ns.get({ id: 'warm' })))
    }
    const circuitWhilePaused = cache.stats().l2?.circuit
    redis.resume()

    expect(results.filter((r) => !r.ok).map(outcome)).toEqual([])
    expect(results.length).toBeGreaterThanOrEqual(10)
    expect(Math.max(...results.map(activeMs))).toBeLessThan(GET_BOUND)
    results.filter((_, i) => i % 2 === 1).forEach((r) => expect(r.ok && r.value).toEqual(warm))
    expect(states.messages.map((m) => m.circuit)).toContain('open')
    expect(circuitWhilePaused).not.toBe('closed')
    expect(ns.stats().l2Errors).toBeGreaterThanOrEqual(5)

    // After the break, the next L2 call is a probe; Redis answers it, and the circuit closes.
    let probe = 0
    await expect
      .poll(
        async () => {
          await ns.get({ id: `probe-${probe++}` })
          return cache.stats().l2
        },
        { timeout: 5_000, interval: 50 },
      )
      .toMatchObject({ status: 'ready', circuit: 'closed' })
    expect(states.messages.at(-1)).toEqual({ circuit: 'closed' })

    // And L2 is used again: a new value lands in Redis and another cache reads it without loading.
    const value = await ns.get({ id: 'after-resume' })
    await expect.poll(() => redis.command('EXISTS', ns.key({ id: 'after-resume' }))).toBe(':1\r\n')
    const loadsB = { count: 0 }
    const other = declare(await newCache(), loadsB)
    expect(await other.get({ id: 'after-resume' })).toEqual(value)
    expect(loadsB.count).toBe(0)
  })

  it('bounds concurrent gets too while paused', async () => {
    const cache = await newCache({ circuitBreaker: { failureThreshold: 1_000, breakFor: 200 } })
    const ns = declare(cache)
    redis.pause()
    const results = await Promise.all([...Array(30).keys()].map((i) => timed(() => ns.get({ id: `c-${i}` }))))
    redis.resume()
    expect(results.filter((r) => !r.ok).map(outcome)).toEqual([])
    expect(Math.max(...results.map(activeMs))).toBeLessThan(GET_BOUND)
    expect(ns.stats()).toMatchObject({ misses: 30, loads: 30 })
  })
})

describe('writes while Redis is paused', () => {
  it('set rejects with ERR_STRATA_L2_TIMEOUT within the L2 timeout, and keeps no L1 copy the others cannot see', async () => {
    const loads = { count: 0 }
    const ns = declare(await newCache(), loads)
    redis.pause()
    const result = await timed(() => within(ns.set({ id: 1 }, { id: '1', n: -1 }), 1_000, 'set'))
    redis.resume()
    // The cache's own deadline ended the call (not `within`'s hang guard): the error names the L2 timeout.
    expect(outcome(result)).toMatchObject({ code: 'ERR_STRATA_L2_TIMEOUT', timeoutMs: L2_TIMEOUT })
    expect(await ns.get({ id: 1 })).not.toEqual({ id: '1', n: -1 })
    expect(loads.count).toBe(1)
  })

  it('delete rejects with ERR_STRATA_L2_TIMEOUT within the L2 timeout', async () => {
    const ns = declare(await newCache())
    await ns.get({ id: 2 })
    redis.pause()
    const result = await timed(() => within(ns.delete({ id: 2 }), 1_000, 'delete'))
    redis.resume()
    expect(outcome(result)).toMatchObject({ code: 'ERR_STRATA_L2_TIMEOUT', timeoutMs: L2_TIMEOUT })
  })

  it('clear rejects with an ERR_STRATA_L2_ code instead of hanging while Redis does not answer', async () => {
    const ns = declare(await newCache())
    await ns.getMany([...Array(10).keys()].map((id) => ({ id })))
    // 10 entries, and the namespace's fence epoch and server id.
    await expect.poll(async () => integerReply(await redis.command('DBSIZE'))).toBe(12)
    redis.pause()
    // Redis stays frozen for the whole bound: clear has to settle by itself, as it would in a network partition.
    const result = await timed(() => within(ns.clear(), PAUSE_MS, 'clear'))
    redis.resume()
    expect(outcome(result)).toMatchObject(l2ErrorCode)
  })
})
