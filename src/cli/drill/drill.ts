// Runs one chaos drill: its own Redis (L2) and source Redis on loopback, worker processes running the config module's
// namespaces (worker.ts), the fault at its time, then the numbers measured against each namespace's declarations.
import { fork, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { isAbsolute, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createClient } from 'redis'
import { DrillSetupError } from '../../errors.js'
import { isEntryKey } from '../../storage/entry-store.js'
import { readAccessLog, type AccessLogFile } from '../access-log.js'
import { loadConfigModule } from '../config-module.js'
import type {
  ParentMessage,
  RegionSetup,
  WorkerMessage,
  WorkerReport,
  WorkerSetup,
  WorkloadSetup,
} from './protocol.js'
import {
  mapRecordedWorkload,
  MAX_WORKLOAD_RECORDS,
  readerStart,
  type RecordedNamespace,
} from './recorded-workload.js'
import { startRedis, type RedisServer } from './redis-server.js'
import {
  RawRegions,
  REGION_NAMES,
  startRegions,
  type DrillRegions,
  type HealSnapshot,
  type RawConvergence,
} from './region-split.js'
import type { DrillName } from './drills.js'
import { sourceLoadsKey } from './workload.js'
import {
  judge,
  type DrillReport,
  type DrilledNamespace,
  type RegionSplitInput,
  type WorkloadReport,
} from './report.js'

export interface DrillOptions {
  readonly drill: DrillName
  readonly config: string
  readonly cwd: string
  /** Namespaces to drill; all of the config module's when empty. */
  readonly namespaces: readonly string[]
  readonly durationMs: number
  readonly readers: number
  readonly concurrency: number
  /** Keys per namespace of the synthetic workload (unused with `workload`). */
  readonly keys: number
  /**
   * An access log (relative to `cwd`) whose reads the readers replay instead of the synthetic workload: see
   * recorded-workload.ts for the mapping. At most MAX_WORKLOAD_RECORDS records are read.
   */
  readonly workload?: string | undefined
  /** How long the fault lasts: Redis down, or the bus delayed. */
  readonly faultForMs: number
  /** delayed-invalidation: how late each bus message arrives while the fault lasts. */
  readonly busDelayMs: number
  /** region-split: the regions' heartbeat and split threshold (`regions.heartbeat`, `regions.splitAfter`). */
  readonly heartbeatMs: number
  readonly splitAfterMs: number
  readonly sourceLatencyMs: number
  /**
   * A Redis to use as L2 instead of starting one (not with redis-restart, which kills its own), and one to use as the
   * synthetic source. The drill's keys there are under its run's service name; it leaves them for inspection.
   */
  readonly l2Url?: string | undefined
  readonly sourceUrl?: string | undefined
  /** Called with a warning for the user (stderr), as soon as it is known. */
  readonly warn?: (message: string) => void
  /** Called with what the drill is doing and the share of its run done (for a progress line). */
  readonly progress?: (what: string, done: number) => void
}

/** The writer's pause between rounds, and how many keys per namespace it writes in turn. */
const WRITE_INTERVAL_MS = 50
const WRITE_KEYS = 5
/** Most reads a reader makes, whatever the clock: 1 ms pauses keep each loop far below this over a minute. */
const MAX_OPS = 200_000
/** region-split: how long after the run the drill keeps probing the regions for convergence. */
const CONVERGE_GRACE_MS = 2_000
/** Longest a worker may take to declare its namespaces, and to report after the run. */
const READY_WITHIN_MS = 30_000
const REPORT_WITHIN_MS = 30_000

/**
 * Runs the drill and returns its report (pass or fail). Everything it started is stopped before it returns.
 * @throws DrillSetupError when redis-server or a worker cannot start; ConfigModuleError as the other commands;
 *   with `workload`, CliInputError or AccessLogError for a log that cannot be read, CliUsageError when it has no
 *   read of a drilled namespace.
 */
export async function runDrill(options: DrillOptions): Promise<DrillReport> {
  const progress = options.progress ?? (() => {})

  // The log first: a missing or corrupt one fails in a moment, before any module is imported or process started.
  let log: AccessLogFile | undefined
  if (options.workload !== undefined) {
    progress('reading the access log', 0)
    log = readAccessLog(options.workload, options.cwd, { maxRecords: MAX_WORKLOAD_RECORDS })
    // Said now, not with the report: a truncated log can also be why a namespace is missing from it.
    if (log.truncated) options.warn?.(truncationWarning(options.workload))
  }

  progress('reading the config module', 0)
  const config = isAbsolute(options.config) ? options.config : resolve(options.cwd, options.config)
  const { cache: app } = await loadConfigModule('drill', config, options.cwd)
  const declared = app.namespaces().map((ns) => ({ name: ns.name, options: ns.options, prefix: ns.prefix }))
  await app.close()
  const unknown = options.namespaces.filter((name) => !declared.some((ns) => ns.name === name))
  if (unknown.length > 0) {
    throw new DrillSetupError(
      `the config module declares no namespace ${unknown.map((n) => `"${n}"`).join(', ')}; it declares ` +
        (declared.map((ns) => `"${ns.name}"`).join(', ') || 'none'),
    )
  }
  const chosen = declared.filter(
    (ns) => options.namespaces.length === 0 || options.namespaces.includes(ns.name),
  )
  if (chosen.length === 0) throw new DrillSetupError('the config module declares no namespace')
  const recorded =
    log === undefined
      ? undefined
      : mapRecordedWorkload(
          log.records,
          chosen.map((ns) => ns.name),
          options.workload!,
          log.truncated ? MAX_WORKLOAD_RECORDS : undefined,
        )
  const workload: WorkloadReport =
    log === undefined || recorded === undefined
      ? { kind: 'synthetic', keys: options.keys }
      : {
          kind: 'recorded',
          file: options.workload!,
          records: log.records.length,
          truncated: log.truncated,
          maxRecords: MAX_WORKLOAD_RECORDS,
          namespaces: recorded.map(({ name, reads, keys, hottestKeyShare }) => ({
            name,
            reads: reads.length,
            keys,
            hottestKeyShare,
          })),
        }
  // The parsed records are no longer needed (a million of them hold a few hundred MB): only the key numbers are.
  log = undefined
  const writeKeys = recorded === undefined ? Math.min(WRITE_KEYS, options.keys) : WRITE_KEYS

  const servers: RedisServer[] = []
  const workers: ChildProcess[] = []
  const split = options.drill === 'region-split'
  let regions: DrillRegions | undefined
  let raw: RawRegions | undefined
  try {
    progress('starting Redis', 0)
    const own = async () => {
      const server = await startRedis()
      servers.push(server)
      return server
    }
    const l2 = options.l2Url === undefined ? await own() : external(options.l2Url)
    const source = options.sourceUrl === undefined ? await own() : external(options.sourceUrl)
    // region-split: region a's L2 is the one just started, region b gets its own, and a link in front of each.
    if (split) {
      if (l2.port === undefined) throw new DrillSetupError('region-split starts its own Redis per region')
      regions = await startRegions(l2 as RedisServer, own)
    }
    const service = `drill-${randomBytes(4).toString('hex')}`
    const regionOf = (i: number): RegionSetup | undefined =>
      regions === undefined
        ? undefined
        : {
            name: REGION_NAMES[i]!,
            peer: REGION_NAMES[1 - i]!,
            peerL2Url: regions.peerUrls[i]!,
            heartbeatMs: options.heartbeatMs,
            splitAfterMs: options.splitAfterMs,
          }
    // Every reader process, in both regions with region-split: reader i of them starts a recorded log i / n of the
    // way in (the writer, index -1, replays nothing).
    const readerCount = options.readers * (split ? 2 : 1)
    const setup = (role: WorkerSetup['role'], region: number, reader: number): WorkerSetup => ({
      role,
      config,
      cwd: options.cwd,
      l2Url: regions === undefined ? l2.url : regions.l2Urls[region]!,
      ...(regions === undefined ? {} : { region: regionOf(region)! }),
      sourceUrl: source.url,
      service,
      namespaces: chosen.map((ns) => ns.name),
      workload: workloadSetup(options.keys, recorded, role, reader, readerCount),
      writeKeys,
      concurrency: options.concurrency,
      durationMs: options.durationMs,
      maxOps: MAX_OPS,
      sourceLatencyMs: options.sourceLatencyMs,
      writeIntervalMs: WRITE_INTERVAL_MS,
    })

    progress('starting the workers', 0)
    // The writer in region a; --readers readers in each region (region-split), or in the one L2's.
    const roles: [WorkerSetup['role'], number][] = [
      ['writer', 0],
      ...Array.from({ length: options.readers }, () => ['reader', 0] as [WorkerSetup['role'], number]),
      ...(split
        ? Array.from({ length: options.readers }, () => ['reader', 1] as [WorkerSetup['role'], number])
        : []),
    ]
    const started = roles.map(([role, region], i) => startWorker(setup(role, region, i - 1), workers))
    await Promise.all(started.map((w) => w.ready))
    const prefixes = chosen.map((ns) => `${service}${ns.prefix.slice(app.service.length)}`)
    if (regions !== undefined) {
      raw = await RawRegions.open(
        regions.l2Urls,
        source.url,
        service,
        chosen.map((ns, i) => ({
          name: ns.name,
          prefix: prefixes[i]!,
          schemaVersion: ns.options.schemaVersion,
        })),
      )
    }

    // The fault starts after a third of the run (the workers have warmed their caches) and leaves at least a third
    // for the namespaces to converge.
    const faultAtMs = Math.round(options.durationMs / 3)
    const goAt = Date.now()
    for (const w of started) w.send({ type: 'go' })
    const reports = Promise.all(started.map((w) => w.report))
    const ticker = setInterval(
      () => progress(`running ${options.drill}`, (Date.now() - goAt) / options.durationMs),
      250,
    )
    let fault: DrillReport['fault']
    let healed: Awaited<ReturnType<typeof splitRegions>> | undefined
    try {
      await sleepUntil(goAt + faultAtMs)
      if (regions !== undefined && raw !== undefined) {
        healed = await splitRegions(options, regions, raw, goAt + options.durationMs + CONVERGE_GRACE_MS)
        const { at } = healed.snapshot
        fault = {
          kind: 'region-split',
          startMs: healed.cutAt,
          endMs: at,
          detail: {
            cutForMs: at - healed.cutAt,
            heartbeatMs: options.heartbeatMs,
            splitAfterMs: options.splitAfterMs,
          },
        }
      } else {
        fault = await inject(options, {
          l2,
          workers: started,
          service,
          // The drill's caches run under a service name of their own: `service:namespace:v1:`.
          prefixes,
        })
      }
    } finally {
      // Reports come when the workers are done, fault or not.
      await reports.catch(() => {})
      clearInterval(ticker)
    }
    progress('measuring', 1)
    const workerReports = await reports
    const sourceLoads = await countSourceLoads(
      source.url,
      service,
      chosen.map((ns) => ns.name),
    )

    const namespaces: DrilledNamespace[] = chosen.map((ns) => ({ name: ns.name, options: ns.options }))
    let region: RegionSplitInput | undefined
    if (healed !== undefined) {
      const convergence = await healed.convergence
      region = {
        names: REGION_NAMES,
        heartbeatMs: options.heartbeatMs,
        splitAfterMs: options.splitAfterMs,
        snapshot: healed.snapshot,
        convergence,
      }
    }
    return judge({
      drill: options.drill,
      config: options.config,
      service,
      setup: {
        durationMs: options.durationMs,
        readers: options.readers,
        concurrency: options.concurrency,
        keys: recorded === undefined ? options.keys : null,
        writeKeys,
        writeIntervalMs: WRITE_INTERVAL_MS,
        sourceLatencyMs: options.sourceLatencyMs,
      },
      workload,
      goAt,
      endAt: goAt + options.durationMs,
      fault: { ...fault, startMs: fault.startMs - goAt, endMs: fault.endMs - goAt },
      namespaces,
      workers: workerReports,
      sourceLoads,
      ...(region === undefined ? {} : { region }),
    })
  } finally {
    for (const worker of workers) if (worker.exitCode === null) worker.kill('SIGKILL')
    raw?.close()
    await regions?.close()
    await Promise.all(servers.map((s) => s.stop()))
  }
}

/**
 * A worker's workload: synthetic, or its share of the recorded one. Each reader gets every read of the log (it wraps
 * around at the end) and starts its own fraction of the way in, so that together they spread over the whole log
 * rather than all hitting its first keys at once; the writer gets only the key counts.
 */
function workloadSetup(
  keys: number,
  recorded: readonly RecordedNamespace[] | undefined,
  role: WorkerSetup['role'],
  reader: number,
  readers: number,
): WorkloadSetup {
  if (recorded === undefined) return { kind: 'synthetic', keys }
  return {
    kind: 'recorded',
    namespaces: recorded.map((ns) =>
      role === 'writer'
        ? { keys: ns.keys, reads: [], start: 0 }
        : { keys: ns.keys, reads: ns.reads, start: readerStart(reader, readers, ns.reads.length) },
    ),
  }
}

interface StartedWorker {
  readonly ready: Promise<void>
  readonly report: Promise<WorkerReport>
  send(message: ParentMessage): void
}

function startWorker(setup: WorkerSetup, all: ChildProcess[]): StartedWorker {
  const script = fileURLToPath(new URL(`./worker${extensionOf(import.meta.url)}`, import.meta.url))
  // The CLI's own flags (a TypeScript loader for a .ts config) carry over: the worker imports the same module.
  const child = fork(script, [], { stdio: ['ignore', 'ignore', 'pipe', 'ipc'] })
  all.push(child)
  let stderr = ''
  child.stderr?.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString('utf8')).slice(-2_000)))
  const failure = (what: string) =>
    new DrillSetupError(`a ${setup.role} process ${what}${stderr.trim() === '' ? '' : `: ${stderr.trim()}`}`)
  const exited = new Promise<never>((_, reject) => {
    child.once('exit', (code, signal) =>
      reject(failure(`exited (${signal ?? `code ${code}`}) before reporting`)),
    )
    child.once('error', (error) => reject(failure(`could not start (${error.message})`)))
  })
  const message = (type: WorkerMessage['type'], withinMs: number) =>
    Promise.race([
      exited,
      new Promise<WorkerMessage>((resolve, reject) => {
        const timer = setTimeout(() => reject(failure(`sent no "${type}" within ${withinMs} ms`)), withinMs)
        const listener = (m: WorkerMessage) => {
          if (m.type === type || m.type === 'failed') {
            clearTimeout(timer)
            child.off('message', listener)
            if (m.type === 'failed') reject(failure(`failed: ${m.message}`))
            else resolve(m)
          }
        }
        child.on('message', listener)
      }),
    ])
  const ready = message('ready', READY_WITHIN_MS).then((m) => {
    if (m.type === 'ready' && m.skipped.length > 0) {
      throw new DrillSetupError(
        m.skipped
          .map((s) => `namespace "${s.name}" cannot be declared on the drill's cache (${s.reason})`)
          .join('; ') + '; leave it out with --namespace',
      )
    }
  })
  const report = ready.then(() =>
    message('report', setup.durationMs + REPORT_WITHIN_MS).then(
      (m) => (m as { report: WorkerReport }).report,
    ),
  )
  // Either may reject before anyone awaits it.
  ready.catch(() => {})
  report.catch(() => {})
  exited.catch(() => {})
  child.send({ type: 'setup', setup } satisfies ParentMessage)
  return { ready, report, send: (m) => child.connected && child.send(m) }
}

/** `.js` when running from dist/, `.ts` when run from source by a TypeScript loader. */
function extensionOf(url: string): string {
  return url.endsWith('.ts') ? '.ts' : '.js'
}

/**
 * The region-split fault: both links cut (open connections reset, new ones refused) for --fault-for; just before the
 * heal, the drill's own snapshot of the outboxes and the source; then the links healed and the convergence probed
 * (in the background, until `deadline`).
 */
async function splitRegions(
  options: DrillOptions,
  regions: DrillRegions,
  raw: RawRegions,
  deadline: number,
): Promise<{ cutAt: number; snapshot: HealSnapshot; convergence: Promise<RawConvergence> }> {
  const startMs = Date.now()
  await regions.cut()
  await sleepUntil(startMs + options.faultForMs)
  const snapshot = await raw.snapshot()
  await regions.heal()
  const convergence = raw.watch(snapshot, deadline)
  // Awaited after the workers reported; a failed probe is the drill's failure, reported then.
  convergence.catch(() => {})
  return { cutAt: startMs, snapshot, convergence }
}

async function inject(
  options: DrillOptions,
  at: {
    l2: Pick<RedisServer, 'url'> & Partial<RedisServer>
    workers: readonly StartedWorker[]
    service: string
    prefixes: readonly string[]
  },
): Promise<DrillReport['fault']> {
  const startMs = Date.now()
  switch (options.drill) {
    case 'redis-restart': {
      const l2 = at.l2
      if (l2.kill === undefined || l2.restart === undefined) {
        throw new DrillSetupError('redis-restart kills and restarts the L2 process: it must start its own')
      }
      await l2.kill()
      await sleepUntil(startMs + options.faultForMs)
      await l2.restart()
      return { kind: 'redis-restart', startMs, endMs: Date.now(), detail: { downMs: Date.now() - startMs } }
    }
    case 'delayed-invalidation': {
      for (const w of at.workers) w.send({ type: 'bus-delay', ms: options.busDelayMs })
      await sleepUntil(startMs + options.faultForMs)
      for (const w of at.workers) w.send({ type: 'bus-delay', ms: 0 })
      // The last message delayed is delivered busDelayMs after the delay is lifted.
      return {
        kind: 'delayed-invalidation',
        startMs,
        endMs: Date.now() + options.busDelayMs,
        detail: { delayMs: options.busDelayMs, delayedForMs: Date.now() - startMs },
      }
    }
    case 'mass-expiry': {
      const expired = await expireEntries(at.l2.url, at.service, at.prefixes)
      return { kind: 'mass-expiry', startMs, endMs: Date.now(), detail: { keysExpired: expired } }
    }
    case 'region-split':
      throw new DrillSetupError('region-split needs its regions started (splitRegions)')
  }
}

/** Every entry key of the namespaces gets a 1 ms TTL in one pipeline: they expire together, in Redis's own way. */
async function expireEntries(url: string, service: string, prefixes: readonly string[]): Promise<number> {
  const client = createClient({ url })
  client.on('error', () => {})
  await client.connect()
  try {
    const keys: string[] = []
    for await (const batch of client.scanIterator({ MATCH: `${service}:*`, COUNT: 1_000 })) {
      for (const key of batch)
        if (prefixes.some((p) => key.startsWith(p) && isEntryKey(key, p))) keys.push(key)
    }
    const pipeline = client.multi()
    for (const key of keys) pipeline.pExpire(key, 1)
    if (keys.length > 0) await pipeline.execAsPipeline()
    return keys.length
  } finally {
    client.destroy()
  }
}

/** The source's own load counters (an independent count of what the workers say they loaded). */
async function countSourceLoads(url: string, service: string, names: readonly string[]): Promise<number[]> {
  const client = createClient({ url })
  client.on('error', () => {})
  await client.connect()
  try {
    const values = await Promise.all(names.map((name) => client.get(sourceLoadsKey(service, name))))
    return values.map((v) => Number(v ?? 0))
  } finally {
    client.destroy()
  }
}

/** A Redis the caller runs: only its URL is used (a drill needing to kill it refuses it before this). */
function external(url: string): Pick<RedisServer, 'url'> & Partial<RedisServer> {
  return { url }
}

async function sleepUntil(at: number): Promise<void> {
  // A timer runs on the monotonic clock and may fire a millisecond before Date.now() reaches `at` (a 1 s cut once
  // lasted 999 ms by the report's own wall-clock stamps): wait again until it has.
  while (Date.now() < at) await new Promise((resolve) => setTimeout(resolve, at - Date.now()))
}

/** The warning for a log longer than the drill reads. */
export function truncationWarning(file: string): string {
  return (
    `${file} holds more than ${MAX_WORKLOAD_RECORDS.toLocaleString('en-US')} records; the drill replays the first ` +
    'ones in the file and does not read the rest'
  )
}
