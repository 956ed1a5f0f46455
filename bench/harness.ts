// The benchmark harness: alternating rounds of every contestant, medians per metric, a Markdown table and a JSON file.
import { execFileSync } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import { cpus, loadavg } from 'node:os'
import { dirname, join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'

/** One round's measurements of one contestant, by metric name (ops/s, latency in ms, loader calls…). */
export type Metrics = Record<string, number>

/** One library (or baseline) taking part in a scenario. */
export interface Contestant {
  readonly name: string
  /** What one measured operation is, in a few words: printed in the table. */
  readonly call: string
  /** Measures once and returns this round's metrics. Must be bounded in count and in time. */
  measure(): Promise<Metrics>
}

/** A column of the results table: one metric, its median across rounds, optionally its ratio to the reference. */
export interface Column {
  readonly metric: string
  readonly label: string
  /** Formats the median (and the min and max when `range` is set). */
  readonly format: (value: number) => string
  /** Print `min–max` across rounds next to the median, to show the noise. */
  readonly range?: boolean
  /** Add a column with median / reference median. */
  readonly ratio?: boolean
}

export interface RoundsOptions {
  readonly scenario: string
  readonly contestants: readonly Contestant[]
  /** Name of the contestant every ratio is relative to. */
  readonly reference: string
  readonly rounds: number
  /** Rounds run first and thrown away, so every contestant is compiled and its caches warm. */
  readonly warmupRounds: number
  /** Progress lines go to stderr so stdout stays a clean Markdown report. */
  readonly log?: (line: string) => void
}

export interface ContestantResult {
  readonly name: string
  readonly call: string
  /** Median across rounds, per metric. */
  readonly median: Metrics
  readonly min: Metrics
  readonly max: Metrics
  /** Every round's value, per metric, in round order. */
  readonly samples: Record<string, number[]>
}

export interface RoundsResult {
  readonly scenario: string
  readonly reference: string
  readonly rounds: number
  readonly warmupRounds: number
  readonly contestants: readonly ContestantResult[]
}

/**
 * Runs `warmupRounds` then `rounds` rounds. In each round every contestant measures once, and the order rotates
 * by one each round, so no contestant always runs first (cold caches, GC debt of the previous one) or always
 * right after the same neighbour. All contestants run in the same process, interleaved, so a slow phase of the
 * shared machine hits all of them rather than one.
 */
export async function runRounds(options: RoundsOptions): Promise<RoundsResult> {
  const { contestants, rounds, warmupRounds, log = () => {} } = options
  if (!contestants.some((c) => c.name === options.reference)) {
    throw new Error(`Reference contestant "${options.reference}" is not among the contestants`)
  }
  const samples: Record<string, number[]>[] = contestants.map(() => ({}))
  for (let round = -warmupRounds; round < rounds; round++) {
    const started = performance.now()
    const offset = ((round % contestants.length) + contestants.length) % contestants.length
    for (let i = 0; i < contestants.length; i++) {
      const index = (i + offset) % contestants.length
      const metrics = await contestants[index]!.measure()
      if (round < 0) continue
      for (const [metric, value] of Object.entries(metrics)) {
        ;(samples[index]![metric] ??= []).push(value)
      }
    }
    const label = round < 0 ? `warm-up ${round + warmupRounds + 1}/${warmupRounds}` : `${round + 1}/${rounds}`
    log(`  ${options.scenario}: round ${label} in ${Math.round(performance.now() - started)} ms`)
  }
  return {
    scenario: options.scenario,
    reference: options.reference,
    rounds,
    warmupRounds,
    contestants: contestants.map((c, i) => {
      const s = samples[i]!
      const pick = (f: (values: number[]) => number) =>
        Object.fromEntries(Object.entries(s).map(([metric, values]) => [metric, f(values)]))
      return {
        name: c.name,
        call: c.call,
        median: pick(median),
        min: pick((v) => Math.min(...v)),
        max: pick((v) => Math.max(...v)),
        samples: s,
      }
    }),
  }
}

/** The median of `values` (mean of the middle two for an even count). */
export function median(values: readonly number[]): number {
  return quantile(values, 0.5)
}

/** The `q` quantile of `values` by linear interpolation between closest ranks (q = 0.99 for p99). */
export function quantile(values: ArrayLike<number>, q: number): number {
  const sorted = Array.from(values).sort((a, b) => a - b)
  if (sorted.length === 0) return NaN
  const position = (sorted.length - 1) * q
  const low = Math.floor(position)
  const high = Math.ceil(position)
  return sorted[low]! + (sorted[high]! - sorted[low]!) * (position - low)
}

/**
 * Operations per second of `batch`, called with `batchSize` until `timeMs` has passed or `maxOps` operations
 * are done, whichever comes first. `batch` runs its own loop so that each contestant's call site stays
 * monomorphic (one shared loop calling every contestant's function would measure V8's megamorphic call instead).
 */
export async function throughput(
  batch: (n: number) => Promise<void> | void,
  { timeMs, maxOps, batchSize = 1_000 }: { timeMs: number; maxOps: number; batchSize?: number },
): Promise<number> {
  let ops = 0
  const started = performance.now()
  let elapsed = 0
  while (elapsed < timeMs && ops < maxOps) {
    await batch(batchSize)
    ops += batchSize
    elapsed = performance.now() - started
  }
  return (ops / elapsed) * 1_000
}

/** Rejects after `ms` with a message naming `what`, so a hung contestant stops the run instead of hanging it. */
export async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms)
  })
  try {
    return await Promise.race([promise, timeout])
  } finally {
    clearTimeout(timer)
  }
}

// --- report --------------------------------------------------------------------------------------------------

export interface Machine {
  readonly cpu: string
  readonly cores: number
  readonly node: string
  readonly redis: string
  /** 1, 5 and 15 minute load averages when the run started: other work on the machine shows here. */
  readonly loadavg: readonly number[]
  /** The commit measured, and the files under src/ that differ from it (a run of uncommitted code says so). */
  readonly git: { readonly commit: string; readonly dirtySrc: readonly string[] }
}

/** CPU model, core count, Node and redis-server versions, load average. */
export function machine(): Machine {
  const list = cpus()
  let redis = 'not found'
  try {
    const text = execFileSync('redis-server', ['--version'], { encoding: 'utf8', timeout: 5_000 })
    redis = /v=(\S+)/.exec(text)?.[1] ?? text.trim()
  } catch {
    // redis-server is only needed by the Redis scenarios; they report their own error.
  }
  return {
    cpu: list[0]?.model.trim() ?? 'unknown',
    cores: list.length,
    node: process.version,
    redis,
    loadavg: loadavg().map((l) => Math.round(l * 100) / 100),
    git: gitState(),
  }
}

function gitState(): Machine['git'] {
  const git = (...args: string[]) =>
    execFileSync('git', args, { encoding: 'utf8', timeout: 5_000, stdio: ['ignore', 'pipe', 'ignore'] })
  try {
    return {
      commit: git('rev-parse', '--short', 'HEAD').trim(),
      dirtySrc: git('status', '--porcelain', '--', 'src')
        .split('\n')
        .filter(Boolean)
        .map((line) => line.slice(3)),
    }
  } catch {
    return { commit: 'unknown (not a git checkout)', dirtySrc: [] }
  }
}

export function machineLine(m: Machine): string {
  return (
    `${m.cpu}, ${m.cores} cores, Node ${m.node}, redis-server ${m.redis}, ` +
    `load average ${m.loadavg.join(' / ')} (1 / 5 / 15 min) at start; commit ${m.git.commit}` +
    (m.git.dirtySrc.length === 0 ? '' : ` with uncommitted changes in ${m.git.dirtySrc.join(', ')}`)
  )
}

/** The command that reproduces this run, as typed: `npm run bench -- …`, `tsx bench/run.ts …` or `node … bench/run.ts …`. */
export function commandLine(): string {
  const args = process.argv.slice(2)
  if (process.env.npm_lifecycle_event === 'bench')
    return ['npm run bench', ...(args.length ? ['--', ...args] : [])].join(' ')
  const script = relative(process.cwd(), process.argv[1] ?? 'bench/run.ts')
  // The tsx CLI runs node with `--require …/tsx/dist/preflight.cjs --import file:///…/tsx/dist/loader.mjs`.
  const flags = process.execArgv
  const viaTsxCli = flags.some((f) => f.includes('/tsx/dist/'))
  if (!viaTsxCli) return ['node', ...flags, script, ...args].join(' ')
  const own = flags.filter((f, i) => !f.includes('/tsx/dist/') && !flags[i + 1]?.includes('/tsx/dist/'))
  return ['tsx', ...own, script, ...args].join(' ')
}

/**
 * A Markdown table: contestant, call, then per column the median over the rounds (and the min–max across rounds),
 * and the ratio of medians to the reference.
 */
export function markdownTable(result: RoundsResult, columns: readonly Column[]): string {
  const reference = result.contestants.find((c) => c.name === result.reference)!
  const header = ['Contestant', 'Call']
  for (const col of columns) {
    header.push(col.label)
    if (col.range) header.push(`${col.label} min–max`)
    if (col.ratio) header.push(`vs ${result.reference}`)
  }
  const rows = result.contestants.map((c) => {
    const cells = [c.name === result.reference ? `**${c.name}** (reference)` : c.name, c.call]
    for (const col of columns) {
      const value = c.median[col.metric]
      cells.push(value === undefined ? '–' : col.format(value))
      if (col.range) {
        const min = c.min[col.metric]
        const max = c.max[col.metric]
        cells.push(min === undefined || max === undefined ? '–' : `${col.format(min)}–${col.format(max)}`)
      }
      if (col.ratio) {
        const ref = reference.median[col.metric]
        cells.push(value === undefined || ref === undefined ? '–' : `${(value / ref).toFixed(2)}x`)
      }
    }
    return cells
  })
  const line = (cells: readonly string[]) => `| ${cells.join(' | ')} |`
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n')
}

const resultsDir = join(dirname(fileURLToPath(import.meta.url)), 'results')

/** Writes bench/results/<scenario>.json (git-ignored) and returns its path. */
export function writeResults(scenario: string, data: unknown): string {
  mkdirSync(resultsDir, { recursive: true })
  const path = join(resultsDir, `${scenario}.json`)
  writeFileSync(path, JSON.stringify(data, null, 2) + '\n')
  return path
}

// --- formats -------------------------------------------------------------------------------------------------

export const formatOps = (value: number): string =>
  value >= 1e6
    ? `${(value / 1e6).toFixed(2)} M`
    : value >= 1e3
      ? `${(value / 1e3).toFixed(1)} k`
      : value.toFixed(0)

export const formatMs = (value: number): string =>
  value >= 100
    ? value.toFixed(0)
    : value >= 10
      ? value.toFixed(1)
      : value >= 1
        ? value.toFixed(2)
        : value.toFixed(3)

export const formatUs = (ms: number): string => `${(ms * 1_000).toFixed(ms >= 1 ? 0 : 1)} µs`

export const formatCount = (value: number): string =>
  Number.isInteger(value) ? String(value) : value.toFixed(1)

// --- scenarios -----------------------------------------------------------------------------------------------

export interface ScenarioContext {
  /** URL of the redis-server started for this run; undefined for scenarios that do not need one. */
  readonly redisUrl: string | undefined
  /** Rounds to run, overriding the scenario's default (`--rounds`). */
  readonly rounds: number | undefined
  readonly log: (line: string) => void
}

/** An acceptance target of the issue, and whether this run met it. */
export interface Target {
  readonly text: string
  readonly met: boolean
  /** The measured value behind the verdict. */
  readonly measured: string
}

export interface ScenarioReport {
  /** One Markdown section per table: a title, the table, notes under it. */
  readonly sections: readonly { title: string; table: string; notes: readonly string[] }[]
  readonly targets: readonly Target[]
  /** Everything measured, for bench/results/<scenario>.json. */
  readonly results: readonly RoundsResult[]
}

export interface Scenario {
  readonly name: string
  readonly title: string
  readonly needsRedis: boolean
  run(context: ScenarioContext): Promise<ScenarioReport>
}
