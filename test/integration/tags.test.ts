// Tags: invalidateTag drops tagged entries in L2 and in every process's L1, without scanning the keyspace.
import { createCache, type Cache } from 'stratacache'
import { redisStore } from 'stratacache/redis'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { startRedis, type RedisServer } from '../helpers/redis-server.js'
import { commandCalls } from '../chaos/support.js'

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
  const cache = createCache({ service: 'tags', l2: redisStore({ url: redis.url }) })
  caches.push(cache)
  const products = cache.namespace('product', {
    key: 'tenant:{tenantId}:product:{productId}',
    ttl: '1h',
    tags: ({ tenantId }) => [`tenant:${tenantId}`],
    load: ({ tenantId, productId }) => {
      loads.count++
      return { tenantId: String(tenantId), productId: Number(productId) }
    },
  })
  const prices = cache.namespace('price', {
    key: 'tenant:{tenantId}:sku:{sku}',
    ttl: '1h',
    load: ({ tenantId }) => {
      loads.count++
      return { tenantId: String(tenantId), currency: 'EUR' }
    },
    // Declared after load, so TypeScript types `value` from load's result.
    tags: ({ tenantId }, value) => [`tenant:${tenantId}`, `currency:${value.currency}`],
  })
  await cache.connect()
  await expect.poll(() => cache.stats().bus?.subscribed).toBe(true)
  return { cache, products, prices }
}

describe('tags', () => {
  it("cache.invalidateTag drops a tenant's entries of every namespace from L2 and from another process's L1", async () => {
    const loads = { count: 0 }
    const a = await process(loads)
    const b = await process(loads)
    for (const tenantId of ['t1', 't2']) {
      await Promise.all([1, 2, 3].map((productId) => a.products.get({ tenantId, productId })))
      await a.prices.get({ tenantId, sku: 'x' })
    }
    // b reads them from L2 into its L1; their tags come from its own tags() function.
    for (const tenantId of ['t1', 't2']) {
      await Promise.all([1, 2, 3].map((productId) => b.products.get({ tenantId, productId })))
      await b.prices.get({ tenantId, sku: 'x' })
    }
    expect(loads.count).toBe(8)
    // 8 entries + 5 tag sets (product: tenant t1, t2; price: tenant t1, t2, currency EUR) + the 2 namespaces' epochs
    // and server ids
    await expect.poll(() => redis.command('DBSIZE')).toBe(':17\r\n')

    await redis.command('CONFIG', 'RESETSTAT')
    expect(await a.cache.invalidateTag('tenant:t1')).toBe(4)
    const stats = await redis.command('INFO', 'commandstats')
    expect(commandCalls(stats, 'scan')).toBe(0)
    expect(commandCalls(stats, 'keys')).toBe(0)

    await expect.poll(() => b.cache.stats().bus?.received).toBe(2) // one message per namespace
    // t1 is gone everywhere: both processes load it again; t2 is still cached in both.
    await b.products.get({ tenantId: 't1', productId: 1 })
    await a.prices.get({ tenantId: 't1', sku: 'x' })
    expect(loads.count).toBe(10)
    await b.products.get({ tenantId: 't2', productId: 1 })
    await a.prices.get({ tenantId: 't2', sku: 'x' })
    expect(loads.count).toBe(10)
  })

  it('ns.invalidateTag only touches its own namespace, and tags may come from the value', async () => {
    const loads = { count: 0 }
    const a = await process(loads)
    await a.products.get({ tenantId: 't1', productId: 1 })
    await a.prices.get({ tenantId: 't1', sku: 'x' })
    expect(await a.prices.invalidateTag('currency:EUR')).toBe(1)
    await a.products.get({ tenantId: 't1', productId: 1 })
    await a.prices.get({ tenantId: 't1', sku: 'x' })
    expect(loads.count).toBe(3)
  })

  it('a set tags its entry too, and a tag nobody used invalidates nothing', async () => {
    const loads = { count: 0 }
    const a = await process(loads)
    await a.products.set({ tenantId: 't9', productId: 1 }, { tenantId: 't9', productId: 1 })
    expect(await a.products.invalidateTag('tenant:nobody')).toBe(0)
    expect(await a.products.invalidateTag('tenant:t9')).toBe(1)
    expect(await redis.command('EXISTS', a.products.key({ tenantId: 't9', productId: 1 }))).toBe(':0\r\n')
  })

  it('says once, naming the fix, when a namespace that declares no tags is asked to invalidate one (cache.invalidateTag does not)', async () => {
    const warnings: string[] = []
    const cache = createCache({
      service: 'tags-none',
      l2: redisStore({ url: redis.url }),
      logger: { info() {}, warn: (_: object, message: string) => warnings.push(message), error() {} },
    })
    caches.push(cache)
    const tagged = cache.namespace('tagged', { key: 't:{id}', ttl: '1h', tags: () => ['tenant:t1'] })
    const untagged = cache.namespace('untagged', { key: 'tenant:{tenantId}:u:{id}', ttl: '1h' })
    await untagged.set({ tenantId: 't1', id: 1 }, 'v')
    await tagged.set({ id: 1 }, 'v')
    expect(await cache.invalidateTag('tenant:t1')).toBe(1)
    expect(warnings).toEqual([])
    expect(await untagged.invalidateTag('tenant:t1')).toBe(0)
    expect(await untagged.invalidateTag('tenant:t2')).toBe(0)
    expect(warnings).toHaveLength(1)
    expect(warnings[0]).toMatch(/"untagged", which declares no `tags`.*Declare `tags`/)
    // Nothing was dropped: the untagged entry is still there.
    expect(await untagged.peek({ tenantId: 't1', id: 1 })).toBe('v')
  })

  it('refuses an empty tag with a typed error', async () => {
    const a = await process({ count: 0 })
    await expect(a.products.invalidateTag('')).rejects.toMatchObject({ code: 'ERR_STRATA_INVALID_ARGUMENT' })
  })
})

describe('tags() calls', () => {
  it('runs tags() once per cached value, not once per place it is stored', async () => {
    const cache = createCache({ service: 'tags-calls', l2: redisStore({ url: redis.url }) })
    caches.push(cache)
    let calls = 0
    const ns = cache.namespace('item', {
      key: 'item:{id}',
      ttl: '1h',
      load: ({ id }) => ({ id }),
      tags: () => {
        calls++
        return ['all']
      },
    })
    await ns.get({ id: 1 })
    expect(calls).toBe(1)
    await ns.set({ id: 2 }, { id: 2 })
    expect(calls).toBe(2)
  })
})
