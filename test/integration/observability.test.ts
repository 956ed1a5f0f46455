import diagnosticsChannel from 'node:diagnostics_channel'
import {
  createCache,
  quantileMs,
  tracingChannelNames,
  type Cache,
  type GetManyTraceContext,
  type GetTraceContext,
  type LoadTraceContext,
} from 'stratacache'
import { redisStore } from 'stratacache/redis'
import { describe, expect, it } from 'vitest'
import { startRedis } from '../helpers/redis-server.js'
import { redisSuite } from '../helpers/suite.js'
import { sleep } from '../chaos/support.js'

const suite = redisSuite()

function newCache(service: string): Cache {
  const cache = createCache({ service, l2: redisStore({ url: suite.redis.url }), random: () => 0 })
  suite.closers.push(() => cache.close())
  return cache
}

/** Records every event of a tracing channel as `event` plus a copy of the context at that moment. */
function recordTracing<C extends object>(name: string) {
  const events: { event: string; context: C }[] = []
  const handler = (event: string) => (context: unknown) => {
    events.push({ event, context: { ...(context as C) } })
  }
  const handlers = {
    start: handler('start'),
    end: handler('end'),
    asyncStart: handler('asyncStart'),
    asyncEnd: handler('asyncEnd'),
    error: handler('error'),
  }
  const channel = diagnosticsChannel.tracingChannel(name)
  channel.subscribe(handlers)
  suite.closers.push(() => Promise.resolve(channel.unsubscribe(handlers)))
  return events
}

describe('tracing channels around get and load', () => {
  it('publishes start, end, asyncStart, asyncEnd per get, with the tier that answered and no key or value', async () => {
    const gets = recordTracing<GetTraceContext>(tracingChannelNames.get)
    const loads = recordTracing<LoadTraceContext>(tracingChannelNames.load)
    const a = newCache('trace').namespace('user', { key: 'user:{id}', ttl: '1m', load: ({ id }) => ({ id }) })
    const b = newCache('trace').namespace('user', { key: 'user:{id}', ttl: '1m', load: ({ id }) => ({ id }) })

    await a.get({ id: 'u1' }) // miss: loads
    await a.get({ id: 'u1' }) // L1 hit
    await b.get({ id: 'u1' }) // L2 hit in another process

    const tiers = gets.filter((e) => e.event === 'asyncEnd').map((e) => e.context.tier)
    expect(tiers).toEqual(['source', 'l1', 'l2'])
    // Each get: start, end (the synchronous part), then asyncStart and asyncEnd once it settles.
    expect(gets.map((e) => e.event)).toEqual(Array(3).fill(['start', 'end', 'asyncStart', 'asyncEnd']).flat())
    for (const { context } of gets) {
      expect(Object.keys(context).sort()).toEqual(
        context.result === undefined
          ? ['namespace', 'service', 'tier']
          : ['namespace', 'result', 'service', 'tier'],
      )
      expect(context.namespace).toBe('user')
    }
    expect(loads.map((e) => e.event)).toEqual(['start', 'end', 'asyncStart', 'asyncEnd'])
    expect(loads[0]!.context).toEqual({ service: 'trace', namespace: 'user', keys: 1 })
  })

  it('publishes error for a failed get and a failed load', async () => {
    const gets = recordTracing<GetTraceContext>(tracingChannelNames.get)
    const loads = recordTracing<LoadTraceContext>(tracingChannelNames.load)
    const ns = newCache('trace-error').namespace('user', {
      key: 'user:{id}',
      ttl: '1m',
      load: (): never => {
        throw new Error('db down')
      },
    })
    await expect(ns.get({ id: 1 })).rejects.toMatchObject({ code: 'ERR_STRATA_LOADER_FAILED' })
    expect(gets.map((e) => e.event)).toEqual(['start', 'end', 'error', 'asyncStart', 'asyncEnd'])
    expect(gets.at(-1)!.context).toMatchObject({
      tier: undefined,
      error: { code: 'ERR_STRATA_LOADER_FAILED' },
    })
    expect(loads.map((e) => e.event)).toEqual(['start', 'end', 'error', 'asyncStart', 'asyncEnd'])
    expect((loads.at(-1)!.context.error as Error).message).toBe('db down')
  })
})

describe('the tracing channel around getMany', () => {
  it('publishes one start … asyncEnd per getMany, with the number of keys asked and no key or value', async () => {
    const batches = recordTracing<GetManyTraceContext>(tracingChannelNames.getMany)
    const gets = recordTracing<GetTraceContext>(tracingChannelNames.get)
    const ns = newCache('trace-many').namespace('user', {
      key: 'user:{id}',
      ttl: '1m',
      load: ({ id }) => ({ id }),
    })
    expect(await ns.getMany([{ id: 'u1' }, { id: 'u2' }, { id: 'u1' }])).toHaveLength(3)
    expect(batches.map((e) => e.event)).toEqual(['start', 'end', 'asyncStart', 'asyncEnd'])
    expect(batches[0]!.context).toEqual({ service: 'trace-many', namespace: 'user', keys: 3 })
    expect(JSON.stringify(batches.map((e) => ({ ...e.context, result: undefined })))).not.toMatch(/u1|u2/)
    expect(gets).toEqual([])
  })
})

describe('latency histograms', () => {
  it('counts every read by outcome, loads, and the miss penalty over a scripted workload', async () => {
    const cache = newCache('latency')
    const ns = cache.namespace('user', {
      key: 'user:{id}',
      ttl: '1m',
      load: async ({ id }) => {
        await sleep(20)
        return { id }
      },
    })
    const other = newCache('latency').namespace('user', {
      key: 'user:{id}',
      ttl: '1m',
      load: ({ id }) => ({ id }),
    })
    for (let id = 0; id < 3; id++) await ns.get({ id }) // 3 misses
    for (let i = 0; i < 5; i++) await ns.get({ id: 1 }) // 5 L1 hits
    await other.get({ id: 0 }) // 2 L2 hits in the other cache
    await other.get({ id: 2 })

    const { latencyMs, missPenaltyMs } = ns.stats()
    expect(latencyMs.load.count).toBe(3)
    expect(latencyMs.miss.count).toBe(3)
    expect(latencyMs.l2Hit.count).toBe(0)
    expect(latencyMs.read.count).toBe(8)
    expect(latencyMs.read.counts[0]).toBe(5)
    // The loader sleeps 20 ms: every miss and load lands in a bucket above 10 ms.
    const above10 = (h: typeof latencyMs.miss) =>
      h.counts.reduce((n, c, i) => n + (h.bucketsMs[i]! > 10 ? c : 0), 0)
    expect(above10(latencyMs.miss)).toBe(3)
    expect(above10(latencyMs.load)).toBe(3)
    expect(missPenaltyMs).toBeGreaterThanOrEqual(20)
    expect(quantileMs(latencyMs.read, 0.5)).toBe(0.05)
    expect(quantileMs(latencyMs.read, 0.99)).toBeGreaterThanOrEqual(25)
    expect(other.stats().latencyMs).toMatchObject({ l2Hit: { count: 2 }, miss: { count: 0 } })
    // Every L2 call settled and was timed (background writes after a load may still be finishing: wait for them).
    await expect.poll(() => cache.stats().l2!.calls - cache.stats().l2!.latencyMs.count).toBe(0)
    const l2 = cache.stats().l2!
    expect(l2.calls).toBeGreaterThan(0)
    expect(l2).toMatchObject({ failures: 0, timeouts: 0, refused: 0 })
  })

  it('counts L2 timeouts and refusals separately while Redis is paused', async () => {
    const own = await startRedis()
    try {
      const cache = createCache({
        service: 'latency-paused',
        l2: redisStore({ url: own.url }),
        circuitBreaker: { failureThreshold: 2, breakFor: '1m' },
      })
      suite.closers.push(() => cache.close())
      const ns = cache.namespace('user', { key: 'user:{id}', ttl: '1m', load: ({ id }) => ({ id }) })
      await cache.connect()
      await ns.get({ id: 0 })
      own.pause()
      for (let id = 1; id < 5; id++) await ns.get({ id })
      const l2 = cache.stats().l2!
      expect(l2.timeouts).toBeGreaterThanOrEqual(2)
      expect(l2.refused).toBeGreaterThanOrEqual(1)
      // Every call counted once it settled: a call still pending (a load's fill of L2, sent in the background after
      // the get resolved) is in `calls` only until its timeout settles it.
      await expect
        .poll(() => {
          const now = cache.stats().l2!
          return now.calls - (now.latencyMs.count + now.timeouts + now.refused)
        })
        .toBe(0)
      own.resume()
    } finally {
      await own.stop()
    }
  })
})

describe('reads per label set', () => {
  it('counts reads per tenant and region, caps the sets, and folds the rest and failures into _other', async () => {
    const cache = newCache('labels')
    await cache.connect() // so that the first load is stored in L2 for the other cache's read below
    const ns = cache.namespace('product', {
      key: 'tenant:{tenantId}:product:{id}',
      ttl: '1m',
      dimensions: ['region'],
      load: ({ id }) => ({ id }),
      labels: ({ tenantId, region }) => {
        if (tenantId === 'broken') throw new Error('labels failed')
        return { tenant: String(tenantId), region: String(region) }
      },
      maxLabelSets: 2,
    })
    await ns.get({ tenantId: 't1', region: 'eu', id: 1 }) // miss
    await ns.get({ tenantId: 't1', region: 'eu', id: 1 }) // L1 hit
    await ns.getMany([
      { tenantId: 't2', region: 'us', id: 1 }, // miss
      { tenantId: 't1', region: 'eu', id: 1 }, // L1 hit
    ])
    await ns.get({ tenantId: 't3', region: 'eu', id: 1 }) // over the cap: _other
    await ns.get({ tenantId: 'broken', region: 'eu', id: 1 }) // labels throw: _other, the read still answers
    const other = newCache('labels').namespace('product', {
      key: 'tenant:{tenantId}:product:{id}',
      ttl: '1m',
      dimensions: ['region'],
      load: ({ id }) => ({ id }),
      labels: ({ tenantId }) => ({ tenant: String(tenantId) }),
    })
    // The load's L2 store runs in the background: wait for it to land.
    const stored = ns.key({ tenantId: 't1', region: 'eu', id: 1 })
    await expect.poll(() => suite.redis.command('EXISTS', stored)).toBe(':1\r\n')
    await other.get({ tenantId: 't1', region: 'eu', id: 1 }) // L2 hit
    expect(ns.stats().byLabels).toEqual([
      { labels: { tenant: 't1', region: 'eu', endpoint: '' }, l1Hits: 2, l2Hits: 0, misses: 1 },
      { labels: { tenant: 't2', region: 'us', endpoint: '' }, l1Hits: 0, l2Hits: 0, misses: 1 },
      { labels: { tenant: '_other', region: '_other', endpoint: '_other' }, l1Hits: 0, l2Hits: 0, misses: 2 },
    ])
    expect(other.stats().byLabels).toEqual([
      { labels: { tenant: 't1', region: '', endpoint: '' }, l1Hits: 0, l2Hits: 1, misses: 0 },
    ])
    expect(newCache('labels-none').namespace('x', { key: 'x:{id}', ttl: '1m' }).stats().byLabels).toEqual([])
  })
})

describe('stale serves by reason', () => {
  it('counts an L1 entry served while revalidated after a bus outage as busOutage, not swr', async () => {
    const own = await startRedis()
    try {
      const cache = createCache({ service: 'stale-bus', l2: redisStore({ url: own.url }) })
      suite.closers.push(() => cache.close())
      let loads = 0
      const ns = cache.namespace('price', {
        key: 'price:{id}',
        ttl: '1m',
        staleFor: '1m',
        load: ({ id }) => ({ id, n: ++loads }),
      })
      await cache.connect()
      await ns.get({ id: 1 })
      await expect.poll(() => cache.stats().bus?.subscribed).toBe(true)
      await own.command('CLIENT', 'KILL', 'TYPE', 'pubsub')
      await expect.poll(() => cache.stats().bus?.reconnects, { timeout: 5_000 }).toBe(1)
      // Suspect now: answered from L1 at once, revalidated in the background.
      expect(await ns.get({ id: 1 })).toEqual({ id: 1, n: 1 })
      expect(ns.stats().staleServed).toEqual({ swr: 0, failSafe: 0, softTimeout: 0, busOutage: 1 })
      expect(ns.stats().l1Hits).toBe(1)
    } finally {
      await own.stop()
    }
  })
})
