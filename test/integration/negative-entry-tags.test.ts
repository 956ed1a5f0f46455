// Negative entries (a cached "not found") and tag invalidation: a record created in the source after its absence
// was cached is read once the application invalidates a tag the record carries, in every process.
import { createCache, type Cache } from 'stratacache'
import { redisStore } from 'stratacache/redis'
import { describe, expect, it } from 'vitest'
import { redisSuite } from '../helpers/suite.js'

const suite = redisSuite({ flushBeforeEach: true })

interface User {
  id: number
  org: string
}

async function newCache(): Promise<Cache> {
  const cache = createCache({
    service: 'it-negative-tags',
    random: () => 0,
    l2: redisStore({ url: suite.redis.url }),
  })
  suite.closers.push(() => cache.close())
  await cache.connect()
  await expect.poll(() => cache.stats().bus?.subscribed).toBe(true)
  return cache
}

describe('negative entries and tags', () => {
  // The tags of a negative entry cannot be computed from its (missing) value, so today it is indexed under no tag
  // and survives every invalidateTag() for its negative TTL. Expected: invalidateTag() drops the namespace's negative
  // entries whatever the tag (or, if tags() is given the params with a null value, those it tags).
  it('invalidateTag() of a tag the created record carries makes the next get return the record, here and in another cache', async () => {
    const users = new Map<number, User>()
    let loads = 0
    const declare = (cache: Cache) =>
      cache.namespace('user', {
        key: 'user:{id}',
        ttl: '5m',
        negativeTtl: '5m',
        load: ({ id }: { id: number }): User | null => {
          loads++
          return users.get(id) ?? null
        },
        tags: ({ id }, user) => [`user:${id}`, ...(user ? [`org:${user.org}`] : [])],
      })
    const a = declare(await newCache())
    const b = declare(await newCache())

    expect(await a.get({ id: 1 })).toBeNull()
    expect(await a.get({ id: 1 })).toBeNull() // cached: not loaded again
    expect(await b.get({ id: 1 })).toBeNull() // from L2, now in B's L1 too
    expect(loads).toBe(1)

    const created = { id: 1, org: 'acme' }
    users.set(1, created) // the record is created in the source...
    await a.invalidateTag('user:1') // ...and the application invalidates by tag

    expect.soft(await a.get({ id: 1 }), 'this cache, after invalidateTag() resolved').toEqual(created)
    await expect
      .poll(() => b.get({ id: 1 }), { message: 'another cache, once the bus told it' })
      .toEqual(created)
  })
})
