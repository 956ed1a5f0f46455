// 10,000 keys written at once must not expire at once: TTL jitter spreads their expiry across the jitter window.
import { createCache } from 'stratacache'
import { redisStore } from 'stratacache/redis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startRedis, type RedisServer } from '../helpers/redis-server.js'
import { rawClient, type RawClient } from './support.js'

const KEYS = 10_000
const SLICE = 500
const TTL_MS = 60_000
const JITTER_MS = 30_000

let redis: RedisServer
let raw: RawClient
beforeAll(async () => {
  redis = await startRedis()
  raw = await rawClient(redis.url)
})
afterAll(async () => {
  raw.destroy()
  await redis.stop()
})

describe('mass expiry', () => {
  it('spreads the expiry of 10,000 keys written at once evenly over the 30 s jitter window', async () => {
    // This test is about jitter, not timeouts: a generous L2 timeout keeps it from failing on a loaded machine.
    const cache = createCache({
      service: 'mass-expiry',
      l2: redisStore({ url: redis.url }),
      timeouts: { l2: '2s' },
    })
    try {
      await cache.connect()
      const ns = cache.namespace('item', { key: 'item:{id}', ttl: '60s', jitter: '30s' })
      const ids = Array.from({ length: KEYS }, (_, id) => id)

      const writeStarted = performance.now()
      // Slices of 500 concurrent sets.
      for (let from = 0; from < KEYS; from += SLICE) {
        await Promise.all(ids.slice(from, from + SLICE).map((id) => ns.set({ id }, { id })))
      }
      const pttls: number[] = []
      for (let from = 0; from < KEYS; from += 2_000) {
        const pipeline = raw.multi()
        for (const id of ids.slice(from, from + 2_000)) pipeline.pTTL(ns.key({ id }))
        pttls.push(...((await pipeline.execAsPipeline()) as unknown as number[]))
      }
      // How much any PTTL can have run down since its key was written.
      const elapsed = performance.now() - writeStarted

      expect(pttls.length).toBe(KEYS)
      const outside = pttls.filter((ms) => ms < TTL_MS - elapsed - 50 || ms > TTL_MS + JITTER_MS)
      expect(outside).toEqual([])

      // The jitter each key drew, give or take the time it spent in Redis before being read.
      const jitters = pttls.map((ms) => Math.min(JITTER_MS - 1, Math.max(0, ms - TTL_MS + elapsed / 2)))
      const share = (from: number, to: number) => jitters.filter((j) => j >= from && j < to).length / KEYS
      const fiveSecondBuckets = Array.from({ length: 6 }, (_, i) => share(i * 5_000, (i + 1) * 5_000))
      for (const bucket of fiveSecondBuckets) {
        expect(bucket, `5 s buckets ${fiveSecondBuckets.join(', ')}`).toBeGreaterThanOrEqual(0.1)
        expect(bucket, `5 s buckets ${fiveSecondBuckets.join(', ')}`).toBeLessThanOrEqual(0.25)
      }
      const busiestSecond = Math.max(
        ...Array.from({ length: 30 }, (_, s) => share(s * 1_000, (s + 1) * 1_000)),
      )
      expect(busiestSecond).toBeLessThanOrEqual(0.05)
    } finally {
      await cache.close()
    }
  })
})
