// ns.warm(): a set of keys loaded before traffic needs them, under the namespace's lock and source limit, with a
// budget of its own (concurrency, keys per second, a signal), counting what it loaded, found fresh and failed.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Registry } from 'prom-client'
import { createCache, type Cache, type CacheOptions, type NamespaceOptions } from 'stratacache'
import { diskStore } from 'stratacache/disk'
import { prometheusMetrics } from 'stratacache/prometheus'
import { redisStore } from 'stratacache/redis'
import { describe, expect, it } from 'vitest'
import { deferred } from '../helpers/deferred.js'
import { startRedis } from '../helpers/redis-server.js'
import { redisSuite } from '../helpers/suite.js'

const suite = redisSuite({ flushBeforeEach: true })

type NamespaceSource = NonNullable<NamespaceOptions<string, [], unknown, unknown>['source']>

async function newCache(options: Partial<CacheOptions> = {}): Promise<Cache> {
  const cache = createCache({
    service: 'it-warm',
    random: () => 0,
    l2: redisStore({ url: suite.redis.url }),
    logger: false,
    ...options,
  })
  suite.closers.push(() => cache.close())
  await cache.connect()
  return cache
}

/** A product namespace whose loader counts its calls and how many run at once. */
function products(
  cache: Cache,
  behaviour: { delayMs?: number; failIds?: number[]; gate?: Promise<void>; source?: NamespaceSource } = {},
) {
  const source = { calls: 0, active: 0, maxActive: 0, ids: [] as number[] }
  const ns = cache.namespace('product', {
    key: 'p:{id}',
    ttl: '10m',
    ...(behaviour.source === undefined ? {} : { source: behaviour.source }),
    load: async ({ id }: { id: number }) => {
      source.calls++
      source.ids.push(id)
      source.active++
      source.maxActive = Math.max(source.maxActive, source.active)
      try {
        if (behaviour.delayMs !== undefined) await new Promise((r) => setTimeout(r, behaviour.delayMs))
        if (behaviour.gate !== undefined) await behaviour.gate
        if (behaviour.failIds?.includes(id)) throw new Error(`product ${id} is broken`)
        return { id, name: `product ${id}` }
      } finally {
        source.active--
      }
    },
  })
  return { ns, source }
}

const ids = (n: number, from = 1) => Array.from({ length: n }, (_, i) => ({ id: from + i }))

describe('ns.warm()', () => {
  it('loads what is missing, leaves what is fresh in L1 or L2 (copying L2 into L1), and counts each', async () => {
    const other = products(await newCache())
    await other.ns.get({ id: 3 }) // fresh in L2, through another process
    await expect.poll(() => suite.redis.command('EXISTS', other.ns.key({ id: 3 }))).toBe(':1\r\n')
    const { ns, source } = products(await newCache())
    await ns.get({ id: 1 }) // fresh in L1
    source.calls = 0

    const result = await ns.warm(ids(5))
    expect(result).toMatchObject({ done: 5, loaded: 3, fresh: 2, failed: 0, aborted: false, errors: [] })
    expect(result.durationMs).toBeGreaterThan(0)
    expect(source.calls).toBe(3)
    expect(source.ids.slice(-3).sort()).toEqual([2, 4, 5])
    // Everything is in L1 now: reads need neither Redis nor the source.
    const hitsBefore = ns.stats().l1Hits
    expect(await ns.getMany(ids(5))).toHaveLength(5)
    expect(ns.stats().l1Hits - hitsBefore).toBe(5)
    expect(source.calls).toBe(3)
  })

  it('runs at most `concurrency` loads at once and reports progress after each key', async () => {
    const { ns, source } = products(await newCache(), { delayMs: 20 })
    const progress: number[] = []
    const result = await ns.warm(ids(12), { concurrency: 3, onProgress: (p) => progress.push(p.done) })
    expect(result.loaded).toBe(12)
    expect(source.maxActive).toBe(3)
    expect(progress).toEqual(ids(12).map(({ id }) => id))
  })

  it('starts at most maxPerSecond keys per second', async () => {
    const { ns } = products(await newCache())
    const result = await ns.warm(ids(6), { maxPerSecond: 20, concurrency: 6 })
    expect(result.loaded).toBe(6)
    // Six starts 50 ms apart: the last starts 250 ms after the first (a lower bound, not a speed claim).
    expect(result.durationMs).toBeGreaterThanOrEqual(240)
  })

  it("keeps to the namespace's source limit: concurrency 10 under source.maxConcurrent 2 never runs more than 2 loads, and the keys over it wait their turn", async () => {
    const { ns, source } = products(await newCache(), { delayMs: 20, source: { maxConcurrent: 2 } })
    const result = await ns.warm(ids(20), { concurrency: 10 })
    expect(result).toMatchObject({ done: 20, loaded: 20, fresh: 0, failed: 0, aborted: false, errors: [] })
    expect(source.calls).toBe(20)
    expect(source.maxActive).toBe(2)
    // The keys over the limit waited (overflow: 'wait', the default): none was refused.
    expect(ns.stats().sourceBusy).toBe(0)
  })

  it.each([
    ["overflow: 'error'", { maxConcurrent: 2, overflow: 'error' }],
    ['a wait past source.maxWait', { maxConcurrent: 2, maxWait: '50ms' }],
  ] as const)(
    'counts the keys the source limit refuses (%s) as failed with ERR_STRATA_SOURCE_BUSY, and goes on',
    async (_, limit) => {
      const gate = deferred<void>()
      const { ns, source } = products(await newCache(), { gate: gate.promise, source: limit })
      // Two loads hold the source's two slots until the eight other keys have been refused.
      const result = await ns.warm(ids(10), {
        concurrency: 10,
        onProgress: (p) => {
          if (p.failed === 8) gate.resolve()
        },
      })
      expect(result).toMatchObject({ done: 10, loaded: 2, fresh: 0, failed: 8, aborted: false })
      expect(source.maxActive).toBe(2)
      expect(source.calls).toBe(2)
      expect(result.errors.map((e) => (e.error as Error & { code: string }).code)).toEqual(
        Array<string>(8).fill('ERR_STRATA_SOURCE_BUSY'),
      )
      const loaded = new Set(source.ids.map((id) => ns.key({ id })))
      expect(result.errors.every((e) => e.key !== undefined && !loaded.has(e.key))).toBe(true)
      expect(ns.stats().sourceBusy).toBe(8)
    },
  )

  it('loads each key once across two processes warming the same keys at the same time (the lock)', async () => {
    const a = products(await newCache(), { delayMs: 30 })
    const b = products(await newCache(), { delayMs: 30 })
    const [ra, rb] = await Promise.all([a.ns.warm(ids(8)), b.ns.warm(ids(8))])
    expect(a.source.calls + b.source.calls).toBe(8)
    expect(ra.failed + rb.failed).toBe(0)
    expect(ra.done + rb.done).toBe(16)
  })

  it('counts failures with their keys and goes on; bad parameters fail their key only', async () => {
    const { ns } = products(await newCache(), { failIds: [2] })
    const keys = [{ id: 1 }, { id: 2 }, { nope: 3 } as unknown as { id: number }, { id: 4 }]
    const result = await ns.warm(keys)
    expect(result).toMatchObject({ done: 4, loaded: 2, failed: 2 })
    // Both failures, in the order they settled (the bad parameters fail before any load does).
    const failures = result.errors.map((e) => [e.key, (e.error as Error & { code: string }).code])
    expect(failures).toHaveLength(2)
    expect(failures).toContainEqual([ns.key({ id: 2 }), 'ERR_STRATA_LOADER_FAILED'])
    expect(failures).toContainEqual([undefined, expect.stringMatching(/^ERR_STRATA_/)])
  })

  it('counts keys loaded while Redis does not answer (paused past timeouts.l2) as loaded but not stored', async () => {
    const cache = await newCache({ timeouts: { l2: '50ms' } })
    const registry = new Registry()
    prometheusMetrics(cache, { registry })
    const { ns } = products(cache)
    expect(await ns.warm(ids(1))).toMatchObject({ loaded: 1, notStored: 0 })
    suite.redis.pause()
    const result = await ns.warm(ids(3, 2))
    suite.redis.resume()
    expect(result).toMatchObject({ done: 3, loaded: 3, fresh: 0, failed: 0, notStored: 3 })
    expect(ns.stats()).toMatchObject({ warmUpKeysLoaded: 4, warmUpKeysNotStored: 3 })
    const text = await registry.metrics()
    expect(text).toContain(
      'stratacache_warm_up_keys_total{cache="it-warm",cache_namespace="product",outcome="loaded"} 4',
    )
    expect(text).toContain(
      'stratacache_warm_up_keys_not_stored_total{cache="it-warm",cache_namespace="product"} 3',
    )
    // This process holds them; Redis does not: another process would load them again.
    expect(await ns.peek({ id: 2 })).toEqual({ id: 2, name: 'product 2' })
    const keys = [2, 3, 4].map((id) => ns.key({ id }))
    expect(await suite.redis.command('EXISTS', ...keys)).toBe(':0\r\n')
    expect(await suite.redis.command('EXISTS', ns.key({ id: 1 }))).toBe(':1\r\n')
  })

  it('counts a key as not stored when Redis refuses its write (out of memory) though it answers its reads', async () => {
    const cache = await newCache()
    const { ns } = products(cache)
    expect(await ns.warm(ids(1))).toMatchObject({ loaded: 1, notStored: 0 })
    await suite.redis.command('CONFIG', 'SET', 'maxmemory', '1')
    try {
      const result = await ns.warm(ids(2, 2))
      expect(result).toMatchObject({ done: 2, loaded: 2, failed: 0, notStored: 2 })
    } finally {
      await suite.redis.command('CONFIG', 'SET', 'maxmemory', '0')
    }
    // The writes failed with Redis's OOM reply (Redis is up: the circuit stayed closed), and nothing landed.
    expect(cache.stats().l2).toMatchObject({
      circuit: 'closed',
      errorRepliesByKind: { OOM: expect.any(Number) },
    })
    expect(await suite.redis.command('EXISTS', ns.key({ id: 2 }), ns.key({ id: 3 }))).toBe(':0\r\n')
  })

  it('does not count as not stored what was never meant for L2: a value it cannot encode, a life the loader ended', async () => {
    const cache = await newCache()
    const odd = cache.namespace('odd', {
      key: 'o:{id}',
      ttl: '10m',
      load: ({ id }: { id: number }, context) => {
        if (id === 1) return { id, big: 10n } // JSON cannot hold a BigInt: kept in L1 only
        context.setTtl(0) // the loader says: do not keep this one
        return { id }
      },
    })
    expect(await odd.warm([{ id: 1 }, { id: 2 }])).toMatchObject({ loaded: 2, failed: 0, notStored: 0 })
    expect(odd.stats().serializeErrors).toBe(1)
  })

  it('counts every key as not stored when Redis is down from the start (its generation never read)', async () => {
    const down = await startRedis()
    await down.stop()
    const cache = createCache({
      service: 'it-warm',
      l2: redisStore({ url: down.url }),
      timeouts: { l2: '50ms' },
      logger: false,
    })
    suite.closers.push(() => cache.close())
    const { ns } = products(cache)
    expect(await ns.warm(ids(2))).toMatchObject({ done: 2, loaded: 2, failed: 0, notStored: 2 })
    // Without an L2, nothing is expected of it: loaded keys are not "not stored".
    const l1Only = createCache({ service: 'it-warm', logger: false })
    suite.closers.push(() => l1Only.close())
    expect(await products(l1Only).ns.warm(ids(2))).toMatchObject({ loaded: 2, notStored: 0 })
  })

  it('stops starting keys once its signal aborts; the keys under way finish', async () => {
    const { ns, source } = products(await newCache(), { delayMs: 20 })
    const controller = new AbortController()
    const result = await ns.warm(ids(50), {
      concurrency: 2,
      signal: controller.signal,
      onProgress: (p) => {
        if (p.done === 4) controller.abort()
      },
    })
    expect(result.aborted).toBe(true)
    expect(result.done).toBeLessThan(50)
    expect(result.done).toBe(source.calls)
  })

  for (const [when, pacing] of [
    ['', {}],
    [', with maxPerSecond set', { maxPerSecond: 1_000 }],
  ] as const) {
    it(`starts no key after its signal aborts while every slot is busy (waiting for a free slot)${when}`, async () => {
      const gate = deferred<void>()
      const { ns, source } = products(await newCache(), { gate: gate.promise })
      const controller = new AbortController()
      const warming = ns.warm(ids(10), { concurrency: 2, ...pacing, signal: controller.signal })
      // Both slots hold a slow load; the warm-up waits for one to free up, the third key already taken.
      await expect.poll(() => source.calls).toBe(2)
      controller.abort()
      gate.resolve()
      const result = await warming
      expect(result).toMatchObject({ aborted: true, done: 2, loaded: 2, failed: 0 })
      // The two loads start in either order: each waits for its own L2 read first.
      expect([...source.ids].sort((a, b) => a - b)).toEqual([1, 2])
    })
  }

  it('starts no key after its signal aborts during the wait for maxPerSecond, and ends without waiting it out', async () => {
    const { ns, source } = products(await newCache())
    const controller = new AbortController()
    // One key a minute: the second key waits for its turn, and the signal aborts during that wait.
    const warming = ns.warm(ids(3), { concurrency: 3, maxPerSecond: 1 / 60, signal: controller.signal })
    await expect.poll(() => source.calls).toBe(1)
    controller.abort()
    const result = await warming
    expect(result).toMatchObject({ aborted: true, done: 1, loaded: 1 })
    expect(source.ids).toEqual([1])
    // It ended before the turn it was waiting for was due: it did not sit out the minute.
    expect(result.durationMs).toBeLessThan(60_000)
  })

  it('reloads fresh keys with refresh: true', async () => {
    const { ns, source } = products(await newCache())
    await ns.warm(ids(3))
    // Once the first loads released their locks (else the refresh adopts what they just stored, as it should).
    await expect.poll(() => suite.redis.command('KEYS', '*#lock')).toBe('*0\r\n')
    const result = await ns.warm(ids(3), { refresh: true })
    expect(result).toMatchObject({ loaded: 3, fresh: 0 })
    expect(source.calls).toBe(6)
  })

  it('takes an async iterable (a cursor over a table, a file of ids)', async () => {
    const { ns } = products(await newCache())
    async function* fromCursor() {
      for (let id = 1; id <= 4; id++) yield { id }
    }
    expect(await ns.warm(fromCursor())).toMatchObject({ loaded: 4 })
  })

  it('a get arriving while the warm-up loads its key joins that load', async () => {
    const gate = deferred<void>()
    let calls = 0
    const ns = (await newCache()).namespace('slow', {
      key: 's:{id}',
      ttl: '10m',
      load: async ({ id }: { id: number }) => {
        calls++
        await gate.promise
        return id
      },
    })
    const warming = ns.warm([{ id: 1 }])
    await expect.poll(() => calls).toBe(1)
    const reading = ns.get({ id: 1 })
    gate.resolve()
    expect(await reading).toBe(1)
    expect(await warming).toMatchObject({ loaded: 1 })
    expect(calls).toBe(1)
  })

  it('refuses bad input with typed errors that say what to pass', async () => {
    const { ns } = products(await newCache())
    await expect(ns.warm(42 as never)).rejects.toMatchObject({ code: 'ERR_STRATA_INVALID_ARGUMENT' })
    await expect(ns.warm([], { concurrency: 0 })).rejects.toMatchObject({
      code: 'ERR_STRATA_INVALID_ARGUMENT',
      message: expect.stringContaining('an integer from 1 to 10000'),
    })
    await expect(ns.warm([], { maxPerSecond: -1 })).rejects.toMatchObject({
      code: 'ERR_STRATA_INVALID_ARGUMENT',
    })
    await expect(ns.warm([], { concurency: 2 } as never)).rejects.toMatchObject({
      code: 'ERR_STRATA_UNKNOWN_OPTION',
      message: expect.stringContaining('concurrency'),
    })
  })
})

describe('warm-up metrics', () => {
  it('counts warm-ups, their keys by outcome and their time in stats() and the Prometheus exporter', async () => {
    const cache = await newCache()
    const { ns } = products(cache, { failIds: [4] })
    const registry = new Registry()
    prometheusMetrics(cache, { registry })
    // No warm-up yet: the warm-up series are absent, not zeros.
    expect(await registry.metrics()).not.toMatch(/^stratacache_warm_up\S*\{/m)
    await ns.get({ id: 1 })
    const first = await ns.warm(ids(5))
    await ns.warm(ids(2))
    const stats = ns.stats()
    expect(stats).toMatchObject({
      warmUps: 2,
      warmUpKeysLoaded: 3,
      warmUpKeysFresh: 1 + 2,
      warmUpKeysFailed: 1,
      warmStarts: 0,
      warmStartKeys: 0,
    })
    expect(stats.warmUpMs).toBeGreaterThanOrEqual(first.durationMs)
    // Warm-up loads are loads, not reads.
    expect(stats.l1Hits + stats.l2Hits + stats.misses).toBe(1)
    expect(await registry.metrics()).not.toMatch(/^stratacache_warm_start_duration/m)
    await cache.warmStart()
    expect(ns.stats()).toMatchObject({ warmStarts: 1, warmStartMs: expect.any(Number) })
    expect(ns.stats().warmStartMs).toBeGreaterThan(0)
    const text = await registry.metrics()
    expect(text).toContain(
      'stratacache_warm_ups_total{cache="it-warm",cache_namespace="product",kind="warm"} 2',
    )
    expect(text).toContain(
      'stratacache_warm_ups_total{cache="it-warm",cache_namespace="product",kind="warm_start"} 1',
    )
    expect(text).toContain(
      'stratacache_warm_up_keys_total{cache="it-warm",cache_namespace="product",outcome="loaded"} 3',
    )
    expect(text).toContain(
      'stratacache_warm_up_keys_total{cache="it-warm",cache_namespace="product",outcome="failed"} 1',
    )
    expect(text).toMatch(
      /stratacache_warm_up_duration_seconds_total\{cache="it-warm",cache_namespace="product"\} 0\.\d+/,
    )
    expect(text).toMatch(
      /stratacache_warm_start_duration_seconds_total\{cache="it-warm",cache_namespace="product"\} \d\.\d+/,
    )
  })
})

describe('warm start', () => {
  it('a new process starts with the hot keys the closing one saved, from L2, without calling its loader', async () => {
    const old = await newCache()
    const before = products(old)
    for (const id of [1, 2, 3]) for (let i = 0; i < id * 3; i++) await before.ns.get({ id })
    await expect.poll(() => suite.redis.command('EXISTS', before.ns.key({ id: 3 }))).toBe(':1\r\n')
    await old.close({ saveHotKeys: true })

    const next = products(await newCache())
    const result = await next.ns.warmStart()
    expect(result).toEqual({ saved: 3, warmed: 3 })
    const hits = next.ns.stats().l1Hits
    await next.ns.getMany(ids(3))
    expect(next.ns.stats().l1Hits - hits).toBe(3)
    expect(next.source.calls).toBe(0)
  })

  it("counts the first minute's reads as a warm start after warmStart(), and as a cold one without, in stats() and Prometheus", async () => {
    const old = await newCache()
    const before = products(old)
    for (const id of [1, 2, 3]) for (let i = 0; i < 3; i++) await before.ns.get({ id })
    await expect.poll(() => suite.redis.command('EXISTS', before.ns.key({ id: 3 }))).toBe(':1\r\n')
    await old.close({ saveHotKeys: true })

    const coldCache = await newCache()
    const cold = products(coldCache)
    const warmCache = await newCache()
    const warm = products(warmCache)
    await warmCache.warmStart()
    // Each reads the 3 saved keys and one never read before.
    await cold.ns.getMany(ids(4))
    await warm.ns.getMany([{ id: 1 }, { id: 2 }, { id: 3 }, { id: 5 }])
    expect(warmCache.stats().startup).toEqual({
      start: 'warm',
      complete: false,
      reads: 4,
      l1Hits: 3,
      l2Hits: 0,
      misses: 1,
    })
    const registry = new Registry()
    prometheusMetrics(warmCache, { registry })
    const text = await registry.metrics()
    expect(text).toContain('stratacache_first_minute_reads_total{cache="it-warm",start="warm"} 4')
    expect(text).toContain('stratacache_first_minute_hits_total{cache="it-warm",start="warm",tier="l1"} 3')
    // The cold process found the same three keys in L2 only.
    expect(coldCache.stats().startup).toEqual({
      start: 'cold',
      complete: false,
      reads: 4,
      l1Hits: 0,
      l2Hits: 3,
      misses: 1,
    })
  })

  it('takes every key the closing process saved (not a default count), up to what L1 holds', async () => {
    // A loaded suite machine: L2 calls get 2 s, so the 1,500 background writes and the MGET never time out.
    const old = await newCache({ timeouts: { l2: '2s' } })
    const before = products(old)
    await before.ns.getMany(ids(1_500))
    await expect
      .poll(() => suite.redis.command('EXISTS', before.ns.key({ id: 1_500 })), { timeout: 10_000 })
      .toBe(':1\r\n')
    await old.close({ saveHotKeys: 1_500 })

    const next = products(await newCache({ timeouts: { l2: '2s' } }))
    expect(await next.ns.warmStart()).toEqual({ saved: 1_500, warmed: 1_500 })
    const small = products(await newCache({ l1: { maxEntries: 500 }, timeouts: { l2: '2s' } }))
    expect(await small.ns.warmStart()).toEqual({ saved: 1_500, warmed: 500 })
    expect(next.source.calls + small.source.calls).toBe(0)
  })

  it('saves and restores the hot keys in whatever L2 the cache has: the disk store too, without Redis', async () => {
    const path = mkdtempSync(join(tmpdir(), 'strata-warm-'))
    suite.closers.push(() => rmSync(path, { recursive: true, force: true }))
    const onDisk = async () => {
      const cache = createCache({
        service: 'it-warm',
        random: () => 0,
        l2: diskStore({ path, maxBytes: 16 * 1024 * 1024 }),
        logger: false,
      })
      suite.closers.push(() => cache.close())
      await cache.connect()
      return cache
    }
    const old = await onDisk()
    const before = products(old)
    for (const id of [1, 2, 3]) for (let i = 0; i < id * 3; i++) await before.ns.get({ id })
    await old.close({ saveHotKeys: true })

    const next = products(await onDisk())
    expect(await next.ns.warmStart()).toEqual({ saved: 3, warmed: 3 })
    const hits = next.ns.stats().l1Hits
    await next.ns.getMany(ids(3))
    expect(next.ns.stats().l1Hits - hits).toBe(3)
    expect(next.source.calls).toBe(0)
    // Nothing went to Redis: the list and the entries lived on disk.
    expect(await suite.redis.command('DBSIZE')).toBe(':0\r\n')
  })

  it('a saved list of foreign bytes is a miss counted in decodeErrors, never a throw', async () => {
    const cache = await newCache()
    const { ns } = products(cache)
    await suite.redis.command('SET', `${ns.prefix}#hot`, 'not json at all')
    expect(await cache.warmStart()).toMatchObject({ namespaces: { product: { saved: 0, warmed: 0 } } })
    expect(ns.stats().decodeErrors).toBe(1)
  })

  it('personal namespaces save nothing; bad close() options are refused', async () => {
    const cache = await newCache()
    const ns = cache.namespace('person', {
      key: 'u:{id}',
      ttl: '1m',
      classification: 'personal',
      redact: ['email'],
      load: ({ id }: { id: number }) => ({ id, email: `u${id}@example.test` }),
    })
    await ns.get({ id: 1 })
    expect(await ns.saveHotKeys()).toBe(0)
    await expect(cache.close({ saveHotKey: true } as never)).rejects.toMatchObject({
      code: 'ERR_STRATA_UNKNOWN_OPTION',
    })
    await expect(cache.close({ saveHotKeys: -1 })).rejects.toMatchObject({
      code: 'ERR_STRATA_INVALID_OPTION',
    })
  })
})
