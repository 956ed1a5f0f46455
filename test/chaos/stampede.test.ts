// Cross-process single-flight through the L2 lock: of 4 processes missing one cold key, one loads it; a dead holder
// or a lost announcement costs bounded latency.
import { fileURLToPath } from 'node:url'
import { createCache } from 'stratacache'
import { redisStore } from 'stratacache/redis'
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { startRedis, type RedisServer } from '../helpers/redis-server.js'
import { startChild, type Child, type ChildExit } from './fixtures/start-child.js'
import type { StampedeReport } from './fixtures/stampede-child.js'
import { deferred } from '../helpers/deferred.js'
import { outcome, rawClient, timed, within } from './support.js'

const childScript = fileURLToPath(new URL('./fixtures/stampede-child.ts', import.meta.url))
const PROCESSES = 4
const GETS = 250
/** The namespace's `lock.ttl` in the child. */
const LOCK_TTL_MS = 1_000
const CHILD_TIMEOUT_MS = 20_000

let redis: RedisServer
const children: Child[] = []
beforeAll(async () => {
  redis = await startRedis()
})
afterAll(async () => {
  await redis.stop()
})
beforeEach(async () => {
  await redis.command('FLUSHALL')
})
const closers: (() => Promise<void>)[] = []
afterEach(async () => {
  await Promise.all(closers.splice(0).map((close) => close()))
  for (const child of children) child.kill()
  await Promise.all(children.splice(0).map((child) => child.exited))
})

/** Starts the children and waits until each is connected and waiting for "go". */
async function startChildren(id: string, counter: string, loaderMs: number): Promise<Child[]> {
  const args = Object.entries({ url: redis.url, id, counter, 'loader-ms': loaderMs, gets: GETS }).flatMap(
    ([name, value]) => [`--${name}`, String(value)],
  )
  const started = Array.from({ length: PROCESSES }, () => startChild(childScript, args, CHILD_TIMEOUT_MS))
  children.push(...started)
  await within(Promise.all(started.map((c) => c.waitForLine((l) => l === 'READY'))), 15_000, 'children ready')
  return started
}

function reportOf(exit: ChildExit): StampedeReport {
  expect(exit.timedOut, `child did not exit; stderr: ${exit.stderr}`).toBe(false)
  expect(exit.code, exit.stderr).toBe(0)
  const line = exit.stdout.split('\n').find((l) => l.startsWith('{'))
  expect(line, `no report; stdout: ${exit.stdout}; stderr: ${exit.stderr}`).toBeDefined()
  return JSON.parse(line!) as StampedeReport
}

/** The children's loader-call counter: a bulk string reply such as `$1\r\n2\r\n`, or `$-1` (0) when never set. */
async function loaderCalls(counter: string): Promise<number> {
  const reply = await redis.command('GET', counter)
  return reply.startsWith('$-1') ? 0 : Number(reply.split('\r\n')[1])
}

describe('a cold key read by several processes at once', () => {
  it('calls the loader once in total for 4 processes x 250 concurrent gets of one cold key', async () => {
    const counter = 'test:loader-calls:cold'
    // The holder's load lasts long enough (1.5 s, its lock kept alive past its 1 s TTL) for every child to ask while
    // it runs, even one scheduled late on the 2 shared cores: a child asking after the value landed would find it
    // in L2, and would not be a waiter.
    const started = await startChildren('cold', counter, 1_500)
    for (const child of started) child.send('go')
    const exits = await within(Promise.all(started.map((c) => c.exited)), 15_000, 'children exit')
    const reports = exits.map(reportOf)

    expect(await loaderCalls(counter)).toBe(1)
    for (const report of reports) {
      expect(report).toMatchObject({ gets: GETS, rejected: 0, errors: [] })
      expect(report.values).toHaveLength(1)
    }
    // One value across processes: the one the single loader call returned.
    expect(new Set(reports.map((r) => r.values[0])).size).toBe(1)
    const holders = reports.filter((r) => r.stats.loads === 1)
    const waiters = reports.filter((r) => r.stats.loads === 0)
    expect(holders.map((r) => r.pid)).toEqual([JSON.parse(reports[0]!.values[0]!).loadedBy])
    expect(waiters).toHaveLength(PROCESSES - 1)
    for (const waiter of waiters) {
      expect(waiter.stats.lockWaits, JSON.stringify(waiter)).toBeGreaterThanOrEqual(1)
      // Woken by the announcement, the waiter took the holder's value from L2 without loading; each of its reads
      // waited for that load, so each is a miss (one per read, never both a miss and an L2 hit).
      expect(waiter.stats, JSON.stringify(waiter)).toMatchObject({ l2Hits: 0, misses: GETS })
    }
  })

  it('a holder killed mid-load costs at most one lock TTL: the others get the value within lock ttl + loader time', async () => {
    const counter = 'test:loader-calls:killed-holder'
    const loaderMs = 1_500
    const started = await startChildren('killed-holder', counter, loaderMs)
    const firstLoading = new Promise<Child>((resolve) => {
      for (const child of started) child.onLine((line) => line === 'LOADING' && resolve(child))
    })
    for (const child of started) child.send('go')
    const holder = await within(firstLoading, 10_000, 'a child to start loading')
    holder.kill()

    const survivors = started.filter((c) => c !== holder)
    const exits = await within(Promise.all(survivors.map((c) => c.exited)), 15_000, 'survivors exit')
    expect((await holder.exited).signal).toBe('SIGKILL')
    const reports = exits.map(reportOf)

    // The dead holder's call, and one more by the survivor that took the lock after it expired.
    expect(await loaderCalls(counter)).toBe(2)
    for (const report of reports) {
      expect(report).toMatchObject({ gets: GETS, rejected: 0, errors: [] })
      expect(report.values).toHaveLength(1)
      // Lock TTL (the dead holder's lock expiring) + the dead load + the second load, with slack for 2 shared cores.
      expect(report.maxMs, JSON.stringify(report)).toBeLessThan(LOCK_TTL_MS + 2 * loaderMs + 1_500)
    }
    expect(new Set(reports.map((r) => r.values[0])).size).toBe(1)
    const loadedBy = JSON.parse(reports[0]!.values[0]!).loadedBy
    expect(survivors.map((c) => c.pid)).toContain(loadedBy)
    expect(reports.filter((r) => r.stats.loads === 1).map((r) => r.pid)).toEqual([loadedBy])
  })
})

describe('a lock waiter whose pub/sub connection dropped', () => {
  it('gets the value soon after the holder stores it, not a lock TTL later', async () => {
    // Two processes' caches (each with its own connections), with the default lock TTL spelled out. A load lasts
    // until the test opens its gate: once the other side waits for the lock, however late it was scheduled (had the
    // value landed first, it would have read it from L2 without waiting).
    let gate = deferred<void>()
    const side = async (name: string) => {
      const cache = createCache({ service: 'stampede', l2: redisStore({ url: redis.url }) })
      closers.push(() => cache.close())
      await cache.connect()
      return cache.namespace('blip', {
        key: 'item:{id}',
        ttl: '1m',
        lock: { ttl: '5s', wait: '10s' },
        load: async ({ id }) => {
          await gate.promise
          return `${String(id)} loaded by ${name}`
        },
      })
    }
    const [a, b] = await Promise.all([side('a'), side('b')])
    const lockWaits = () => a.stats().lockWaits + b.stats().lockWaits
    // One wait first, so both subscriber connections are up and subscribed.
    const warm = Promise.all([a.get({ id: 'warm' }), b.get({ id: 'warm' })])
    await expect.poll(lockWaits).toBe(1)
    gate.resolve()
    await warm

    // Drop the pub/sub connections only, and keep them from reconnecting: Redis refuses new connections while
    // the main connections (and this one) stay up. The holder's announcement is then lost.
    const raw = await rawClient(redis.url)
    closers.push(() => raw.close())
    const maxClients = String((await raw.configGet('maxclients')).maxclients)
    closers.unshift(async () => void (await raw.configSet('maxclients', maxClients)))
    await raw.configSet('maxclients', '1')
    expect(await raw.sendCommand(['CLIENT', 'KILL', 'TYPE', 'pubsub'])).toBe(2)

    gate = deferred<void>()
    const gets = Promise.all([
      timed(() => a.get({ id: 'after-blip' })),
      timed(() => b.get({ id: 'after-blip' })),
    ])
    await expect.poll(lockWaits).toBe(2)
    gate.resolve()
    const landing = performance.now()
    const [first, second] = await gets
    const waited = performance.now() - landing
    expect([first, second].map(outcome)).toEqual([
      { resolvedWith: expect.stringMatching(/^after-blip loaded by/) },
      { resolvedWith: expect.stringMatching(/^after-blip loaded by/) },
    ])
    // The holder stores its value and releases its lock once the gate opens: the waiter, deaf to the announcement,
    // must find the value soon after (it rereads L2 every 250 ms), not sleep out the lock's 5 s TTL. The bound
    // leaves room for a loaded machine, and catches that sleep.
    expect(waited).toBeLessThan(3_000)
  })
})
