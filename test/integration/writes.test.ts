import { createCache, type Cache } from 'stratacache'
import { redisStore } from 'stratacache/redis'
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { startRedis, type RedisServer } from '../helpers/redis-server.js'
import { integerReply, rawClient, type RawClient } from '../chaos/support.js'

// Own server: clear() is checked against every key Redis holds.
let redis: RedisServer
let raw: RawClient
const closers: (() => Promise<void>)[] = []
beforeAll(async () => {
  redis = await startRedis()
  raw = await rawClient(redis.url)
})
afterAll(async () => {
  await raw.close()
  await redis.stop()
})
beforeEach(async () => {
  await redis.command('FLUSHALL')
})
afterEach(async () => {
  await Promise.all(closers.splice(0).map((close) => close()))
})

function newCache(service = 'it-writes'): Cache {
  const cache = createCache({ service, l2: redisStore({ url: redis.url }) })
  closers.push(() => cache.close())
  return cache
}

function declareUsers(cache: Cache, loads: { count: number } = { count: 0 }) {
  return cache.namespace('user', {
    key: 'user:{id}',
    ttl: '1m',
    load: ({ id }): { id: unknown; name: string } => {
      loads.count++
      return { id, name: `loaded ${id}` }
    },
  })
}

async function allKeys(): Promise<string[]> {
  return (await raw.keys('*')).map(String).sort()
}

describe('set, delete and peek against a real Redis', () => {
  it('set writes through to L2 before it resolves, so another cache reads the value without loading', async () => {
    const loads = { count: 0 }
    // Connected (and listening on the bus) first: an entry cached before the bus listens is revalidated once it does.
    const cache = newCache()
    await cache.connect()
    const a = declareUsers(cache, loads)
    const b = declareUsers(newCache(), loads)
    await a.set({ id: 1 }, { id: 1, name: 'set by a' })
    expect(await raw.exists(a.key({ id: 1 }))).toBe(1)
    expect(await a.get({ id: 1 })).toEqual({ id: 1, name: 'set by a' })
    expect(await b.get({ id: 1 })).toEqual({ id: 1, name: 'set by a' })
    expect(loads.count).toBe(0)
    expect(a.stats()).toMatchObject({ l1Hits: 1 })
    expect(b.stats()).toMatchObject({ l2Hits: 1 })
  })

  it('set replaces a value already cached in L1 and L2', async () => {
    const a = declareUsers(newCache())
    const b = declareUsers(newCache())
    expect(await a.get({ id: 2 })).toEqual({ id: 2, name: 'loaded 2' })
    await a.set({ id: 2 }, { id: 2, name: 'renamed' })
    expect(await a.get({ id: 2 })).toEqual({ id: 2, name: 'renamed' })
    expect(await b.get({ id: 2 })).toEqual({ id: 2, name: 'renamed' })
  })

  it('delete removes the entry from L1 and L2, so the next get loads again', async () => {
    const loads = { count: 0 }
    const a = declareUsers(newCache(), loads)
    const b = declareUsers(newCache(), loads)
    await a.set({ id: 3 }, { id: 3, name: 'before delete' })
    await a.get({ id: 3 })
    await a.delete({ id: 3 })
    expect(await raw.exists(a.key({ id: 3 }))).toBe(0)
    expect(await a.peek({ id: 3 })).toBeUndefined()
    expect(await b.peek({ id: 3 })).toBeUndefined()
    expect(await a.get({ id: 3 })).toEqual({ id: 3, name: 'loaded 3' })
    expect(loads.count).toBe(1)
  })

  it('peek returns the value from L1 or L2 and never calls the loader', async () => {
    const loads = { count: 0 }
    const a = declareUsers(newCache(), loads)
    const b = declareUsers(newCache(), loads)
    expect(await a.peek({ id: 4 })).toBeUndefined()
    await a.set({ id: 4 }, { id: 4, name: 'peeked' })
    expect(await a.peek({ id: 4 })).toEqual({ id: 4, name: 'peeked' })
    expect(await b.peek({ id: 4 })).toEqual({ id: 4, name: 'peeked' })
    expect(await b.peek({ id: 5 })).toBeUndefined()
    expect(loads.count).toBe(0)
  })
})

describe('clear against a real Redis', () => {
  it("deletes only this namespace's keys: other namespaces, schema versions and services keep theirs", async () => {
    const cache = newCache('it-writes')
    const users = declareUsers(cache)
    const orders = cache.namespace('order', { key: 'order:{id}', ttl: '1m' })
    const usersV2 = newCache('it-writes').namespace('user', { key: 'user:{id}', ttl: '1m', schemaVersion: 2 })
    const otherService = declareUsers(newCache('it-writes-other'))
    const prefixService = declareUsers(newCache('it'))
    for (let id = 0; id < 5; id++) {
      await users.set({ id }, { id, name: 'u' })
      await orders.set({ id }, { id })
      await usersV2.set({ id }, { id })
      await otherService.set({ id }, { id, name: 'other' })
      await prefixService.set({ id }, { id, name: 'prefix' })
    }
    // Every set also keeps a version counter beside its entry (`<key>#v`); count the entries.
    const entries = (keys: string[]) => keys.filter((key) => !key.includes('#'))
    const before = await allKeys()
    expect(entries(before)).toHaveLength(25)

    expect(await users.clear()).toBe(5)

    const after = await allKeys()
    // Left besides the others' keys: the namespace's invalidation sequence and clear mark (outside its prefix).
    expect(after).toEqual(
      [
        ...before.filter((key) => !key.startsWith('it-writes:user:v1:')),
        'it-writes:user:v1#cleared',
        'it-writes:user:v1#seq',
      ].sort(),
    )
    expect(entries(after)).toHaveLength(20)
    expect(await users.peek({ id: 1 })).toBeUndefined()
    expect(await orders.peek({ id: 1 })).toEqual({ id: 1 })
    expect(await otherService.peek({ id: 1 })).toEqual({ id: 1, name: 'other' })
  })

  it('empties L1 of this namespace too, so the next get loads', async () => {
    const loads = { count: 0 }
    const cache = newCache()
    const users = declareUsers(cache, loads)
    const orders = cache.namespace('order', { key: 'order:{id}', ttl: '1m', load: ({ id }) => ({ id }) })
    await users.get({ id: 1 })
    await orders.get({ id: 1 })
    await users.clear()
    await users.get({ id: 1 })
    await orders.get({ id: 1 })
    expect(loads.count).toBe(2)
    expect(orders.stats()).toMatchObject({ l1Hits: 1, loads: 1 })
  })

  it('deletes thousands of keys, more than one SCAN step, and reports how many', async () => {
    const users = declareUsers(newCache())
    const keys = [...Array(1_200).keys()].map((id) => users.key({ id }))
    await raw.mSet(keys.map((key) => [key, 'x'] as [string, string]))
    await raw.set('it-writes:user-archive:v1:user:1', 'x')
    expect(await users.clear()).toBe(1_200)
    // The other namespace's key, and this one's invalidation sequence, clear mark and server id.
    expect(integerReply(await redis.command('DBSIZE'))).toBe(4)
  })
})
