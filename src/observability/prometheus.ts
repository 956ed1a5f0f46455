// Prometheus exposition on prom-client: every metric is read from cache.stats() at scrape time, nothing per request.
import { Counter, Gauge, register as defaultRegistry, type Metric, type Registry } from 'prom-client'
import type { HistogramSnapshot } from './histogram.js'
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
  // Histograms come as snapshots (bucket counts): exposed as they are, in seconds, with cumulative buckets.
  const histogram = (
    name: string,
    help: string,
    labelNames: string[],
    read: (s: CacheStats) => [Labels, HistogramSnapshot][],
  ) => {
    const full = prefix + name
    const metric = {
      name: full,
      help,
      type: 'histogram',
      aggregator: 'sum',
      labelNames: ['service', ...labelNames],
      get: () => {
        const values: { metricName: string; labels: Labels; value: number }[] = []
        for (const [labels, h] of read(stats())) {
          const base = { service, ...labels }
          let cumulative = 0
          h.counts.forEach((count, i) => {
            cumulative += count
            const bound = h.bucketsMs[i]!
            const le = bound === Infinity ? '+Inf' : String(bound / 1_000)
            values.push({ metricName: `${full}_bucket`, labels: { ...base, le }, value: cumulative })
          })
          values.push({ metricName: `${full}_sum`, labels: base, value: h.sumMs / 1_000 })
          values.push({ metricName: `${full}_count`, labels: base, value: h.count })
        }
        return Promise.resolve({ name: full, help, type: 'histogram', aggregator: 'sum', values })
      },
      reset: () => {},
    }
    registry.registerMetric(metric as unknown as Metric)
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
  counter(
    'labeled_reads_total',
    'Reads per label set of namespaces that declare `labels` (at most maxLabelSets, then _other), by outcome.',
    ['namespace', 'tenant', 'region', 'endpoint', 'outcome'],
    (s) =>
      Object.entries(s.namespaces).flatMap(([namespace, n]) =>
        n.byLabels.flatMap(({ labels, l1Hits, l2Hits, misses }): [Labels, number][] => [
          [{ namespace, ...labels, outcome: 'l1_hit' }, l1Hits],
          [{ namespace, ...labels, outcome: 'l2_hit' }, l2Hits],
          [{ namespace, ...labels, outcome: 'miss' }, misses],
        ]),
      ),
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
      [{ namespace, reason: 'bus_outage' }, n.staleServed.busOutage],
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
  counter(
    'write_behind_total',
    'Write-behind writes by event: queued here, flushed to the source, retried, dead-lettered, claimed.',
    ['namespace', 'event'],
    (s) =>
      Object.entries(s.namespaces).flatMap(([namespace, n]): [Labels, number][] =>
        n.writesQueued + n.writesFlushed + n.writeRetries + n.writesDeadLettered + n.writesClaimed === 0
          ? []
          : [
              [{ namespace, event: 'queued' }, n.writesQueued],
              [{ namespace, event: 'flushed' }, n.writesFlushed],
              [{ namespace, event: 'retried' }, n.writeRetries],
              [{ namespace, event: 'dead_lettered' }, n.writesDeadLettered],
              [{ namespace, event: 'claimed' }, n.writesClaimed],
            ],
      ),
  )
  histogram(
    'load_duration_seconds',
    'Loader calls (load, or one loadMany batch), by duration.',
    ['namespace'],
    (s) => Object.entries(s.namespaces).map(([namespace, n]) => [{ namespace }, n.latencyMs.load]),
  )
  histogram(
    'read_duration_seconds',
    'get() past L1, by outcome: l2_hit (answered from L2) or miss (loaded). L1 hits are counted in l1 but not timed.',
    ['namespace', 'outcome'],
    (s) =>
      Object.entries(s.namespaces).flatMap(([namespace, n]): [Labels, HistogramSnapshot][] => [
        [{ namespace, outcome: 'l2_hit' }, n.latencyMs.l2Hit],
        [{ namespace, outcome: 'miss' }, n.latencyMs.miss],
      ]),
  )
  histogram('l2_duration_seconds', 'L2 calls that settled (answered or failed), by duration.', [], (s) =>
    s.l2 === undefined ? [] : [[{}, s.l2.latencyMs]],
  )
  counter('l2_calls_total', 'L2 calls by outcome.', ['outcome'], (s) =>
    s.l2 === undefined
      ? []
      : [
          [{ outcome: 'ok' }, s.l2.calls - s.l2.failures - s.l2.timeouts - s.l2.refused],
          [{ outcome: 'failed' }, s.l2.failures],
          [{ outcome: 'timeout' }, s.l2.timeouts],
          [{ outcome: 'circuit_open' }, s.l2.refused],
        ],
  )
  // Objectives: read from cache.slo() at scrape time (which also publishes a changed verdict).
  let objectives: ReturnType<Cache['slo']> | undefined
  const slo = () => {
    if (objectives === undefined) {
      objectives = cache.slo()
      queueMicrotask(() => (objectives = undefined))
    }
    return objectives
  }
  gauge('slo_ok', '1 while every objective of the namespace is met over its window.', ['namespace'], () =>
    Object.entries(slo()).map(([namespace, r]) => [{ namespace }, r.ok ? 1 : 0]),
  )
  gauge(
    'slo_value',
    'Each objective over its window: read_p99_seconds, stale_read_ratio; kind="objective" or "actual".',
    ['namespace', 'objective', 'kind'],
    () =>
      Object.entries(slo()).flatMap(([namespace, r]): [Labels, number][] => [
        ...(r.readP99Ms === undefined
          ? []
          : ([
              [
                { namespace, objective: 'read_p99_seconds', kind: 'objective' },
                r.readP99Ms.objective / 1_000,
              ],
              [{ namespace, objective: 'read_p99_seconds', kind: 'actual' }, r.readP99Ms.actual / 1_000],
            ] as [Labels, number][])),
        ...(r.staleReads === undefined
          ? []
          : ([
              [{ namespace, objective: 'stale_read_ratio', kind: 'objective' }, r.staleReads.objective],
              [{ namespace, objective: 'stale_read_ratio', kind: 'actual' }, r.staleReads.actual],
            ] as [Labels, number][])),
      ]),
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
