// A loader can give the value it returns a life of its own: `context.setTtl` (shorter than the namespace's ttl) and
// `context.expireAt` (never served after an instant, not even stale), in L1 and in L2, for `load` and `loadMany`.
import { createCache, type Cache, type CacheOptions } from 'stratacache'
import { redisStore } from 'stratacache/redis'
import { describe, expect, it } from 'vitest'
import { fakeClock, type FakeClock } from '../helpers/fake-clock.js'
import { redisSuite } from '../helpers/suite.js'

const suite = redisSuite({ flushBeforeEach: true })

async function newCache(options: Partial<CacheOptions> = {}): Promise<Cache> {
  const cache = createCache({
    service: 'it-loader-ttl',
    random: () => 0,
    l2: redisStore({ url: suite.redis.url }),
    logger: false,
    ...options,
  })
  suite.closers.push(() => cache.close())
  await cache.connect()
  return cache
}

/** The PTTL of `key` in Redis, in ms (-2 when it does not exist). */
async function pttl(key: string): Promise<number> {
  return Number(/-?\d+/.exec(await suite.redis.command('PTTL', key))![0])
}

describe("a loader's own TTL", () => {
  it('setTtl shortens the life of the value in L1 and in L2', async () => {
    const clock = fakeClock(Date.now())
    const ns = (await newCache({ clock })).namespace('token', {
      key: 't:{id}',
      ttl: '1h',
      jitter: 0,
      load: (_: { id: number }, ctx) => {
        ctx.setTtl('2s')
        return `token ${clock.now()}`
      },
    })
    const first = await ns.get({ id: 1 })
    await expect.poll(() => pttl(ns.key({ id: 1 }))).toBeGreaterThan(0)
    expect(await pttl(ns.key({ id: 1 }))).toBeLessThanOrEqual(2_000)
    clock.advance(1_999)
    expect(await ns.get({ id: 1 })).toBe(first)
    clock.advance(2)
    expect(await ns.get({ id: 1 })).not.toBe(first)
    expect(ns.stats().loads).toBe(2)
  })

  it("never lengthens the namespace's ttl: a longer one is capped", async () => {
    const ns = (await newCache()).namespace('capped', {
      key: 'c:{id}',
      ttl: '10s',
      jitter: 0,
      load: (_: { id: number }, ctx) => {
        ctx.setTtl('1d')
        return 'v'
      },
    })
    await ns.get({ id: 1 })
    await expect.poll(() => pttl(ns.key({ id: 1 }))).toBeGreaterThan(0)
    expect(await pttl(ns.key({ id: 1 }))).toBeLessThanOrEqual(10_000)
  })

  it('setTtl(0) returns the value without caching it anywhere, and drops an older copy', async () => {
    let loads = 0
    const ns = (await newCache()).namespace('uncached', {
      key: 'u:{id}',
      ttl: '1h',
      staleFor: '1h',
      load: (_: { id: number }, ctx) => {
        loads++
        ctx.setTtl(0)
        return `v${loads}`
      },
    })
    expect(await ns.get({ id: 1 })).toBe('v1')
    expect(await ns.get({ id: 1 })).toBe('v2')
    expect(await pttl(ns.key({ id: 1 }))).toBe(-2)
  })

  it('expireAt: never served after the instant, not even stale when the source then fails', async () => {
    const clock: FakeClock = fakeClock(Date.now())
    let failing = false
    const ns = (await newCache({ clock })).namespace('signed-url', {
      key: 'u:{id}',
      ttl: '1h',
      jitter: 0,
      staleFor: '1h',
      staleWhileRevalidate: false,
      load: (_: { id: number }, ctx) => {
        if (failing) throw new Error('source down')
        ctx.expireAt(new Date(clock.now() + 5_000))
        return 'https://example.test/signed'
      },
    })
    expect(await ns.get({ id: 1 })).toBe('https://example.test/signed')
    await expect.poll(() => pttl(ns.key({ id: 1 }))).toBeGreaterThan(0)
    expect(await pttl(ns.key({ id: 1 }))).toBeLessThanOrEqual(5_000)
    clock.advance(5_001)
    failing = true
    await expect(ns.get({ id: 1 })).rejects.toMatchObject({ code: 'ERR_STRATA_LOADER_FAILED' })
  })

  it('setTtl keeps the stale window: a failing source then answers stale (fail-safe)', async () => {
    const clock: FakeClock = fakeClock(Date.now())
    let failing = false
    const ns = (await newCache({ clock })).namespace('page', {
      key: 'p:{id}',
      ttl: '1h',
      jitter: 0,
      staleFor: '1h',
      staleWhileRevalidate: false,
      load: (_: { id: number }, ctx) => {
        if (failing) throw new Error('source down')
        ctx.setTtl('5s')
        return 'page'
      },
    })
    expect(await ns.get({ id: 1 })).toBe('page')
    clock.advance(5_001)
    failing = true
    expect(await ns.get({ id: 1 })).toBe('page')
    expect(ns.stats().staleServed.failSafe).toBe(1)
  })

  it("applies to every value of a loadMany batch, in another process's reads too", async () => {
    const clock = fakeClock(Date.now())
    const declare = (cache: Cache) =>
      cache.namespace('batch', {
        key: 'b:{id}',
        ttl: '1h',
        jitter: 0,
        loadMany: (params: readonly { id: number }[], ctx) => {
          ctx.setTtl('3s')
          return params.map(({ id }) => `v${id}`)
        },
      })
    const ns = declare(await newCache({ clock }))
    expect(await ns.getMany([{ id: 1 }, { id: 2 }])).toEqual(['v1', 'v2'])
    for (const id of [1, 2]) {
      await expect.poll(() => pttl(ns.key({ id }))).toBeGreaterThan(0)
      expect(await pttl(ns.key({ id }))).toBeLessThanOrEqual(3_000)
    }
    const other = declare(await newCache({ clock, l1: false }))
    clock.advance(2_999)
    expect(await other.getMany([{ id: 1 }, { id: 2 }])).toEqual(['v1', 'v2'])
    expect(other.stats().loads).toBe(0)
  })

  it('refuses a bad duration or time with a typed error naming the call', async () => {
    const ns = (await newCache()).namespace('bad', {
      key: 'b:{id}',
      ttl: '1h',
      load: ({ id }: { id: number }, ctx) => {
        if (id === 1) ctx.setTtl('soon' as never)
        else ctx.expireAt(new Date('not a date'))
        return 'v'
      },
    })
    const failure = (id: number) =>
      ns.get({ id }).then(
        () => undefined,
        (e: unknown) => e as Error & { code: string; cause: Error & { code: string } },
      )
    const badTtl = await failure(1)
    expect(badTtl).toMatchObject({ code: 'ERR_STRATA_LOADER_FAILED' })
    expect(badTtl!.cause).toMatchObject({ code: 'ERR_STRATA_INVALID_ARGUMENT' })
    expect(badTtl!.cause.message).toContain('context.setTtl(ttl)')
    const badTime = await failure(2)
    expect(badTime!.cause).toMatchObject({ code: 'ERR_STRATA_INVALID_ARGUMENT' })
    expect(badTime!.cause.message).toContain('context.expireAt(time)')
  })
})
