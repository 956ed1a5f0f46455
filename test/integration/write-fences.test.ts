// Write fences: a write or an invalidation that resolved is never undone by a read or a load that was already under
// way (or started during it) in this process or another one. Each test races the two with gates on the loader or
// on one real Redis command, so the interleaving is the same on every run.
import { createCache, type Cache, type CacheOptions, type L2Store } from 'stratacache'
import { redisStore } from 'stratacache/redis'
import { describe, expect, it } from 'vitest'
import { deferred, type Deferred } from '../helpers/deferred.js'
import { redisSuite } from '../helpers/suite.js'
import { sleep } from '../chaos/support.js'

const suite = redisSuite({ flushBeforeEach: true })

/** A cache on the suite's Redis (or, with `l2: false`, without L2), connected and subscribed to the bus. */
async function newCache(
  options: Omit<Partial<CacheOptions>, 'l2'> & { l2?: L2Store | false } = {},
): Promise<Cache> {
  const { l2 = redisStore({ url: suite.redis.url }), ...rest } = options
  const cache = createCache({
    service: 'it-fences',
    random: () => 0,
    ...(l2 === false ? {} : { l2 }),
    ...rest,
  })
  suite.closers.push(() => cache.close())
  if (cache.stats().l2 !== undefined) {
    await cache.connect()
    await expect.poll(() => cache.stats().bus?.subscribed).toBe(true)
  }
  return cache
}

const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve))

describe('writes in this process fence the reads that race them', () => {
  // Review finding A2 (demo d2): delete() drops L1, bumps the version, then UNLINKs; a get in between read L2
  // before the UNLINK and put the old value back into L1, served until its TTL.
  it('after a cache-aside write() resolved, a get in the same cache returns the new value, even when a get raced the write (50 keys)', async () => {
    const source = new Map<number, string>()
    const ns = (await newCache()).namespace('item', {
      key: 'item:{id}',
      ttl: '5m',
      writeStrategy: 'cache-aside',
      load: ({ id }: { id: number }) => source.get(id) ?? 'missing',
      write: ({ id }: { id: number }, value: string) => {
        source.set(id, value)
      },
    })
    const stale: number[] = []
    for (let id = 0; id < 50; id++) {
      source.set(id, 'v1')
      expect(await ns.get({ id })).toBe('v1')
      const writing = ns.write({ id }, 'v2')
      // Another request of this process reads while the write is on its way to Redis.
      await nextTurn()
      const during = ns.get({ id })
      await writing
      await during
      if ((await ns.get({ id })) !== 'v2') stale.push(id)
    }
    expect(stale.length, `keys still answering v1 after write() resolved: ${stale.join(', ')}`).toBe(0)
  })

  it('after delete() resolved, the next get loads the new source value, even when a get read L2 while the delete was under way', async () => {
    // Holds the delete's UNLINK (its version bump already done) until the racing get has read L2.
    const store = redisStore({ url: suite.redis.url })
    const unlink = store.delete.bind(store)
    let hold: { reached: Deferred<void>; release: Deferred<void> } | undefined
    store.delete = async (keys) => {
      const gate = hold
      hold = undefined
      if (gate !== undefined) {
        gate.reached.resolve()
        await gate.release.promise
      }
      return unlink(keys)
    }
    const getReply = store.get.bind(store)
    let answered = deferred<void>()
    store.get = async (key) => {
      const value = await getReply(key)
      answered.resolve()
      return value
    }
    let source = 'v1'
    let loads = 0
    const ns = (await newCache({ l2: store, timeouts: { l2: '2s' } })).namespace('item', {
      key: 'item:{id}',
      ttl: '5m',
      load: () => {
        loads++
        return source
      },
    })
    expect(await ns.get({ id: 1 })).toBe('v1')

    source = 'v2'
    hold = { reached: deferred(), release: deferred() }
    const gate = hold
    const deleting = ns.delete({ id: 1 })
    await gate.reached.promise
    answered = deferred()
    const during = ns.get({ id: 1 })
    // The racing get's L2 read is answered (with v1: not yet unlinked), or it waits for the delete: either way.
    await Promise.race([answered.promise, during, sleep(200)])
    gate.release.resolve()
    await deleting
    await during

    expect(await ns.get({ id: 1 })).toBe('v2')
    expect(loads).toBe(2)
  })
})

describe('invalidateTag() fences the loads already in flight', () => {
  // Review finding A3 (demos d1, d1b): invalidateTag only cancels flights whose key is already in L1 with the tag,
  // and bumps no version, so a cold load that read the source before the invalidation caches its old value after it.
  it.each([
    ['without L2', false],
    ['with L2', true],
  ] as const)(
    '%s: a cold load that read the source before invalidateTag() resolved does not leave the old value cached',
    async (_, withL2) => {
      let source = 'old'
      let calls = 0
      const loaderRead = deferred<void>()
      const release = deferred<void>()
      const cache = await newCache(withL2 ? {} : { l2: false })
      const products = cache.namespace('product', {
        key: 'p:{id}',
        ttl: '5m',
        load: async () => {
          const value = source // the loader reads the source...
          if (++calls === 1) {
            loaderRead.resolve()
            await release.promise // ...and is slow to come back
          }
          return value
        },
        tags: ({ id }) => [`product:${id}`],
      })
      const first = products.get({ id: 1 })
      await loaderRead.promise
      source = 'new' // the application writes the source, then invalidates by tag
      await products.invalidateTag('product:1')
      release.resolve()
      await first // started before the invalidation: it may answer 'old'

      expect(await products.get({ id: 1 })).toBe('new')
    },
  )

  it("another cache's load that read the source before invalidateTag() resolved leaves the old value neither in L2 nor, once the invalidation reached it, in its L1", async () => {
    let source = 'old'
    const loaderRead = deferred<void>()
    const release = deferred<void>()
    const declare = (cache: Cache, gated: boolean) =>
      cache.namespace('product', {
        key: 'p:{id}',
        ttl: '5m',
        consistency: 'bounded',
        maxStaleness: '1s',
        load: async () => {
          const value = source
          if (gated) {
            gated = false
            loaderRead.resolve()
            await release.promise
          }
          return value
        },
        tags: ({ id }: { id: number }) => [`product:${id}`],
      })
    const a = await newCache()
    const b = await newCache()
    const nsA = declare(a, false)
    const nsB = declare(b, true)

    const cold = nsB.get({ id: 1 }) // B: a cold read, its loader has read 'old'
    await loaderRead.promise
    source = 'new'
    const heard = b.stats().bus!.received
    await nsA.invalidateTag('product:1') // A: after its write to the source, invalidates by tag
    await expect.poll(() => b.stats().bus!.received).toBeGreaterThan(heard)
    release.resolve() // B's load lands after the invalidation reached B
    await cold

    expect.soft(await nsB.get({ id: 1 }), "B's L1 after the invalidation reached it").toBe('new')
    await b.close() // B's background writes to L2 are done
    const c = declare(await newCache(), false)
    expect(await c.get({ id: 1 }), 'a fresh cache, reading L2').toBe('new')
  })
})
