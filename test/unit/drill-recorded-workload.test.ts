// The drill's recorded workload: how an access log becomes key numbers, reader offsets and the writer's keys
// (properties over random logs), and the shared log reader's record cap.
import fc from 'fast-check'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { readAccessLog, type AccessRecord } from '../../src/cli/access-log.js'
import { keyAt, mapRecordedWorkload, readerStart, writerKeys } from '../../src/cli/drill/recorded-workload.js'
import { CliUsageError } from '../../src/errors.js'

const NAMESPACES = ['product', 'page', 'user'] as const

/** Logs of up to 300 reads over a few namespaces and keys (few keys, so counts tie often). */
const logs = fc
  .array(
    fc.record({
      ns: fc.constantFrom(...NAMESPACES),
      k: fc.integer({ min: 0, max: 12 }).map((n) => n.toString(16).padStart(4, '0')),
    }),
    { minLength: 1, maxLength: 300 },
  )
  .map((reads) => reads.map((r, t): AccessRecord => ({ t, ns: r.ns, k: r.k, o: 'l1', s: 0 })))

const inLog = (records: readonly AccessRecord[]) => [...new Set(records.map((r) => r.ns))]

describe('recorded workload', () => {
  it('numbers each namespace’s keys by reads, most read first (ties: first read first), and keeps the log’s order', () => {
    fc.assert(
      fc.property(logs, (records) => {
        const names = inLog(records)
        const mapped = mapRecordedWorkload(records, names, 'log')
        for (const ns of mapped) {
          const own = records.filter((r) => r.ns === ns.name)
          // One number per hash and one hash per number, in log order.
          expect(ns.reads).toHaveLength(own.length)
          const hashOf = new Map<number, string>()
          own.forEach((r, i) => {
            const n = ns.reads[i]!
            expect(hashOf.get(n) ?? r.k).toBe(r.k)
            hashOf.set(n, r.k)
          })
          expect(ns.keys).toBe(new Set(own.map((r) => r.k)).size)
          expect([...hashOf.keys()].sort((a, b) => a - b)).toEqual(
            Array.from({ length: ns.keys }, (_, n) => n),
          )
          // Ranked: counts never rise with the number; equal counts keep first-read order.
          const count = (n: number) => ns.reads.filter((x) => x === n).length
          const firstRead = (n: number) => ns.reads.indexOf(n)
          for (let n = 1; n < ns.keys; n++) {
            expect(count(n)).toBeLessThanOrEqual(count(n - 1))
            if (count(n) === count(n - 1)) expect(firstRead(n)).toBeGreaterThan(firstRead(n - 1))
          }
          expect(ns.hottestKeyShare).toBe(count(0) / own.length)
        }
      }),
    )
  })

  it('writes only the hottest keys: at most 5, none read less than a key it leaves alone', () => {
    fc.assert(
      fc.property(logs, fc.integer({ min: 1, max: 8 }), (records, max) => {
        for (const ns of mapRecordedWorkload(records, inLog(records), 'log')) {
          const written = writerKeys(ns.keys, max)
          expect(written).toHaveLength(Math.min(max, ns.keys))
          const count = (n: number) => ns.reads.filter((x) => x === n).length
          const least = Math.min(...written.map(count))
          for (let n = 0; n < ns.keys; n++) {
            if (!written.includes(n)) expect(count(n)).toBeLessThanOrEqual(least)
          }
        }
      }),
    )
  })

  it('starts reader i of n at i/n of the sequence, and wraps around: each reader replays the whole log in order', () => {
    fc.assert(
      fc.property(
        fc.array(fc.nat(20), { minLength: 1, maxLength: 200 }),
        fc.integer({ min: 1, max: 16 }),
        (reads, readers) => {
          const starts = Array.from({ length: readers }, (_, i) => readerStart(i, readers, reads.length))
          expect(starts[0]).toBe(0)
          for (const [i, start] of starts.entries()) {
            expect(start).toBeGreaterThanOrEqual(0)
            expect(start).toBeLessThan(reads.length)
            expect(start).toBe(Math.floor((i * reads.length) / readers))
            // Evenly spread: consecutive starts are the same distance apart, give or take one read.
            if (i > 0) expect(Math.abs(start - starts[i - 1]! - reads.length / readers)).toBeLessThan(1)
          }
          for (const start of starts) {
            const replay = Array.from({ length: 2 * reads.length }, (_, op) => keyAt(reads, start, op))
            // One lap is the log rotated to the reader's start; the next lap repeats it.
            expect(replay.slice(0, reads.length)).toEqual([...reads.slice(start), ...reads.slice(0, start)])
            expect(replay.slice(reads.length)).toEqual(replay.slice(0, reads.length))
          }
        },
      ),
    )
  })

  it('refuses a drilled namespace the log never read, naming it and the namespaces the log has', () => {
    const records: AccessRecord[] = [
      { t: 1, ns: 'product', k: 'ab', o: 'l1', s: 0 },
      { t: 2, ns: 'page', k: 'cd', o: 'miss', s: 0 },
    ]
    let error: unknown
    try {
      mapRecordedWorkload(records, ['product', 'user'], 'access.jsonl')
    } catch (e) {
      error = e
    }
    expect(error).toBeInstanceOf(CliUsageError)
    expect((error as CliUsageError).code).toBe('ERR_STRATA_CLI_USAGE')
    expect((error as Error).message).toMatch(
      /^--workload access\.jsonl has no read of namespace "user"; it has "page", "product": /,
    )
  })
})

describe('readAccessLog', () => {
  it('reads at most maxRecords records, in file order, and says when the file held more', () => {
    const dir = mkdtempSync(join(tmpdir(), 'access-log-cap-'))
    try {
      const line = (t: number) => JSON.stringify({ t, ns: 'product', k: t.toString(16), o: 'l1', s: 0 })
      const file = join(dir, 'access.jsonl')
      // Out of time order, and blank lines after the last record (not records: they do not count).
      writeFileSync(file, [line(5), line(3), line(9), line(1), '', ''].join('\n'))
      expect(readAccessLog(file, dir, { maxRecords: 4 })).toEqual({
        records: [1, 3, 5, 9].map((t) => expect.objectContaining({ t }) as unknown),
        truncated: false,
      })
      const capped = readAccessLog(file, dir, { maxRecords: 2 })
      expect(capped.truncated).toBe(true)
      // The first two of the file, then sorted by time.
      expect(capped.records.map((r) => r.t)).toEqual([3, 5])
      // A bad line past the cap is never parsed.
      writeFileSync(file, [line(1), line(2), 'not json'].join('\n'))
      expect(readAccessLog(file, dir, { maxRecords: 2 }).truncated).toBe(true)
      expect(() => readAccessLog(file, dir)).toThrow(/line 3: not JSON/)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('reads a capped log in chunks with the same records as a whole read, across chunk boundaries (multi-byte too)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'access-log-chunks-'))
    try {
      // About 2.5 MB: lines cross the 1 MiB chunk boundaries, and a namespace name with multi-byte characters may be
      // split between two chunks.
      const lines = Array.from({ length: 30_000 }, (_, i) =>
        JSON.stringify({
          t: i,
          ns: i % 3 === 0 ? 'produit-été' : 'product',
          k: (i % 997).toString(16),
          o: 'l2',
          s: i,
        }),
      )
      const file = join(dir, 'access.jsonl')
      writeFileSync(file, lines.join('\r\n') + '\n')
      const whole = readAccessLog(file, dir)
      expect(whole.records).toHaveLength(30_000)
      expect(readAccessLog(file, dir, { maxRecords: 30_000 })).toEqual({
        records: whole.records,
        truncated: false,
      })
      expect(readAccessLog(file, dir, { maxRecords: 40_000 })).toEqual({
        records: whole.records,
        truncated: false,
      })
      const capped = readAccessLog(file, dir, { maxRecords: 25_001 })
      expect(capped).toEqual({ records: whole.records.slice(0, 25_001), truncated: true })
      // No newline at the end of the file: the last line is still a record.
      writeFileSync(file, lines.slice(0, 3).join('\n'))
      expect(readAccessLog(file, dir, { maxRecords: 10 }).records.map((r) => r.t)).toEqual([0, 1, 2])
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('refuses a line longer than any record in a capped read at once, naming its line, without reading on', () => {
    const dir = mkdtempSync(join(tmpdir(), 'access-log-long-'))
    try {
      const file = join(dir, 'access.jsonl')
      const record = JSON.stringify({ t: 1, ns: 'product', k: 'ab', o: 'l1', s: 0 })
      // A 3 MB line with no newline (a binary file passed by mistake, say), after two good records.
      writeFileSync(file, `${record}\n${record}\n${'x'.repeat(3 * 1024 * 1024)}`)
      expect(() => readAccessLog(file, dir, { maxRecords: 10 })).toThrow(
        /line 3: the line is longer than 1024/,
      )
      expect(() => readAccessLog(join(dir, 'nope.jsonl'), dir, { maxRecords: 10 })).toThrow(
        /no such access log/,
      )
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe('mapRecordedWorkload of a truncated log', () => {
  it('says a missing namespace was looked for only in the records the drill read', () => {
    const records: AccessRecord[] = [{ t: 1, ns: 'product', k: 'ab', o: 'l1', s: 0 }]
    expect(() => mapRecordedWorkload(records, ['product', 'user'], 'big.jsonl', 1_000_000)).toThrow(
      /^--workload big\.jsonl has no read of namespace "user" in its first 1,000,000 records \(the drill reads no more\); it has "product": /,
    )
  })
})
