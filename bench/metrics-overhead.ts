// Scenario metrics-overhead: what observability costs an L1 hit. The same awaited L1 hit, four ways: nothing
// subscribed; the Prometheus exporter, OpenTelemetry metrics and an objective registered (all read at collection
// time); plus per-tenant labels (a function call per read); plus OpenTelemetry spans (every get traced).
import { BasicTracerProvider } from '@opentelemetry/sdk-trace-base'
import { MeterProvider } from '@opentelemetry/sdk-metrics'
import { Registry } from 'prom-client'
import { createCache } from '../dist/index.js'
import { openTelemetry } from '../dist/opentelemetry.js'
import { prometheusMetrics } from '../dist/prometheus.js'
import { product, productNamespace, productParams, TTL_MS, type ProductParams } from './fixtures.js'
import {
  formatOps,
  markdownTable,
  runRounds,
  throughput,
  type Contestant,
  type Scenario,
  type ScenarioContext,
  type ScenarioReport,
} from './harness.js'

const KEYS = 1_000
const ROUND_MS = 200
const MAX_OPS = 5_000_000
const REFERENCE = 'metrics off'
/** The bound: the hit path with metrics on within 15% of metrics off. */
const TARGET_RATIO = 0.85

export const metricsOverhead: Scenario = {
  name: 'metrics-overhead',
  title: 'Observability cost on the L1 hit path',
  needsRedis: false,
  run,
}

async function run(context: ScenarioContext): Promise<ScenarioReport> {
  const params = productParams(KEYS)
  const closers: (() => Promise<unknown>)[] = []
  try {
    const contestants = await setup(params, closers)
    const result = await runRounds({
      scenario: 'metrics-overhead',
      contestants,
      reference: REFERENCE,
      rounds: context.rounds ?? 11,
      warmupRounds: 2,
      log: context.log,
    })
    const ops = (name: string) => result.contestants.find((c) => c.name === name)!.median.opsPerSec!
    const ratio = ops('metrics on') / ops(REFERENCE)
    return {
      sections: [
        {
          title: `Awaited L1 hits, ${KEYS.toLocaleString('en')} warmed keys cycled, ~${ROUND_MS} ms per contestant per round`,
          table: markdownTable(result, [
            { metric: 'opsPerSec', label: 'ops/s', format: formatOps, range: true, ratio: true },
          ]),
          notes: [
            '"metrics off" still keeps its counters (they are not optional); nothing is subscribed or registered.',
            '"metrics on": prometheusMetrics() on its own registry, openTelemetry() with metrics only (an SDK ' +
              'MeterProvider, no reader), and `slo: { readP99 }` on the namespace: all read at collection time.',
            '"+ labels": also `labels: ({ tenantId }) => ({ tenant: String(tenantId) })`, called on every read.',
            '"+ spans": openTelemetry() spans and durations with an SDK tracer (no processor: spans are made and ' +
              'dropped); subscribed only during its own rounds, since tracing channels are process-wide.',
          ],
        },
      ],
      targets: [
        {
          text: `L1 hit with metrics on >= ${TARGET_RATIO}x of metrics off`,
          met: ratio >= TARGET_RATIO,
          measured: `${ratio.toFixed(2)}x (labels ${(ops('+ labels') / ops(REFERENCE)).toFixed(2)}x, spans ${(ops('+ spans') / ops(REFERENCE)).toFixed(2)}x)`,
        },
      ],
      results: [result],
    }
  } finally {
    for (const close of closers.reverse()) await close()
  }
}

async function setup(
  params: readonly ProductParams[],
  closers: (() => Promise<unknown>)[],
): Promise<Contestant[]> {
  const meterProvider = new MeterProvider()
  closers.push(() => meterProvider.shutdown())
  const tracerProvider = new BasicTracerProvider()
  closers.push(() => tracerProvider.shutdown())

  const make = async (name: string, observed: 'off' | 'metrics' | 'labels' | 'spans') => {
    const cache = createCache({ service: `bench-${observed}`, l1: { maxEntries: 10_000 } })
    closers.push(() => cache.close())
    const ns = cache.namespace('product', {
      ...productNamespace,
      ttl: TTL_MS,
      load: (p: ProductParams) => product(p),
      ...(observed === 'off' ? {} : { slo: { readP99: '100ms' } }),
      ...(observed === 'labels' || observed === 'spans'
        ? { labels: ({ tenantId }: ProductParams) => ({ tenant: String(tenantId) }) }
        : {}),
    })
    if (observed !== 'off') {
      prometheusMetrics(cache, { registry: new Registry() })
      openTelemetry(cache, { meter: meterProvider.getMeter(name), spans: false })
    }
    for (const p of params) await ns.get(p)
    let cursor = 0
    const contestant: Contestant = {
      name,
      call: '`await ns.get(params)`',
      async measure() {
        const tracing =
          observed === 'spans'
            ? openTelemetry(cache, {
                tracer: tracerProvider.getTracer('bench'),
                metrics: false,
                durations: true,
              })
            : undefined
        try {
          const before = ns.stats()
          const opsPerSec = await throughput(
            async (n) => {
              for (let i = 0; i < n; i++) {
                await ns.get(params[cursor]!)
                cursor = cursor + 1 === params.length ? 0 : cursor + 1
              }
            },
            { timeMs: ROUND_MS, maxOps: MAX_OPS },
          )
          if (ns.stats().misses !== before.misses) throw new Error(`${name} missed L1 during a round`)
          return { opsPerSec }
        } finally {
          tracing?.stop()
        }
      },
    }
    return contestant
  }
  return [
    await make('metrics off', 'off'),
    await make('metrics on', 'metrics'),
    await make('+ labels', 'labels'),
    await make('+ spans', 'spans'),
  ]
}
