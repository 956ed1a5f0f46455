import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createCache, type Cache } from 'stratacache'
import { redisStore } from 'stratacache/redis'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { startRedis, type RedisServer } from '../helpers/redis-server.js'
import { rawClient } from '../chaos/support.js'

let redis: RedisServer
let dir: string
const closers: (() => Promise<void>)[] = []
beforeAll(async () => {
  redis = await startRedis()
  dir = mkdtempSync(join(tmpdir(), 'stratacache-access-'))
})
afterAll(async () => {
  await redis.stop()
  rmSync(dir, { recursive: true, force: true })
})
afterEach(async () => {
  await Promise.all(closers.splice(0).map((close) => close()))
})

function newCache(service: string): Cache {
  const cache = createCache({ service, l2: redisStore({ url: redis.url }) })
  closers.push(() => cache.close())
  return cache
}

interface Line {
  t: number
  ns: string
  k: string
  o: string
  s: number
}

describe('the sampled access log', () => {
  it('records every read of a sampled key, by tier, with a key hash and never the key', async () => {
    const file = join(dir, 'all.jsonl')
    const cache = newCache('access-all')
    const ns = cache.namespace('user', {
      key: 'user:{id}',
      ttl: '1m',
      load: ({ id }) => ({ id, name: 'someone' }),
      accessLog: { file, sampleRate: 1 },
    })
    await ns.get({ id: 'alice' }) // miss
    await ns.get({ id: 'alice' }) // L1
    await ns.getMany([{ id: 'alice' }, { id: 'bob' }]) // L1, miss
    const other = newCache('access-all').namespace('user', {
      key: 'user:{id}',
      ttl: '1m',
      load: ({ id }) => ({ id }),
      accessLog: { file, sampleRate: 1 },
    })
    await other.get({ id: 'bob' }) // L2
    await cache.close()
    await closers.at(-1)!()
    const lines = readFileSync(file, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Line)
    expect(lines.map((l) => l.o).sort()).toEqual(['l1', 'l1', 'l2', 'miss', 'miss'])
    expect(new Set(lines.map((l) => l.k)).size).toBe(2)
    for (const line of lines) {
      expect(Object.keys(line).sort()).toEqual(['k', 'ns', 'o', 's', 't'])
      expect(line.k).toMatch(/^[0-9a-f]{16}$/)
      expect(line.ns).toBe('user')
    }
    expect(readFileSync(file, 'utf8')).not.toMatch(/alice|bob|someone/)
  })

  it('samples by key: about the given share of keys, each with all its reads', async () => {
    const file = join(dir, 'sampled.jsonl')
    const cache = newCache('access-sampled')
    const ns = cache.namespace('item', {
      key: 'item:{id}',
      ttl: '1m',
      load: ({ id }) => ({ id }),
      accessLog: { file, sampleRate: 0.1 },
    })
    for (let round = 0; round < 3; round++) for (let id = 0; id < 2_000; id++) await ns.get({ id })
    await cache.close()
    const lines = readFileSync(file, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Line)
    const perKey = new Map<string, number>()
    for (const line of lines) perKey.set(line.k, (perKey.get(line.k) ?? 0) + 1)
    // 10% of 2,000 keys, give or take the hash's spread; every sampled key has its 3 reads.
    expect(perKey.size).toBeGreaterThan(150)
    expect(perKey.size).toBeLessThan(250)
    expect([...perKey.values()].every((n) => n === 3)).toBe(true)
  })

  it('stops a file at maxRecords, and keeps a Redis stream trimmed to about maxRecords', async () => {
    const file = join(dir, 'bounded.jsonl')
    const cache = newCache('access-bounded')
    const ns = cache.namespace('item', {
      key: 'item:{id}',
      ttl: '1m',
      load: ({ id }) => ({ id }),
      accessLog: { file, redisStream: true, sampleRate: 1, maxRecords: 100 },
    })
    for (let id = 0; id < 1_000; id++) await ns.get({ id })
    await cache.close()
    expect(readFileSync(file, 'utf8').trim().split('\n')).toHaveLength(100)
    const raw = await rawClient(redis.url)
    try {
      const length = await raw.xLen('access-bounded:item#access')
      // MAXLEN ~ trims whole nodes: about 100, never the 1,000 written.
      expect(length).toBeGreaterThanOrEqual(100)
      expect(length).toBeLessThan(300)
    } finally {
      await raw.close()
    }
  })

  it('refuses a log without a destination or with a bad rate', () => {
    const cache = newCache('access-bad')
    expect(() => cache.namespace('a', { key: 'a:{id}', ttl: '1m', accessLog: {} })).toThrow(
      /`a.accessLog`.*destination/,
    )
    expect(() =>
      cache.namespace('b', { key: 'b:{id}', ttl: '1m', accessLog: { file: 'x', sampleRate: 0 } }),
    ).toThrow(/`b.accessLog.sampleRate`/)
  })
})
