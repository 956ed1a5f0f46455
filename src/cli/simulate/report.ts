// The shadow evaluation's report: a side-by-side table with text bars for the terminal, JSON, or one HTML page.
import { CLI_DOCS_URL } from '../command.js'
import { formatCount, formatDuration, formatShare } from '../format.js'
import type { SimulationPolicy } from './policy.js'
import type { SimulationResult } from './simulate.js'

export interface Comparison {
  readonly log: string
  readonly sampleRate: number
  readonly current: { readonly policy: SimulationPolicy; readonly result: SimulationResult }
  readonly proposed: { readonly policy: SimulationPolicy; readonly result: SimulationResult }
  /** What production did for the current policy's reads, from the log's recorded outcomes. */
  readonly observed: SimulationResult
}

const BAR_WIDTH = 30

interface Metric {
  readonly label: string
  readonly value: (r: SimulationResult) => number | null
  readonly text: (v: number | null) => string
  /** Bars of shares run to 100%; bars of rates to the largest value shown. */
  readonly share: boolean
  /** Whether a higher value is better, for the verdict column. */
  readonly higherIsBetter: boolean
}

/** Rates below 10 keep three significant digits, so a quiet source does not print as 0. */
const rate = (v: number | null) =>
  v === null ? 'n/a' : v !== 0 && Math.abs(v) < 10 ? String(Number(v.toPrecision(3))) : formatCount(v)
const share = (v: number | null) => (v === null ? 'n/a' : formatShare(v, 1))

const METRICS: readonly Metric[] = [
  { label: 'L1 hit ratio', value: (r) => r.l1HitRatio, text: share, share: true, higherIsBetter: true },
  {
    label: 'L2 hit ratio (of L1 misses)',
    value: (r) => r.l2HitRatio,
    text: share,
    share: true,
    higherIsBetter: true,
  },
  { label: 'overall hit ratio', value: (r) => r.hitRatio, text: share, share: true, higherIsBetter: true },
  {
    label: 'misses / s',
    value: (r) => r.missesPerSecond,
    text: rate,
    share: false,
    higherIsBetter: false,
  },
  {
    label: 'source calls / s',
    value: (r) => r.sourceCallsPerSecond,
    text: rate,
    share: false,
    higherIsBetter: false,
  },
  { label: 'stale reads', value: (r) => r.staleShare, text: share, share: true, higherIsBetter: false },
]

export function describePolicy(p: SimulationPolicy): string {
  const l1 = p.l1 === false ? 'no L1' : `L1 ${formatCount(p.l1.maxEntries)} ${p.l1.policy}`
  const stale = p.staleForMs > 0 ? `stale ${formatDuration(p.staleForMs)}` : 'no stale'
  return `ttl ${formatDuration(p.ttlMs)}, ${stale}, ${l1}${p.namespace === undefined ? '' : `, ns ${p.namespace}`}`
}

/** The terminal report: a table (current, proposed, observed) and a bar chart per metric. */
export function renderText(c: Comparison): string {
  const cur = c.current.result
  const pro = c.proposed.result
  const rows: string[][] = [
    ['', 'current', 'proposed', 'observed (log)'],
    ['policy file', c.current.policy.label, c.proposed.policy.label, ''],
    ['reads replayed', formatCount(cur.reads), formatCount(pro.reads), formatCount(c.observed.reads)],
    ...METRICS.map((m) => [m.label, m.text(m.value(cur)), m.text(m.value(pro)), m.text(m.value(c.observed))]),
  ]
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)))
  const table = rows.map((r) =>
    r
      .map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!)))
      .join('   ')
      .trimEnd(),
  )
  const lines = [
    `Shadow evaluation of ${c.log}: ${formatCount(cur.reads)} reads over ${formatDuration(cur.durationMs)}` +
      (c.sampleRate < 1 ? ` (a ${formatShare(c.sampleRate)} sample of keys)` : ''),
    `  current:  ${describePolicy(c.current.policy)}`,
    `  proposed: ${describePolicy(c.proposed.policy)}`,
    '',
    ...table,
    '',
  ]
  for (const m of METRICS) {
    const a = m.value(cur)
    const b = m.value(pro)
    const scale = m.share ? 1 : Math.max(a ?? 0, b ?? 0)
    lines.push(`${m.label}${verdict(m, a, b)}`)
    lines.push(`  current   ${bar(a, scale)}  ${m.text(a)}`)
    lines.push(`  proposed  ${bar(b, scale)}  ${m.text(b)}`)
  }
  return `${lines.join('\n')}\n`
}

function bar(value: number | null, scale: number): string {
  const filled = value === null || scale <= 0 ? 0 : Math.round((Math.min(value, scale) / scale) * BAR_WIDTH)
  return '█'.repeat(filled) + '░'.repeat(BAR_WIDTH - filled)
}

function verdict(m: Metric, a: number | null, b: number | null): string {
  if (a === null || b === null || a === b) return ''
  const better = b > a === m.higherIsBetter
  const delta = m.share
    ? `${b > a ? '+' : '-'}${formatShare(Math.abs(b - a), 1)} points`
    : `${b > a ? '+' : '-'}${rate(Math.abs(b - a))}`
  return ` (proposed: ${delta.replace('% points', ' points')}, ${better ? 'better' : 'worse'})`
}

/** The JSON report: both predictions, what was observed, and the policies as resolved. */
export function renderJson(c: Comparison): string {
  return `${JSON.stringify(
    {
      log: c.log,
      sampleRate: c.sampleRate,
      current: { policy: c.current.policy, ...c.current.result },
      proposed: { policy: c.proposed.policy, ...c.proposed.result },
      observed: c.observed,
    },
    null,
    2,
  )}\n`
}

/** One self-contained HTML page (no script, no external asset): the table and a bar per metric and policy. */
export function renderHtml(c: Comparison): string {
  const cur = c.current.result
  const pro = c.proposed.result
  const rows = METRICS.map((m) => {
    const a = m.value(cur)
    const b = m.value(pro)
    const scale = m.share ? 1 : Math.max(a ?? 0, b ?? 0)
    const width = (v: number | null) => (v === null || scale <= 0 ? 0 : (Math.min(v, scale) / scale) * 100)
    const barCell = (v: number | null, cls: string) =>
      `<span class="track"><span class="bar ${cls}" style="width:${width(v).toFixed(1)}%"></span></span>` +
      `<span>${escape(m.text(v))}</span>`
    return (
      `<tr><th>${escape(m.label)}</th><td>${barCell(a, 'current')}</td><td>${barCell(b, 'proposed')}</td>` +
      `<td>${escape(m.text(m.value(c.observed)))}</td></tr>`
    )
  })
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>stratacache shadow evaluation: ${escape(c.log)}</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 2rem; color: #1d2330; }
table { border-collapse: collapse; min-width: 44rem; }
th, td { padding: .4rem .8rem; border-bottom: 1px solid #dde1e8; text-align: left; vertical-align: middle; }
td { width: 14rem; }
.track { display: inline-block; width: 9rem; height: .8rem; margin-right: .5rem; vertical-align: middle; background: #f2f4f7; }
.bar { display: block; height: 100%; }
.bar.current { background: #8a94a6; }
.bar.proposed { background: #2f6fde; }
code { background: #f2f4f7; padding: 0 .2rem; }
</style>
</head>
<body>
<h1>Shadow evaluation</h1>
<p>Log <code>${escape(c.log)}</code>: ${escape(formatCount(cur.reads))} reads over ${escape(formatDuration(cur.durationMs))}${
    c.sampleRate < 1 ? ` (a ${escape(formatShare(c.sampleRate))} sample of keys)` : ''
  }.</p>
<ul>
<li>current (<code>${escape(c.current.policy.label)}</code>): ${escape(describePolicy(c.current.policy))}</li>
<li>proposed (<code>${escape(c.proposed.policy.label)}</code>): ${escape(describePolicy(c.proposed.policy))}</li>
</ul>
<table>
<thead><tr><th></th><th>current</th><th>proposed</th><th>observed (log)</th></tr></thead>
<tbody>
${rows.join('\n')}
</tbody>
</table>
<p>Predictions replay the log against a model of the tiers (<a href="${escape(CLI_DOCS_URL)}#simulate">docs/cli.md,
"simulate"</a>). Bars of hit ratios and stale reads run to 100%; bars of rates to the larger of the two policies.
The log records reads only, so the observed column has no source calls (refreshes are not reads) and no stale
reads: compare misses with misses.</p>
</body>
</html>
`
}

function escape(text: string): string {
  return text
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;')
}
