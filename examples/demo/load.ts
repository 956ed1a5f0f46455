// `npm run load`: drives the demo with autocannon, cache on then cache off, and prints latency and source queries
// per second for each. Starts its own demo (PGlite; Redis when REDIS_URL is set or one answers on 6379, else the disk store) unless
// --url names a running one. Bounded: each phase lasts --duration seconds.
import { parseArgs } from 'node:util'
import autocannon from 'autocannon'
import { redisAnswers } from './redis-probe.js'
import { spawnDemo, type RunningDemo } from './spawn-demo.js'
import { workload } from './workload.js'

const { values: args } = parseArgs({
  options: {
    url: { type: 'string' },
    duration: { type: 'string', default: '10' },
    warmup: { type: 'string', default: '15' },
    connections: { type: 'string', default: '16' },
    json: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
})

if (args.help) {
  console.log(`Usage: npm run load -- [--url http://127.0.0.1:3000] [--duration 10] [--warmup 15] [--connections 16] [--json]

Runs the demo's read workload (Zipf-skewed products, 5% list pages) with autocannon: first with the cache on
(after a purge and --warmup seconds unmeasured), then with the cache bypassed. Prints p50/p99 latency, requests/s
and the database's queries/s for each. Without --url it starts the demo on a free port and stops it afterwards.`)
  process.exit(0)
}

const duration = positive('duration')
const warmup = Number(args.warmup)
const connections = positive('connections')

function positive(name: 'duration' | 'connections'): number {
  const value = Number(args[name])
  if (!Number.isInteger(value) || value < 1 || value > 600) {
    console.error(`--${name} must be a whole number from 1 to 600, got ${JSON.stringify(args[name])}`)
    process.exit(2)
  }
  return value
}

interface PhaseResult {
  phase: string
  requestsPerSecond: number
  p50: number
  p99: number
  sourceQueriesPerSecond: number
  /** Cache reads answered by L1 or L2, in % (null when the cache was bypassed). */
  hitRatio: number | null
  non2xx: number
  errors: number
}

async function admin(base: string, path: string, body: object): Promise<void> {
  const response = await fetch(base + path, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  })
  if (!response.ok) throw new Error(`${path} answered ${response.status}: ${await response.text()}`)
}

interface Totals {
  sourceQueries: number
  l1Hits: number
  l2Hits: number
  misses: number
}

async function totals(base: string): Promise<Totals> {
  const stats = (await (await fetch(`${base}/api/stats`)).json()) as { totals: Totals }
  return stats.totals
}

function fire(base: string, seconds: number): Promise<autocannon.Result> {
  const next = workload()
  return autocannon({
    url: base,
    connections,
    duration: seconds,
    requests: [{ method: 'GET', setupRequest: (request) => ({ ...request, path: next() }) }],
  })
}

async function phase(base: string, name: string): Promise<PhaseResult> {
  const before = await totals(base)
  const result = await fire(base, duration)
  const after = await totals(base)
  const hits = after.l1Hits - before.l1Hits + (after.l2Hits - before.l2Hits)
  const reads = hits + (after.misses - before.misses)
  return {
    phase: name,
    requestsPerSecond: Math.round(result.requests.average),
    p50: result.latency.p50,
    p99: result.latency.p99,
    sourceQueriesPerSecond: Math.round((after.sourceQueries - before.sourceQueries) / duration),
    hitRatio: reads === 0 ? null : Math.round((hits / reads) * 1000) / 10,
    non2xx: result.non2xx,
    errors: result.errors,
  }
}

let demo: RunningDemo | undefined
let base = args.url
if (base === undefined) {
  const redisUrl =
    process.env.REDIS_URL || ((await redisAnswers('127.0.0.1', 6379)) ? 'redis://127.0.0.1:6379' : 'off')
  console.error(`starting the demo (L2: ${redisUrl === 'off' ? 'the disk store' : redisUrl})…`)
  demo = await spawnDemo({ PORT: '0', REDIS_URL: redisUrl })
  base = demo.url
}
base = base.replace(/\/$/, '')

try {
  await admin(base, '/api/admin/bypass', { on: false })
  await admin(base, '/api/admin/purge', { namespace: 'all', reason: 'load script: start from a cold cache' })
  if (warmup > 0) {
    console.error(`cache on: ${warmup} s warm-up (not measured)…`)
    await fire(base, warmup)
  }
  console.error(`cache on: ${duration} s, ${connections} connections…`)
  const on = await phase(base, 'cache on')
  await admin(base, '/api/admin/bypass', { on: true })
  console.error(`cache off: ${duration} s, ${connections} connections…`)
  const off = await phase(base, 'cache off (bypass)')
  await admin(base, '/api/admin/bypass', { on: false })

  if (args.json) {
    console.log(JSON.stringify({ duration, connections, phases: [on, off] }))
  } else {
    console.log(
      `\n| phase | requests/s | p50 ms | p99 ms | source queries/s | hit ratio | non-2xx | errors |`,
    )
    console.log(`| --- | --- | --- | --- | --- | --- | --- | --- |`)
    for (const r of [on, off]) {
      const hitRatio = r.hitRatio === null ? '–' : `${r.hitRatio} %`
      console.log(
        `| ${r.phase} | ${r.requestsPerSecond} | ${r.p50} | ${r.p99} | ${r.sourceQueriesPerSecond} | ${hitRatio} | ${r.non2xx} | ${r.errors} |`,
      )
    }
  }
} finally {
  await demo?.stop()
}
