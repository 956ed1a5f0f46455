// Prometheus exposition on prom-client: metrics registered once per registry, each cache registered with them adding
// its own series (label `cache`), every value read from cache.stats() at scrape time, nothing per request.
import { Counter, Gauge, register as defaultRegistry, type Metric, type Registry } from 'prom-client'
import type { HistogramSnapshot } from './histogram.js'
import type { Cache, CacheStats } from '../cache.js'
import { InvalidArgumentError, InvalidOptionError } from '../errors.js'
import { rejectUnknown, type OptionKeys } from '../core/known-options.js'
import type { NamespaceStats } from '../namespace.js'
import type { SloReport } from './slo.js'
import type { RegionPeerStats } from '../regions/region-relay.js'
import type { L2StoreStats } from '../tiers/l2-store.js'

export interface PrometheusOptions {
  /** Where the metrics are registered. @default prom-client's default registry (`register`) */
  registry?: Registry
  /** Prefix of every metric name. @default 'stratacache_' */
  prefix?: string
}

/** Every key of `PrometheusOptions`, checked against the type by the compiler. */
const PROMETHEUS_OPTION_KEYS = {
  registry: true,
  prefix: true,
} as const satisfies OptionKeys<PrometheusOptions>

/** What `prometheusMetrics()` returns. */
export interface PrometheusMetrics {
  /**
   * Stops exporting this cache: its series leave the next scrape, other caches' stay. The last cache of a registry
   * (and prefix) to leave removes the metrics themselves from the registry, exactly those it registered. Calling it
   * again does nothing.
   */
  unregister(): void
}

type Labels = Record<string, string>
type Sample<T> = readonly [Labels, T]

/** One cache as the exporter reads it: `stats()` and `slo()` taken once per scrape and shared by every metric. */
class Source {
  #stats: CacheStats | undefined
  #slo: Readonly<Record<string, SloReport>> | undefined

  constructor(readonly cache: Cache) {}

  // A scrape collects every metric in one synchronous pass: the first one takes the snapshot, the others reuse it
  // until the tick ends.
  stats(): CacheStats {
    if (this.#stats === undefined) {
      this.#stats = this.cache.stats()
      queueMicrotask(() => (this.#stats = undefined))
    }
    return this.#stats
  }

  /** The objectives' reports (`cache.slo()`, which also publishes a changed verdict). */
  slo(): Readonly<Record<string, SloReport>> {
    if (this.#slo === undefined) {
      this.#slo = this.cache.slo()
      queueMicrotask(() => (this.#slo = undefined))
    }
    return this.#slo
  }
}

interface Definition {
  readonly type: 'counter' | 'gauge' | 'histogram'
  /** Without the prefix. */
  readonly name: string
  readonly help: string
  /** Besides `cache`, which every metric has. */
  readonly labelNames: readonly string[]
  readonly read: (source: Source) => readonly Sample<unknown>[]
}

const define =
  <T extends number | HistogramSnapshot>(type: Definition['type']) =>
  (
    name: string,
    help: string,
    labelNames: readonly string[],
    read: (source: Source) => readonly Sample<T>[],
  ): Definition => ({ type, name, help, labelNames, read })
const counter = define<number>('counter')
const gauge = define<number>('gauge')
const histogram = define<HistogramSnapshot>('histogram')

/** One sample per namespace, or several (`pick` returning labelled values), labelled `cache_namespace`. */
function perNamespace<T>(source: Source, pick: (n: NamespaceStats) => T | readonly Sample<T>[]): Sample<T>[] {
  return Object.entries(source.stats().namespaces).flatMap(([namespace, n]): Sample<T>[] => {
    const picked = pick(n)
    const base = { cache_namespace: namespace }
    return Array.isArray(picked)
      ? (picked as readonly Sample<T>[]).map(([labels, value]) => [{ ...base, ...labels }, value])
      : [[base, picked as T]]
  })
}

/** One sample for the cache, when `value` is defined (L1, L2 or the bus may be absent). */
const perCache = <T>(value: T | undefined): Sample<T>[] => (value === undefined ? [] : [[{}, value]])

const ms = (value: number) => value / 1_000

/**
 * Every metric. Label names avoid the target labels Prometheus and the Kubernetes operators attach (`service`,
 * `namespace`, `endpoint`, `pod`, `job`, `instance`…), which would rename ours to `exported_*`. No rate or all-time
 * ratio is exported: PromQL computes them from the counters over the window one chooses.
 */
const DEFINITIONS: readonly Definition[] = [
  counter('hits_total', 'Reads served from a tier.', ['cache_namespace', 'tier'], (s) =>
    perNamespace(s, (n) => [
      [{ tier: 'l1' }, n.l1Hits],
      [{ tier: 'l2' }, n.l2Hits],
    ]),
  ),
  counter(
    'labeled_reads_total',
    'Reads per label set of namespaces that declare `labels` (at most maxLabelSets, then _other), by outcome.',
    ['cache_namespace', 'tenant', 'region', 'api_endpoint', 'outcome'],
    (s) =>
      perNamespace(s, (n) =>
        n.byLabels.flatMap(
          ({ labels: { tenant, region, endpoint }, l1Hits, l2Hits, misses }): Sample<number>[] => {
            const labels = { tenant, region, api_endpoint: endpoint }
            return [
              [{ ...labels, outcome: 'l1_hit' }, l1Hits],
              [{ ...labels, outcome: 'l2_hit' }, l2Hits],
              [{ ...labels, outcome: 'miss' }, misses],
            ]
          },
        ),
      ),
  ),
  counter('misses_total', 'Reads no tier could answer (each loads).', ['cache_namespace'], (s) =>
    perNamespace(s, (n) => n.misses),
  ),
  counter('loads_total', 'Loader calls (one per load, one per loadMany batch).', ['cache_namespace'], (s) =>
    perNamespace(s, (n) => n.loads),
  ),
  counter('load_errors_total', 'Loader calls that failed.', ['cache_namespace'], (s) =>
    perNamespace(s, (n) => n.loadErrors),
  ),
  counter('load_timeouts_total', 'Loads that hit their hard timeout.', ['cache_namespace'], (s) =>
    perNamespace(s, (n) => n.loadTimeouts),
  ),
  counter(
    'stale_served_total',
    'Stale values served, by reason: swr, fail_safe, soft_timeout, bus_outage.',
    ['cache_namespace', 'region', 'reason'],
    (s) => {
      // `region` only with regions (as region_split_reads_total): without, the series keep the labels they had.
      const region = s.stats().regions?.region
      const here = region === undefined ? {} : { region }
      return perNamespace(s, (n) => [
        [{ ...here, reason: 'swr' }, n.staleServed.swr],
        [{ ...here, reason: 'fail_safe' }, n.staleServed.failSafe],
        [{ ...here, reason: 'soft_timeout' }, n.staleServed.softTimeout],
        [{ ...here, reason: 'bus_outage' }, n.staleServed.busOutage],
      ])
    },
  ),
  counter(
    'l2_errors_total',
    'L2 calls that failed, timed out or were skipped by the open circuit.',
    ['cache_namespace'],
    (s) => perNamespace(s, (n) => n.l2Errors),
  ),
  counter(
    'decode_errors_total',
    'L2 values that did not decode (read as misses).',
    ['cache_namespace'],
    (s) => perNamespace(s, (n) => n.decodeErrors),
  ),
  counter(
    'untrusted_values_total',
    'L2 values refused as tampered, under an unknown key, or unencrypted where encryption is on (read as misses).',
    ['cache_namespace'],
    (s) => perNamespace(s, (n) => n.untrustedValues),
  ),
  counter(
    'oversized_values_total',
    'Values over maxValueBytes, not written to L2.',
    ['cache_namespace'],
    (s) => perNamespace(s, (n) => n.oversized),
  ),
  counter('refreshes_total', 'Background refreshes started.', ['cache_namespace'], (s) =>
    perNamespace(s, (n) => n.refreshes),
  ),
  counter('lock_waits_total', 'Waits for another process loading the same key.', ['cache_namespace'], (s) =>
    perNamespace(s, (n) => n.lockWaits),
  ),
  counter(
    'write_behind_total',
    'Write-behind writes by event: queued here, flushed to the source, retried, dead-lettered, claimed.',
    ['cache_namespace', 'event'],
    (s) =>
      perNamespace(s, (n) =>
        n.writesQueued + n.writesFlushed + n.writeRetries + n.writesDeadLettered + n.writesClaimed === 0
          ? []
          : [
              [{ event: 'queued' }, n.writesQueued],
              [{ event: 'flushed' }, n.writesFlushed],
              [{ event: 'retried' }, n.writeRetries],
              [{ event: 'dead_lettered' }, n.writesDeadLettered],
              [{ event: 'claimed' }, n.writesClaimed],
            ],
      ),
  ),
  counter(
    'write_repairs_total',
    'Changes (set, write, delete) that failed in L2 or on the bus, by event: queued for repair, repaired (their keys invalidated everywhere once Redis answered).',
    ['cache_namespace', 'event'],
    (s) =>
      perNamespace(s, (n) =>
        n.repairsQueued === 0
          ? []
          : [
              [{ event: 'queued' }, n.repairsQueued],
              [{ event: 'repaired' }, n.repairsDone],
            ],
      ),
  ),
  gauge(
    'write_repairs_pending',
    'Changes still to repair: until then other processes may serve the value they replaced.',
    ['cache_namespace'],
    (s) => perNamespace(s, (n) => (n.repairsQueued === 0 ? [] : [[{}, n.repairsPending]])),
  ),
  counter(
    'l2_restores_total',
    'Times this process found Redis restored from a snapshot or replaced by a promoted replica, and moved the namespace to a new generation so that older entries are not served.',
    ['cache_namespace'],
    (s) => perNamespace(s, (n) => (n.l2Restores === 0 ? [] : [[{}, n.l2Restores]])),
  ),
  counter(
    'warm_ups_total',
    'Warm-ups this process ran, by kind: warm (ns.warm(), stratacache warm) or warm_start (hot keys from L2).',
    ['cache_namespace', 'kind'],
    (s) =>
      perNamespace(s, (n) =>
        n.warmUps + n.warmStarts === 0
          ? []
          : [
              [{ kind: 'warm' }, n.warmUps],
              [{ kind: 'warm_start' }, n.warmStarts],
            ],
      ),
  ),
  counter(
    'warm_up_keys_total',
    'Keys of warm-ups by outcome: loaded, fresh (already), failed (ns.warm()); warm_start (copied from L2 to L1).',
    ['cache_namespace', 'outcome'],
    (s) =>
      perNamespace(s, (n) =>
        n.warmUps + n.warmStarts === 0
          ? []
          : [
              [{ outcome: 'loaded' }, n.warmUpKeysLoaded],
              [{ outcome: 'fresh' }, n.warmUpKeysFresh],
              [{ outcome: 'failed' }, n.warmUpKeysFailed],
              [{ outcome: 'warm_start' }, n.warmStartKeys],
            ],
      ),
  ),
  counter(
    'warm_up_keys_not_stored_total',
    'Keys warm-ups loaded (counted as loaded too) that L2 did not take or did not confirm within timeouts.l2: unreachable, an error, slow.',
    ['cache_namespace'],
    (s) => perNamespace(s, (n) => (n.warmUps === 0 ? [] : [[{}, n.warmUpKeysNotStored]])),
  ),
  // The first minute after the cache was created, labelled cold or warm (warmStart()): restarts compare by
  // first_minute_hits_total{tier="l1"} / first_minute_reads_total. They stop growing when the minute ends.
  counter(
    'first_minute_reads_total',
    "Reads in the cache's first minute, by start: warm when warmStart() copied entries into L1, else cold.",
    ['start'],
    (s) => {
      const startup = s.stats().startup
      return [[{ start: startup.start }, startup.reads]]
    },
  ),
  counter(
    'first_minute_hits_total',
    "Reads in the cache's first minute served from a tier, by tier and start (cold, or warm after warmStart()).",
    ['start', 'tier'],
    (s) => {
      const startup = s.stats().startup
      return [
        [{ start: startup.start, tier: 'l1' }, startup.l1Hits],
        [{ start: startup.start, tier: 'l2' }, startup.l2Hits],
      ]
    },
  ),
  counter(
    'warm_up_duration_seconds_total',
    'Time spent in ns.warm() jobs, summed.',
    ['cache_namespace'],
    (s) => perNamespace(s, (n): number | Sample<number>[] => (n.warmUps === 0 ? [] : ms(n.warmUpMs))),
  ),
  counter(
    'warm_start_duration_seconds_total',
    'Time spent in warm starts (warmStart(): the saved hot keys copied from L2 into L1), summed.',
    ['cache_namespace'],
    (s) => perNamespace(s, (n): number | Sample<number>[] => (n.warmStarts === 0 ? [] : ms(n.warmStartMs))),
  ),
  histogram(
    'load_duration_seconds',
    'Loader calls (load, or one loadMany batch), by duration.',
    ['cache_namespace'],
    (s) => perNamespace(s, (n) => n.latencyMs.load),
  ),
  histogram(
    'read_duration_seconds',
    'get() past L1, by outcome: l2_hit (answered from L2) or miss (loaded). L1 hits are counted in l1 but not timed.',
    ['cache_namespace', 'outcome'],
    (s) =>
      perNamespace(s, (n) => [
        [{ outcome: 'l2_hit' }, n.latencyMs.l2Hit],
        [{ outcome: 'miss' }, n.latencyMs.miss],
      ]),
  ),
  histogram(
    'invalidation_lag_seconds',
    "Bus messages from other processes naming the namespace, by lag: publication to entries dropped here, on Redis's clock.",
    ['cache_namespace'],
    (s) => perNamespace(s, (n) => n.latencyMs.invalidation),
  ),
  histogram('l2_duration_seconds', 'L2 calls that settled (answered or failed), by duration.', [], (s) =>
    perCache(s.stats().l2?.latencyMs),
  ),
  counter(
    'l2_calls_total',
    'L2 calls that settled, by outcome (ok, failed, timeout, circuit_open).',
    ['outcome'],
    (s) => {
      const l2 = s.stats().l2
      return l2 === undefined
        ? []
        : [
            // Counted as each call settles: `calls` minus the others would count calls in flight as ok, then go down.
            [{ outcome: 'ok' }, l2.succeeded],
            [{ outcome: 'failed' }, l2.failures],
            [{ outcome: 'timeout' }, l2.timeouts],
            [{ outcome: 'circuit_open' }, l2.refused],
          ]
    },
  ),
  // Objectives: the cache's own verdict over its window, and the numbers it compared (so an alert can show them).
  gauge(
    'slo_ok',
    '1 while every objective of the namespace is met over its window.',
    ['cache_namespace'],
    (s) =>
      Object.entries(s.slo()).map(([namespace, r]): Sample<number> => [
        { cache_namespace: namespace },
        r.ok ? 1 : 0,
      ]),
  ),
  gauge(
    'slo_value',
    'Each objective over its window: read_p99_seconds, stale_read_ratio; kind="objective" or "actual".',
    ['cache_namespace', 'objective', 'kind'],
    (s) =>
      Object.entries(s.slo()).flatMap(([namespace, r]): Sample<number>[] => {
        const labels = (objective: string, kind: string) => ({ cache_namespace: namespace, objective, kind })
        return [
          ...(r.readP99Ms === undefined
            ? []
            : ([
                [labels('read_p99_seconds', 'objective'), ms(r.readP99Ms.objective)],
                [labels('read_p99_seconds', 'actual'), ms(r.readP99Ms.actual)],
              ] as const)),
          ...(r.staleReads === undefined
            ? []
            : ([
                [labels('stale_read_ratio', 'objective'), r.staleReads.objective],
                [labels('stale_read_ratio', 'actual'), r.staleReads.actual],
              ] as const)),
        ]
      }),
  ),
  gauge('l1_entries', 'Entries in L1.', [], (s) => perCache(s.stats().l1?.entries)),
  gauge('l1_bytes', 'Bytes counted against the L1 budget.', [], (s) => perCache(s.stats().l1?.bytes)),
  counter('l1_evictions_total', 'L1 entries evicted for room.', [], (s) => perCache(s.stats().l1?.evictions)),
  gauge('l2_up', '1 when the L2 connection is ready.', [], (s) => {
    const l2 = s.stats().l2
    return perCache(l2 && (l2.status === 'ready' ? 1 : 0))
  }),
  gauge('l2_circuit_open', '1 while the circuit breaker skips L2.', [], (s) => {
    const l2 = s.stats().l2
    return perCache(l2 && (l2.circuit === 'closed' ? 0 : 1))
  }),
  gauge(
    'l2_slots_open',
    'On a Redis Cluster: slots whose read circuit is open (their master failed); their reads go to the loaders.',
    [],
    (s) => perCache(s.stats().l2?.slotsOpen),
  ),
  // The host tier: its hits per namespace (within hits_total{tier="l2"}), its failed calls, its connection.
  counter(
    'host_hits_total',
    'L2 lookups the host tier answered instead of L2 (also counted in hits_total{tier="l2"}).',
    ['cache_namespace'],
    (s) => (s.stats().host === undefined ? [] : perNamespace(s, (n) => n.hostHits)),
  ),
  counter(
    'host_errors_total',
    'Host tier calls that failed (each a host miss, or a copy not put or dropped).',
    [],
    (s) => perCache(s.stats().host?.errors),
  ),
  gauge('host_up', '1 when the host tier store is ready.', [], (s) => {
    const host = s.stats().host
    return perCache(host && (host.status === 'ready' ? 1 : 0))
  }),
  // The store's own counters (L2Store.stats(): the disk store keeps them), as L2 or as the host tier. Occupancy,
  // evictions and expiries are the store's, the same from every process sharing it; corrupt reads and refused
  // writes are this process's.
  gauge(
    'store_entries',
    "Records in the tier's store (entries, versions, locks, tag sets), expired ones until swept.",
    ['tier'],
    (s) => perStore(s, (store) => store.entries),
  ),
  gauge('store_bytes', "Bytes held by the tier's store, as counted against its budget.", ['tier'], (s) =>
    perStore(s, (store) => store.bytes),
  ),
  gauge('store_max_bytes', "The tier's store byte budget (maxBytes).", ['tier'], (s) =>
    perStore(s, (store) => store.maxBytes),
  ),
  counter(
    'store_evictions_total',
    "Entries the tier's store evicted for room, by any process sharing it.",
    ['tier'],
    (s) => perStore(s, (store) => store.evictions),
  ),
  counter(
    'store_expired_total',
    "Expired entries the tier's store swept, by any process sharing it.",
    ['tier'],
    (s) => perStore(s, (store) => store.expired),
  ),
  counter(
    'store_corrupt_reads_total',
    "Records of the tier's store this process could not parse (foreign or damaged bytes), each read as a miss.",
    ['tier'],
    (s) => perStore(s, (store) => store.corruptReads),
  ),
  counter(
    'store_too_large_total',
    "Writes the tier's store refused because the entry alone exceeds its byte budget.",
    ['tier'],
    (s) => perStore(s, (store) => store.tooLarge),
  ),
  counter('bus_messages_total', 'Invalidation bus messages, by direction.', ['direction'], (s) => {
    const bus = s.stats().bus
    return bus === undefined
      ? []
      : [
          [{ direction: 'sent' }, bus.sent],
          [{ direction: 'received' }, bus.received],
        ]
  }),
  gauge(
    'bus_lag_max_seconds',
    'Largest invalidation lag seen since start, publish to applied, in seconds.',
    [],
    (s) => {
      const bus = s.stats().bus
      return perCache(bus && ms(bus.lagMs.max))
    },
  ),
  gauge(
    'region_relay_lag_seconds',
    'Relay lag of the last entry applied from a peer region: appended there to applied here, in seconds.',
    ['region', 'peer_region'],
    (s) => perPeer(s, (p) => ms(p.lagMs.last)),
  ),
  gauge(
    'region_heard_ago_seconds',
    'Age of the last news from a peer region (its last entry applied here was sent this long ago), in seconds.',
    ['region', 'peer_region'],
    (s) => perPeer(s, (p) => ms(p.heardAgoMs)),
  ),
  gauge(
    'region_split',
    '1 while a peer region is not heard from for longer than regions.splitAfter.',
    ['region', 'peer_region'],
    (s) => perPeer(s, (p) => (p.split ? 1 : 0)),
  ),
  gauge(
    'region_backlog_entries',
    "Entries waiting in a peer region's outbox for this region, as last counted by this process's relay.",
    ['region', 'peer_region'],
    (s) => perPeer(s, (p) => p.backlog),
  ),
  counter(
    'region_relayed_total',
    "Entries of a peer region's outbox this process relayed (heartbeats included).",
    ['region', 'peer_region'],
    (s) => perPeer(s, (p) => p.relayed),
  ),
  counter(
    'region_splits_total',
    'Splits from a peer region seen since start.',
    ['region', 'peer_region'],
    (s) => perPeer(s, (p) => p.splits),
  ),
  counter(
    'region_outbox_overflows_total',
    "Times a peer region's outbox was found trimmed (regions.outboxMaxLength) past entries this region had not applied; each time every declared namespace was invalidated here.",
    ['region', 'peer_region'],
    (s) => perPeer(s, (p) => p.overflows),
  ),
  gauge(
    'region_last_converge_seconds',
    'After the last split, from the first replayed entry to the replay caught up (this process relayed it), in seconds.',
    ['region', 'peer_region'],
    (s) => perPeer(s, (p) => p.lastSplit && ms(p.lastSplit.convergeMs)),
  ),
  counter(
    'region_split_reads_total',
    'Reads during a region split, by outcome: refused (a strong or bounded namespace went to the source instead of a cached value) or served (an eventual namespace served a possibly stale value).',
    ['cache_namespace', 'region', 'outcome'],
    (s) => {
      const region = s.stats().regions?.region
      if (region === undefined) return []
      return perNamespace(s, (n) => [
        [{ region, outcome: 'refused' }, n.regionRefused],
        [{ region, outcome: 'served' }, n.regionSplitServes],
      ])
    },
  ),
]

/** One sample per tier whose store keeps its own counters (`L2Store.stats()`), labelled `tier`: `l2` or `host`. */
function perStore(source: Source, pick: (store: L2StoreStats) => number): Sample<number>[] {
  const { l2, host } = source.stats()
  return [
    ...(l2?.store === undefined ? [] : [[{ tier: 'l2' }, pick(l2.store)] as const]),
    ...(host?.store === undefined ? [] : [[{ tier: 'host' }, pick(host.store)] as const]),
  ]
}

/** One sample per peer region (none without `regions`), labelled `region` (this one) and `peer_region`. */
function perPeer(source: Source, pick: (peer: RegionPeerStats) => number | undefined): Sample<number>[] {
  const regions = source.stats().regions
  if (regions === undefined) return []
  return Object.values(regions.peers).flatMap((peer): Sample<number>[] => {
    const value = pick(peer)
    return value === undefined ? [] : [[{ region: regions.region, peer_region: peer.region }, value]]
  })
}

/** The metrics of one registry and prefix, and the caches they read. */
class Exporter {
  readonly sources = new Map<string, Source>()
  readonly #registry: Registry
  readonly #prefix: string
  readonly #metrics: readonly { readonly name: string; readonly metric: Metric }[]

  constructor(registry: Registry, prefix: string) {
    this.#registry = registry
    this.#prefix = prefix
    this.#metrics = DEFINITIONS.map((definition) => {
      const name = prefix + definition.name
      return { name, metric: this.#build(name, definition) }
    })
  }

  /**
   * Puts the metrics in the registry, unless they are there already. Checked before anything is registered, so a
   * name taken by other code (another library, a second copy of stratacache) registers nothing.
   * Also run when a cache joins metrics already registered: `registry.clear()` may have removed them since.
   */
  register(): void {
    for (const { name, metric } of this.#metrics) {
      const there = this.#registry.getSingleMetric(name)
      if (there !== undefined && there !== metric) {
        throw new InvalidOptionError(
          'prefix',
          this.#prefix,
          `a prefix whose metric names are free in the registry (${name} is registered by other code; pass ` +
            'another `prefix` or `registry`)',
        )
      }
    }
    for (const { name, metric } of this.#metrics) {
      if (this.#registry.getSingleMetric(name) !== metric) this.#registry.registerMetric(metric)
    }
  }

  /** Removes the metrics from the registry: ours only, if other code replaced one since. */
  unregister(): void {
    for (const { name, metric } of this.#metrics) {
      if (this.#registry.getSingleMetric(name) === metric) this.#registry.removeSingleMetric(name)
    }
  }

  /** Samples of every cache, each labelled with its `cache`. */
  #samples<T>(definition: Definition): Sample<T>[] {
    const out: Sample<T>[] = []
    for (const [cache, source] of this.sources) {
      for (const [labels, value] of definition.read(source) as readonly Sample<T>[])
        out.push([{ cache, ...labels }, value])
    }
    return out
  }

  #build(name: string, definition: Definition): Metric {
    const { help, type } = definition
    const labelNames = ['cache', ...definition.labelNames]
    const samples = <T>() => this.#samples<T>(definition)
    // Counters report running totals: reset, then one increment from zero per label set. Gauges set their value.
    if (type === 'counter') {
      return new Counter({
        name,
        help,
        labelNames,
        registers: [],
        collect() {
          this.reset()
          for (const [labels, value] of samples<number>()) this.inc(labels, value)
        },
      })
    }
    if (type === 'gauge') {
      return new Gauge({
        name,
        help,
        labelNames,
        registers: [],
        collect() {
          this.reset()
          for (const [labels, value] of samples<number>()) this.set(labels, value)
        },
      })
    }
    // Histograms come as snapshots (bucket counts): exposed as they are, in seconds, with cumulative buckets.
    const get = () => {
      const values: { metricName: string; labels: Labels; value: number }[] = []
      for (const [labels, h] of samples<HistogramSnapshot>()) {
        let cumulative = 0
        h.counts.forEach((count, i) => {
          cumulative += count
          const bound = h.bucketsMs[i]!
          const le = bound === Infinity ? '+Inf' : String(ms(bound))
          values.push({ metricName: `${name}_bucket`, labels: { ...labels, le }, value: cumulative })
        })
        values.push({ metricName: `${name}_sum`, labels, value: ms(h.sumMs) })
        values.push({ metricName: `${name}_count`, labels, value: h.count })
      }
      return Promise.resolve({ name, help, type, aggregator: 'sum', values })
    }
    return { name, help, type, aggregator: 'sum', labelNames, get, reset: () => {} } as unknown as Metric
  }
}

/** Per registry, per prefix. */
const exporters = new WeakMap<Registry, Map<string, Exporter>>()

/**
 * Exports `cache`'s metrics to a prom-client registry. Values are read from `cache.stats()` when Prometheus
 * scrapes, so the read path pays nothing for them. Several caches can share a registry: the metrics are registered
 * once, and each cache adds its series under the label `cache` (its `service`), which must differ between them.
 * Other labels: `cache_namespace`, and `tier`, `reason`, `outcome`… where they apply.
 *
 * @returns a handle whose `unregister()` stops exporting this cache.
 * @throws InvalidArgumentError when a cache with the same `service` is already exported to this registry and prefix.
 * @throws InvalidOptionError for a prefix Prometheus refuses, or whose names other code registered.
 * @throws UnknownOptionError for a key `PrometheusOptions` does not have (`registery`), before anything is registered.
 *
 * @example
 * import { register } from 'prom-client'
 * import { prometheusMetrics } from 'stratacache/prometheus'
 * const metrics = prometheusMetrics(cache)
 * app.get('/metrics', async () => register.metrics())
 * // on shutdown, or before exporting another cache under the same service:
 * metrics.unregister()
 */
export function prometheusMetrics(cache: Cache, options: PrometheusOptions = {}): PrometheusMetrics {
  // Before the registry is chosen: `registery` ignored would register on prom-client's global registry.
  rejectUnknown(options, PROMETHEUS_OPTION_KEYS, { where: 'prometheusMetrics()', at: (path) => path })
  const registry = options.registry ?? defaultRegistry
  const prefix = options.prefix ?? 'stratacache_'
  if (typeof prefix !== 'string' || !/^[a-zA-Z_:][a-zA-Z0-9_:]*$/.test(prefix)) {
    throw new InvalidOptionError('prefix', prefix, "a Prometheus metric name prefix such as 'stratacache_'")
  }
  let byPrefix = exporters.get(registry)
  if (byPrefix === undefined) exporters.set(registry, (byPrefix = new Map<string, Exporter>()))
  const exporter = byPrefix.get(prefix) ?? new Exporter(registry, prefix)
  const service = cache.service
  if (exporter.sources.has(service)) {
    throw new InvalidArgumentError(
      'cache',
      service,
      'a cache whose service no other exported cache of this registry and prefix has (its series would mix with ' +
        "theirs); call the other's unregister() first",
    )
  }
  exporter.register()
  byPrefix.set(prefix, exporter)
  const source = new Source(cache)
  exporter.sources.set(service, source)
  return {
    unregister: () => {
      // Only this registration: the service may be exported again, by another cache, since.
      if (exporter.sources.get(service) !== source) return
      exporter.sources.delete(service)
      if (exporter.sources.size > 0) return
      exporter.unregister()
      if (byPrefix.get(prefix) === exporter) byPrefix.delete(prefix)
    },
  }
}
