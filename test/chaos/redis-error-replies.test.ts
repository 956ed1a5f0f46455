// Redis answering with an error reply (OOM, WRONGTYPE, NOPERM, BUSY, ERR) is up: the circuit must stay closed.
import { channelNames, createCache, type CacheOptions, type L2StateMessage } from 'stratacache'
// Not re-exported from 'stratacache' yet (src/index.ts is another change's file).
import type { L2ErrorReplyMessage } from '../../src/observability/channels.js'
import { redisStore } from 'stratacache/redis'
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { startRedis, type RedisServer } from '../helpers/redis-server.js'
import { outcome, recordChannel, sleep, timed } from './support.js'

let redis: RedisServer
const closers: (() => Promise<void> | void)[] = []
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
  await redis.command('CONFIG', 'SET', 'maxmemory', '0')
})

/** A logger that records what the cache tells an operator. */
function recordingLogger() {
  const lines: { level: string; fields: Record<string, unknown>; message: string }[] = []
  const at = (level: string) => (fields: object, message: string) =>
    void lines.push({ level, fields: fields as Record<string, unknown>, message })
  return { lines, logger: { info: at('info'), warn: at('warn'), error: at('error') } }
}

async function newCache(options: Partial<CacheOptions> = {}, url = redis.url) {
  const log = recordingLogger()
  const cache = createCache({ service: 'replies', l2: redisStore({ url }), logger: log.logger, ...options })
  closers.push(() => cache.close())
  await cache.connect()
  return { cache, log }
}

function record() {
  const states = recordChannel<L2StateMessage>(channelNames.l2State)
  const replies = recordChannel<L2ErrorReplyMessage>(channelNames.l2ErrorReply)
  closers.push(() => {
    states.stop()
    replies.stop()
  })
  return { states, replies }
}

describe('Redis full (maxmemory reached, noeviction): writes answered OOM', () => {
  it('keeps the circuit closed and serves keys cached in Redis from Redis while every write fails', async () => {
    const { states, replies } = record()
    const { cache, log } = await newCache()
    const loads = { cached: 0, cold: 0 }
    const ns = cache.namespace('item', {
      key: 'i:{id}',
      ttl: '10m',
      l1: false,
      lock: false,
      load: ({ id }: { id: number }) => {
        if (id < 100) loads.cached++
        else loads.cold++
        return 'x'.repeat(1000) + id
      },
    })
    for (let id = 0; id < 100; id++) await ns.get({ id })
    // 100 entries, and the namespace's fence epoch and server id (docs/consistency.md).
    await expect.poll(async () => (await redis.command('DBSIZE')).trim()).toBe(':102')
    loads.cached = 0
    const used = Number(/used_memory:(\d+)/.exec(await redis.command('INFO', 'memory'))![1])
    // Well under what it uses: every write is refused (a margin of 1 KiB lets a few through as buffers shrink).
    await redis.command(
      'CONFIG',
      'SET',
      'maxmemory',
      String(used - 256 * 1024),
      'maxmemory-policy',
      'noeviction',
    )

    // The review's scenario (d12): a few cold keys among reads of cached keys; today 200 of 200 cached reads went
    // to the source, because five failed writes opened the circuit.
    let id = 100
    for (let round = 0; round < 20; round++) {
      await Promise.all(Array.from({ length: 6 }, () => ns.get({ id: id++ })))
      await sleep(20)
      await Promise.all(Array.from({ length: 10 }, (_, i) => ns.get({ id: (round * 10 + i) % 100 })))
    }

    expect(loads).toEqual({ cached: 0, cold: 120 })
    expect(states.messages.filter((m) => m.circuit !== undefined)).toEqual([])
    const l2 = cache.stats().l2!
    expect(l2).toMatchObject({ circuit: 'closed', refused: 0, timeouts: 0 })
    expect(l2.errorRepliesByKind).toEqual({ OOM: 120 }) // the write of each cold load
    expect(l2.errorReplies).toBe(l2.failures)
    expect(replies.messages.length).toBe(l2.errorReplies)
    expect(replies.messages[0]).toMatchObject({
      kind: 'OOM',
      error: { code: 'ERR_STRATA_L2_FAILED', reply: 'OOM' },
    })

    // A write says why it failed, and the operator is told once what to change.
    const write = await timed(() => ns.set({ id: 1 }, 'new'))
    expect(outcome(write)).toMatchObject({ code: 'ERR_STRATA_L2_FAILED', reply: 'OOM' })
    const warnings = log.lines.filter((line) => line.fields['reply'] === 'OOM')
    expect(warnings).toHaveLength(1)
    expect(warnings[0]!.level).toBe('warn')
    expect(warnings[0]!.message).toMatch(
      /raise maxmemory, or set an evicting maxmemory-policy such as allkeys-lru/i,
    )
  })
})

describe('other error replies', () => {
  it('keeps the circuit closed on WRONGTYPE (a string where a tag set lives), and counts the replies by kind', async () => {
    const { states } = record()
    const { cache, log } = await newCache({ circuitBreaker: { failureThreshold: 3 } })
    const declare = (c: typeof cache, loads = { count: 0 }) =>
      c.namespace('item', {
        key: 'i:{id}',
        ttl: '1m',
        l1: false,
        tags: () => ['t'],
        load: ({ id }: { id: number }) => (loads.count++, `v${id}`),
      })
    const loads = { count: 0 }
    const ns = declare(cache, loads)
    // Something else wrote a string at the tag's set: every tagged write is answered WRONGTYPE.
    await redis.command('SET', `${ns.prefix}#tag{t}`, 'intruder')
    for (let id = 0; id < 10; id++) await ns.get({ id })
    expect(loads.count).toBe(10)
    await expect.poll(() => cache.stats().l2?.errorRepliesByKind).toEqual({ WRONGTYPE: 10 })
    expect(cache.stats().l2?.circuit).toBe('closed')
    expect(states.messages.filter((m) => m.circuit !== undefined)).toEqual([])
    // The values themselves landed: another process reads them from Redis.
    const otherLoads = { count: 0 }
    const other = declare((await newCache()).cache, otherLoads)
    for (let id = 0; id < 10; id++) expect(await other.get({ id })).toBe(`v${id}`)
    expect(otherLoads.count).toBe(0)
    expect(log.lines.filter((line) => line.fields['reply'] === 'WRONGTYPE')).toHaveLength(1)
  })

  it('keeps the circuit closed while an ACL refuses writes with NOPERM', async () => {
    await redis.command('ACL', 'SETUSER', 'reader', 'on', '>secret', '~*', '&*', '+@all', '-set')
    closers.push(async () => void (await redis.command('ACL', 'DELUSER', 'reader')))
    const { states } = record()
    const { cache, log } = await newCache(
      { circuitBreaker: { failureThreshold: 3 } },
      redis.url.replace('redis://', 'redis://reader:secret@'),
    )
    const ns = cache.namespace('item', { key: 'i:{id}', ttl: '1m', l1: false, load: () => 'loaded' })
    const writes = []
    for (let i = 0; i < 6; i++) writes.push(await timed(() => ns.set({ id: i }, 'v')))
    expect(writes.map(outcome)).toEqual(Array(6).fill(expect.objectContaining({ reply: 'NOPERM' })))
    expect(cache.stats().l2).toMatchObject({ circuit: 'closed', errorRepliesByKind: { NOPERM: 6 } })
    expect(states.messages.filter((m) => m.circuit !== undefined)).toEqual([])
    expect(log.lines.find((line) => line.fields['reply'] === 'NOPERM')?.message).toMatch(/ACL/)
  })

  it('keeps the circuit closed while a long script makes Redis answer BUSY, and uses Redis again once it ends', async () => {
    const { states } = record()
    const { cache } = await newCache({ circuitBreaker: { failureThreshold: 3 } })
    let loads = 0
    const ns = cache.namespace('item', {
      key: 'i:{id}',
      ttl: '1m',
      l1: false,
      lock: false,
      load: () => ++loads,
    })
    await ns.get({ id: 0 })
    await redis.command('CONFIG', 'SET', 'busy-reply-threshold', '20')
    closers.push(async () => void (await redis.command('CONFIG', 'SET', 'busy-reply-threshold', '5000')))
    const script = redis.command('EVAL', 'while true do end', '0').catch(() => '')
    await sleep(100)
    const reads = []
    for (let i = 1; i <= 6; i++) reads.push(await timed(() => ns.get({ id: i })))
    expect(reads.filter((r) => !r.ok)).toEqual([])
    expect(cache.stats().l2).toMatchObject({ circuit: 'closed', timeouts: 0 })
    expect(cache.stats().l2!.errorRepliesByKind['BUSY']).toBeGreaterThanOrEqual(6)
    await redis.command('SCRIPT', 'KILL')
    await script
    expect(await ns.get({ id: 0 })).toBe(1) // from Redis, not loaded again
    expect(states.messages.filter((m) => m.circuit !== undefined)).toEqual([])
  })

  it('keeps the circuit closed when Redis answers ERR to a command it does not know (as PEXPIRE … GT on Redis 6)', async () => {
    const old = await startRedis(['--rename-command', 'PEXPIRE', ''])
    closers.push(() => old.stop())
    const { states } = record()
    const { cache } = await newCache({ circuitBreaker: { failureThreshold: 3 } }, old.url)
    const ns = cache.namespace('item', { key: 'i:{id}', ttl: '1m', l1: false, load: () => 'loaded' })
    const writes = []
    for (let i = 0; i < 6; i++) writes.push(await timed(() => ns.set({ id: i }, 'v')))
    expect(writes.map(outcome)).toEqual(Array(6).fill(expect.objectContaining({ reply: 'ERR' })))
    expect(cache.stats().l2).toMatchObject({ circuit: 'closed', errorRepliesByKind: { ERR: 6 } })
    expect(states.messages.filter((m) => m.circuit !== undefined)).toEqual([])
  })
})
