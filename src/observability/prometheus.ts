// Prometheus exposition on prom-client: every metric is read from cache.stats() at scrape time, nothing per request.
import { Counter, Gauge, register as defaultRegistry, type Registry } from 'prom-client'
import type { Cache, CacheStats } from '../cache.js'
import { InvalidOptionError } from '../errors.js'

export interface PrometheusOptions {
  /** Where the metrics are registered. @default prom-client's default registry */
  registry?: Registry
  /** Prefix of every metric name. @default 'stratacache_' */
  prefix?: string
}

type Labels = Record<string, string>

/**
 * Registers stratacache's metrics for `cache` on a prom-client registry. Values are read from `cache.stats()` when
 * Prometheus scrapes, so the read path pays nothing for them. Labels: `service`, `namespace`, and `tier` or
 * `reason` where they apply. Call once per cache; metric names are unique per registry.
 *
 * @example
 * import { prometheusMetrics } from 'stratacache/prometheus'
 * prometheusMetrics(cache)
 * app.get('/metrics', async () => register.metrics())
 */
export function prometheusMetrics(cache: Cache, options: PrometheusOptions = {}): void {
  const registry = options.registry ?? defaultRegistry
  const prefix = options.prefix ?? 'stratacache_'
  if (typeof prefix !== 'string' || !/^[a-zA-Z_:][a-zA-Z0-9_:]*$/.test(prefix)) {
    throw new InvalidOptionError('prefix', prefix, "a Prometheus metric name prefix such as 'stratacache_'")
  }
  const service = cache.service
  let snapshot: CacheStats | undefined
  // One stats() call per scrape: the first metric collected takes it, the others reuse it within the same tick.
  const stats = (): CacheStats => {
    if (snapshot === undefined) {
      snapshot = cache.stats()
      queueMicrotask(() => (snapshot = undefined))
    }
    return snapshot
  }
  type Read = (s: CacheStats) => [Labels, number][]
  // What every metric shares: its name, labels and registry, and its samples from this scrape's snapshot.
  const define = (name: string, help: string, labelNames: string[], read: Read) => ({
    config: { name: prefix + name, help, labelNames: ['service', ...labelNames], registers: [registry] },
    samples: () => read(stats()).map(([labels, value]) => [{ service, ...labels }, value] as const),
  })
  // Counters report running totals: reset, then one increment from zero per label set. Gauges set their value.
  const counter = (name: string, help: string, labelNames: string[], read: Read) => {
    const { config, samples } = define(name, help, labelNames, read)
    return new Counter({
      ...config,
      collect() {
        this.reset()
        for (const [l, v] of samples()) this.inc(l, v)
      },
    })
  }
  const gauge = (name: string, help: string, labelNames: string[], read: Read) => {
    const { config, samples } = define(name, help, labelNames, read)
    return new Gauge({
      ...config,
      collect() {
        this.reset()
        for (const [l, v] of samples()) this.set(l, v)
      },
    })
  }
  const perNamespace = (
    s: CacheStats,
    pick: (n: CacheStats['namespaces'][string]) => number,
  ): [Labels, number][] => Object.entries(s.namespaces).map(([namespace, n]) => [{ namespace }, pick(n)])

  counter('hits_total', 'Reads served from a tier.', ['namespace', 'tier'], (s) =>
    Object.entries(s.namespaces).flatMap(([namespace, n]): [Labels, number][] => [
      [{ namespace, tier: 'l1' }, n.l1Hits],
      [{ namespace, tier: 'l2' }, n.l2Hits],
    ]),
  )
  counter('misses_total', 'Reads no tier could answer (each loads).', ['namespace'], (s) =>
    perNamespace(s, (n) => n.misses),
  )
  counter('loads_total', 'Loader calls (one per load, one per loadMany batch).', ['namespace'], (s) =>
    perNamespace(s, (n) => n.loads),
  )
  counter('load_errors_total', 'Loader calls that failed.', ['namespace'], (s) =>
    perNamespace(s, (n) => n.loadErrors),
  )
  counter('load_timeouts_total', 'Loads that hit their hard timeout.', ['namespace'], (s) =>
    perNamespace(s, (n) => n.loadTimeouts),
  )
  counter('stale_served_total', 'Stale values served, by reason.', ['namespace', 'reason'], (s) =>
    Object.entries(s.namespaces).flatMap(([namespace, n]): [Labels, number][] => [
      [{ namespace, reason: 'swr' }, n.staleServed.swr],
      [{ namespace, reason: 'fail_safe' }, n.staleServed.failSafe],
      [{ namespace, reason: 'soft_timeout' }, n.staleServed.softTimeout],
    ]),
  )
  counter(
    'l2_errors_total',
    'L2 calls that failed, timed out or were skipped by the open circuit.',
    ['namespace'],
    (s) => perNamespace(s, (n) => n.l2Errors),
  )
  counter('decode_errors_total', 'L2 values that did not decode (read as misses).', ['namespace'], (s) =>
    perNamespace(s, (n) => n.decodeErrors),
  )
  counter(
    'untrusted_values_total',
    'L2 values refused as tampered, under an unknown key, or unencrypted where encryption is on (read as misses).',
    ['namespace'],
    (s) => perNamespace(s, (n) => n.untrustedValues),
  )
  counter('oversized_values_total', 'Values over maxValueBytes, not written to L2.', ['namespace'], (s) =>
    perNamespace(s, (n) => n.oversized),
  )
  counter('refreshes_total', 'Background refreshes started.', ['namespace'], (s) =>
    perNamespace(s, (n) => n.refreshes),
  )
  counter('lock_waits_total', 'Waits for another process loading the same key.', ['namespace'], (s) =>
    perNamespace(s, (n) => n.lockWaits),
  )
  gauge(
    'loads_per_second',
    'Loads started in the last second (source QPS from this process).',
    ['namespace'],
    (s) => perNamespace(s, (n) => n.loadsPerSecond),
  )
  gauge('hit_ratio', 'Hits over all reads since start.', ['namespace'], (s) =>
    perNamespace(s, (n) => n.hitRatio),
  )
  gauge('l1_entries', 'Entries in L1.', [], (s) => (s.l1 === undefined ? [] : [[{}, s.l1.entries]]))
  gauge('l1_bytes', 'Bytes counted against the L1 budget.', [], (s) =>
    s.l1 === undefined ? [] : [[{}, s.l1.bytes]],
  )
  counter('l1_evictions_total', 'L1 entries evicted for room.', [], (s) =>
    s.l1 === undefined ? [] : [[{}, s.l1.evictions]],
  )
  gauge('l2_up', '1 when the L2 connection is ready.', [], (s) =>
    s.l2 === undefined ? [] : [[{}, s.l2.status === 'ready' ? 1 : 0]],
  )
  gauge('l2_circuit_open', '1 while the circuit breaker skips L2.', [], (s) =>
    s.l2 === undefined ? [] : [[{}, s.l2.circuit === 'closed' ? 0 : 1]],
  )
  counter('bus_messages_total', 'Invalidation bus messages, by direction.', ['direction'], (s) =>
    s.bus === undefined
      ? []
      : [
          [{ direction: 'sent' }, s.bus.sent],
          [{ direction: 'received' }, s.bus.received],
        ],
  )
  gauge('bus_lag_max_ms', 'Largest invalidation lag seen, publish to applied, in ms.', [], (s) =>
    s.bus === undefined ? [] : [[{}, s.bus.lagMs.max]],
  )
}
