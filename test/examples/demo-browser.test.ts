// The demo as a visitor sees it, and as the load script drives it: `npm start`'s program on a free port with a real redis-server, its dashboard in
// headless Chromium (Debian's package, driven by playwright-core), a load started by the button, live charts.
// The screenshot goes to docs/dashboard.png when UPDATE_SCREENSHOT=1 (the README shows it), else to a temp file,
// so a test run does not rewrite a tracked binary file.
import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { chromium, type Browser, type Page } from 'playwright-core'
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { spawnDemo, type RunningDemo } from '../../examples/demo/spawn-demo.js'
import { startRedis, type RedisServer } from '../helpers/redis-server.js'

const root = fileURLToPath(new URL('../..', import.meta.url))

/** Debian's Chromium, or CHROMIUM_PATH when set. Missing is a failure that says how to fix it, never a skip. */
function chromiumPath(): string {
  const wanted = process.env.CHROMIUM_PATH || '/usr/bin/chromium'
  if (!existsSync(wanted)) {
    throw new Error(
      `The dashboard test needs Chromium and found none at ${wanted}. Install the Debian package: ` +
        '`apt-get install -y chromium` (.ci/run does this), or set CHROMIUM_PATH to a Chromium binary.',
    )
  }
  return wanted
}

let redis: RedisServer
let demo: RunningDemo
let browser: Browser
let page: Page
let baseUrl: string
/** Every response the page received with a status of 400 or more, and every console error: none is expected. */
const failures: string[] = []

/** Set when Chromium is missing: every test then fails with it (a failed test, not a skipped one). */
let missingBrowser: Error | undefined

beforeAll(async () => {
  let executablePath: string
  try {
    executablePath = chromiumPath()
  } catch (error) {
    missingBrowser = error as Error
    return
  }
  redis = await startRedis()
  // Port 0: the demo binds a free port itself and prints its address (spawnDemo reads it), so no other process can
  // take the port between a check here and the demo's bind, seconds later.
  demo = await spawnDemo({ PORT: '0', REDIS_URL: redis.url })
  baseUrl = demo.url
  // --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start.
  browser = await chromium.launch({ executablePath, headless: true, args: ['--no-sandbox'] })
  page = await browser.newPage({ viewport: { width: 1400, height: 720 } })
  page.on('response', (response) => {
    if (response.status() >= 400) failures.push(`${response.status()} ${response.url()}`)
  })
  page.on('requestfailed', (request) => failures.push(`failed ${request.url()}`))
  page.on('console', (message) => {
    if (message.type() === 'error') failures.push(`console: ${message.text()}`)
  })
  page.on('pageerror', (error) => failures.push(`page error: ${error.message}`))
}, 60_000)

beforeEach(() => {
  if (missingBrowser) throw missingBrowser
})

afterAll(async () => {
  await browser?.close()
  await demo?.stop()
  await redis?.stop()
})

/** The values a chart currently plots, read from Chart.js itself. */
const chartData = (id: string, dataset: number) =>
  page.evaluate(
    ([canvas, index]) => {
      const chart = (
        globalThis as unknown as {
          Chart: { getChart(id: string): { data: { datasets: { data: (number | null)[] }[] } } | undefined }
        }
      ).Chart.getChart(canvas)
      return chart?.data.datasets[index]?.data ?? []
    },
    [id, dataset] as const,
  )

const kpi = async (id: string) => Number((await page.textContent(`#${id}`))!.replace(/[^0-9.]/g, ''))

/** A toggle's state as a visitor without colour sees it: aria-pressed, its icon and its words. */
const toggle = async (id: string) => ({
  pressed: await page.getAttribute(`#${id}`, 'aria-pressed'),
  icon: await page.textContent(`#${id} .icon`),
  state: await page.textContent(`#${id} .state`),
})
/** The text of the elements an element's aria-describedby names. */
const description = async (selector: string) => {
  const ids = ((await page.getAttribute(selector, 'aria-describedby')) ?? '').split(' ').filter(Boolean)
  const texts = await Promise.all(ids.map(async (id) => (await page.textContent(`#${id}`))?.trim() ?? ''))
  return texts.join(' ')
}
const isOn = { pressed: 'true', icon: '●', state: 'ON' }
const isOff = { pressed: 'false', icon: '○', state: 'off' }
const status = () => page.textContent('#status')

/** The last `n` samples the dashboard was fed, from the page's own fetch of /api/stats. */
const fedSamples = async (n: number) => {
  const response = await fetch(`${baseUrl}/api/stats`)
  const body = (await response.json()) as {
    samples: { bypassed: number; reads: { l1: number; l2: number; miss: number }; hitRatio: object | null }[]
  }
  return body.samples.slice(-n)
}

describe('the dashboard in a real browser', () => {
  // A drill left on by a failed test would fail the next ones for its reason: switch every drill off.
  afterEach(async () => {
    if (missingBrowser) return
    const off = (path: string, body: object) =>
      fetch(`${baseUrl}${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      })
    await Promise.all([
      off('/api/admin/slowdown', { ms: 0 }),
      off('/api/admin/bypass', { on: false }),
      off('/api/admin/outage', { on: false }),
    ])
  })

  it('explains every chart and button in plain words, on the page and as a tooltip', async () => {
    await page.goto(`${baseUrl}/dashboard`)
    const figures = page.locator('figure')
    const charts = []
    for (let i = 0; i < (await figures.count()); i++) {
      const figure = figures.nth(i)
      const canvas = (await figure.locator('canvas').getAttribute('id'))!
      charts.push({
        canvas,
        tooltip: (await figure.locator('figcaption').getAttribute('title')) ?? '',
        onPage: await description(`#${canvas}`),
        visible: await figure.locator('.explain').isVisible(),
      })
    }
    const buttonIds = await page
      .locator('.controls button')
      .evaluateAll((buttons) => buttons.map((b) => b.id))
    const buttons = []
    for (const id of buttonIds) {
      buttons.push({
        id,
        tooltip: (await page.getAttribute(`#${id}`, 'title')) ?? '',
        onPage: await description(`#${id}`),
      })
    }
    const explained = { charts, buttons }
    expect(explained.charts.map((c) => c.canvas)).toEqual([
      'chart-hits',
      'chart-latency',
      'chart-source',
      'chart-stale',
      'chart-sizes',
      'chart-hot',
    ])
    for (const chart of explained.charts) {
      expect(chart.tooltip.length, chart.canvas).toBeGreaterThan(15)
      expect(chart.onPage.length, chart.canvas).toBeGreaterThan(80)
      expect(chart.visible, chart.canvas).toBe(true)
    }
    expect(explained.buttons.map((b) => b.id)).toEqual([
      'btn-load',
      'btn-slow',
      'btn-outage',
      'btn-bypass',
      'btn-purge',
    ])
    for (const button of explained.buttons) {
      expect(button.tooltip.length, button.id).toBeGreaterThan(40)
      expect(button.onPage.length, button.id).toBeGreaterThan(30)
    }
    // Toggles start off, and say so without colour.
    for (const id of ['btn-slow', 'btn-outage', 'btn-bypass']) expect(await toggle(id)).toEqual(isOff)
    expect(await status()).toContain('Drills on: none.')
    // The latency axis stays readable after a spike: logarithmic, with the loader's hard timeout drawn on it.
    const latency = await page.evaluate(() => {
      const chart = (
        globalThis as unknown as {
          Chart: {
            getChart(id: string): {
              options: { scales: { y: { type: string } } }
              data: { datasets: { label: string }[] }
            }
          }
        }
      ).Chart.getChart('chart-latency')
      return { scale: chart.options.scales.y.type, labels: chart.data.datasets.map((d) => d.label) }
    })
    expect(latency).toEqual({
      scale: 'logarithmic',
      labels: ['p50', 'p99', 'loader hard timeout (3 s)'],
    })
  })

  it('shows live charts with non-zero numbers once a load is started from its button', async () => {
    await expect.poll(() => page.textContent('#badge-l2'), { timeout: 10_000 }).toContain('ready')
    expect(await page.isHidden('#banner-l1only')).toBe(true)
    // Not a region (no DEMO_REGION): no Regions panel.
    expect(await page.isHidden('#regions-panel')).toBe(true)

    await page.click('#btn-load')
    await expect.poll(() => page.textContent('#badge-load'), { timeout: 5_000 }).toContain('sent')

    // Every chart the brief names gets live, non-zero data from the running load.
    const positive = (values: (number | null)[]) => values.some((v) => v !== null && v > 0)
    await expect
      .poll(async () => positive(await chartData('chart-source', 1)), { timeout: 15_000 })
      .toBe(true)
    await expect.poll(async () => positive(await chartData('chart-hits', 0)), { timeout: 15_000 }).toBe(true)
    await expect
      .poll(async () => positive(await chartData('chart-latency', 1)), { timeout: 15_000 })
      .toBe(true)
    await expect
      .poll(async () => positive(await chartData('chart-source', 0)), { timeout: 15_000 })
      .toBe(true)
    await expect.poll(async () => positive(await chartData('chart-sizes', 0)), { timeout: 15_000 }).toBe(true)
    await expect.poll(async () => positive(await chartData('chart-hot', 0)), { timeout: 15_000 }).toBe(true)
    await expect.poll(() => kpi('kpi-requests'), { timeout: 15_000 }).toBeGreaterThan(0)
    expect(await kpi('kpi-l1')).toBeGreaterThan(0)

    // More seconds of load so the screenshot shows curves (longer for the README's picture, so the cache has
    // warmed up), then stop it from the page.
    const update = process.env.UPDATE_SCREENSHOT === '1'
    await page.waitForTimeout(update ? 12_000 : 3_000)
    const screenshot = update ? join(root, 'docs/dashboard.png') : join(tmpdir(), 'dashboard.png')
    await page.screenshot({ path: screenshot, fullPage: true })
    expect(existsSync(screenshot)).toBe(true)

    await page.click('#btn-load')
    await expect.poll(() => page.textContent('#badge-load'), { timeout: 10_000 }).toContain('done')
  })

  it('drills Slow source and Bypass from their buttons: state in words, feedback, and no tier share while bypassed', async () => {
    await page.click('#btn-load')
    await expect.poll(() => page.textContent('#badge-load'), { timeout: 5_000 }).toContain('s left')

    await page.click('#btn-slow')
    await expect.poll(() => toggle('btn-slow'), { timeout: 5_000 }).toEqual(isOn)
    expect(await status()).toContain('Drills on: Slow source (+300 ms).')
    expect(await status()).toContain('Slow source ON: every database query now waits 300 ms.')
    await page.click('#btn-slow')
    await expect.poll(() => toggle('btn-slow'), { timeout: 5_000 }).toEqual(isOff)
    expect(await status()).toContain('Slow source off')
    expect(await status()).toContain('Drills on: none.')

    await page.click('#btn-bypass')
    await expect.poll(() => toggle('btn-bypass'), { timeout: 5_000 }).toEqual(isOn)
    expect(await status()).toContain('Drills on: Bypass cache.')
    expect(await status()).toContain('Bypass ON: every read now goes straight to the database.')
    // A whole bypassed second reaches the page: requests counted as bypassed, no cache reads, no hit ratio.
    await expect
      .poll(async () => (await chartData('chart-hits', 3)).some((v) => v === 100), { timeout: 10_000 })
      .toBe(true)
    const [l1, l2, miss, bypassed] = await Promise.all([0, 1, 2, 3].map((i) => chartData('chart-hits', i)))
    bypassed!.forEach((value, i) => {
      if (value !== 100) return
      // The grey band stands alone: no tier, and above all not L2, gets a share of a bypassed second.
      expect([l1![i], l2![i], miss![i]]).toEqual([null, null, null])
    })
    await expect.poll(() => page.textContent('#kpi-hit'), { timeout: 5_000 }).toBe('–')
    // What the page is fed: a second with more bypassed requests than cache reads has no hit ratio. (Its few cache
    // reads are lookups begun before the switch and counted after it; as a share they made the false L2 spike.)
    await expect
      .poll(
        async () => {
          const [last] = await fedSamples(1)
          return last!.bypassed > 0 && last!.hitRatio === null
        },
        { timeout: 10_000, interval: 250 },
      )
      .toBe(true)
    for (const sample of await fedSamples(60)) {
      const reads = sample.reads.l1 + sample.reads.l2 + sample.reads.miss
      if (sample.bypassed > reads) expect(sample.hitRatio).toBeNull()
    }

    await page.click('#btn-bypass')
    await expect.poll(() => toggle('btn-bypass'), { timeout: 5_000 }).toEqual(isOff)
    expect(await status()).toContain('Bypass off: reads use the cache again.')
    await page.click('#btn-load')
    await expect.poll(() => page.textContent('#badge-load'), { timeout: 10_000 }).toContain('done')
  })

  it('drills a Redis outage from its button: the circuit opens, the page keeps answering, then recovers', async () => {
    await page.click('#btn-outage')
    await expect.poll(() => toggle('btn-outage'), { timeout: 5_000 }).toEqual(isOn)
    expect(await status()).toContain('Redis outage ON')
    // Reads of keys missing from L1 go to the frozen L2; the timeouts open the circuit.
    for (let id = 500; id < 520; id++) {
      const response = await fetch(`${baseUrl}/api/tenants/initech/products/${id}`)
      expect(response.status).toBe(200)
    }
    await expect.poll(() => page.textContent('#badge-circuit'), { timeout: 10_000 }).toContain('open')
    await page.click('#btn-outage')
    await expect
      .poll(
        async () => {
          await fetch(`${baseUrl}/api/tenants/initech/products/${600 + Math.floor(Math.random() * 300)}`)
          return page.textContent('#badge-circuit')
        },
        { timeout: 15_000, interval: 500 },
      )
      .toContain('closed')
    expect(await toggle('btn-outage')).toEqual(isOff)
    expect(await status()).toContain('Redis outage off')
  })

  it('shows a Regions panel, explained in plain words, when the demo runs as a region', async () => {
    const own = await startRedis()
    const peer = await startRedis()
    const region = await spawnDemo({
      PORT: '0',
      REDIS_URL: own.url,
      DEMO_REGION: 'eu-west',
      DEMO_PEERS: `us-east=${peer.url}`,
    })
    const regionPage = await browser.newPage({ viewport: { width: 1400, height: 720 } })
    const errors: string[] = []
    regionPage.on('pageerror', (error) => errors.push(error.message))
    regionPage.on('console', (message) => {
      if (message.type() === 'error') errors.push(message.text())
    })
    try {
      await regionPage.goto(`${region.url}/dashboard`)
      await expect.poll(() => regionPage.isVisible('#regions-panel'), { timeout: 10_000 }).toBe(true)
      expect(await regionPage.textContent('#regions-self')).toContain('eu-west')
      expect(await regionPage.getAttribute('#regions-title', 'title')).toMatch(/one region of several/)
      expect(await regionPage.textContent('#explain-regions')).toMatch(/Relay lag.*backlog.*split/s)
      // One row per peer; no us-east process runs, so the state reads connected at first, then split.
      await expect
        .poll(() => regionPage.textContent('#regions-peers tr'), { timeout: 10_000 })
        .toMatch(/^us-east(connected|split)/)
      const headers = regionPage.locator('#regions-panel th')
      for (let i = 0; i < (await headers.count()); i++) {
        expect(await headers.nth(i).getAttribute('title')).toBeTruthy()
      }
      expect(errors).toEqual([])
    } finally {
      await regionPage.close()
      await region.stop()
      await own.stop()
      await peer.stop()
    }
  })

  it('got no 404 (the icon included), no failed request and no console error on the page', async () => {
    expect(await page.getAttribute('link[rel="icon"]', 'href')).toBe('/favicon.svg')
    expect(failures).toEqual([])
  })
})

describe('the load script', () => {
  it('drives the running demo with the cache on and off, and the cache takes reads off the database', async () => {
    const { stdout } = await promisify(execFile)(
      process.execPath,
      [
        '--import',
        'tsx',
        'examples/demo/load.ts',
        ...['--url', baseUrl, '--duration', '1', '--warmup', '1', '--connections', '4', '--json'],
      ],
      { cwd: root, timeout: 30_000 },
    )
    const { phases } = JSON.parse(stdout.trim().split('\n').at(-1)!) as {
      phases: { phase: string; requestsPerSecond: number; sourceQueriesPerSecond: number; non2xx: number }[]
    }
    const [on, off] = phases
    expect(on!.phase).toBe('cache on')
    expect(off!.phase).toBe('cache off (bypass)')
    for (const phase of phases) {
      expect(phase.requestsPerSecond).toBeGreaterThan(0)
      expect(phase.non2xx).toBe(0)
    }
    // Counts, not speed: bypassed, every read queries the database (pages twice); cached, most do not.
    const queriesPerRequest = (p: typeof on) => p!.sourceQueriesPerSecond / p!.requestsPerSecond
    expect(queriesPerRequest(off)).toBeGreaterThan(0.9)
    expect(queriesPerRequest(on)).toBeLessThan(queriesPerRequest(off))
  })
})
