// Redis crashes mid-run (SIGKILL) and comes back empty on the same port.
import { createCache, type CacheOptions } from 'stratacache'
import { redisStore } from 'stratacache/redis'
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { startRedis, type RedisServer } from '../helpers/redis-server.js'
import { activeMs, l2ErrorCode, outcome, sleep, timed, within } from './support.js'

const L2_TIMEOUT = 100
const LOADER_MS = 10
// A deadline the library promises (a call never waits past the L2 timeout, plus the loader), not a speed claim. It
// bounds a call's time less the time this process's event loop was blocked (`activeMs`): the library rightly moves an
// L2 deadline by that much (src/policies/deadline.ts), and a stall of the test process delays any call as much. The
// 400 ms slack absorbs a busy 2-core machine's shorter delays; a hang (the peers wait 1-10 s here, or until Redis
// is back) is a wait with the loop running, not a blocked loop, and still fails.
const GET_BOUND = L2_TIMEOUT + LOADER_MS + 400

let redis: RedisServer
const closers: (() => Promise<void>)[] = []
beforeAll(async () => {
  redis = await startRedis()
})
afterAll(async () => {
  await redis.stop()
})
beforeEach(async () => {
  // A previous test may have left it killed.
  if ((await timed(() => redis.command('PING'))).ok === false) await redis.restart()
  await redis.command('FLUSHALL')
})
afterEach(async () => {
  await Promise.all(closers.splice(0).map((close) => close()))
})

async function newCache(options: Partial<CacheOptions> = {}) {
  const cache = createCache({
    service: 'chaos-killed',
    // A short reconnection backoff keeps the test short; the behaviour is the same with the defaults.
    l2: redisStore({ url: redis.url, maxReconnectDelay: 200 }),
    timeouts: { l2: L2_TIMEOUT },
    circuitBreaker: { failureThreshold: 3, breakFor: 200 },
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
      return { id: String(id), generation: loads.count }
    },
  })
}

describe('Redis killed mid-run', () => {
  it('keeps answering every get (L1 hits from L1, misses from the loader) and recovers by itself after a restart', async () => {
    const loadsA = { count: 0 }
    const cacheA = await newCache()
    const a = declare(cacheA, loadsA)
    const cacheB = await newCache()
    const b = declare(cacheB)
    const warm = await a.getMany([...Array(10).keys()].map((id) => ({ id: `warm-${id}` })))
    // 10 entries, and the namespace's fence epoch and server id.
    await expect.poll(() => redis.command('DBSIZE')).toBe(':12\r\n')
    const l1HitsBefore = a.stats().l1Hits

    await redis.kill()

    const results = []
    for (let round = 0; round < 3; round++) {
      for (let id = 0; id < 10; id++) {
        results.push({ kind: 'hit', id, r: await timed(() => a.get({ id: `warm-${id}` })) })
        results.push({ kind: 'miss', id, r: await timed(() => a.get({ id: `down-${round}-${id}` })) })
      }
    }
    expect(results.filter(({ r }) => !r.ok).map(({ r }) => outcome(r))).toEqual([])
    for (const { kind, id, r } of results) {
      if (kind === 'hit') expect(r.ok && r.value).toEqual(warm[id])
      else expect(r.ok && r.value).toMatchObject({ id: expect.stringMatching(/^down-/) })
    }
    expect(Math.max(...results.map(({ r }) => activeMs(r)))).toBeLessThan(GET_BOUND)
    expect(a.stats().l1Hits - l1HitsBefore).toBe(30)
    expect(loadsA.count).toBe(10 + 30)
    expect(cacheA.stats().l2?.status).not.toBe('ready')
    expect(cacheA.stats().l2?.circuit).not.toBe('closed')

    await redis.restart()

    // The connection comes back by itself; the next L2 call after the break closes the circuit again.
    let probe = 0
    await expect
      .poll(
        async () => {
          await a.get({ id: `probe-${probe++}` })
          return cacheA.stats().l2
        },
        { timeout: 10_000, interval: 50 },
      )
      .toMatchObject({ status: 'ready', circuit: 'closed' })

    // New values go to L2 again, and the other process reads them from there once its own connection is back
    // (it made no call during the outage, so its reconnect loop may be in a longer back-off than a's).
    await expect
      .poll(() => cacheB.stats().l2, { timeout: 10_000, interval: 50 })
      .toMatchObject({ status: 'ready', circuit: 'closed' })
    // Each process's bus resubscribes on a connection of its own, possibly after the data connection: when it does,
    // invalidations may have been missed, so the namespace fences the loads under way (their values are not stored).
    // A load that overlapped a's resubscription would rightly leave nothing in L2 for b to find.
    for (const cache of [cacheA, cacheB]) {
      await expect.poll(() => cache.stats().bus?.subscribed, { timeout: 10_000, interval: 50 }).toBe(true)
    }
    const fresh = await a.get({ id: 'after-restart' })
    await expect.poll(() => b.peek({ id: 'after-restart' }), { timeout: 5_000 }).toEqual(fresh)
    expect(await b.get({ id: 'after-restart' })).toEqual(fresh)
    expect(b.stats()).toMatchObject({ l2Hits: 1, loads: 0 })
    await expect.poll(() => cacheB.stats().l2).toMatchObject({ status: 'ready', circuit: 'closed' })
  })

  it('runs concurrent gets through the crash without a single rejection', async () => {
    const cache = await newCache()
    const ns = declare(cache)
    await ns.getMany([...Array(20).keys()].map((id) => ({ id })))
    const running = [...Array(40).keys()].map(async (i) => {
      await sleep(i * 5)
      return timed(() => ns.get({ id: i % 2 === 0 ? i % 20 : `new-${i}` }))
    })
    await sleep(50)
    await redis.kill()
    const results = await Promise.all(running)
    expect(results.filter((r) => !r.ok).map(outcome)).toEqual([])
    expect(Math.max(...results.map(activeMs))).toBeLessThan(GET_BOUND)
  })
})

describe('writes while Redis is killed', () => {
  it('set rejects with an ERR_STRATA_L2_ code and keeps no L1 copy other processes could not see', async () => {
    const loads = { count: 0 }
    const ns = declare(await newCache(), loads)
    await redis.kill()
    const result = await timed(() => within(ns.set({ id: 1 }, { id: '1', generation: -1 }), 2_000, 'set'))
    // `within` fails a hang; the error is the cache's own (an L2 code), not the hang guard's.
    expect(outcome(result)).toMatchObject(l2ErrorCode)
    // L2 may still hold an older value for the other processes: this one asks the source, like they would.
    expect(await ns.get({ id: 1 })).not.toEqual({ id: '1', generation: -1 })
    expect(loads.count).toBe(1)
  })

  it('delete rejects with an ERR_STRATA_L2_ code, and L1 no longer holds the value', async () => {
    const loads = { count: 0 }
    const ns = declare(await newCache(), loads)
    await ns.get({ id: 2 })
    await redis.kill()
    const result = await timed(() => within(ns.delete({ id: 2 }), 2_000, 'delete'))
    expect(outcome(result)).toMatchObject(l2ErrorCode)
    await ns.get({ id: 2 })
    expect(loads.count).toBe(2)
  })

  it('clear rejects with an ERR_STRATA_L2_ code, and L1 no longer holds the namespace', async () => {
    const loads = { count: 0 }
    const ns = declare(await newCache(), loads)
    await ns.get({ id: 3 })
    await redis.kill()
    const result = await timed(() => within(ns.clear(), 2_000, 'clear'))
    expect(outcome(result)).toMatchObject(l2ErrorCode)
    await ns.get({ id: 3 })
    expect(loads.count).toBe(2)
  })

  it('keeps rejecting writes with ERR_STRATA_L2_CIRCUIT_OPEN once repeated failures opened the circuit', async () => {
    const cache = await newCache({ circuitBreaker: { failureThreshold: 3, breakFor: '1m' } })
    const ns = declare(cache)
    await redis.kill()
    const codes: unknown[] = []
    for (let i = 0; i < 5; i++) {
      const result = await timed(() => ns.set({ id: i }, { id: String(i), generation: 0 }))
      codes.push((outcome(result) as { code?: unknown }).code)
    }
    expect(codes.slice(0, 3)).toEqual(Array(3).fill(expect.stringMatching(/^ERR_STRATA_L2_/)))
    expect(codes.slice(3)).toEqual(['ERR_STRATA_L2_CIRCUIT_OPEN', 'ERR_STRATA_L2_CIRCUIT_OPEN'])
    expect(cache.stats().l2?.circuit).toBe('open')
  })
})
