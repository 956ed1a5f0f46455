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
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { spawnDemo, type RunningDemo } from '../../examples/demo/spawn-demo.js'
import { freePort, startRedis, type RedisServer } from '../helpers/redis-server.js'

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
  const port = await freePort()
  demo = await spawnDemo({ PORT: String(port), REDIS_URL: redis.url })
  baseUrl = demo.url
  // --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start.
  browser = await chromium.launch({ executablePath, headless: true, args: ['--no-sandbox'] })
  page = await browser.newPage({ viewport: { width: 1400, height: 720 } })
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

describe('the dashboard in a real browser', () => {
  it('shows live charts with non-zero numbers once a load is started from its button', async () => {
    await page.goto(`${baseUrl}/dashboard`)
    await expect.poll(() => page.textContent('#badge-l2'), { timeout: 10_000 }).toContain('ready')
    expect(await page.isHidden('#banner-l1only')).toBe(true)

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

  it('drills a Redis outage from its button: the circuit opens, the page keeps answering, then recovers', async () => {
    await page.click('#btn-outage')
    await expect.poll(() => page.getAttribute('#btn-outage', 'aria-pressed'), { timeout: 5_000 }).toBe('true')
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
