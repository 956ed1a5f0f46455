// Hit ratio of the L1 policy on real access traces, beside a plain LRU, Belady's OPT and the published ARC figures,
// then on the synthetic recency-biased workloads of bench/workloads.ts (standing in for sprite and P3).
//
//   npm run bench:hit-ratio                                  every trace in ../shared/traces, then every workload
//   npx tsx bench/hit-ratio.ts --no-synthetic                the traces only
//   npx tsx bench/hit-ratio.ts --trace ../shared/traces/gli.trace.gz --capacity 250,500
//   npx tsx bench/hit-ratio.ts --dir /path/to/traces
//
// It replays each trace against the exported MemoryStore (demand fill: get, then set on a miss). Hit ratios do not
// depend on compilation, so it imports the sources: a stale dist/ can never be what is measured.
import { existsSync, readdirSync } from 'node:fs'
import { basename, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { MemoryStore } from '../src/index.js'
import { commandLine, machine, machineLine, writeResults } from './harness.js'
import { lruHitRatio, optHitRatio, readTrace, replay, type Trace } from './traces.js'
import { WORKLOADS } from './workloads.js'

/** What ../shared/traces/README.md publishes per trace: capacities, and ARC's hit ratio where known (%). */
export const PUBLISHED: Record<string, { capacities: number[]; arc?: Record<number, number> }> = {
  'OLTP.lis.gz': {
    capacities: [1000, 2000, 5000, 10000, 15000],
    arc: { 1000: 38.93, 2000: 46.08, 5000: 55.25, 10000: 61.87, 15000: 65.4 },
  },
  // 1500: not in the README, but the row issue #16 names (4.4 points under OPT when it was filed).
  'gli.trace.gz': { capacities: [250, 500, 1000, 1500, 2000] },
  'loop.trace.gz': { capacities: [250, 500, 1000] },
}

/** Traces whose target is also to come within 3 points of OPT; on OLTP it is the published ARC figure. */
const NEAR_OPT = new Set(['gli.trace.gz', 'loop.trace.gz'])

export interface Row {
  readonly trace: string
  readonly capacity: number
  readonly policy: number
  readonly lru: number
  readonly opt: number
  readonly arc: number | undefined
  /** Every target of issue #16 that applies to this row, met or not. */
  readonly targets: readonly { text: string; met: boolean }[]
}

/** Replays `trace` at `capacity` against the store, a plain LRU and OPT, and checks the targets. */
export function measure(trace: Trace, capacity: number): Row {
  const policy = replay(trace.keys, new MemoryStore<boolean>({ maxEntries: capacity }))
  const lru = lruHitRatio(trace.keys, capacity)
  const opt = optHitRatio(trace.keys, capacity)
  const arc = PUBLISHED[trace.name]?.arc?.[capacity]
  // Issue #16: at least LRU and the published ARC figure on every row (compared at the 2 decimals shown).
  const targets = [{ text: '>= LRU', met: round2(policy) >= round2(lru) }]
  if (arc !== undefined) targets.push({ text: `>= ARC (${arc})`, met: round2(policy) >= arc })
  if (NEAR_OPT.has(trace.name)) targets.push({ text: '>= OPT - 3', met: policy >= round2(opt) - 3 })
  return { trace: trace.name, capacity, policy, lru, opt, arc, targets }
}

const round2 = (x: number) => Math.round(x * 100) / 100

function table(rows: readonly Row[]): string {
  const lines = [
    '| trace | capacity | stratacache L1 | LRU | ARC (published) | OPT | vs LRU | vs OPT | targets |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |',
  ]
  for (const r of rows) {
    const signed = (x: number) => (x >= 0 ? '+' : '') + x.toFixed(2)
    const targets = r.targets.map((t) => `${t.met ? 'met' : '**NOT met**'} ${t.text}`).join('; ')
    lines.push(
      `| ${r.trace} | ${r.capacity} | ${r.policy.toFixed(2)} | ${r.lru.toFixed(2)} | ` +
        `${r.arc?.toFixed(2) ?? '–'} | ${r.opt.toFixed(2)} | ${signed(r.policy - r.lru)} | ` +
        `${signed(r.policy - r.opt)} | ${targets} |`,
    )
  }
  return lines.join('\n')
}

function main(): void {
  const here = fileURLToPath(new URL('.', import.meta.url))
  const { values } = parseArgs({
    options: {
      trace: { type: 'string', multiple: true },
      capacity: { type: 'string' },
      dir: { type: 'string', default: resolve(here, '../../shared/traces') },
      'no-synthetic': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h' },
    },
  })
  if (values.help) {
    console.log(
      'Usage: npx tsx bench/hit-ratio.ts [--trace FILE ...] [--capacity N,...] [--dir DIR] [--no-synthetic]\n' +
        'Without --trace, replays every *.gz trace in DIR (default ../shared/traces from the repo), then the\n' +
        'synthetic workloads of bench/workloads.ts (skipped with --no-synthetic or --trace).\n' +
        'Formats: *.lis(.gz) is the ARC format, anything else the LIRS format (one key per line).',
    )
    return
  }
  const capacities = values.capacity?.split(',').map((c) => {
    const n = Number(c)
    if (!Number.isSafeInteger(n) || n < 1)
      throw new Error(`--capacity expects whole numbers >= 1, got "${c}"`)
    return n
  })
  let files = values.trace
  if (files === undefined) {
    if (!existsSync(values.dir)) throw new Error(`No trace directory at ${values.dir}: pass --dir or --trace`)
    files = readdirSync(values.dir)
      .filter((f) => f.endsWith('.gz'))
      .sort()
      .map((f) => join(values.dir, f))
  }
  const rows: Row[] = []
  for (const file of files) {
    const started = performance.now()
    const trace = readTrace(file)
    const list = capacities ?? PUBLISHED[basename(file)]?.capacities
    if (list === undefined) throw new Error(`No known capacities for ${file}: pass --capacity N,...`)
    for (const capacity of list) rows.push(measure(trace, capacity))
    console.error(
      `${trace.name}: ${trace.keys.length.toLocaleString('en')} requests, ${trace.distinct.toLocaleString('en')} keys, ` +
        `${((performance.now() - started) / 1000).toFixed(1)} s`,
    )
  }
  if (values.trace === undefined && !values['no-synthetic']) {
    for (const workload of WORKLOADS) {
      const started = performance.now()
      for (const capacity of capacities ?? workload.capacities) {
        const keys = workload.keys(capacity)
        rows.push(measure({ name: workload.name, keys, distinct: new Set(keys).size }, capacity))
      }
      console.error(`${workload.name}: ${((performance.now() - started) / 1000).toFixed(1)} s`)
    }
  }
  const host = machine()
  console.log('# stratacache L1 hit ratio on traces\n')
  console.log(`- Machine: ${machineLine(host)}`)
  console.log(`- Command: \`${commandLine()}\``)
  console.log(`- Date: ${new Date().toISOString()}\n`)
  console.log(table(rows))
  console.log(
    "\nHit ratio in % from a cold cache, demand fill. LRU is lru-cache `{ max }`; OPT is Belady's MIN computed here " +
      '(evict the entry used farthest in the future); ARC is the published figure (Megiddo and Modha, FAST 2003).',
  )
  const synthetic = WORKLOADS.filter((w) => rows.some((r) => r.trace === w.name))
  if (synthetic.length > 0) {
    console.log('\nSynthetic workloads (bench/workloads.ts, seeded, 400,000 requests unless said):')
    for (const w of synthetic) console.log(`- ${w.name}: ${w.description}`)
  }
  const missed = rows.flatMap((r) =>
    r.targets.filter((t) => !t.met).map((t) => `${r.trace} @ ${r.capacity}: ${t.text}`),
  )
  console.log(missed.length === 0 ? '\nAll targets met.' : `\nTargets NOT met: ${missed.join('; ')}`)
  writeResults('hit-ratio', { machine: host, command: commandLine(), date: new Date().toISOString(), rows })
  if (missed.length > 0) process.exitCode = 1
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) main()
