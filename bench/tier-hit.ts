// Scenario tier-hit: what a hit costs in each tier, one caller: L1, the disk store as L2 (L1 off), Redis as L2 (L1
// off), and the disk store's own get (no decoding) as the floor of a disk hit.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createCache } from '../dist/index.js'
import { diskStore } from '../dist/disk.js'
import { redisStore } from '../dist/redis.js'
import { product, productNamespace, productParams, TTL_MS, type ProductParams } from './fixtures.js'
import {
  formatCount,
  formatOps,
  formatUs,
  markdownTable,
  quantile,
  runRounds,
  type Contestant,
  type Metrics,
  type Scenario,
  type ScenarioContext,
  type ScenarioReport,
} from './harness.js'

const KEYS = 1_000
/** Sequential awaited gets per contestant per round. */
const CALLS = 5_000
/** A round stops here even if it has not done its count. */
const ROUND_LIMIT_MS = 10_000
const REFERENCE = 'Redis L2'

export const tierHit: Scenario = {
  name: 'tier-hit',
  title: 'Hit cost per tier: L1, disk L2, Redis L2 (one caller)',
  needsRedis: true,
  run,
}

async function run(context: ScenarioContext): Promise<ScenarioReport> {
  const url = context.redisUrl
  if (url === undefined) throw new Error('tier-hit needs a redis-server')
  const params = productParams(KEYS)
  const closers: (() => Promise<unknown>)[] = []
  try {
    const contestants = await setup(url, params, closers)
    const result = await runRounds({
      scenario: 'tier-hit',
      contestants,
      reference: REFERENCE,
      rounds: context.rounds ?? 5,
      warmupRounds: 1,
      log: context.log,
    })
    const median = (name: string) => result.contestants.find((c) => c.name === name)!.median['p50Ms']!
    return {
      sections: [
        {
          title: `${CALLS.toLocaleString('en')} sequential awaited gets over ${KEYS.toLocaleString('en')} warmed keys, per contestant per round`,
          table: markdownTable(result, [
            { metric: 'p50Ms', label: 'p50', format: formatUs, ratio: true },
            { metric: 'p99Ms', label: 'p99', format: formatUs, ratio: true },
            { metric: 'opsPerSec', label: 'ops/s', format: formatOps, range: true },
            { metric: 'misses', label: 'misses per round', format: formatCount },
          ]),
          notes: [
            'The same ~250-byte JSON products in every tier. The L2 rows run with `l1: false`: each get reads ' +
              'the tier, decodes the envelope and parses the JSON. The disk store is LMDB in a fresh temporary ' +
              'directory (the page cache holds it: this is a warm disk hit); Redis is a local redis-server over ' +
              'loopback.',
            '"disk store get" is `DiskStore.get(key)` alone: the bytes, without the cache around them.',
          ],
        },
      ],
      targets: [
        {
          text: 'a disk L2 hit costs less than a Redis L2 hit on the same machine',
          met: median('disk L2') < median(REFERENCE),
          measured: `${(median('disk L2') / median(REFERENCE)).toFixed(2)}x the Redis p50`,
        },
      ],
      results: [result],
    }
  } finally {
    for (const close of closers.reverse()) await close()
  }
}

/** Latency of `CALLS` sequential gets cycling over the keys. */
async function measure(get: (index: number) => Promise<unknown>, cursor: { at: number }): Promise<Metrics> {
  let misses = 0
  const samples = new Float64Array(CALLS)
  let calls = 0
  const started = performance.now()
  const deadline = started + ROUND_LIMIT_MS
  while (calls < CALLS && performance.now() < deadline) {
    const before = performance.now()
    const value = await get(cursor.at)
    samples[calls++] = performance.now() - before
    if (value === undefined || value === null) misses++
    cursor.at = (cursor.at + 1) % KEYS
  }
  const latencies = samples.subarray(0, calls)
  const opsPerSec = (calls / (performance.now() - started)) * 1_000
  return { p50Ms: quantile(latencies, 0.5), p99Ms: quantile(latencies, 0.99), opsPerSec, misses }
}

async function setup(
  url: string,
  params: readonly ProductParams[],
  closers: (() => Promise<unknown>)[],
): Promise<Contestant[]> {
  const dir = mkdtempSync(join(tmpdir(), 'stratacache-bench-'))
  closers.push(async () => rmSync(dir, { recursive: true, force: true }))
  const namespace = (cache: ReturnType<typeof createCache>, counter: { fallbacks: number }) =>
    cache.namespace('product', {
      ...productNamespace,
      ttl: TTL_MS,
      load: (p: ProductParams) => {
        counter.fallbacks++
        return product(p)
      },
    })

  const l1Cache = createCache({ service: 'bench-tier', l1: { maxEntries: 10_000 } })
  closers.push(() => l1Cache.close())
  const l1Count = { fallbacks: 0 }
  const l1 = namespace(l1Cache, l1Count)
  for (const p of params) await l1.get(p)

  const disk = diskStore({ path: dir, maxBytes: 64 * 1024 * 1024 })
  const diskCache = createCache({ service: 'bench-tier', l1: false, l2: disk })
  closers.push(() => diskCache.close())
  const diskCount = { fallbacks: 0 }
  const onDisk = namespace(diskCache, diskCount)
  await diskCache.connect()
  for (const p of params) await onDisk.set(p, product(p))
  const diskKeys = params.map((p) => onDisk.key(p))

  const redisCache = createCache({ service: 'bench-tier', l1: false, l2: redisStore({ url }) })
  closers.push(() => redisCache.close())
  const redisCount = { fallbacks: 0 }
  const onRedis = namespace(redisCache, redisCount)
  await redisCache.connect()
  for (let from = 0; from < KEYS; from += 100) {
    await Promise.all(params.slice(from, from + 100).map((p) => onRedis.set(p, product(p))))
  }

  const cursors = { l1: { at: 0 }, disk: { at: 0 }, redis: { at: 0 }, raw: { at: 0 } }
  /** A miss is a fallback to the loader: the benchmark measures hits only. */
  const withFallbacks = async (counter: { fallbacks: number }, work: () => Promise<Metrics>) => {
    const before = counter.fallbacks
    const metrics = await work()
    return { ...metrics, misses: metrics['misses']! + counter.fallbacks - before }
  }
  return [
    {
      name: 'L1',
      call: '`await ns.get(params)`, L1 only',
      measure: () => withFallbacks(l1Count, () => measure((i) => l1.get(params[i]!), cursors.l1)),
    },
    {
      name: 'disk L2',
      call: '`await ns.get(params)`, `l1: false`, `l2: diskStore(…)`',
      measure: () => withFallbacks(diskCount, () => measure((i) => onDisk.get(params[i]!), cursors.disk)),
    },
    {
      name: REFERENCE,
      call: '`await ns.get(params)`, `l1: false`, `l2: redisStore(…)`',
      measure: () => withFallbacks(redisCount, () => measure((i) => onRedis.get(params[i]!), cursors.redis)),
    },
    {
      name: 'disk store get',
      call: '`await disk.get(key)`: bytes only (the floor of a disk hit)',
      measure: () => measure((i) => disk.get(diskKeys[i]!), cursors.raw),
    },
  ]
}
