import { createCache } from 'stratacache'
import { redisStore } from 'stratacache/redis'
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { startRedis, type RedisServer } from '../helpers/redis-server.js'
import { commandCalls } from '../chaos/support.js'

// Own server: these tests count the commands Redis received.
let redis: RedisServer
const closers: (() => Promise<void>)[] = []
beforeAll(async () => {
  redis = await startRedis()
})
afterAll(async () => {
  await redis.stop()
})
beforeEach(async () => {
  await redis.command('FLUSHALL')
})
afterEach(async () => {
  await Promise.all(closers.splice(0).map((close) => close()))
})

type Product = { id: number; from: string }

async function newCache() {
  const cache = createCache({ service: 'it-get-many', l2: redisStore({ url: redis.url }) })
  closers.push(() => cache.close())
  await cache.connect()
  return cache
}

/** The list of the tests: 50 entries in a shuffled order, 45 distinct ids (0-44) and 5 repeated ones. */
const ids = [
  ...[...Array(45).keys()].map((i) => (i * 17) % 45),
  // repeats
  3,
  30,
  44,
  3,
  21,
]

describe('getMany against a real Redis', () => {
  it('reads all L1 misses in one MGET and loads the missing ones with one loadMany call, in order', async () => {
    // A writer stands in for another process that already cached ids 0-19.
    const writer = (await newCache()).namespace('product', { key: 'product:{id}', ttl: '1m' })
    await Promise.all([...Array(20).keys()].map((id) => writer.set({ id }, { id, from: 'l2' })))

    const batches: number[][] = []
    const reader = (await newCache()).namespace('product', {
      key: 'product:{id}',
      ttl: '1m',
      loadMany: (list: readonly { id: number }[]): Product[] => {
        batches.push(list.map((p) => p.id))
        return list.map(({ id }) => ({ id, from: 'loader' }))
      },
    })
    await redis.command('CONFIG', 'RESETSTAT')

    const values = await reader.getMany(ids.map((id) => ({ id })))

    // Each of the 25 keys takes its lock (a script), its loaded value is stored in the background by a fenced-store
    // script, then its lock is released (a script).
    await expect
      .poll(async () => commandCalls(await redis.command('INFO', 'commandstats'), 'eval'))
      .toBe(3 * 25)
    const stats = await redis.command('INFO', 'commandstats')
    // One MGET of the values, and the loaded keys' fence read (their versions, the invalidation sequence and the
    // epoch): it finds no epoch (the writer's sets make none), sets one (SET NX) and reads again.
    expect(commandCalls(stats, 'mget')).toBe(3)
    // No GET of its own: the only GETs are in the scripts (a store reads the version, the epoch and the clear mark,
    // a lock release its token).
    expect(commandCalls(stats, 'get')).toBe(4 * 25)
    expect(values).toEqual(ids.map((id) => ({ id, from: id < 20 ? 'l2' : 'loader' })))
    expect(batches).toHaveLength(1)
    expect([...batches[0]!].sort((a, b) => a - b)).toEqual([...Array(25).keys()].map((i) => i + 20))
    // Every position of the list is a read: ids 0-19 (3 listed twice) are 22 L2 hits, the rest 28 misses.
    expect(reader.stats()).toMatchObject({ l2Hits: 22, misses: 28, loads: 1, l2Errors: 0 })
  })

  it('writes what loadMany returned to L2, so another cache reads it without loading', async () => {
    let loaded = 0
    const declare = async () =>
      (await newCache()).namespace('product', {
        key: 'product:{id}',
        ttl: '1m',
        loadMany: (list: readonly { id: number }[]): Product[] => {
          loaded += list.length
          return list.map(({ id }) => ({ id, from: 'loader' }))
        },
      })
    const a = await declare()
    await a.getMany(ids.map((id) => ({ id })))
    expect(loaded).toBe(45)
    const b = await declare()
    // The 45 entries, and the namespace's epoch and server id.
    await expect.poll(() => redis.command('DBSIZE')).toBe(':47\r\n')
    await redis.command('CONFIG', 'RESETSTAT')
    expect(await b.getMany(ids.map((id) => ({ id })))).toEqual(ids.map((id) => ({ id, from: 'loader' })))
    expect(loaded).toBe(45)
    expect(b.stats()).toMatchObject({ l2Hits: 50, misses: 0, loads: 0 }) // 50 reads of 45 keys
    expect(commandCalls(await redis.command('INFO', 'commandstats'), 'mget')).toBe(1)
  })

  it('answers entries already in L1 without asking Redis for them', async () => {
    const ns = (await newCache()).namespace('product', {
      key: 'product:{id}',
      ttl: '1m',
      loadMany: (list: readonly { id: number }[]): Product[] =>
        list.map(({ id }) => ({ id, from: 'loader' })),
    })
    await ns.getMany([{ id: 1 }, { id: 2 }])
    // The generation read (a script, with its restore check), two lock acquisitions, then the two stores and lock
    // releases in the background: let them land before counting.
    await expect.poll(async () => commandCalls(await redis.command('INFO', 'commandstats'), 'eval')).toBe(7)
    await redis.command('CONFIG', 'RESETSTAT')
    expect(await ns.getMany([{ id: 2 }, { id: 1 }, { id: 2 }])).toEqual([
      { id: 2, from: 'loader' },
      { id: 1, from: 'loader' },
      { id: 2, from: 'loader' },
    ])
    const stats = await redis.command('INFO', 'commandstats')
    expect(commandCalls(stats, 'mget')).toBe(0)
    expect(commandCalls(stats, 'get')).toBe(0)
    expect(ns.stats()).toMatchObject({ l1Hits: 3, loads: 1 })
  })

  it('loads each missing key once with load when there is no loadMany, duplicates included', async () => {
    const calls: number[] = []
    const ns = (await newCache()).namespace('product-single', {
      key: 'product:{id}',
      ttl: '1m',
      load: async ({ id }: { id: number }): Promise<Product> => {
        calls.push(id)
        await new Promise((resolve) => setTimeout(resolve, 5))
        return { id, from: 'load' }
      },
    })
    await redis.command('CONFIG', 'RESETSTAT')
    expect(await ns.getMany(ids.map((id) => ({ id })))).toEqual(ids.map((id) => ({ id, from: 'load' })))
    expect([...calls].sort((a, b) => a - b)).toEqual([...Array(45).keys()])
    // Per key: the lock (a script), the fenced store, the lock's release.
    await expect
      .poll(async () => commandCalls(await redis.command('INFO', 'commandstats'), 'eval'))
      .toBe(3 * 45)
    const stats = await redis.command('INFO', 'commandstats')
    // One MGET of the values; then each load, through the single-key pipeline, reads its fence (one MGET each), and
    // those that found no epoch yet (the first ones in this fresh namespace) set it (SET NX) and read again. The
    // other SETs are the locks' and the stores' (in their scripts).
    const firstReads = commandCalls(stats, 'set') - 2 * 45
    expect(firstReads).toBeGreaterThanOrEqual(1)
    expect(commandCalls(stats, 'mget')).toBe(1 + 45 + firstReads)
    // No GET of its own: the only GETs are in the scripts (store: version, epoch and clear mark; lock release: token).
    expect(commandCalls(stats, 'get')).toBe(4 * 45)
  })
})
