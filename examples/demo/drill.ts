// Measures what the dashboard's slow-source drill shows: the demo in this process (as `npm start` builds it), the
// load button's traffic, then "Slow source" on, then off, printing the dashboard's own one-second samples and a
// summary per phase. docs/demo.md quotes its numbers. Bounded: one load run of at most 60 s.
import { randomBytes } from 'node:crypto'
import { loadavg } from 'node:os'
import { parseArgs } from 'node:util'
import { createDemo } from './app.js'
import { CatalogDb } from './catalog-db.js'
import type { Sample } from './live-stats.js'
import { redisAnswers } from './redis-probe.js'

const { values: args } = parseArgs({
  options: {
    warm: { type: 'string', default: '20' },
    slow: { type: 'string', default: '25' },
    recover: { type: 'string', default: '15' },
    ms: { type: 'string', default: '300' },
    rate: { type: 'string', default: '500' },
    json: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
})

if (args.help) {
  console.log(`Usage: npx tsx examples/demo/drill.ts [--warm 20] [--slow 25] [--recover 15] [--ms 300] [--rate 500] [--json]

Starts the demo in this process (PGlite; Redis as L2 when REDIS_URL is set or one answers on 127.0.0.1:6379, under a
service name of its own), sends the load button's traffic at --rate reads/s, turns "Slow source" (+--ms per query)
on after --warm seconds and off --slow seconds later, and stops --recover seconds after that. Prints the dashboard's
one-second samples and a summary of each phase. warm + slow + recover is at most 60 (the load's limit).`)
  process.exit(0)
}

const warm = whole('warm')
const slow = whole('slow')
const recover = whole('recover')
const slowMs = whole('ms')
const rate = whole('rate')
if (warm + slow + recover > 60)
  fail('--warm + --slow + --recover must be at most 60 (the load is bounded to 60 s)')

function whole(name: 'warm' | 'slow' | 'recover' | 'ms' | 'rate'): number {
  const value = Number(args[name])
  if (!Number.isInteger(value) || value < 1 || value > 5_000)
    fail(`--${name} must be a whole number from 1 to 5000`)
  return value
}

function fail(message: string): never {
  console.error(message)
  process.exit(2)
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

const redisUrl =
  process.env.REDIS_URL === 'off'
    ? undefined
    : (process.env.REDIS_URL ??
      ((await redisAnswers('127.0.0.1', 6379)) ? 'redis://127.0.0.1:6379' : undefined))
const db = await CatalogDb.open()
// A service name of its own: the drill starts with an empty L2 and leaves a running demo's keys alone.
const demo = await createDemo({ db, redisUrl, service: `catalog-drill-${randomBytes(3).toString('hex')}` })
await demo.cache.connect().catch(() => {})

/** Load errors (5xx answers) per second, read beside the samples. */
const errorsAt: { t: number; errors: number }[] = []
const started = Date.now()
let slowOnAt = 0
let slowOffAt = 0
await demo.load.start(warm + slow + recover, rate)
/** What a reader of a cold key (one the load rarely picks) gets, once a second: the status and error code. */
const coldReads: { phase: string; status: number; code: string | null; ms: number }[] = []
let coldReadsSent = 0
const watch = setInterval(() => {
  errorsAt.push({ t: Date.now(), errors: demo.load.status.errors })
  const phase = slowOffAt > 0 ? 'recover' : slowOnAt > 0 ? 'slow' : 'warm'
  const begun = performance.now()
  void demo.app
    // Products 800-999 of the smallest tenant in its rarest locale and currency: the load almost never reads them.
    .inject({
      method: 'GET',
      url: `/api/tenants/initech/products/${800 + (coldReadsSent++ % 200)}?locale=fr&currency=GBP`,
    })
    .then((response) => {
      const body = response.json<{ error?: string }>()
      coldReads.push({
        phase,
        status: response.statusCode,
        code: response.statusCode >= 400 ? (body.error ?? null) : null,
        ms: Math.round(performance.now() - begun),
      })
    })
}, 1_000)
await sleep(warm * 1_000)
db.slowdownMs = slowMs
slowOnAt = Date.now()
await sleep(slow * 1_000)
db.slowdownMs = 0
slowOffAt = Date.now()
await sleep(recover * 1_000)
await demo.load.stop()
await sleep(1_100) // the last second's sample
clearInterval(watch)
const status = demo.load.status
const samples = demo.stats.history().filter((s) => s.t > started + 1_000)
const sizes = demo.cache.stats()
await demo.close()
await db.close()

const phaseOf = (s: Sample) => (s.t <= slowOnAt ? 'warm' : s.t <= slowOffAt ? 'slow' : 'recover')
const errorsBy = (t: number) => [...errorsAt].reverse().find((e) => e.t <= t)?.errors ?? 0
const rows = samples.map((s, i) => {
  const reads = s.reads.l1 + s.reads.l2 + s.reads.miss
  return {
    second: Math.round((s.t - slowOnAt) / 1000),
    phase: phaseOf(s),
    requests: s.requests,
    hitPct: s.hitRatio ? round(s.hitRatio.l1 + s.hitRatio.l2) : null,
    l1Pct: s.hitRatio?.l1 ?? null,
    l2Pct: s.hitRatio?.l2 ?? null,
    reads,
    p50: s.p50,
    p99: s.p99,
    sourceQueries: s.sourceQueries,
    stale: s.stale.swr + s.stale.failSafe + s.stale.softTimeout,
    errors: errorsBy(s.t) - (i === 0 ? 0 : errorsBy(samples[i - 1]!.t)),
  }
})

type Row = (typeof rows)[number]
const median = (values: (number | null)[]) => {
  const sorted = values.filter((v): v is number => v !== null).sort((a, b) => a - b)
  return sorted.length === 0 ? null : sorted[Math.floor((sorted.length - 1) / 2)]!
}
const max = (values: (number | null)[]) => Math.max(...values.filter((v): v is number => v !== null))
function round(value: number): number {
  return Math.round(value * 10) / 10
}

/** The first second of `phase` (counted from its switch) where `test` holds, or null. */
const firstWhere = (phase: Row[], test: (r: Row) => boolean) => {
  const i = phase.findIndex(test)
  return i < 0 ? null : i + 1
}
/** Latency the dashboard draws as the hard-timeout line (examples/demo/catalog-cache.ts: timeouts.hard). */
const HARD_TIMEOUT_MS = 3_000

const summary = (['warm', 'slow', 'recover'] as const).map((phase) => {
  const rs = rows.filter((r) => r.phase === phase)
  // The warm phase includes the cold start; its steady state is its last 10 seconds.
  const steady = phase === 'warm' ? rs.slice(-10) : rs
  return {
    phase,
    seconds: rs.length,
    requests: rs.reduce((sum, r) => sum + r.requests, 0),
    errors: rs.reduce((sum, r) => sum + r.errors, 0),
    medianHitPct: median(steady.map((r) => r.hitPct)),
    medianL2Pct: median(steady.map((r) => r.l2Pct)),
    medianP50: median(steady.map((r) => r.p50)),
    medianP99: median(steady.map((r) => r.p99)),
    maxP99: max(rs.map((r) => r.p99)),
    medianSourceQueries: median(steady.map((r) => r.sourceQueries)),
    medianStale: median(steady.map((r) => r.stale)),
    // Seconds from the switch: p99 reaching the hard-timeout line and the first 503s (slow), p99 back under 500 ms
    // (recover).
    p99AtTimeoutAfter:
      phase === 'slow' ? firstWhere(rs, (r) => (r.p99 ?? 0) >= 0.95 * HARD_TIMEOUT_MS) : null,
    firstErrorsAfter: phase === 'slow' ? firstWhere(rs, (r) => r.errors > 0) : null,
    p99Under500After: phase === 'recover' ? firstWhere(rs, (r) => r.p99 !== null && r.p99 < 500) : null,
  }
})

const cold = (['warm', 'slow', 'recover'] as const).map((phase) => {
  const reads = coldReads.filter((r) => r.phase === phase)
  const codes: Record<string, number> = {}
  for (const r of reads) codes[r.code ?? String(r.status)] = (codes[r.code ?? String(r.status)] ?? 0) + 1
  return {
    phase,
    reads: reads.length,
    outcomes: JSON.stringify(codes),
    medianMs: median(reads.map((r) => r.ms)),
  }
})

const setup = {
  l2: redisUrl ? 'redis' : 'none (L1 only)',
  rate,
  slowMs,
  warm,
  slow,
  recover,
  sent: status.sent,
  errors: status.errors,
  skipped: status.skipped,
  l1Entries: sizes.l1?.entries ?? null,
  // The machine's 1-minute load average at the end: numbers taken on a busy machine say so.
  loadAverage: Math.round(loadavg()[0]! * 10) / 10,
}
if (args.json) {
  console.log(JSON.stringify({ setup, summary, cold, rows }))
} else {
  console.log(
    `slow-source drill: ${rate} req/s, L2 ${setup.l2}, +${slowMs} ms per query from second 0 to ${slow}; ` +
      `${status.sent} sent, ${status.errors} errors (5xx), ${status.skipped} skipped; load average ` +
      `${setup.loadAverage}`,
  )
  console.table(rows)
  console.table(summary)
  console.log('one read of a cold product a second (status or error code):')
  console.table(cold)
}
