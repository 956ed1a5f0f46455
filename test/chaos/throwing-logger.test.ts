// A logger that throws must not leave an L2 call unsettled, nor escape a timer: every get still settles in time.
import { createCache, type Cache } from 'stratacache'
import { redisStore } from 'stratacache/redis'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { startRedis, type RedisServer } from '../helpers/redis-server.js'
import { outcome, timed, within } from './support.js'

let redis: RedisServer
const closers: (() => Promise<void>)[] = []
beforeAll(async () => {
  redis = await startRedis()
})
afterAll(async () => {
  await redis.stop()
})
afterEach(async () => {
  redis.resume()
  for (const close of closers.splice(0)) await close()
})

/** A logger that throws on every call, and counts the calls. */
function throwingLogger() {
  const calls = { count: 0 }
  const fail = () => {
    calls.count++
    throw new Error('the log pipe is broken')
  }
  return { calls, logger: { info: fail, warn: fail, error: fail } }
}

async function newCache(logger: ReturnType<typeof throwingLogger>['logger']): Promise<Cache> {
  const cache = createCache({
    service: 'throwing-logger',
    l2: redisStore({ url: redis.url }),
    timeouts: { l2: 100 },
    circuitBreaker: { failureThreshold: 3, breakFor: 10_000 },
    logger,
  })
  closers.push(() => cache.close())
  await cache.connect()
  return cache
}

const declare = (cache: Cache) =>
  cache.namespace('item', { key: 'i:{id}', ttl: '1m', l1: false, lock: false, load: ({ id }) => `v${id}` })

describe('a logger that throws', () => {
  it('while Redis is paused: the timeouts that open the circuit still settle every get (timer path)', async () => {
    const { calls, logger } = throwingLogger()
    const ns = declare(await newCache(logger))
    redis.pause()
    const reads = await Promise.all(
      Array.from({ length: 10 }, (_, id) => timed(() => within(ns.get({ id }), 1_000, `get ${id}`))),
    )
    expect(reads.map(outcome)).toEqual(Array.from({ length: 10 }, (_, id) => ({ resolvedWith: `v${id}` })))
    const more = await timed(() => within(ns.get({ id: 'after' }), 1_000, 'a get after the circuit opened'))
    expect(outcome(more)).toEqual({ resolvedWith: 'vafter' })
    expect(calls.count).toBeGreaterThan(0) // the circuit-open warning was attempted, and threw
  })

  it('while Redis is down: the failures that open the circuit still settle every get (rejection path)', async () => {
    const { calls, logger } = throwingLogger()
    const cache = await newCache(logger)
    const ns = declare(cache)
    await redis.kill()
    closers.push(() => redis.restart())
    const reads = []
    for (let id = 0; id < 6; id++) reads.push(await timed(() => within(ns.get({ id }), 1_000, `get ${id}`)))
    expect(reads.map(outcome)).toEqual(Array.from({ length: 6 }, (_, id) => ({ resolvedWith: `v${id}` })))
    expect(cache.stats().l2?.circuit).toBe('open')
    expect(calls.count).toBeGreaterThan(0)
  })
})
