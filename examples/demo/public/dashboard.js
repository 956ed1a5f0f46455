// The demo dashboard: polls /api/stats every second and redraws Chart.js charts; the buttons call /api/admin/*.
/* global Chart, document, fetch, setInterval */
'use strict'

const $ = (id) => document.getElementById(id)
const colors = {
  l1: '#2563eb',
  l2: '#7c3aed',
  miss: '#dc2626',
  p50: '#0891b2',
  p99: '#ea580c',
  source: '#dc2626',
  requests: '#16a34a',
  swr: '#ca8a04',
  failSafe: '#db2777',
  softTimeout: '#9333ea',
  l2Errors: '#475569',
  bypassed: '#94a3b8',
  limit: '#64748b',
}

/** The loader's hard timeout of the demo's namespaces (examples/demo/catalog-cache.ts), drawn on the latency chart. */
const HARD_TIMEOUT_MS = 3000
/** The latency axis starts here: a log scale has no zero, and faster answers are drawn on this line. */
const LATENCY_FLOOR_MS = 0.1

Chart.defaults.animation = false
Chart.defaults.maintainAspectRatio = false
Chart.defaults.font.size = 12

const series = (label, color, extra = {}) => ({
  label,
  data: [],
  borderColor: color,
  backgroundColor: color + '33',
  borderWidth: 2,
  pointRadius: 0,
  tension: 0.25,
  ...extra,
})

const lineChart = (id, datasets, yOptions = {}, tooltip = {}) =>
  new Chart($(id), {
    type: 'line',
    data: { labels: [], datasets },
    options: {
      interaction: { mode: 'index', intersect: false },
      scales: {
        x: { ticks: { maxTicksLimit: 7 } },
        y: { beginAtZero: true, ...yOptions },
      },
      plugins: { legend: { position: 'bottom', labels: { boxWidth: 12 } }, tooltip },
    },
  })

/** The samples the charts show, for the tooltips' extra lines. */
let shown = []

const msLabel = (ms) => (ms >= 1000 ? `${ms / 1000} s` : `${ms} ms`)

const charts = {
  hits: lineChart(
    'chart-hits',
    [
      series('L1', colors.l1, { fill: 'origin' }),
      series('L2', colors.l2, { fill: '-1' }),
      series('miss (source)', colors.miss, { fill: '-1' }),
      // Its own stack: drawn only in seconds without cache reads, never added to a tier's share.
      series('cache bypassed (no cache reads)', colors.bypassed, {
        fill: 'origin',
        stack: 'bypass',
        backgroundColor: colors.bypassed + '55',
      }),
    ],
    { max: 100, stacked: true },
    {
      callbacks: {
        footer: (items) => {
          const sample = shown[items[0]?.dataIndex]
          if (!sample) return ''
          const reads = sample.reads.l1 + sample.reads.l2 + sample.reads.miss
          const lines = [`over ${reads.toLocaleString('en-US')} cache reads`]
          if (sample.bypassed > 0)
            lines.push(`${sample.bypassed.toLocaleString('en-US')} requests bypassed the cache`)
          return lines
        },
      },
    },
  ),
  // Log scale: cache hits take a fraction of a millisecond and a slow source seconds; on a linear axis one spike
  // flattens everything else for the next minute.
  latency: lineChart(
    'chart-latency',
    [
      series('p50', colors.p50),
      series('p99', colors.p99),
      series(`loader hard timeout (${msLabel(HARD_TIMEOUT_MS)})`, colors.limit, {
        borderDash: [6, 4],
        borderWidth: 1,
        tension: 0,
      }),
    ],
    {
      type: 'logarithmic',
      beginAtZero: false,
      min: LATENCY_FLOOR_MS,
      suggestedMax: 10 * HARD_TIMEOUT_MS,
      ticks: {
        // One label per power of ten: 0.1 ms, 1 ms, 10 ms, 100 ms, 1 s, 10 s.
        callback: (value) => (Number.isInteger(Math.log10(value)) ? msLabel(value) : ''),
      },
    },
    {
      callbacks: {
        // The real value, not the one clamped to the axis's floor.
        label: (item) => {
          if (item.datasetIndex === 2) return `${item.dataset.label}`
          const sample = shown[item.dataIndex]
          const value = sample?.[item.datasetIndex === 0 ? 'p50' : 'p99']
          return `${item.dataset.label}: ${value === null || value === undefined ? '–' : value + ' ms'}`
        },
      },
    },
  ),
  source: lineChart('chart-source', [
    series('source queries/s', colors.source),
    series('requests/s', colors.requests),
  ]),
  stale: lineChart('chart-stale', [
    series('stale-while-revalidate', colors.swr),
    series('fail-safe', colors.failSafe),
    series('soft timeout', colors.softTimeout),
    series('L2 errors', colors.l2Errors),
  ]),
  sizes: lineChart('chart-sizes', [series('L1 entries', colors.l1), series('L2 keys (DBSIZE)', colors.l2)]),
  hot: new Chart($('chart-hot'), {
    type: 'bar',
    data: { labels: [], datasets: [{ label: 'score', data: [], backgroundColor: colors.l1 }] },
    options: {
      indexAxis: 'y',
      plugins: { legend: { display: false } },
      scales: { x: { beginAtZero: true }, y: { ticks: { font: { size: 11 } } } },
    },
  }),
}

const time = (t) => new Date(t).toLocaleTimeString([], { hour12: false })
const fmt = (value, digits = 0) =>
  value === null || value === undefined
    ? '–'
    : value.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: 0 })

function setSeries(chart, labels, columns) {
  chart.data.labels = labels
  columns.forEach((column, i) => {
    chart.data.datasets[i].data = column
  })
  chart.update('none')
}

let state = { mode: null, load: null }

const floored = (ms) => (ms === null || ms === undefined ? null : Math.max(ms, LATENCY_FLOOR_MS))

function render(stats) {
  state = stats
  const samples = stats.samples
  shown = samples
  const labels = samples.map((s) => time(s.t))
  setSeries(charts.hits, labels, [
    samples.map((s) => s.hitRatio?.l1 ?? null),
    samples.map((s) => s.hitRatio?.l2 ?? null),
    samples.map((s) => s.hitRatio?.miss ?? null),
    // A second bypassed for all or most of it has no hit ratio (live-stats.ts says why): no tier gets a share of
    // it, and the grey band says why.
    samples.map((s) => (s.hitRatio === null && s.bypassed > 0 ? 100 : null)),
  ])
  setSeries(charts.latency, labels, [
    samples.map((s) => floored(s.p50)),
    samples.map((s) => floored(s.p99)),
    samples.map(() => HARD_TIMEOUT_MS),
  ])
  setSeries(charts.source, labels, [samples.map((s) => s.sourceQueries), samples.map((s) => s.requests)])
  setSeries(charts.stale, labels, [
    samples.map((s) => s.stale.swr),
    samples.map((s) => s.stale.failSafe),
    samples.map((s) => s.stale.softTimeout),
    samples.map((s) => s.l2Errors),
  ])
  setSeries(charts.sizes, labels, [samples.map((s) => s.l1Entries), samples.map((s) => s.l2Keys)])
  setSeries(
    charts.hot,
    stats.hotKeys.map((h) => shortKey(h.key)),
    [stats.hotKeys.map((h) => Math.round(h.score))],
  )

  const last = samples[samples.length - 1]
  if (last) {
    const stale = last.stale.swr + last.stale.failSafe + last.stale.softTimeout
    $('kpi-requests').textContent = fmt(last.requests)
    $('kpi-hit').textContent = last.hitRatio ? fmt(last.hitRatio.l1 + last.hitRatio.l2, 1) + ' %' : '–'
    $('kpi-p50').textContent = fmt(last.p50, 2)
    $('kpi-p99').textContent = fmt(last.p99, 2)
    $('kpi-source').textContent = fmt(last.sourceQueries)
    $('kpi-stale').textContent = fmt(stale)
    $('kpi-l1').textContent = fmt(last.l1Entries)
    $('kpi-l2').textContent = fmt(last.l2Keys)
  }

  const mode = stats.mode
  badge('badge-db', `source: ${mode.db === 'pglite' ? 'PGlite (in memory)' : 'PostgreSQL'}`, '')
  if (mode.l2 === null) {
    badge('badge-l2', 'L2: none (L1 only)', 'warn')
    badge('badge-circuit', 'circuit: n/a', '')
  } else {
    badge(
      'badge-l2',
      `L2: ${mode.l2Kind === 'disk' ? 'disk' : 'Redis'} ${mode.l2Status}`,
      mode.l2Status === 'ready' && !mode.outage ? 'good' : 'bad',
    )
    badge('badge-circuit', `circuit: ${mode.circuit}`, mode.circuit === 'closed' ? 'good' : 'bad')
  }
  $('banner-l1only').hidden = mode.l2 !== null
  const load = stats.load
  badge(
    'badge-load',
    load.running
      ? `load: ${fmt(load.sent)} sent, ${Math.max(0, Math.ceil((load.endsAt - Date.now()) / 1000))} s left`
      : load.sent > 0
        ? `load: done, ${fmt(load.sent)} sent, ${fmt(load.errors)} errors` +
          (load.skipped > 0 ? `, ${fmt(load.skipped)} skipped` : '')
        : 'load: idle',
    load.running ? 'good' : '',
  )
  $('btn-load').textContent = load.running ? 'Stop load' : 'Start load (15 s, 500 req/s)'
  pressed('btn-slow', mode.slowdownMs > 0)
  pressed('btn-outage', mode.outage)
  pressed('btn-bypass', mode.bypass)
  if (mode.l2 === null) {
    $('btn-outage').disabled = true
    $('btn-outage').title = 'No Redis: nothing to take down (the demo runs L1-only)'
  }
  const on = [
    mode.slowdownMs > 0 ? `Slow source (+${mode.slowdownMs} ms)` : null,
    mode.outage ? 'Redis outage' : null,
    mode.bypass ? 'Bypass cache' : null,
  ].filter(Boolean)
  renderRegions(stats.regions)
  // Inside the live region: written only when it changes, so a screen reader is not told the same thing every second.
  const active = `Drills on: ${on.length > 0 ? on.join(', ') : 'none'}.`
  if ($('active').textContent !== active) $('active').textContent = active
}

/** A duration for the Regions panel: whole ms under a second, else seconds to one decimal. */
const span = (ms) => (ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`)

/** The Regions panel: hidden unless the demo runs as a region (`regions` is null otherwise). */
function renderRegions(regions) {
  $('regions-panel').hidden = !regions
  if (!regions) return
  $('regions-self').textContent = regions.region + (regions.relaying ? ' (this process relays)' : '')
  const rows = regions.peers.map((peer) => {
    const last = peer.lastSplit
    return [
      [peer.region, ''],
      [peer.split ? 'split' : 'connected', peer.split ? 'split' : 'connected'],
      [`${span(peer.heardAgoMs)} ago`, ''],
      [span(peer.lagMs), ''],
      [peer.backlog === null ? '–' : fmt(peer.backlog), ''],
      [last ? `${span(last.durationMs)}, ${fmt(last.replayed)} replayed` : 'none', ''],
      [last ? span(last.convergeMs) : '–', ''],
      [fmt(peer.overflows), peer.overflows > 0 ? 'split' : ''],
    ]
  })
  const body = $('regions-peers')
  body.replaceChildren(
    ...rows.map((cells) => {
      const tr = document.createElement('tr')
      for (const [text, kind] of cells) {
        const td = document.createElement('td')
        td.textContent = text
        if (kind) td.className = kind
        tr.append(td)
      }
      return tr
    }),
  )
}

/** `tenant:acme:product:1:currency=EUR:locale=en` → `acme #1 en EUR` */
function shortKey(key) {
  const match = /^tenant:([^:]+):product:([^:]+):currency=([^:]+):locale=([^:]+)$/.exec(key)
  return match ? `${match[1]} #${match[2]} ${match[4]} ${match[3]}` : key
}

function badge(id, text, kind) {
  const el = $(id)
  el.textContent = text
  el.className = 'badge' + (kind ? ' ' + kind : '')
}

/** A toggle's state in three ways besides its colour: aria-pressed, an icon, and the words on or off. */
function pressed(id, on) {
  const button = $(id)
  button.setAttribute('aria-pressed', on ? 'true' : 'false')
  button.querySelector('.icon').textContent = on ? '●' : '○'
  button.querySelector('.state').textContent = on ? 'ON' : 'off'
}

async function post(path, body) {
  const response = await fetch(path, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  })
  const json = await response.json()
  if (!response.ok) throw new Error(json.message ?? response.statusText)
  return json
}

/** The status line: what the last button changed and what to look for; it stays until the next button. */
function say(text) {
  $('message').textContent = `${time(Date.now())}: ${text}`
}

/** Said after a drill's button when no load runs: without traffic the charts have nothing to show. */
const noLoad = () =>
  state.load?.running ? '' : ' No load is running: press Start load to see it in the charts.'

function action(id, run) {
  $(id).addEventListener('click', async () => {
    try {
      say(await run())
      await poll()
    } catch (error) {
      say(`failed: ${error.message}`)
    }
  })
}

action('btn-load', async () => {
  if (state.load?.running) {
    await post('/api/admin/load/stop', {})
    return 'Load stopped.'
  }
  await post('/api/admin/load', { seconds: 15, rate: 500 })
  return 'Load started: 500 reads/s for 15 s (climbing over the first 3 s), skewed towards a few hot products.'
})
// What to expect, as measured with examples/demo/drill.ts (docs/demo.md has the numbers and how to rerun them).
action('btn-slow', async () => {
  const on = !(state.mode?.slowdownMs > 0)
  await post('/api/admin/slowdown', { ms: on ? 300 : 0 })
  return on
    ? 'Slow source ON: every database query now waits 300 ms. Expect p50 to stay under 1 ms (hits never wait), ' +
        'p99 to reach the dashed 3 s timeout line within about 5 s, stale serves to climb to 120-260/s, source ' +
        'queries to fall to about 100-140/s, and from about the 5th second 1 request in 4 to 6 to fail with a ' +
        '503: a read of a key with nothing cached waits for one of 16 database slots until the 3 s timeout.' +
        noLoad()
    : 'Slow source off: the database answers at full speed again. Expect p99 back under 500 ms within 3-8 s, a ' +
        'burst of source queries for 2 s as the queue drains, and stale serves to fall back.' +
        noLoad()
})
action('btn-outage', async () => {
  const on = !state.mode?.outage
  await post('/api/admin/outage', { on })
  return on
    ? 'Redis outage ON: every Redis call now hangs. Expect L2 errors, the circuit badge to turn open, L2 to ' +
        'vanish from the hit ratio and source queries to rise, while every request still answers.' +
        noLoad()
    : 'Redis outage off: Redis answers again. Expect the circuit to close on its next probe (within 2 s) and ' +
        'L2 hits to come back.' +
        noLoad()
})
action('btn-bypass', async () => {
  const on = !state.mode?.bypass
  await post('/api/admin/bypass', { on })
  return on
    ? 'Bypass ON: every read now goes straight to the database. Expect source queries/s to match requests/s, ' +
        'latency to rise, and the hit-ratio chart to turn grey: there are no cache reads to share out.' +
        noLoad()
    : 'Bypass off: reads use the cache again. Expect L2 to answer a third to two thirds of the first ' +
        "second's reads (the memory copies expired during the bypass and refresh in the background), then L1 " +
        'to take over and source queries to fall.' +
        noLoad()
})
action('btn-purge', async () => {
  const result = await post('/api/admin/purge', { namespace: 'all', reason: 'dashboard purge button' })
  return (
    `Purged: ${result.deletedFromL2} entries deleted from Redis and memory emptied. Expect misses and source ` +
    'queries to jump, then fall as the cache refills.' +
    noLoad()
  )
})

async function poll() {
  try {
    const response = await fetch('/api/stats')
    render(await response.json())
  } catch (error) {
    say(`cannot reach the demo: ${error.message}`)
  }
}

void poll()
setInterval(() => void poll(), 1000)
