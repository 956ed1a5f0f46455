// Several regions, one real redis-server each: writes and invalidations relayed between them through the outbox
// streams, coherence of every process's L1, duplicates, order per key.
import { createCache, type Cache, type CacheOptions } from 'stratacache'
import { redisStore } from 'stratacache/redis'
import { createClient } from 'redis'
import { Registry } from 'prom-client'
import { MeterProvider, MetricReader } from '@opentelemetry/sdk-metrics'
import { prometheusMetrics } from 'stratacache/prometheus'
import { openTelemetry } from 'stratacache/opentelemetry'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { blockedBetween, watchStalls } from '../chaos/support.js'
import { fakeClock, type FakeClock } from '../helpers/fake-clock.js'
import { startRedis, type RedisServer } from '../helpers/redis-server.js'

const SERVICE = 'geo'
const REGIONS = ['eu', 'us', 'ap'] as const
type Region = (typeof REGIONS)[number]
const servers = {} as Record<Region, RedisServer>
const caches: Cache[] = []

beforeAll(async () => {
  for (const region of REGIONS) servers[region] = await startRedis()
})
afterAll(async () => {
  for (const region of REGIONS) await servers[region].stop()
})
afterEach(async () => {
  await Promise.all(caches.splice(0).map((cache) => cache.close()))
  for (const region of REGIONS) await servers[region].command('FLUSHALL')
})

/** The source of truth every region reads: one store, as a globally replicated database would be. */
function source() {
  const rows = new Map<string, { v: number }>()
  let loads = 0
  return {
    rows,
    get loads() {
      return loads
    },
    read(id: string) {
      loads++
      return rows.get(id) ?? { v: 0 }
    },
  }
}

/** A process of `region`: its own cache on its region's Redis, the others as peers. */
function proc(
  region: Region,
  db: ReturnType<typeof source>,
  options: { relay?: boolean; regions?: readonly Region[]; extra?: Partial<CacheOptions> } = {},
) {
  const regions = options.regions ?? ['eu', 'us']
  const cache = createCache({
    service: SERVICE,
    logger: false,
    l2: redisStore({ url: servers[region].url }),
    region,
    regions: {
      peers: regions
        .filter((peer) => peer !== region)
        .map((peer) => ({ region: peer, l2: redisStore({ url: servers[peer].url }) })),
      heartbeat: '50ms',
      // Generous for a loaded CI machine: a split is not what these tests are about (test/chaos/region-split.test.ts).
      splitAfter: '2s',
      relay: options.relay ?? true,
    },
    // The same: an L2 call timing out under load would count as a relay error or a miss, which these tests do not test.
    timeouts: { l2: '2s' },
    ...options.extra,
  })
  caches.push(cache)
  const item = cache.namespace('item', {
    key: 'item:{id}',
    params: { id: 'string' },
    ttl: '1h',
    tags: ({ id }) => [`group:${id.slice(0, 1)}`],
    load: ({ id }) => db.read(id),
    write: ({ id }, value) => void db.rows.set(id, value),
    writeStrategy: 'write-through',
  })
  return { cache, item }
}

/**
 * Waits until `check` holds (polled every 10 ms), failing after `ms`. Resolves with the time it took while this
 * process could run: a blocked event loop (GC, a starved process on a busy machine) delays every poll and every
 * relay step by as much, and is left out (see `blockedBetween`).
 */
async function until(check: () => Promise<boolean> | boolean, ms = 3_000): Promise<number> {
  watchStalls()
  const started = performance.now()
  while (!(await check())) {
    if (performance.now() - started > ms) throw new Error(`not within ${ms} ms`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
  return performance.now() - started - blockedBetween(started)
}

async function rawGet(region: Region, key: string): Promise<string> {
  return servers[region].command('EXISTS', key)
}

/**
 * A namespace of `cache` whose entries go stale a minute after their load (on the cache's clock), then answer stale for an
 * hour: one read, `clock.advance(60_000)`, and the next read is a stale serve (`swr`).
 */
function staleFeed(cache: Cache) {
  let version = 0
  return cache.namespace('feed', {
    key: 'feed:{id}',
    params: { id: 'string' },
    ttl: '1m',
    jitter: 0,
    staleFor: '1h',
    load: () => ({ v: ++version }),
  })
}

/** An in-memory metric reader (as in opentelemetry.test.ts): `collect()` when the test asks. */
class TestReader extends MetricReader {
  protected onForceFlush(): Promise<void> {
    return Promise.resolve()
  }
  protected onShutdown(): Promise<void> {
    return Promise.resolve()
  }
}

/** The stale-serve counts after `serveStale`, per namespace and reason, in the order both exporters list them. */
const STALE_SERVES = (['item', 'feed'] as const).flatMap((namespace) =>
  (['swr', 'fail_safe', 'soft_timeout', 'bus_outage'] as const).map(
    (reason) => [namespace, reason, namespace === 'feed' && reason === 'swr' ? 1 : 0] as const,
  ),
)

/** One stale serve in namespace `feed`: read once, past the TTL (inside the stale window), read again. */
async function serveStale(feed: ReturnType<typeof staleFeed>, clock: FakeClock): Promise<void> {
  expect(await feed.get({ id: 'f1' })).toEqual({ v: 1 })
  clock.advance(60_000)
  expect(await feed.get({ id: 'f1' })).toEqual({ v: 1 })
  expect(feed.stats().staleServed.swr).toBe(1)
}

describe('regions: the relay', () => {
  it('relays a delete to the other region: its L2 loses the entry and every process there drops its L1 copy', async () => {
    const db = source()
    const eu = proc('eu', db)
    const us1 = proc('us', db)
    const us2 = proc('us', db, { relay: false })
    await Promise.all([eu.cache.connect(), us1.cache.connect(), us2.cache.connect()])
    db.rows.set('a1', { v: 1 })
    expect(await us1.item.get({ id: 'a1' })).toEqual({ v: 1 })
    expect(await us2.item.get({ id: 'a1' })).toEqual({ v: 1 })
    const key = us1.item.key({ id: 'a1' })
    expect(await rawGet('us', key)).toBe(':1\r\n')

    db.rows.set('a1', { v: 2 })
    await eu.item.delete({ id: 'a1' })
    // us2 does not relay: its L1 copy goes only through its region's bus.
    await until(async () => (await rawGet('us', key)) === ':0\r\n')
    await until(async () => (await us2.item.get({ id: 'a1' })).v === 2)
    expect(await us1.item.get({ id: 'a1' })).toEqual({ v: 2 })
    const stats = us1.cache.stats().regions!
    expect(stats.relaying).toBe(true)
    expect(stats.peers.eu!.relayed).toBeGreaterThan(0)
    expect(stats.peers.eu!.split).toBe(false)
    expect(eu.cache.stats().regions!.outbox.appended).toBeGreaterThanOrEqual(1)
  })

  it('relays a write-through write: the other region drops its copy and reads the new value', async () => {
    const db = source()
    const eu = proc('eu', db)
    const us = proc('us', db)
    await Promise.all([eu.cache.connect(), us.cache.connect()])
    expect(await us.item.get({ id: 'w1' })).toEqual({ v: 0 })
    await eu.item.write({ id: 'w1' }, { v: 7 })
    const ms = await until(async () => (await us.item.get({ id: 'w1' })).v === 7)
    expect(ms).toBeLessThan(1_000)
    // The eu region's own L2 holds the written value; the us region loaded it from the source.
    expect(await eu.item.peek({ id: 'w1' })).toEqual({ v: 7 })
  })

  it('relays invalidateTag, clear and invalidateAll to the other region', async () => {
    const db = source()
    const eu = proc('eu', db)
    const us = proc('us', db)
    await Promise.all([eu.cache.connect(), us.cache.connect()])
    for (const id of ['t1', 't2', 'u1']) db.rows.set(id, { v: 1 })
    for (const id of ['t1', 't2', 'u1']) await us.item.get({ id })
    for (const id of ['t1', 't2', 'u1']) db.rows.set(id, { v: 2 })

    await eu.item.invalidateTag('group:t')
    await until(async () => (await us.item.get({ id: 't1' })).v === 2)
    expect(await us.item.get({ id: 't2' })).toEqual({ v: 2 })
    // Not tagged group:t: untouched.
    expect(await us.item.get({ id: 'u1' })).toEqual({ v: 1 })

    await eu.item.clear()
    await until(async () => (await us.item.get({ id: 'u1' })).v === 2)

    db.rows.set('u1', { v: 3 })
    const generation = async () =>
      Number((await servers.us.command('GET', `${SERVICE}:item:v1#gen`)).split('\r\n')[1] ?? 0)
    const before = await generation()
    await eu.item.invalidateAll()
    await until(async () => (await us.item.get({ id: 'u1' })).v === 3)
    // The us region moves to a generation of its own (INCR there), never back. Polled: the relayed invalidateAll drops
    // the us process's L1 before its INCR is answered, so a read may load the new value from the source first.
    await until(async () => (await generation()) > before)
  })

  it('relays to every other region when there are three', async () => {
    const db = source()
    const all = ['eu', 'us', 'ap'] as const
    const eu = proc('eu', db, { regions: all })
    const us = proc('us', db, { regions: all })
    const ap = proc('ap', db, { regions: all })
    await Promise.all([eu.cache.connect(), us.cache.connect(), ap.cache.connect()])
    db.rows.set('x', { v: 1 })
    await us.item.get({ id: 'x' })
    await ap.item.get({ id: 'x' })
    db.rows.set('x', { v: 2 })
    await eu.item.delete({ id: 'x' })
    await until(async () => (await us.item.get({ id: 'x' })).v === 2)
    await until(async () => (await ap.item.get({ id: 'x' })).v === 2)
    // And back: a write in ap reaches eu and us.
    await eu.item.get({ id: 'x' })
    await ap.item.write({ id: 'x' }, { v: 3 })
    await until(async () => (await eu.item.get({ id: 'x' })).v === 3)
    await until(async () => (await us.item.get({ id: 'x' })).v === 3)
  })

  it('applies a duplicate delivery harmlessly: versions only move forward and the value read stays right', async () => {
    const db = source()
    const eu = proc('eu', db)
    const us = proc('us', db)
    await Promise.all([eu.cache.connect(), us.cache.connect()])
    db.rows.set('d1', { v: 1 })
    await us.item.get({ id: 'd1' })
    db.rows.set('d1', { v: 2 })
    await eu.item.delete({ id: 'd1' })
    await until(async () => (await us.item.get({ id: 'd1' })).v === 2)
    const key = us.item.key({ id: 'd1' })
    const version = async () => Number((await servers.us.command('GET', `${key}#v`)).split('\r\n')[1])
    const v1 = await version()
    const relayedBefore = us.cache.stats().regions!.peers.eu!.relayed

    // The same entry delivered again (a relay that died after applying, before acknowledging): append a copy.
    const outbox = `${SERVICE}#outbox{${SERVICE}.regions.eu}:us`
    const client = createClient({ url: servers.eu.url })
    await client.connect()
    try {
      const fields = {
        v: '1',
        r: 'eu',
        t: String(Date.now()),
        k: 'keys',
        n: 'item',
        x: JSON.stringify(['item:d1']),
      }
      await client.xAdd(outbox, '*', fields)
      await client.xAdd(outbox, '*', fields)
    } finally {
      await client.quit()
    }
    await until(() => us.cache.stats().regions!.peers.eu!.relayed >= relayedBefore + 2)
    expect(await version()).toBeGreaterThan(v1)
    expect(await us.item.get({ id: 'd1' })).toEqual({ v: 2 })
    expect(us.cache.stats().regions!.errors).toBe(0)
    // Acknowledged and deleted: nothing is left for the us region.
    await until(async () => (await servers.eu.command('XLEN', outbox)) === ':0\r\n')
  })

  it('skips and counts an outbox entry it cannot read, and goes on with the next', async () => {
    const db = source()
    const eu = proc('eu', db)
    const us = proc('us', db)
    await Promise.all([eu.cache.connect(), us.cache.connect()])
    db.rows.set('g1', { v: 1 })
    await us.item.get({ id: 'g1' })
    const client = createClient({ url: servers.eu.url })
    await client.connect()
    try {
      const outbox = `${SERVICE}#outbox{${SERVICE}.regions.eu}:us`
      await client.xAdd(outbox, '*', { v: '9', garbage: 'yes' })
      // Well-formed, but a tag no namespace accepts (a lone surrogate): skipped rather than retried for ever.
      const head = { v: '1', r: 'eu', t: String(Date.now()), n: 'item' }
      await client.xAdd(outbox, '*', { ...head, k: 'tags', x: '["\\ud800"]' })
      // A namespace this process does not declare.
      await client.xAdd(outbox, '*', { ...head, n: 'other', k: 'clear' })
    } finally {
      await client.quit()
    }
    db.rows.set('g1', { v: 2 })
    await eu.item.delete({ id: 'g1' })
    await until(async () => (await us.item.get({ id: 'g1' })).v === 2)
    expect(us.cache.stats().regions!.skipped).toBe(3)
    expect(us.cache.stats().regions!.errors).toBe(0)
  })

  it("keeps a key's order: invalidations reach the other region's bus in the order they were made", async () => {
    const db = source()
    const eu = proc('eu', db)
    const us = proc('us', db)
    await Promise.all([eu.cache.connect(), us.cache.connect()])
    const seen: string[] = []
    const subscriber = createClient({ url: servers.us.url })
    await subscriber.connect()
    await subscriber.subscribe(`${SERVICE}#bus`, (message) => {
      const parsed = JSON.parse(message) as { k: string; x?: string[] }
      if (parsed.k === 'keys') seen.push(...parsed.x!)
    })
    try {
      const ids = Array.from({ length: 30 }, (_, i) => `o${i % 3}`)
      for (const [i, id] of ids.entries()) await eu.item.set({ id }, { v: i })
      await until(() => seen.length >= ids.length)
      expect(seen).toEqual(ids.map((id) => us.item.key({ id })))
    } finally {
      await subscriber.quit()
    }
  })

  it('takes over entries a relay took and never acknowledged, when that relay is gone', async () => {
    const db = source()
    const eu = proc('eu', db)
    await eu.cache.connect()
    // A relay that read an entry and died: read through the group by hand, without acknowledging.
    const outbox = `${SERVICE}#outbox{${SERVICE}.regions.eu}:us`
    db.rows.set('p1', { v: 1 })
    const client = createClient({ url: servers.eu.url })
    await client.connect()
    try {
      await client.xGroupCreate(outbox, 'relay', '0', { MKSTREAM: true })
      await eu.item.delete({ id: 'p1' })
      const read = await client.xReadGroup('relay', 'dead-relay', { key: outbox, id: '>' }, { COUNT: 100 })
      expect(read?.[0]?.messages.length).toBeGreaterThan(0)
    } finally {
      await client.quit()
    }
    // Meanwhile the us region cached the old value; then its relay starts.
    await servers.us.command('SET', `${SERVICE}:item:v1:item:p1`, 'stale')
    const us = proc('us', db)
    await us.cache.connect()
    expect(us.item.key({ id: 'p1' })).toBe(`${SERVICE}:item:v1:item:p1`)
    await until(async () => (await servers.eu.command('XPENDING', outbox, 'relay')).startsWith('*4\r\n:0'))
    expect(await rawGet('us', us.item.key({ id: 'p1' }))).toBe(':0\r\n')
  })

  it('exports relay lag and split state per region pair in stats() and Prometheus, labelled with the region', async () => {
    const db = source()
    const eu = proc('eu', db)
    const us = proc('us', db)
    await Promise.all([eu.cache.connect(), us.cache.connect()])
    await eu.item.delete({ id: 'm' })
    // The relay counts an entry as relayed before it counts the backlog left (one more round trip): wait for both.
    await until(() => {
      const eu = us.cache.stats().regions!.peers.eu!
      return eu.relayed >= 2 && eu.backlog !== undefined
    })
    const peer = us.cache.stats().regions!.peers.eu!
    expect(peer).toMatchObject({ region: 'eu', split: false, splits: 0 })
    // A snapshot: at most the heartbeat appended since the relay's last read.
    expect(peer.backlog).toBeLessThanOrEqual(1)
    expect(peer.lagMs.max).toBeGreaterThanOrEqual(peer.lagMs.last)
    expect(peer.heardAgoMs).toBeLessThan(2_000)
    const registry = new Registry()
    const metrics = prometheusMetrics(us.cache, { registry })
    try {
      const text = await registry.metrics()
      expect(text).toMatch(
        /stratacache_region_relay_lag_seconds\{cache="geo",region="us",peer_region="eu"\} [0-9.e-]+/,
      )
      expect(text).toContain('stratacache_region_split{cache="geo",region="us",peer_region="eu"} 0')
      expect(text).toMatch(
        /stratacache_region_backlog_entries\{cache="geo",region="us",peer_region="eu"\} [01]\n/,
      )
      expect(text).toMatch(
        /stratacache_region_relayed_total\{cache="geo",region="us",peer_region="eu"\} [1-9]/,
      )
      expect(text).toContain(
        'stratacache_region_split_reads_total{cache="geo",cache_namespace="item",region="us",outcome="refused"} 0',
      )
    } finally {
      metrics.unregister()
    }
  })

  it('labels stale serves with the region in Prometheus, as the relay metrics are', async () => {
    const clock = fakeClock()
    const us = proc('us', source(), { extra: { clock } })
    const feed = staleFeed(us.cache)
    await us.cache.connect()
    await serveStale(feed, clock)
    const registry = new Registry()
    const metrics = prometheusMetrics(us.cache, { registry })
    try {
      const lines = (await registry.metrics())
        .split('\n')
        .filter((line) => line.startsWith('stratacache_stale_'))
      const at = (namespace: string, reason: string, value: number) =>
        `stratacache_stale_served_total{cache="geo",cache_namespace="${namespace}",region="us",reason="${reason}"} ${value}`
      expect(lines).toEqual(STALE_SERVES.map(([namespace, reason, value]) => at(namespace, reason, value)))
    } finally {
      metrics.unregister()
    }
  })

  it('puts the region on the OpenTelemetry stale serves and relay lag, as on the other region instruments', async () => {
    const clock = fakeClock()
    const db = source()
    const eu = proc('eu', db, { extra: { clock } })
    const us = proc('us', db, { extra: { clock } })
    const feed = staleFeed(us.cache)
    const reader = new TestReader()
    const meterProvider = new MeterProvider({ readers: [reader] })
    const telemetry = openTelemetry(us.cache, { meter: meterProvider.getMeter('test'), spans: false })
    try {
      await Promise.all([eu.cache.connect(), us.cache.connect()])
      await eu.item.delete({ id: 'm' })
      await until(() => us.cache.stats().regions!.peers.eu!.relayed >= 2)
      await serveStale(feed, clock)
      const { resourceMetrics } = await reader.collect()
      const points = (name: string) =>
        resourceMetrics.scopeMetrics
          .flatMap((scope) => scope.metrics)
          .filter((metric) => metric.descriptor.name === name)
          .flatMap((metric) => metric.dataPoints.map(({ attributes, value }) => ({ attributes, value })))
      const service = { 'stratacache.service': 'geo' }
      const stale = (namespace: string, reason: string, value: number) => ({
        attributes: {
          ...service,
          'stratacache.namespace': namespace,
          'stratacache.region': 'us',
          'stratacache.reason': reason,
        },
        value,
      })
      expect(points('stratacache.stale_served')).toEqual(
        STALE_SERVES.map(([namespace, reason, value]) => stale(namespace, reason, value)),
      )
      const pair = { ...service, 'stratacache.region': 'us', 'stratacache.peer_region': 'eu' }
      expect(points('stratacache.region.relay_lag')).toEqual([
        { attributes: pair, value: expect.any(Number) as unknown },
      ])
      expect(points('stratacache.region.split').map((p) => p.attributes)).toEqual([pair])
      expect(points('stratacache.region.split_reads').map((p) => p.attributes)).toEqual(
        ['item', 'feed'].flatMap((namespace) =>
          ['refused', 'served'].map((outcome) => ({
            ...service,
            'stratacache.namespace': namespace,
            'stratacache.region': 'us',
            'stratacache.outcome': outcome,
          })),
        ),
      )
    } finally {
      telemetry.stop()
      await meterProvider.shutdown()
    }
  })

  it("warns when a bounded namespace's bound is under three heartbeats", async () => {
    const warnings: string[] = []
    const cache = createCache({
      service: 'warn',
      logger: { info: () => {}, warn: (_fields, message) => warnings.push(message), error: () => {} },
      l2: redisStore({ url: servers.eu.url }),
      region: 'eu',
      regions: { peers: [{ region: 'us', l2: redisStore({ url: servers.us.url }) }], heartbeat: '1s' },
    })
    caches.push(cache)
    cache.namespace('wide', {
      key: 'w:{id}',
      ttl: '1m',
      consistency: 'bounded',
      maxStaleness: '10s',
      load: () => 1,
    })
    expect(warnings).toEqual([])
    cache.namespace('tight', {
      key: 't:{id}',
      ttl: '1m',
      consistency: 'bounded',
      maxStaleness: '2s',
      load: () => 1,
    })
    expect(warnings).toHaveLength(1)
    expect(warnings[0]).toMatch(/"tight".*regions\.heartbeat/)
    await cache.connect()
  })

  it('refuses region options that cannot work, naming the option', () => {
    const l2 = redisStore({ url: servers.eu.url })
    expect(() => createCache({ service: 's', l2, region: 'eu' })).toThrow(/regions/)
    expect(() =>
      createCache({ service: 's', l2, region: 'eu', regions: { peers: [], heartbat: '1s' } } as never),
    ).toThrow(/heartbeat/)
    expect(() => createCache({ service: 's', l2, region: 'eu', regions: { peers: [] } })).toThrow(
      /regions.peers/,
    )
    expect(() =>
      createCache({ service: 's', l2, region: 'eu', regions: { peers: [{ region: 'eu', l2 }] } }),
    ).toThrow(/other than this one/)
    expect(() =>
      createCache({
        service: 's',
        l2,
        region: 'eu',
        regions: { peers: [{ region: 'us', l2 }], heartbeat: '1s', splitAfter: '1s' },
      }),
    ).toThrow(/twice regions.heartbeat/)
    expect(() =>
      createCache({ service: 's', region: 'eu', regions: { peers: [{ region: 'us', l2 }] } }),
    ).toThrow(/L2 store/)
  })
})
