// The gets of one tick go to Redis as one MGET (policies/coalesced-gets.ts), on node-redis and on ioredis: what
// Redis receives (INFO commandstats), what each reader gets, and one fate per command when Redis fails.
import { channelNames, createCache, type L2Store } from 'stratacache'
import { ioredisStore } from 'stratacache/ioredis'
import { redisStore } from 'stratacache/redis'
import { describe, expect, it } from 'vitest'
import { MAX_COALESCED_GETS } from '../../src/policies/coalesced-gets.js'
import { activeMs, recordChannel, timed } from '../chaos/support.js'
import { redisSuite } from '../helpers/suite.js'

const L2_TIMEOUT = 100

const suite = redisSuite({ flushBeforeEach: true })

/** Calls of `command` Redis has served since the last CONFIG RESETSTAT. */
async function calls(command: string): Promise<number> {
  const stats = await suite.redis.command('INFO', 'commandstats')
  return Number(new RegExp(`cmdstat_${command}:calls=(\\d+)`).exec(stats)?.[1] ?? 0)
}

const stores = {
  'node-redis': (coalesceGets?: boolean) =>
    redisStore({ url: suite.redis.url, ...(coalesceGets === undefined ? {} : { coalesceGets }) }),
  ioredis: (coalesceGets?: boolean) =>
    ioredisStore({ url: suite.redis.url, ...(coalesceGets === undefined ? {} : { coalesceGets }) }),
}

/** A cache with no L1 (every get reads L2), its `item` namespace, and how many times its loader ran. */
async function make(l2: L2Store) {
  const loads = { count: 0 }
  const cache = createCache({
    service: 'coalesce',
    l1: false,
    l2,
    timeouts: { l2: L2_TIMEOUT },
    logger: false,
  })
  suite.closers.push(() => cache.close())
  const ns = cache.namespace('item', {
    key: 'item:{id}',
    ttl: '1m',
    load: ({ id }: { id: number }) => {
      loads.count++
      return { id, loaded: loads.count }
    },
  })
  await cache.connect()
  return { cache, ns, loads }
}

const ids = (n: number) => Array.from({ length: n }, (_, i) => i)

describe.each(Object.entries(stores))('coalesced gets on %s', (_name, store) => {
  it('reads 100 concurrent gets of different keys with 2 MGETs and no GET, each reader getting its own value', async () => {
    const { cache, ns, loads } = await make(store())
    for (const id of ids(100)) await ns.set({ id }, { id, loaded: -1 })
    await suite.redis.command('CONFIG', 'RESETSTAT')
    const values = await Promise.all(ids(100).map((id) => ns.get({ id })))
    expect(values).toEqual(ids(100).map((id) => ({ id, loaded: -1 })))
    expect(loads.count).toBe(0)
    expect(await calls('mget')).toBe(Math.ceil(100 / MAX_COALESCED_GETS))
    expect(await calls('get')).toBe(0)
    expect(cache.stats().namespaces['item']!.l2Hits).toBe(100)
  })

  it('sends a lone get as a GET', async () => {
    const { ns } = await make(store())
    await ns.set({ id: 1 }, { id: 1, loaded: -1 })
    await suite.redis.command('CONFIG', 'RESETSTAT')
    expect(await ns.get({ id: 1 })).toEqual({ id: 1, loaded: -1 })
    expect([await calls('get'), await calls('mget')]).toEqual([1, 0])
  })

  it('with coalesceGets: false, sends one GET per get', async () => {
    const { ns } = await make(store(false))
    for (const id of ids(10)) await ns.set({ id }, { id, loaded: -1 })
    await suite.redis.command('CONFIG', 'RESETSTAT')
    await Promise.all(ids(10).map((id) => ns.get({ id })))
    expect([await calls('get'), await calls('mget')]).toEqual([10, 0])
  })

  it('answers hits and misses of one MGET apart: the misses are loaded, once each', async () => {
    const { ns, loads } = await make(store())
    for (const id of ids(10)) if (id % 2 === 0) await ns.set({ id }, { id, loaded: -1 })
    const values = await Promise.all(ids(10).map((id) => ns.get({ id })))
    expect(values.filter((v) => v.loaded === -1).map((v) => v.id)).toEqual([0, 2, 4, 6, 8])
    expect(loads.count).toBe(5)
  })

  it('reads a key holding another type (a foreign hash) as a miss in a batch, and the rest still hit', async () => {
    const { cache, ns, loads } = await make(store())
    for (const id of ids(4)) await ns.set({ id }, { id, loaded: -1 })
    // Something else wrote a hash where entry 3 lives: MGET answers nil there (a lone GET would be WRONGTYPE).
    await suite.redis.command('DEL', ns.key({ id: 3 }))
    await suite.redis.command('HSET', ns.key({ id: 3 }), 'field', 'value')
    const values = await Promise.all(ids(4).map((id) => ns.get({ id })))
    expect(values.map((v) => v.loaded)).toEqual([-1, -1, -1, 1])
    expect(loads.count).toBe(1)
    expect(cache.stats().namespaces['item']!.l2Hits).toBe(3)
    // The loaded value replaced the hash: the next read is a hit.
    await expect.poll(() => suite.redis.command('TYPE', ns.key({ id: 3 }))).toMatch(/^\+string/)
    expect(await ns.get({ id: 3 })).toEqual({ id: 3, loaded: 1 })
  })

  it('reads corrupt bytes at one key of a batch as a miss plus a decode error, never a throw', async () => {
    const { cache, ns, loads } = await make(store())
    for (const id of ids(4)) await ns.set({ id }, { id, loaded: -1 })
    await suite.redis.command('SET', ns.key({ id: 2 }), 'not an envelope')
    const values = await Promise.all(ids(4).map((id) => ns.get({ id })))
    expect(values.map((v) => v.loaded)).toEqual([-1, -1, 1, -1])
    expect(loads.count).toBe(1)
    expect(cache.stats().namespaces['item']!.decodeErrors).toBe(1)
  })

  it('times out a batch as one command when Redis freezes: every reader gets its loader value within the L2 timeout', async () => {
    const { ns, loads } = await make(store())
    for (const id of ids(20)) await ns.set({ id }, { id, loaded: -1 })
    const errors = recordChannel<{ operation: string; error: { code: string } }>(channelNames.l2Error)
    suite.redis.pause()
    const reads = await timed(() => Promise.all(ids(20).map((id) => ns.get({ id }))))
    suite.redis.resume()
    if (!reads.ok) throw reads.error
    const values = reads.value
    expect(values.map((v) => v.id)).toEqual(ids(20))
    expect(values.every((v) => v.loaded > 0)).toBe(true)
    expect(loads.count).toBe(20)
    errors.stop()
    // One MGET timed out, not 20 GETs (the loads' own L2 calls, lock and fence reads, are other operations).
    const getTimeouts = errors.messages.filter(
      (m) => m.operation === 'get' && m.error.code === 'ERR_STRATA_L2_TIMEOUT',
    )
    expect(getTimeouts).toHaveLength(1)
    // A deadline the library promises (the L2 timeout, then the lock's and the loader's), not a speed claim: on the
    // time the process could run, as the library's deadlines leave out a blocked event loop.
    expect(activeMs(reads)).toBeLessThan(L2_TIMEOUT * 3 + 1_000)
  })
})

describe('coalesced gets and the lifecycle', () => {
  it('sends a get issued just before close() while the store is open: the reader gets the L2 value, no load', async () => {
    const { cache, ns, loads } = await make(stores['node-redis']())
    await ns.set({ id: 1 }, { id: 1, loaded: -1 })
    let read: Promise<{ id: number; loaded: number }> | undefined
    // Inside a microtask: the tick's end (process.nextTick) would come after close() reached the store.
    await Promise.resolve().then(() => {
      read = ns.get({ id: 1 })
      void cache.close()
    })
    expect(await read).toEqual({ id: 1, loaded: -1 })
    expect(loads.count).toBe(0)
    expect(cache.stats().namespaces['item']!.l2Errors).toBe(0)
  })

  it('answers every get of a batch in flight when Redis is killed, from the loader, and recovers after a restart', async () => {
    const { ns, loads } = await make(stores['node-redis']())
    for (const id of ids(20)) await ns.set({ id }, { id, loaded: -1 })
    suite.redis.pause() // the batch is written, never answered
    const reads = Promise.all(ids(20).map((id) => ns.get({ id })))
    await new Promise((resolve) => setTimeout(resolve, 20))
    await suite.redis.kill()
    const values = await reads
    expect(values.map((v) => v.id)).toEqual(ids(20))
    expect(loads.count).toBe(20)
    await suite.redis.restart()
  })
})

describe('coalesceGets option', () => {
  it.each([
    ['redisStore', () => redisStore({ url: 'redis://127.0.0.1:1', coalesceGets: 'yes' as never })],
    ['ioredisStore', () => ioredisStore({ url: 'redis://127.0.0.1:1', coalesceGets: 1 as never })],
  ])('%s refuses a coalesceGets that is not a boolean, naming the option', (factory, make) => {
    expect(make).toThrow(
      expect.objectContaining({
        code: 'ERR_STRATA_INVALID_OPTION',
        message: expect.stringContaining(`${factory}.coalesceGets`),
      }),
    )
  })

  it('is on by default and says so on the store', () => {
    expect(redisStore({ url: 'redis://127.0.0.1:1' }).coalesceGets).toBe(true)
    expect(redisStore({ url: 'redis://127.0.0.1:1', coalesceGets: false }).coalesceGets).toBe(false)
  })
})
