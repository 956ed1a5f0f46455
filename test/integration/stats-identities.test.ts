// `stats()` adds up, on a real Redis: every read (each `get`, each item of a `getMany`) is exactly one of an L1 hit,
// an L2 hit or a miss, and is counted once in the read-latency histogram, whatever path answered it (joined
// flights, duplicates in a getMany, stale serves, negative entries, a wait for another process's load, a strong
// read that reads L2 beside another). docs/observability.md states these identities.
import { createCache, type Cache, type CacheOptions, type NamespaceStats } from 'stratacache'
import { redisStore } from 'stratacache/redis'
import { describe, expect, it } from 'vitest'
import { deferred } from '../helpers/deferred.js'
import { fakeClock } from '../helpers/fake-clock.js'
import { redisSuite } from '../helpers/suite.js'

const suite = redisSuite({ flushBeforeEach: true })

/** A cache on the suite's Redis, connected (so that what it measures at connect, such as clocks, is known). */
async function newCache(service: string, options: Partial<CacheOptions> = {}): Promise<Cache> {
  const cache = createCache({
    service,
    l2: redisStore({ url: suite.redis.url }),
    random: () => 0,
    ...options,
  })
  suite.closers.push(() => cache.close())
  await cache.connect()
  return cache
}

/** The identities docs/observability.md states, for a namespace that was read `reads` times. */
function expectIdentities(s: NamespaceStats, reads: number): void {
  const { l1Hits, l2Hits, misses, latencyMs, staleServed } = s
  expect(l1Hits + l2Hits + misses, 'reads = l1Hits + l2Hits + misses').toBe(reads)
  expect(latencyMs.read.count, 'the read histogram counts every read').toBe(reads)
  expect(latencyMs.l2Hit.count, 'the L2-hit histogram counts every L2 hit').toBe(l2Hits)
  expect(latencyMs.miss.count, 'the miss histogram counts every miss').toBe(misses)
  expect(latencyMs.read.counts.reduce((a, b) => a + b, 0)).toBe(reads)
  expect(s.hitRatio).toBeCloseTo(reads === 0 ? 0 : (l1Hits + l2Hits) / reads, 12)
  // Stale serves are also counted by outcome: stale-while-revalidate and bus-outage serves as hits, fail-safe and
  // soft-timeout serves (the read went to the loader) as misses.
  expect(staleServed.swr + staleServed.busOutage).toBeLessThanOrEqual(l1Hits + l2Hits)
  expect(staleServed.failSafe + staleServed.softTimeout).toBeLessThanOrEqual(misses)
  expect(s.loads).toBeLessThanOrEqual(misses + s.refreshes)
}

/** Lets background work (refreshes, L2 writes, bookkeeping after a flight) land. */
const settle = () => new Promise((resolve) => setTimeout(resolve, 50))

describe('stats() counts add up', () => {
  it('for a mix of get and getMany: hits, misses, joined flights, duplicates, negative entries and stale serves', async () => {
    const clock = fakeClock()
    let failing = false
    const item = (cache: Cache) =>
      cache.namespace('item', {
        key: 'item:{id}',
        ttl: '1m',
        staleFor: '1h',
        load: async ({ id }) => {
          await new Promise((resolve) => setTimeout(resolve, 5))
          if (failing) throw new Error('db down')
          return id === 'none' ? null : { id }
        },
      })
    // Every cache is made before the fake clock moves: one that connects later would take the clock's jumps for skew
    // against Redis's clock (a cache measures that offset when it connects).
    const a = item(await newCache('stats', { clock }))
    const b = item(await newCache('stats', { clock }))
    const c = item(await newCache('stats', { clock }))
    const strictCache = await newCache('stats-strict', { clock })
    let reads = 0
    const get = async (id: string) => {
      reads++
      return a.get({ id })
    }
    const getMany = async (ids: string[]) => {
      reads += ids.length
      return a.getMany(ids.map((id) => ({ id })))
    }

    await get('1') // miss
    await get('1') // L1 hit
    await a.peek({ id: '1' }) // not a read: never counted
    expect(await getMany(['1', '2', '3', '2'])).toEqual([{ id: '1' }, { id: '2' }, { id: '3' }, { id: '2' }])
    await get('none') // miss, cached as a negative entry
    expect(await get('none')).toBeNull() // L1 hit of the negative entry
    await Promise.all([get('4'), get('4'), get('4')]) // one flight, three readers: three misses
    await Promise.all([getMany(['5', '6']), get('5'), getMany(['6'])]) // gets and getManys joining one another
    await settle()
    let s = a.stats()
    expectIdentities(s, reads)
    expect([s.l1Hits, s.l2Hits, s.misses]).toEqual([3, 0, 12])

    // Another process: the same keys are L2 hits there, by get and by getMany.
    await b.get({ id: '1' })
    await b.getMany([{ id: '2' }, { id: '3' }, { id: '3' }])
    await Promise.all([b.get({ id: '4' }), b.get({ id: '4' })])
    await settle()
    expectIdentities(b.stats(), 6)
    expect([b.stats().l1Hits, b.stats().l2Hits, b.stats().misses]).toEqual([0, 6, 0])

    // Past the TTL, inside the stale window: served stale at once (L1 here), refreshed in the background.
    clock.advance(2 * 60_000)
    await get('1')
    await getMany(['2', '3'])
    await settle()
    s = a.stats()
    expectIdentities(s, reads)
    expect(s.staleServed.swr).toBe(3)

    // A third process reads stale entries from L2 (stale-while-revalidate from L2), by get and by getMany.
    clock.advance(2 * 60_000)
    await c.get({ id: '5' })
    await c.getMany([{ id: '6' }, { id: '6' }])
    await settle()
    expectIdentities(c.stats(), 3)
    expect([c.stats().l2Hits, c.stats().staleServed.swr]).toEqual([3, 2])

    // The source fails: stale values answer (fail-safe), each read counted as a miss.
    const strict = strictCache.namespace('strict', {
      key: 'strict:{id}',
      ttl: '1m',
      staleFor: '1h',
      staleWhileRevalidate: false,
      load: ({ id }) => {
        if (failing) throw new Error('db down')
        return { id }
      },
    })
    await strict.get({ id: '1' }) // miss
    await strict.getMany([{ id: '2' }]) // miss
    clock.advance(2 * 60_000)
    failing = true
    expect(await strict.get({ id: '1' })).toEqual({ id: '1' }) // miss, the loader fails: fail-safe
    expect(await strict.get({ id: '1' })).toEqual({ id: '1' }) // miss, the key is throttled: fail-safe
    expect(await strict.getMany([{ id: '2' }])).toEqual([{ id: '2' }]) // miss, fail-safe in a batch
    await settle()
    const t = strict.stats()
    expectIdentities(t, 5)
    expect([t.l1Hits, t.l2Hits, t.misses, t.staleServed.failSafe]).toEqual([0, 0, 5, 3])
  })

  it('counts a read that waited for another process’s load once, as a miss', async () => {
    const gate = deferred<void>()
    let loads = 0
    const declare = (cache: Cache) =>
      cache.namespace('slow', {
        key: 'slow:{id}',
        ttl: '1m',
        load: async ({ id }) => {
          loads++
          await gate.promise
          return { id }
        },
      })
    const a = declare(await newCache('stats-lock'))
    const b = declare(await newCache('stats-lock'))
    await Promise.all([a.peek({ id: 'x' }), b.peek({ id: 'x' })]) // both know the generation
    const first = a.get({ id: 'x' })
    await expect.poll(() => loads).toBe(1) // a holds the lock
    const second = b.get({ id: 'x' }) // b finds the lock held and waits for a's value
    await expect.poll(() => b.stats().lockWaits).toBe(1)
    gate.resolve()
    expect(await Promise.all([first, second])).toEqual([{ id: 'x' }, { id: 'x' }])
    await settle()
    expect(loads).toBe(1)
    expectIdentities(a.stats(), 1)
    expectIdentities(b.stats(), 1)
    expect([b.stats().l2Hits, b.stats().misses]).toEqual([0, 1])
  })

  it('times a strong read that read L2 beside another reader’s L2 read', async () => {
    const declare = (cache: Cache) =>
      cache.namespace('account', {
        key: 'account:{id}',
        ttl: '1m',
        consistency: 'strong',
        load: ({ id }) => ({ id }),
      })
    const writer = declare(await newCache('stats-strong'))
    await writer.set({ id: '7' }, { id: '7' })
    const reader = declare(await newCache('stats-strong'))
    await reader.peek({ id: '0' }) // the generation is known: both gets below go straight to L2
    // The second get finds the first one's flight reading L2: a strong read does not join it, it reads L2 itself.
    const results = await Promise.all([reader.get({ id: '7' }), reader.get({ id: '7' })])
    expect(results).toEqual([{ id: '7' }, { id: '7' }])
    await settle()
    expectIdentities(reader.stats(), 2)
    expect(reader.stats().l2Hits).toBe(2)
  })
})
