// `cache.stats()` carries an L2 store's own counters (`L2Store.stats()`) when it keeps them, and stays whole when a
// store of the user's breaks that method's contract (it must not throw).
import { createCache, type L2StoreStats } from 'stratacache'
import { redisStore } from 'stratacache/redis'
import { describe, expect, it } from 'vitest'

/** A node-redis store on a port nothing listens on: stats() needs no connection. */
const unreachable = () => redisStore({ url: 'redis://127.0.0.1:1' })

const counts: L2StoreStats = {
  entries: 3,
  bytes: 120,
  maxBytes: 1_000,
  evictions: 1,
  expired: 2,
  corruptReads: 4,
  tooLarge: 0,
}

describe("an L2 store's own counters in cache.stats()", () => {
  it('copies them into stats().l2.store, frozen', async () => {
    const store = Object.assign(unreachable(), { stats: () => counts })
    const cache = createCache({ service: 'store-stats', l2: store, logger: false })
    try {
      const l2 = cache.stats().l2!
      expect(l2.store).toEqual(counts)
      expect(Object.isFrozen(l2.store)).toBe(true)
    } finally {
      await cache.close()
    }
  })

  it('leaves them out, and answers the rest, when the store keeps none or its stats() throws', async () => {
    const throwing = Object.assign(unreachable(), {
      stats: (): L2StoreStats => {
        throw new Error('broken store')
      },
    })
    for (const store of [unreachable(), throwing]) {
      const cache = createCache({ service: 'store-stats', l2: store, logger: false })
      try {
        const l2 = cache.stats().l2!
        expect(l2).toMatchObject({ calls: expect.any(Number) })
        expect('store' in l2).toBe(false)
      } finally {
        await cache.close()
      }
    }
  })
})
