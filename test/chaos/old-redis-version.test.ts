// A server older than Redis 7.0: reported by connect() and the logger as ERR_STRATA_L2_UNSUPPORTED, not an outage.
import { createCache, type CacheOptions } from 'stratacache'
import { redisStore } from 'stratacache/redis'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { startRedis, type RedisServer } from '../helpers/redis-server.js'
import { activeMs, outcome, timed } from './support.js'
import { startProxy, type TcpProxy } from './tcp-proxy.js'

let redis: RedisServer
const closers: (() => Promise<unknown>)[] = []
beforeAll(async () => {
  redis = await startRedis()
})
afterAll(async () => {
  await redis.stop()
})
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close()
})

function recordingLogger() {
  const lines: { level: string; fields: Record<string, unknown>; message: string }[] = []
  const at = (level: string) => (fields: object, message: string) =>
    void lines.push({ level, fields: fields as Record<string, unknown>, message })
  return { lines, logger: { info: at('info'), warn: at('warn'), error: at('error') } }
}

/** Redis 7.0.x, through a proxy that makes it describe itself as 6.0.x in INFO (same length, so RESP stays valid). */
async function redisClaiming6(): Promise<TcpProxy> {
  const proxy = await startProxy(redis.port, {
    rewrite: (chunk) =>
      Buffer.from(chunk.toString('latin1').replace(/redis_version:7\./g, 'redis_version:6.'), 'latin1'),
  })
  closers.push(() => proxy.close())
  return proxy
}

function newCache(url: string, options: Partial<CacheOptions> = {}) {
  const log = recordingLogger()
  const cache = createCache({ service: 'version', l2: redisStore({ url }), logger: log.logger, ...options })
  closers.push(() => cache.close())
  return { cache, log }
}

describe('the Redis version', () => {
  it('connects to the Redis 7.0 of the test suite without complaint', async () => {
    expect(await redis.command('INFO', 'server')).toMatch(/redis_version:7\.0\./)
    const { cache, log } = newCache(redis.url)
    await cache.connect()
    expect(log.lines.filter((line) => line.level === 'error')).toEqual([])
    expect(cache.stats().l2).toMatchObject({ status: 'ready', circuit: 'closed' })
  })

  it('reports an older server through connect() and the logger, and does not count it as an outage', async () => {
    const proxy = await redisClaiming6()
    const { cache, log } = newCache(proxy.url)
    const connected = await timed(() => cache.connect())
    expect(outcome(connected)).toMatchObject({
      code: 'ERR_STRATA_L2_UNSUPPORTED',
      server: 'redis',
      version: expect.stringMatching(/^6\.0\./) as unknown,
      minimum: '7.0',
    })
    // At once, not after the 2 s connect timeout (the default): waiting longer would not change the answer. Less the
    // time the event loop was blocked: a stall of this process (which also runs the proxy) delays connect() as much.
    expect(activeMs(connected)).toBeLessThan(1_000)
    const errors = log.lines.filter((line) => line.level === 'error')
    expect(errors).toHaveLength(1)
    expect(errors[0]!.message).toMatch(/needs Redis 7\.0 or newer/)
    expect(errors[0]!.fields).toMatchObject({ service: 'version', minimum: '7.0' })
    // Asked again, connect() says the same; the circuit is closed and Redis still serves reads.
    await expect(cache.connect()).rejects.toMatchObject({ code: 'ERR_STRATA_L2_UNSUPPORTED' })
    expect(cache.stats().l2).toMatchObject({ status: 'ready', circuit: 'closed', failures: 0 })
    const writer = newCache(redis.url).cache.namespace('item', {
      key: 'i:{id}',
      ttl: '1m',
      load: () => 'stored',
    })
    await writer.get({ id: 1 })
    let loads = 0
    const ns = cache.namespace('item', { key: 'i:{id}', ttl: '1m', load: () => (loads++, 'loaded') })
    await expect.poll(() => ns.get({ id: 1 })).toBe('stored')
    expect(loads).toBe(0)
  })
})
