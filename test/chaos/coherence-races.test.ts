// Races between a load and a write in another process, with a real Redis: a write that lands while a load is under
// way must never be overwritten in L2 by the older value that load read (review of 2026-12-07, one test a finding).
import { createClient } from 'redis'
import { createCache, type Cache } from 'stratacache'
import { redisStore } from 'stratacache/redis'
import { fenceRead } from '../../src/tiers/redis-store.js'
import { describe, expect, it } from 'vitest'
import { redisSuite } from '../helpers/suite.js'
import { sleep } from './support.js'
import { startProxy, type TcpProxy } from './tcp-proxy.js'

const suite = redisSuite({ flushBeforeEach: true })
const { closers } = suite

const silent = { debug() {}, info() {}, warn() {}, error() {} }

/** A process's cache on `url`, with an L2 timeout long enough for a distant Redis. */
function cacheOn(url: string): Cache {
  const cache = createCache({
    service: 'races',
    l2: redisStore({ url }),
    timeouts: { l2: '2s' },
    logger: silent,
  })
  closers.push(() => cache.close())
  return cache
}

async function distant(latencyMs: number): Promise<TcpProxy> {
  const proxy = await startProxy(suite.redis.port, { latencyMs })
  closers.push(() => proxy.close())
  return proxy
}

describe('a load racing a write in another process', () => {
  it('does not overwrite the write in L2 when its fence read reaches Redis after the write', async () => {
    const source = new Map([['1', 'v1-old']])
    const declare = (cache: Cache, onLoad?: () => void) =>
      cache.namespace('acct', {
        key: 'acct:{id}',
        ttl: '1h',
        lock: false,
        load: ({ id }) => {
          const value = source.get(String(id))!
          onLoad?.()
          return value
        },
        write: ({ id }, value: string) => void source.set(String(id), value),
      })
    // A is 100 ms (each way) from Redis, B 50 ms, C next to it.
    const a = cacheOn((await distant(100)).url)
    const b = cacheOn((await distant(50)).url)
    const c = cacheOn(suite.redis.url)
    await Promise.all([a.connect(), b.connect(), c.connect()])
    await sleep(300) // the generations are known
    const nsB = declare(b)
    let written: Promise<void> | undefined
    // A's loader has read v1-old; 10 ms later B writes v2-new through to the source and to the cache. B's version
    // bump reaches Redis at about 60 ms, before anything A sends now (100 ms), and B's invalidation reaches A only
    // after A has sent its store: nothing but the fence can refuse A's old value.
    const nsA = declare(a, () => {
      setTimeout(() => void (written ??= nsB.write({ id: 1 }, 'v2-new')), 10)
    })

    expect(await nsA.get({ id: 1 })).toBe('v1-old')
    await expect.poll(() => written !== undefined).toBe(true)
    await written
    await sleep(600) // A's fenced store has landed (or was refused)

    expect(source.get('1')).toBe('v2-new')
    expect(await declare(c).get({ id: 1 })).toBe('v2-new')
  })

  it('does not overwrite a write made after Redis restarted empty with a value loaded before the restart', async () => {
    const source = new Map([['1', 'v1-old']])
    let release: () => void = () => {}
    const gate = new Promise<void>((resolve) => (release = resolve))
    let read = false
    const declare = (cache: Cache, load?: () => Promise<string>) =>
      cache.namespace('acct', {
        key: 'acct:{id}',
        ttl: '1h',
        lock: false,
        timeouts: { hard: '20s' },
        load: load ?? (({ id }) => source.get(String(id))!),
        write: ({ id }, value: string) => void source.set(String(id), value),
      })
    // A is 100 ms from Redis: B's invalidation after the restart reaches it after its store is sent.
    const a = cacheOn((await distant(100)).url)
    const b = cacheOn(suite.redis.url)
    await Promise.all([a.connect(), b.connect()])
    await sleep(300)
    const nsA = declare(a, async () => {
      const value = source.get('1')!
      read = true
      await gate
      return value
    })
    const nsB = declare(b)
    await nsB.delete({ id: 1 }) // the entry's version: 1
    await sleep(400) // B's invalidation has reached A

    const loaded = nsA.get({ id: 1 }) // reads version 1 as its fence, then the source (v1-old), then waits
    await expect.poll(() => read).toBe(true)
    await sleep(400) // the fence's answer is back in A
    await suite.redis.restart() // empty: versions count from 0 again
    await expect
      .poll(() => a.stats().l2?.status === 'ready' && b.stats().l2?.status === 'ready', { timeout: 10_000 })
      .toBe(true)
    await nsB.write({ id: 1 }, 'v2-new') // the entry's version: 1 again
    release()
    expect(await loaded).toBe('v1-old')
    await sleep(600) // A's store has landed (or was refused)

    expect(await declare(cacheOn(suite.redis.url)).get({ id: 1 })).toBe('v2-new')
  })

  // The fence read of a load is an MGET; when it finds no epoch (a fresh or emptied Redis, or an evicted epoch), the
  // epoch is set and everything read again. Redis loses its data (a restart without persistence) after the first
  // read here, or after the epoch was set: the first read's versions are from before the loss, and no store may
  // pass with them.
  it.each([
    ['before the epoch is set', 'SET'],
    ['after the epoch is set, before the second read', 'MGET'],
  ])(
    'pairs a fence read that found no epoch with versions read after a loss %s',
    async (_when, lossBefore) => {
      const store = redisStore({ url: suite.redis.url })
      await store.connect()
      closers.push(() => store.close())
      const raw = createClient({ url: suite.redis.url })
      await raw.connect()
      closers.push(() => raw.close())
      const key = 'races:acct:v1:acct:1'
      const [versionKey, seqKey, epochKey] = [`${key}#v`, 'races:acct:v1#seq', 'races:acct:v1#epoch']
      await store.bumpVersion(versionKey, 3_600_000) // a delete before any load: version 1, no epoch yet
      let reads = 0
      const send = async (args: string[]) => {
        if (args[0] === lossBefore && (lossBefore === 'SET' || reads === 1))
          await suite.redis.command('FLUSHALL')
        return raw.sendCommand(args)
      }
      const read = async () => {
        if (lossBefore === 'MGET' && reads === 1) await suite.redis.command('FLUSHALL')
        reads++
        return raw.sendCommand<(string | null)[]>(['MGET', versionKey, seqKey, epochKey])
      }
      const fence = await fenceRead(read, send, epochKey)
      expect(reads).toBe(2)
      expect(fence.versions).toEqual([0])
      // A write after the loss: version 1 again, and its value in L2. The load's older value is refused.
      await store.bumpVersion(versionKey, 3_600_000)
      await store.set(key, Buffer.from('new'), 3_600_000)
      const stored = await store.storeFenced(
        { key, value: Buffer.from('old'), ttlMs: 3_600_000 },
        {
          versionKey,
          version: fence.versions[0]!,
          epochKey,
          epoch: fence.epoch,
          seq: fence.seq,
          marks: [],
          sets: [],
        },
      )
      expect(stored).toBe(false)
      expect(Buffer.from((await store.get(key))!).toString()).toBe('new')
    },
  )

  it('an invalidateAll that timed out while Redis was paused moves every process to the new generation once it answers', async () => {
    const source = new Map([['1', 'v1']])
    const declare = (cache: Cache) =>
      cache.namespace('acct', {
        key: 'acct:{id}',
        ttl: '1h',
        load: ({ id }) => source.get(String(id))!,
        write: ({ id }, value: string) => void source.set(String(id), value),
      })
    // The default L2 timeout (100 ms): the INCR is sent, and times out while Redis is frozen.
    const process = async () => {
      const cache = createCache({
        service: 'races-gen',
        l2: redisStore({ url: suite.redis.url }),
        logger: silent,
      })
      closers.push(() => cache.close())
      await cache.connect()
      return declare(cache)
    }
    const a = await process()
    const b = await process()
    await sleep(300)
    expect(await b.get({ id: 1 })).toBe('v1')
    const before = b.key({ id: 1 })

    suite.redis.pause()
    await expect(a.invalidateAll()).rejects.toMatchObject({ code: 'ERR_STRATA_L2_TIMEOUT' })
    await sleep(300)
    suite.redis.resume() // the INCR runs now

    // A process started afterwards reads the new generation, and writes under it.
    const c = await process()
    await c.write({ id: 1 }, 'v2')
    expect(c.key({ id: 1 })).not.toBe(before)
    await expect.poll(() => a.key({ id: 1 }), { timeout: 5_000 }).toBe(c.key({ id: 1 }))
    await expect.poll(() => b.key({ id: 1 }), { timeout: 5_000 }).toBe(c.key({ id: 1 }))
    expect(await a.get({ id: 1 })).toBe('v2')
    expect(await b.get({ id: 1 })).toBe('v2')
  })

  it('an invalidateAll that timed out does not announce again a generation it already adopted from another process', async () => {
    // A is 150 ms from Redis, with a 1 s L2 timeout: its INCR times out while Redis is frozen, and the first re-read
    // of the generation that follows answers 400 ms after Redis resumes. B, next to Redis, invalidates everything
    // at once after the resume: its INCR runs after A's, and its announcement reaches A 150 ms later, before A's
    // re-read answers. A adopts B's generation from the bus and has nothing left to say.
    const proxy = await distant(150)
    const process = async (url: string, timeoutMs: number) => {
      const cache = createCache({
        service: 'races-settle',
        l2: redisStore({ url }),
        timeouts: { l2: timeoutMs },
        logger: silent,
      })
      closers.push(() => cache.close())
      await cache.connect()
      return {
        cache,
        ns: cache.namespace('acct', { key: 'acct:{id}', ttl: '1h', load: ({ id }) => `v${id}` }),
      }
    }
    const a = await process(proxy.url, 1_000)
    const b = await process(suite.redis.url, 2_000)
    await sleep(500) // both subscribed to the bus
    /** What B heard from other processes on the bus. */
    const heard = () => b.cache.stats().bus!.received

    suite.redis.pause()
    await expect(a.ns.invalidateAll()).rejects.toMatchObject({ code: 'ERR_STRATA_L2_TIMEOUT' })
    suite.redis.resume() // A's INCR runs now
    const heardBefore = heard()
    await b.ns.invalidateAll()
    await expect.poll(() => a.ns.key({ id: 1 }), { timeout: 5_000 }).toBe(b.ns.key({ id: 1 }))
    // Long enough for A's re-read to answer (400 ms) and any announcement of it to reach B (150 ms more).
    await sleep(1_000)
    expect(heard() - heardBefore).toBe(0)
    expect(a.ns.key({ id: 1 })).toBe(b.ns.key({ id: 1 }))
  })
})
