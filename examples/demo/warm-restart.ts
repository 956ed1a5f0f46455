// Measures what warm start is worth to the demo: the hit ratio of the first minute after a restart, cold and warm.
// docs/demo.md quotes its numbers. Each round: a first demo process (as `npm start` builds it, on a Redis L2) serves
// --before requests of the load button's traffic and stops as Ctrl-C stops it (saving its hot keys in L2); a second
// one then serves the next --after requests of the same sequence, once cold and once after `warmStart()`. Requests
// go in-process (`app.inject`), --concurrency at a time, so the counts depend on the order of requests, not on the
// machine's speed: the default --after, 30,000, is a minute of the load button's 500 reads/s. Bounded: 2 rounds of
// at most 200,000 + 200,000 requests.
import { randomBytes } from 'node:crypto'
import { parseArgs } from 'node:util'
import type { CacheStats } from 'stratacache'
import { startRedis, type RedisServer } from '../../src/cli/drill/redis-server.js'
import { createDemo, type Demo } from './app.js'
import { CatalogDb } from './catalog-db.js'
import { workload } from './workload.js'

const { values: args } = parseArgs({
  options: {
    before: { type: 'string', default: '60000' },
    after: { type: 'string', default: '30000' },
    concurrency: { type: 'string', default: '16' },
    seed: { type: 'string', default: '7' },
    json: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
})

if (args.help) {
  console.log(`Usage: npx tsx examples/demo/warm-restart.ts [--before 60000] [--after 30000] [--concurrency 16] [--seed 7] [--json]

Starts a redis-server of its own on loopback (redis-server must be on the PATH) and the demo on PGlite in this
process. A first demo serves --before requests of the load button's traffic (seeded), then closes as Ctrl-C does,
saving its hot keys in Redis. A second demo serves the next --after requests: cold in one round, after
\`warmStart()\` in the other (each round on a fresh service name, so both start from the same L2). Prints the L1
and overall hit ratio of the first sixth and of all the --after requests, and the source queries.`)
  process.exit(0)
}

const before = whole('before', 1_000, 200_000)
const after = whole('after', 600, 200_000)
const concurrency = whole('concurrency', 1, 256)
const seed = whole('seed', 0, 2 ** 31)

function whole(name: 'before' | 'after' | 'concurrency' | 'seed', min: number, max: number): number {
  const value = Number(args[name])
  if (!Number.isInteger(value) || value < min || value > max) {
    console.error(`--${name} must be a whole number from ${min} to ${max}, got ${args[name]}`)
    process.exit(2)
  }
  return value
}

/** mulberry32: a small seeded generator, so every round replays the same requests. */
function seeded(state: number): () => number {
  return () => {
    state = (state + 0x6d2b79f5) | 0
    let t = Math.imul(state ^ (state >>> 15), 1 | state)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296
  }
}

interface Counts {
  l1Hits: number
  l2Hits: number
  misses: number
}

function counts(stats: CacheStats): Counts {
  const sum = { l1Hits: 0, l2Hits: 0, misses: 0 }
  for (const n of Object.values(stats.namespaces)) {
    sum.l1Hits += n.l1Hits
    sum.l2Hits += n.l2Hits
    sum.misses += n.misses
  }
  return sum
}

/** Sends `paths` through the demo's routes, `concurrency` at a time; counts answers other than 200 and 404. */
async function serve(demo: Demo, paths: readonly string[]): Promise<number> {
  let next = 0
  let failed = 0
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < paths.length) {
        const response = await demo.app.inject({ method: 'GET', url: paths[next++]! })
        if (response.statusCode !== 200 && response.statusCode !== 404) failed++
      }
    }),
  )
  return failed
}

interface Window {
  readonly l1HitRatio: number
  readonly hitRatio: number
  readonly sourceQueries: number
}

interface Round {
  readonly start: 'cold' | 'warm'
  readonly firstRunL1HitRatio: number
  readonly warmed: number
  readonly warmStartMs: number
  readonly firstSixth: Window
  readonly all: Window
  readonly failed: number
}

function window(from: Counts, to: Counts, queries: number): Window {
  const l1 = to.l1Hits - from.l1Hits
  const l2 = to.l2Hits - from.l2Hits
  const reads = l1 + l2 + (to.misses - from.misses)
  return { l1HitRatio: l1 / reads, hitRatio: (l1 + l2) / reads, sourceQueries: queries }
}

async function round(redis: RedisServer, db: CatalogDb, start: 'cold' | 'warm'): Promise<Round> {
  const next = workload({ random: seeded(seed) })
  const first = Array.from({ length: before }, next)
  const second = Array.from({ length: after }, next)
  // A service name of its own: both rounds start from an empty L2, and a running demo's keys are left alone.
  const service = `catalog-warm-${randomBytes(3).toString('hex')}`

  const previous = await createDemo({ db, redisUrl: redis.url, service, log: () => {} })
  await previous.cache.connect()
  let failed = await serve(previous, first)
  const firstCounts = counts(previous.cache.stats())
  await previous.close() // as Ctrl-C: saves the hot keys in L2

  const demo = await createDemo({ db, redisUrl: redis.url, service, log: () => {} })
  await demo.cache.connect()
  const warm = start === 'warm' ? await demo.warmStart() : undefined
  const zero = counts(demo.cache.stats())
  const queries0 = db.queries
  const sixth = Math.floor(after / 6)
  failed += await serve(demo, second.slice(0, sixth))
  const atSixth = counts(demo.cache.stats())
  const queries1 = db.queries
  failed += await serve(demo, second.slice(sixth))
  const atEnd = counts(demo.cache.stats())
  const queries2 = db.queries
  await demo.cache.close() // not demo.close(): this round's list is not needed
  await demo.close()

  const firstReads = firstCounts.l1Hits + firstCounts.l2Hits + firstCounts.misses
  return {
    start,
    firstRunL1HitRatio: firstCounts.l1Hits / firstReads,
    warmed: warm?.warmed ?? 0,
    warmStartMs: warm?.durationMs ?? 0,
    firstSixth: window(zero, atSixth, queries1 - queries0),
    all: window(zero, atEnd, queries2 - queries0),
    failed,
  }
}

const redis = await startRedis()
// Ctrl-C leaves no redis-server behind.
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => void redis.stop().finally(() => process.exit(130)))
}
const db = await CatalogDb.open()
let rounds: Round[]
try {
  rounds = [await round(redis, db, 'cold'), await round(redis, db, 'warm')]
} finally {
  await db.close()
  await redis.stop()
}

if (args.json) {
  console.log(JSON.stringify({ before, after, concurrency, seed, rounds }, null, 2))
} else {
  const pct = (ratio: number) => `${(ratio * 100).toFixed(1)}%`
  const sixth = Math.floor(after / 6).toLocaleString('en')
  console.log(
    `First process: ${before.toLocaleString('en')} requests (L1 hit ratio ${pct(rounds[0]!.firstRunL1HitRatio)}), ` +
      `then closed as Ctrl-C does. Next process: ${after.toLocaleString('en')} requests, ${concurrency} at a time.\n`,
  )
  console.log(
    `| start | L1 hit ratio, first ${sixth} | L1 hit ratio, all | hit ratio (L1 + L2), first ${sixth} | ` +
      `hit ratio, all | source queries, first ${sixth} | source queries, all |`,
  )
  console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: |')
  for (const r of rounds) {
    const label =
      r.start === 'cold'
        ? 'cold'
        : `warm (\`warmStart()\`: ${r.warmed.toLocaleString('en')} entries in ${r.warmStartMs.toFixed(0)} ms)`
    console.log(
      `| ${label} | ${pct(r.firstSixth.l1HitRatio)} | ${pct(r.all.l1HitRatio)} | ${pct(r.firstSixth.hitRatio)} | ` +
        `${pct(r.all.hitRatio)} | ${r.firstSixth.sourceQueries.toLocaleString('en')} | ` +
        `${r.all.sourceQueries.toLocaleString('en')} |`,
    )
  }
  const failed = rounds.reduce((sum, r) => sum + r.failed, 0)
  if (failed > 0) console.log(`\n${failed} requests failed (answers other than 200 and 404).`)
}
