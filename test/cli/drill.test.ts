// `stratacache drill` run as a user runs it (dist/cli/main.js) against the demo's config module, its numbers checked
// against what the test measures itself: the source's counters and the L2's own statistics, read raw.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { DrillReport } from '../../src/cli/drill/report.js'
import { main } from '../../src/cli/run.js'
import { startRedis, type RedisServer } from '../helpers/redis-server.js'
import { rawClient, type RawClient } from '../chaos/support.js'
import {
  demo,
  expectSourceAgrees as sourceAgrees,
  reportOf,
  root,
  run,
  SHORT,
  type Run,
} from './drill-support.js'

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

/** The reported loads and writes of every namespace are the source's own counts. */
const expectSourceAgrees = (report: DrillReport) => sourceAgrees(rawSource, report)

/**
 * The CLI in this process, as warm.test.ts runs it for its progress bar: `errIsTty` says whether stderr is a
 * terminal, which a child process's pipe never is. The workers it forks load the TypeScript config through tsx.
 */
async function runHere(args: readonly string[], errIsTty: boolean): Promise<Run> {
  let stdout = ''
  let stderr = ''
  const nodeOptions = process.env.NODE_OPTIONS
  process.env.NODE_OPTIONS = '--import tsx'
  try {
    const code = await main(['drill', ...args], {
      out: (text) => (stdout += text),
      err: (text) => (stderr += text),
      errIsTty,
      cwd: root,
    })
    return { code, stdout, stderr }
  } finally {
    if (nodeOptions === undefined) delete process.env.NODE_OPTIONS
    else process.env.NODE_OPTIONS = nodeOptions
  }
}

async function info(server: RedisServer, field: string): Promise<number> {
  const match = new RegExp(`^${field}:(\\d+)`, 'm').exec(await server.command('INFO', 'stats'))
  return Number(match?.[1] ?? NaN)
}

describe('stratacache drill', () => {
  it('lists the four drills in --help, with the region-split flags', async () => {
    const help = await run(['drill', '--help'])
    expect(help.code).toBe(0)
    for (const name of ['redis-restart', 'delayed-invalidation', 'mass-expiry', 'region-split']) {
      expect(help.stdout).toContain(name)
    }
    expect(help.stdout).toMatch(/--split-after D/)
    expect(help.stdout).toMatch(/--heartbeat D/)
  })

  it('refuses region-split flags that cannot show a split, or that belong to another drill, saying what to change', async () => {
    const cases: [string[], RegExp][] = [
      [
        ['--split-after', '1s', '--fault-for', '800ms'],
        /--fault-for \(800 ms\) must exceed --split-after \(1000 ms\) by at least two heartbeats .*raise --fault-for/,
      ],
      [
        ['--heartbeat', '300ms', '--split-after', '500ms'],
        /--split-after \(500 ms\) must be at least twice --heartbeat/,
      ],
      [['--fault-for', '3s', '--duration', '6s'], /at most a third of --duration .*raise --duration/],
      [['--heartbeat', 'often'], /--heartbeat must be a duration such as 500ms or 6s, got "often"/],
      [['--l2', 'redis://127.0.0.1:1'], /region-split starts one Redis per region .*leave out --l2/],
    ]
    for (const [flags, message] of cases) {
      const r = await run(['drill', 'region-split', '--config', demo, ...flags])
      expect(r.code, flags.join(' ')).toBe(2)
      expect(r.stderr, flags.join(' ')).toMatch(message)
      expect(r.stderr).toMatch(/\[ERR_STRATA_CLI_USAGE\]/)
    }
    const other = await run(['drill', 'mass-expiry', '--config', demo, '--split-after', '1s'])
    expect(other.code).toBe(2)
    expect(other.stderr).toMatch(/--split-after is a region-split flag; leave it out of mass-expiry/)
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

  it('draws its progress on stderr only when stderr is a terminal, and prints nothing but the report on stdout', async () => {
    // The shortest run the drill takes (1 s), one namespace, one reader: this is about where the output goes.
    const args = [
      'mass-expiry',
      // Its own Redis servers, not the file's: nothing it leaves there can reach another test's numbers.
      ...['--config', demo, '-n', 'product'],
      ...['--duration', '1s', '--readers', '1', '--concurrency', '1', '--keys', '20'],
    ]
    // A verdict either way (0 pass, 1 fail): the judging is the other tests'; 3 would be a drill that could not run.
    const verdict = [0, 1]

    const tty = await runHere([...args, '--json'], true)
    expect(verdict, tty.stderr).toContain(tty.code)
    // Each step redrawn in place on one line, and the line cleared before the report.
    const steps = tty.stderr.split('\r\u001b[K').filter((step) => step !== '')
    expect(steps).toContain('reading the config module: 0%')
    expect(steps).toContain('starting the workers: 0%')
    expect(steps.filter((step) => /^running mass-expiry: \d+%$/.test(step)).length).toBeGreaterThanOrEqual(1)
    expect(steps).toContain('measuring: 100%')
    expect(
      steps.every((step) => /^[A-Za-z -]+: \d+%$/.test(step)),
      tty.stderr,
    ).toBe(true)
    expect(tty.stderr.endsWith('measuring: 100%\r\u001b[K')).toBe(true)
    // --json: stdout is the JSON report and nothing else.
    const report = JSON.parse(tty.stdout) as DrillReport
    expect(report.drill).toBe('mass-expiry')
    expect(report.namespaces.map((ns) => ns.name)).toEqual(['product'])

    const pipe = await runHere(args, false)
    expect(verdict, pipe.stderr).toContain(pipe.code)
    expect(pipe.stderr).toBe('')
    // The text report, from its first line on: no progress, no carriage return or escape sequence.
    expect(pipe.stdout).toMatch(/^drill mass-expiry \(.*\): (PASS|FAIL)\n/)
    expect(pipe.stdout).not.toContain('\r')
    expect(pipe.stdout).not.toContain('\u001b')
    expect(pipe.stdout).not.toMatch(/reading the config module|running mass-expiry|measuring/)
  }, 45_000)

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
    expect(report.workload).toEqual({ kind: 'synthetic', keys: 100 })
    expect(report.namespaces.map((ns) => ns.name)).toEqual(['product', 'product-page'])
    for (const ns of report.namespaces) {
      expect(ns.failedGets).toBe(0)
      expect(ns.staleness.beyondBound).toBe(0)
      expect(ns.convergedAfterMs).not.toBeNull()
      // Half the reads on the 5 written keys, half over all 100: about 10% for each written key.
      expect(ns.keysRead).toBeLessThanOrEqual(100)
      expect(ns.hottestKeyShare).toBeGreaterThan(0.05)
      expect(ns.hottestKeyShare).toBeLessThan(0.2)
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
      // No copy outlives its invalidation by much more than the delay, and none passes the 5 s bound. The delay is a
      // timer in each reader process, so a reader stalled on the 2 shared cores adds its stall to the staleness it
      // measures: up to 1 s of slack, still far below what a lost invalidation shows (a copy kept until the 5 s bound
      // or its TTL, 10 s and more).
      expect(ns.staleness.maxMs).toBeLessThan(400 + 1_000)
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
    // Redis counts a key as expired only if nothing replaced or removed it in the millisecond before: the writer
    // deleting one of its keys (5 per namespace), or a worker storing a reload, in that instant gets there first.
    // With other test files running beside it, CI counted 115 of 133 (and, alone, all but a few): the count is
    // Redis's own, which is what this checks, not that every key was still untouched.
    const expiredByRedis = (await info(l2, 'expired_keys')) - expiredBefore
    expect(expiredByRedis).toBeGreaterThanOrEqual(Math.floor(expired * 0.75))
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

  it('region-split on the demo: the split is seen in both regions, no read in the cut-off region passes its bound, the backlog is replayed and both regions converge', async () => {
    const r = await run([
      'drill',
      'region-split',
      '--config',
      demo,
      '--heartbeat',
      '50ms',
      '--split-after',
      '400ms',
      '--fault-for',
      '1s',
      '--source',
      source.url,
      '--json',
      // One reader per region: three worker processes on the 2 cores, not five.
      ...['--duration', '3s', '--readers', '1', '--concurrency', '3', '--keys', '100'],
    ])
    const report = reportOf(r)
    expect(r.code, r.stderr).toBe(0)
    expect(report.pass).toBe(true)
    expect(report.fault.kind).toBe('region-split')
    expect(report.fault.detail.cutForMs).toBeGreaterThanOrEqual(1_000)
    const regions = report.regions!
    for (const name of ['a', 'b']) {
      const d = regions.detection[name]!
      // Declared once a peer is unheard of for splitAfter (400 ms) counted from its last heartbeat (≤ 50 ms before).
      expect(d.detectedAfterMs, name).not.toBeNull()
      // (Unless a busy relay let the peer look split before the cut already: reported, and then it counts from 0.)
      // The last heartbeat heard before the cut can be older than one interval when the relay's reads lag on a busy
      // machine (CI on Node 24 saw 311 ms: heard ~90 ms before the cut), so the floor allows three intervals of lag.
      if (d.splitSamplesBeforeCut === 0)
        expect(d.detectedAfterMs!, name).toBeGreaterThanOrEqual(400 - 3 * 50 - 30)
      expect(d.detectedAfterMs!, name).toBeLessThan(1_000)
    }
    expect(regions.backlogAtHeal).toBeGreaterThan(0)
    expect(regions.backlogDrainedAfterMs).not.toBeNull()
    for (const ns of report.namespaces) {
      const region = ns.region!
      expect(ns.failedGets, ns.name).toBe(0)
      // Enough reads in the cut-off region for the bound checks below to mean something. How many a 1 s split holds
      // depends on the machine (one run with the suite beside it did 76, an idle one a few hundred): not a speed test.
      expect(region.readsDuringSplit, ns.name).toBeGreaterThan(30)
      // The writer changed keys in region a while b could not hear of it: b served some of them stale.
      expect(region.staleReadsDuringSplit, ns.name).toBeGreaterThan(0)
      expect(region.beyondBoundDuringSplit, ns.name).toBe(0)
      // The writer writes one key per namespace per round: the outbox held this namespace's share of the backlog.
      expect(region.replayed, ns.name).toBeGreaterThan(0)
      expect(region.l2EntriesChecked, ns.name).toBeGreaterThan(0)
      expect(region.l2AgreedAfterMs, ns.name).not.toBeNull()
      expect(region.readersAgreedAfterMs, ns.name).not.toBeNull()
      expect(ns.convergedAfterMs, ns.name).not.toBeNull()
    }
    expect(report.namespaces.map((ns) => ns.region!.replayed).reduce((a, b) => a + b)).toBe(
      regions.backlogAtHeal,
    )
    // The eventual namespace kept serving through the split, and the library counted it too.
    const eventual = report.namespaces.find((ns) => ns.consistency === 'eventual')!
    expect(eventual.region!.librarySplitServes).toBeGreaterThan(0)
    await expectSourceAgrees(report)
  }, 45_000)

  it('region-split fails (exit 1) a strong namespace whose source limit cannot carry its reads through a split', async () => {
    const r = await run([
      'drill',
      'region-split',
      '--config',
      'test/fixtures/cli/drill-region-strict.mjs',
      '--heartbeat',
      '50ms',
      '--split-after',
      '400ms',
      '--fault-for',
      '1s',
      '--keys',
      '10',
      '--readers',
      '1',
      '--duration',
      '3s',
    ])
    expect(r.code, r.stderr).toBe(1)
    expect(r.stdout).toMatch(/^drill region-split .*: FAIL$/m)
    expect(r.stdout).toMatch(/FAIL balance \(strong\)/)
    expect(r.stdout).toMatch(/✗ \d+ gets failed while the source could answer/)
    // The gate refused the cached copies in the cut-off region: that is what sent the reads to the source.
    expect(r.stdout).toMatch(/library: refused [1-9]/)
    // The failures came with the split: strong reads in both regions went to the source while the link was cut.
    expect(r.stdout).toMatch(/failed gets while cut \(both regions\) [1-9]/)
  }, 45_000)
})
