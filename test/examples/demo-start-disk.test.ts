// `npm start` on a machine without Redis: examples/demo/main.ts itself, in a child process, with REDIS_URL=off (the
// demo then never probes 127.0.0.1:6379) and PGlite, so it runs on the disk store. A second demo on the same host
// gets a store of its own and leaves the first one's alone.
import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import type { ProductView } from '../../examples/demo/catalog-db.js'
import { spawnDemo, type RunningDemo } from '../../examples/demo/spawn-demo.js'

interface Stats {
  mode: { l2: string | null; l2Kind: string | null; l2Status: string | null }
  totals: { sourceQueries: number; l1Hits: number; l2Hits: number; misses: number }
}

/** No Redis (not even a probe of 6379) and no PostgreSQL: the disk store beside PGlite, under `root`. */
async function startWithoutRedis(root: string): Promise<RunningDemo> {
  // Port 0: the demo binds a free port itself and prints its address (spawnDemo reads it), so no other process can
  // take the port between a check here and the demo's bind, seconds later.
  const demo = await spawnDemo(
    { PORT: '0', REDIS_URL: 'off', DATABASE_URL: '', DEMO_DISK_PATH: root },
    30_000,
  )
  // spawnDemo resolves on the first line; the startup summary ends with the `try:` line.
  await vi.waitFor(() => expect(demo.output()).toMatch(/\n\s+try:/), { timeout: 5_000 })
  return demo
}

const diskPathOf = (demo: RunningDemo): string => {
  const match = /L2:\s+disk store in (\S+),/.exec(demo.output())
  if (!match) throw new Error(`the demo did not say it runs on the disk store:\n${demo.output()}`)
  return match[1]!
}

const stats = async (demo: RunningDemo): Promise<Stats> =>
  (await (await fetch(`${demo.url}/api/stats`)).json()) as Stats

let root: string
let first: RunningDemo
/** The directory a killed demo left behind: its pid no longer runs. */
let leftover: string

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'strata-demo-start-disk-'))
  // The pid of a process that has exited (not reused within the test).
  const gone = spawnSync(process.execPath, ['-e', '']).pid
  leftover = join(root, `pglite-${gone}`)
  mkdirSync(leftover)
  first = await startWithoutRedis(root)
}, 40_000)

afterAll(async () => {
  await first?.stop()
  if (root !== undefined) rmSync(root, { recursive: true, force: true })
})

describe('npm start without Redis', () => {
  it('says it runs on the disk store, and serves a product read twice, the second from its cache', async () => {
    expect(first.output()).toMatch(/L2:\s+disk store in .*this process's own/)
    expect(first.output()).not.toMatch(/Redis at/)
    const path = diskPathOf(first)
    expect(path).toMatch(/pglite-\d+$/)
    expect(path.startsWith(root)).toBe(true)

    const url = `${first.url}/api/tenants/acme/products/42?locale=de&currency=EUR`
    const before = await stats(first)
    expect(before.mode).toMatchObject({ l2: `disk ${path}`, l2Kind: 'disk', l2Status: 'ready' })
    const one = await fetch(url)
    expect(one.status).toBe(200)
    const product = (await one.json()) as ProductView
    const afterFirst = await stats(first)
    expect(afterFirst.totals.sourceQueries).toBeGreaterThan(before.totals.sourceQueries)

    const two = await fetch(url)
    expect(two.status).toBe(200)
    expect(await two.json()).toEqual(product)
    const afterSecond = await stats(first)
    expect(afterSecond.totals.sourceQueries).toBe(afterFirst.totals.sourceQueries)
    expect(afterSecond.totals.l1Hits).toBe(afterFirst.totals.l1Hits + 1)
  })

  it('gives a second demo of the host a store of its own, removed when it stops, and keeps the first one live', async () => {
    const firstPath = diskPathOf(first)
    // The first start removed the directory of a demo that no longer runs.
    expect(existsSync(leftover)).toBe(false)
    const second = await startWithoutRedis(root)
    let secondPath: string
    try {
      secondPath = diskPathOf(second)
      expect(secondPath).not.toBe(firstPath)
      expect(existsSync(firstPath)).toBe(true)
      const read = await fetch(`${second.url}/api/tenants/acme/products/43?locale=en&currency=EUR`)
      expect(read.status).toBe(200)
    } finally {
      await second.stop()
    }
    expect(existsSync(secondPath)).toBe(false)
    expect(existsSync(firstPath)).toBe(true)

    // The first demo's store still works: a new product goes through the source once, then comes from its cache.
    const url = `${first.url}/api/tenants/acme/products/44?locale=en&currency=EUR`
    expect((await fetch(url)).status).toBe(200)
    const loaded = await stats(first)
    expect((await fetch(url)).status).toBe(200)
    expect((await stats(first)).totals.sourceQueries).toBe(loaded.totals.sourceQueries)
    expect((await stats(first)).mode.l2Status).toBe('ready')
  }, 40_000)
})
