// The L1 byte budget (l1.maxBytes) holds whichever tier a value came from: loaded, set, or read from L2.
import { createCache, type Cache } from 'stratacache'
import { redisStore } from 'stratacache/redis'
import { describe, expect, it } from 'vitest'
import { redisSuite } from '../helpers/suite.js'

const suite = redisSuite({ flushBeforeEach: true })

const BUDGET = 1_000_000
const value = 'x'.repeat(100_000) // about 100 KB each

async function newCache(): Promise<Cache> {
  const cache = createCache({
    service: 'it-l1-budget',
    l1: { maxEntries: 10_000, maxBytes: BUDGET },
    l2: redisStore({ url: suite.redis.url }),
  })
  suite.closers.push(() => cache.close())
  await cache.connect()
  return cache
}

describe('L1 byte budget', () => {
  // Review finding A1 (demo d19): values filled into L1 from L2 were counted at 0 bytes, so a process reading
  // mostly from L2 held far more than its budget.
  it('keeps L1 within maxBytes, and counts their bytes, when 100 values of 100 KB are read from L2', async () => {
    const loader = await newCache()
    const reader = await newCache()
    const loading = loader.namespace('blob', { key: 'i:{id}', ttl: '5m', load: () => value })
    for (let id = 0; id < 100; id++) await loading.get({ id })
    await loader.close() // its L2 writes are done

    const reading = reader.namespace('blob', {
      key: 'i:{id}',
      ttl: '5m',
      load: (): string => {
        throw new Error('every value is in L2')
      },
    })
    for (let id = 0; id < 100; id++) expect(await reading.get({ id })).toHaveLength(100_000)

    expect(reading.stats()).toMatchObject({ l2Hits: 100, loads: 0 })
    const l1 = reader.stats().l1!
    expect(l1.bytes, `L1 ${JSON.stringify(l1)}`).toBeLessThanOrEqual(BUDGET)
    expect(l1.bytes, `L1 ${JSON.stringify(l1)}`).toBeGreaterThan(0)
    expect(l1.entries).toBeLessThan(100)
  })
})
