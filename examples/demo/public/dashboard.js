// The demo dashboard: polls /api/stats every second and redraws Chart.js charts; the buttons call /api/admin/*.
/* global Chart, document, fetch, setInterval, setTimeout */
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
}

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

const lineChart = (id, datasets, yOptions = {}) =>
  new Chart($(id), {
    type: 'line',
    data: { labels: [], datasets },
    options: {
      interaction: { mode: 'index', intersect: false },
      scales: {
        x: { ticks: { maxTicksLimit: 7 } },
        y: { beginAtZero: true, ...yOptions },
      },
      plugins: { legend: { position: 'bottom', labels: { boxWidth: 12 } } },
    },
  })

const charts = {
  hits: lineChart(
    'chart-hits',
    [
      series('L1', colors.l1, { fill: 'origin' }),
      series('L2', colors.l2, { fill: '-1' }),
      series('miss (source)', colors.miss, { fill: '-1' }),
    ],
    { max: 100, stacked: true },
  ),
  latency: lineChart('chart-latency', [series('p50', colors.p50), series('p99', colors.p99)]),
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

function render(stats) {
  state = stats
  const samples = stats.samples
  const labels = samples.map((s) => time(s.t))
  setSeries(charts.hits, labels, [
    samples.map((s) => s.hitRatio?.l1 ?? null),
    samples.map((s) => s.hitRatio?.l2 ?? null),
    samples.map((s) => s.hitRatio?.miss ?? null),
  ])
  setSeries(charts.latency, labels, [samples.map((s) => s.p50), samples.map((s) => s.p99)])
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
      `L2: Redis ${mode.l2Status}`,
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
  $('btn-outage').disabled = mode.l2 === null
  $('btn-outage').title = mode.l2 === null ? 'No Redis: nothing to take down' : ''
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

function pressed(id, on) {
  $(id).setAttribute('aria-pressed', on ? 'true' : 'false')
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

function say(text) {
  $('message').textContent = text
  setTimeout(() => {
    if ($('message').textContent === text) $('message').textContent = ''
  }, 6000)
}

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
    return 'load stopped'
  }
  await post('/api/admin/load', { seconds: 15, rate: 500 })
  return 'load started: 500 reads/s for 15 s, skewed towards a few hot products'
})
action('btn-slow', async () => {
  const on = !(state.mode?.slowdownMs > 0)
  await post('/api/admin/slowdown', { ms: on ? 300 : 0 })
  return on ? 'every database query now takes 300 ms longer' : 'the database is fast again'
})
action('btn-outage', async () => {
  const on = !state.mode?.outage
  await post('/api/admin/outage', { on })
  return on
    ? 'Redis frozen: every L2 call hangs; watch the timeouts open the circuit'
    : 'Redis is back: the circuit closes on its next probe'
})
action('btn-bypass', async () => {
  const on = !state.mode?.bypass
  await post('/api/admin/bypass', { on })
  return on ? 'cache bypassed: every read goes to the database' : 'cache on'
})
action('btn-purge', async () => {
  const result = await post('/api/admin/purge', { namespace: 'all', reason: 'dashboard purge button' })
  return `purged every namespace: ${result.deletedFromL2} L2 entries deleted`
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
