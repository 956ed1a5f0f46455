// OpenTelemetry: spans around get, getMany and load from the tracing channels, metrics from cache.stats(), through
// @opentelemetry/api only (a no-op until the application registers an SDK).
import diagnosticsChannel from 'node:diagnostics_channel'
import { createRequire } from 'node:module'
import {
  metrics as otelMetrics,
  SpanKind,
  SpanStatusCode,
  trace as otelTrace,
  type Attributes,
  type Histogram,
  type Meter,
  type Span,
  type Tracer,
} from '@opentelemetry/api'
import type { Cache, CacheStats } from '../cache.js'
import { rejectUnknown, type OptionKeys } from '../core/known-options.js'
import {
  channelNames,
  tracingChannelNames,
  type BusReceivedMessage,
  type GetManyTraceContext,
  type GetTraceContext,
  type LoadTraceContext,
} from './channels.js'

/** The installed stratacache's version: the scope version of the default tracer and meter. */
// This file is src/observability/ or dist/observability/: package.json is two levels up from either.
const { version: VERSION } = createRequire(import.meta.url)('../../package.json') as { version: string }

export interface OpenTelemetryOptions {
  /** @default trace.getTracer('stratacache', version) from the global tracer provider */
  tracer?: Tracer
  /** @default metrics.getMeter('stratacache', version) from the global meter provider */
  meter?: Meter
  /** Spans around every `get`, `getMany` and loader call. They cost about a microsecond per L1 hit. @default true */
  spans?: boolean
  /** Metrics: counters and gauges read from `cache.stats()` at collection; nothing per read. @default true */
  metrics?: boolean
  /**
   * Histograms of get and load durations, recorded per call. They need the tracing channels, like spans (about a
   * microsecond per L1 hit), so they follow `spans` unless set. @default spans && metrics
   */
  durations?: boolean
}

/** Every key of `OpenTelemetryOptions`, checked against the type by the compiler. */
const OPEN_TELEMETRY_OPTION_KEYS = {
  tracer: true,
  meter: true,
  spans: true,
  metrics: true,
  durations: true,
} as const satisfies OptionKeys<OpenTelemetryOptions>

interface Traced {
  span?: Span
  started: number
}

/**
 * Reports `cache` to OpenTelemetry. Spans `stratacache.get`, `stratacache.getMany` and `stratacache.load` carry the
 * service, namespace, outcome, and the tier (`get`) or number of keys (`getMany`, `load`); never key values or cached
 * data, which may be personal data. Metrics: `stratacache.reads` (by tier), `stratacache.misses`,
 * `stratacache.loads`, `stratacache.load.errors`, `stratacache.stale_served` (by reason), `stratacache.l2.calls` (by
 * outcome), `stratacache.l1.entries`, and the histograms `stratacache.get.duration`, `stratacache.load.duration` and
 * `stratacache.invalidation.lag` (seconds); every one carries `stratacache.service`, and `stratacache.namespace` where
 * it is per namespace. With `regions`, `stratacache.stale_served` and the `stratacache.region.*` instruments also
 * carry `stratacache.region`. With a host tier, `stratacache.host.hits` and `stratacache.host.errors`; for a tier
 * whose store keeps its own counters (the disk store), `stratacache.store.corrupt_reads`, `.evictions` and `.bytes`,
 * by `stratacache.tier`. Returns `stop()`, which unsubscribes (metrics stay registered with the meter, reading a
 * closed cache's last counters).
 *
 * @example
 * import { openTelemetry } from 'stratacache/opentelemetry'
 * openTelemetry(cache) // after the OpenTelemetry SDK is started
 */
export function openTelemetry(cache: Cache, options: OpenTelemetryOptions = {}): { stop(): void } {
  // Before anything subscribes or registers: `meterProvder` ignored would report to the global meter provider.
  rejectUnknown(options, OPEN_TELEMETRY_OPTION_KEYS, { where: 'openTelemetry()', at: (path) => path })
  const service = cache.service
  const tracer = options.tracer ?? otelTrace.getTracer('stratacache', VERSION)
  const meter = options.meter ?? otelMetrics.getMeter('stratacache', VERSION)
  const spans = options.spans ?? true
  const withMetrics = options.metrics ?? true
  const durations = options.durations ?? (spans && withMetrics)
  const traced = new WeakMap<object, Traced>()
  const stops: (() => void)[] = []

  const getDuration = durations
    ? meter.createHistogram('stratacache.get.duration', {
        unit: 's',
        description: 'ns.get, by tier and outcome.',
      })
    : undefined
  const loadDuration = durations
    ? meter.createHistogram('stratacache.load.duration', {
        unit: 's',
        description: 'Loader calls, by outcome.',
      })
    : undefined

  /**
   * Spans (and a duration histogram) from one tracing channel. The histogram records the span's attributes but
   * `extra` (a batch size, too many distinct values for a metric): service, namespace, `attributes`, outcome.
   */
  const subscribe = <C extends { service: string; namespace: string; error?: unknown }>(
    name: string,
    spanName: string,
    attributes: (context: C) => Attributes,
    extra: (context: C) => Attributes,
    histogram: Histogram | undefined,
  ) => {
    const handlers = {
      start: (message: unknown) => {
        const context = message as C
        if (context.service !== service) return
        const entry: Traced = { started: performance.now() }
        if (spans) {
          entry.span = tracer.startSpan(spanName, {
            kind: SpanKind.INTERNAL,
            attributes: { 'stratacache.service': service, 'stratacache.namespace': context.namespace },
          })
        }
        traced.set(context, entry)
      },
      asyncEnd: (message: unknown) => {
        const context = message as C
        const entry = traced.get(context)
        if (entry === undefined) return
        traced.delete(context)
        const failed = context.error !== undefined
        const done: Attributes = {
          'stratacache.service': service,
          'stratacache.namespace': context.namespace,
          ...attributes(context),
          'stratacache.outcome': failed ? 'error' : 'ok',
        }
        histogram?.record((performance.now() - entry.started) / 1_000, done)
        const span = entry.span
        if (span === undefined) return
        span.setAttributes({ ...done, ...extra(context) })
        if (failed) {
          // The error's type or code only: stratacache's messages name the key, and a loader's may hold anything.
          const kind = errorKind(context.error)
          span.recordException({ name: kind, message: kind })
          span.setStatus({ code: SpanStatusCode.ERROR, message: kind })
        }
        span.end()
      },
    }
    const channel = diagnosticsChannel.tracingChannel(name)
    channel.subscribe(handlers as Parameters<typeof channel.subscribe>[0])
    stops.push(() => channel.unsubscribe(handlers as Parameters<typeof channel.unsubscribe>[0]))
  }

  const none = () => ({})
  if (spans || durations) {
    subscribe<GetTraceContext>(
      tracingChannelNames.get,
      'stratacache.get',
      (c) => ({ 'stratacache.tier': c.tier ?? 'none' }),
      none,
      getDuration,
    )
    subscribe<LoadTraceContext>(
      tracingChannelNames.load,
      'stratacache.load',
      none,
      (c) => ({ 'stratacache.keys': c.keys }),
      loadDuration,
    )
  }
  if (spans) {
    subscribe<GetManyTraceContext>(
      tracingChannelNames.getMany,
      'stratacache.getMany',
      none,
      (c) => ({ 'stratacache.keys': c.keys }),
      undefined,
    )
  }

  if (withMetrics) {
    observeStats(cache, meter)
    stops.push(recordInvalidationLag(cache, meter))
  }
  return {
    stop: () => {
      for (const stop of stops.splice(0)) stop()
    },
  }
}

/**
 * `stratacache.invalidation.lag` (s): each bus message from another process naming a namespace of `cache`, by the
 * time from its publication to its entries dropped here (on Redis's clock), as `stats().namespaces[ns].latencyMs
 * .invalidation` counts them. Recorded per message (a histogram cannot be read from stats at collection); messages
 * are few next to reads. Returns the unsubscribe.
 */
function recordInvalidationLag(cache: Cache, meter: Meter): () => void {
  const lag = meter.createHistogram('stratacache.invalidation.lag', {
    unit: 's',
    description:
      "Invalidations from other processes, publication to applied here (on Redis's clock), by namespace.",
  })
  // The declared names, read again only for a name not in them (a namespace declared since): not per message.
  let declared = new Set<string>()
  const isDeclared = (name: string) =>
    declared.has(name) || (declared = new Set(cache.namespaces().map((ns) => ns.name))).has(name)
  const onMessage = (message: unknown) => {
    const m = message as BusReceivedMessage
    if (m.service !== cache.service || !isDeclared(m.namespace)) return
    lag.record(m.lagMs / 1_000, { 'stratacache.service': m.service, 'stratacache.namespace': m.namespace })
  }
  diagnosticsChannel.subscribe(channelNames.busReceived, onMessage)
  return () => diagnosticsChannel.unsubscribe(channelNames.busReceived, onMessage)
}

/** Counters and gauges read from one `cache.stats()` per collection. */
function observeStats(cache: Cache, meter: Meter): void {
  const counter = (name: string, description: string) => meter.createObservableCounter(name, { description })
  const gauge = (name: string, description: string) => meter.createObservableGauge(name, { description })
  const reads = counter('stratacache.reads', 'Reads served from a tier (l1, l2).')
  const misses = counter('stratacache.misses', 'Reads no tier could answer.')
  const loads = counter('stratacache.loads', 'Loader calls.')
  const loadErrors = counter('stratacache.load.errors', 'Loader calls that failed.')
  const stale = counter('stratacache.stale_served', 'Stale values served, by reason.')
  const l2Calls = counter(
    'stratacache.l2.calls',
    'L2 calls that settled, by outcome (counted as each settles).',
  )
  const l1Entries = gauge('stratacache.l1.entries', 'Entries in L1.')
  const relayLag = gauge(
    'stratacache.region.relay_lag',
    'Relay lag of the last entry from a peer region, in ms.',
  )
  const regionSplit = gauge('stratacache.region.split', '1 while a peer region is split from this one.')
  const splitReads = counter('stratacache.region.split_reads', 'Reads during a region split, by outcome.')
  const outboxOverflows = counter(
    'stratacache.region.outbox_overflows',
    "Times a peer region's outbox was found trimmed past entries not yet applied here (all namespaces invalidated).",
  )
  const hostHits = counter(
    'stratacache.host.hits',
    'L2 lookups the host tier answered (within reads{tier=l2}).',
  )
  const hostErrors = counter('stratacache.host.errors', 'Host tier calls that failed (each a host miss).')
  const storeCorruptReads = counter(
    'stratacache.store.corrupt_reads',
    "Records of the tier's store this process could not parse, each read as a miss; by tier (l2, host).",
  )
  const storeEvictions = counter(
    'stratacache.store.evictions',
    "Entries the tier's store evicted for room, by any process sharing it; by tier (l2, host).",
  )
  const storeBytes = meter.createObservableGauge('stratacache.store.bytes', {
    unit: 'By',
    description: "Bytes held by the tier's store, as counted against its budget; by tier (l2, host).",
  })
  const service = { 'stratacache.service': cache.service }
  meter.addBatchObservableCallback(
    (result) => {
      const s: CacheStats = cache.stats()
      const observe = (
        instrument: Parameters<typeof result.observe>[0],
        value: number,
        attributes: Attributes,
      ) => result.observe(instrument, value, { ...service, ...attributes })
      // With regions, the stale serves carry this region like the region instruments; without, no region attribute.
      const here: Attributes = s.regions === undefined ? {} : { 'stratacache.region': s.regions.region }
      for (const [namespace, n] of Object.entries(s.namespaces)) {
        const ns = { 'stratacache.namespace': namespace }
        observe(reads, n.l1Hits, { ...ns, 'stratacache.tier': 'l1' })
        observe(reads, n.l2Hits, { ...ns, 'stratacache.tier': 'l2' })
        observe(misses, n.misses, ns)
        observe(loads, n.loads, ns)
        observe(loadErrors, n.loadErrors, ns)
        const region = { ...ns, ...here }
        observe(stale, n.staleServed.swr, { ...region, 'stratacache.reason': 'swr' })
        observe(stale, n.staleServed.failSafe, { ...region, 'stratacache.reason': 'fail_safe' })
        observe(stale, n.staleServed.softTimeout, { ...region, 'stratacache.reason': 'soft_timeout' })
        observe(stale, n.staleServed.busOutage, { ...region, 'stratacache.reason': 'bus_outage' })
        if (s.regions !== undefined) {
          observe(splitReads, n.regionRefused, { ...region, 'stratacache.outcome': 'refused' })
          observe(splitReads, n.regionSplitServes, { ...region, 'stratacache.outcome': 'served' })
        }
        if (s.host !== undefined) observe(hostHits, n.hostHits, ns)
      }
      if (s.host !== undefined) observe(hostErrors, s.host.errors, {})
      // The store's own counters (L2Store.stats(), which the disk store keeps), for the tiers whose store has them.
      for (const [tier, store] of [
        ['l2', s.l2?.store],
        ['host', s.host?.store],
      ] as const) {
        if (store === undefined) continue
        observe(storeCorruptReads, store.corruptReads, { 'stratacache.tier': tier })
        observe(storeEvictions, store.evictions, { 'stratacache.tier': tier })
        observe(storeBytes, store.bytes, { 'stratacache.tier': tier })
      }
      for (const peer of Object.values(s.regions?.peers ?? {})) {
        const pair = { 'stratacache.region': s.regions!.region, 'stratacache.peer_region': peer.region }
        observe(relayLag, peer.lagMs.last, pair)
        observe(regionSplit, peer.split ? 1 : 0, pair)
        observe(outboxOverflows, peer.overflows, pair)
      }
      if (s.l1 !== undefined) observe(l1Entries, s.l1.entries, {})
      if (s.l2 !== undefined) {
        observe(l2Calls, s.l2.succeeded, {
          'stratacache.outcome': 'ok',
        })
        observe(l2Calls, s.l2.failures, { 'stratacache.outcome': 'failed' })
        observe(l2Calls, s.l2.timeouts, { 'stratacache.outcome': 'timeout' })
        observe(l2Calls, s.l2.refused, { 'stratacache.outcome': 'circuit_open' })
      }
    },
    [
      reads,
      misses,
      loads,
      loadErrors,
      stale,
      l2Calls,
      l1Entries,
      relayLag,
      regionSplit,
      splitReads,
      outboxOverflows,
      hostHits,
      hostErrors,
      storeCorruptReads,
      storeEvictions,
      storeBytes,
    ],
  )
}

/** `ERR_STRATA_…` for stratacache's errors, the class name for others. */
function errorKind(error: unknown): string {
  if (typeof error === 'object' && error !== null) {
    const code = (error as { code?: unknown }).code
    if (typeof code === 'string') return code
    const name = (error as { name?: unknown }).name
    if (typeof name === 'string') return name
  }
  return 'Error'
}
