// `stratacache contract`: prints the cache contract from the code, or checks a committed one (`--check FILE`).
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { CliUsageError } from '../../errors.js'
import { isIsoDate } from '../../options.js'
import { defineCommand, ExitCode, type CliIo } from '../command.js'
import { loadConfigModule } from '../config-module.js'
import { checkContract, type CheckResult } from '../contract/check.js'
import { describeCache, type ContractModel } from '../contract/describe.js'
import { renderContract } from '../contract/render.js'

/** Changed lines shown per section before "… and N more". */
const SHOWN_LINES = 6

export const contractCommand = defineCommand({
  name: 'contract',
  summary: 'print the cache contract (Markdown) from the code, or check a committed one',
  help: `Usage: stratacache contract [--config FILE] [--out FILE] [--json]
       stratacache contract --check FILE [--config FILE] [--today YYYY-MM-DD] [--json]

Prints the cache contract in Markdown, from the namespace declarations in your code: per namespace the key schema
with an example key, the TTL class, consistency and write strategy, classification and protections, owner, SLOs,
source limits, policy exceptions and a playbook. The output is deterministic (sorted, no dates): commit it.

The config module is imported (never run a loader, never touches Redis) and its cache closed afterwards. Its
default export is the cache, or a function returning it. A .ts module needs a loader:
NODE_OPTIONS='--import tsx' npx stratacache contract --config src/cache.ts

Flags:
  -c, --config FILE   the module that creates your cache (default: ./stratacache.config.mjs or .js)
  -o, --out FILE      write the contract to FILE instead of stdout
      --check FILE    compare FILE with the code's contract; fail on drift or on an expired policy exception
      --today DATE    the date --check compares exceptions' \`until\` with (default: today, UTC)
      --json          print the contract (or the check's result) as JSON
  -h, --help          this help

Exit codes: 0 ok; 1 --check failed (drift or expired exception); 2 bad command line; 3 the config module or a
file could not be used.

Examples:
  npx stratacache contract --config stratacache.config.mjs --out docs/cache-contract.md
  npx stratacache contract --check docs/cache-contract.md --config stratacache.config.mjs`,
  flags: {
    config: { type: 'string', short: 'c' },
    out: { type: 'string', short: 'o' },
    check: { type: 'string' },
    today: { type: 'string' },
    json: { type: 'boolean' },
  },
  async run(flags, io) {
    if (flags.check !== undefined && flags.out !== undefined) {
      throw new CliUsageError('contract', '--check and --out do not go together: check a file, or write one')
    }
    if (flags.today !== undefined && flags.check === undefined) {
      throw new CliUsageError('contract', '--today is used only with --check')
    }
    const today = flags.today ?? new Date().toISOString().slice(0, 10)
    if (!isIsoDate(today)) {
      throw new CliUsageError('contract', `--today must be a date written YYYY-MM-DD, got "${flags.today}"`)
    }
    const { cache, path } = await loadConfigModule('contract', flags.config, io.cwd)
    let model: ContractModel
    try {
      model = describeCache(cache)
    } finally {
      await cache.close()
    }
    const markdown = renderContract(model)

    if (flags.check !== undefined)
      return check(flags.check, path, markdown, model, today, flags.json === true, io)

    const output = flags.json === true ? `${JSON.stringify(model, null, 2)}\n` : markdown
    if (flags.out === undefined) {
      io.out(output)
    } else {
      writeFileSync(resolve(io.cwd, flags.out), output)
      io.err(`wrote ${flags.out} (${model.namespaces.length} namespaces of service "${model.service}")\n`)
    }
    return ExitCode.ok
  },
})

function check(
  file: string,
  configPath: string,
  markdown: string,
  model: ContractModel,
  today: string,
  json: boolean,
  io: CliIo,
): number {
  const absolute = resolve(io.cwd, file)
  const missing = !existsSync(absolute)
  const result = checkContract(missing ? '' : readFileSync(absolute, 'utf8'), markdown, model, today)
  const regenerate = `stratacache contract --config ${configPath} --out ${file}`
  if (json) {
    io.out(`${JSON.stringify({ file, today, missing, ...result }, null, 2)}\n`)
    return result.ok && !missing ? ExitCode.ok : ExitCode.checkFailed
  }
  for (const e of result.expiringSoon) {
    io.err(
      `warning: policy exception \`${e.rule}\` of namespace \`${e.namespace}\` expires on ${e.until} ` +
        `(${e.daysLeft === 0 ? 'today' : `in ${e.daysLeft} days`})\n`,
    )
  }
  if (missing) {
    io.err(`stratacache contract: ${file} does not exist. Generate it: ${regenerate}\n`)
  } else if (result.drift.length > 0) {
    io.err(`stratacache contract: ${file} differs from the code (${describeDrift(result)}):\n`)
    for (const d of result.drift) io.err(driftText(d))
    io.err(`Review the change, then regenerate the file: ${regenerate}\n`)
  }
  for (const e of result.expired) {
    io.err(
      `stratacache contract: policy exception \`${e.rule}\` of namespace \`${e.namespace}\` expired on ${e.until} ` +
        `(today is ${today}). Pay the debt and remove it, or renew it with a later \`until\` and a reason.\n`,
    )
  }
  if (result.ok && !missing) {
    const count = model.namespaces.reduce((n, ns) => n + ns.exceptions.length, 0)
    io.out(
      `contract ok: ${file} matches the code (${model.namespaces.length} namespaces, ` +
        `${count} policy exception${count === 1 ? '' : 's'}, none expired on ${today})\n`,
    )
    return ExitCode.ok
  }
  return ExitCode.checkFailed
}

function describeDrift(result: CheckResult): string {
  const n = result.drift.length
  return `${n} section${n === 1 ? '' : 's'}`
}

function driftText(d: CheckResult['drift'][number]): string {
  const name = d.section === 'header' ? 'header and overview' : `namespace \`${d.section}\``
  if (d.kind === 'added') return `  ${name}: declared in the code, missing from the file\n`
  if (d.kind === 'removed') return `  ${name}: in the file, no longer declared in the code\n`
  const shown = d.lines.slice(0, SHOWN_LINES).map((l) => `    ${l.op} ${l.text}\n`)
  const more = d.lines.length - shown.length
  return (
    `  ${name}: ${d.lines.length} line${d.lines.length === 1 ? '' : 's'} differ (- file, + code)\n` +
    shown.join('') +
    (more > 0 ? `    … and ${more} more\n` : '')
  )
}
