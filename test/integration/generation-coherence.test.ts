// Namespace generations and the bus across processes: a process never goes back to a generation another process
// invalidated, and one that could not hear the bus (Redis down at its start) revalidates its L1 once it can.
import { createCache, type Cache, type CacheOptions, type L2Store } from 'stratacache'
import { redisStore } from 'stratacache/redis'
import { describe, expect, it } from 'vitest'
import { deferred, type Deferred } from '../helpers/deferred.js'
import { startRedis } from '../helpers/redis-server.js'
import { redisSuite } from '../helpers/suite.js'
import { within } from '../chaos/support.js'

const suite = redisSuite({ flushBeforeEach: true })
const SERVICE = 'it-generations'

async function newCache(options: Partial<CacheOptions> = {}): Promise<Cache> {
  const cache = createCache({
    service: SERVICE,
    random: () => 0,
    l2: redisStore({ url: suite.redis.url }),
    ...options,
  })
  suite.closers.push(() => cache.close())
  await cache.connect()
  await expect.poll(() => cache.stats().bus?.subscribed).toBe(true)
  return cache
}

const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve))

describe('namespace generations', () => {
  // Review finding A5 (demo d4): the generation read after a bus reconnection is applied as "exact", so a reply
  // sent before another process's invalidateAll() and delivered after its announcement takes the namespace back.
  it('a generation read sent before a newer invalidateAll() announcement never moves the namespace back', async () => {
    let source = 'old'
    // A's store: when armed, the reply to the generation read is delivered late (queued behind a large reply, a GC
    // pause), here until A has heard B's announcement.
    const storeA = redisStore({ url: suite.redis.url })
    const readGeneration = storeA.readGeneration.bind(storeA)
    let hold: { answered: Deferred<void>; release: Deferred<void> } | undefined
    storeA.readGeneration = async (key, atLeast) => {
      const value = await readGeneration(key, atLeast)
      const gate = hold
      if (gate !== undefined) {
        hold = undefined
        gate.answered.resolve()
        await gate.release.promise
      }
      return value
    }
    const a = await newCache({ l2: storeA, timeouts: { l2: '2s' } })
    const b = await newCache()
    const options = { key: 'i:{id}', ttl: '5m', load: () => source } as const
    const nsA = a.namespace('item', options)
    const nsB = b.namespace('item', options)
    expect(await nsA.get({ id: 1 })).toBe('old')
    expect(await nsB.get({ id: 1 })).toBe('old')

    hold = { answered: deferred(), release: deferred() }
    const gate = hold
    // The pub/sub connections drop and come back (a failover, a proxy restart): A reads its generation again.
    await suite.redis.command('CLIENT', 'KILL', 'TYPE', 'pubsub')
    await within(gate.answered.promise, 5_000, "A's generation read after its bus reconnected")
    source = 'new'
    const heard = a.stats().bus!.received
    await nsB.invalidateAll() // INCR, then the announcement
    await expect.poll(() => a.stats().bus!.received).toBeGreaterThan(heard)
    gate.release.resolve() // A's generation read, answered before the INCR, is delivered now
    await nextTurn()

    expect(nsA.generation, "A's generation").toBe(nsB.generation)
    expect(await nsA.get({ id: 1 })).toBe('new')
  })
})

describe('the first bus subscription', () => {
  // Review finding A12 (demo d11): only a re-subscription counted as a reconnection; a process that started with
  // Redis down kept the L1 entries it loaded meanwhile, including those other processes invalidated, until TTL.
  it('a cache that started with Redis down revalidates its L1 once its bus first subscribes, and reads what another cache wrote meanwhile', async () => {
    // A server of this test's own: down (a port nothing listens on) when cache A starts.
    const redis = await startRedis()
    suite.closers.push(() => redis.stop())
    await redis.kill()

    let source = 'old'
    const options = { key: 'i:{id}', ttl: '10m', staleFor: '1h', load: () => source } as const
    // A's bus cannot subscribe until B's write is done, so that A surely missed its message.
    const storeA: L2Store = redisStore({ url: redis.url, maxReconnectDelay: '100ms' })
    const subscribe = storeA.subscribe.bind(storeA)
    let canSubscribe = false
    storeA.subscribe = (channel, listener) =>
      canSubscribe ? subscribe(channel, listener) : Promise.reject(new Error('not yet (held by the test)'))
    const a = createCache({ service: SERVICE, l2: storeA, circuitBreaker: { breakFor: '100ms' } })
    suite.closers.push(() => a.close())
    const nsA = a.namespace('item', options)
    expect(await nsA.get({ id: 1 })).toBe('old') // from the loader, kept in L1

    await redis.restart()
    const b = createCache({ service: SERVICE, l2: redisStore({ url: redis.url }) })
    suite.closers.push(() => b.close())
    await b.connect()
    source = 'new'
    await b.namespace('item', options).set({ id: 1 }, 'new') // stored in L2, announced on the bus
    canSubscribe = true
    await expect.poll(() => a.stats().bus?.subscribed, { timeout: 3_000 }).toBe(true)

    await expect.poll(() => nsA.get({ id: 1 }), { message: 'A after its bus subscribed' }).toBe('new')
  })
})
