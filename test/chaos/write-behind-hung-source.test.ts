// Write-behind with a source call that never settles (a stuck connection, a driver without a timeout, a lock wait):
// the flusher stops waiting for it, loses its lease, and another process delivers the writes; close() stays bounded.
import { channelNames, createCache, type Cache, type QueuedWrite, type WriteContext } from 'stratacache'
import { redisStore } from 'stratacache/redis'
import { describe, expect, it } from 'vitest'
import { redisSuite } from '../helpers/suite.js'
import { activeMs, codeOf, outcome, recordChannel, sleep, timed, within } from './support.js'

const suite = redisSuite({ raw: true, flushBeforeEach: true })

const SERVICE = 'chaos-wb-hung'
const STREAM = `${SERVICE}:account#wb`

interface Account {
  id: number
  balance: number
}

type Write = (params: { id: number }, value: Account, context: WriteContext) => unknown
type WriteMany = (writes: readonly QueuedWrite<{ id: number }, Account>[], context: WriteContext) => unknown

async function newCache(): Promise<Cache> {
  const cache = createCache({ service: SERVICE, l2: redisStore({ url: suite.redis.url }), random: () => 0 })
  suite.closers.push(() => cache.close())
  await cache.connect()
  return cache
}

function declareAccounts(
  cache: Cache,
  options: {
    write?: Write
    writeMany?: WriteMany
    flush?: boolean
    claimAfter?: string
    writeTimeout?: string
    maxAttempts?: number
  },
) {
  return cache.namespace('account', {
    key: 'account:{id}',
    ttl: '1m',
    load: ({ id }: { id: number }): Account => ({ id, balance: 0 }),
    writeStrategy: 'write-behind',
    ...(options.write === undefined ? {} : { write: options.write }),
    ...(options.writeMany === undefined ? {} : { writeMany: options.writeMany }),
    writeBehind: {
      flush: options.flush ?? true,
      maxAttempts: options.maxAttempts ?? 5,
      flushInterval: '20ms',
      retryDelay: '5ms',
      maxRetryDelay: '20ms',
      claimAfter: (options.claimAfter ?? '1s') as `${number}ms`,
      ...(options.writeTimeout === undefined ? {} : { writeTimeout: options.writeTimeout as `${number}ms` }),
    },
  })
}

/** A source that records each call and applies each idempotency key once. */
function recordingSource() {
  const rows = new Map<number, Account>()
  const calls: { id: number; balance: number; idempotencyKey: string | undefined }[] = []
  const applied = new Set<string>()
  const write: Write = ({ id }, value, { idempotencyKey }) => {
    calls.push({ id, balance: value.balance, idempotencyKey })
    if (idempotencyKey !== undefined && applied.has(idempotencyKey)) return
    if (idempotencyKey !== undefined) applied.add(idempotencyKey)
    rows.set(id, value)
  }
  return { rows, calls, write }
}

/** A source whose calls never settle, whatever their signal says; it keeps the contexts it was called with. */
function hungSource() {
  const contexts: WriteContext[] = []
  const write: Write = (_params, _value, context) => {
    contexts.push(context)
    return new Promise(() => {})
  }
  return { contexts, write }
}

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

describe('write-behind with a source call that never settles', () => {
  it('the stuck flusher loses its lease after claimAfter, and another process delivers the writes in order, with their idempotency keys', async () => {
    // The stuck flusher's write timeout is the default (10 s): the end of its unrenewed lease cuts the call.
    const hung = hungSource()
    const stuck = declareAccounts(await newCache(), { write: hung.write, claimAfter: '800ms' })
    await stuck.write({ id: 0 }, { id: 0, balance: 0 })
    await waitUntil(() => hung.contexts.length > 0, 'the first flusher calling its source')

    const source = recordingSource()
    const healthy = declareAccounts(await newCache(), { write: source.write, claimAfter: '800ms' })
    for (let n = 1; n <= 9; n++) await healthy.write({ id: n % 3 }, { id: n % 3, balance: n })
    // Queued, and nothing delivered yet: the stuck process still holds the lease.
    const queued = ((await suite.raw.xRange(STREAM, '-', '+')) ?? []).map((entry) => ({
      key: String(entry.message['i']),
      balance: (JSON.parse(String(entry.message['v'])) as Account).balance,
    }))
    expect(queued.map((q) => q.balance)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
    expect(source.calls).toEqual([])

    await waitUntil(
      () => source.rows.size === 3 && source.calls.length >= 10,
      'the second process delivering',
      5_000,
    )
    // The stuck call's signal was aborted when the first flusher's lease ran out.
    expect(hung.contexts[0]!.signal.aborted).toBe(true)
    expect(codeOf(hung.contexts[0]!.signal.reason)).toBe('ERR_STRATA_WRITE_TIMEOUT')
    // Every write once, in queue order (so in order per key), each with the idempotency key it was queued with.
    expect(source.calls.map((c) => ({ key: c.idempotencyKey, balance: c.balance }))).toEqual(queued)
    expect(hung.contexts[0]!.idempotencyKey).toBe(queued[0]!.key)
    expect([...source.rows.values()].sort((a, b) => a.id - b.id)).toEqual([
      { id: 0, balance: 9 },
      { id: 1, balance: 7 },
      { id: 2, balance: 8 },
    ])
    expect(healthy.stats().writesClaimed).toBeGreaterThanOrEqual(1)
    expect(await healthy.writeQueue()).toMatchObject({ queued: 0, inFlight: 0, deadLetters: 0 })
  })

  it('a source call that passes writeTimeout has its signal aborted and counts as a failed attempt, then is retried', async () => {
    const failures = recordChannel<{ key: string; attempts: number; error: unknown }>(
      channelNames.writeBehindFailed,
    )
    const source = recordingSource()
    const contexts: WriteContext[] = []
    const accounts = declareAccounts(await newCache(), {
      flush: false,
      writeTimeout: '100ms',
      write: (params, value, context) => {
        contexts.push(context)
        // The first call hangs; the retry goes through.
        if (contexts.length === 1) return new Promise(() => {})
        return source.write(params, value, context)
      },
    })
    await accounts.write({ id: 1 }, { id: 1, balance: 10 })
    const started = performance.now()
    for (let i = 0; i < 20 && source.rows.size === 0; i++) {
      await accounts.flushWrites()
      await sleep(10)
    }
    failures.stop()
    expect(performance.now() - started).toBeGreaterThanOrEqual(95)
    expect(contexts).toHaveLength(2)
    expect(contexts[0]!.signal.aborted).toBe(true)
    expect(codeOf(contexts[0]!.signal.reason)).toBe('ERR_STRATA_WRITE_TIMEOUT')
    expect(contexts[1]!.signal.aborted).toBe(false)
    expect(contexts[1]!.idempotencyKey).toBe(contexts[0]!.idempotencyKey)
    expect(source.rows.get(1)).toEqual({ id: 1, balance: 10 })
    expect(accounts.stats()).toMatchObject({ writeRetries: 1, writesFlushed: 1, writesDeadLettered: 0 })
    expect(failures.messages).toEqual([
      expect.objectContaining({
        key: accounts.key({ id: 1 }),
        attempts: 1,
        error: expect.objectContaining({ code: 'ERR_STRATA_WRITE_TIMEOUT', timeoutMs: 100 }),
      }),
    ])
  })

  it('a write whose source call times out every time ends up a dead letter after maxAttempts; the queue goes on', async () => {
    const source = recordingSource()
    const accounts = declareAccounts(await newCache(), {
      flush: false,
      writeTimeout: '50ms',
      maxAttempts: 2,
      write: (params, value, context) =>
        params.id === 13 ? new Promise(() => {}) : source.write(params, value, context),
    })
    await accounts.write({ id: 13 }, { id: 13, balance: 1 })
    await accounts.write({ id: 14 }, { id: 14, balance: 1 })
    for (let i = 0; i < 40 && accounts.stats().writesDeadLettered === 0; i++) {
      await accounts.flushWrites()
      await sleep(10)
    }
    expect(source.rows.get(14)).toEqual({ id: 14, balance: 1 })
    expect(await accounts.writeQueue()).toMatchObject({ queued: 0, inFlight: 0, deadLetters: 1 })
    const [letter] = (await suite.raw.xRange(`${STREAM}:dead`, '-', '+')) ?? []
    expect(String(letter!.message['attempts'])).toBe('2')
    expect(String(letter!.message['error'])).toMatch(/did not take a write-behind write within 50 ms/)
  })

  it('a writeMany batch that passes writeTimeout is retried whole', async () => {
    const batches: number[][] = []
    const accounts = declareAccounts(await newCache(), {
      flush: false,
      writeTimeout: '80ms',
      writeMany: (writes) => {
        batches.push(writes.map((w) => w.value.balance))
        return batches.length === 1 ? new Promise(() => {}) : undefined
      },
    })
    for (let n = 1; n <= 3; n++) await accounts.write({ id: n }, { id: n, balance: n })
    for (let i = 0; i < 20 && batches.length < 2; i++) {
      await accounts.flushWrites()
      await sleep(10)
    }
    expect(batches).toEqual([
      [1, 2, 3],
      [1, 2, 3],
    ])
    expect(accounts.stats()).toMatchObject({ writeRetries: 3, writesFlushed: 3 })
    expect(await accounts.writeQueue()).toMatchObject({ queued: 0 })
  })

  it('a cache whose source write never settles closes within writeTimeout, and another process then delivers the write', async () => {
    const hung = hungSource()
    const cache = await newCache()
    // claimAfter is long: the handover below must come from close() handing the lease back, not from it lapsing.
    const stuck = declareAccounts(cache, { write: hung.write, writeTimeout: '300ms', claimAfter: '30s' })
    await stuck.write({ id: 1 }, { id: 1, balance: 1 })
    await waitUntil(() => hung.contexts.length > 0, 'the flusher calling its source')

    const closed = await timed(() => within(cache.close(), 3_000, 'close()'))
    expect(outcome(closed)).toEqual({ resolvedWith: undefined })
    // Bounded by writeTimeout (300 ms), not left waiting for the source (`within` fails that). Less the time the
    // event loop was blocked: a stall of this process delays close() by as much, whatever close() does.
    expect(activeMs(closed)).toBeLessThan(1_500)
    // close() aborts the signal of the call under way.
    expect(hung.contexts[0]!.signal.aborted).toBe(true)
    expect(await suite.raw.xLen(STREAM)).toBe(1)

    const source = recordingSource()
    declareAccounts(await newCache(), { write: source.write, claimAfter: '30s' })
    await waitUntil(() => source.rows.has(1), 'another process delivering the write', 3_000)
    expect(source.calls).toEqual([{ id: 1, balance: 1, idempotencyKey: hung.contexts[0]!.idempotencyKey }])
  })

  it('a source that gives up on its aborted signal lets close() return at once, the write still queued', async () => {
    const cache = await newCache()
    let called = false
    const accounts = declareAccounts(cache, {
      writeTimeout: '10s',
      write: (_params, _value, { signal }) => {
        called = true
        return new Promise((_, reject) =>
          signal.addEventListener('abort', () => reject(signal.reason as Error)),
        )
      },
    })
    await accounts.write({ id: 1 }, { id: 1, balance: 1 })
    await waitUntil(() => called, 'the flusher calling its source')
    const closed = await timed(() => within(cache.close(), 3_000, 'close()'))
    expect(outcome(closed)).toEqual({ resolvedWith: undefined })
    // At once: not after writeTimeout (10 s; `within` fails that), nor after any wait of its own for the aborted call.
    // Less the time the event loop was blocked: a stall of this process delays close() by as much.
    expect(activeMs(closed)).toBeLessThan(500)
    // Not counted against the write: the cache closed, the source did not fail.
    expect(accounts.stats()).toMatchObject({ writeRetries: 0, writesFlushed: 0 })
    expect(await suite.raw.xLen(STREAM)).toBe(1)
  })
})
