import { createCache, type CacheOptions } from 'stratacache'
import { redisStore } from 'stratacache/redis'
import { afterEach, describe, expect, inject, it } from 'vitest'
import { rawClient } from '../chaos/support.js'

const url = inject('redisUrl')
const closers: (() => Promise<void>)[] = []
afterEach(async () => {
  await Promise.all(closers.splice(0).map((close) => close()))
})

function newCache(service: string, options: Partial<CacheOptions> = {}) {
  const cache = createCache({ service, l2: redisStore({ url }), timeouts: { l2: '2s' }, ...options })
  closers.push(() => cache.close())
  return cache
}

describe('read path against a real Redis', () => {
  it('serves a value loaded by one process to another from L2 without calling its loader', async () => {
    let loads = 0
    const declare = (cache: ReturnType<typeof newCache>) =>
      cache.namespace('product', {
        key: 'tenant:{tenantId}:product:{productId}',
        ttl: '1m',
        load: ({ productId }) => {
          loads++
          return { id: productId, name: `product ${productId}` }
        },
      })
    const a = declare(newCache('it-read-path'))
    const b = declare(newCache('it-read-path'))
    expect(await a.get({ tenantId: 't1', productId: 7 })).toEqual({ id: 7, name: 'product 7' })
    await expect.poll(() => b.peek({ tenantId: 't1', productId: 7 })).toEqual({ id: 7, name: 'product 7' })
    expect(await b.get({ tenantId: 't1', productId: 7 })).toEqual({ id: 7, name: 'product 7' })
    expect(loads).toBe(1)
    expect(b.stats()).toMatchObject({ l2Hits: 1, misses: 0, loads: 0 })
  })

  it('answers a second get on the same cache from L1 with the same decoded object, without touching L2 again', async () => {
    let loads = 0
    const declare = (cache: ReturnType<typeof newCache>) =>
      cache.namespace('l1-decoded', {
        key: 'item:{id}',
        ttl: '1m',
        load: ({ id }) => {
          loads++
          return { id, tags: ['a', 'b'] }
        },
      })
    const writer = declare(newCache('it-read-path'))
    await writer.get({ id: 'x' })
    const reader = declare(newCache('it-read-path'))
    await expect.poll(() => reader.peek({ id: 'x' })).toEqual({ id: 'x', tags: ['a', 'b'] })

    const first = await reader.get({ id: 'x' })
    const second = await reader.get({ id: 'x' })
    expect(second).toEqual({ id: 'x', tags: ['a', 'b'] })
    // L1 keeps the decoded value: the very same object comes back, nothing is decoded again.
    expect(second).toBe(first)
    expect(loads).toBe(1)
    expect(reader.stats()).toMatchObject({ l1Hits: 1, l2Hits: 1, misses: 0, loads: 0, hitRatio: 1 })
  })

  it('calls the loader on the first get of a key in no tier, and answers the next get from L1', async () => {
    let loads = 0
    const cache = newCache('it-read-path')
    const ns = cache.namespace('cold', {
      key: 'item:{id}',
      ttl: '1m',
      load: ({ id }) => {
        loads++
        return `value ${id}`
      },
    })
    expect(await ns.get({ id: 1 })).toBe('value 1')
    expect(await ns.get({ id: 1 })).toBe('value 1')
    expect(loads).toBe(1)
    expect(ns.stats()).toMatchObject({ l1Hits: 1, l2Hits: 0, misses: 1, loads: 1, hitRatio: 0.5 })
    expect(cache.stats().namespaces['cold']).toMatchObject({ l1Hits: 1, misses: 1 })
  })
})

describe('L1 lifetime against L2 freshness (fake clock)', () => {
  it('stops serving the L1 copy once the L2 entry is no longer fresh, and loads again', async () => {
    let now = 1_700_000_000_000
    const clock = { now: () => now }
    let version = 0
    const ns = newCache('it-read-path-clock', { clock }).namespace('expiry', {
      key: 'item:{id}',
      ttl: '10s',
      jitter: 0,
      load: () => ++version,
    })
    expect(await ns.get({ id: 1 })).toBe(1)
    now += 9_999
    expect(await ns.get({ id: 1 })).toBe(1)
    expect(ns.stats()).toMatchObject({ l1Hits: 1, loads: 1 })
    now += 2
    // Redis still holds the bytes (its real TTL has not passed), but the entry in it is no longer fresh.
    expect(await ns.get({ id: 1 })).toBe(2)
    expect(ns.stats()).toMatchObject({ l1Hits: 1, l2Hits: 0, misses: 2, loads: 2 })
  })

  it('keeps an L1 copy filled from L2 only for what is left of the L2 entry, not for a whole TTL', async () => {
    let now = 1_700_000_000_000
    const clock = { now: () => now }
    const loads = { a: 0, b: 0 }
    const declare = (cache: ReturnType<typeof newCache>, who: 'a' | 'b') =>
      cache.namespace('remaining', {
        key: 'item:{id}',
        ttl: '10s',
        jitter: 0,
        load: () => `loaded by ${who} #${++loads[who]}`,
      })
    const a = declare(newCache('it-read-path-clock', { clock }), 'a')
    const b = declare(newCache('it-read-path-clock', { clock }), 'b')
    expect(await a.get({ id: 2 })).toBe('loaded by a #1')
    await expect.poll(() => b.peek({ id: 2 })).toBe('loaded by a #1')

    now += 6_000
    expect(await b.get({ id: 2 })).toBe('loaded by a #1')
    expect(b.stats()).toMatchObject({ l2Hits: 1, loads: 0 })
    now += 3_999
    expect(await b.get({ id: 2 })).toBe('loaded by a #1')
    expect(b.stats()).toMatchObject({ l1Hits: 1 })
    // 10 s after a loaded it the L2 entry is stale: b's L1 copy (filled 4 s before) must not outlive it.
    now += 2
    expect(await b.get({ id: 2 })).toBe('loaded by b #1')
    expect(b.stats()).toMatchObject({ l1Hits: 1, l2Hits: 1, loads: 1 })
  })

  it('honours a shorter L1 TTL and then reads the still fresh value from L2', async () => {
    let now = 1_700_000_000_000
    const clock = { now: () => now }
    let loads = 0
    const ns = newCache('it-read-path-clock', { clock }).namespace('short-l1', {
      key: 'item:{id}',
      ttl: '1m',
      jitter: 0,
      l1: { ttl: '5s' },
      load: () => ({ n: ++loads }),
    })
    expect(await ns.get({ id: 3 })).toEqual({ n: 1 })
    // The L2 write after a load is in the background: wait until it landed before leaving L1.
    const raw = await rawClient(url)
    closers.push(() => raw.close())
    await expect.poll(() => raw.exists(ns.key({ id: 3 }))).toBe(1)
    now += 5_001
    expect(await ns.get({ id: 3 })).toEqual({ n: 1 })
    expect(ns.stats()).toMatchObject({ l2Hits: 1, loads: 1 })
  })
})
