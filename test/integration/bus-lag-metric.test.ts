// `bus_lag_max_seconds` reports invalidation lag: a receiver kept busy while a message waits on its socket shows
// that wait, in seconds, and a later quick message does not lower the maximum. Per namespace, the lag of every
// message is a histogram (`latencyMs.invalidation`, `invalidation_lag_seconds`).
import { Registry } from 'prom-client'
import { createCache, type Cache } from 'stratacache'
import { prometheusMetrics } from 'stratacache/prometheus'
import { redisStore } from 'stratacache/redis'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { startRedis, type RedisServer } from '../helpers/redis-server.js'

let redis: RedisServer
const closers: (() => Promise<unknown> | void)[] = []
beforeAll(async () => {
  redis = await startRedis()
})
afterAll(async () => {
  await redis.stop()
})
afterEach(async () => {
  for (const close of closers.splice(0)) await close()
})

async function process(): Promise<{ cache: Cache; ns: ReturnType<typeof declare> }> {
  // One service: both caches are processes of it, sharing its keys and its bus channel.
  const cache = createCache({ service: 'lag', l2: redisStore({ url: redis.url }) })
  closers.push(() => cache.close())
  const ns = declare(cache)
  await cache.connect()
  await expect.poll(() => cache.stats().bus?.subscribed).toBe(true)
  return { cache, ns }
}
const declare = (cache: Cache) =>
  cache.namespace('item', { key: 'item:{id}', ttl: '1h', load: ({ id }) => ({ id: String(id) }) })

/** The value of `stratacache_bus_lag_max_seconds` in one scrape. */
async function lagMax(registry: Registry): Promise<number> {
  const line = (await registry.metrics())
    .split('\n')
    .find((l) => l.startsWith('stratacache_bus_lag_max_seconds{'))
  expect(line).toBeDefined()
  return Number(line!.slice(line!.lastIndexOf(' ') + 1))
}

/** Blocks the event loop: the receiver cannot read its socket meanwhile, so the message waits there. */
function busyFor(ms: number): void {
  const until = performance.now() + ms
  while (performance.now() < until) {
    // Busy: the point is to not yield.
  }
}

describe('bus_lag_max_seconds', () => {
  it('reports the time an invalidation took from publish to applied, in seconds, and keeps its maximum', async () => {
    const a = await process()
    const b = await process()
    const registry = new Registry()
    const metrics = prometheusMetrics(b.cache, { registry })
    closers.unshift(() => metrics.unregister())
    expect(await lagMax(registry)).toBe(0)

    await a.ns.set({ id: 1 }, { id: 'one' }) // published once set resolves: the message is on its way to b
    busyFor(300)
    await expect.poll(() => b.cache.stats().bus?.received).toBe(1)
    const slow = await lagMax(registry)
    expect(slow).toBeGreaterThanOrEqual(0.29)
    expect(slow).toBeLessThan(5)
    expect(slow).toBeCloseTo(b.cache.stats().bus!.lagMs.max / 1_000, 6)

    await a.ns.set({ id: 2 }, { id: 'two' }) // a quick one: the last lag is small, the maximum stays
    await expect.poll(() => b.cache.stats().bus?.received).toBe(2)
    expect(b.cache.stats().bus!.lagMs.last).toBeLessThan(b.cache.stats().bus!.lagMs.max)
    expect(await lagMax(registry)).toBe(slow)
  })

  it('per namespace: latencyMs.invalidation and invalidation_lag_seconds count each message naming it, by lag', async () => {
    const a = await process()
    const b = await process()
    const otherA = a.cache.namespace('other', { key: 'o:{id}', ttl: '1h' })
    b.cache.namespace('other', { key: 'o:{id}', ttl: '1h' })
    const registry = new Registry()
    const metrics = prometheusMetrics(b.cache, { registry })
    closers.unshift(() => metrics.unregister())

    await a.ns.set({ id: 1 }, { id: 'one' })
    busyFor(300) // this message waits on b's socket: its lag is at least 300 ms
    await a.ns.delete({ id: 2 })
    await otherA.set({ id: 1 }, 'x')
    await expect.poll(() => b.cache.stats().bus?.received).toBe(3)

    const item = b.cache.stats().namespaces.item!.latencyMs.invalidation
    expect(item.count).toBe(2)
    expect(item.sumMs).toBeGreaterThanOrEqual(290)
    expect(b.cache.stats().namespaces.other!.latencyMs.invalidation.count).toBe(1)
    // The sender counts none: it ignores its own messages.
    expect(a.cache.stats().namespaces.item!.latencyMs.invalidation.count).toBe(0)

    const text = await registry.metrics()
    const count = (namespace: string) =>
      Number(
        text
          .split('\n')
          .find(
            (l) =>
              l.startsWith('stratacache_invalidation_lag_seconds_count{') &&
              l.includes(`cache_namespace="${namespace}"`),
          )
          ?.split(' ')
          .at(-1),
      )
    expect(count('item')).toBe(2)
    expect(count('other')).toBe(1)
    const sum = text
      .split('\n')
      .find(
        (l) =>
          l.startsWith('stratacache_invalidation_lag_seconds_sum{') && l.includes('cache_namespace="item"'),
      )
    expect(Number(sum!.split(' ').at(-1))).toBeCloseTo(item.sumMs / 1_000, 6)
  })
})
