// Every exported counter only grows, scraped over and over while Redis is frozen (SIGSTOP) and thawed (SIGCONT)
// under load: Prometheus `_total` counters and histogram buckets, and OpenTelemetry's monotonic sums.
import { MeterProvider, MetricReader, DataPointType } from '@opentelemetry/sdk-metrics'
import { Registry } from 'prom-client'
import { createCache } from 'stratacache'
import { openTelemetry } from 'stratacache/opentelemetry'
import { prometheusMetrics } from 'stratacache/prometheus'
import { redisStore } from 'stratacache/redis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startRedis, type RedisServer } from '../helpers/redis-server.js'
import { sleep } from './support.js'

class TestReader extends MetricReader {
  protected onForceFlush(): Promise<void> {
    return Promise.resolve()
  }
  protected onShutdown(): Promise<void> {
    return Promise.resolve()
  }
}

/** Scrapes at least, in each stretch of the test while Redis runs or is paused. */
const SCRAPES_PER_PHASE = 8

let redis: RedisServer
beforeAll(async () => {
  redis = await startRedis()
})
afterAll(async () => {
  redis.resume()
  await redis.stop()
})

/** Prometheus counters and histogram series (`_bucket`, `_sum`, `_count`) of one scrape, by series. */
function promCounters(text: string): Map<string, number> {
  const types = new Map<string, string>()
  const out = new Map<string, number>()
  for (const line of text.split('\n')) {
    const type = /^# TYPE (\S+) (\S+)$/.exec(line)
    if (type !== null) types.set(type[1]!, type[2]!)
    if (line.startsWith('#') || line === '') continue
    const series = line.slice(0, line.lastIndexOf(' '))
    const name = /^[^{ ]+/.exec(series)![0]
    const base = name.replace(/_(bucket|sum|count)$/, '')
    if (types.get(name) === 'counter' || types.get(base) === 'histogram') {
      out.set(series, Number(line.slice(line.lastIndexOf(' ') + 1)))
    }
  }
  return out
}

/** Series that went down from one scrape to the next: `series: before -> after`. */
function decreases(before: Map<string, number>, after: Map<string, number>): string[] {
  const down: string[] = []
  for (const [series, value] of after) {
    const was = before.get(series)
    if (was !== undefined && value < was) down.push(`${series}: ${was} -> ${value}`)
  }
  for (const series of before.keys()) if (!after.has(series)) down.push(`${series}: gone`)
  return down
}

describe('exported counters while Redis pauses and resumes under load', () => {
  it('never decrease between scrapes, in Prometheus or OpenTelemetry', async () => {
    const cache = createCache({
      service: 'monotonic',
      l2: redisStore({ url: redis.url }),
      timeouts: { l2: 100 },
      circuitBreaker: { breakFor: 150 },
    })
    const registry = new Registry()
    const prom = prometheusMetrics(cache, { registry })
    const reader = new TestReader()
    const meterProvider = new MeterProvider({ readers: [reader] })
    const otel = openTelemetry(cache, { meter: meterProvider.getMeter('test') })
    await cache.connect()
    const ns = cache.namespace('item', {
      key: 'item:{id}',
      ttl: '200ms',
      load: async ({ id }) => {
        await sleep(2)
        return { id: String(id) }
      },
    })

    let running = true
    const workers = Array.from({ length: 8 }, async (_, w) => {
      for (let i = 0; running; i++) {
        const id = String((i * 7 + w) % 200)
        await (i % 5 === 0 ? ns.set({ id }, { id }) : ns.get({ id })).catch(() => undefined)
        if (i % 20 === 0) await sleep(1)
      }
    })

    const problems: string[] = []
    let prevProm = new Map<string, number>()
    let prevOtel = new Map<string, number>()
    let scrapes = 0
    const scrape = async () => {
      const nowProm = promCounters(await registry.metrics())
      problems.push(...decreases(prevProm, nowProm).map((d) => `prometheus ${d}`))
      prevProm = nowProm
      const nowOtel = new Map<string, number>()
      const { resourceMetrics } = await reader.collect()
      for (const scope of resourceMetrics.scopeMetrics) {
        for (const metric of scope.metrics) {
          const monotonic = metric.dataPointType === DataPointType.SUM && metric.isMonotonic
          if (!monotonic && metric.dataPointType !== DataPointType.HISTOGRAM) continue
          for (const point of metric.dataPoints) {
            const value = point.value as number | { count: number }
            nowOtel.set(
              `${metric.descriptor.name}${JSON.stringify(point.attributes)}`,
              typeof value === 'number' ? value : value.count,
            )
          }
        }
      }
      problems.push(...decreases(prevOtel, nowOtel).map((d) => `opentelemetry ${d}`))
      prevOtel = nowOtel
      scrapes++
    }

    const scraping = (async () => {
      while (running) {
        await scrape()
        await sleep(5)
      }
    })()
    // Each phase lasts its time and at least SCRAPES_PER_PHASE scrapes (56 in all), however slow the machine: every
    // pause and every resume is scraped on both sides, where a counter reset by the outage or the reconnection would
    // show as a decrease.
    const phase = async (ms: number) => {
      const enough = scrapes + SCRAPES_PER_PHASE
      await sleep(ms)
      await expect.poll(() => scrapes, { interval: 5 }).toBeGreaterThanOrEqual(enough)
    }
    for (let cycle = 0; cycle < 3; cycle++) {
      await phase(300)
      redis.pause()
      await phase(400)
      redis.resume()
    }
    await phase(300)
    running = false
    await Promise.all([...workers, scraping])
    await scrape()

    const l2 = cache.stats().l2!
    prom.unregister()
    otel.stop()
    await meterProvider.shutdown()
    await cache.close()

    expect(problems).toEqual([])
    // The outage was seen, and every call has settled: the outcomes add up to the calls.
    expect(l2.timeouts).toBeGreaterThan(0)
    expect(l2.succeeded).toBeGreaterThan(0)
    expect(l2.succeeded + l2.failures + l2.timeouts + l2.refused).toBeLessThanOrEqual(l2.calls)
    expect([...prevProm.keys()].some((s) => s.includes('l2_calls_total') && s.includes('outcome="ok"'))).toBe(
      true,
    )
  })
})
