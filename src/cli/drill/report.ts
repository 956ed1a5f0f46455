// A drill's numbers, per namespace, judged against the namespace's own declarations; and the report as text or JSON.
import type { ResolvedNamespaceOptions } from '../../options.js'
import { formatCount, formatShare } from '../format.js'
import type { WorkerReport } from './protocol.js'
import type { HealSnapshot, RawConvergence } from './region-split.js'

/**
 * Allowed on top of a staleness bound: what lies between the instants the drill can see (the writer's ack and a
 * reader's start, read from one clock by busy processes, in whole ms).
 */
export const STALENESS_SLACK_MS = 50

export interface DrilledNamespace {
  readonly name: string
  readonly options: ResolvedNamespaceOptions
}

export interface NamespaceResult {
  readonly name: string
  readonly consistency: ResolvedNamespaceOptions['consistency']
  readonly pass: boolean
  /** Why it failed, one sentence per broken promise; empty when it passed. */
  readonly failures: string[]
  readonly reads: number
  readonly failedGets: number
  /** Distinct keys the readers read, and the share of their reads that went to the one they read most. */
  readonly keysRead: number
  readonly hottestKeyShare: number
  /** Writes acknowledged, and writes whose cache delete rejected (not counted for staleness: never acknowledged). */
  readonly writes: number
  readonly failedWrites: number
  readonly staleness: {
    /** The class bound (0 for strong, maxStaleness for bounded); null for eventual (no bound promised). */
    readonly boundMs: number | null
    /** Reads that got a value older than the newest write acknowledged before they started. */
    readonly staleReads: number
    /** Of them, staler than the bound plus STALENESS_SLACK_MS. */
    readonly beyondBound: number
    readonly maxMs: number
  }
  readonly latency: { readonly p50Ms: number; readonly p99Ms: number; readonly objectiveMs: number | null }
  /** Reads the library answered with a stale value (SWR, fail-safe…), against `slo.staleReadsMax`. */
  readonly staleServed: { readonly share: number; readonly objective: number | null }
  readonly source: {
    /** Loads counted by the source itself, and by the workers (they agree unless a worker lost count). */
    readonly loads: number
    readonly loadsCountedByWorkers: number
    /** Peaks in one process: the source limit applies per process. */
    readonly peakConcurrent: number
    readonly maxConcurrent: number | null
    readonly peakPerSecond: number
    readonly maxPerSecond: number | null
  }
  /**
   * From the end of the fault to the last read that failed or was staler than the bound, or the last instant a
   * process's L2 circuit was open or its bus unsubscribed; null when that still held at the end of the run.
   */
  readonly convergedAfterMs: number | null
  /** region-split only: the namespace during the split and after the heal. */
  readonly region?: NamespaceRegionResult
}

/** One namespace in the region-split drill. Counts from the workers' reads and the drill's raw reads, unless named. */
export interface NamespaceRegionResult {
  /**
   * The bound a read in the region without the writer is judged by: strong `splitAfter` (it may serve its L2's copy
   * until the split is declared, then reads through), bounded `maxStaleness`, eventual none (null).
   */
  readonly crossRegionBoundMs: number | null
  /** Reads in that region that started while the link was cut; of them, older than a write acknowledged before. */
  readonly readsDuringSplit: number
  readonly staleReadsDuringSplit: number
  readonly beyondBoundDuringSplit: number
  /** Gets that rejected, in either region, while the link was cut (both regions are split from each other). */
  readonly failedGetsDuringSplit: number
  /** The library's own counts, for comparison: copies its read gate refused, and copies eventual served split. */
  readonly libraryRefused: number
  readonly librarySplitServes: number
  /** Invalidations of this namespace waiting in the outboxes at the heal (XRANGE, heartbeats left out). */
  readonly replayed: number
  /** Entries in either region's L2 older than the source's version at the heal (first probe after it). */
  readonly staleL2EntriesAtHeal: number
  /** L2 entries the convergence probes decoded (both regions). */
  readonly l2EntriesChecked: number
  /** From the heal until no L2 entry in either region was older than the source's version at the heal. */
  readonly l2AgreedAfterMs: number | null
  /** From the heal until the last read (either region) that returned a version older than the heal's. */
  readonly readersAgreedAfterMs: number | null
}

/** What the region-split drill measured itself, for judge(). */
export interface RegionSplitInput {
  readonly names: readonly string[]
  readonly heartbeatMs: number
  readonly splitAfterMs: number
  readonly snapshot: HealSnapshot
  readonly convergence: RawConvergence
}

/** The regions in the region-split drill. */
export interface RegionsResult {
  readonly heartbeatMs: number
  readonly splitAfterMs: number
  /** Per region: how long after the cut every one of its processes saw the peer split, and after the heal healed. */
  readonly detection: Readonly<
    Record<
      string,
      {
        detectedAfterMs: number | null
        healedAfterMs: number | null
        processes: number
        /**
         * Samples (one per 25 ms per process) that saw the peer split before the cut, while the link was up: a
         * relay too busy to read its peer within splitAfter. Non-zero makes detectedAfterMs an underestimate.
         */
        splitSamplesBeforeCut: number
      }
    >
  >
  /** Invalidations waiting in the outboxes at the heal, counted raw; and the relays' own count of what they replayed. */
  readonly backlogAtHeal: number
  readonly replayedByRelays: number | null
  /** From the heal until that backlog had left the outboxes (relayed and acknowledged). */
  readonly backlogDrainedAfterMs: number | null
}

/** The read workload: synthetic, or an access log's reads (and what the log itself held, per namespace). */
export type WorkloadReport =
  | { readonly kind: 'synthetic'; readonly keys: number }
  | {
      readonly kind: 'recorded'
      /** The log as given on the command line. */
      readonly file: string
      /** Records read from it (every namespace's); at most maxRecords, and truncated when it held more. */
      readonly records: number
      readonly truncated: boolean
      readonly maxRecords: number
      /** Per drilled namespace, in the log: its reads, distinct keys, and the share of reads of its hottest key. */
      readonly namespaces: readonly {
        readonly name: string
        readonly reads: number
        readonly keys: number
        readonly hottestKeyShare: number
      }[]
    }

export interface DrillReport {
  readonly drill: string
  readonly config: string
  /** The service name the drill's caches ran under (its keys in L2 and in the source start with it). */
  readonly service: string
  readonly pass: boolean
  readonly workload: WorkloadReport
  readonly setup: {
    readonly durationMs: number
    readonly readers: number
    readonly concurrency: number
    /** Keys per namespace of the synthetic workload; null with a recorded one (see `workload`). */
    readonly keys: number | null
    /** Most keys the writer writes per namespace (a namespace with fewer keys has all of them written). */
    readonly writeKeys: number
    readonly writeIntervalMs: number
    readonly sourceLatencyMs: number
  }
  /** When the fault began and ended, ms from the start of the workload. */
  readonly fault: {
    readonly kind: string
    readonly startMs: number
    readonly endMs: number
    readonly detail: Readonly<Record<string, number>>
  }
  readonly namespaces: NamespaceResult[]
  /** region-split only. */
  readonly regions?: RegionsResult
  /** The first few failures the workers saw, as `code: message`. */
  readonly errors: string[]
}

/** The last part of the run in which anything unsettled means the drill ended before the namespace converged. */
const SETTLED_TAIL_MS = 250

export function judge(input: {
  drill: string
  config: string
  service: string
  setup: DrillReport['setup']
  workload: WorkloadReport
  goAt: number
  endAt: number
  fault: DrillReport['fault']
  namespaces: readonly DrilledNamespace[]
  workers: readonly WorkerReport[]
  sourceLoads: readonly number[]
  region?: RegionSplitInput
}): DrillReport {
  const { goAt, workers } = input
  const faultEnd = goAt + input.fault.endMs
  const faultStart = goAt + input.fault.startMs
  const lastUnhealthy = Math.max(
    0,
    ...workers.map((w) => w.unhealthyAt.filter((t) => t >= faultStart).at(-1) ?? 0),
  )
  const split =
    input.region === undefined ? undefined : judgeRegions(input.region, workers, faultStart, faultEnd)
  // A loop, not Math.max(...reads): a long drill records hundreds of thousands of reads, past the call stack's limit
  // on the number of arguments.
  let lastReadEnd = goAt
  for (const w of workers) for (const r of w.reads) if (r[2] + r[3] > lastReadEnd) lastReadEnd = r[2] + r[3]
  const runEnd = Math.min(input.endAt, lastReadEnd)

  const namespaces = input.namespaces.map((ns, i): NamespaceResult => {
    const o = ns.options
    const bound = o.consistency === 'strong' ? 0 : o.consistency === 'bounded' ? o.maxStalenessMs : Infinity
    // Per key, the acknowledged writes: the version written and when.
    const acks = new Map<number, [version: number, at: number][]>()
    let writes = 0
    for (const w of workers) {
      for (const [n, key, version, at] of w.writes) {
        if (n !== i) continue
        writes++
        const list = acks.get(key) ?? []
        list.push([version, at])
        acks.set(key, list)
      }
    }
    let reads = 0
    let failed = 0
    let staleReads = 0
    let beyond = 0
    let maxStaleness = 0
    let lastUnsettled = 0
    const durations: number[] = []
    // region-split: the reads of the region without the writer, judged by the bound across regions.
    const crossBound =
      o.consistency === 'strong'
        ? (input.region?.splitAfterMs ?? 0)
        : o.consistency === 'bounded'
          ? o.maxStalenessMs
          : Infinity
    const healVersions = new Map<number, number>()
    if (input.region !== undefined) {
      for (const [key, list] of acks)
        for (const [v, at] of list)
          if (at < faultEnd && v > (healVersions.get(key) ?? -1)) healVersions.set(key, v)
    }
    const during = { reads: 0, stale: 0, beyond: 0, failed: 0 }
    // Reads per key number: every get counts, failed or not (it is the workload's shape, not its outcome).
    const perKey = new Map<number, number>()
    let lastBehind = 0
    for (const w of workers) {
      const remote = w.region !== undefined && w.region.name !== input.region?.names[0]
      const readBound = remote ? crossBound : bound
      for (const [n, key, startAt, ms, version] of w.reads) {
        if (n !== i) continue
        reads++
        perKey.set(key, (perKey.get(key) ?? 0) + 1)
        const inSplit = remote && startAt >= faultStart && startAt < faultEnd
        if (inSplit) during.reads++
        if (input.region !== undefined && startAt >= faultEnd && version >= 0) {
          if (version < (healVersions.get(key) ?? 0)) lastBehind = Math.max(lastBehind, startAt + ms)
        }
        durations.push(ms)
        if (version < 0) {
          failed++
          if (startAt >= faultStart && startAt < faultEnd) during.failed++
          if (startAt >= faultStart) lastUnsettled = Math.max(lastUnsettled, startAt + ms)
          continue
        }
        // Stale by how long before this read started the first newer write had been acknowledged.
        let newerAckedAt = Infinity
        for (const [v, at] of acks.get(key) ?? [])
          if (v > version && at < startAt) newerAckedAt = Math.min(newerAckedAt, at)
        if (newerAckedAt === Infinity) continue
        const staleness = startAt - newerAckedAt
        staleReads++
        if (inSplit) during.stale++
        maxStaleness = Math.max(maxStaleness, staleness)
        if (staleness > readBound + STALENESS_SLACK_MS) {
          beyond++
          if (inSplit) during.beyond++
          if (startAt >= faultStart) lastUnsettled = Math.max(lastUnsettled, startAt + ms)
        }
      }
    }
    durations.sort((a, b) => a - b)
    const quantile = (q: number) =>
      durations.length === 0 ? 0 : durations[Math.ceil(durations.length * q) - 1]!
    const p99 = quantile(0.99)
    const staleServed = sum(workers.map((w) => w.namespaces[i]?.staleServed ?? 0))
    const libraryReads = sum(workers.map((w) => w.namespaces[i]?.reads ?? 0))
    const staleShare = libraryReads === 0 ? 0 : staleServed / libraryReads
    const peakConcurrent = Math.max(0, ...workers.map((w) => w.namespaces[i]?.peakConcurrent ?? 0))
    const peakPerSecond = Math.max(0, ...workers.map((w) => w.namespaces[i]?.peakPerSecond ?? 0))
    const limit = (n: number) => (Number.isFinite(n) ? n : null)
    let regionResult: NamespaceRegionResult | undefined
    let rawSettled = 0
    if (input.region !== undefined && split !== undefined) {
      const c = input.region.convergence
      const l2At = c.l2AgreedAt[i] ?? null
      regionResult = {
        crossRegionBoundMs: Number.isFinite(crossBound) ? crossBound : null,
        readsDuringSplit: during.reads,
        staleReadsDuringSplit: during.stale,
        beyondBoundDuringSplit: during.beyond,
        failedGetsDuringSplit: during.failed,
        libraryRefused: sum(workers.map((w) => w.namespaces[i]?.regionRefused ?? 0)),
        librarySplitServes: sum(workers.map((w) => w.namespaces[i]?.regionSplitServes ?? 0)),
        replayed: input.region.snapshot.backlog[i] ?? 0,
        staleL2EntriesAtHeal: c.staleEntriesAtHeal[i] ?? 0,
        l2EntriesChecked: c.entriesChecked[i] ?? 0,
        l2AgreedAfterMs: l2At === null ? null : Math.max(0, l2At - faultEnd),
        readersAgreedAfterMs:
          lastBehind >= runEnd - SETTLED_TAIL_MS ? null : Math.max(0, Math.round(lastBehind - faultEnd)),
      }
      // Converged once the reads, both regions' L2 and the outboxes all agree with the source (the latest of them).
      rawSettled =
        l2At === null || regionResult.readersAgreedAfterMs === null || c.backlogDrainedAt === null
          ? Infinity
          : Math.max(l2At, lastBehind, c.backlogDrainedAt)
    }
    const unsettled = Math.max(lastUnsettled, lastUnhealthy, rawSettled)
    const convergedAfterMs =
      unsettled === Infinity || (rawSettled === 0 && unsettled >= runEnd - SETTLED_TAIL_MS)
        ? null
        : Math.max(0, Math.round(unsettled - faultEnd))

    const failures: string[] = []
    if (reads === 0) failures.push('no read completed')
    if (failed > 0) failures.push(`${failed} gets failed while the source could answer`)
    if (beyond > 0) {
      // region-split judges the region without the writer by the bound across regions: name it when it differs.
      const bounds =
        input.region !== undefined && crossBound !== bound
          ? `${bound} ms in region ${input.region.names[0]}, ${crossBound} ms in region ` +
            input.region.names.slice(1).join(', ')
          : `${bound} ms`
      failures.push(
        `${beyond} reads were staler than the ${o.consistency} bound of ${bounds} (worst ${maxStaleness} ms)`,
      )
    }
    const objective = o.slo?.readP99Ms
    if (objective !== undefined && p99 > objective) {
      failures.push(`p99 latency ${p99} ms is over the objective of ${objective} ms`)
    }
    const staleObjective = o.slo?.staleReadsMax
    if (staleObjective !== undefined && staleShare > staleObjective) {
      failures.push(
        `${formatShare(staleShare)} of reads were served stale, over the objective of ${formatShare(staleObjective)}`,
      )
    }
    if (peakConcurrent > o.source.maxConcurrent) {
      failures.push(
        `${peakConcurrent} loads ran at once in one process, over source.maxConcurrent ${o.source.maxConcurrent}`,
      )
    }
    // The workers count starts per clock second. Below 1 per second the limiter starts one load every
    // 1 / maxPerSecond seconds, so one in a second keeps to it (and above 1 it admits floor(maxPerSecond)).
    if (peakPerSecond > Math.max(1, o.source.maxPerSecond)) {
      failures.push(
        `${peakPerSecond} loads started within a second, over source.maxPerSecond ${o.source.maxPerSecond}`,
      )
    }
    if (convergedAfterMs === null)
      failures.push('still unsettled at the end of the run (lengthen --duration)')
    if (split !== undefined) {
      for (const [name, d] of Object.entries(split.detection)) {
        if (d.detectedAfterMs === null) {
          failures.push(
            `the split was not detected in region ${name} before the heal (raise --fault-for above --split-after)`,
          )
        }
      }
    }

    return {
      name: ns.name,
      consistency: o.consistency,
      pass: failures.length === 0,
      failures,
      reads,
      failedGets: failed,
      keysRead: perKey.size,
      hottestKeyShare: reads === 0 ? 0 : most(perKey.values()) / reads,
      writes,
      failedWrites: sum(workers.map((w) => w.namespaces[i]?.failedWrites ?? 0)),
      staleness: {
        boundMs: Number.isFinite(bound) ? bound : null,
        staleReads,
        beyondBound: beyond,
        maxMs: maxStaleness,
      },
      latency: { p50Ms: quantile(0.5), p99Ms: p99, objectiveMs: objective ?? null },
      staleServed: { share: staleShare, objective: staleObjective ?? null },
      source: {
        loads: input.sourceLoads[i] ?? 0,
        loadsCountedByWorkers: sum(workers.map((w) => w.namespaces[i]?.loads ?? 0)),
        peakConcurrent,
        maxConcurrent: limit(o.source.maxConcurrent),
        peakPerSecond,
        maxPerSecond: limit(o.source.maxPerSecond),
      },
      convergedAfterMs,
      ...(regionResult === undefined ? {} : { region: regionResult }),
    }
  })
  return {
    drill: input.drill,
    config: input.config,
    service: input.service,
    pass: namespaces.every((ns) => ns.pass),
    workload: input.workload,
    setup: input.setup,
    fault: input.fault,
    namespaces,
    ...(split === undefined ? {} : { regions: split }),
    errors: workers.flatMap((w) => w.errors).slice(0, 10),
  }
}

/** Split detection per region from the workers' samples, and the outboxes' backlog from the drill's own reads. */
function judgeRegions(
  region: RegionSplitInput,
  workers: readonly WorkerReport[],
  cutAt: number,
  healAt: number,
): RegionsResult {
  const detection: Record<string, RegionsResult['detection'][string]> = {}
  for (const name of region.names) {
    const mine = workers.filter((w) => w.region?.name === name)
    let detected: number | null = 0
    let healed: number | null = 0
    let before = 0
    for (const w of mine) {
      before += w.region!.splitAt.filter((t) => t < cutAt).length
      const seen = w.region!.splitAt.filter((t) => t >= cutAt)
      const first = seen.find((t) => t < healAt)
      detected = first === undefined || detected === null ? null : Math.max(detected, first - cutAt)
      // Healed by the first sample after the last one that still saw the split.
      const last = seen.at(-1)
      healed =
        healed === null ? null : Math.max(healed, last === undefined || last < healAt ? 0 : last - healAt)
    }
    detection[name] = {
      detectedAfterMs: detected,
      healedAfterMs: healed,
      processes: mine.length,
      splitSamplesBeforeCut: before,
    }
  }
  const byRelays = workers
    .filter((w) => w.region?.relaying === true && w.region.lastSplit !== null)
    .map((w) => w.region!.lastSplit!.replayed)
  const drained = region.convergence.backlogDrainedAt
  return {
    heartbeatMs: region.heartbeatMs,
    splitAfterMs: region.splitAfterMs,
    detection,
    backlogAtHeal: sum(region.snapshot.backlog),
    replayedByRelays: byRelays.length === 0 ? null : sum(byRelays),
    backlogDrainedAfterMs: drained === null ? null : Math.max(0, drained - healAt),
  }
}

/** The largest value, 0 for none (a loop: a spread of a million keys' counts would overflow the stack). */
function most(values: Iterable<number>): number {
  let max = 0
  for (const v of values) if (v > max) max = v
  return max
}

function sum(values: readonly number[]): number {
  return values.reduce((a, b) => a + b, 0)
}

export function renderJson(report: DrillReport): string {
  return `${JSON.stringify(report, null, 2)}\n`
}

export function renderText(report: DrillReport): string {
  const { fault, setup, workload } = report
  const lines = [
    `drill ${report.drill} (${report.config}): ${report.pass ? 'PASS' : 'FAIL'}`,
    workload.kind === 'synthetic'
      ? `  ${setup.readers} reader processes × ${setup.concurrency} loops over ${formatCount(workload.keys)} keys ` +
        `per namespace, 1 writer (${setup.writeKeys} keys, every ${setup.writeIntervalMs} ms), ` +
        `${setup.durationMs} ms; source latency ${setup.sourceLatencyMs} ms`
      : `  ${setup.readers} reader processes × ${setup.concurrency} loops replaying ${workload.file} ` +
        `(${formatCount(workload.records)} records${
          workload.truncated
            ? `: truncated at ${formatCount(workload.maxRecords)}, the rest of the file was not read`
            : ''
        }), 1 writer (each namespace's ${setup.writeKeys} hottest keys, or all when it has fewer, every ` +
        `${setup.writeIntervalMs} ms), ` +
        `${setup.durationMs} ms; source latency ${setup.sourceLatencyMs} ms`,
    `  fault: ${fault.kind} from ${fault.startMs} ms to ${fault.endMs} ms` +
      (Object.keys(fault.detail).length === 0
        ? ''
        : ` (${Object.entries(fault.detail)
            .map(([k, v]) => `${k} ${formatCount(v)}`)
            .join(', ')})`),
  ]
  const ms = (n: number | null, what: string) => (n === null ? `not ${what}` : `${n} ms`)
  if (report.regions !== undefined) {
    const r = report.regions
    lines.push(
      `  regions: heartbeat ${r.heartbeatMs} ms, split after ${r.splitAfterMs} ms; ` +
        Object.entries(r.detection)
          .map(
            ([name, d]) =>
              `${name} (${d.processes} processes) saw the split ${ms(d.detectedAfterMs, 'detected')} after the cut, ` +
              `healed ${ms(d.healedAfterMs, 'healed')} after the heal` +
              (d.splitSamplesBeforeCut === 0
                ? ''
                : ` (split seen ${d.splitSamplesBeforeCut}× before the cut)`),
          )
          .join('; '),
      `  outboxes at the heal: ${formatCount(r.backlogAtHeal)} invalidations (the relays counted ` +
        `${r.replayedByRelays === null ? 'none' : formatCount(r.replayedByRelays)} replayed), drained ` +
        `${ms(r.backlogDrainedAfterMs, 'in time')} after the heal`,
    )
  }
  lines.push('')
  for (const ns of report.namespaces) {
    const s = ns.staleness
    const src = ns.source
    const limit = (n: number | null) => (n === null ? 'no limit' : `limit ${formatCount(n)}`)
    const logged =
      workload.kind === 'recorded' ? workload.namespaces.find((w) => w.name === ns.name) : undefined
    lines.push(
      `${ns.pass ? 'PASS' : 'FAIL'} ${ns.name} (${ns.consistency})`,
      `  reads ${formatCount(ns.reads)}, failed gets ${formatCount(ns.failedGets)}, writes ${formatCount(ns.writes)} ` +
        `(${formatCount(ns.failedWrites)} more rejected)`,
      `  keys read ${formatCount(ns.keysRead)}, hottest key ${formatShare(ns.hottestKeyShare)} of reads` +
        (logged === undefined
          ? ''
          : ` (the log: ${formatCount(logged.reads)} reads of ${formatCount(logged.keys)} keys, hottest ` +
            `${formatShare(logged.hottestKeyShare)})`),
      `  stale reads ${formatCount(s.staleReads)}, beyond the bound ${
        s.boundMs === null ? '(none declared: eventual)' : `of ${s.boundMs} ms ${formatCount(s.beyondBound)}`
      }, worst ${s.maxMs} ms`,
      `  p99 latency ${ns.latency.p99Ms} ms (${
        ns.latency.objectiveMs === null ? 'no objective' : `objective ${ns.latency.objectiveMs} ms`
      }), p50 ${ns.latency.p50Ms} ms; served stale ${formatShare(ns.staleServed.share)}${
        ns.staleServed.objective === null ? '' : ` (objective ${formatShare(ns.staleServed.objective)})`
      }`,
      `  source loads ${formatCount(src.loads)}; peak ${src.peakConcurrent} at once (${limit(src.maxConcurrent)}), ` +
        `${src.peakPerSecond} in a second (${limit(src.maxPerSecond)})`,
      `  converged ${ns.convergedAfterMs === null ? 'not within the run' : `${ns.convergedAfterMs} ms after the fault ended`}`,
    )
    const r = ns.region
    if (r !== undefined) {
      lines.push(
        `  in region b while cut: reads ${formatCount(r.readsDuringSplit)}, stale ${formatCount(r.staleReadsDuringSplit)}, ` +
          `beyond ${r.crossRegionBoundMs === null ? 'a bound (none: eventual)' : `the ${r.crossRegionBoundMs} ms bound`} ` +
          `${formatCount(r.beyondBoundDuringSplit)}; failed gets while cut (both regions) ` +
          `${formatCount(r.failedGetsDuringSplit)}; library: refused ${formatCount(r.libraryRefused)}, ` +
          `served split ${formatCount(r.librarySplitServes)}`,
        `  replayed ${formatCount(r.replayed)} invalidations; L2 entries behind the source at the heal ` +
          `${formatCount(r.staleL2EntriesAtHeal)} (of ${formatCount(r.l2EntriesChecked)} checked), both L2s agreed ` +
          `${ms(r.l2AgreedAfterMs, 'in time')}, readers ${ms(r.readersAgreedAfterMs, 'in time')} after the heal`,
      )
    }
    for (const failure of ns.failures) lines.push(`  ✗ ${failure}`)
    lines.push('')
  }
  if (report.errors.length > 0) {
    lines.push('first errors:', ...report.errors.map((e) => `  ${e}`), '')
  }
  return lines.join('\n')
}
