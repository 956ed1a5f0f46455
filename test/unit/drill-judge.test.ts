// The drill's verdict: judge() given constructed worker reports (no Redis, no processes), one test per way a namespace
// passes or fails its own declarations, with the exact sentences the report prints.
import { describe, expect, it } from 'vitest'
import type {
  NamespaceCounts,
  ReadRecord,
  RegionWorkerReport,
  WorkerReport,
  WriteRecord,
} from '../../src/cli/drill/protocol.js'
import {
  judge,
  renderText,
  type DrilledNamespace,
  type DrillReport,
  type RegionSplitInput,
} from '../../src/cli/drill/report.js'
import type { RawConvergence } from '../../src/cli/drill/region-split.js'
import { resolveNamespaceOptions } from '../../src/options.js'

/** "go" (epoch ms); the run lasts 6 s, the fault from 2 s to 4 s in. */
const GO = 1_700_000_000_000
const RUN_MS = 6_000
const FAULT_START = GO + 2_000
const FAULT_END = GO + 4_000
const UNSETTLED = 'still unsettled at the end of the run (lengthen --duration)'

type Declared = Partial<Parameters<typeof resolveNamespaceOptions>[1]>

function declare(name: string, declared: Declared = {}): DrilledNamespace {
  return { name, options: resolveNamespaceOptions(name, { key: `${name}:{id}`, ttl: '1m', ...declared }) }
}

function counts(over: Partial<NamespaceCounts> = {}): NamespaceCounts {
  return {
    loads: 0,
    failedWrites: 0,
    peakConcurrent: 0,
    peakPerSecond: 0,
    staleServed: 0,
    reads: 100,
    regionRefused: 0,
    regionSplitServes: 0,
    ...over,
  }
}

/**
 * 100 reads of namespace `ns` spread over the whole run (one every 60 ms, the last ending exactly at its end), of keys
 * the writer never changes, version 0; `ms(i)` is the i-th read's duration (10 ms unless given).
 */
function steadyReads(ns = 0, ms: (i: number) => number = () => 10): ReadRecord[] {
  return Array.from({ length: 100 }, (_, i): ReadRecord => [ns, 100 + (i % 10), GO + 60 * i + 50, ms(i), 0])
}

function reader(
  over: Partial<Omit<WorkerReport, 'namespaces'>> & { namespaces?: Partial<NamespaceCounts>[] } = {},
): WorkerReport {
  const { namespaces = [{}], ...rest } = over
  return {
    role: 'reader',
    pid: 1,
    reads: steadyReads(),
    writes: [],
    errors: [],
    unhealthyAt: [],
    ...rest,
    namespaces: namespaces.map((n) => counts(n)),
  }
}

function writer(writes: WriteRecord[], region?: RegionWorkerReport): WorkerReport {
  return {
    role: 'writer',
    pid: 2,
    reads: [],
    writes,
    errors: [],
    namespaces: [counts({ reads: 0 })],
    unhealthyAt: [],
    ...(region === undefined ? {} : { region }),
  }
}

function drill(
  namespaces: readonly DrilledNamespace[],
  workers: readonly WorkerReport[],
  region?: RegionSplitInput,
): DrillReport {
  return judge({
    drill: region === undefined ? 'redis-restart' : 'region-split',
    config: 'drill.config.mjs',
    service: 'drill-test',
    setup: {
      durationMs: RUN_MS,
      readers: 1,
      concurrency: 1,
      keys: 200,
      writeKeys: 5,
      writeIntervalMs: 50,
      sourceLatencyMs: 2,
    },
    workload: { kind: 'synthetic', keys: 200 },
    goAt: GO,
    endAt: GO + RUN_MS,
    fault: {
      kind: region === undefined ? 'redis-restart' : 'region-split',
      startMs: FAULT_START - GO,
      endMs: FAULT_END - GO,
      detail: {},
    },
    namespaces,
    workers,
    sourceLoads: namespaces.map(() => 7),
    ...(region === undefined ? {} : { region }),
  })
}

/** The one namespace's result of a drill of one namespace. */
function only(report: DrillReport) {
  expect(report.namespaces).toHaveLength(1)
  return report.namespaces[0]!
}

/**
 * A writer that acknowledged version 1 of key 0 at `ackedAt`, and a reader whose steady reads include one read of
 * key 0 starting `staleFor` ms later that still got version 0.
 */
function staleRead(ackedAt: number, staleFor: number): WorkerReport[] {
  return [
    writer([[0, 0, 1, ackedAt]]),
    reader({ reads: [...steadyReads(), [0, 0, ackedAt + staleFor, 10, 0]] }),
  ]
}

describe('drill judge(): a namespace within its declarations', () => {
  it('passes a namespace whose reads, latency, stale serves, source load and convergence are all within its declarations', () => {
    const report = drill(
      [
        declare('product', {
          consistency: 'bounded',
          maxStaleness: '1s',
          slo: { readP99: '20ms', staleReadsMax: 0.05 },
          source: { maxConcurrent: 4, maxPerSecond: 20 },
        }),
      ],
      [
        writer([[0, 0, 1, FAULT_START + 100]]),
        reader({
          reads: [...steadyReads(), [0, 0, FAULT_START + 600, 10, 0]],
          namespaces: [{ loads: 7, peakConcurrent: 3, peakPerSecond: 15, staleServed: 2, reads: 101 }],
        }),
      ],
    )
    expect(report.pass).toBe(true)
    expect(only(report)).toEqual({
      name: 'product',
      consistency: 'bounded',
      pass: true,
      failures: [],
      reads: 101,
      failedGets: 0,
      // Keys 100 to 109 read 10 times each, and key 0 once.
      keysRead: 11,
      hottestKeyShare: 10 / 101,
      writes: 1,
      failedWrites: 0,
      staleness: { boundMs: 1_000, staleReads: 1, beyondBound: 0, maxMs: 500 },
      latency: { p50Ms: 10, p99Ms: 10, objectiveMs: 20 },
      staleServed: { share: 2 / 101, objective: 0.05 },
      source: {
        loads: 7,
        loadsCountedByWorkers: 7,
        peakConcurrent: 3,
        maxConcurrent: 4,
        peakPerSecond: 15,
        maxPerSecond: 20,
      },
      convergedAfterMs: 0,
    })
    const text = renderText(report)
    expect(text).toMatch(/^drill redis-restart \(drill\.config\.mjs\): PASS$/m)
    expect(text).toContain('PASS product (bounded)')
    expect(text).toContain('  keys read 11, hottest key 9.9% of reads\n')
    expect(text).toContain('  stale reads 1, beyond the bound of 1000 ms 0, worst 500 ms')
    expect(text).toContain('  source loads 7; peak 3 at once (limit 4), 15 in a second (limit 20)')
    expect(text).toContain('  converged 0 ms after the fault ended')
    expect(text).not.toContain('✗')
  })

  it('reports undeclared objectives and source limits as null, and never fails on them', () => {
    const ns = only(
      drill(
        [declare('page')],
        [
          reader({
            reads: steadyReads(0, () => 900),
            namespaces: [{ peakConcurrent: 500, peakPerSecond: 9_000 }],
          }),
        ],
      ),
    )
    expect(ns.pass).toBe(true)
    expect(ns.latency).toEqual({ p50Ms: 900, p99Ms: 900, objectiveMs: null })
    expect(ns.staleServed.objective).toBeNull()
    expect(ns.source).toMatchObject({ maxConcurrent: null, maxPerSecond: null })
  })
})

describe('drill judge(): staleness against the consistency class', () => {
  it('fails a strong namespace on a read more than 50 ms staler than its bound of 0 ms', () => {
    const ns = only(drill([declare('quote', { consistency: 'strong' })], staleRead(FAULT_START + 100, 51)))
    expect(ns.pass).toBe(false)
    expect(ns.failures).toEqual(['1 reads were staler than the strong bound of 0 ms (worst 51 ms)'])
    expect(ns.staleness).toEqual({ boundMs: 0, staleReads: 1, beyondBound: 1, maxMs: 51 })
  })

  it('passes a strong namespace whose stale read is within the 50 ms slack', () => {
    const ns = only(drill([declare('quote', { consistency: 'strong' })], staleRead(FAULT_START + 100, 50)))
    expect(ns.failures).toEqual([])
    expect(ns.staleness).toEqual({ boundMs: 0, staleReads: 1, beyondBound: 0, maxMs: 50 })
  })

  it('fails a bounded namespace on a read more than 50 ms staler than its maxStaleness', () => {
    const bounded = declare('product', { consistency: 'bounded', maxStaleness: '1s' })
    const ns = only(drill([bounded], staleRead(FAULT_START + 100, 1_051)))
    expect(ns.failures).toEqual(['1 reads were staler than the bounded bound of 1000 ms (worst 1051 ms)'])
    expect(ns.staleness).toEqual({ boundMs: 1_000, staleReads: 1, beyondBound: 1, maxMs: 1_051 })
  })

  it('passes a bounded namespace whose stale read is exactly maxStaleness plus the slack', () => {
    const bounded = declare('product', { consistency: 'bounded', maxStaleness: '1s' })
    const ns = only(drill([bounded], staleRead(FAULT_START + 100, 1_050)))
    expect(ns.failures).toEqual([])
    expect(ns.staleness.beyondBound).toBe(0)
  })

  it('never fails an eventual namespace on staleness: its stale reads are counted against no bound', () => {
    const report = drill([declare('page', { consistency: 'eventual' })], staleRead(FAULT_START + 100, 1_800))
    const ns = only(report)
    expect(ns.failures).toEqual([])
    expect(ns.staleness).toEqual({ boundMs: null, staleReads: 1, beyondBound: 0, maxMs: 1_800 })
    expect(renderText(report)).toContain(
      '  stale reads 1, beyond the bound (none declared: eventual), worst 1800 ms',
    )
  })

  it('counts a read as stale only from the first newer write acknowledged before it started', () => {
    const strong = declare('quote', { consistency: 'strong' })
    // Acknowledged at the instant the read started: the read may have raced it, not stale.
    expect(only(drill([strong], staleRead(FAULT_START, 0))).staleness.staleReads).toBe(0)
    // Two newer writes: staleness runs from the first one acknowledged (v1 at +100), not from v2.
    const ns = only(
      drill(
        [strong],
        [
          writer([
            [0, 0, 1, FAULT_START + 100],
            [0, 0, 2, FAULT_START + 150],
          ]),
          reader({ reads: [...steadyReads(), [0, 0, FAULT_START + 160, 10, 0]] }),
        ],
      ),
    )
    expect(ns.staleness).toEqual({ boundMs: 0, staleReads: 1, beyondBound: 1, maxMs: 60 })
  })

  it('settles a fault at the end of the last read past the bound', () => {
    const strong = declare('quote', { consistency: 'strong' })
    // The stale read starts 300 ms after the fault ended and lasts 10 ms.
    const ns = only(drill([strong], staleRead(FAULT_END + 200, 100)))
    expect(ns.convergedAfterMs).toBe(310)
  })
})

describe('drill judge(): the source limits, per process', () => {
  it('fails a namespace whose loads ran more than source.maxConcurrent at once in one process', () => {
    const ns = only(
      drill(
        [declare('product', { source: { maxConcurrent: 4 } })],
        [reader({ namespaces: [{ peakConcurrent: 5 }] })],
      ),
    )
    expect(ns.failures).toEqual(['5 loads ran at once in one process, over source.maxConcurrent 4'])
    expect(ns.source).toMatchObject({ peakConcurrent: 5, maxConcurrent: 4 })
  })

  it('passes a namespace whose loads reached exactly source.maxConcurrent', () => {
    const ns = only(
      drill(
        [declare('product', { source: { maxConcurrent: 4 } })],
        [reader({ namespaces: [{ peakConcurrent: 4 }] })],
      ),
    )
    expect(ns.failures).toEqual([])
  })

  it('fails a namespace whose loads started more than source.maxPerSecond within a second in one process', () => {
    const ns = only(
      drill(
        [declare('product', { source: { maxPerSecond: 20 } })],
        [reader({ namespaces: [{ peakPerSecond: 21 }] })],
      ),
    )
    expect(ns.failures).toEqual(['21 loads started within a second, over source.maxPerSecond 20'])
    expect(ns.source).toMatchObject({ peakPerSecond: 21, maxPerSecond: 20 })
  })

  it('passes a namespace whose loads started exactly source.maxPerSecond within a second', () => {
    const ns = only(
      drill(
        [declare('product', { source: { maxPerSecond: 20 } })],
        [reader({ namespaces: [{ peakPerSecond: 20 }] })],
      ),
    )
    expect(ns.failures).toEqual([])
  })

  it('passes a maxPerSecond below 1 when one load started in a second, and fails it at two', () => {
    // Below 1 the limiter starts one load per 1 / maxPerSecond seconds: the workers' count per second is then 1.
    const slow = declare('report', { source: { maxPerSecond: 0.5 } })
    expect(only(drill([slow], [reader({ namespaces: [{ peakPerSecond: 1 }] })])).failures).toEqual([])
    expect(only(drill([slow], [reader({ namespaces: [{ peakPerSecond: 2 }] })])).failures).toEqual([
      '2 loads started within a second, over source.maxPerSecond 0.5',
    ])
  })

  it('judges the peak of the busiest process, not the sum over processes: the limits hold per process', () => {
    const ns = only(
      drill(
        [declare('product', { source: { maxConcurrent: 4, maxPerSecond: 20 } })],
        [
          reader({ pid: 1, namespaces: [{ peakConcurrent: 4, peakPerSecond: 20, loads: 3 }] }),
          reader({ pid: 3, namespaces: [{ peakConcurrent: 4, peakPerSecond: 20, loads: 4 }] }),
        ],
      ),
    )
    expect(ns.failures).toEqual([])
    expect(ns.source).toEqual({
      loads: 7,
      loadsCountedByWorkers: 7,
      peakConcurrent: 4,
      maxConcurrent: 4,
      peakPerSecond: 20,
      maxPerSecond: 20,
    })
  })
})

describe('drill judge(): the SLO', () => {
  /** 98 reads of 1 ms, then the 99th slowest `p99` ms, then one of 50 ms (nearest rank: p99 is the 99th of 100). */
  const reads = (p99: number) => steadyReads(0, (i) => (i === 98 ? p99 : i === 99 ? 50 : 1))

  it('fails a namespace whose p99 latency is over slo.readP99', () => {
    const ns = only(drill([declare('quote', { slo: { readP99: '5ms' } })], [reader({ reads: reads(5.01) })]))
    expect(ns.failures).toEqual(['p99 latency 5.01 ms is over the objective of 5 ms'])
    expect(ns.latency).toEqual({ p50Ms: 1, p99Ms: 5.01, objectiveMs: 5 })
  })

  it('passes a namespace whose p99 latency is exactly slo.readP99, however slow the slowest read', () => {
    const ns = only(drill([declare('quote', { slo: { readP99: '5ms' } })], [reader({ reads: reads(5) })]))
    expect(ns.failures).toEqual([])
    expect(ns.latency.p99Ms).toBe(5)
  })

  it('fails a namespace whose share of reads served stale is over slo.staleReadsMax', () => {
    const ns = only(
      drill(
        [declare('product', { slo: { staleReadsMax: 0.01 } })],
        [
          reader({ namespaces: [{ staleServed: 2, reads: 100 }] }),
          reader({ pid: 3, namespaces: [{ staleServed: 1 }] }),
        ],
      ),
    )
    // The library's stale serves over the library's reads, summed over the processes: 3 of 200.
    expect(ns.failures).toEqual(['1.5% of reads were served stale, over the objective of 1%'])
    expect(ns.staleServed).toEqual({ share: 0.015, objective: 0.01 })
  })

  it('passes a namespace whose share of reads served stale is exactly slo.staleReadsMax', () => {
    const ns = only(
      drill(
        [declare('product', { slo: { staleReadsMax: 0.01 } })],
        [reader({ namespaces: [{ staleServed: 1, reads: 100 }] })],
      ),
    )
    expect(ns.failures).toEqual([])
    expect(ns.staleServed).toEqual({ share: 0.01, objective: 0.01 })
  })
})

describe('drill judge(): failed gets and convergence', () => {
  it('fails a namespace on any failed get, and settles the fault at the end of the last one', () => {
    const ns = only(
      drill(
        [declare('product')],
        [reader({ reads: [...steadyReads(), [0, 1, FAULT_END + 300, 20, -1], [0, 1, GO + 100, 5, -1]] })],
      ),
    )
    expect(ns.failures).toEqual(['2 gets failed while the source could answer'])
    expect(ns.failedGets).toBe(2)
    // The get that failed before the fault counts as failed, not as unsettled by the fault.
    expect(ns.convergedAfterMs).toBe(320)
  })

  it('converges at the last instant a process saw L2 unhealthy after the fault began', () => {
    const ns = only(
      drill(
        [declare('product')],
        [
          reader({ unhealthyAt: [GO + 500, FAULT_START + 10, FAULT_END + 400] }),
          reader({ pid: 3, unhealthyAt: [FAULT_END + 250] }),
        ],
      ),
    )
    expect(ns.failures).toEqual([])
    expect(ns.convergedAfterMs).toBe(400)
  })

  it('fails as still unsettled when L2 was unhealthy within the last 250 ms of the run', () => {
    const settledJustInTime = only(
      drill([declare('product')], [reader({ unhealthyAt: [GO + RUN_MS - 251] })]),
    )
    expect(settledJustInTime.failures).toEqual([])
    expect(settledJustInTime.convergedAfterMs).toBe(RUN_MS - 251 - (FAULT_END - GO))

    const ns = only(drill([declare('product')], [reader({ unhealthyAt: [GO + RUN_MS - 250] })]))
    expect(ns.failures).toEqual([UNSETTLED])
    expect(ns.convergedAfterMs).toBeNull()
  })

  it('fails as still unsettled when a get failed within the last 250 ms of the run', () => {
    const ns = only(
      drill([declare('product')], [reader({ reads: [...steadyReads(), [0, 1, GO + 5_700, 60, -1]] })]),
    )
    expect(ns.failures).toEqual(['1 gets failed while the source could answer', UNSETTLED])
  })

  it('ends the run at the last read when the readers stopped before --duration', () => {
    // The reads end 4.5 s in: L2 unhealthy 4.3 s in is in the last 250 ms of what was measured.
    const reads = steadyReads().filter(([, , startAt]) => startAt + 10 <= GO + 4_500)
    const ns = only(drill([declare('product')], [reader({ reads, unhealthyAt: [GO + 4_300] })]))
    expect(ns.failures).toEqual([UNSETTLED])
  })

  it('judges a long run of a million reads (more than a call accepts as arguments) without overflowing the stack', () => {
    const reads = Array.from({ length: 1_000_000 }, (_, i): ReadRecord => [
      0,
      100 + (i % 10),
      GO + Math.floor(i * 0.006),
      1,
      0,
    ])
    const result = only(drill([declare('product')], [reader({ reads })]))
    expect(result).toMatchObject({ failures: [], pass: true, reads: 1_000_000, failedGets: 0 })
  })

  it('fails a namespace of which no read completed', () => {
    const ns = only(drill([declare('product')], [reader({ reads: [] })]))
    expect(ns.failures).toEqual(['no read completed'])
    expect(ns.reads).toBe(0)
  })
})

describe('drill judge(): several failures', () => {
  it('lists every broken promise of a namespace in a fixed order and fails the drill, while the other namespace passes', () => {
    const quote = declare('quote', {
      consistency: 'bounded',
      maxStaleness: '1s',
      slo: { readP99: '5ms', staleReadsMax: 0.01 },
      source: { maxConcurrent: 2, maxPerSecond: 10 },
    })
    const reads: ReadRecord[] = [
      ...steadyReads(0, (i) => (i >= 90 ? 40 : 1)),
      ...steadyReads(1),
      [0, 0, FAULT_START + 1_300, 10, 0],
      [0, 1, GO + 5_900, 100, -1],
    ]
    const report = drill(
      [quote, declare('page')],
      [
        writer([[0, 0, 1, FAULT_START + 100]]),
        reader({
          reads,
          namespaces: [{ peakConcurrent: 3, peakPerSecond: 11, staleServed: 5, reads: 100 }, {}],
          errors: ['ERR_STRATA_SOURCE_BUSY: no room'],
        }),
      ],
    )
    expect(report.pass).toBe(false)
    const [failing, passing] = report.namespaces
    expect(passing).toMatchObject({ name: 'page', pass: true, failures: [] })
    const failures = [
      '1 gets failed while the source could answer',
      '1 reads were staler than the bounded bound of 1000 ms (worst 1200 ms)',
      'p99 latency 40 ms is over the objective of 5 ms',
      '5% of reads were served stale, over the objective of 1%',
      '3 loads ran at once in one process, over source.maxConcurrent 2',
      '11 loads started within a second, over source.maxPerSecond 10',
      UNSETTLED,
    ]
    expect(failing).toMatchObject({ name: 'quote', pass: false, failures })
    const text = renderText(report)
    expect(text).toMatch(/^drill redis-restart \(drill\.config\.mjs\): FAIL$/m)
    expect(text).toContain('PASS page (eventual)')
    const block = text.slice(text.indexOf('FAIL quote (bounded)'), text.indexOf('PASS page'))
    expect(block.split('\n').filter((line) => line.startsWith('  ✗ '))).toEqual(
      failures.map((failure) => `  ✗ ${failure}`),
    )
    expect(text).toContain('first errors:\n  ERR_STRATA_SOURCE_BUSY: no room\n')
  })
})

describe('drill judge(): region-split', () => {
  const HEAL = FAULT_END

  function region(over: Partial<RawConvergence> = {}, names = 1): RegionSplitInput {
    return {
      names: ['a', 'b'],
      heartbeatMs: 50,
      splitAfterMs: 400,
      snapshot: { at: HEAL, backlog: Array(names).fill(3), lastIds: [], versions: [] },
      convergence: {
        backlogDrainedAt: HEAL + 100,
        staleEntriesAtHeal: Array(names).fill(1),
        entriesChecked: Array(names).fill(5),
        l2AgreedAt: Array(names).fill(HEAL + 200),
        probes: 20,
        ...over,
      },
    }
  }

  /** A process of `name` that saw the peer split from 450 ms after the cut until just after the heal. */
  function inRegion(
    name: string,
    splitAt = [FAULT_START + 450, FAULT_START + 475, HEAL + 25],
  ): RegionWorkerReport {
    return { name, splitAt, relaying: false, lastSplit: null }
  }

  /** The writer and a reader in region a, a reader in b; each reader reads every namespace steadily, plus `extra`. */
  function regionWorkers(
    extra: { a?: ReadRecord[]; b?: ReadRecord[]; bSplitAt?: number[]; namespaces?: number } = {},
  ): WorkerReport[] {
    const steady = Array.from({ length: extra.namespaces ?? 1 }, (_, ns) => steadyReads(ns)).flat()
    return [
      writer([[0, 0, 1, FAULT_START + 100]], inRegion('a')),
      reader({ reads: [...steady, ...(extra.a ?? [])], region: inRegion('a') }),
      reader({ pid: 3, reads: [...steady, ...(extra.b ?? [])], region: inRegion('b', extra.bSplitAt) }),
    ]
  }

  it('passes a namespace whose regions saw the split, stayed within the bound and converged', () => {
    const bounded = declare('product', { consistency: 'bounded', maxStaleness: '5s' })
    const report = drill([bounded], regionWorkers({ b: [[0, 0, FAULT_START + 1_000, 10, 0]] }), region())
    const ns = only(report)
    expect(ns.failures).toEqual([])
    expect(ns.region).toMatchObject({
      crossRegionBoundMs: 5_000,
      staleReadsDuringSplit: 1,
      beyondBoundDuringSplit: 0,
      l2AgreedAfterMs: 200,
      readersAgreedAfterMs: 0,
    })
    expect(report.regions!.detection).toEqual({
      a: { detectedAfterMs: 450, healedAfterMs: 25, processes: 2, splitSamplesBeforeCut: 0 },
      b: { detectedAfterMs: 450, healedAfterMs: 25, processes: 1, splitSamplesBeforeCut: 0 },
    })
    expect(ns.convergedAfterMs).toBe(200)
  })

  it('fails every namespace when a region did not see the split before the heal', () => {
    const report = drill(
      [declare('product'), declare('page')],
      // b's process saw it only at the heal.
      regionWorkers({ bSplitAt: [HEAL, HEAL + 25], namespaces: 2 }),
      region({}, 2),
    )
    expect(report.regions!.detection.b!.detectedAfterMs).toBeNull()
    for (const ns of report.namespaces) {
      expect(ns.failures, ns.name).toEqual([
        'the split was not detected in region b before the heal (raise --fault-for above --split-after)',
      ])
    }
  })

  it('judges strong reads in the region cut off from the writer by --split-after, and names both bounds', () => {
    const strong = declare('balance', { consistency: 'strong' })
    // In b, 450 ms stale is within --split-after (400 ms) plus the slack.
    const within = only(drill([strong], regionWorkers({ b: [[0, 0, FAULT_START + 550, 10, 0]] }), region()))
    expect(within.failures).toEqual([])
    expect(within.region!.crossRegionBoundMs).toBe(400)

    const beyond = only(drill([strong], regionWorkers({ b: [[0, 0, FAULT_START + 551, 10, 0]] }), region()))
    expect(beyond.failures).toEqual([
      '1 reads were staler than the strong bound of 0 ms in region a, 400 ms in region b (worst 451 ms)',
    ])
    expect(beyond.region).toMatchObject({ staleReadsDuringSplit: 1, beyondBoundDuringSplit: 1 })
    // In a, the writer's region, the same read is judged by the class bound of 0 ms.
    const inA = only(drill([strong], regionWorkers({ a: [[0, 0, FAULT_START + 151, 10, 0]] }), region()))
    expect(inA.failures).toEqual([
      '1 reads were staler than the strong bound of 0 ms in region a, 400 ms in region b (worst 51 ms)',
    ])
    expect(inA.region!.beyondBoundDuringSplit).toBe(0)
  })

  it('fails as not converged when the L2s never agreed, the backlog never drained, or a reader stayed behind to the end', () => {
    const product = declare('product', { consistency: 'bounded', maxStaleness: '5s' })
    const l2 = only(drill([product], regionWorkers(), region({ l2AgreedAt: [null] })))
    expect(l2.failures).toEqual([UNSETTLED])
    expect(l2.region!.l2AgreedAfterMs).toBeNull()

    const backlog = only(drill([product], regionWorkers(), region({ backlogDrainedAt: null })))
    expect(backlog.failures).toEqual([UNSETTLED])

    // A read in b 5.8 s in (the last 250 ms of the run) still got the version from before the heal.
    const behind = only(drill([product], regionWorkers({ b: [[0, 0, GO + 5_800, 10, 0]] }), region()))
    expect(behind.failures).toEqual([UNSETTLED])
    expect(behind.region!.readersAgreedAfterMs).toBeNull()
    for (const ns of [l2, backlog, behind]) expect(ns.convergedAfterMs).toBeNull()
  })

  it('converges at the latest of: the L2s agreed, the last reader behind, the backlog drained', () => {
    const product = declare('product', { consistency: 'bounded', maxStaleness: '5s' })
    const ns = only(drill([product], regionWorkers({ b: [[0, 0, HEAL + 250, 10, 0]] }), region()))
    expect(ns.region).toMatchObject({ l2AgreedAfterMs: 200, readersAgreedAfterMs: 260 })
    expect(ns.convergedAfterMs).toBe(260)
    expect(
      only(drill([product], regionWorkers(), region({ backlogDrainedAt: HEAL + 700 }))).convergedAfterMs,
    ).toBe(700)
  })
})
