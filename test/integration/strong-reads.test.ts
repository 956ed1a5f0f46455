// The strong class: once write() resolved in one cache, a get issued afterwards in any cache returns the new value,
// even when that cache was already reading or loading the key (its bus has not told it yet).
import { createCache, type Cache, type CacheOptions } from 'stratacache'
import { redisStore } from 'stratacache/redis'
import { describe, expect, it } from 'vitest'
import { deferred, type Deferred } from '../helpers/deferred.js'
import { redisSuite } from '../helpers/suite.js'
import { delayedPubSub } from '../chaos/fixtures/staleness-shared.js'

const suite = redisSuite({ flushBeforeEach: true })

async function newCache(options: Partial<CacheOptions> = {}): Promise<Cache> {
  const cache = createCache({
    service: 'it-strong',
    random: () => 0,
    l2: redisStore({ url: suite.redis.url }),
    timeouts: { l2: '2s' },
    ...options,
  })
  suite.closers.push(() => cache.close())
  await cache.connect()
  await expect.poll(() => cache.stats().bus?.subscribed).toBe(true)
  return cache
}

function declare(
  cache: Cache,
  source: { value: string; gate?: Deferred<void> | undefined },
  writeStrategy: 'write-through' | 'cache-aside' = 'write-through',
) {
  return cache.namespace('item', {
    key: 'i:{id}',
    ttl: '5m',
    consistency: 'strong',
    writeStrategy,
    load: async () => {
      const value = source.value
      const gate = source.gate
      source.gate = undefined
      if (gate !== undefined) await gate.promise
      return value
    },
    write: (_: { id: number }, value: string) => {
      source.value = value
    },
  })
}

describe('strong reads after a write in another cache', () => {
  it('a get issued after write() resolved returns the new value, although an L2 read of the key was already under way in the reader', async () => {
    const source = { value: 'old' }
    // The reader's store: when armed, the reply to GET is delivered late; its bus messages arrive a minute late.
    const store = redisStore({ url: suite.redis.url })
    const getReply = store.get.bind(store)
    let hold: { answered: Deferred<void>; release: Deferred<void> } | undefined
    store.get = async (key) => {
      const value = await getReply(key)
      const gate = hold
      if (gate !== undefined) {
        hold = undefined
        gate.answered.resolve()
        await gate.release.promise
      }
      return value
    }
    const reader = declare(await newCache({ l2: delayedPubSub(store, 60_000) }), source)
    const writer = declare(await newCache(), source)
    await writer.write({ id: 1 }, 'old') // L2 holds 'old'

    hold = { answered: deferred(), release: deferred() }
    const gate = hold
    const first = reader.get({ id: 1 })
    await gate.answered.promise // the reader's GET was answered 'old', not yet delivered
    await writer.write({ id: 1 }, 'new')
    const second = reader.get({ id: 1 }) // issued after the write resolved
    gate.release.resolve()
    await first // issued before: either value

    expect(await second).toBe('new')
  })

  // The write-through row passes today: the reader's guarded store is refused and it answers the newer value it
  // finds in L2. After a cache-aside write L2 is empty, and the joined caller got the load's older value (found by
  // the model test).
  it.each(['write-through', 'cache-aside'] as const)(
    '%s: a get issued after write() resolved returns the new value, although a load of the key was already under way in the reader',
    async (writeStrategy) => {
      const source: { value: string; gate?: Deferred<void> } = { value: 'old' }
      const reader = declare(
        await newCache({ l2: delayedPubSub(redisStore({ url: suite.redis.url }), 60_000) }),
        source,
        writeStrategy,
      )
      const writer = declare(await newCache(), source, writeStrategy)

      const release = deferred<void>()
      source.gate = release
      const first = reader.get({ id: 1 }) // cold: the reader loads, its loader read 'old' and waits
      await expect.poll(() => source.gate).toBeUndefined()
      await writer.write({ id: 1 }, 'new')
      const second = reader.get({ id: 1 }) // issued after the write resolved
      release.resolve()
      await first

      expect(await second).toBe('new')
    },
  )
})
