import { channelNames, createCache, type Logger, type SloMessage } from 'stratacache'
import { redisStore } from 'stratacache/redis'
import { describe, expect, it } from 'vitest'
import { fakeClock } from '../helpers/fake-clock.js'
import { startRedis } from '../helpers/redis-server.js'
import { redisSuite } from '../helpers/suite.js'
import { recordChannel, sleep } from '../chaos/support.js'

const suite = redisSuite()

/** A pino-shaped logger that records its calls. */
function recordingLogger() {
  const lines: { level: string; fields: object; message: string }[] = []
  const at = (level: string) => (fields: object, message: string) =>
    void lines.push({ level, fields, message })
  const logger: Logger = { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') }
  return { logger, lines }
}

describe('service level objectives', () => {
  it('reports read p99 over the window, publishes the breach and the recovery, and logs them', async () => {
    const clock = fakeClock()
    const { logger, lines } = recordingLogger()
    const events = recordChannel<SloMessage>(channelNames.slo)
    suite.closers.push(async () => events.stop())
    const cache = createCache({ service: 'slo', l2: redisStore({ url: suite.redis.url }), clock, logger })
    suite.closers.push(() => cache.close())
    const ns = cache.namespace('product', {
      key: 'product:{id}',
      ttl: '1h',
      slo: { readP99: '10ms', window: '1m' },
      load: async ({ id }) => {
        await sleep(15)
        return { id }
      },
    })
    expect(cache.slo()).toEqual({
      product: {
        namespace: 'product',
        windowMs: 60_000,
        reads: 0,
        readP99Ms: { objective: 10, actual: 0, ok: true },
        staleReads: undefined,
        ok: true,
      },
    })
    // 10 misses at 15 ms+: the 99th percentile is a miss.
    for (let id = 0; id < 10; id++) await ns.get({ id })
    const breached = cache.slo().product!
    expect(breached).toMatchObject({ reads: 10, ok: false, readP99Ms: { objective: 10, ok: false } })
    expect(breached.readP99Ms!.actual).toBeGreaterThanOrEqual(25)
    expect(events.messages).toEqual([{ service: 'slo', report: breached }])
    expect(lines.filter((l) => l.message.includes('breached'))).toHaveLength(1)

    // Evaluating again without a change publishes nothing.
    cache.slo()
    expect(events.messages).toHaveLength(1)

    // The misses slide out of the window (which spans one to 1.1 windows, sampled by evaluations: the cache's
    // timer evaluates every second); then 2,000 L1 hits: the 99th percentile is an L1 hit.
    clock.advance(61_000)
    cache.slo()
    clock.advance(61_000)
    for (let i = 0; i < 2_000; i++) await ns.get({ id: i % 10 })
    const recovered = cache.slo().product!
    expect(recovered).toMatchObject({ reads: 2_000, ok: true, readP99Ms: { actual: 0.05, ok: true } })
    expect(events.messages.map((m) => m.report.ok)).toEqual([false, true])
    expect(lines.filter((l) => l.message.includes('met again'))).toHaveLength(1)
  })

  it('reports the share of stale reads', async () => {
    const clock = fakeClock()
    const cache = createCache({ service: 'slo-stale', clock, random: () => 0 })
    suite.closers.push(() => cache.close())
    let version = 0
    const ns = cache.namespace('price', {
      key: 'price:{id}',
      ttl: '1s',
      staleFor: '1m',
      slo: { staleReadsMax: 0.1 },
      load: ({ id }) => ({ id, version: ++version }),
    })
    for (let i = 0; i < 9; i++) await ns.get({ id: 1 }) // 1 miss, 8 fresh hits
    clock.advance(2_000)
    await ns.get({ id: 1 }) // stale, refreshed in the background
    expect(cache.slo().price).toMatchObject({
      reads: 10,
      staleReads: { objective: 0.1, actual: 0.1, ok: true },
      ok: true,
    })
    await sleep(5)
    clock.advance(2_000)
    await ns.get({ id: 1 }) // stale again
    expect(cache.slo().price).toMatchObject({ reads: 11, staleReads: { ok: false }, ok: false })
  })

  it('refuses objectives it cannot check', () => {
    const cache = createCache({ service: 'slo-bad' })
    suite.closers.push(() => cache.close())
    expect(() => cache.namespace('a', { key: 'a:{id}', ttl: '1m', slo: {} })).toThrow(
      /`a.slo`.*at least one objective/,
    )
    expect(() => cache.namespace('b', { key: 'b:{id}', ttl: '1m', slo: { staleReadsMax: 2 } })).toThrow(
      /`b.slo.staleReadsMax`/,
    )
    expect(() =>
      cache.namespace('c', { key: 'c:{id}', ttl: '1m', slo: { readP99: 'fast' as never } }),
    ).toThrow(/`c.slo.readP99`/)
    expect(() => createCache({ service: 'x', logger: {} as Logger })).toThrow(/`logger`.*pino/)
  })

  it('logs L2 state changes through the logger, never keys or values', async () => {
    const own = await startRedis()
    const { logger, lines } = recordingLogger()
    try {
      const cache = createCache({
        service: 'slo-log',
        l2: redisStore({ url: own.url }),
        logger,
        circuitBreaker: { failureThreshold: 1, breakFor: '1m' },
      })
      suite.closers.push(() => cache.close())
      const ns = cache.namespace('user', {
        key: 'user:{id}',
        ttl: '1m',
        load: ({ id }) => ({ id, secret: 'pii' }),
      })
      await cache.connect()
      await ns.get({ id: 'alice' })
      await own.kill()
      await ns.get({ id: 'bob' })
      // One warning for the outage, naming the address (never a key): the connection attempts after the kill fail.
      await expect
        .poll(() => lines.some((l) => l.level === 'warn' && l.message.includes(`cannot reach Redis at`)))
        .toBe(true)
      expect(lines.some((l) => l.level === 'info' && l.message.includes('L2 ready'))).toBe(true)
      const text = JSON.stringify(lines)
      expect(text).not.toContain('alice')
      expect(text).not.toContain('bob')
      expect(text).not.toContain('pii')
    } finally {
      await own.stop()
    }
  })
})
