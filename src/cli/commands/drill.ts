// `stratacache drill`: runs a chaos drill against the config module's namespaces on loopback and judges it by their
// own declarations (staleness bounds, objectives, source limits).
import { parseDuration } from '../../core/duration.js'
import { CliUsageError } from '../../errors.js'
import { CLI_DOCS_URL, defineCommand, ExitCode, progressLine, required } from '../command.js'
import { DRILLS, drillNamed } from '../drill/drills.js'
import { MAX_WORKLOAD_RECORDS } from '../drill/recorded-workload.js'
import { formatCount } from '../format.js'

const names = DRILLS.map((d) => d.name).join(', ')

export const drillCommand = defineCommand({
  name: 'drill',
  summary:
    'run a chaos drill (Redis restart, delayed invalidation, mass expiry, region split) and judge it by the namespaces',
  positionals: 1,
  help: `Usage: stratacache drill <drill> --config FILE [--namespace NAME ...] [--duration 6s] [--workload LOG] [--json]
       stratacache drill region-split --config FILE [--heartbeat 100ms] [--split-after 1s] [--fault-for 3s] [--json]

Drills:
${DRILLS.map((d) => `  ${d.name.padEnd(23)}${d.summary}`).join('\n')}

Starts its own redis-server processes on loopback (the L2, and a source that never fails), a writer process and
--readers reader processes that declare the config module's namespaces on a cache of their own, with the drill's
Redis as L2 and a synthetic source instead of the loaders (your database is never called): each value is the
version the writer last wrote, so the staleness of every read is measured exactly. The readers run a bounded read
workload, the writer changes the first 5 keys of each namespace in turn and invalidates them (source, then delete), the fault comes after a
third of --duration; then, per namespace: failed gets, reads staler than the consistency bound, p99 latency against
slo.readP99, reads served stale against slo.staleReadsMax, source loads against source.maxConcurrent and
maxPerSecond, and the time to converge after the fault. A namespace passes when it keeps its own declarations.

--workload LOG replays an access log written by a namespace's \`accessLog\` recorder instead: per namespace, its
keys ranked by reads (the writer changes the 5 most read), each reader replaying the log's reads in order from its
own share of the way in, wrapping at the end. The first ${formatCount(MAX_WORKLOAD_RECORDS)} records of the file are read (the report
says when it held more). Every drilled namespace must be in the log.

region-split runs two regions, "a" and "b", one redis-server each, every process with \`regions\` configured; the
writer and --readers readers in a, --readers readers in b. Each region's relay reaches the other's Redis through a
TCP proxy; the fault resets and refuses those connections for --fault-for, then lets them through again. Reads in
b are judged by the bound across regions (strong: --split-after, then read through; bounded: maxStaleness;
eventual: counted, no bound); the report adds, per namespace, the invalidations replayed after the heal (counted
in the outboxes by the drill itself) and the time until both regions' L2, the readers and the outboxes agree with
the source; per region, how fast every process saw the split.

Needs redis-server on PATH. A TypeScript config module needs NODE_OPTIONS='--import tsx' (the workers inherit it).

Flags:
  -c, --config FILE        the module that creates your cache
  -n, --namespace NAME     drill only this namespace (repeat for several; default: all)
      --duration D         how long the workload runs, e.g. 6s (default 6s; at most 5m)
      --fault-for D        how long Redis stays down, the bus delayed, or the regions cut (default: a fifth of
                           --duration; region-split: --split-after + 2s, and --duration 3 × that if not given)
      --heartbeat D        region-split: regions.heartbeat of every process (default 100ms)
      --split-after D      region-split: regions.splitAfter (default 1s; at least 2 × --heartbeat, under --fault-for)
      --delay D            delayed-invalidation: how late each bus message arrives (default 1s)
      --readers N          reader processes (default 3; region-split: in each region, default 2)
      --concurrency N      concurrent read loops per reader (default 4)
      --keys N             keys read per namespace (default 200; not with --workload)
      --workload LOG       replay this access log's reads instead of the synthetic workload
                           (format: ${CLI_DOCS_URL}#access-log-format)
      --source-latency D   the synthetic source's time per load (default 2ms)
      --l2 URL             use this Redis as L2 instead of starting one (not with redis-restart or region-split)
      --source URL         use this Redis as the synthetic source instead of starting one
                           (the drill's keys there start with its run's service name, and stay)
      --json               print the report as JSON
  -h, --help               this help

Exit codes: 0 every namespace passed; 1 a namespace failed the drill; 2 bad command line (or a --workload log
without a drilled namespace); 3 the drill could not run (no redis-server, a config module or access log that
cannot be read, a worker that failed).

Example:
  npx stratacache drill redis-restart --config stratacache.config.mjs --json`,
  flags: {
    config: { type: 'string', short: 'c' },
    namespace: { type: 'string', short: 'n', multiple: true },
    duration: { type: 'string' },
    'fault-for': { type: 'string' },
    heartbeat: { type: 'string' },
    'split-after': { type: 'string' },
    delay: { type: 'string' },
    readers: { type: 'string' },
    concurrency: { type: 'string' },
    keys: { type: 'string' },
    workload: { type: 'string' },
    'source-latency': { type: 'string' },
    l2: { type: 'string' },
    source: { type: 'string' },
    json: { type: 'boolean' },
  },
  async run(flags, io, positionals) {
    if (positionals[0] === undefined) {
      throw new CliUsageError('drill', `Missing the drill to run: one of ${names}`)
    }
    const drill = drillNamed(positionals[0])
    if (drill === undefined)
      throw new CliUsageError('drill', `Unknown drill "${positionals[0]}"; drills: ${names}`)
    const config = required('drill', flags, 'config', 'FILE (the module that creates your cache)')
    const split = drill === 'region-split'
    if (!split) {
      for (const flag of ['heartbeat', 'split-after'] as const) {
        if (flags[flag] !== undefined) {
          throw new CliUsageError('drill', `--${flag} is a region-split flag; leave it out of ${drill}`)
        }
      }
    }
    const heartbeatMs = duration(flags.heartbeat, '--heartbeat', 100, 10, 10_000)
    const splitAfterMs = duration(flags['split-after'], '--split-after', 1_000, 20, 60_000)
    if (split && splitAfterMs < 2 * heartbeatMs) {
      throw new CliUsageError(
        'drill',
        `--split-after (${splitAfterMs} ms) must be at least twice --heartbeat (${heartbeatMs} ms): ` +
          'raise --split-after or lower --heartbeat',
      )
    }
    // region-split: the cut lasts past the split threshold by default, and the run is three cuts long.
    const splitFaultMs = split
      ? duration(flags['fault-for'], '--fault-for', splitAfterMs + 2_000, 1, 100_000)
      : 0
    const durationMs = duration(
      flags.duration,
      '--duration',
      split ? Math.max(6_000, 3 * splitFaultMs) : 6_000,
      1_000,
      300_000,
    )
    const faultForMs = split
      ? splitFaultMs
      : duration(flags['fault-for'], '--fault-for', Math.round(durationMs / 5), 1, durationMs / 3)
    if (split) {
      // Detection takes splitAfter plus up to a heartbeat (the relay's step): a shorter cut cannot be seen.
      if (faultForMs < splitAfterMs + 2 * heartbeatMs) {
        throw new CliUsageError(
          'drill',
          `--fault-for (${faultForMs} ms) must exceed --split-after (${splitAfterMs} ms) by at least two ` +
            `heartbeats (${2 * heartbeatMs} ms), or the split is never declared: raise --fault-for or lower --split-after`,
        )
      }
      if (faultForMs > durationMs / 3) {
        throw new CliUsageError(
          'drill',
          `--fault-for (${faultForMs} ms) must be at most a third of --duration (${durationMs} ms), so the regions ` +
            'have time to converge: raise --duration or lower --fault-for',
        )
      }
    }
    const busDelayMs = duration(flags.delay, '--delay', 1_000, 1, 60_000)
    const sourceLatencyMs = duration(flags['source-latency'], '--source-latency', 2, 0, 10_000)
    const readers = whole(flags.readers, '--readers', split ? 2 : 3, 1, 16)
    const concurrency = whole(flags.concurrency, '--concurrency', 4, 1, 64)
    const keys = whole(flags.keys, '--keys', 200, 1, 100_000)
    // The log decides the keys (its own, ranked by reads): a --keys beside it would be silently ignored.
    if (flags.workload !== undefined && flags.keys !== undefined) {
      throw new CliUsageError(
        'drill',
        '--keys sets the synthetic workload and --workload replays a log with its own keys: drop one of them',
      )
    }
    if (flags.workload === '') throw new CliUsageError('drill', '--workload needs an access log file')

    for (const flag of ['l2', 'source'] as const) {
      const url = flags[flag]
      if (url !== undefined && !/^rediss?:\/\//.test(url)) {
        throw new CliUsageError('drill', `--${flag} must be a redis:// or rediss:// URL, got "${url}"`)
      }
    }
    if (flags.l2 !== undefined && drill === 'redis-restart') {
      throw new CliUsageError('drill', 'redis-restart kills and restarts its own L2: leave out --l2')
    }
    if (flags.l2 !== undefined && split) {
      throw new CliUsageError(
        'drill',
        'region-split starts one Redis per region and a link between them: leave out --l2',
      )
    }

    // Loaded only here: the drill needs the Redis client (an optional peer dependency) and child processes.
    const { runDrill } = await import('../drill/drill.js')
    const { renderJson, renderText } = await import('../drill/report.js')
    const progress = progressLine(io)
    const report = await runDrill({
      drill,
      config,
      cwd: io.cwd,
      namespaces: (flags.namespace as unknown as string[] | undefined) ?? [],
      durationMs,
      faultForMs,
      busDelayMs,
      heartbeatMs,
      splitAfterMs,
      sourceLatencyMs,
      readers,
      concurrency,
      keys,
      workload: flags.workload,
      l2Url: flags.l2,
      sourceUrl: flags.source,
      warn: (message) => {
        progress.done()
        io.err(`warning: ${message}\n`)
      },
      progress: (what, done) => progress(what, done, 1),
    }).finally(() => progress.done())
    io.out(flags.json === true ? renderJson(report) : renderText(report))
    return report.pass ? ExitCode.ok : ExitCode.checkFailed
  },
})

function duration(
  value: string | undefined,
  flag: string,
  fallback: number,
  min: number,
  max: number,
): number {
  if (value === undefined) return fallback
  let ms: number
  try {
    ms = parseDuration(/^\d+$/.test(value) ? Number(value) : value, flag)
  } catch {
    throw new CliUsageError('drill', `${flag} must be a duration such as 500ms or 6s, got "${value}"`)
  }
  if (!(ms >= min && ms <= max)) {
    throw new CliUsageError('drill', `${flag} must be from ${min} ms to ${max} ms, got "${value}"`)
  }
  return ms
}

function whole(value: string | undefined, flag: string, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback
  const n = Number(value)
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    throw new CliUsageError('drill', `${flag} must be a whole number from ${min} to ${max}, got "${value}"`)
  }
  return n
}
