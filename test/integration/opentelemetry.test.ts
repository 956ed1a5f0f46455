// The OpenTelemetry exporter against a real Redis: spans into an in-memory span exporter, metrics into an
// in-memory reader, for a scripted workload whose counts are known exactly.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { open } from 'lmdb'
import { metrics, trace } from '@opentelemetry/api'
import { MeterProvider, MetricReader, type ResourceMetrics } from '@opentelemetry/sdk-metrics'
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base'
import { createCache, type Cache } from 'stratacache'
import { diskStore } from 'stratacache/disk'
import { openTelemetry } from 'stratacache/opentelemetry'
import { redisStore } from 'stratacache/redis'
import { afterEach, describe, expect, inject, it } from 'vitest'

class TestReader extends MetricReader {
  protected onForceFlush(): Promise<void> {
    return Promise.resolve()
  }
  protected onShutdown(): Promise<void> {
    return Promise.resolve()
  }
}

const closers: (() => Promise<void> | void)[] = []
afterEach(async () => {
  for (const close of closers.splice(0)) await close()
})

/** Every data point of the collected metrics as `name{attributes}` → value (sums and gauges) or count (histograms). */
function points(collected: ResourceMetrics): Map<string, number> {
  const out = new Map<string, number>()
  for (const scope of collected.scopeMetrics) {
    for (const metric of scope.metrics) {
      for (const point of metric.dataPoints) {
        const attrs = Object.entries(point.attributes)
          .filter(([k]) => k !== 'stratacache.service')
          .map(([k, v]) => `${k}=${String(v)}`)
          .sort()
          .join(',')
        const value = point.value as number | { count: number }
        out.set(`${metric.descriptor.name}{${attrs}}`, typeof value === 'number' ? value : value.count)
      }
    }
  }
  return out
}

function setup(service: string) {
  const spans = new InMemorySpanExporter()
  const tracerProvider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spans)] })
  const reader = new TestReader()
  const meterProvider = new MeterProvider({ readers: [reader] })
  const cache: Cache = createCache({ service, l2: redisStore({ url: inject('redisUrl') }), random: () => 0 })
  const telemetry = openTelemetry(cache, {
    tracer: tracerProvider.getTracer('test'),
    meter: meterProvider.getMeter('test'),
  })
  closers.push(
    () => telemetry.stop(),
    () => cache.close(),
    () => meterProvider.shutdown(),
    () => tracerProvider.shutdown(),
  )
  return { spans, reader, cache }
}

describe('OpenTelemetry', () => {
  it('records a span per get and per load, with namespace, tier and outcome, never the key', async () => {
    const { spans, cache } = setup(`otel-spans-${Date.now()}`)
    let fail = false
    const ns = cache.namespace('user', {
      key: 'user:{id}',
      ttl: '1m',
      load: ({ id }) => {
        if (fail) throw new Error('db down')
        return { id, secret: 'pii' }
      },
    })
    await ns.get({ id: 'alice' }) // miss, load
    await ns.get({ id: 'alice' }) // L1 hit
    fail = true
    await expect(ns.get({ id: 'bob' })).rejects.toThrow()
    const finished = spans.getFinishedSpans().map((s) => ({
      name: s.name,
      attributes: s.attributes,
      status: s.status.code,
    }))
    const base = { 'stratacache.namespace': 'user', 'stratacache.service': expect.any(String) as unknown }
    expect(finished).toEqual([
      {
        name: 'stratacache.load',
        attributes: { ...base, 'stratacache.keys': 1, 'stratacache.outcome': 'ok' },
        status: 0,
      },
      {
        name: 'stratacache.get',
        attributes: { ...base, 'stratacache.tier': 'source', 'stratacache.outcome': 'ok' },
        status: 0,
      },
      {
        name: 'stratacache.get',
        attributes: { ...base, 'stratacache.tier': 'l1', 'stratacache.outcome': 'ok' },
        status: 0,
      },
      {
        name: 'stratacache.load',
        attributes: { ...base, 'stratacache.keys': 1, 'stratacache.outcome': 'error' },
        status: 2,
      },
      {
        name: 'stratacache.get',
        attributes: { ...base, 'stratacache.tier': 'none', 'stratacache.outcome': 'error' },
        status: 2,
      },
    ])
    const text = JSON.stringify(spans.getFinishedSpans().map((s) => [s.attributes, s.events]))
    expect(text).not.toMatch(/alice|bob|pii/)
  })

  it('exports counters, gauges and durations read from the cache', async () => {
    const { reader, cache } = setup(`otel-metrics-${Date.now()}`)
    const ns = cache.namespace('product', { key: 'product:{id}', ttl: '1m', load: ({ id }) => ({ id }) })
    await cache.connect()
    await ns.get({ id: 1 })
    await ns.get({ id: 1 })
    await ns.get({ id: 2 })
    const { resourceMetrics } = await reader.collect()
    const p = points(resourceMetrics)
    expect(p.get('stratacache.reads{stratacache.namespace=product,stratacache.tier=l1}')).toBe(1)
    expect(p.get('stratacache.reads{stratacache.namespace=product,stratacache.tier=l2}')).toBe(0)
    expect(p.get('stratacache.misses{stratacache.namespace=product}')).toBe(2)
    expect(p.get('stratacache.loads{stratacache.namespace=product}')).toBe(2)
    // Without regions, no region attribute: the stale serves keep the attributes they had.
    expect(p.get('stratacache.stale_served{stratacache.namespace=product,stratacache.reason=swr}')).toBe(0)
    expect(p.get('stratacache.l1.entries{}')).toBe(2)
    expect(p.get('stratacache.l2.calls{stratacache.outcome=timeout}')).toBe(0)
    expect(
      p.get(
        'stratacache.get.duration{stratacache.namespace=product,stratacache.outcome=ok,stratacache.tier=source}',
      ),
    ).toBe(2)
    expect(
      p.get(
        'stratacache.get.duration{stratacache.namespace=product,stratacache.outcome=ok,stratacache.tier=l1}',
      ),
    ).toBe(1)
    expect(p.get('stratacache.load.duration{stratacache.namespace=product,stratacache.outcome=ok}')).toBe(2)
  })

  it('records a span per getMany, with the number of keys, and the load spans of its batch', async () => {
    const { spans, cache } = setup(`otel-get-many-${Date.now()}`)
    const ns = cache.namespace('product', {
      key: 'product:{id}',
      ttl: '1m',
      loadMany: (list) => list.map(({ id }) => ({ id })),
    })
    await ns.getMany([{ id: 1 }, { id: 2 }, { id: 3 }])
    await ns.getMany([{ id: 1 }])
    const finished = spans.getFinishedSpans().map((s) => ({ name: s.name, attributes: s.attributes }))
    const base = { 'stratacache.namespace': 'product', 'stratacache.service': cache.service }
    expect(finished).toEqual([
      {
        name: 'stratacache.load',
        attributes: { ...base, 'stratacache.keys': 3, 'stratacache.outcome': 'ok' },
      },
      {
        name: 'stratacache.getMany',
        attributes: { ...base, 'stratacache.keys': 3, 'stratacache.outcome': 'ok' },
      },
      {
        name: 'stratacache.getMany',
        attributes: { ...base, 'stratacache.keys': 1, 'stratacache.outcome': 'ok' },
      },
    ])
  })

  it('puts the service on every metric point, and the namespace on every per-namespace one', async () => {
    const { reader, cache } = setup(`otel-attributes-${Date.now()}`)
    const ns = cache.namespace('product', { key: 'product:{id}', ttl: '1m', load: ({ id }) => ({ id }) })
    await cache.connect()
    await ns.get({ id: 1 })
    await ns.get({ id: 1 })
    const { resourceMetrics } = await reader.collect()
    const metrics = resourceMetrics.scopeMetrics.flatMap((scope) => scope.metrics)
    const perCache = new Set(['stratacache.l1.entries', 'stratacache.l2.calls'])
    expect(metrics.map((m) => m.descriptor.name).sort()).toEqual([
      'stratacache.get.duration',
      'stratacache.l1.entries',
      'stratacache.l2.calls',
      'stratacache.load.duration',
      'stratacache.load.errors',
      'stratacache.loads',
      'stratacache.misses',
      'stratacache.reads',
      'stratacache.stale_served',
    ])
    for (const metric of metrics) {
      for (const { attributes } of metric.dataPoints) {
        expect(attributes['stratacache.service'], metric.descriptor.name).toBe(cache.service)
        if (!perCache.has(metric.descriptor.name)) {
          expect(attributes['stratacache.namespace'], metric.descriptor.name).toBe('product')
        }
      }
    }
  })

  it("names its default tracer and meter 'stratacache' with the package's version", async () => {
    const { version } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
      version: string
    }
    const spans = new InMemorySpanExporter()
    const tracerProvider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spans)] })
    const reader = new TestReader()
    const meterProvider = new MeterProvider({ readers: [reader] })
    trace.setGlobalTracerProvider(tracerProvider)
    metrics.setGlobalMeterProvider(meterProvider)
    const cache = createCache({ service: `otel-version-${Date.now()}` })
    const telemetry = openTelemetry(cache)
    closers.push(
      () => telemetry.stop(),
      () => cache.close(),
      () => trace.disable(),
      () => metrics.disable(),
      () => meterProvider.shutdown(),
      () => tracerProvider.shutdown(),
    )
    await cache.namespace('x', { key: 'x:{id}', ttl: '1m', load: ({ id }) => ({ id }) }).get({ id: 1 })
    const { resourceMetrics } = await reader.collect()
    expect(resourceMetrics.scopeMetrics.map((m) => m.scope)).toEqual([{ name: 'stratacache', version }])
    const scopes = spans.getFinishedSpans().map((s) => s.instrumentationScope)
    expect(scopes).toHaveLength(2)
    for (const scope of scopes) expect(scope).toMatchObject({ name: 'stratacache', version })
  })

  it("exports a disk L2's corrupt reads, evictions and bytes, and nothing for a host tier it does not have", async () => {
    const path = mkdtempSync(join(tmpdir(), 'strata-otel-disk-'))
    closers.push(() => rmSync(path, { recursive: true, force: true }))
    const reader = new TestReader()
    const meterProvider = new MeterProvider({ readers: [reader] })
    const cache = createCache({
      service: `otel-disk-${Date.now()}`,
      l2: diskStore({ path, maxBytes: 1024 * 1024 }),
      logger: false,
    })
    openTelemetry(cache, { spans: false, meter: meterProvider.getMeter('test') })
    // Closed in this order: the cache (and its store) before the directory is removed.
    closers.unshift(
      () => cache.close(),
      () => meterProvider.shutdown(),
    )
    const ns = cache.namespace('item', { key: 'item:{id}', ttl: '1m', load: ({ id }) => ({ id }) })
    await cache.connect()
    const root = open({ path, maxDbs: 8 })
    await root.openDB({ name: 'entries', encoding: 'binary' }).put(ns.key({ id: 1 }), Buffer.from('foreign'))
    await root.close()
    expect(await ns.get({ id: 1 })).toEqual({ id: 1 })
    const p = points((await reader.collect()).resourceMetrics)
    expect(p.get('stratacache.store.corrupt_reads{stratacache.tier=l2}')).toBe(1)
    expect(p.get('stratacache.store.evictions{stratacache.tier=l2}')).toBe(0)
    expect(p.get('stratacache.store.bytes{stratacache.tier=l2}')).toBeGreaterThan(0)
    expect([...p.keys()].filter((name) => name.includes('host'))).toEqual([])
  })

  it('records the lag of every invalidation from another process naming one of its namespaces', async () => {
    const service = `otel-lag-${Date.now()}`
    const { reader, cache } = setup(service)
    // The writing process: same service, so same keys and bus channel.
    const writer = createCache({ service, l2: redisStore({ url: inject('redisUrl') }) })
    closers.push(() => writer.close())
    const declare = (c: Cache) =>
      c.namespace('item', { key: 'item:{id}', ttl: '1m', load: ({ id }) => ({ id }) })
    declare(cache)
    const written = declare(writer)
    const unknown = writer.namespace('elsewhere', { key: 'e:{id}', ttl: '1m', load: ({ id }) => ({ id }) })
    await Promise.all([cache.connect(), writer.connect()])
    await expect.poll(() => cache.stats().bus?.subscribed).toBe(true)
    await written.set({ id: 1 }, { id: 1 })
    await written.delete({ id: 2 })
    // A namespace this process does not declare: received, but not one of its namespaces' invalidations.
    await unknown.set({ id: 1 }, { id: 1 })
    await expect.poll(() => cache.stats().bus?.received).toBe(3)
    const p = points((await reader.collect()).resourceMetrics)
    expect(p.get('stratacache.invalidation.lag{stratacache.namespace=item}')).toBe(2)
    expect([...p.keys()].filter((name) => name.startsWith('stratacache.invalidation.lag'))).toEqual([
      'stratacache.invalidation.lag{stratacache.namespace=item}',
    ])
    // The same messages as the namespace's own histogram counts.
    expect(cache.stats().namespaces.item!.latencyMs.invalidation.count).toBe(2)
    // The writer's own messages are not invalidations it received.
    expect(writer.stats().namespaces.item!.latencyMs.invalidation.count).toBe(0)
  })

  it('ignores the calls of another cache in the same process', async () => {
    const { spans } = setup(`otel-mine-${Date.now()}`)
    const other = createCache({ service: `otel-other-${Date.now()}` })
    closers.push(() => other.close())
    await other.namespace('x', { key: 'x:{id}', ttl: '1m', load: ({ id }) => ({ id }) }).get({ id: 1 })
    expect(spans.getFinishedSpans()).toEqual([])
  })
})
