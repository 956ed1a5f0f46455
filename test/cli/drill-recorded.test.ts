// `stratacache drill --workload`: a drill whose readers replay an access log written by the library's own recorder,
// its report checked against the log (counted by this test as it drew the reads) and against the source's counters.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { renderText } from '../../src/cli/drill/report.js'
import { rawClient, type RawClient } from '../chaos/support.js'
import { startRedis, type RedisServer } from '../helpers/redis-server.js'
import { demo, expectSourceAgrees, recordSkewedLog, reportOf, run, sourceCounts } from './drill-support.js'

let dir: string
let log: string
let source: RedisServer
let rawSource: RawClient
/** What the test drew for each namespace: reads, distinct keys, and the hottest key's share of reads. */
let drawn: Awaited<ReturnType<typeof recordSkewedLog>>

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'drill-recorded-'))
  log = join(dir, 'access.jsonl')
  // The demo's two namespaces, skewed differently: product over many keys (hottest ≈ 15%), pages over few (≈ 35%).
  drawn = await recordSkewedLog(log, [
    { name: 'product', keys: 300, reads: 6_000, skew: 1 },
    { name: 'product-page', keys: 40, reads: 3_000, skew: 1.3 },
  ])
  source = await startRedis()
  rawSource = await rawClient(source.url)
})
afterAll(async () => {
  rawSource.destroy()
  await source.stop()
  rmSync(dir, { recursive: true, force: true })
})

describe('stratacache drill --workload', () => {
  it('replays a recorded log: the report’s hottest-key share is the log’s, the writer changed its 5 hottest keys, and the loads and writes are the source’s own counts', async () => {
    const r = await run([
      'drill',
      'delayed-invalidation',
      ...['--config', demo, '--workload', log, '--source', source.url, '--json'],
      ...['--delay', '400ms', '--fault-for', '600ms'],
      ...['--duration', '3s', '--readers', '2', '--concurrency', '3'],
    ])
    const report = reportOf(r)
    expect(r.code, r.stderr).toBe(0)
    expect(report.setup.keys).toBeNull()
    const workload = report.workload
    expect(workload.kind).toBe('recorded')
    if (workload.kind !== 'recorded') return
    expect(workload).toMatchObject({ file: log, records: 9_000, truncated: false, maxRecords: 1_000_000 })

    expect(report.namespaces.map((ns) => ns.name)).toEqual([...drawn.keys()])
    for (const ns of report.namespaces) {
      const expected = drawn.get(ns.name)!
      // What the drill found in the log is what the recorder was asked to read.
      expect(workload.namespaces.find((w) => w.name === ns.name)).toEqual({ name: ns.name, ...expected })
      // The readers replayed the log: its skew carried over to what they read.
      expect(Math.abs(ns.hottestKeyShare - expected.hottestKeyShare), ns.name).toBeLessThanOrEqual(0.05)
      expect(ns.keysRead, ns.name).toBeLessThanOrEqual(expected.keys)
      expect(ns.keysRead, ns.name).toBeGreaterThan(expected.keys / 2)
      expect(ns.failedGets, ns.name).toBe(0)
      expect(ns.staleness.beyondBound, ns.name).toBe(0)

      // Raw from the source: the writer changed exactly the 5 keys numbered 0 to 4, the log's 5 most read (every
      // parameter of key number n is n, or "k<n>").
      const { written } = await sourceCounts(rawSource, report, ns.name)
      const numbers = written
        .map((key) => Number(/:tenant:k(\d+):/.exec(key)?.[1] ?? NaN))
        .sort((a, b) => a - b)
      expect(numbers, written.join(', ')).toEqual([0, 1, 2, 3, 4])
    }
    await expectSourceAgrees(rawSource, report)

    const text = renderText(report)
    expect(text).toContain(
      `replaying ${log} (9,000 records), 1 writer (each namespace's 5 hottest keys, or all when it has fewer, every 50 ms)`,
    )
    expect(text).toMatch(
      /keys read \d+, hottest key [\d.]+% of reads \(the log: 6,000 reads of \d+ keys, hottest [\d.]+%\)/,
    )
  }, 45_000)

  it('refuses --keys beside --workload, and a log without a drilled namespace, as bad command lines (exit 2)', async () => {
    const both = await run(['drill', 'mass-expiry', '--config', demo, '--workload', log, '--keys', '10'])
    expect(both.code).toBe(2)
    expect(both.stderr).toMatch(/--keys .* --workload .*: drop one of them\. .*\[ERR_STRATA_CLI_USAGE\]/)

    // A log of product reads only, written by the recorder too.
    const productOnly = join(dir, 'product-only.jsonl')
    await recordSkewedLog(productOnly, [{ name: 'product', keys: 10, reads: 50, skew: 1 }])
    const missing = await run(['drill', 'mass-expiry', '--config', demo, '--workload', productOnly])
    expect(missing.code).toBe(2)
    expect(missing.stderr).toMatch(
      /has no read of namespace "product-page"; it has "product": .*--namespace.* \[ERR_STRATA_CLI_USAGE\]/,
    )
    expect(missing.stdout).toBe('')
  }, 45_000)

  it('exits 3 with the access-log errors for a missing, unreadable or corrupt log', async () => {
    const none = await run(['drill', 'mass-expiry', '--config', demo, '--workload', join(dir, 'nope.jsonl')])
    expect(none.code).toBe(3)
    expect(none.stderr).toMatch(/nope\.jsonl: no such access log\. \[ERR_STRATA_CLI_INPUT\]/)

    const folder = await run(['drill', 'mass-expiry', '--config', demo, '--workload', dir])
    expect(folder.code).toBe(3)
    expect(folder.stderr).toMatch(/no such access log\. \[ERR_STRATA_CLI_INPUT\]/)

    // A file the user cannot read (root reads it anyway: nothing to check then).
    if (process.getuid?.() !== 0) {
      const locked = join(dir, 'locked.jsonl')
      writeFileSync(locked, '{"t":1,"ns":"product","k":"ab","o":"l1","s":0}\n', { mode: 0o000 })
      const unreadable = await run(['drill', 'mass-expiry', '--config', demo, '--workload', locked])
      expect(unreadable.code).toBe(3)
      expect(unreadable.stderr).toMatch(
        /locked\.jsonl: the access log cannot be read \(.*EACCES.*\[ERR_STRATA_CLI_INPUT\]/,
      )
    }

    const corrupt = join(dir, 'corrupt.jsonl')
    writeFileSync(
      corrupt,
      '{"t":1,"ns":"product","k":"ab","o":"l1","s":0}\n{"t":2,"ns":"product","k":"zz"}\n',
    )
    const bad = await run(['drill', 'mass-expiry', '--config', demo, '--workload', corrupt])
    expect(bad.code).toBe(3)
    expect(bad.stderr).toMatch(/Access log .*corrupt\.jsonl, line 2: `k` must be .*\[ERR_STRATA_ACCESS_LOG\]/)
  }, 45_000)
})
