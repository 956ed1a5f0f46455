// A write whose new value cannot be cached (over maxValueBytes, not serializable, tags() failing) must not leave
// the old value cached in any process: the caller replaced it (review of 2026-12-07).
import { createCache, type Cache } from 'stratacache'
import { redisStore } from 'stratacache/redis'
import { describe, expect, it } from 'vitest'
import { redisSuite } from '../helpers/suite.js'
import { recordingLogger } from '../chaos/support.js'

const suite = redisSuite({ flushBeforeEach: true })
const { closers } = suite

const BIG = 'v2-' + 'x'.repeat(5_000)

/** Two processes' caches over one source, each with the old value cached in L1 and L2. */
async function twoProcesses(writeStrategy: 'write-through' | 'write-behind') {
  const source = new Map([['1', 'small-v1']])
  const log = recordingLogger()
  const process = async () => {
    const cache: Cache = createCache({
      service: `uncacheable-${writeStrategy}`,
      l2: redisStore({ url: suite.redis.url }),
      maxValueBytes: 1_000,
      logger: log.logger,
    })
    closers.push(() => cache.close())
    await cache.connect()
    return cache.namespace('item', {
      key: 'item:{id}',
      ttl: '1h',
      writeStrategy,
      ...(writeStrategy === 'write-behind' ? { writeBehind: { flushInterval: '50ms' } } : {}),
      load: ({ id }) => source.get(String(id))!,
      write: ({ id }, value: string) => void source.set(String(id), value),
    })
  }
  const a = await process()
  const b = await process()
  expect(await a.get({ id: 1 })).toBe('small-v1')
  expect(await b.get({ id: 1 })).toBe('small-v1')
  return { a, b, source, log }
}

describe('a write whose value is too large to cache', () => {
  it('write-through: reaches the source, drops the old value in every process, and says why once', async () => {
    const { a, b, source, log } = await twoProcesses('write-through')
    await a.write({ id: 1 }, BIG)
    expect(source.get('1')).toBe(BIG)
    await expect.poll(() => b.peek({ id: 1 })).toBeUndefined()
    expect(await a.get({ id: 1 })).toBe(BIG)
    expect(await b.get({ id: 1 })).toBe(BIG)
    expect(a.stats().oversized).toBeGreaterThanOrEqual(1)
    // The write's own line, then each process's first load of a value it cannot cache (one per namespace).
    expect(log.visible().map((line) => line.message)).toEqual([
      expect.stringContaining('a write reached the source, but its value cannot be cached'),
      expect.stringMatching(/more than `maxValueBytes`.*The loaded value was served/),
      expect.stringMatching(/more than `maxValueBytes`.*The loaded value was served/),
    ])
  })

  it('write-behind: the queued write drops the old value in every process, before and after the flush', async () => {
    const { a, b, source } = await twoProcesses('write-behind')
    await a.write({ id: 1 }, BIG)
    await expect.poll(() => b.peek({ id: 1 })).toBeUndefined()
    expect(await a.get({ id: 1 })).toBe(BIG)
    await a.flushWrites()
    expect(source.get('1')).toBe(BIG)
    expect(await b.get({ id: 1 })).toBe(BIG)
  })

  it('set: rejects with ERR_STRATA_VALUE_TOO_LARGE, and drops the value it was to replace', async () => {
    const { a, b } = await twoProcesses('write-through')
    await expect(a.set({ id: 1 }, BIG)).rejects.toMatchObject({ code: 'ERR_STRATA_VALUE_TOO_LARGE' })
    expect(await a.peek({ id: 1 })).toBeUndefined()
    await expect.poll(() => b.peek({ id: 1 })).toBeUndefined()
  })
})
