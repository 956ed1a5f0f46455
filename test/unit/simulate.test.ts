// Shadow evaluation's simulator: exact predictions on small hand-made logs, the log and policy parsers, invariants.
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { AccessLogError, createCache, InvalidOptionError, UnknownOptionError } from 'stratacache'
import { parseAccessLog, type AccessRecord } from '../../src/cli/access-log.js'
import { LruStore } from '../../src/cli/simulate/lru-store.js'
import { resolvePolicy } from '../../src/cli/simulate/policy.js'
import { renderHtml, renderText } from '../../src/cli/simulate/report.js'
import { observe, simulate } from '../../src/cli/simulate/simulate.js'

const read = (
  t: number,
  k: string,
  ns = 'product',
  o: AccessRecord['o'] = 'miss',
  s = 100,
): AccessRecord => ({
  t,
  ns,
  k,
  o,
  s,
})

describe('simulate', () => {
  it('serves from L2 until ttl, stale (with one refresh) until ttl + staleFor, then misses', () => {
    const policy = resolvePolicy({ ttl: '10s', staleFor: '5s', l1: false }, 'p.json')
    const log = [
      read(0, 'a'), // miss: loaded at 0
      read(1_000, 'b'), // miss
      read(5_000, 'a'), // age 5s: fresh L2 hit
      read(12_000, 'a'), // age 12s: stale, refresh loads it again at 12s
      read(20_000, 'a'), // age 8s since the refresh: fresh
      read(40_000, 'a'), // age 28s: past ttl + staleFor, miss
    ]
    const r = simulate(log, policy)
    expect(r).toEqual({
      reads: 6,
      l1Hits: 0,
      l2Hits: 3,
      staleReads: 1,
      misses: 3,
      sourceCalls: 4,
      durationMs: 40_000,
      l1HitRatio: 0,
      l2HitRatio: 0.5,
      hitRatio: 0.5,
      staleShare: 1 / 6,
      missesPerSecond: 0.075,
      sourceCallsPerSecond: 0.1,
      sourceBytesPerSecond: 10,
    })
    // A 50% sample of keys stands for twice the traffic.
    expect(simulate(log, policy, { sampleRate: 0.5 }).sourceCallsPerSecond).toBe(0.2)
  })

  it('treats the exact ttl boundary as expired, in L1 and in L2', () => {
    const policy = resolvePolicy({ ttl: 1000, l1: { maxEntries: 10 } }, 'p.json')
    const r = simulate([read(0, 'a'), read(999, 'a'), read(1000, 'a')], policy)
    expect([r.l1Hits, r.l2Hits, r.misses]).toEqual([1, 0, 2])
  })

  it('with a one-entry LRU, a key pushed out of L1 is an L2 hit, and goes back to L1 for the rest of its TTL', () => {
    const policy = resolvePolicy({ ttl: '10s', l1: { maxEntries: 1, policy: 'lru' } }, 'p.json')
    const log = [
      read(0, 'a'), // miss
      read(1, 'a'), // L1 hit
      read(2, 'b'), // miss, evicts a from L1
      read(3, 'a'), // L2 hit, back in L1 (evicts b) until 10,000
      read(4, 'b'), // L2 hit, evicts a
      read(10_000, 'a'), // L2 entry expired at 10,000: miss
    ]
    const r = simulate(log, policy)
    expect([r.reads, r.l1Hits, r.l2Hits, r.misses, r.sourceCalls]).toEqual([6, 1, 2, 3, 3])
    expect(r.l2HitRatio).toBe(2 / 5)

    // The same log with room for both keys (the library's W-TinyLFU): every re-read is an L1 hit.
    const roomy = simulate(log, resolvePolicy({ ttl: '10s', l1: { maxEntries: 100 } }, 'p.json'))
    expect([roomy.l1Hits, roomy.l2Hits, roomy.misses]).toEqual([3, 0, 3])
  })

  it('gives an L1 copy taken from L2 only the entry’s remaining freshness', () => {
    const policy = resolvePolicy({ ttl: '10s', l1: { maxEntries: 1, policy: 'lru' } }, 'p.json')
    const log = [
      read(0, 'a'), // miss
      read(1, 'b'), // miss, evicts a
      read(8_000, 'a'), // L2 hit (age 8s): in L1 for the 2s left
      read(9_999, 'a'), // L1 hit
      read(10_000, 'a'), // expired in both: miss
    ]
    const r = simulate(log, policy)
    expect([r.l1Hits, r.l2Hits, r.misses]).toEqual([1, 1, 3])
  })

  it('replays only the policy’s namespace, and keeps namespaces apart when hashes collide', () => {
    const log = [
      read(0, 'a', 'product'),
      read(1, 'a', 'price'),
      read(2, 'a', 'product'),
      read(3, 'a', 'price'),
    ]
    const all = simulate(log, resolvePolicy({ ttl: '1m', l1: false }, 'p.json'))
    expect([all.reads, all.misses, all.l2Hits]).toEqual([4, 2, 2])
    const prices = simulate(log, resolvePolicy({ ttl: '1m', l1: false, namespace: 'price' }, 'p.json'))
    expect([prices.reads, prices.misses, prices.l2Hits, prices.durationMs]).toEqual([2, 1, 1, 2])
  })

  it('reports no rate for a log of one instant, and zeros for an empty one', () => {
    const policy = resolvePolicy({ ttl: '1m' }, 'p.json')
    expect(simulate([read(5, 'a'), read(5, 'b')], policy).sourceCallsPerSecond).toBeNull()
    const empty = simulate([], policy)
    expect([empty.reads, empty.hitRatio, empty.staleShare, empty.sourceCallsPerSecond]).toEqual([
      0,
      0,
      0,
      null,
    ])
  })

  it('W-TinyLFU keeps a hot set through a scan that flushes an LRU of the same size', () => {
    // 20 hot keys read round after round, each round followed by a scan of 40 keys never read again.
    const log: AccessRecord[] = []
    let t = 0
    for (let round = 0; round < 30; round++) {
      for (let i = 0; i < 20; i++) log.push(read(t++, `a${i}`))
      for (let i = 0; i < 40; i++) log.push(read(t++, `f${round}x${i}`))
    }
    const l1 = (policy: 'lru' | 'w-tinylfu') =>
      simulate(log, resolvePolicy({ ttl: '1h', l1: { maxEntries: 30, policy } }, 'p.json'))
    const lru = l1('lru')
    const tiny = l1('w-tinylfu')
    expect(lru.l1Hits).toBe(0) // each scan pushes every hot key out before its next read
    expect(tiny.l1HitRatio).toBeGreaterThan(0.2) // of 1,800 reads, 600 are hot; most stay in L1
    // L1 changes which tier answers, never whether the source is called.
    expect(tiny.sourceCalls).toBe(lru.sourceCalls)
  })

  it('source calls and stale reads do not depend on the L1 (it never outlives L2 freshness)', () => {
    const arbitraryLog = fc
      .array(fc.record({ dt: fc.integer({ min: 0, max: 5_000 }), k: fc.integer({ min: 0, max: 15 }) }), {
        maxLength: 200,
      })
      .map((steps) => {
        let t = 1_700_000_000_000
        return steps.map(({ dt, k }) => read((t += dt), k.toString(16)))
      })
    fc.assert(
      fc.property(
        arbitraryLog,
        fc.integer({ min: 1, max: 20_000 }),
        fc.integer({ min: 0, max: 20_000 }),
        fc.integer({ min: 1, max: 8 }),
        (log, ttl, staleFor, maxEntries) => {
          const run = (l1: false | { maxEntries: number; policy: 'lru' | 'w-tinylfu' }) =>
            simulate(log, resolvePolicy({ ttl, staleFor, l1 }, 'p.json'))
          const none = run(false)
          for (const r of [run({ maxEntries, policy: 'lru' }), run({ maxEntries, policy: 'w-tinylfu' })]) {
            expect(r.l1Hits + r.l2Hits + r.misses).toBe(r.reads)
            expect(r.sourceCalls).toBe(r.misses + r.staleReads)
            expect([r.misses, r.staleReads, r.l1Hits + r.l2Hits]).toEqual([
              none.misses,
              none.staleReads,
              none.l2Hits,
            ])
          }
          // A longer stale window never adds misses.
          const longer = simulate(
            log,
            resolvePolicy({ ttl, staleFor: staleFor + 5_000, l1: false }, 'p.json'),
          )
          expect(longer.misses).toBeLessThanOrEqual(none.misses)
        },
      ),
      { numRuns: 200 },
    )
  })

  it('observes production from the recorded outcomes', () => {
    const log = [
      read(0, 'a', 'product', 'miss', 300),
      read(1_000, 'a', 'product', 'l1'),
      read(2_000, 'b', 'product', 'l2'),
      read(4_000, 'c', 'product', 'miss', 100),
      read(4_000, 'c', 'price', 'miss'),
    ]
    const o = observe(log, 'product')
    expect(o).toMatchObject({ reads: 4, l1Hits: 1, l2Hits: 1, misses: 2, durationMs: 4_000 })
    // Misses per second are what the log shows; source calls (refreshes are not reads) and staleness it cannot.
    expect([o.l2HitRatio, o.missesPerSecond]).toEqual([1 / 3, 0.5])
    expect([o.sourceCalls, o.sourceCallsPerSecond, o.sourceBytesPerSecond, o.staleShare]).toEqual([
      null,
      null,
      null,
      null,
    ])
  })
})

describe('simulate against the recorder', () => {
  it('replays what a namespace’s `accessLog` wrote, and predicts what that one L1-only process did', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'stratacache-simulate-'))
    const file = join(dir, 'access.jsonl')
    try {
      let now = 1_700_000_000_000
      const cache = createCache({ service: 'sim', clock: { now: () => now } })
      const ns = cache.namespace('user', {
        key: 'user:{id}',
        ttl: '1m',
        jitter: 0,
        load: ({ id }) => ({ id }),
        accessLog: { file, sampleRate: 1 },
      })
      const reads: [number, string][] = [
        [0, 'a'], // miss
        [1_000, 'a'], // L1
        [2_000, 'b'], // miss
        [61_000, 'a'], // a expired at 60,000: miss
        [62_000, 'b'], // b expires exactly now: miss
        [62_500, 'b'], // L1
        [63_000, 'a'], // L1
      ]
      const start = now
      for (const [at, id] of reads) {
        now = start + at
        await ns.get({ id })
      }
      await cache.close() // flushes the log

      const records = parseAccessLog(readFileSync(file, 'utf8'), file)
      expect(records.map((r) => r.o)).toEqual(['miss', 'l1', 'miss', 'miss', 'miss', 'l1', 'l1'])
      expect(records.every((r) => r.ns === 'user' && /^[0-9a-f]{16}$/.test(r.k))).toBe(true)
      const observed = observe(records, 'user')
      const predicted = simulate(records, resolvePolicy({ ttl: '1m', namespace: 'user' }, 'current.json'))
      expect([predicted.l1Hits, predicted.l2Hits, predicted.misses]).toEqual([3, 0, 4])
      expect([predicted.l1Hits, predicted.misses]).toEqual([observed.l1Hits, observed.misses])
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe('LruStore', () => {
  it('evicts the least recently used entry, counting reads as uses', () => {
    let now = 0
    const lru = new LruStore<number>(2, { now: () => now })
    lru.set('a', 1, { ttl: 100 }).set('b', 2, { ttl: 100 })
    expect(lru.get('a')).toBe(1) // a is now the most recent
    lru.set('c', 3, { ttl: 100 }) // evicts b
    expect([lru.get('a'), lru.get('b'), lru.get('c'), lru.size]).toEqual([1, undefined, 3, 2])
    now = 100
    expect(lru.get('a')).toBeUndefined()
    expect(lru.size).toBe(1)
  })
})

describe('LruStore against a reference model', () => {
  it('holds exactly the most recently used unexpired keys, whatever the operations', () => {
    const op = fc.record({
      set: fc.boolean(),
      key: fc.integer({ min: 0, max: 9 }),
      ttl: fc.integer({ min: 0, max: 50 }),
      dt: fc.integer({ min: 0, max: 10 }),
    })
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 5 }), fc.array(op, { maxLength: 100 }), (max, ops) => {
        let now = 0
        const lru = new LruStore<number>(max, { now: () => now })
        // Reference: an array, most recent last, of [key, expiresAt].
        let model: [string, number][] = []
        for (const { set, key, ttl, dt } of ops) {
          now += dt
          const k = String(key)
          const at = model.findIndex(([mk]) => mk === k)
          if (set) {
            if (at !== -1) model.splice(at, 1)
            if (ttl > 0) model.push([k, now + ttl])
            model = model.slice(Math.max(0, model.length - max))
            lru.set(k, key, { ttl })
          } else {
            const entry = at === -1 ? undefined : model[at]!
            const live = entry !== undefined && entry[1] > now
            if (entry !== undefined) model.splice(at, 1)
            if (live) model.push(entry)
            expect(lru.get(k)).toBe(live ? key : undefined)
          }
          expect(lru.size).toBe(model.length)
        }
      }),
      { numRuns: 300 },
    )
  })
})

describe('access log', () => {
  it('parses records, skips blank lines, ignores unknown fields and sorts by time', () => {
    const text = [
      '{"t":2000,"ns":"product","k":"9F2C","o":"l2","s":10,"extra":true}',
      '',
      '{"t":1000,"ns":"product","k":"a1","o":"miss","s":0}',
      '',
    ].join('\n')
    expect(parseAccessLog(text, 'x.jsonl')).toEqual([
      { t: 1000, ns: 'product', k: 'a1', o: 'miss', s: 0 },
      { t: 2000, ns: 'product', k: '9f2c', o: 'l2', s: 10 },
    ])
  })

  it.each([
    ['not json', /line 2: not JSON/],
    ['[1]', /line 2: not a JSON object/],
    ['{"t":-1,"ns":"p","k":"a","o":"l1","s":0}', /line 2: `t` must be/],
    ['{"t":1,"ns":"","k":"a","o":"l1","s":0}', /line 2: `ns` must be/],
    ['{"t":1,"ns":"p","k":"xyz","o":"l1","s":0}', /line 2: `k` must be the key hash in hex/],
    ['{"t":1,"ns":"p","k":"a","o":"hit","s":0}', /line 2: `o` must be "l1", "l2" or "miss"/],
    ['{"t":1,"ns":"p","k":"a","o":"l1","s":1.5}', /line 2: `s` must be/],
    [`{"t":1,"ns":"${'p'.repeat(1100)}","k":"a","o":"l1","s":0}`, /line 2: the line is longer than 1024/],
  ])('refuses %s with the line number', (bad, message) => {
    const text = `{"t":1,"ns":"p","k":"a","o":"l1","s":0}\n${bad}\n`
    const error = (() => {
      try {
        parseAccessLog(text, 'log.jsonl')
      } catch (e) {
        return e
      }
    })()
    expect(error).toBeInstanceOf(AccessLogError)
    expect(error).toMatchObject({ code: 'ERR_STRATA_ACCESS_LOG', file: 'log.jsonl', line: 2 })
    expect((error as Error).message).toMatch(message)
  })
})

describe('policy files', () => {
  it('resolves durations and defaults (the library’s L1 of 10,000 entries, no stale window)', () => {
    expect(resolvePolicy({ ttl: '5m' }, 'current.json')).toEqual({
      label: 'current.json',
      ttlMs: 300_000,
      staleForMs: 0,
      l1: { maxEntries: 10_000, policy: 'w-tinylfu' },
      namespace: undefined,
    })
    expect(
      resolvePolicy(
        { ttl: 1500, staleFor: '1m', l1: { maxEntries: 5, policy: 'lru' }, namespace: 'product' },
        'p.json',
      ),
    ).toEqual({
      label: 'p.json',
      ttlMs: 1500,
      staleForMs: 60_000,
      l1: { maxEntries: 5, policy: 'lru' },
      namespace: 'product',
    })
  })

  it.each([
    [{}, 'proposed.json: ttl'],
    [{ ttl: '5 minutes' }, 'proposed.json: ttl'],
    [{ ttl: 0 }, 'proposed.json: ttl'],
    [{ ttl: '5m', l1: { maxEntries: 0 } }, 'proposed.json: l1.maxEntries'],
    [{ ttl: '5m', l1: { maxEntries: 10, policy: 'arc' } }, 'proposed.json: l1.policy'],
    [{ ttl: '5m', namespace: 3 }, 'proposed.json: namespace'],
    [[], 'proposed.json'],
  ])('refuses %j naming %s', (policy, option) => {
    expect(() => resolvePolicy(policy, 'proposed.json')).toThrow(InvalidOptionError)
    expect(() => resolvePolicy(policy, 'proposed.json')).toThrow(`Invalid option \`${option}\``)
  })

  it.each([
    [{ ttl: '5m', stalefor: '1m' }, 'stalefor', 'Did you mean `staleFor`?'],
    [{ ttl: '5m', l1: { maxEntries: 10, size: 1 } }, 'l1.size', '`l1` takes `maxEntries`, `policy`.'],
  ])('refuses the unknown field of %j naming the file and the field', (policy, path, advice) => {
    const attempt = () => resolvePolicy(policy, 'proposed.json')
    expect(attempt).toThrow(UnknownOptionError)
    expect(attempt).toThrow(
      expect.objectContaining({
        code: 'ERR_STRATA_UNKNOWN_OPTION',
        option: `proposed.json: ${path}`,
      }) as Error,
    )
    expect(attempt).toThrow(`Unknown option \`${path}\` in proposed.json. ${advice}`)
  })
})

describe('report', () => {
  const log = [read(0, 'a'), read(1_000, 'a'), read(2_000, 'b'), read(3_000, 'a'), read(4_000, 'b')]
  const current = resolvePolicy({ ttl: '1s', l1: false }, 'current.json')
  const proposed = resolvePolicy({ ttl: '10s', l1: { maxEntries: 10 } }, 'proposed.json')
  const comparison = {
    log: 'access.jsonl',
    sampleRate: 1,
    current: { policy: current, result: simulate(log, current) },
    proposed: { policy: proposed, result: simulate(log, proposed) },
    observed: observe(log, undefined),
  }

  it('prints the two policies side by side with a bar per metric', () => {
    const text = renderText(comparison)
    expect(text).toContain('Shadow evaluation of access.jsonl: 5 reads over 4s')
    expect(text).toContain('proposed: ttl 10s, no stale, L1 10 w-tinylfu')
    expect(text).toMatch(/^overall hit ratio +0% +60% +0%$/m)
    expect(text).toMatch(/^misses \/ s +1\.25 +0\.5 +1\.25$/m)
    expect(text).toMatch(/^source calls \/ s +1\.25 +0\.5 +n\/a$/m)
    expect(text).toContain('overall hit ratio (proposed: +60 points, better)')
    expect(text).toContain(`  proposed  ${'█'.repeat(18)}${'░'.repeat(12)}  60%`)
    expect(text).toContain(`  current   ${'█'.repeat(30)}  1.25`)
  })

  it('writes a self-contained HTML page with escaped text', () => {
    const html = renderHtml({ ...comparison, log: '<log>.jsonl' })
    expect(html).toContain('&lt;log&gt;.jsonl')
    expect(html).not.toContain('<log>')
    // Self-contained: no script, nothing loaded from elsewhere; its one URL is a link to the documentation.
    expect(html).not.toMatch(/<script|\bsrc=|<link|url\(/)
    expect([...html.matchAll(/https?:\/\/[^"\s<]+/g)].map((m) => m[0])).toEqual([
      'https://github.com/stratacache/stratacache/blob/main/docs/cli.md#simulate',
    ])
    expect(html).toContain('style="width:60.0%"')
  })
})
