// The Prometheus exporter: a scripted workload against a real Redis, then a scrape, parsed and checked exactly;
// several caches in one registry, unregistering, and the naming conventions of every metric.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { open } from 'lmdb'
import { Counter, register as defaultRegistry, Registry } from 'prom-client'
import { createCache, type Cache } from 'stratacache'
import { diskStore } from 'stratacache/disk'
import { prometheusMetrics } from 'stratacache/prometheus'
import { redisStore } from 'stratacache/redis'
import { afterEach, describe, expect, inject, it } from 'vitest'

const caches: Cache[] = []
const dirs: string[] = []
afterEach(async () => {
  await Promise.all(caches.splice(0).map((c) => c.close()))
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true })
})

/** A fresh directory for a disk store (one host's disk). */
function diskDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'strata-prom-disk-'))
  dirs.push(dir)
  return dir
}

/** Writes bytes that are no disk-store record under `key`, as another program sharing the files would. */
async function plantForeign(path: string, key: string): Promise<void> {
  const root = open({ path, maxDbs: 8 })
  await root.openDB({ name: 'entries', encoding: 'binary' }).put(key, Buffer.from('not a stratacache record'))
  await root.close()
}

/** A memory-only cache under `service` whose namespace `item` missed (and holds) `count` keys. */
async function warmed(service: string, count: number): Promise<Cache> {
  const cache = createCache({ service })
  caches.push(cache)
  const ns = cache.namespace('item', { key: 'item:{id}', ttl: '1m', load: ({ id }) => ({ id }) })
  for (let id = 0; id < count; id++) await ns.get({ id })
  return cache
}

/** Parses the text exposition format into `name{labels}` → value. */
function parse(text: string): Map<string, number> {
  const samples = new Map<string, number>()
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?) (\S+)$/.exec(line)
    if (match === null) throw new Error(`not a sample line: ${line}`)
    samples.set(match[1]!, Number(match[2]))
  }
  return samples
}

describe('Prometheus exporter', () => {
  it('exposes the counters of a scripted workload with exact values', async () => {
    const cache = createCache({ service: 'prom', l2: redisStore({ url: inject('redisUrl') }) })
    caches.push(cache)
    let fail = false
    const ns = cache.namespace('product', {
      key: 'product:{id}',
      ttl: '1m',
      slo: { readP99: '1s', staleReadsMax: 0.5 },
      labels: () => ({ tenant: 't1' }),
      load: ({ id }) => {
        if (fail) throw new Error('db down')
        return { id }
      },
    })
    await cache.connect()
    await ns.clear()
    await ns.get({ id: 1 }) // miss, load
    await ns.get({ id: 1 }) // L1 hit
    await ns.get({ id: 1 }) // L1 hit
    fail = true
    await expect(ns.get({ id: 2 })).rejects.toThrow() // miss, load error
    const registry = new Registry()
    prometheusMetrics(cache, { registry })
    const samples = parse(await registry.metrics())
    const at = (name: string, labels: string) => samples.get(`stratacache_${name}{${labels}}`)
    const ns_ = 'cache="prom",cache_namespace="product"'
    expect(at('hits_total', `${ns_},tier="l1"`)).toBe(2)
    expect(at('hits_total', `${ns_},tier="l2"`)).toBe(0)
    expect(at('misses_total', ns_)).toBe(2)
    expect(at('loads_total', ns_)).toBe(2)
    expect(at('load_errors_total', ns_)).toBe(1)
    expect(at('stale_served_total', `${ns_},reason="swr"`)).toBe(0)
    expect(at('untrusted_values_total', ns_)).toBe(0)
    expect(at('oversized_values_total', ns_)).toBe(0)
    expect(at('l1_entries', 'cache="prom"')).toBe(1)
    expect(at('l2_up', 'cache="prom"')).toBe(1)
    expect(at('l2_circuit_open', 'cache="prom"')).toBe(0)
    // Histograms: cumulative buckets in seconds, _sum and _count; two loads, two misses.
    expect(at('load_duration_seconds_count', ns_)).toBe(2)
    expect(samples.get(`stratacache_load_duration_seconds_bucket{${ns_},le="+Inf"}`)).toBe(2)
    expect(at('read_duration_seconds_count', `${ns_},outcome="miss"`)).toBe(2)
    expect(at('read_duration_seconds_count', `${ns_},outcome="l2_hit"`)).toBe(0)
    const buckets = [...samples]
      .filter(([name]) => name.startsWith(`stratacache_load_duration_seconds_bucket{${ns_}`))
      .map(([, value]) => value)
    expect(buckets).toEqual([...buckets].sort((a, b) => a - b))
    expect(at('l2_calls_total', 'cache="prom",outcome="timeout"')).toBe(0)
    expect(at('l2_duration_seconds_count', 'cache="prom"')).toBeGreaterThan(0)
    expect(at('labeled_reads_total', `${ns_},tenant="t1",region="",api_endpoint="",outcome="l1_hit"`)).toBe(2)
    expect(at('labeled_reads_total', `${ns_},tenant="t1",region="",api_endpoint="",outcome="miss"`)).toBe(2)
    expect(at('slo_ok', ns_)).toBe(1)
    expect(at('slo_value', `${ns_},objective="read_p99_seconds",kind="objective"`)).toBe(1)
    expect(at('slo_value', `${ns_},objective="stale_read_ratio",kind="actual"`)).toBe(0)
    // A second scrape reports the counters again, not doubled.
    expect(parse(await registry.metrics()).get(`stratacache_loads_total{${ns_}}`)).toBe(2)
  })

  it("exports a disk L2's own counters: a record it could not parse is a miss and store_corrupt_reads_total 1", async () => {
    const path = diskDir()
    const cache = createCache({
      service: 'prom-disk',
      l2: diskStore({ path, maxBytes: 4 * 1024 * 1024 }),
      logger: false,
    })
    caches.push(cache)
    let loads = 0
    const ns = cache.namespace('item', {
      key: 'item:{id}',
      ttl: '1m',
      load: ({ id }) => {
        loads++
        return { id }
      },
    })
    await cache.connect()
    await plantForeign(path, ns.key({ id: 1 }))
    // The foreign record reads as a miss: loaded, not thrown, and counted by the store.
    await expect(ns.get({ id: 1 })).resolves.toEqual({ id: 1 })
    expect(loads).toBe(1)
    expect(cache.stats().l2?.store).toMatchObject({
      corruptReads: 1,
      maxBytes: 4 * 1024 * 1024,
      evictions: 0,
    })
    const registry = new Registry()
    prometheusMetrics(cache, { registry })
    const text = await registry.metrics()
    expect(text).toContain('\nstratacache_store_corrupt_reads_total{cache="prom-disk",tier="l2"} 1\n')
    const samples = parse(text)
    const at = (name: string, labels: string) => samples.get(`stratacache_${name}{${labels}}`)
    expect(at('store_max_bytes', 'cache="prom-disk",tier="l2"')).toBe(4 * 1024 * 1024)
    expect(at('store_bytes', 'cache="prom-disk",tier="l2"')).toBeGreaterThan(0)
    expect(at('store_entries', 'cache="prom-disk",tier="l2"')).toBeGreaterThan(0)
    expect(at('store_evictions_total', 'cache="prom-disk",tier="l2"')).toBe(0)
    expect(at('store_expired_total', 'cache="prom-disk",tier="l2"')).toBe(0)
    expect(at('store_too_large_total', 'cache="prom-disk",tier="l2"')).toBe(0)
    // No host tier: no host series, and no store series for a tier that is not there.
    expect([...samples.keys()].filter((name) => /_host_|tier="host"/.test(name))).toEqual([])
    // A closed cache stays exported with its last counters: the closed store still answers stats().
    await cache.close()
    expect(
      parse(await registry.metrics()).get(
        'stratacache_store_corrupt_reads_total{cache="prom-disk",tier="l2"}',
      ),
    ).toBe(1)
  })

  it("exports the host tier: hits per namespace, errors, and its store's corrupt reads", async () => {
    const path = diskDir()
    const service = `prom-host-${Date.now()}`
    const processOnHost = async () => {
      const cache = createCache({
        service,
        l2: redisStore({ url: inject('redisUrl') }),
        host: diskStore({ path, maxBytes: 4 * 1024 * 1024 }),
        logger: false,
        timeouts: { l2: '2s' },
      })
      caches.push(cache)
      const ns = cache.namespace('item', { key: 'item:{id}', ttl: '10m', load: ({ id }) => ({ id }) })
      await cache.connect()
      return { cache, ns }
    }
    const a = await processOnHost()
    const b = await processOnHost()
    await a.ns.get({ id: 1 })
    // Copies are put in the background: wait until b's host store sees it.
    const host = diskStore({ path, maxBytes: 4 * 1024 * 1024 })
    await host.connect()
    await expect.poll(async () => (await host.get(a.ns.key({ id: 1 }))) !== null).toBe(true)
    await host.close()
    expect(await b.ns.get({ id: 1 })).toEqual({ id: 1 }) // a host hit
    await plantForeign(path, b.ns.key({ id: 2 }))
    expect(await b.ns.get({ id: 2 })).toEqual({ id: 2 }) // the foreign copy is a host miss: Redis, then the loader
    expect(b.ns.stats()).toMatchObject({ hostHits: 1, l2Hits: 1, misses: 1 })
    const registry = new Registry()
    prometheusMetrics(b.cache, { registry })
    const text = await registry.metrics()
    const labels = `cache="${service}"`
    expect(text).toContain(`\nstratacache_host_hits_total{${labels},cache_namespace="item"} 1\n`)
    expect(text).toContain(`\nstratacache_store_corrupt_reads_total{${labels},tier="host"} 1\n`)
    const samples = parse(text)
    expect(samples.get(`stratacache_host_errors_total{${labels}}`)).toBe(0)
    expect(samples.get(`stratacache_host_up{${labels}}`)).toBe(1)
    expect(samples.get(`stratacache_hits_total{${labels},cache_namespace="item",tier="l2"}`)).toBe(1)
    // Redis keeps no counters of its own: no store series for L2.
    expect(
      [...samples.keys()].filter((name) => name.includes('tier="l2"') && name.includes('_store_')),
    ).toEqual([])
  })

  it('exports several caches from one registry, each under its own `cache` label', async () => {
    const registry = new Registry()
    const catalog = await warmed('catalog', 2)
    const users = await warmed('users', 3)
    prometheusMetrics(catalog, { registry })
    prometheusMetrics(users, { registry })
    const text = await registry.metrics()
    const samples = parse(text)
    expect(samples.get('stratacache_misses_total{cache="catalog",cache_namespace="item"}')).toBe(2)
    expect(samples.get('stratacache_misses_total{cache="users",cache_namespace="item"}')).toBe(3)
    expect(samples.get('stratacache_l1_entries{cache="catalog"}')).toBe(2)
    expect(samples.get('stratacache_l1_entries{cache="users"}')).toBe(3)
    // One family per metric, whatever the number of caches.
    expect(text.match(/^# TYPE stratacache_misses_total counter$/gm)).toHaveLength(1)
  })

  it("unregisters one cache's series only, and the metrics with the last cache", async () => {
    const registry = new Registry()
    const own = new Counter({
      name: 'app_requests_total',
      help: 'The application’s own.',
      registers: [registry],
    })
    own.inc()
    const catalog = prometheusMetrics(await warmed('catalog', 2), { registry })
    const users = prometheusMetrics(await warmed('users', 3), { registry })
    catalog.unregister()
    let names = [...parse(await registry.metrics()).keys()]
    expect(names.filter((n) => n.includes('cache="catalog"'))).toEqual([])
    expect(names).toContain('stratacache_misses_total{cache="users",cache_namespace="item"}')
    catalog.unregister() // again: nothing
    expect(parse(await registry.metrics()).get('stratacache_l1_entries{cache="users"}')).toBe(3)
    users.unregister()
    names = [...parse(await registry.metrics()).keys()]
    expect(names).toEqual(['app_requests_total'])
    expect(registry.getMetricsAsArray().map((m) => m.name)).toEqual(['app_requests_total'])
  })

  it('exports a service again once unregistered, and refuses it twice at a time', async () => {
    const registry = new Registry()
    const first = await warmed('catalog', 1)
    const handle = prometheusMetrics(first, { registry })
    const replacement = await warmed('catalog', 4)
    expect(() => prometheusMetrics(replacement, { registry })).toThrow(
      expect.objectContaining({ code: 'ERR_STRATA_INVALID_ARGUMENT' }),
    )
    handle.unregister()
    const second = prometheusMetrics(replacement, { registry })
    handle.unregister() // the old handle no longer reaches the service's new registration
    expect(parse(await registry.metrics()).get('stratacache_l1_entries{cache="catalog"}')).toBe(4)
    second.unregister()
    // The same cache again, and under another prefix beside it.
    prometheusMetrics(first, { registry })
    prometheusMetrics(first, { registry, prefix: 'other_' })
    const samples = parse(await registry.metrics())
    expect(samples.get('stratacache_l1_entries{cache="catalog"}')).toBe(1)
    expect(samples.get('other_l1_entries{cache="catalog"}')).toBe(1)
  })

  it("uses prom-client's global registry by default, and only the registry it is given otherwise", async () => {
    const cache = await warmed('global-default', 1)
    const handle = prometheusMetrics(cache)
    try {
      expect(
        parse(await defaultRegistry.metrics()).get('stratacache_l1_entries{cache="global-default"}'),
      ).toBe(1)
    } finally {
      handle.unregister()
    }
    expect(defaultRegistry.getSingleMetric('stratacache_l1_entries')).toBeUndefined()
    const registry = new Registry()
    prometheusMetrics(await warmed('custom', 1), { registry })
    expect(defaultRegistry.getSingleMetric('stratacache_l1_entries')).toBeUndefined()
    expect(parse(await registry.metrics()).get('stratacache_l1_entries{cache="custom"}')).toBe(1)
  })

  it('registers again after registry.clear(), and registers nothing where other code took a name', async () => {
    const registry = new Registry()
    prometheusMetrics(await warmed('catalog', 1), { registry })
    registry.clear()
    prometheusMetrics(await warmed('users', 2), { registry })
    expect(parse(await registry.metrics()).get('stratacache_l1_entries{cache="users"}')).toBe(2)

    const taken = new Registry()
    new Counter({ name: 'stratacache_misses_total', help: 'Someone else’s.', registers: [taken] })
    expect(() => prometheusMetrics(createCache({ service: 'x' }), { registry: taken })).toThrow(
      expect.objectContaining({ code: 'ERR_STRATA_INVALID_OPTION', option: 'prefix' }),
    )
    expect(taken.getMetricsAsArray().map((m) => m.name)).toEqual(['stratacache_misses_total'])
  })

  it('follows the Prometheus naming conventions', async () => {
    const registry = new Registry()
    const cache = createCache({ service: 'names', l2: redisStore({ url: inject('redisUrl') }) })
    caches.push(cache)
    cache.namespace('item', {
      key: 'item:{id}',
      ttl: '1m',
      slo: { readP99: '1s', staleReadsMax: 0.5 },
      labels: () => ({ tenant: 't1', endpoint: '/items' }),
      load: ({ id }) => ({ id }),
    })
    await cache.connect()
    prometheusMetrics(cache, { registry })
    const metrics = await registry.getMetricsAsJSON()
    const labels = new Set(metrics.flatMap((m) => m.values.flatMap((v) => Object.keys(v.labels))))
    // Target labels Prometheus, Kubernetes and the Prometheus operator attach: ours would become exported_*.
    for (const target of ['service', 'namespace', 'endpoint', 'pod', 'container', 'job', 'instance']) {
      expect(labels).not.toContain(target)
    }
    for (const { name, type } of metrics) {
      if (String(type) === 'counter') expect(name).toMatch(/_total$/)
      else expect(name).not.toMatch(/_total$/)
      // Base units only, and no rates or all-time ratios (PromQL computes them).
      expect(name).not.toMatch(/_(ms|milliseconds|kb|mb|per_second|ratio|rate)(_|$)/)
    }
  })

  it('registers exactly the metrics docs/observability.md lists, with the labels it names', async () => {
    const doc = readFileSync(new URL('../../docs/observability.md', import.meta.url), 'utf8')
    const section = doc.slice(doc.indexOf('## Prometheus'), doc.indexOf('### Renamed'))
    const documented = new Map(
      [...section.matchAll(/`([a-z0-9_]+)\{([a-z_,]+)\}`/g)].map((m) => [`stratacache_${m[1]!}`, m[2]!]),
    )
    const registry = new Registry()
    prometheusMetrics(createCache({ service: 'doc' }), { registry })
    const registered = (await registry.getMetricsAsJSON()).map((m) => m.name).sort()
    expect([...documented.keys()].sort()).toEqual(registered)
    for (const metric of registry.getMetricsAsArray()) {
      const { labelNames } = metric as unknown as { labelNames: string[] }
      expect(labelNames.join(','), metric.name).toBe(documented.get(metric.name))
    }
  })

  it('refuses a prefix Prometheus would not accept', () => {
    const cache = createCache({ service: 'prom' })
    caches.push(cache)
    expect(() => prometheusMetrics(cache, { registry: new Registry(), prefix: 'bad-prefix' })).toThrow(
      /`prefix`/,
    )
  })
})
