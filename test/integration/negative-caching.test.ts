import { createCache, type CacheOptions } from 'stratacache'
import { redisStore } from 'stratacache/redis'
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest'
import { rawClient, type RawClient } from '../chaos/support.js'

const url = inject('redisUrl')
const closers: (() => Promise<void>)[] = []
let raw: RawClient
beforeAll(async () => {
  raw = await rawClient(url)
})
afterAll(async () => {
  await raw.close()
})
afterEach(async () => {
  await Promise.all(closers.splice(0).map((close) => close()))
})

function newCache(options: Partial<CacheOptions> = {}) {
  const cache = createCache({
    service: 'it-negative',
    l2: redisStore({ url }),
    timeouts: { l2: '2s' },
    ...options,
  })
  closers.push(() => cache.close())
  return cache
}

describe('negative caching against a real Redis', () => {
  it.each([
    ['null', null],
    ['undefined', undefined],
  ] as const)(
    'caches a loader result of %s in L1 and L2 and returns exactly that value',
    async (label, nothing) => {
      let loads = 0
      const declare = () =>
        newCache().namespace(`missing-${label}`, {
          key: 'user:{id}',
          ttl: '1m',
          load: (): { name: string } | null | undefined => {
            loads++
            return nothing
          },
        })
      const a = declare()
      expect(await a.get({ id: 404 })).toBe(nothing)
      expect(await a.get({ id: 404 })).toBe(nothing)
      expect(loads).toBe(1)
      expect(a.stats()).toMatchObject({ l1Hits: 1, misses: 1, loads: 1 })

      // Another process finds the negative entry in L2 and does not load either.
      await expect.poll(() => raw.exists(a.key({ id: 404 }))).toBe(1)
      const b = declare()
      expect(await b.get({ id: 404 })).toBe(nothing)
      expect(loads).toBe(1)
      expect(b.stats()).toMatchObject({ l2Hits: 1, misses: 0, loads: 0 })
      // And in its own L1 after that.
      expect(await b.get({ id: 404 })).toBe(nothing)
      expect(b.stats()).toMatchObject({ l1Hits: 1, l2Hits: 1, loads: 0 })
    },
  )

  it('marks negative entries in the envelope flags with an empty payload: 1 for null, 3 for undefined', async () => {
    const ns = newCache().namespace('flags', {
      key: 'user:{id}',
      ttl: '1m',
      load: ({ id }): null | undefined => (id === 'n' ? null : undefined),
    })
    await ns.getMany([{ id: 'n' }, { id: 'u' }])
    await expect.poll(() => raw.exists([ns.key({ id: 'n' }), ns.key({ id: 'u' })])).toBe(2)
    const forNull = (await raw.get(ns.key({ id: 'n' })))!
    const forUndefined = (await raw.get(ns.key({ id: 'u' })))!
    expect(forNull[3]).toBe(1)
    expect(forUndefined[3]).toBe(3)
    expect(forNull.byteLength).toBe(33)
    expect(forUndefined.byteLength).toBe(33)
  })

  it('gives a negative entry the negativeTtl in Redis, without jitter', async () => {
    const ns = newCache({ random: () => 1 }).namespace('negative-ttl', {
      key: 'user:{id}',
      ttl: '10m',
      jitter: '1m',
      negativeTtl: '15s',
      load: () => null,
    })
    await ns.get({ id: 1 })
    const key = ns.key({ id: 1 })
    await expect.poll(() => raw.exists(key)).toBe(1)
    const pttl = await raw.pTTL(key)
    expect(pttl).toBeGreaterThan(15_000 - 1_000)
    expect(pttl).toBeLessThanOrEqual(15_000)
  })

  it('defaults the negative TTL to the smaller of ttl and 30 s', async () => {
    const long = newCache().namespace('negative-default-long', {
      key: 'user:{id}',
      ttl: '10m',
      load: () => null,
    })
    const short = newCache().namespace('negative-default-short', {
      key: 'user:{id}',
      ttl: '5s',
      jitter: 0,
      load: () => undefined,
    })
    await Promise.all([long.get({ id: 1 }), short.get({ id: 1 })])
    await expect.poll(() => raw.exists([long.key({ id: 1 }), short.key({ id: 1 })])).toBe(2)
    const longTtl = await raw.pTTL(long.key({ id: 1 }))
    const shortTtl = await raw.pTTL(short.key({ id: 1 }))
    expect(longTtl).toBeGreaterThan(29_000)
    expect(longTtl).toBeLessThanOrEqual(30_000)
    expect(shortTtl).toBeGreaterThan(4_000)
    expect(shortTtl).toBeLessThanOrEqual(5_000)
  })

  it('loads again once the negative TTL has passed (fake clock)', async () => {
    let now = 1_700_000_000_000
    let calls = 0
    const ns = newCache({ clock: { now: () => now } }).namespace('negative-expiry', {
      key: 'user:{id}',
      ttl: '10m',
      negativeTtl: '15s',
      load: () => (++calls === 1 ? null : { name: 'now exists' }),
    })
    expect(await ns.get({ id: 1 })).toBeNull()
    await expect.poll(() => raw.exists(ns.key({ id: 1 }))).toBe(1)
    now += 14_999
    expect(await ns.get({ id: 1 })).toBeNull()
    now += 2
    expect(await ns.get({ id: 1 })).toEqual({ name: 'now exists' })
    expect(calls).toBe(2)
  })
})
