// The Prometheus exporter: a scripted workload against a real Redis, then a scrape, parsed and checked exactly.
import { Registry } from 'prom-client'
import { createCache, type Cache } from 'stratacache'
import { prometheusMetrics } from 'stratacache/prometheus'
import { redisStore } from 'stratacache/redis'
import { afterEach, describe, expect, inject, it } from 'vitest'

const caches: Cache[] = []
afterEach(async () => {
  await Promise.all(caches.splice(0).map((c) => c.close()))
})

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
    expect(at('hits_total', 'service="prom",namespace="product",tier="l1"')).toBe(2)
    expect(at('hits_total', 'service="prom",namespace="product",tier="l2"')).toBe(0)
    expect(at('misses_total', 'service="prom",namespace="product"')).toBe(2)
    expect(at('loads_total', 'service="prom",namespace="product"')).toBe(2)
    expect(at('load_errors_total', 'service="prom",namespace="product"')).toBe(1)
    expect(at('loads_per_second', 'service="prom",namespace="product"')).toBe(2)
    expect(at('hit_ratio', 'service="prom",namespace="product"')).toBe(0.5)
    expect(at('stale_served_total', 'service="prom",namespace="product",reason="swr"')).toBe(0)
    expect(at('untrusted_values_total', 'service="prom",namespace="product"')).toBe(0)
    expect(at('oversized_values_total', 'service="prom",namespace="product"')).toBe(0)
    expect(at('l1_entries', 'service="prom"')).toBe(1)
    expect(at('l2_up', 'service="prom"')).toBe(1)
    expect(at('l2_circuit_open', 'service="prom"')).toBe(0)
    // Histograms: cumulative buckets in seconds, _sum and _count; two loads, two misses.
    const ns_ = 'service="prom",namespace="product"'
    expect(at('load_duration_seconds_count', ns_)).toBe(2)
    expect(samples.get(`stratacache_load_duration_seconds_bucket{${ns_},le="+Inf"}`)).toBe(2)
    expect(at('read_duration_seconds_count', `${ns_},outcome="miss"`)).toBe(2)
    expect(at('read_duration_seconds_count', `${ns_},outcome="l2_hit"`)).toBe(0)
    const buckets = [...samples]
      .filter(([name]) => name.startsWith(`stratacache_load_duration_seconds_bucket{${ns_}`))
      .map(([, value]) => value)
    expect(buckets).toEqual([...buckets].sort((a, b) => a - b))
    expect(at('l2_calls_total', 'service="prom",outcome="timeout"')).toBe(0)
    expect(at('l2_duration_seconds_count', 'service="prom"')).toBeGreaterThan(0)
    expect(at('labeled_reads_total', `${ns_},tenant="t1",region="",endpoint="",outcome="l1_hit"`)).toBe(2)
    expect(at('labeled_reads_total', `${ns_},tenant="t1",region="",endpoint="",outcome="miss"`)).toBe(2)
    expect(at('slo_ok', ns_)).toBe(1)
    expect(at('slo_value', `${ns_},objective="read_p99_seconds",kind="objective"`)).toBe(1)
    expect(at('slo_value', `${ns_},objective="stale_read_ratio",kind="actual"`)).toBe(0)
    // A second scrape reports the counters again, not doubled.
    expect(
      parse(await registry.metrics()).get('stratacache_loads_total{service="prom",namespace="product"}'),
    ).toBe(2)
  })

  it('refuses a prefix Prometheus would not accept', () => {
    const cache = createCache({ service: 'prom' })
    caches.push(cache)
    expect(() => prometheusMetrics(cache, { registry: new Registry(), prefix: 'bad-prefix' })).toThrow(
      /`prefix`/,
    )
  })
})
