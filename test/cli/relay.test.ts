// `stratacache relay`: a process of the built CLI that only relays, for a region whose app processes do not.
import { execFile } from 'node:child_process'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createCache, type Cache } from 'stratacache'
import { redisStore } from 'stratacache/redis'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { startRedis, type RedisServer } from '../helpers/redis-server.js'

const root = fileURLToPath(new URL('../..', import.meta.url))
const bin = join(root, 'dist/cli/main.js')
let eu: RedisServer
let us: RedisServer
const caches: Cache[] = []

beforeAll(async () => {
  eu = await startRedis()
  us = await startRedis()
})
afterAll(async () => {
  await eu.stop()
  await us.stop()
})
afterEach(async () => {
  await Promise.all(caches.splice(0).map((cache) => cache.close()))
})

function run(
  args: string[],
  env: Record<string, string>,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [bin, ...args],
      { cwd: root, env: { ...process.env, ...env }, timeout: 20_000 },
      (error, stdout, stderr) =>
        resolve({
          code: error === null ? 0 : typeof error.code === 'number' ? error.code : -1,
          stdout,
          stderr,
        }),
    )
  })
}

function app(region: 'eu' | 'us', relay: boolean, rows: Map<string, number>) {
  const [self, peer] = region === 'eu' ? [eu, us] : [us, eu]
  const cache = createCache({
    service: 'relaycli',
    logger: false,
    l2: redisStore({ url: self.url }),
    region,
    regions: {
      peers: [{ region: region === 'eu' ? 'us' : 'eu', l2: redisStore({ url: peer.url }) }],
      heartbeat: '50ms',
      splitAfter: '400ms',
      relay,
    },
  })
  caches.push(cache)
  const item = cache.namespace('item', {
    key: 'item:{id}',
    ttl: '1h',
    load: ({ id }) => rows.get(String(id)) ?? 0,
  })
  return { cache, item }
}

describe('stratacache relay', () => {
  it("relays the other region's invalidations for app processes that do not relay, and prints its state", async () => {
    const rows = new Map([['a', 1]])
    const euApp = app('eu', true, rows)
    const usApp = app('us', false, rows)
    await Promise.all([euApp.cache.connect(), usApp.cache.connect()])
    expect(await usApp.item.get({ id: 'a' })).toBe(1)
    const relay = run(
      [
        'relay',
        '--config',
        'test/fixtures/cli/relay-config.mjs',
        '--for',
        '2s',
        '--every',
        '200ms',
        '--json',
      ],
      {
        RELAY_URL: us.url,
        RELAY_REGION: 'us',
        RELAY_PEER: 'eu',
        RELAY_PEER_URL: eu.url,
      },
    )
    rows.set('a', 2)
    await euApp.item.delete({ id: 'a' })
    const started = performance.now()
    while ((await usApp.item.get({ id: 'a' })) !== 2) {
      if (performance.now() - started > 5_000) throw new Error('the relay process did not relay')
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
    const r = await relay
    expect(r.code).toBe(0)
    const states = r.stdout
      .trim()
      .split('\n')
      .map(
        (line) =>
          JSON.parse(line) as {
            region: string
            relaying: boolean
            peers: Record<string, { relayed: number }>
          },
      )
    expect(states.length).toBeGreaterThanOrEqual(3)
    const last = states.at(-1)!
    expect(last.region).toBe('us')
    expect(last.relaying).toBe(true)
    expect(last.peers.eu!.relayed).toBeGreaterThan(0)
  })

  it('refuses a config module whose cache has no regions, and a bad duration', async () => {
    const none = await run(['relay', '--config', 'test/fixtures/cli/contract-config.mjs', '--for', '1s'], {})
    expect(none.code).toBe(3)
    expect(none.stderr).toMatch(/no `region` and `regions`/)
    const bad = await run(['relay', '--config', 'test/fixtures/cli/relay-config.mjs', '--every', 'soon'], {})
    expect(bad.code).toBe(2)
    expect(bad.stderr).toMatch(/--every must be a duration/)
  })
})
