// Redis comes back with older data: restarted from a snapshot (RDB) taken before a write. Its entries were
// invalidated since, and no version, fence or bus message can tell; the server's run_id can.
import type { Logger } from 'stratacache'
import { redisStore } from 'stratacache/redis'
import { afterEach, describe, expect, it } from 'vitest'
import { startRedis, type RedisServer } from '../helpers/redis-server.js'
import { integerReply, productProcess } from './support.js'

const SERVICE = 'chaos-restore'
const GENERATION_KEY = `${SERVICE}:product:v1#gen`

const closers: (() => Promise<unknown>)[] = []
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close()
})

async function redisServer(): Promise<RedisServer> {
  const redis = await startRedis()
  closers.push(() => redis.stop())
  return redis
}

/** One process: a cache on `redis` and its product namespace, reading `source`. */
function processOn(redis: RedisServer, source: Map<number, string>, logger?: Logger) {
  // A short reconnection backoff keeps the test short; the behaviour is the same with the defaults.
  const l2 = redisStore({ url: redis.url, maxReconnectDelay: 100 })
  return productProcess({ service: SERVICE, l2, logger: logger ?? false }, source, closers)
}

/** A logger that keeps its lines. */
function recording() {
  const lines: { level: string; message: string }[] = []
  const at =
    (level: string) =>
    (_fields: unknown, message: string): void => {
      lines.push({ level, message })
    }
  const logger: Logger = { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') }
  return { logger, lines }
}

/** Waits until L2 holds the entry for `id` (the fill after a load is in the background). */
async function stored(
  redis: RedisServer,
  process: { product: { key(params: { id: number }): string } },
  id: number,
) {
  const key = process.product.key({ id })
  await expect.poll(async () => integerReply(await redis.command('EXISTS', key))).toBe(1)
}

describe('Redis restarted from a snapshot taken before a write', () => {
  it('a process started afterwards loads the written value instead of the entry the snapshot brought back', async () => {
    const redis = await redisServer()
    const source = new Map([[1, 'v1']])
    const a = await processOn(redis, source)
    expect(await a.product.get({ id: 1 })).toBe('v1')
    await stored(redis, a, 1)
    await redis.command('SAVE')
    // Cache-aside: the source changes, then the entry is dropped everywhere. The snapshot still has 'v1'.
    source.set(1, 'v2')
    await a.product.delete({ id: 1 })
    await a.cache.close()
    await redis.kill()
    await redis.restart() // loads the snapshot: the 'v1' entry is back in L2

    const { logger, lines } = recording()
    const b = await processOn(redis, source, logger)
    expect(await b.product.get({ id: 1 })).toBe('v2')
    expect(b.loads.count).toBe(1)
    expect(b.product.stats().l2Restores).toBe(1)
    expect(
      lines.filter((line) => line.level === 'warn' && /restarted from a snapshot/.test(line.message)),
    ).toHaveLength(1)
    // Raised past the snapshot's generation (0), once.
    expect(await redis.command('GET', GENERATION_KEY)).toBe('$1\r\n1\r\n')
  })

  it('processes that were running move to one new generation, raised once, and read the written value', async () => {
    const redis = await redisServer()
    const source = new Map([[1, 'v1']])
    const a = await processOn(redis, source)
    const b = await processOn(redis, source)
    expect(await a.product.get({ id: 1 })).toBe('v1')
    await stored(redis, a, 1)
    expect(await b.product.get({ id: 1 })).toBe('v1') // from L2 into B's L1
    await redis.command('SAVE')
    source.set(1, 'v2')
    await a.product.delete({ id: 1 }) // drops B's L1 copy through the bus too
    await redis.kill()
    await redis.restart()

    // Both reconnect; one of them finds the restore and raises the generation, the other reads it raised.
    await expect
      .poll(() => a.product.stats().l2Restores + b.product.stats().l2Restores, { timeout: 5_000 })
      .toBe(1)
    expect(await redis.command('GET', GENERATION_KEY)).toBe('$1\r\n1\r\n')
    await expect.poll(() => a.product.get({ id: 1 }), { timeout: 5_000 }).toBe('v2')
    await expect.poll(() => b.product.get({ id: 1 }), { timeout: 5_000 }).toBe('v2')
  })

  it('a restart that kept no data, and a dropped connection, move no generation and log no restore', async () => {
    const redis = await redisServer()
    const source = new Map([[1, 'v1']])
    const { logger, lines } = recording()
    const a = await processOn(redis, source, logger)
    expect(await a.product.get({ id: 1 })).toBe('v1')
    await stored(redis, a, 1)

    // The connection dropped by the server: the same server answers again.
    await redis.command('CLIENT', 'KILL', 'TYPE', 'normal')
    await expect.poll(() => a.cache.stats().l2?.status).toBe('ready')
    expect(await a.product.get({ id: 1 })).toBe('v1')

    // Restarted empty (no snapshot): nothing older came back, and the generation starts again at 0.
    await redis.kill()
    await redis.restart()
    await expect.poll(async () => a.product.get({ id: 1 }), { timeout: 5_000 }).toBe('v1')
    expect(a.product.stats().l2Restores).toBe(0)
    expect(lines.filter((line) => /restarted from a snapshot/.test(line.message))).toEqual([])
    expect(await redis.command('GET', GENERATION_KEY)).toBe('$-1\r\n')
  })
})
