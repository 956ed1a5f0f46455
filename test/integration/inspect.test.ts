// cache.inspect() and inspectRedis() against a real redis-server: policy, warnings, budget, sampled estimates, ACLs.
import {
  channelNames,
  createCache,
  inspectRedis,
  type Cache,
  type CacheOptions,
  type L2BudgetMessage,
  type L2ErrorMessage,
  type RedisReport,
} from 'stratacache'
import { redisStore } from 'stratacache/redis'
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { startRedis, type RedisServer } from '../helpers/redis-server.js'
import { recordChannel } from '../chaos/support.js'

const MB = 1024 * 1024

// Own server, started with a memory limit and an evicting policy: the tests change its config and its ACL users.
let redis: RedisServer
const closers: (() => Promise<void>)[] = []
beforeAll(async () => {
  redis = await startRedis(['--maxmemory', '64mb', '--maxmemory-policy', 'allkeys-lru'])
})
afterAll(async () => {
  await redis.stop()
})
beforeEach(async () => {
  await redis.command('FLUSHALL')
  await redis.command('CONFIG', 'SET', 'maxmemory', String(64 * MB))
  await redis.command('CONFIG', 'SET', 'maxmemory-policy', 'allkeys-lru')
  await redis.command('CONFIG', 'RESETSTAT')
})
afterEach(async () => {
  await Promise.all(closers.splice(0).map((close) => close()))
})

function newCache(options: Partial<CacheOptions> = {}, url = redis.url): Cache {
  const cache = createCache({
    service: 'it-inspect',
    l2: redisStore({ url }),
    random: () => 0,
    // Filling 2,000 entries on a busy CI machine: these tests are not about timeouts (the last describe is).
    timeouts: { l2: 2_000 },
    ...options,
  })
  closers.push(() => cache.close())
  return cache
}

/** Two namespaces, one critical; `product` holds `count` entries written through the cache (each with its version key). */
async function populated(count: number, options: Partial<CacheOptions> = {}, url = redis.url) {
  const cache = newCache(options, url)
  await cache.connect()
  // 9m30s, not 10m: a TTL on a bucket's bound (10 min) read in the millisecond of its SET is still 600,000 ms, which
  // is the next bucket's ("below `upToMs`"): a fast machine put one entry there now and then.
  const orders = cache.namespace('orders', { key: 'order:{id}', ttl: '9m30s', jitter: 0, critical: true })
  const products = cache.namespace('product', { key: 'p:{id}', ttl: '1h', jitter: 0 })
  for (let start = 0; start < count; start += 100) {
    const ids = Array.from({ length: Math.min(100, count - start) }, (_, i) => start + i)
    await Promise.all(
      ids.map((id) => products.set({ id }, { id, name: `product ${id}`, pad: 'x'.repeat(40) })),
    )
  }
  return { cache, orders, products }
}

/** Writes `count` keys `prefix{i}` without a TTL, in one server-side loop. */
async function plantKeys(prefix: string, count: number): Promise<void> {
  await redis.command(
    'EVAL',
    "for i = 1, tonumber(ARGV[2]) do redis.call('SET', ARGV[1] .. i, 'noise') end",
    '0',
    prefix,
    String(count),
  )
}

const codes = (report: RedisReport) => report.warnings.map((w) => w.code)

describe('cache.inspect(): memory, policy and warnings', () => {
  it('reads used memory, maxmemory and the policy, and warns that a critical namespace may be evicted (allkeys-*)', async () => {
    const { cache } = await populated(10)
    const report = await cache.inspect()

    expect(report.memory.maxmemory).toEqual({ known: true, value: 64 * MB, source: 'CONFIG GET' })
    expect(report.memory.policy).toEqual({ known: true, value: 'allkeys-lru', source: 'CONFIG GET' })
    expect(report.memory.used).toMatchObject({ known: true, source: 'INFO memory' })
    const used = report.memory.used.known ? report.memory.used.value : NaN
    expect(used).toBeGreaterThan(100_000)
    expect(report.memory.usedRatio).toBe(used / (64 * MB))
    expect(report.stats.evictedKeys).toEqual({ known: true, value: 0, source: 'INFO stats' })
    expect(report.stats.expiredKeys).toMatchObject({ known: true, source: 'INFO stats' })
    expect(report.budget).toBeUndefined()

    expect(codes(report)).toEqual(['critical-evictable'])
    const [warning] = report.warnings
    expect(warning!.namespace).toBe('orders')
    expect(warning!.message).toContain('Namespace "orders" is critical')
    expect(warning!.message).toContain('maxmemory-policy allkeys-lru')
    expect(warning!.message).toContain('noeviction')
    expect(Object.keys(report.namespaces).sort()).toEqual(['orders', 'product'])
    expect(report.namespaces.orders!.critical).toBe(true)
    expect(report.namespaces.product!.critical).toBe(false)
  })

  it('warns about a critical namespace under a volatile-* policy too: every stratacache key has a TTL', async () => {
    await redis.command('CONFIG', 'SET', 'maxmemory-policy', 'volatile-lfu')
    const { cache } = await populated(1)
    const report = await cache.inspect()
    expect(codes(report)).toEqual(['critical-evictable'])
    expect(report.warnings[0]!.message).toContain('evicts keys that have a TTL')
    expect(report.warnings[0]!.message).toContain('volatile-lfu')
  })

  it('warns that writes fail when full under noeviction, and says nothing of critical namespaces there', async () => {
    await redis.command('CONFIG', 'SET', 'maxmemory-policy', 'noeviction')
    const { cache } = await populated(1)
    const report = await cache.inspect()
    expect(report.memory.policy).toMatchObject({ value: 'noeviction' })
    expect(codes(report)).toEqual(['noeviction'])
    expect(report.warnings[0]!.message).toContain('refuses writes once it reaches maxmemory (64.0 MiB)')
  })

  it('warns that memory is unbounded with maxmemory 0, where no policy ever evicts', async () => {
    await redis.command('CONFIG', 'SET', 'maxmemory', '0')
    const { cache } = await populated(1)
    const report = await cache.inspect()
    expect(report.memory.maxmemory).toMatchObject({ known: true, value: 0 })
    expect(report.memory.usedRatio).toBeUndefined()
    expect(codes(report)).toEqual(['no-memory-limit'])
    expect(report.warnings[0]!.message).toContain('Set maxmemory')
  })

  it('warns near the limit and after evictions, naming what to change', async () => {
    const { cache } = await populated(1)
    const before = await cache.inspect()
    const used = before.memory.used.known ? before.memory.used.value : NaN
    // A limit just above what is used: the next writes make Redis evict.
    await redis.command('CONFIG', 'SET', 'maxmemory', String(Math.round(used + 300_000)))
    await plantKeys('filler:', 20_000)
    const report = await cache.inspect()
    expect(report.stats.evictedKeys.known && report.stats.evictedKeys.value).toBeGreaterThan(0)
    expect(codes(report)).toEqual(['critical-evictable', 'near-memory-limit', 'keys-evicted'])
    expect(report.warnings[1]!.message).toMatch(
      /^Redis uses \d+% of its maxmemory .* evicts keys \(allkeys-lru\)/,
    )
    expect(report.warnings[2]!.message).toContain('Raise maxmemory')
  })
})

describe('cache.inspect(): the memory budget', () => {
  it('reports used memory against l2Budget and publishes stratacache:l2:budget when it is over', async () => {
    const events = recordChannel<L2BudgetMessage>(channelNames.l2Budget)
    try {
      const { cache } = await populated(1, { l2Budget: { maxBytes: 1 * MB } })
      const report = await cache.inspect()
      const used = report.memory.used.known ? report.memory.used.value : NaN
      expect(report.budget).toEqual({ maxBytes: MB, usedBytes: used, ratio: used / MB, exceeded: true })
      expect(events.messages).toEqual([{ service: 'it-inspect', usedBytes: used, maxBytes: MB }])
      expect(codes(report)).toContain('budget-exceeded')
      expect(report.warnings.find((w) => w.code === 'budget-exceeded')!.message).toContain(
        'over the budget of 1.0 MiB (l2Budget.maxBytes)',
      )
    } finally {
      events.stop()
    }
  })

  it('publishes nothing while usage is under the budget', async () => {
    const events = recordChannel<L2BudgetMessage>(channelNames.l2Budget)
    try {
      const { cache } = await populated(1, { l2Budget: { maxBytes: 1024 * MB } })
      const report = await cache.inspect()
      expect(report.budget).toMatchObject({ maxBytes: 1024 * MB, exceeded: false })
      expect(events.messages).toEqual([])
      expect(codes(report)).not.toContain('budget-exceeded')
    } finally {
      events.stop()
    }
  })

  it('refuses a budget without L2, or one that is not a positive whole number of bytes', () => {
    expect(() => createCache({ service: 's', l2Budget: { maxBytes: MB } })).toThrow(
      expect.objectContaining({ code: 'ERR_STRATA_INVALID_OPTION', option: 'l2Budget' }),
    )
    expect(() =>
      createCache({ service: 's', l2: redisStore({ url: redis.url }), l2Budget: { maxBytes: 0 } }),
    ).toThrow(expect.objectContaining({ code: 'ERR_STRATA_INVALID_OPTION', option: 'l2Budget.maxBytes' }))
  })
})

describe('cache.inspect(): per-namespace estimates from a bounded SCAN sample', () => {
  it('estimates keys and entries of a namespace among many other keys, from a sample of the stated size', async () => {
    const { cache } = await populated(2_000)
    await plantKeys('other:', 20_000)
    const report = await cache.inspect({ sampleKeys: 1_000 })
    const product = report.namespaces.product!
    expect(product.prefix).toBe('it-inspect:product:v1:')
    expect(product.estimated).toBe(true)
    expect(product.stoppedBy).toBe('sample-size')
    expect(product.seen).toBeGreaterThanOrEqual(1_000)
    expect(product.sampled).toBe(1_000)
    expect(product.coverage).toBeGreaterThan(0)
    expect(product.coverage).toBeLessThan(1)
    // 2,000 entries and their 2,000 version keys. About 500 entries are seen: one standard deviation of the estimate
    // is about 4%, so 25% is over 6 (bench/inspect.ts measures the error over fresh hash seeds).
    expect(product.keys).toBeGreaterThan(4_000 * 0.75)
    expect(product.keys).toBeLessThan(4_000 * 1.25)
    expect(product.entries).toBeGreaterThan(2_000 * 0.75)
    expect(product.entries).toBeLessThan(2_000 * 1.25)
    // Entries live 1 h (bucket [10m, 1h)), version keys 1 h + 1 min (bucket [1h, 1d)); none without a TTL.
    const buckets = product.ttl.buckets
    expect(buckets.map((b) => b.upToMs)).toEqual([10_000, 60_000, 600_000, 3_600_000, 86_400_000, null])
    expect(buckets[0]!.keys + buckets[1]!.keys + buckets[2]!.keys + buckets[5]!.keys).toBe(0)
    expect(buckets[3]!.keys + buckets[4]!.keys).toBe(1_000)
    expect(buckets[3]!.keys).toBeGreaterThan(300)
    expect(buckets[4]!.keys).toBeGreaterThan(300)
    expect(product.ttl.noExpiry).toBe(0)
    expect(product.bytes.source).toBe('MEMORY USAGE')
    expect(product.bytes.average).toBe(product.bytes.sampled / 1_000)
    expect(product.bytes.largest).toBeGreaterThanOrEqual(product.bytes.average)
    expect(product.bytes.estimatedTotal).toBe(Math.round(product.bytes.average * product.keys))
  })

  it('counts exactly when the scan sees the whole keyspace within the sample size', async () => {
    const { cache, orders } = await populated(30)
    for (let id = 0; id < 5; id++) await orders.set({ id }, { id })
    const report = await cache.inspect()
    expect(report.namespaces.orders).toMatchObject({
      estimated: false,
      stoppedBy: 'complete',
      coverage: 1,
      seen: 10,
      keys: 10,
      entries: 5,
      sampled: 10,
    })
    expect(report.namespaces.product).toMatchObject({ estimated: false, keys: 60, entries: 30, sampled: 60 })
    // orders' entries live 9m30s (bucket [1m, 10m)), their version keys 10m30s (bucket [10m, 1h)).
    expect(report.namespaces.orders!.ttl.buckets.map((b) => b.keys)).toEqual([0, 0, 5, 5, 0, 0])
  })

  it('stops a scan when its time runs out, still measuring a first batch, and says it estimated', async () => {
    const { cache } = await populated(200)
    await plantKeys('other:', 20_000)
    const report = await cache.inspect({ maxTime: 1, scanCount: 10 })
    const product = report.namespaces.product!
    expect(product.stoppedBy).toBe('time')
    expect(product.estimated).toBe(true)
    expect(product.coverage).toBeLessThan(1)
    expect(product.sampled).toBe(product.seen)
  })

  it('returns a frozen report', async () => {
    const { cache } = await populated(3)
    const report = await cache.inspect()
    expect(Object.isFrozen(report)).toBe(true)
    expect(Object.isFrozen(report.memory.policy)).toBe(true)
    expect(Object.isFrozen(report.namespaces.product!.ttl.buckets[0])).toBe(true)
    expect(Object.isFrozen(report.warnings)).toBe(true)
  })

  it('refuses bad sampling options with a typed error', async () => {
    const cache = newCache()
    await expect(cache.inspect({ sampleKeys: 0 })).rejects.toMatchObject({
      code: 'ERR_STRATA_INVALID_OPTION',
      option: 'inspect.sampleKeys',
    })
    await expect(cache.inspect({ ttlBuckets: ['1h', '1m'] })).rejects.toMatchObject({
      code: 'ERR_STRATA_INVALID_OPTION',
      option: 'inspect.ttlBuckets',
    })
  })
})

describe('refused commands (ACL, managed Redis): readings become unknown, never an exception', () => {
  /** A Redis user allowed everything but `denied` (ACL categories or commands, e.g. '-config'). */
  async function userWithout(name: string, ...denied: string[]): Promise<string> {
    await redis.command('ACL', 'SETUSER', name, 'reset', 'on', '>pw', '~*', '&*', '+@all', ...denied)
    return `redis://${name}:pw@127.0.0.1:${redis.port}`
  }

  it('without CONFIG, reads maxmemory and the policy from INFO memory, and the breaker does not count the refusal', async () => {
    const url = await userWithout('no-config', '-config')
    const errors = recordChannel<L2ErrorMessage>(channelNames.l2Error)
    try {
      const { cache } = await populated(3, { circuitBreaker: { failureThreshold: 1 } }, url)
      const report = await cache.inspect()
      expect(report.memory.maxmemory).toEqual({ known: true, value: 64 * MB, source: 'INFO memory' })
      expect(report.memory.policy).toEqual({ known: true, value: 'allkeys-lru', source: 'INFO memory' })
      expect(codes(report)).toEqual(['critical-evictable'])
      // A refusal is an answer: Redis is up, so no L2 error and the circuit stays closed (threshold 1).
      expect(errors.messages).toEqual([])
      expect(cache.stats().l2?.circuit).toBe('closed')
    } finally {
      errors.stop()
    }
  })

  it('without CONFIG and INFO, reports them unknown with the reason and warns the policy was not checked', async () => {
    const url = await userWithout('no-admin', '-config', '-info')
    const { cache } = await populated(3, {}, url)
    const report = await cache.inspect()
    expect(report.memory.policy.known).toBe(false)
    const reason = report.memory.policy.known ? '' : report.memory.policy.reason
    expect(reason).toMatch(/^CONFIG GET refused: NOPERM.*; INFO memory refused: NOPERM/)
    expect(report.memory.used).toMatchObject({ known: false, reason: expect.stringContaining('NOPERM') })
    expect(report.stats.evictedKeys.known).toBe(false)
    expect(codes(report)).toEqual(['policy-unknown'])
    expect(report.warnings[0]!.message).toContain('for the critical namespaces "orders"')
    expect(report.warnings[0]!.message).toContain('+config|get')
    // Sampling does not need them.
    expect(report.namespaces.product).toMatchObject({ keys: 6, sampled: 6 })
  })

  it('without MEMORY, measures value lengths (STRLEN) instead', async () => {
    const url = await userWithout('no-memory', '-memory')
    const { cache } = await populated(20, {}, url)
    const report = await cache.inspect()
    const product = report.namespaces.product!
    expect(product.bytes.source).toBe('STRLEN')
    expect(product.sampled).toBe(40)
    const envelopes = await Promise.all(
      Array.from({ length: 20 }, (_, id) =>
        redis.command('STRLEN', `it-inspect:product:v1:p:${id}`).then((r) => Number(r.slice(1))),
      ),
    )
    // Version counters are short integers; the entries are the envelopes.
    const versionBytes = product.bytes.sampled - envelopes.reduce((a, b) => a + b, 0)
    expect(versionBytes).toBe(20)
  })
})

describe('inspectRedis(): a bare store, as a command-line tool would use it', () => {
  it('samples the prefixes it is given and reports keys without a TTL', async () => {
    await plantKeys('legacy:', 50)
    const store = redisStore({ url: redis.url })
    try {
      await store.connect()
      const report = await inspectRedis(store, {
        namespaces: [{ name: 'legacy', prefix: 'legacy:', critical: true }],
        budget: { maxBytes: 1 },
      })
      expect(report.namespaces.legacy).toMatchObject({ keys: 50, sampled: 50, estimated: false })
      expect(report.namespaces.legacy!.ttl.noExpiry).toBe(50)
      expect(report.budget?.exceeded).toBe(true)
      expect(codes(report)).toEqual(['critical-evictable', 'budget-exceeded'])
    } finally {
      await store.close()
    }
  })

  it('refuses namespaces without a name and prefix, or with one name twice', async () => {
    const store = redisStore({ url: redis.url })
    try {
      for (const namespaces of [
        [{ name: 'a' }],
        [
          { name: 'a', prefix: 'x:' },
          { name: 'a', prefix: 'y:' },
        ],
      ]) {
        await expect(inspectRedis(store, { namespaces } as never)).rejects.toMatchObject({
          code: 'ERR_STRATA_INVALID_OPTION',
          option: 'inspectRedis.namespaces',
        })
      }
    } finally {
      await store.close()
    }
  })

  it('escapes glob characters in a prefix', async () => {
    await redis.command('SET', 'odd*[x]:1', 'v')
    await redis.command('SET', 'odd-other:1', 'v')
    const store = redisStore({ url: redis.url })
    try {
      const report = await inspectRedis(store, { namespaces: [{ name: 'odd', prefix: 'odd*[x]:' }] })
      expect(report.namespaces.odd).toMatchObject({ keys: 1, seen: 1 })
    } finally {
      await store.close()
    }
  })
})

describe('Redis down or absent', () => {
  it('rejects with the typed L2 error when Redis is down, and with a timeout when it is frozen', async () => {
    const own = await startRedis()
    try {
      const cache = newCache({ timeouts: { l2: 100 } }, own.url)
      await cache.connect()
      own.pause()
      await expect(cache.inspect()).rejects.toMatchObject({
        code: 'ERR_STRATA_L2_TIMEOUT',
        operation: 'info',
      })
      own.resume()
      await own.kill()
      await expect(cache.inspect()).rejects.toMatchObject({ code: expect.stringMatching(/^ERR_STRATA_L2_/) })

      const store = redisStore({ url: own.url })
      closers.push(() => store.close())
      await expect(inspectRedis(store, { timeout: 200 })).rejects.toMatchObject({
        code: expect.stringMatching(/^ERR_STRATA_L2_(FAILED|TIMEOUT)$/),
      })
    } finally {
      await own.stop()
    }
  })

  it('rejects with ERR_STRATA_NO_L2 without L2, and ERR_STRATA_CLOSED after close()', async () => {
    const l1Only = createCache({ service: 'l1-only' })
    await expect(l1Only.inspect()).rejects.toMatchObject({ code: 'ERR_STRATA_NO_L2' })
    await l1Only.close()
    const cache = newCache()
    await cache.close()
    await expect(cache.inspect()).rejects.toMatchObject({ code: 'ERR_STRATA_CLOSED' })
  })
})
