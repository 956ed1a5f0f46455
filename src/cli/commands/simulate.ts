// `stratacache simulate`: replays a sampled access log against the current and a proposed policy, side by side.
import { readFileSync, statSync, writeFileSync } from 'node:fs'
import { basename, resolve } from 'node:path'
import { CliInputError, CliUsageError } from '../../errors.js'
import { CLI_DOCS_URL, defineCommand, ExitCode, progressLine, required, type CliIo } from '../command.js'
import { inputFile, readAccessLog, unreadable, type AccessRecord } from '../access-log.js'
import { resolvePolicy, type SimulationPolicy } from '../simulate/policy.js'
import { renderHtml, renderJson, renderText, type Comparison } from '../simulate/report.js'
import { observe, simulate } from '../simulate/simulate.js'

export const simulateCommand = defineCommand({
  name: 'simulate',
  summary: 'replay a sampled access log against the current and a proposed policy (shadow evaluation)',
  help: `Usage: stratacache simulate --log FILE --policy CURRENT.json --vs PROPOSED.json [--json] [--html FILE]

Replays a sampled access log (JSON lines, one read each) against two policies and prints, side by side, the
predicted hit ratio of L1 and L2, source calls per second and the share of reads that would be served stale, with
a bar chart, beside what production observed (the outcomes recorded in the log).

A policy file: { "ttl": "5m", "staleFor": "1m", "l1": { "maxEntries": 10000, "policy": "w-tinylfu" },
"namespace": "product" }. "l1" may be false; "policy" is "w-tinylfu" (the library's L1) or "lru"; "namespace"
replays only that namespace's reads.

Flags:
      --log FILE          the access log (format: ${CLI_DOCS_URL}#access-log-format)
      --policy FILE       the current policy (JSON)
      --vs FILE           the proposed policy (JSON)
      --sample-rate R     share of keys the log holds, (0, 1] (default 1): scales L1 and per-second figures
      --json              print the comparison as JSON
      --html FILE         also write the comparison as one HTML page
  -h, --help              this help

Exit codes: 0 done; 2 bad command line; 3 a file could not be read or is invalid.

Example:
  npx stratacache simulate --log access.jsonl --policy current.json --vs proposed.json --html report.html`,
  flags: {
    log: { type: 'string' },
    policy: { type: 'string' },
    vs: { type: 'string' },
    'sample-rate': { type: 'string' },
    json: { type: 'boolean' },
    html: { type: 'string' },
  },
  run(flags, io) {
    const log = required('simulate', flags, 'log', 'FILE (the access log to replay)')
    const currentFile = required('simulate', flags, 'policy', 'FILE (the current policy, JSON)')
    const proposedFile = required('simulate', flags, 'vs', 'FILE (the proposed policy, JSON)')
    const sampleRate = flags['sample-rate'] === undefined ? 1 : Number(flags['sample-rate'])
    if (!(sampleRate > 0 && sampleRate <= 1)) {
      throw new CliUsageError(
        'simulate',
        `--sample-rate must be a share in (0, 1], e.g. 0.1, got "${flags['sample-rate']}"`,
      )
    }
    const current = readPolicy(currentFile, io)
    const proposed = readPolicy(proposedFile, io)

    const progress = progressLine(io)
    const { records } = readAccessLog(log, io.cwd, {
      // Counting the lines for the progress line costs a pass over the file: only when it is drawn.
      onProgress: io.errIsTty ? (n, lines) => progress('reading the log', n, lines) : undefined,
    })
    const replay = (policy: SimulationPolicy, what: string) => {
      progress(what, 0, records.length)
      return simulate(records, policy, { sampleRate, onProgress: (n) => progress(what, n, records.length) })
    }
    const comparison: Comparison = {
      log: basename(log),
      sampleRate,
      current: { policy: current, result: replay(current, 'replaying the current policy') },
      proposed: { policy: proposed, result: replay(proposed, 'replaying the proposed policy') },
      observed: observe(records, current.namespace, { sampleRate }),
    }
    progress.done()
    for (const warning of namespaceWarnings(records, log, current, proposed)) io.err(`warning: ${warning}\n`)
    io.out(flags.json === true ? renderJson(comparison) : renderText(comparison))
    if (flags.html !== undefined) {
      writeFileSync(resolve(io.cwd, flags.html), renderHtml(comparison))
      io.err(`wrote ${flags.html}\n`)
    }
    return Promise.resolve(ExitCode.ok)
  },
})

/**
 * What makes the comparison misleading: a policy naming a namespace the log never read (its column replays
 * nothing), two policies replaying different namespaces (not the same reads), or an empty log.
 */
export function namespaceWarnings(
  records: readonly AccessRecord[],
  log: string,
  current: SimulationPolicy,
  proposed: SimulationPolicy,
): string[] {
  if (records.length === 0) return [`${log} holds no read; nothing was replayed`]
  const inLog = new Set(records.map((r) => r.ns))
  const seen = [...inLog]
    .sort()
    .slice(0, 10)
    .map((ns) => `"${ns}"`)
  const warnings: string[] = []
  for (const [role, policy] of [
    ['current', current],
    ['proposed', proposed],
  ] as const) {
    if (policy.namespace !== undefined && !inLog.has(policy.namespace)) {
      warnings.push(
        `the ${role} policy (${policy.label}) names namespace "${policy.namespace}", which ${log} never reads, so ` +
          `its column replays nothing; the log has ${seen.join(', ')}${inLog.size > 10 ? ', …' : ''}`,
      )
    }
  }
  if (current.namespace !== proposed.namespace) {
    const name = (p: SimulationPolicy) => (p.namespace === undefined ? 'every namespace' : `"${p.namespace}"`)
    warnings.push(
      `the policies replay different reads (current: ${name(current)}, proposed: ${name(proposed)}), and ` +
        'the observed column follows the current one: give both the same "namespace" to compare like with like',
    )
  }
  return warnings
}

/** Largest policy file read (1 MiB). */
const MAX_POLICY_BYTES = 1024 * 1024

function readPolicy(file: string, io: CliIo): SimulationPolicy {
  const absolute = inputFile(file, io.cwd, 'policy file')
  // A policy is a few lines of JSON: anything far larger is the wrong file (an access log passed in its place).
  const size = statSync(absolute).size
  if (size > MAX_POLICY_BYTES) {
    throw new CliInputError(
      file,
      `the policy file is ${size} bytes, more than the ${MAX_POLICY_BYTES} a policy may be: the access log goes to --log, a policy's JSON to --policy and --vs`,
    )
  }
  let text: string
  try {
    text = readFileSync(absolute, 'utf8')
  } catch (error) {
    throw unreadable(file, 'policy file', error)
  }
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch (error) {
    throw new CliInputError(
      file,
      `not JSON (${(error as Error).message}); a policy looks like { "ttl": "5m" }`,
      {
        cause: error,
      },
    )
  }
  return resolvePolicy(value, basename(file))
}
