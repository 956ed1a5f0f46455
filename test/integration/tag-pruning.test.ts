// Tag sets stay bounded: members whose entries expired are pruned as the tag keeps being used.
import { createCache, type Cache, type CacheOptions } from 'stratacache'
import { redisStore } from 'stratacache/redis'
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { startRedis, type RedisServer } from '../helpers/redis-server.js'
import { integerReply } from '../chaos/support.js'

let redis: RedisServer
const closers: (() => Promise<unknown>)[] = []
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
  for (const close of closers.splice(0).reverse()) await close()
})

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

function newCache(options: Partial<CacheOptions> = {}): Cache {
  const cache = createCache({
    service: 'pruning',
    l2: redisStore({ url: redis.url }),
    random: () => 0,
    ...options,
  })
  closers.push(() => cache.close())
  return cache
}

/** Members of a set, from the raw RESP array reply. */
async function members(key: string): Promise<string[]> {
  const reply = await redis.command('SMEMBERS', key)
  return [...reply.matchAll(/\$\d+\r\n([^\r\n]*)\r\n/g)].map((m) => m[1]!)
}

async function keys(pattern: string): Promise<string[]> {
  const reply = await redis.command('KEYS', pattern)
  return [...reply.matchAll(/\$\d+\r\n([^\r\n]*)\r\n/g)].map((m) => m[1]!)
}

describe('tag sets', () => {
  it('stay about the size of their live entries while short-lived entries keep coming under one long-lived tag', async () => {
    const cache = newCache()
    await cache.connect()
    const ns = cache.namespace('search', {
      key: 'q:{id}',
      ttl: 100, // a search result: short-lived, and a new key for every query
      l1: false,
      lock: false,
      tags: () => ['tenant-t1'],
      load: ({ id }: { id: number }) => `result ${id}`,
    })
    const tag = `${ns.prefix}#tag{tenant-t1}`
    let id = 0
    const sizes: number[] = []
    for (let wave = 0; wave < 30; wave++) {
      await Promise.all(Array.from({ length: 40 }, () => ns.get({ id: id++ })))
      await sleep(60)
      sizes.push(integerReply(await redis.command('SCARD', tag)))
    }
    // 1,200 keys were tagged; about 80 are alive at any time (two waves). Unpruned, the set would hold them all.
    expect(Math.max(...sizes.slice(10))).toBeLessThan(400)
    expect(Math.max(...sizes)).toBeGreaterThanOrEqual(40) // the set was measured while it lived
    // Pruning never dropped a live entry: every entry in Redis is in its tag's set. Checked atomically (a script),
    // as loads keep landing in the background: a value lands after its tag, on the same connection.
    await Promise.all(Array.from({ length: 40 }, () => ns.get({ id: id++ })))
    const [live, ...untagged] = (
      await redis.command(
        'EVAL',
        "local live, out = 0, {} for _, k in ipairs(redis.call('KEYS', ARGV[1] .. '*')) do " +
          "if not string.find(k, '#', 1, true) then live = live + 1 " +
          "if redis.call('SISMEMBER', ARGV[2], k) == 0 then out[#out + 1] = k end end end " +
          'return { tostring(live), unpack(out) }',
        '0',
        ns.prefix,
        tag,
      )
    )
      .split('\r\n')
      .filter((line) => line !== '' && !/^[*$]/.test(line))
    expect(Number(live)).toBeGreaterThan(0)
    expect(untagged).toEqual([])
    // The markers of entries seen gone are bounded too, and invalidateTag still drops every live entry.
    expect((await keys('*#gone')).length).toBeLessThan(400)
    await ns.get({ id: 100_000 })
    expect(await ns.invalidateTag('tenant-t1')).toBeGreaterThanOrEqual(1)
    expect(await redis.command('EXISTS', ns.key({ id: 100_000 }))).toBe(':0\r\n')
  })

  it('never drop a member whose value lands after its tag (a load registers its tags first), only one that never lands', async () => {
    const store = redisStore({ url: redis.url })
    closers.push(() => store.close())
    await store.connect()
    const tag = 'pruning:raw#tag{t}'
    const ttl = 300 // the grace before a member seen gone may be dropped: min(TTL, 1 min)
    // Three live members, re-added again and again: each add looks at every member of a set this small.
    for (const key of ['pruning:a', 'pruning:b', 'pruning:c'])
      await redis.command('SET', key, 'x', 'PX', '60000')
    const churn = async (ms: number) => {
      for (const started = Date.now(); Date.now() - started < ms;) {
        for (const key of ['pruning:a', 'pruning:b', 'pruning:c']) await store.addToSet(tag, key, ttl)
        await sleep(10)
      }
    }
    await store.addToSet(tag, 'pruning:late', ttl) // its value is still on its way
    await store.addToSet(tag, 'pruning:never', ttl) // its load was dropped (a newer write won): no value will come
    await churn(200) // both are seen gone, within the grace
    expect((await members(tag)).sort()).toContain('pruning:late')
    await redis.command('SET', 'pruning:late', 'x', 'PX', '60000') // the late value lands
    await churn(500) // past the grace
    expect((await members(tag)).sort()).toEqual(['pruning:a', 'pruning:b', 'pruning:c', 'pruning:late'])
    expect(await keys('pruning:never#gone')).toEqual([])
  })

  it('are still written when the Redis user may not prune (no SRANDMEMBER, SREM), with one warning', async () => {
    // The ACL of docs/security.md before tag pruning.
    await redis.command(
      ...[
        'ACL',
        'SETUSER',
        'cache',
        'on',
        '>secret',
        'resetkeys',
        '~pruning:*',
        '~pruning#*',
        'resetchannels',
      ],
      ...['&pruning#*', '-@all', '+get', '+mget', '+set', '+unlink', '+scan', '+incr', '+pexpire', '+pttl'],
      ...['+sadd', '+sscan', '+rename', '+eval', '+publish', '+subscribe', '+ping', '+time', '+hello'],
    )
    const warnings: string[] = []
    const log = () => {}
    const cache = createCache({
      service: 'pruning',
      l2: redisStore({ url: redis.url, username: 'cache', password: 'secret' }),
      logger: { info: log, error: log, warn: (_fields, message) => void warnings.push(message) },
    })
    closers.push(() => cache.close())
    await cache.connect()
    const ns = cache.namespace('item', {
      key: 'i:{id}',
      ttl: '1m',
      l1: false,
      tags: () => ['t'],
      load: () => 'v',
    })
    for (let id = 0; id < 40; id++) await ns.get({ id })
    await sleep(20)
    expect(integerReply(await redis.command('SCARD', `${ns.prefix}#tag{t}`))).toBe(40)
    expect(cache.stats().l2).toMatchObject({ circuit: 'closed', failures: 0 })
    expect(warnings.filter((w) => w.includes('tag sets are not pruned'))).toHaveLength(1)
    expect(warnings.find((w) => w.includes('tag sets'))).toMatch(/\+srandmember and \+srem/)
    expect(await ns.invalidateTag('t')).toBe(40)
  })
})
