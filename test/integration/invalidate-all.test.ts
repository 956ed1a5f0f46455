import { createCache, type Cache } from 'stratacache'
import { redisStore } from 'stratacache/redis'
import { describe, expect, it } from 'vitest'
import { startRedis } from '../helpers/redis-server.js'
import { redisSuite } from '../helpers/suite.js'
import { commandCalls } from '../chaos/support.js'

// Own server: the test counts commands in INFO commandstats and kills pub/sub connections.
const suite = redisSuite({ raw: true, flushBeforeEach: true })

/** A process: its own cache and namespace; `source` is what the loader returns (shared, mutable). */
function process(source: { version: number; loads: number }) {
  const cache: Cache = createCache({
    service: 'it-gen',
    l2: redisStore({ url: suite.redis.url }),
    random: () => 0,
  })
  suite.closers.push(() => cache.close())
  const ns = cache.namespace('price', {
    key: 'price:{id}',
    ttl: '1h',
    load: ({ id }: { id: number }) => {
      source.loads++
      return { id, version: source.version }
    },
  })
  return { cache, ns }
}

describe('invalidateAll: a lazy, constant-cost invalidation of a whole namespace', () => {
  it('every process reads the new generation; old entries stay in Redis unread until their TTL, no scan', async () => {
    const source = { version: 1, loads: 0 }
    const a = process(source)
    const b = process(source)
    await a.cache.connect()
    await b.cache.connect()
    for (let id = 0; id < 50; id++) await a.ns.get({ id })
    for (let id = 0; id < 50; id++) await b.ns.get({ id })
    expect(source.loads).toBe(50)
    const oldKey = a.ns.key({ id: 7 })
    await suite.redis.command('CONFIG', 'RESETSTAT')

    source.version = 2
    await a.ns.invalidateAll()
    const stats = await suite.redis.command('INFO', 'commandstats')
    expect(commandCalls(stats, 'incr')).toBe(1)
    expect(commandCalls(stats, 'scan') + commandCalls(stats, 'unlink') + commandCalls(stats, 'del')).toBe(0)

    expect(a.ns.generation).toBe(1)
    expect(a.ns.key({ id: 7 })).toBe('it-gen:price:v1:g1:price:7')
    expect(await a.ns.get({ id: 7 })).toEqual({ id: 7, version: 2 })
    // b hears the bus: it drops its L1 and moves to generation 1.
    await expect.poll(() => b.ns.generation).toBe(1)
    expect(await b.ns.get({ id: 8 })).toEqual({ id: 8, version: 2 })
    // The old entries are still in Redis, never read again, expiring on their own.
    expect(await suite.raw.exists(oldKey)).toBe(1)
    expect(await suite.raw.pTTL(oldKey)).toBeGreaterThan(0)
  })

  it('a process started after the bump uses the new generation from its first read', async () => {
    const source = { version: 1, loads: 0 }
    const a = process(source)
    await a.ns.get({ id: 1 })
    await a.ns.invalidateAll()
    source.version = 2
    await a.ns.get({ id: 1 })
    const loadsBefore = source.loads
    const late = process(source)
    expect(await late.ns.get({ id: 1 })).toEqual({ id: 1, version: 2 })
    expect(late.ns.generation).toBe(1)
    // Served from the new generation's entry in L2, not loaded again.
    expect(source.loads).toBe(loadsBefore)
    expect(late.ns.stats().l2Hits).toBe(1)
  })

  it('a process whose bus dropped reads the generation again before it uses L2', async () => {
    const source = { version: 1, loads: 0 }
    const a = process(source)
    const b = process(source)
    await b.cache.connect()
    await b.ns.get({ id: 3 })
    // b goes deaf: kill its pub/sub connection, bump meanwhile from a.
    await suite.redis.command('CLIENT', 'KILL', 'TYPE', 'pubsub')
    source.version = 2
    await a.ns.invalidateAll()
    await expect.poll(() => b.cache.stats().bus?.reconnects, { timeout: 5_000 }).toBeGreaterThanOrEqual(1)
    await expect.poll(() => b.ns.generation, { timeout: 5_000 }).toBe(1)
    expect(await b.ns.get({ id: 3 })).toEqual({ id: 3, version: 2 })
  })

  it('clear() removes every generation’s entries and keeps the generation', async () => {
    const source = { version: 1, loads: 0 }
    const a = process(source)
    await a.ns.get({ id: 1 })
    await a.ns.invalidateAll()
    await a.ns.get({ id: 1 })
    await a.ns.get({ id: 2 })
    expect(await a.ns.clear()).toBe(3)
    expect(a.ns.generation).toBe(1)
    expect(await suite.raw.get('it-gen:price:v1#gen')).toEqual(Buffer.from('1'))
    expect((await suite.raw.keys('it-gen:price:v1:*')).filter((k) => !String(k).includes('#'))).toEqual([])
  })

  it('clear() counts entries only: hashed keys yes, tag sets, versions and the generation no', async () => {
    const cache = createCache({
      service: 'it-gen',
      l2: redisStore({ url: suite.redis.url }),
      maxKeyLength: 64,
    })
    suite.closers.push(() => cache.close())
    const ns = cache.namespace('doc', {
      key: 'doc:{id}',
      ttl: '1h',
      load: ({ id }) => ({ id }),
      tags: () => ['all', 'docs'],
    })
    await ns.get({ id: 'short' })
    await ns.get({ id: 'x'.repeat(100) }) // hashed: over maxKeyLength
    await ns.set({ id: 'short' }, { id: 'set' }) // a version key too
    await ns.invalidateAll()
    await ns.get({ id: 'short' })
    await cache.close()
    const keys = (await suite.raw.keys('it-gen:doc:v1*')).map(String)
    expect(keys.some((k) => k.includes('#tag{'))).toBe(true)
    expect(keys.some((k) => /:#[A-Za-z0-9_-]{43}$/.test(k))).toBe(true)
    const again = createCache({
      service: 'it-gen',
      l2: redisStore({ url: suite.redis.url }),
      maxKeyLength: 64,
    })
    suite.closers.push(() => again.close())
    const same = again.namespace('doc', { key: 'doc:{id}', ttl: '1h', tags: () => ['all', 'docs'] })
    // Three entries: two of generation 0 (one hashed), one of generation 1.
    expect(await same.clear()).toBe(3)
  })

  it('with Redis down, invalidateAll rejects with a typed L2 error after dropping this process’s L1', async () => {
    const own = await startRedis()
    try {
      const cache = createCache({ service: 'it-gen', l2: redisStore({ url: own.url }) })
      suite.closers.push(() => cache.close())
      const ns = cache.namespace('price', { key: 'price:{id}', ttl: '1h', load: ({ id }) => ({ id }) })
      await cache.connect()
      await ns.get({ id: 1 })
      await own.kill()
      await expect(ns.invalidateAll()).rejects.toMatchObject({
        code: expect.stringMatching(/^ERR_STRATA_L2_/),
      })
      expect(await ns.peek({ id: 1 })).toBeUndefined()
    } finally {
      await own.stop()
    }
  })

  it('without L2 it drops L1 and resolves', async () => {
    const cache = createCache({ service: 'it-gen' })
    suite.closers.push(() => cache.close())
    let loads = 0
    const ns = cache.namespace('price', {
      key: 'price:{id}',
      ttl: '1h',
      load: ({ id }) => ({ id, n: ++loads }),
    })
    await ns.get({ id: 1 })
    await ns.invalidateAll()
    expect(await ns.get({ id: 1 })).toEqual({ id: 1, n: 2 })
  })
})
