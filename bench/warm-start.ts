// Scenario warm-start: the first minute after a restart, with and without `cache.warmStart()` (issue #18).
//
// A first process serves a Zipf workload until its L1 holds the hot set, then closes with
// `close({ saveHotKeys })`, which saves its hottest keys in L2. Each round, a new process (a new cache on the same
// Redis) serves the next minute of the same workload, once cold and once after `warmStart()` (which copies the
// saved keys' L2 entries into L1 before traffic). Hit ratios depend on the order of requests, not on their timing,
// so "a minute" is the requests of a minute at the demo's rate, replayed as fast as they go.
import { createCache, type Cache } from '../dist/index.js'
import { redisStore } from '../dist/redis.js'
import {
  formatCount,
  markdownTable,
  runRounds,
  type Contestant,
  type Metrics,
  type Scenario,
  type ScenarioContext,
  type ScenarioReport,
} from './harness.js'
import { random, zipf } from './workloads.js'

/** Distinct keys of the workload, and the L1 size (a tenth of them). */
const KEYS = 20_000
const L1_ENTRIES = 2_000
/** Zipf exponent: a skew typical of catalog reads. */
const SKEW = 1.0
/** Requests per second of the "first minute", the demo's load generator's default order of magnitude. */
const RATE = 500
const FIRST_MINUTE = 60 * RATE
/** Requests the previous process serves before it closes (enough for its frequency sketch to know the hot set). */
const BEFORE = 100_000
/** The first minute's slices reported on their own: the first 10 s, and the whole minute. */
const FIRST_SLICE = 10 * RATE
const CONCURRENCY = 50
const PHASE_LIMIT_MS = 60_000
const SERVICE = 'bench-warm-start'

export const warmStart: Scenario = {
  name: 'warm-start',
  title: 'L1 hit ratio in the first minute after a restart, with and without warm start',
  needsRedis: true,
  run,
}

function newCache(url: string): { cache: Cache; ns: ReturnType<typeof declare>; loads: { count: number } } {
  const cache = createCache({
    service: SERVICE,
    l1: { maxEntries: L1_ENTRIES },
    l2: redisStore({ url }),
    timeouts: { l2: '1s' },
    logger: false,
  })
  const loads = { count: 0 }
  return { cache, ns: declare(cache, loads), loads }
}

function declare(cache: Cache, loads: { count: number }) {
  return cache.namespace('item', {
    key: 'item:{id}',
    ttl: '1h',
    load: ({ id }: { id: number }) => {
      loads.count++
      return { id, name: `item ${id}`, price: id % 997 }
    },
  })
}

/** Serves `ids` in request order with CONCURRENCY callers (bounded in time). */
async function serve(ns: ReturnType<typeof declare>, ids: Int32Array): Promise<void> {
  let next = 0
  const deadline = performance.now() + PHASE_LIMIT_MS
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < ids.length && performance.now() < deadline) await ns.get({ id: ids[next++]! })
    }),
  )
}

async function run(context: ScenarioContext): Promise<ScenarioReport> {
  const url = context.redisUrl
  if (url === undefined) throw new Error('warm-start needs a redis-server')
  const draw = zipf(KEYS, SKEW, random(42))
  const before = Int32Array.from({ length: BEFORE }, draw)
  const minute = Int32Array.from({ length: FIRST_MINUTE }, draw)

  // The previous process: serves, then saves its hot keys on close.
  const previous = newCache(url)
  await previous.cache.connect()
  await serve(previous.ns, before)
  const previousHitRatio = previous.ns.stats().hitRatio
  await previous.cache.close({ saveHotKeys: L1_ENTRIES })

  let warmedKeys = 0
  let warmMs = 0
  const arm = (warm: boolean): Contestant => ({
    name: warm ? 'warm start' : 'cold start',
    call: warm ? '`await cache.warmStart()`, then traffic' : 'traffic at once',
    async measure(): Promise<Metrics> {
      const next = newCache(url)
      try {
        await next.cache.connect()
        if (warm) {
          const result = await next.cache.warmStart()
          warmedKeys = result.namespaces['item']!.warmed
          warmMs = result.durationMs
        }
        // The first 10 s, then the rest of the minute: two phases, so the first slice's count is exact.
        await serve(next.ns, minute.subarray(0, FIRST_SLICE))
        const slice = next.ns.stats().l1Hits
        await serve(next.ns, minute.subarray(FIRST_SLICE))
        const stats = next.ns.stats()
        return {
          firstSliceL1: slice / FIRST_SLICE,
          minuteL1: stats.l1Hits / FIRST_MINUTE,
          minuteL2: stats.l2Hits,
          minuteLoads: next.loads.count,
        }
      } finally {
        await next.cache.close()
      }
    },
  })
  const result = await runRounds({
    scenario: 'warm-start',
    contestants: [arm(false), arm(true)],
    reference: 'cold start',
    rounds: context.rounds ?? 3,
    warmupRounds: 0,
    log: context.log,
  })
  const percent = (value: number) => `${(value * 100).toFixed(1)}%`
  const median = (name: string, metric: string) =>
    result.contestants.find((c) => c.name === name)!.median[metric]!
  const gain = median('warm start', 'minuteL1') - median('cold start', 'minuteL1')
  return {
    sections: [
      {
        title:
          `Zipf ${SKEW} over ${KEYS.toLocaleString('en')} keys, L1 ${L1_ENTRIES.toLocaleString('en')} entries; ` +
          `the first minute at ${RATE} requests/s (${FIRST_MINUTE.toLocaleString('en')} requests)`,
        table: markdownTable(result, [
          { metric: 'firstSliceL1', label: 'L1 hit ratio, first 10 s', format: percent },
          { metric: 'minuteL1', label: 'L1 hit ratio, first minute', format: percent },
          { metric: 'minuteL2', label: 'L2 reads, first minute', format: formatCount },
          { metric: 'minuteLoads', label: 'loader calls', format: formatCount },
        ]),
        notes: [
          `The previous process served ${BEFORE.toLocaleString('en')} requests of the same workload (L1 hit ratio ` +
            `${percent(previousHitRatio)}) and closed with \`close({ saveHotKeys: ${L1_ENTRIES} })\`.`,
          `warmStart() copied ${warmedKeys.toLocaleString('en')} entries from L2 into L1 in ${warmMs.toFixed(0)} ms ` +
            '(last round), without loader calls. Every L1 miss here is an L2 read (Redis holds every key).',
        ],
      },
    ],
    targets: [
      {
        text: 'warm start raises the first minute L1 hit ratio',
        met: gain > 0,
        measured: `${(gain * 100).toFixed(1)} points`,
      },
    ],
    results: [result],
  }
}
