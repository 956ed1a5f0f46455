// `stratacache inspect`: Redis memory against maxmemory and budget, the eviction policy with warnings, and sampled
// key counts, sizes and TTLs per namespace (a bounded SCAN, never KEYS).
import { CliUsageError, ConfigModuleError } from '../../errors.js'
import type { NamespaceReport, RedisReport } from '../../observability/inspect.js'
import { defineCommand, ExitCode } from '../command.js'
import { loadConfigModule } from '../config-module.js'

export const inspectCommand = defineCommand({
  name: 'inspect',
  summary:
    'Redis memory and eviction policy with warnings, and sampled key counts, sizes and TTLs per namespace',
  help: `Usage: stratacache inspect --config FILE [--sample N] [--json]
       stratacache inspect --redis URL [--prefix PREFIX ...] [--budget BYTES] [--sample N] [--json]

Reports Redis's used memory against maxmemory (and a budget), its maxmemory-policy, evicted and expired keys, and
per namespace estimated key counts, value sizes and a TTL histogram from a bounded SCAN sample (never KEYS), with a
warning, saying what to change, for each risk: a critical namespace on an instance that may evict it, no memory
limit, noeviction, memory near the limit, evictions, a budget exceeded.

With --config, the cache's own namespaces, budget (l2Budget) and critical flags are used, through its L2 store.
With --redis, a bare store is inspected; --prefix names key prefixes to sample (e.g. catalog:product:v1:).

Flags:
  -c, --config FILE     the module that creates your cache
  -r, --redis URL       a Redis to inspect without a config module (redis:// or rediss://)
  -p, --prefix PREFIX   with --redis: a key prefix to sample (repeat for several)
      --budget BYTES    with --redis: a memory budget to report against
      --sample N        keys sampled per namespace (default 1000)
      --json            print the report as JSON
  -h, --help            this help

Exit codes: 0 done (warnings are reported, not failures); 2 bad command line; 3 Redis or the config module could
not be used.

Examples:
  npx stratacache inspect --config stratacache.config.mjs
  npx stratacache inspect --redis redis://127.0.0.1:6379 --prefix catalog:product:v1: --json`,
  flags: {
    config: { type: 'string', short: 'c' },
    redis: { type: 'string', short: 'r' },
    prefix: { type: 'string', short: 'p', multiple: true },
    budget: { type: 'string' },
    sample: { type: 'string' },
    json: { type: 'boolean' },
  },
  async run(flags, io) {
    if ((flags.config === undefined) === (flags.redis === undefined)) {
      throw new CliUsageError('inspect', 'Give exactly one of --config FILE or --redis URL')
    }
    const sampleKeys = positiveInteger(flags.sample, '--sample')
    const budget = positiveInteger(flags.budget, '--budget')
    const prefixes = (flags.prefix as unknown as string[] | undefined) ?? []
    if (flags.config !== undefined && (prefixes.length > 0 || budget !== undefined)) {
      throw new CliUsageError(
        'inspect',
        '--prefix and --budget go with --redis; with --config the cache declares them',
      )
    }
    const options = sampleKeys === undefined ? {} : { sampleKeys }
    if (io.errIsTty) io.err('inspecting Redis…\n')
    let report: RedisReport
    if (flags.config !== undefined) {
      const { cache, path } = await loadConfigModule('inspect', flags.config, io.cwd)
      try {
        if (typeof cache.inspect !== 'function')
          throw new ConfigModuleError(path, 'its cache has no inspect()')
        report = await cache.inspect(options)
      } finally {
        await cache.close()
      }
    } else {
      const url = flags.redis!
      if (!/^rediss?:\/\//.test(url)) {
        throw new CliUsageError('inspect', `--redis must be a redis:// or rediss:// URL, got "${url}"`)
      }
      // Loaded only here: the Redis client is an optional peer dependency.
      const { redisStore } = await import('../../tiers/redis-store.js')
      const { inspectRedis } = await import('../../observability/inspect.js')
      const store = redisStore({ url })
      try {
        await store.connect()
        report = await inspectRedis(store, {
          ...options,
          namespaces: prefixes.map((prefix) => ({ name: prefix, prefix })),
          ...(budget === undefined ? {} : { budget: { maxBytes: budget } }),
        })
      } finally {
        await store.close()
      }
    }
    io.out(flags.json === true ? `${JSON.stringify(report, null, 2)}\n` : renderReport(report))
    return ExitCode.ok
  },
})

function positiveInteger(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined
  const n = Number(value)
  if (!Number.isSafeInteger(n) || n < 1) {
    throw new CliUsageError('inspect', `${flag} must be a positive whole number, got "${value}"`)
  }
  return n
}

/** The report as text: memory and policy, one line per namespace, then the warnings. */
export function renderReport(report: RedisReport): string {
  const { memory, stats, budget } = report
  const lines: string[] = []
  const reading = <T>(
    r: { known: true; value: T } | { known: false; reason: string },
    show: (v: T) => string,
  ) => (r.known ? show(r.value) : `unknown (${r.reason})`)
  lines.push(`memory used   ${reading(memory.used, bytes)}`)
  lines.push(`maxmemory     ${reading(memory.maxmemory, (v) => (v === 0 ? 'no limit' : bytes(v)))}`)
  if (memory.usedRatio !== undefined) lines.push(`used/limit    ${(memory.usedRatio * 100).toFixed(1)} %`)
  lines.push(`policy        ${reading(memory.policy, (v) => v)}`)
  lines.push(`evicted keys  ${reading(stats.evictedKeys, String)}`)
  lines.push(`expired keys  ${reading(stats.expiredKeys, String)}`)
  if (budget !== undefined) {
    lines.push(
      `budget        ${bytes(budget.maxBytes)}${budget.ratio === undefined ? '' : `, ${(budget.ratio * 100).toFixed(1)} % used`}` +
        (budget.exceeded ? ' (EXCEEDED)' : ''),
    )
  }
  const namespaces = Object.entries(report.namespaces)
  if (namespaces.length > 0) {
    lines.push('', 'namespace                  keys (est.)  entries (est.)  avg bytes  sampled  scan')
    for (const [name, n] of namespaces) lines.push(namespaceLine(name, n))
    lines.push('', 'TTL of the sampled keys (remaining):')
    for (const [name, n] of namespaces) lines.push(`  ${name}  ${ttlLine(n)}`)
  }
  lines.push('', report.warnings.length === 0 ? 'no warnings' : 'warnings:')
  for (const warning of report.warnings) lines.push(`  - ${warning.message}`)
  return `${lines.join('\n')}\n`
}

function namespaceLine(name: string, n: NamespaceReport): string {
  const scan = n.stoppedBy === 'complete' ? 'complete' : `${(n.coverage * 100).toFixed(0)} % (${n.stoppedBy})`
  return [
    (name + (n.critical ? ' (critical)' : '')).padEnd(26),
    String(Math.round(n.keys)).padStart(11),
    String(Math.round(n.entries)).padStart(15),
    String(Math.round(n.bytes.average)).padStart(10),
    String(n.sampled).padStart(8),
    ` ${scan}`,
  ].join(' ')
}

function ttlLine(n: NamespaceReport): string {
  const parts = n.ttl.buckets.map(
    ({ upToMs, keys }) => `${upToMs === null ? 'longer' : `< ${duration(upToMs)}`} ${keys}`,
  )
  if (n.ttl.noExpiry > 0) parts.push(`no expiry ${n.ttl.noExpiry}`)
  return parts.join(' · ')
}

function duration(ms: number): string {
  if (ms % 86_400_000 === 0) return `${ms / 86_400_000}d`
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`
  if (ms % 60_000 === 0) return `${ms / 60_000}m`
  if (ms % 1_000 === 0) return `${ms / 1_000}s`
  return `${ms}ms`
}

function bytes(n: number): string {
  if (n < 1024) return `${n} B`
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)} KiB`
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)} MiB`
  return `${(n / 1024 ** 3).toFixed(2)} GiB`
}
