// Write paths and consistency across two caches (two processes) on a real Redis.
import { createCache, type Cache } from 'stratacache'
import { redisStore } from 'stratacache/redis'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { deferred } from '../helpers/deferred.js'
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

const source = new Map<string, string>()
// Loads that have read the source: a test waits for one instead of sleeping (the load first reads L2 and the fence,
// which took more than the 20 ms the tests once slept when other test files ran beside this one).
let sourceReads = 0

async function process(consistency: 'strong' | 'eventual', gate?: Promise<void>) {
  const cache = createCache({ service: 'consistency', l2: redisStore({ url: redis.url }) })
  caches.push(cache)
  const ns = cache.namespace('account', {
    key: 'account:{id}',
    ttl: '1h',
    consistency,
    lock: false,
    load: async ({ id }) => {
      const value = source.get(String(id)) ?? 'v0' // read the source first: the value is from now
      sourceReads++
      if (gate !== undefined) await gate
      return value
    },
    write: ({ id }, value) => void source.set(String(id), value),
  })
  await cache.connect()
  await expect.poll(() => cache.stats().bus?.subscribed).toBe(true)
  return { cache, ns }
}

describe('consistency against a real Redis', () => {
  it('a load that started before a write never overwrites the newer value in L2', async () => {
    source.clear()
    const gate = deferred<void>()
    const slowReader = await process('eventual', gate.promise)
    const writer = await process('eventual')
    const reads = sourceReads
    const loading = slowReader.ns.get({ id: 1 }) // reads 'v0' from the source, then waits
    await expect.poll(() => sourceReads).toBe(reads + 1)
    await writer.ns.write({ id: 1 }, 'v1')
    gate.resolve()
    expect(await loading).toBe('v0') // its caller still gets what it loaded…
    // …but L2 keeps the writer's value, and a third process reads that.
    await expect.poll(() => slowReader.ns.stats().staleLoadsDropped).toBe(1)
    const third = await process('eventual')
    expect(await third.ns.get({ id: 1 })).toBe('v1')
    expect(await slowReader.ns.get({ id: 1 })).toBe('v1')
  })

  it('strong: a get after write() resolved never joins an older load in flight and returns its value', async () => {
    source.clear()
    const gate = deferred<void>()
    const a = await process('strong')
    const b = await process('strong', gate.promise)
    const reads = sourceReads
    const early = b.ns.get({ id: 3 }) // loads 'v0' from the source, then waits on the gate
    await expect.poll(() => sourceReads).toBe(reads + 1)
    await a.ns.write({ id: 3 }, 'v1')
    const late = b.ns.get({ id: 3 }) // issued after the write was acknowledged
    gate.resolve()
    expect(await late).toBe('v1')
    expect(await early).toBe('v1') // the load lost the race to the write: the newer value answers
  })

  it('strong: once write() resolves, every process reads the new value', async () => {
    source.clear()
    const a = await process('strong')
    const b = await process('strong')
    for (let generation = 1; generation <= 20; generation++) {
      expect(await b.ns.get({ id: 2 })).toBe(generation === 1 ? 'v0' : `v${generation - 1}`)
      await a.ns.write({ id: 2 }, `v${generation}`)
      expect(await b.ns.get({ id: 2 })).toBe(`v${generation}`)
    }
  })
})
