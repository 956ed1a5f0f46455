// Measured staleness: 1 writer process and 3 reader processes share one namespace on a real Redis, per consistency
// class. The writer bumps a generation of 3 ids for ~3 s and logs when each write was acknowledged; each reader loops
// `get` over the ids and logs what it got. A read is stale by how long before it started the first write newer than
// the value it got had been acknowledged. The numbers are printed (one JSON line per scenario) for docs/consistency.md.
import { fileURLToPath } from 'node:url'
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { startRedis, type RedisServer } from '../helpers/redis-server.js'
import { startChild, type Child, type ChildExit } from './fixtures/start-child.js'
import {
  EVENTUAL_JITTER_MS,
  EVENTUAL_TTL_MS,
  MAX_STALENESS_MS,
  type Consistency,
  type StalenessReaderReport,
  type StalenessWriterReport,
} from './fixtures/staleness-shared.js'
import { rawClient, sleep, within } from './support.js'

const writerScript = fileURLToPath(new URL('./fixtures/staleness-writer.ts', import.meta.url))
const readerScript = fileURLToPath(new URL('./fixtures/staleness-reader.ts', import.meta.url))
const READERS = 3
const IDS = ['a', 'b', 'c']
const RUN_FOR_MS = 3_000
/** One generation of every id per 30 ms: ~100 generations, ~300 writes per run. */
const WRITE_INTERVAL_MS = 30
/**
 * Hang guards, not measurements: 4 `node --import tsx` children starting at once beside other test files on 2 cores
 * took over 15 s to be ready on a loaded machine. A child is killed CHILD_TIMEOUT_MS after its start (and exits by
 * itself 5 s later, see the fixtures' exitGuard); a test gives up after 80 s.
 */
const READY_WITHIN_MS = 40_000
const CHILD_TIMEOUT_MS = 60_000
/**
 * Slack on top of a class bound, for what lies between the instants the test can see: the Redis reply that carried
 * the value and the L1 fill, timer and event-loop delays of 4 busy Node processes and redis-server on 2 shared cores,
 * and the 1 ms resolution of `Date.now()` across processes (all read the same system clock). A reader's stalls longer
 * than that are measured, and added for its reads only (`allowedStaleness`).
 */
const SLACK_MS = 50
const BOUND_MS: Record<Consistency, number> = {
  strong: 0,
  bounded: MAX_STALENESS_MS,
  eventual: EVENTUAL_TTL_MS + EVENTUAL_JITTER_MS,
}

let redis: RedisServer
const children: Child[] = []
const cleanups: (() => Promise<void>)[] = []
beforeAll(async () => {
  redis = await startRedis()
})
afterAll(async () => {
  await redis.stop()
})
beforeEach(async () => {
  await redis.command('FLUSHALL')
})
afterEach(async () => {
  for (const cleanup of cleanups.splice(0)) await cleanup()
  for (const child of children) child.kill()
  await Promise.all(children.splice(0).map((child) => child.exited))
})

function reportOf<T>(exit: ChildExit): T {
  expect(exit.timedOut, `child did not exit; stderr: ${exit.stderr}`).toBe(false)
  expect(exit.code, exit.stderr).toBe(0)
  const line = exit.stdout.split('\n').find((l) => l.startsWith('{'))
  expect(line, `no report; stdout: ${exit.stdout.slice(0, 2_000)}; stderr: ${exit.stderr}`).toBeDefined()
  return JSON.parse(line!) as T
}

interface Scenario {
  name: string
  consistency: Consistency
  /** Every pub/sub message reaches the readers' caches this late. */
  delayMs?: number
  /** Kill every pub/sub connection `atMs` after go, and refuse new connections for `holdMs`. */
  busOutage?: { atMs: number; holdMs: number }
}

interface Run {
  writer: StalenessWriterReport
  readers: StalenessReaderReport[]
  /** Epoch ms of the kill and of the end of the outage, with `busOutage`. */
  killedAt?: number
  restoredAt?: number
  killed?: number
}

async function run(scenario: Scenario): Promise<Run> {
  const common = {
    url: redis.url,
    service: `staleness-${scenario.name}`,
    consistency: scenario.consistency,
    ids: IDS.join(','),
    'run-for': RUN_FOR_MS,
  }
  const argv = (options: Record<string, string | number>) =>
    Object.entries(options).flatMap(([name, value]) => [`--${name}`, String(value)])
  const writer = startChild(writerScript, argv({ ...common, interval: WRITE_INTERVAL_MS }), CHILD_TIMEOUT_MS)
  const readers = Array.from({ length: READERS }, () =>
    startChild(readerScript, argv({ ...common, 'delay-ms': scenario.delayMs ?? 0 }), CHILD_TIMEOUT_MS),
  )
  children.push(writer, ...readers)
  // The writer is READY once it has written generation 0 of every id; the readers once their bus is subscribed.
  await within(
    Promise.all([writer, ...readers].map((c) => c.waitForLine((l) => l === 'READY'))),
    READY_WITHIN_MS,
    'children ready',
  )

  const result: Partial<Run> = {}
  for (const child of [writer, ...readers]) child.send('go')
  if (scenario.busOutage !== undefined) {
    // A connection of the test's own, opened before new connections are refused.
    const raw = await rawClient(redis.url)
    cleanups.push(() => raw.close())
    const maxClients = String((await raw.configGet('maxclients')).maxclients)
    cleanups.unshift(async () => void (await raw.configSet('maxclients', maxClients)))
    await sleep(scenario.busOutage.atMs)
    // Existing connections stay; the pub/sub connections killed now cannot come back until maxclients is restored.
    await raw.configSet('maxclients', '1')
    result.killed = Number(await raw.sendCommand(['CLIENT', 'KILL', 'TYPE', 'pubsub']))
    result.killedAt = Date.now()
    await sleep(scenario.busOutage.holdMs)
    await raw.configSet('maxclients', maxClients)
    result.restoredAt = Date.now()
  }
  const exits = await within(Promise.all([writer, ...readers].map((c) => c.exited)), 15_000, 'children exit')
  result.writer = reportOf<StalenessWriterReport>(exits[0]!)
  result.readers = exits.slice(1).map((exit) => reportOf<StalenessReaderReport>(exit))
  return result as Run
}

/** One read, placed in time and judged against the writer's acknowledgements. */
interface Read {
  reader: number
  startAt: number
  id: string
  generation: number
  /** 0 unless a newer generation had been acknowledged before the read started: then how long before. */
  stalenessMs: number
}

function readsOf(result: Run): Read[] {
  const reads: Read[] = []
  result.readers.forEach((report, reader) => {
    for (const [idIndex, startMs, durationMs, generation] of report.reads) {
      const id = IDS[idIndex]!
      const acks = result.writer.acks[id]!
      const startAt = report.t0 + startMs
      // Sanity: the value read was written (its write had started) by the time the read ended.
      const written = acks[generation]
      expect(written, `reader ${reader} read ${id} generation ${generation}, never written`).toBeDefined()
      expect(
        written![0],
        `reader ${reader} read ${id}@${generation} before it was written`,
      ).toBeLessThanOrEqual(startAt + durationMs)
      const newer = acks[generation + 1]
      // Strictly before: with 1 ms clock resolution, an equal reading may be a read that started first.
      const stalenessMs = newer !== undefined && newer[1] < startAt ? startAt - newer[1] : 0
      reads.push({ reader, startAt, id, generation, stalenessMs })
    }
  })
  return reads
}

function summarize(reads: readonly Read[]) {
  const sorted = reads.map((r) => r.stalenessMs).sort((a, b) => a - b)
  const stale = reads.filter((r) => r.stalenessMs > 0)
  return {
    reads: reads.length,
    staleReads: stale.length,
    maxStalenessMs: sorted.at(-1) ?? 0,
    p99StalenessMs: sorted.length === 0 ? 0 : sorted[Math.ceil(sorted.length * 0.99) - 1]!,
  }
}

/** The whole run's numbers, printed as one JSON line (copied into docs/consistency.md). */
function report(scenario: Scenario, result: Run, reads: readonly Read[], extra: object = {}) {
  const writes = Object.values(result.writer.acks).reduce((n, acks) => n + acks.length - 1, 0)
  const summary = {
    scenario: scenario.name,
    consistency: scenario.consistency,
    writes,
    ...summarize(reads),
    busLagMaxMs: Math.max(...result.readers.map((r) => r.bus.lagMaxMs)),
    readers: result.readers.map((r, i) => ({
      reads: r.reads.length,
      maxStalenessMs: Math.max(
        0,
        ...reads.filter((read) => read.reader === i).map((read) => read.stalenessMs),
      ),
      l1Hits: r.stats.l1Hits,
      l2Hits: r.stats.l2Hits,
      loads: r.stats.loads,
      busReceived: r.bus.received,
      busLagMaxMs: r.bus.lagMaxMs,
      reconnects: r.bus.reconnects,
      maxStallMs: r.maxStallMs,
    })),
    ...extra,
  }
  console.log(JSON.stringify(summary))
  return summary
}

/** What every scenario checks: the processes ran, wrote and read as intended, without errors. */
function expectHealthyRun(result: Run) {
  const context = JSON.stringify({ writer: { ...result.writer, acks: undefined } })
  expect(result.writer.errors, context).toEqual([])
  for (const id of IDS) expect(result.writer.acks[id]!.length, context).toBeGreaterThan(20)
  for (const reader of result.readers) {
    const readerContext = JSON.stringify({ ...reader, reads: reader.reads.length })
    expect(reader.errors, readerContext).toEqual([])
    expect(reader.failed, readerContext).toBe(0)
    expect(reader.reads.length, readerContext).toBeGreaterThan(300)
  }
}

/** The reads that served a value older than `bound` (ms, or ms per read) allows, worst first, for a failure message. */
function worst(reads: readonly Read[], bound: number | ((read: Read) => number)) {
  const allowed = typeof bound === 'number' ? () => bound : bound
  return reads
    .filter((r) => r.stalenessMs > allowed(r))
    .sort((a, b) => b.stalenessMs - a.stalenessMs)
    .slice(0, 5)
    .map((r) => ({ ...r, allowedMs: allowed(r) }))
}

/**
 * How stale a read may be: the class bound, SLACK_MS, and the longest event-loop stall of the reader that made it.
 * A bounded L1 copy expires at its fill time + maxStaleness, so a reader held up between the Redis reply and the fill
 * keeps the copy that much longer: a delay of that reader's, not of the cache. (An eventual copy ends with its entry,
 * where the allowance is only generous.) A read staler than the bound by more than its own reader's stall still
 * fails: a copy kept past its TTL, or an invalidation lost with nothing to bound the copy.
 */
function allowedStaleness(result: Run, boundMs: number) {
  return (read: Read) => boundMs + SLACK_MS + result.readers[read.reader]!.maxStallMs
}

/** No read of the run is staler than `allowedStaleness` lets it be. */
function expectWithinBound(result: Run, reads: readonly Read[], boundMs: number) {
  const stalls = result.readers.map((r) => r.maxStallMs)
  expect(
    worst(reads, allowedStaleness(result, boundMs)),
    `reads staler than ${boundMs} + ${SLACK_MS} ms + their reader's longest stall (${stalls.join(', ')} ms)`,
  ).toEqual([])
}

describe('staleness across 1 writer and 3 reader processes, per consistency class', () => {
  it('strong: no read returns a generation older than the newest acknowledged before it started', async () => {
    const scenario: Scenario = { name: 'strong', consistency: 'strong' }
    const result = await run(scenario)
    expectHealthyRun(result)
    const reads = readsOf(result)
    const summary = report(scenario, result, reads)
    expect(summary.staleReads, JSON.stringify(worst(reads, 0))).toBe(0)
    // No L1: every read went to L2.
    for (const reader of result.readers) expect(reader.stats.l1Hits).toBe(0)
  }, 80_000)

  it(`bounded (maxStaleness ${MAX_STALENESS_MS} ms): no read is staler than the bound`, async () => {
    const scenario: Scenario = { name: 'bounded', consistency: 'bounded' }
    const result = await run(scenario)
    expectHealthyRun(result)
    const reads = readsOf(result)
    report(scenario, result, reads)
    expectWithinBound(result, reads, BOUND_MS.bounded)
  }, 80_000)

  it(`eventual (ttl ${EVENTUAL_TTL_MS} ms): no read is staler than an L1 copy's life (ttl + jitter)`, async () => {
    const scenario: Scenario = { name: 'eventual', consistency: 'eventual' }
    const result = await run(scenario)
    expectHealthyRun(result)
    const reads = readsOf(result)
    report(scenario, result, reads)
    expectWithinBound(result, reads, BOUND_MS.eventual)
  }, 80_000)
})

describe('delayed invalidation', () => {
  it('bounded: with every bus message delivered 300 ms late, reads stay within the bound and the lag shows it', async () => {
    const scenario: Scenario = { name: 'bounded-delayed-300ms', consistency: 'bounded', delayMs: 300 }
    const result = await run(scenario)
    expectHealthyRun(result)
    const reads = readsOf(result)
    report(scenario, result, reads)
    expectWithinBound(result, reads, BOUND_MS.bounded)
    for (const reader of result.readers) {
      expect(reader.bus.received).toBeGreaterThan(0)
      expect(reader.bus.lagMaxMs).toBeGreaterThanOrEqual(300)
    }
  }, 80_000)
})

describe('bus connection killed and restored', () => {
  for (const consistency of ['bounded', 'eventual'] as const) {
    it(`${consistency}: pub/sub connections killed and kept down for 1 s; no read exceeds the class bound, and the subscription is restored`, async () => {
      const scenario: Scenario = {
        name: `${consistency}-bus-killed`,
        consistency,
        busOutage: { atMs: 1_000, holdMs: 1_000 },
      }
      const result = await run(scenario)
      expectHealthyRun(result)
      // The writer's and the 3 readers' subscriber connections.
      expect(result.killed).toBe(READERS + 1)
      const reads = readsOf(result)
      const phase = (read: Read) => {
        const upAt = result.readers[read.reader]!.busUpAt ?? Infinity
        return read.startAt < result.killedAt! ? 'before' : read.startAt < upAt ? 'down' : 'after'
      }
      const phases = Object.fromEntries(
        (['before', 'down', 'after'] as const).map((p) => [
          p,
          summarize(reads.filter((r) => phase(r) === p)),
        ]),
      )
      report(scenario, result, reads, {
        outageMs: result.restoredAt! - result.killedAt!,
        resubscribedAfterMs: result.readers.map((r) => (r.busUpAt ?? NaN) - result.killedAt!),
        receivedAfterReconnect: result.readers.map((r) => r.receivedAfterReconnect),
        phases,
      })
      expectWithinBound(result, reads, BOUND_MS[consistency])
      for (const reader of result.readers) {
        const context = JSON.stringify({ ...reader, reads: reader.reads.length })
        expect(reader.bus.reconnects, context).toBeGreaterThanOrEqual(1)
        expect(reader.bus.subscribed, context).toBe(true)
        expect(reader.busDownAt, context).toBeDefined()
        // Reconnected and subscribed again: invalidations sent after the reconnect arrive.
        expect(reader.receivedAfterReconnect, context).toBeGreaterThan(0)
      }
      expect(phases.after!.reads).toBeGreaterThan(100)
    }, 80_000)
  }
})
