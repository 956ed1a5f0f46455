// The invalidation bus between two caches (standing in for two processes) sharing a real Redis.
import { createCache, type Cache } from 'stratacache'
import { redisStore } from 'stratacache/redis'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { startRedis, type RedisServer } from '../helpers/redis-server.js'

let redis: RedisServer
const caches: Cache[] = []
beforeAll(async () => {
  redis = await startRedis()
})
afterAll(async () => {
  await redis.stop()
})
afterEach(async () => {
  await Promise.all(caches.splice(0).map((c) => c.close()))
  await redis.command('FLUSHALL')
})

async function process(loads: { count: number }) {
  const cache = createCache({ service: 'bus', l2: redisStore({ url: redis.url }) })
  caches.push(cache)
  const ns = cache.namespace('item', {
    key: 'item:{id}',
    ttl: '1h',
    load: ({ id }) => {
      loads.count++
      return { id: String(id), from: 'loader' }
    },
  })
  await cache.connect()
  await expect.poll(() => cache.stats().bus?.subscribed).toBe(true)
  return { cache, ns }
}

describe('invalidation bus', () => {
  it('a set in one process drops the L1 copy in the others, which then read the new value from L2', async () => {
    const loads = { count: 0 }
    const a = await process(loads)
    const b = await process(loads)
    expect(await b.ns.get({ id: 1 })).toEqual({ id: '1', from: 'loader' })
    await a.ns.set({ id: 1 }, { id: '1', from: 'set in a' })
    await expect.poll(() => b.ns.get({ id: 1 })).toEqual({ id: '1', from: 'set in a' })
    expect(loads.count).toBe(1)
    const bus = b.cache.stats().bus!
    expect(bus.received).toBe(1)
    expect(bus.lagMs.max).toBeGreaterThanOrEqual(0)
    expect(bus.lagMs.max).toBeLessThan(5_000)
    // The writer ignores its own message and keeps its own (new) L1 copy.
    await expect.poll(() => a.cache.stats().bus?.ownIgnored).toBe(1)
    expect(a.cache.stats().bus?.received).toBe(0)
    expect(await a.ns.get({ id: 1 })).toEqual({ id: '1', from: 'set in a' })
  })

  it('a delete in one process makes the others load again', async () => {
    const loads = { count: 0 }
    const a = await process(loads)
    const b = await process(loads)
    await b.ns.get({ id: 2 })
    await a.ns.delete({ id: 2 })
    await expect.poll(() => b.cache.stats().bus?.received).toBe(1)
    await b.ns.get({ id: 2 })
    expect(loads.count).toBe(2)
  })

  it('a clear in one process drops the whole namespace from the others’ L1', async () => {
    const loads = { count: 0 }
    const a = await process(loads)
    const b = await process(loads)
    await Promise.all([1, 2, 3].map((id) => b.ns.get({ id })))
    expect(await a.ns.clear()).toBe(3)
    await expect.poll(() => b.cache.stats().bus?.received).toBe(1)
    await Promise.all([1, 2, 3].map((id) => b.ns.get({ id })))
    expect(loads.count).toBe(6)
  })

  it('counts and ignores a message it cannot read, and keeps working', async () => {
    const loads = { count: 0 }
    const b = await process(loads)
    await redis.command('PUBLISH', 'bus#bus', '{"v":99,"o":"someone","t":1}')
    await redis.command('PUBLISH', 'bus#bus', 'garbage')
    await expect.poll(() => b.cache.stats().bus?.malformed).toBe(2)
    const a = await process(loads)
    await b.ns.get({ id: 4 })
    await a.ns.set({ id: 4 }, { id: '4', from: 'set in a' })
    await expect.poll(() => b.ns.get({ id: 4 })).toEqual({ id: '4', from: 'set in a' })
  })

  it('after its bus connection drops, a process drops its L1: it may have missed invalidations', async () => {
    const loads = { count: 0 }
    const b = await process(loads)
    await b.ns.get({ id: 5 })
    // Kill only the pub/sub connection: the writes a peer sends meanwhile would be lost to b.
    await redis.command('CLIENT', 'KILL', 'TYPE', 'pubsub')
    await expect.poll(() => b.cache.stats().bus?.reconnects, { timeout: 5_000 }).toBe(1)
    expect(b.cache.stats().bus?.subscribed).toBe(true)
    // L1 was dropped: the next get reads L2 (no new load), not a possibly stale L1 copy.
    const before = b.ns.stats().l2Hits
    await b.ns.get({ id: 5 })
    expect(b.ns.stats().l2Hits).toBe(before + 1)
    expect(loads.count).toBe(1)
  })
})
