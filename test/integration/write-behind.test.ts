import { channelNames, createCache, type Cache, type QueuedWrite, type WriteContext } from 'stratacache'
import { redisStore } from 'stratacache/redis'
import { describe, expect, it } from 'vitest'
import { startRedis } from '../helpers/redis-server.js'
import { startProxy } from '../chaos/tcp-proxy.js'
import { redisSuite } from '../helpers/suite.js'
import { codeOf, rawClient, recordChannel, sleep } from '../chaos/support.js'

// Own server: tests read the streams and plant foreign entries in them.
const suite = redisSuite({ raw: true, flushBeforeEach: true })

const SERVICE = 'it-wb'
const STREAM = `${SERVICE}:account#wb`

function newCache(options: { l1?: false } = {}): Cache {
  const cache = createCache({
    service: SERVICE,
    l2: redisStore({ url: suite.redis.url }),
    random: () => 0,
    ...options,
  })
  suite.closers.push(() => cache.close())
  return cache
}

interface Account {
  id: number
  balance: number
}

/** An in-memory source of truth that records every write call and applies each idempotency key once. */
function fakeSource() {
  const rows = new Map<number, Account>()
  const applied = new Set<string>()
  const calls: { id: number; balance: number; idempotencyKey: string | undefined }[] = []
  return {
    rows,
    calls,
    applied,
    write(params: { id: number }, value: Account, context: WriteContext): void {
      calls.push({ id: params.id, balance: value.balance, idempotencyKey: context.idempotencyKey })
      if (context.idempotencyKey !== undefined && applied.has(context.idempotencyKey)) return
      if (context.idempotencyKey !== undefined) applied.add(context.idempotencyKey)
      rows.set(params.id, value)
    },
  }
}

type Source = ReturnType<typeof fakeSource>

function declareAccounts(
  cache: Cache,
  source: Source,
  options: {
    flush?: boolean
    batchSize?: number
    maxAttempts?: number
    write?: (params: { id: number }, value: Account, context: WriteContext) => unknown
    writeMany?: (writes: readonly QueuedWrite<{ id: number }, Account>[], context: WriteContext) => unknown
    loads?: { count: number }
  } = {},
) {
  return cache.namespace('account', {
    key: 'account:{id}',
    ttl: '1m',
    load: ({ id }: { id: number }): Account => {
      if (options.loads !== undefined) options.loads.count++
      return source.rows.get(id) ?? { id, balance: 0 }
    },
    writeStrategy: 'write-behind',
    write: options.write ?? ((params, value, context) => source.write(params, value, context)),
    // When given, batches go to writeMany and `write` is unused.
    writeMany: options.writeMany ?? undefinedWriteMany,
    writeBehind: {
      flush: options.flush ?? false,
      batchSize: options.batchSize ?? 100,
      maxAttempts: options.maxAttempts ?? 5,
      flushInterval: '20ms',
      retryDelay: '5ms',
      maxRetryDelay: '20ms',
      claimAfter: '1s',
    },
  })
}

/** Not a batch writer: write-behind then calls `write` once per queued write. */
const undefinedWriteMany = undefined as unknown as (
  writes: readonly QueuedWrite<{ id: number }, Account>[],
  context: WriteContext,
) => unknown

async function waitUntil(
  condition: () => boolean | Promise<boolean>,
  what: string,
  ms = 5_000,
): Promise<void> {
  const deadline = performance.now() + ms
  while (!(await condition())) {
    if (performance.now() > deadline) throw new Error(`${what}: not reached within ${ms} ms`)
    await sleep(10)
  }
}

describe('write-behind against a real Redis', () => {
  it('write() queues in a Redis stream and updates the cache; the source gets the write only when flushed', async () => {
    const source = fakeSource()
    const accounts = declareAccounts(newCache(), source)
    await accounts.write({ id: 1 }, { id: 1, balance: 10 })
    expect(source.calls).toEqual([])
    expect(await suite.raw.xLen(STREAM)).toBe(1)
    expect(await accounts.get({ id: 1 })).toEqual({ id: 1, balance: 10 })
    expect(await accounts.writeQueue()).toMatchObject({ queued: 1, inFlight: 0, deadLetters: 0 })

    await accounts.flushWrites()
    expect(source.rows.get(1)).toEqual({ id: 1, balance: 10 })
    expect(source.calls).toEqual([{ id: 1, balance: 10, idempotencyKey: expect.any(String) as unknown }])
    expect(await suite.raw.xLen(STREAM)).toBe(0)
    expect(await accounts.writeQueue()).toMatchObject({ queued: 0, inFlight: 0 })
    expect(accounts.stats()).toMatchObject({ writesQueued: 1, writesFlushed: 1, writeRetries: 0 })
  })

  it('a flushing process writes the queue in batches of at most batchSize, in queue order', async () => {
    const source = fakeSource()
    const batches: number[][] = []
    const writer = declareAccounts(newCache(), source)
    for (let i = 0; i < 250; i++) await writer.write({ id: i % 50 }, { id: i % 50, balance: i })
    const flusher = declareAccounts(newCache(), source, {
      flush: true,
      batchSize: 100,
      writeMany: (writes) => {
        batches.push(writes.map((w) => w.value.balance))
        for (const w of writes)
          source.write(w.params, w.value, { ...w, namespace: 'account', signal: AbortSignal.timeout(1000) })
      },
    })
    await waitUntil(async () => (await flusher.writeQueue()).queued === 0, 'queue drained')
    expect(batches.flat()).toEqual(Array.from({ length: 250 }, (_, i) => i))
    expect(Math.max(...batches.map((b) => b.length))).toBeLessThanOrEqual(100)
    expect(batches.length).toBeGreaterThanOrEqual(3)
    for (let id = 0; id < 50; id++) expect(source.rows.get(id)?.balance).toBe(200 + id)
    expect(flusher.stats().writesFlushed).toBe(250)
  })

  it('a failing write is retried with backoff and holds back the later writes of its key, not of others', async () => {
    const source = fakeSource()
    let failuresLeft = 2
    const failures = recordChannel<{ key: string; attempts: number }>(channelNames.writeBehindFailed)
    const accounts = declareAccounts(newCache(), source, {
      write: (params, value, context) => {
        if (params.id === 1 && value.balance === 1 && failuresLeft-- > 0) throw new Error('source busy')
        source.write(params, value, context)
      },
    })
    await accounts.write({ id: 1 }, { id: 1, balance: 1 })
    await accounts.write({ id: 2 }, { id: 2, balance: 5 })
    await accounts.write({ id: 1 }, { id: 1, balance: 2 })
    for (let i = 0; i < 10 && source.rows.get(1)?.balance !== 2; i++) {
      await accounts.flushWrites()
      await sleep(25)
    }
    failures.stop()
    expect(source.calls.map((c) => `${c.id}:${c.balance}`)).toEqual(['2:5', '1:1', '1:2'])
    expect(source.rows.get(1)).toEqual({ id: 1, balance: 2 })
    expect(accounts.stats()).toMatchObject({ writeRetries: 2, writesFlushed: 3, writesDeadLettered: 0 })
    expect(failures.messages.map((m) => m.attempts)).toEqual([1, 2])
  })

  it('after maxAttempts a write moves to the dead-letter stream with its error; the others still flush', async () => {
    const source = fakeSource()
    const dead = recordChannel<{ key: string; attempts: number; reason: string }>(
      channelNames.writeBehindDeadLetter,
    )
    const accounts = declareAccounts(newCache(), source, {
      maxAttempts: 3,
      write: (params, value, context) => {
        if (params.id === 13) throw new Error('constraint violated')
        source.write(params, value, context)
      },
    })
    await accounts.write({ id: 13 }, { id: 13, balance: 1 })
    await accounts.write({ id: 14 }, { id: 14, balance: 1 })
    for (let i = 0; i < 20 && accounts.stats().writesDeadLettered === 0; i++) {
      await accounts.flushWrites()
      await sleep(25)
    }
    dead.stop()
    expect(source.rows.has(14)).toBe(true)
    expect(source.rows.has(13)).toBe(false)
    const queue = await accounts.writeQueue()
    expect(queue).toMatchObject({
      queued: 0,
      inFlight: 0,
      deadLetters: 1,
      deadLetterStream: `${STREAM}:dead`,
    })
    const [letter] = (await suite.raw.xRange(`${STREAM}:dead`, '-', '+')) ?? []
    expect(String(letter!.message['k'])).toBe(accounts.key({ id: 13 }))
    expect(String(letter!.message['error'])).toBe('constraint violated')
    expect(String(letter!.message['attempts'])).toBe('3')
    expect(dead.messages).toEqual([
      expect.objectContaining({ key: accounts.key({ id: 13 }), attempts: 3, reason: 'constraint violated' }),
    ])
  })

  it('an entry in the stream that stratacache did not write is a dead letter, not an exception', async () => {
    const source = fakeSource()
    const accounts = declareAccounts(newCache(), source)
    await accounts.write({ id: 1 }, { id: 1, balance: 1 })
    await suite.raw.xAdd(STREAM, '*', { hello: 'world' })
    await suite.raw.xAdd(STREAM, '*', { k: 'x', p: '{not json', v: 'x', s: '1', i: 'id' })
    await accounts.write({ id: 2 }, { id: 2, balance: 2 })
    await accounts.flushWrites()
    expect([...source.rows.keys()].sort()).toEqual([1, 2])
    expect(await accounts.writeQueue()).toMatchObject({ queued: 0, deadLetters: 2 })
    const letters = (await suite.raw.xRange(`${STREAM}:dead`, '-', '+')) ?? []
    expect(letters.map((l) => String(l.message['error']))).toEqual([
      expect.stringContaining('not a stratacache write-behind entry'),
      expect.stringContaining('does not decode'),
    ])
  })

  it('the writing process reads its own queued write even when the cache lost it, until the source has it', async () => {
    const source = fakeSource()
    const loads = { count: 0 }
    source.rows.set(1, { id: 1, balance: 0 })
    const accounts = declareAccounts(newCache({ l1: false }), source, { loads })
    await accounts.write({ id: 1 }, { id: 1, balance: 99 })
    // Evicted from Redis before the flush: the read must not load the source's older value.
    await suite.raw.del(accounts.key({ id: 1 }))
    expect(await accounts.get({ id: 1 })).toEqual({ id: 1, balance: 99 })
    expect(loads.count).toBe(0)
    await accounts.flushWrites()
    await suite.raw.del(accounts.key({ id: 1 }))
    expect(await accounts.get({ id: 1 })).toEqual({ id: 1, balance: 99 })
    expect(loads.count).toBe(1)
  })

  it('getMany answers with this process’s queued writes too', async () => {
    const source = fakeSource()
    const loads = { count: 0 }
    const accounts = declareAccounts(newCache({ l1: false }), source, { loads })
    await accounts.write({ id: 1 }, { id: 1, balance: 7 })
    await suite.raw.del(accounts.key({ id: 1 }))
    expect(await accounts.getMany([{ id: 1 }, { id: 2 }])).toEqual([
      { id: 1, balance: 7 },
      { id: 2, balance: 0 },
    ])
    expect(loads.count).toBe(1)
  })

  it('every process reads the latest queued write of a key the cache lost, and none caches the older values', async () => {
    const source = fakeSource()
    source.rows.set(1, { id: 1, balance: 0 })
    const a = declareAccounts(newCache(), source)
    const b = declareAccounts(newCache(), source)
    const c = declareAccounts(newCache(), source)
    await a.write({ id: 1 }, { id: 1, balance: 2 })
    await b.write({ id: 1 }, { id: 1, balance: 3 }) // the latest write of the key
    await a.clear() // the entry leaves L2 (as on expiry or eviction) before the source has either write

    // A's own write is older than B's; C wrote nothing: all read B's, from the queue.
    expect(await a.get({ id: 1 })).toEqual({ id: 1, balance: 3 })
    expect(await c.get({ id: 1 })).toEqual({ id: 1, balance: 3 })
    expect(await b.get({ id: 1 })).toEqual({ id: 1, balance: 3 })
    // None of those answers (nor the source's older row) was stored while the writes were queued.
    expect(await suite.raw.exists(a.key({ id: 1 }))).toBe(0)

    const flusher = declareAccounts(newCache(), source, { flush: true })
    await flusher.flushWrites()
    expect(source.rows.get(1)).toEqual({ id: 1, balance: 3 })
    for (const reader of [a, b, c, flusher])
      expect(await reader.get({ id: 1 })).toEqual({ id: 1, balance: 3 })
  })

  it('after invalidateAll, reads still answer the queued write, and nothing older is cached until the source has it', async () => {
    const source = fakeSource()
    source.rows.set(1, { id: 1, balance: 0 })
    const writer = declareAccounts(newCache(), source)
    const reader = declareAccounts(newCache(), source)
    await writer.write({ id: 1 }, { id: 1, balance: 5 })
    await writer.invalidateAll() // new keys: the queued write's entry is left behind
    await expect.poll(() => reader.key({ id: 1 })).toBe(writer.key({ id: 1 }))
    expect(await reader.get({ id: 1 })).toEqual({ id: 1, balance: 5 })
    expect(await writer.get({ id: 1 })).toEqual({ id: 1, balance: 5 })
    expect(await suite.raw.exists(writer.key({ id: 1 }))).toBe(0)
    await declareAccounts(newCache(), source, { flush: true }).flushWrites()
    expect(await reader.get({ id: 1 })).toEqual({ id: 1, balance: 5 })
  })

  it('a pending mark that outlived its flushed write is removed by the next read, and loads are cached again', async () => {
    const source = fakeSource()
    source.rows.set(1, { id: 1, balance: 0 })
    const writer = declareAccounts(newCache(), source)
    await writer.write({ id: 1 }, { id: 1, balance: 4 })
    const mark = (await suite.raw.keys('*#wb*')).map(String).find((key) => key !== STREAM)!
    const id = String(await suite.raw.get(mark))
    await declareAccounts(newCache(), source, { flush: true }).flushWrites()
    expect(source.rows.get(1)).toEqual({ id: 1, balance: 4 })
    expect(await suite.raw.exists(mark)).toBe(0)
    // The race's end: the writer's mark lands after the flusher took the write off the stream and removed the mark
    // (a writer far from Redis, or paused between its XADD and its mark), and would stay for its 24 h TTL.
    await suite.raw.sendCommand(['SET', mark, id, 'PX', String(86_400_000)])
    await writer.clear() // the entry leaves L2 (as on expiry or eviction)

    const reader = declareAccounts(newCache(), source)
    expect(await reader.get({ id: 1 })).toEqual({ id: 1, balance: 4 })
    await expect.poll(() => suite.raw.exists(mark)).toBe(0)
    // Another process's load is stored again (a stuck mark refused every store of the entry).
    expect(await declareAccounts(newCache(), source).get({ id: 1 })).toEqual({ id: 1, balance: 4 })
    await expect.poll(() => suite.raw.exists(reader.key({ id: 1 }))).toBe(1)
  })

  it('an older queued write whose cache update lands after a later one does not stay in L2 over it', async () => {
    const source = fakeSource()
    source.rows.set(1, { id: 1, balance: 0 })
    // A is 150 ms from Redis: its write's cache update lands well after B's, although A queued first.
    const proxy = await startProxy(suite.redis.port, { latencyMs: 150 })
    suite.closers.push(() => proxy.close())
    const distant = createCache({
      service: SERVICE,
      l2: redisStore({ url: proxy.url }),
      timeouts: { l2: '5s' },
    })
    suite.closers.push(() => distant.close())
    const a = declareAccounts(distant, source)
    const b = declareAccounts(newCache(), source)
    await Promise.all([a.get({ id: 9 }), b.get({ id: 9 })]) // both connected and warm
    const queuedFirst = a.write({ id: 1 }, { id: 1, balance: 1 })
    // B queues after A's XADD has reached Redis (one way: 150 ms), and is done long before A's update lands.
    await waitUntil(async () => (await suite.raw.xLen(STREAM)) === 1, 'A queued')
    await b.write({ id: 1 }, { id: 1, balance: 2 })
    await queuedFirst

    // Whichever update landed last, every process reads B's value, the latest queued write, before and after the flush.
    const fresh = declareAccounts(newCache(), source)
    expect(await fresh.get({ id: 1 })).toEqual({ id: 1, balance: 2 })
    expect(await b.get({ id: 1 })).toEqual({ id: 1, balance: 2 })
    await declareAccounts(newCache(), source, { flush: true }).flushWrites()
    expect(source.rows.get(1)).toEqual({ id: 1, balance: 2 })
    expect(await declareAccounts(newCache(), source).get({ id: 1 })).toEqual({ id: 1, balance: 2 })
    expect(await a.get({ id: 1 })).toEqual({ id: 1, balance: 2 })
  })

  it('with Redis down, write() rejects with a typed L2 error and queues nothing', async () => {
    const own = await startRedis()
    try {
      const cache = createCache({ service: SERVICE, l2: redisStore({ url: own.url }) })
      suite.closers.push(() => cache.close())
      const source = fakeSource()
      const accounts = declareAccounts(cache, source)
      await cache.connect()
      await own.kill()
      const error: unknown = await accounts.write({ id: 1 }, { id: 1, balance: 1 }).catch((e: unknown) => e)
      expect(codeOf(error)).toMatch(/^ERR_STRATA_L2_/)
      expect(source.calls).toEqual([])
      await own.restart()
      const check = await rawClient(own.url)
      expect(await check.exists(STREAM)).toBe(0)
      await check.close()
    } finally {
      await own.stop()
    }
  })

  it('one process flushes at a time; when it closes, a standby takes over', async () => {
    const source = fakeSource()
    const flushedBy: string[] = []
    const first = declareAccounts(newCache(), source, {
      flush: true,
      write: (p, v, c) => {
        flushedBy.push('first')
        source.write(p, v, c)
      },
    })
    const firstCache = suite.closers.at(-1)!
    const second = declareAccounts(newCache(), source, {
      flush: true,
      write: (p, v, c) => {
        flushedBy.push('second')
        source.write(p, v, c)
      },
    })
    await first.write({ id: 1 }, { id: 1, balance: 1 })
    await waitUntil(() => source.rows.has(1), 'first write flushed')
    const holder = flushedBy[0]!
    await (holder === 'first' ? firstCache() : suite.closers.at(-1)!())
    const survivor = holder === 'first' ? second : first
    await survivor.write({ id: 2 }, { id: 2, balance: 2 })
    await waitUntil(() => source.rows.has(2), 'second write flushed')
    expect(flushedBy).toEqual([holder, holder === 'first' ? 'second' : 'first'])
  })

  it('refuses write-behind without L2, without a write function, and write-behind settings on another strategy', () => {
    const l1Only = createCache({ service: SERVICE })
    suite.closers.push(() => l1Only.close())
    expect(() =>
      l1Only.namespace('a', { key: 'a:{id}', ttl: '1m', writeStrategy: 'write-behind', write: () => {} }),
    ).toThrow(
      expect.objectContaining({ code: 'ERR_STRATA_INVALID_OPTION', message: expect.stringMatching(/L2/) }),
    )
    const cache = newCache()
    expect(() => cache.namespace('b', { key: 'b:{id}', ttl: '1m', writeStrategy: 'write-behind' })).toThrow(
      expect.objectContaining({
        code: 'ERR_STRATA_INVALID_OPTION',
        message: expect.stringMatching(/b\.write/),
      }),
    )
    expect(() =>
      cache.namespace('c', { key: 'c:{id}', ttl: '1m', write: () => {}, writeBehind: { batchSize: 10 } }),
    ).toThrow(expect.objectContaining({ message: expect.stringMatching(/c\.writeBehind/) }))
    expect(() =>
      cache.namespace('d', {
        key: 'd:{id}',
        ttl: '1m',
        writeStrategy: 'write-behind',
        write: () => {},
        writeBehind: { batchSize: 0 },
      }),
    ).toThrow(expect.objectContaining({ message: expect.stringMatching(/d\.writeBehind\.batchSize/) }))
  })
})
