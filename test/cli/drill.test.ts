// `stratacache drill` run as a user runs it (dist/cli/main.js) against the demo's config module, its numbers checked
// against what the test measures itself: the source's counters and the L2's own statistics, read raw.
import { execFile } from 'node:child_process'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { DrillReport } from '../../src/cli/drill/report.js'
import { startRedis, type RedisServer } from '../helpers/redis-server.js'
import { rawClient, type RawClient } from '../chaos/support.js'

const root = fileURLToPath(new URL('../..', import.meta.url))
const bin = join(root, 'dist/cli/main.js')
const demo = 'examples/demo/stratacache.config.ts'
/** Short runs: 3 s of workload, 2 readers, the fault after 1 s. */
const SHORT = ['--duration', '3s', '--readers', '2', '--concurrency', '3', '--keys', '100']

interface Run {
  code: number
  stdout: string
  stderr: string
}

function run(args: readonly string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [bin, ...args],
      // The demo's config module is TypeScript: the CLI (and its workers) load it through tsx.
      { cwd: root, env: { ...process.env, NODE_OPTIONS: '--import tsx', ...env }, timeout: 40_000 },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === 'number' ? error.code : -1
        resolve({ code, stdout, stderr })
      },
    )
  })
}

function reportOf(r: Run): DrillReport {
  expect(r.stdout.startsWith('{'), `stdout: ${r.stdout.slice(0, 500)}; stderr: ${r.stderr}`).toBe(true)
  return JSON.parse(r.stdout) as DrillReport
}

let source: RedisServer
let l2: RedisServer
let rawSource: RawClient
beforeAll(async () => {
  source = await startRedis()
  l2 = await startRedis()
  rawSource = await rawClient(source.url)
})
afterAll(async () => {
  rawSource.destroy()
  await Promise.all([source.stop(), l2.stop()])
})

/** Per namespace: the loads the source counted, and the versions its keys reached (one per write). */
async function sourceCounts(report: DrillReport, namespace: string) {
  const loads = Number((await rawSource.get(`drill:loads:${report.service}:${namespace}`))?.toString() ?? 0)
  let versions = 0
  for await (const keys of rawSource.scanIterator({
    MATCH: `drill:source:${report.service}:${namespace}:*`,
    COUNT: 1_000,
  })) {
    for (const key of keys) versions += Number((await rawSource.get(key.toString()))?.toString() ?? 0)
  }
  return { loads, versions }
}

/** The reported loads and writes of every namespace are the source's own counts. */
async function expectSourceAgrees(report: DrillReport) {
  for (const ns of report.namespaces) {
    const counted = await sourceCounts(report, ns.name)
    expect(ns.source.loads, ns.name).toBe(counted.loads)
    expect(ns.source.loadsCountedByWorkers, ns.name).toBe(counted.loads)
    expect(ns.writes + ns.failedWrites, ns.name).toBe(counted.versions)
    expect(ns.reads, ns.name).toBeGreaterThan(500)
  }
}

async function info(server: RedisServer, field: string): Promise<number> {
  const match = new RegExp(`^${field}:(\\d+)`, 'm').exec(await server.command('INFO', 'stats'))
  return Number(match?.[1] ?? NaN)
}

describe('stratacache drill', () => {
  it('lists the four drills in --help and refuses region-split with a typed error saying what it lacks', async () => {
    const help = await run(['drill', '--help'])
    expect(help.code).toBe(0)
    for (const name of ['redis-restart', 'delayed-invalidation', 'mass-expiry', 'region-split']) {
      expect(help.stdout).toContain(name)
    }
    const refused = await run(['drill', 'region-split', '--config', demo])
    expect(refused.code).toBe(3)
    expect(refused.stdout).toBe('')
    expect(refused.stderr.trimEnd().split('\n')).toHaveLength(1)
    expect(refused.stderr).toMatch(
      /region-split drill needs its own workers, fault and report for regions.*\[ERR_STRATA_DRILL_UNSUPPORTED\]/,
    )
  })

  it('refuses an unknown drill, a missing one and --l2 with redis-restart as bad command lines', async () => {
    expect((await run(['drill', 'disk-full', '--config', demo])).stderr).toMatch(/Unknown drill "disk-full"/)
    expect((await run(['drill', '--config', demo])).stderr).toMatch(/Missing the drill to run/)
    const withL2 = await run(['drill', 'redis-restart', '--config', demo, '--l2', l2.url])
    expect(withL2.code).toBe(2)
    expect(withL2.stderr).toMatch(/leave out --l2/)
  })

  it('says how to install redis-server when it is not on PATH', async () => {
    const r = await run(['drill', 'mass-expiry', '--config', demo], { PATH: '/nonexistent' })
    expect(r.code).toBe(3)
    expect(r.stderr).toMatch(/redis-server is not on PATH; install it .*\[ERR_STRATA_DRILL_SETUP\]/)
  })

  it('redis-restart on the demo: no failed get, reads within the bound, and the loads and writes it reports are the source’s own counts', async () => {
    const r = await run([
      'drill',
      'redis-restart',
      '--config',
      demo,
      '--fault-for',
      '600ms',
      '--source',
      source.url,
      '--json',
      ...SHORT,
    ])
    const report = reportOf(r)
    expect(r.code, r.stderr).toBe(0)
    expect(report.pass).toBe(true)
    expect(report.fault.detail.downMs).toBeGreaterThanOrEqual(600)
    expect(report.namespaces.map((ns) => ns.name)).toEqual(['product', 'product-page'])
    for (const ns of report.namespaces) {
      expect(ns.failedGets).toBe(0)
      expect(ns.staleness.beyondBound).toBe(0)
      expect(ns.convergedAfterMs).not.toBeNull()
    }
    await expectSourceAgrees(report)
  }, 45_000)

  it('delayed-invalidation on the demo: reads go stale for about the delay, never past the bound, and the L2 carried every invalidation', async () => {
    const publishesBefore = Number(
      /^cmdstat_publish:calls=(\d+)/m.exec(await l2.command('INFO', 'commandstats'))?.[1] ?? 0,
    )
    const r = await run([
      'drill',
      'delayed-invalidation',
      '--config',
      demo,
      '--delay',
      '400ms',
      '--fault-for',
      '600ms',
      '--l2',
      l2.url,
      '--source',
      source.url,
      '--json',
      ...SHORT,
    ])
    const report = reportOf(r)
    expect(r.code, r.stderr).toBe(0)
    const publishes =
      Number(/^cmdstat_publish:calls=(\d+)/m.exec(await l2.command('INFO', 'commandstats'))?.[1] ?? 0) -
      publishesBefore
    for (const ns of report.namespaces) {
      // Every acknowledged delete was published on the bus (one PUBLISH each, at least).
      expect(publishes).toBeGreaterThanOrEqual(ns.writes)
      expect(ns.staleness.staleReads).toBeGreaterThan(0)
      // No copy outlives its invalidation by much more than the delay, and none passes the 5 s bound.
      expect(ns.staleness.maxMs).toBeLessThan(400 + 300)
      expect(ns.staleness.beyondBound).toBe(0)
    }
    await expectSourceAgrees(report)
  }, 45_000)

  it('mass-expiry on the demo: the keys it expired are counted by Redis, and the reloads it reports are the source’s', async () => {
    const expiredBefore = await info(l2, 'expired_keys')
    const r = await run([
      'drill',
      'mass-expiry',
      '--config',
      demo,
      '--l2',
      l2.url,
      '--source',
      source.url,
      '--json',
      ...SHORT,
    ])
    const report = reportOf(r)
    expect(r.code, r.stderr).toBe(0)
    const expired = report.fault.detail.keysExpired!
    // 2 namespaces × 100 keys, most of them read (and stored) in the first second.
    expect(expired).toBeGreaterThan(100)
    expect(expired).toBeLessThanOrEqual(200)
    // Redis counts a key as expired only if nothing touched it in the millisecond before: the writer deleting one of
    // its keys (5 per namespace) in that instant removes it first.
    const expiredByRedis = (await info(l2, 'expired_keys')) - expiredBefore
    expect(expiredByRedis).toBeGreaterThanOrEqual(expired - 2 * report.setup.writeKeys)
    for (const ns of report.namespaces) {
      expect(ns.failedGets).toBe(0)
      expect(ns.source.peakConcurrent).toBeLessThanOrEqual(ns.source.maxConcurrent ?? Infinity)
    }
    await expectSourceAgrees(report)
  }, 45_000)

  it('fails (exit 1) a namespace whose p99 objective the source cannot meet, naming the broken promise', async () => {
    const r = await run([
      'drill',
      'mass-expiry',
      '--config',
      'test/fixtures/cli/drill-strict.mjs',
      '--source-latency',
      '20ms',
      ...SHORT,
    ])
    expect(r.code, r.stderr).toBe(1)
    expect(r.stdout).toMatch(/^drill mass-expiry .*: FAIL$/m)
    expect(r.stdout).toMatch(/FAIL quote \(strong\)/)
    expect(r.stdout).toMatch(/p99 latency [\d.]+ ms is over the objective of 5 ms/)
  }, 45_000)
})
