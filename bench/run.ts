// Runs the benchmark scenarios (all, or those named) and prints one Markdown report; see docs/benchmarks.md.
//
//   npm run bench                        every scenario
//   npm run bench -- l1-hit cold-key     the named ones
//   npm run bench -- l2-hit --rounds 5   fewer rounds (default: each scenario's own)
//
// CPU profile of one scenario (writes CPU.*.cpuprofile in the working directory, git-ignored; open it in Chrome
// DevTools › Performance, or in VS Code):
//
//   node --cpu-prof --import tsx bench/run.ts l1-hit
//
// Add `--cpu-prof-interval 100` (µs) for a finer profile of the short L1 calls.
import { parseArgs } from 'node:util'
import { startRedis, type RedisServer } from '../test/helpers/redis-server.js'
import { cluster } from './cluster.js'
import { codecs } from './codecs.js'
import { coldKey } from './cold-key.js'
import { commandLine, machine, machineLine, writeResults, type Scenario } from './harness.js'
import { inspect } from './inspect.js'
import { l1Hit } from './l1-hit.js'
import { l2Hit } from './l2-hit.js'
import { l2Overhead } from './l2-overhead.js'
import { metricsOverhead } from './metrics-overhead.js'
import { redisKill } from './redis-kill.js'
import { stampede } from './stampede.js'
import { warmStart } from './warm-start.js'

const scenarios: readonly Scenario[] = [
  l1Hit,
  l2Hit,
  l2Overhead,
  coldKey,
  stampede,
  redisKill,
  codecs,
  metricsOverhead,
  inspect,
  cluster,
  warmStart,
]

/** The whole run stops by itself even if a peer library hangs: past this, the process exits with an error. */
const WATCHDOG_MS = 10 * 60_000

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { rounds: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
  })
  if (values.help) {
    console.log(
      `Usage: npm run bench -- [${scenarios.map((s) => s.name).join(' | ')} ...] [--rounds N]\n` +
        'Without a scenario name, runs them all.',
    )
    return
  }
  const unknown = positionals.filter((name) => !scenarios.some((s) => s.name === name))
  if (unknown.length > 0) {
    throw new Error(
      `Unknown scenario ${unknown.map((n) => `"${n}"`).join(', ')}; ` +
        `choose among ${scenarios.map((s) => s.name).join(', ')}`,
    )
  }
  const rounds = values.rounds === undefined ? undefined : Number(values.rounds)
  if (rounds !== undefined && !(Number.isSafeInteger(rounds) && rounds >= 1)) {
    throw new Error(`--rounds expects a positive whole number, got "${values.rounds}"`)
  }
  const selected =
    positionals.length === 0 ? scenarios : scenarios.filter((s) => positionals.includes(s.name))

  const watchdog = setTimeout(() => {
    console.error(`bench: still running after ${WATCHDOG_MS / 60_000} minutes, giving up`)
    process.exit(1)
  }, WATCHDOG_MS)
  watchdog.unref()

  const host = machine()
  const command = commandLine()
  const date = new Date().toISOString()
  console.log(`# stratacache benchmarks\n`)
  console.log(`- Machine: ${machineLine(host)}`)
  console.log(`- Command: \`${command}\``)
  console.log(`- Date: ${date}`)

  let redis: RedisServer | undefined
  try {
    if (selected.some((s) => s.needsRedis)) redis = await startRedis()
    for (const scenario of selected) {
      const log = (line: string) => console.error(line)
      log(`${scenario.name}: starting`)
      const started = performance.now()
      const report = await scenario.run({ redisUrl: redis?.url, rounds, log })
      const seconds = (performance.now() - started) / 1_000
      console.log(`\n## ${scenario.name}: ${scenario.title}\n`)
      for (const section of report.sections) {
        console.log(`### ${section.title}\n\n${section.table}\n`)
        for (const note of section.notes) console.log(`- ${note}`)
        if (section.notes.length > 0) console.log('')
      }
      console.log('Targets:\n')
      for (const target of report.targets) {
        console.log(`- ${target.met ? 'met' : '**NOT met**'}: ${target.text}: ${target.measured}`)
      }
      const path = writeResults(scenario.name, {
        scenario: scenario.name,
        title: scenario.title,
        machine: host,
        command,
        date,
        durationSeconds: Math.round(seconds * 10) / 10,
        targets: report.targets,
        results: report.results,
      })
      log(`${scenario.name}: done in ${seconds.toFixed(1)} s, results in ${path}`)
    }
  } finally {
    await redis?.stop()
  }
}

main().catch((error: unknown) => {
  console.error(error)
  process.exitCode = 1
})
