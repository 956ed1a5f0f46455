// Regressions found in review, against a real redis-server with faults injected.
import { createServer, type Socket } from 'node:net'
import { createCache, type L2Store } from 'stratacache'
import { redisStore } from 'stratacache/redis'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { freePort, startRedis, type RedisServer } from '../helpers/redis-server.js'
import { sleep, timed, within } from './support.js'

let redis: RedisServer
const closers: (() => Promise<void>)[] = []
beforeAll(async () => {
  redis = await startRedis()
})
afterAll(async () => {
  await redis.stop()
})
afterEach(async () => {
  redis.resume()
  await Promise.all(closers.splice(0).map((close) => close()))
})

describe('review regressions with a real Redis', () => {
  it('close() settles while Redis is frozen, and a get in flight keeps its L2 timeout', async () => {
    const cache = createCache({
      service: 'regress-close',
      l2: redisStore({ url: redis.url, connectTimeout: 300 }),
    })
    const ns = cache.namespace('item', { key: 'item:{id}', ttl: '1m', load: () => 'loaded' })
    await cache.connect()
    redis.pause()
    const get = timed(() => ns.get({ id: 1 }))
    const closed = await timed(() => within(cache.close(), 3_000, 'close()'))
    expect(closed.ok).toBe(true)
    const got = await within(get, 3_000, 'get')
    expect(got.ok && got.value).toBe('loaded')
  })

  it('a get racing clear() does not bring the cleared value back into L1', async () => {
    const real = redisStore({ url: redis.url })
    // A fault wrapper around the real store: the first SCAN waits until the test lets it go.
    let releaseScan!: () => void
    const scanGate = new Promise<void>((resolve) => (releaseScan = resolve))
    const gated = new Proxy(real, {
      get(target, property) {
        if (property === 'scan') {
          return async (...args: Parameters<L2Store['scan']>) => {
            await scanGate
            return target.scan(...args)
          }
        }
        const value: unknown = Reflect.get(target, property)
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value
      },
    }) as L2Store
    const cache = createCache({ service: 'regress-clear', l2: gated, timeouts: { l2: 2_000 } })
    closers.push(() => cache.close())
    let version = 'old'
    const ns = cache.namespace('item', { key: 'item:{id}', ttl: '1h', load: () => version })
    await cache.connect()
    expect(await ns.get({ id: 1 })).toBe('old')
    await expect.poll(() => redis.command('EXISTS', ns.key({ id: 1 }))).toBe(':1\r\n')

    const clearing = ns.clear()
    // This get reads L2 before the UNLINK and would have put "old" back into L1.
    expect(await ns.get({ id: 1 })).toBe('old')
    version = 'new'
    releaseScan()
    expect(await clearing).toBe(1)
    expect(await ns.peek({ id: 1 })).toBeUndefined()
    expect(await ns.get({ id: 1 })).toBe('new')
  })

  it('a connect() that gave up leaves only the backoff reconnect loop, not a fast retry loop', async () => {
    // A TCP server that drops every connection: each attempt is counted.
    let attempts = 0
    const sockets = new Set<Socket>()
    const dropper = createServer((socket) => {
      attempts++
      sockets.add(socket)
      socket.destroy()
    })
    const port = await freePort()
    await new Promise<void>((resolve) => dropper.listen(port, '127.0.0.1', resolve))
    closers.push(() => new Promise((resolve) => dropper.close(() => resolve())))
    const cache = createCache({
      service: 'regress-connect',
      l2: redisStore({ url: `redis://127.0.0.1:${port}`, maxReconnectDelay: 400 }),
      timeouts: { connect: 200 },
    })
    closers.push(() => cache.close())
    const connect = await timed(() => cache.connect())
    expect(connect.ok).toBe(false)
    const before = attempts
    await sleep(1_500)
    // Backoff 50, 100, 200, 400, 400… ms: about 5 attempts in 1.5 s; the fast loop made one every 50-100 ms.
    expect(attempts - before).toBeLessThanOrEqual(8)
  })
})
