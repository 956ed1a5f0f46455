// A change whose L2 step or announcement failed (the call rejected, the source already changed) is repaired once
// Redis answers: its key is invalidated again in L2 and in every process's L1, so no process keeps serving the value
// it replaced for the entry's TTL.
import { createCache, type Cache } from 'stratacache'
import { redisStore } from 'stratacache/redis'
import { describe, expect, it } from 'vitest'
import { redisSuite } from '../helpers/suite.js'
import { codeOf, recordingLogger } from './support.js'
import { startProxy, type TcpProxy } from './tcp-proxy.js'

const suite = redisSuite({ flushBeforeEach: true })

type Log = ReturnType<typeof recordingLogger>

function newCache(url: string, log?: Log): Cache {
  const cache = createCache({
    service: 'repair',
    l2: redisStore({ url }),
    timeouts: { l2: 100 },
    ...(log === undefined ? { logger: recordingLogger().logger } : { logger: log.logger }),
  })
  suite.closers.push(() => cache.close())
  return cache
}

async function link(): Promise<TcpProxy> {
  const proxy = await startProxy(suite.redis.port)
  suite.closers.push(() => proxy.close())
  return proxy
}

function declare(cache: Cache, source: Map<number, string>, writeStrategy: 'cache-aside' | 'write-through') {
  return cache.namespace('account', {
    key: 'account:{id}',
    params: { id: 'number' },
    ttl: '1h',
    load: ({ id }) => source.get(id) ?? 'none',
    write: ({ id }, value: string) => void source.set(id, value),
    writeStrategy,
  })
}

/** A (through a link the test cuts) and B (direct), both holding `old` for key 1 in L1, and L2 holding it too. */
async function twoProcesses(writeStrategy: 'cache-aside' | 'write-through') {
  const source = new Map([[1, 'old']])
  const proxy = await link()
  const log = recordingLogger()
  const cacheA = newCache(proxy.url, log)
  const cacheB = newCache(suite.redis.url)
  const a = declare(cacheA, source, writeStrategy)
  const b = declare(cacheB, source, writeStrategy)
  await Promise.all([cacheA.connect(), cacheB.connect()])
  await expect.poll(() => cacheA.stats().bus?.subscribed && cacheB.stats().bus?.subscribed).toBe(true)
  expect(await b.get({ id: 1 })).toBe('old')
  expect(await a.get({ id: 1 })).toBe('old')
  return { source, proxy, log, a, b, cacheA }
}

describe('a write that reached the source but not Redis', () => {
  for (const writeStrategy of ['cache-aside', 'write-through'] as const) {
    it(`(${writeStrategy}) is repaired once Redis answers: every process reads the new value, not the old one for its TTL`, async () => {
      const { source, proxy, log, a, b } = await twoProcesses(writeStrategy)
      await proxy.cut()
      const error = await a.write({ id: 1 }, 'new').catch((e: unknown) => e)
      expect(codeOf(error)).toMatch(/^ERR_STRATA_L2_/)
      expect(source.get(1)).toBe('new')
      expect(a.stats()).toMatchObject({ repairsQueued: 1, repairsPending: 1, repairsDone: 0 })
      // Meanwhile B still has the old value: nothing told it.
      expect(await b.get({ id: 1 })).toBe('old')

      await proxy.heal()
      await expect.poll(() => b.get({ id: 1 })).toBe('new')
      expect(await a.get({ id: 1 })).toBe('new')
      await expect
        .poll(() => a.stats())
        .toMatchObject({ repairsQueued: 1, repairsPending: 0, repairsDone: 1 })
      // A process started afterwards reads the new value from L2 or the source, never the old one.
      const c = declare(newCache(suite.redis.url), new Map([[1, 'not loaded']]), writeStrategy)
      expect(['new', 'not loaded']).toContain(await c.get({ id: 1 }))
      expect(await c.get({ id: 1 })).not.toBe('old')

      const said = log.lines.map((line) => `${line.level}: ${line.message}`)
      expect(said.filter((line) => line.includes('invalidated again once Redis answers'))).toHaveLength(1)
      expect(
        said.some((line) => line.startsWith('info') && line.includes('1 change that had not reached it')),
      ).toBe(true)
    })
  }

  it('the writer reads its own write while the repair waits, even where Redis answers reads (full: writes refused)', async () => {
    const { source, a, b } = await twoProcesses('cache-aside')
    source.set(2, 'two')
    expect(await b.get({ id: 2 })).toBe('two') // in L2, not in A's L1
    // Redis out of memory: it refuses writes (the version bump) but answers reads with the old value.
    await suite.redis.command('CONFIG', 'SET', 'maxmemory', '1')
    suite.closers.push(() => suite.redis.command('CONFIG', 'SET', 'maxmemory', '0'))
    const error = await a.write({ id: 1 }, 'new').catch((e: unknown) => e)
    expect(codeOf(error)).toBe('ERR_STRATA_L2_FAILED')
    expect(a.stats().repairsPending).toBe(1)
    const loads = a.stats().loads
    // Its L1 copy is gone and L2 still has 'old': the read goes to the source, not to L2.
    expect(await a.get({ id: 1 })).toBe('new')
    expect(await a.getMany([{ id: 1 }])).toEqual(['new'])
    expect(a.stats().loads).toBeGreaterThan(loads)
    // Other keys still read from L2: only the pending key is distrusted.
    const l2Hits = a.stats().l2Hits
    source.set(2, 'changed at the source only')
    expect(await a.get({ id: 2 })).toBe('two')
    expect(a.stats().l2Hits).toBe(l2Hits + 1)
    // B, which has no such knowledge, still reads the old value until the repair.
    expect(await b.get({ id: 1 })).toBe('old')
    await suite.redis.command('CONFIG', 'SET', 'maxmemory', '0')
    await expect.poll(() => b.get({ id: 1 })).toBe('new')
    await expect.poll(() => a.stats().repairsPending).toBe(0)
  })

  it('repairs every key that failed, once each, and a delete as a write', async () => {
    const { source, proxy, a, b } = await twoProcesses('cache-aside')
    source.set(2, 'two')
    expect(await b.get({ id: 2 })).toBe('two')
    await proxy.cut()
    await expect(a.write({ id: 1 }, 'first')).rejects.toThrow()
    await expect(a.write({ id: 1 }, 'second')).rejects.toThrow()
    source.set(2, 'gone')
    await expect(a.delete({ id: 2 })).rejects.toThrow()
    expect(a.stats()).toMatchObject({ repairsQueued: 3, repairsPending: 2 })
    await proxy.heal()
    await expect.poll(() => a.stats().repairsPending).toBe(0)
    expect(a.stats().repairsDone).toBe(2)
    expect(await b.get({ id: 1 })).toBe('second')
    expect(await b.get({ id: 2 })).toBe('gone')
  })

  it('past 10,000 keys, invalidates the whole namespace instead once Redis answers', async () => {
    const { source, proxy, log, a, b } = await twoProcesses('cache-aside')
    await proxy.cut()
    // Each rejects at once after the first few open the circuit breaker.
    for (let id = 1; id <= 10_001; id++) {
      source.set(id, `new ${id}`)
      await a.delete({ id }).catch(() => undefined)
    }
    expect(a.stats()).toMatchObject({ repairsQueued: 10_001, repairsPending: 10_001 })
    expect(
      log.lines.some((line) => line.message.includes('every entry of the namespace is invalidated')),
    ).toBe(true)
    await proxy.heal()
    await expect.poll(() => a.stats().repairsPending, { timeout: 10_000 }).toBe(0)
    expect(a.stats().repairsDone).toBe(10_001)
    // B's L1 copy went with the generation (the invalidateAll's announcement).
    await expect.poll(() => b.get({ id: 1 })).toBe('new 1')
  })

  it('says what it could not repair when the cache closes while Redis is still unreachable, and closes', async () => {
    const { proxy, log, a, cacheA } = await twoProcesses('cache-aside')
    await proxy.cut()
    await expect(a.write({ id: 1 }, 'new')).rejects.toThrow()
    await cacheA.close()
    expect(
      log.lines.some((line) => line.level === 'warn' && line.message.includes('closed with 1 change')),
    ).toBe(true)
  })

  it('repairs at close when Redis answers by then: L2 and the other processes', async () => {
    const { source, proxy, a, b, cacheA } = await twoProcesses('cache-aside')
    await proxy.cut()
    await expect(a.write({ id: 1 }, 'new')).rejects.toThrow()
    // The first attempt (after 250 ms) fails; the next waits 500 ms more, and the close comes first.
    await new Promise((resolve) => setTimeout(resolve, 350))
    expect(a.stats().repairsPending).toBe(1)
    await proxy.heal()
    await cacheA.connect()
    await cacheA.close()
    expect(a.stats().repairsPending).toBe(0)
    // Announced: B dropped its L1 copy; and L2 no longer holds the old value, so a new process loads the new one.
    await expect.poll(() => b.get({ id: 1 })).toBe('new')
    const c = declare(newCache(suite.redis.url), source, 'cache-aside')
    expect(await c.get({ id: 1 })).toBe('new')
  })

  it('a later set that succeeds ends the repair: its value is not dropped afterwards (a namespace without a loader)', async () => {
    const proxy = await link()
    const declareBare = (cache: Cache) => cache.namespace('bare', { key: 'b:{id}', ttl: '1h' })
    const cacheA = newCache(proxy.url)
    const a = declareBare(cacheA)
    const b = declareBare(newCache(suite.redis.url))
    await cacheA.connect()
    await proxy.cut()
    await expect(a.set({ id: 1 }, 'v1')).rejects.toThrow()
    expect(a.stats().repairsPending).toBe(1)
    await proxy.heal()
    await cacheA.connect()
    await a.set({ id: 1 }, 'v2')
    expect(a.stats()).toMatchObject({ repairsPending: 0, repairsDone: 1 })
    // Past the time a repair would have run: the value stays.
    await new Promise((resolve) => setTimeout(resolve, 600))
    expect(await a.peek({ id: 1 })).toBe('v2')
    expect(await b.peek({ id: 1 })).toBe('v2')
  })

  it("the writer's lock wait does not adopt the old value from L2 either", async () => {
    const { a } = await twoProcesses('cache-aside')
    await suite.redis.command('CONFIG', 'SET', 'maxmemory', '1')
    suite.closers.push(() => suite.redis.command('CONFIG', 'SET', 'maxmemory', '0'))
    await expect(a.write({ id: 1 }, 'new')).rejects.toThrow()
    await suite.redis.command('CONFIG', 'SET', 'maxmemory', '0')
    // Another process's live lock on the key (a token of ours, in its shape), for 300 ms: A waits it out, then
    // reads L2 (which holds 'old') before and after taking the lock. Its repair has not run yet (250 ms, then
    // until Redis answers the INCR: by then it does), so the reads must not trust L2.
    await suite.redis.command('SET', a.key({ id: 1 }) + '#lock', 'TTTTTTTTTTTTTTTT', 'PX', '300')
    expect(await a.get({ id: 1 })).toBe('new')
    expect(a.stats().lockWaits).toBe(1)
  })
})
