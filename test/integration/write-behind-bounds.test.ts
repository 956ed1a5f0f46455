// Write-behind stays bounded: the queue in Redis (maxQueued), the read-your-writes overlay of a process that only
// queues, and timers given durations past what a Node timer can hold.
import { createCache, type Cache, type Logger, type WriteContext } from 'stratacache'
import { redisStore } from 'stratacache/redis'
import { describe, expect, it } from 'vitest'
import { redisSuite } from '../helpers/suite.js'
import { codeOf, commandCalls, sleep } from '../chaos/support.js'

const suite = redisSuite({ raw: true, flushBeforeEach: true })

const SERVICE = 'it-wb-bounds'
const STREAM = `${SERVICE}:account#wb`

interface Account {
  id: number
  balance: number
}

type Write = (params: { id: number }, value: Account, context: WriteContext) => unknown

async function newCache(logger?: Logger): Promise<Cache> {
  const cache = createCache({
    service: SERVICE,
    l2: redisStore({ url: suite.redis.url }),
    random: () => 0,
    // Thousands of writes in a row on a shared machine: a slow round trip must not fail the test.
    timeouts: { l2: '2s' },
    ...(logger === undefined ? {} : { logger }),
  })
  suite.closers.push(() => cache.close())
  await cache.connect()
  return cache
}

function declareAccounts(
  cache: Cache,
  options: {
    write?: Write
    flush?: boolean
    maxQueued?: number
    maxAttempts?: number
    flushInterval?: `${number}ms` | `${number}d`
    writeTimeout?: `${number}d`
    claimAfter?: `${number}d`
    rows?: Map<number, Account>
  } = {},
) {
  const rows = options.rows ?? new Map<number, Account>()
  return cache.namespace('account', {
    key: 'account:{id}',
    ttl: '1m',
    load: ({ id }: { id: number }): Account => rows.get(id) ?? { id, balance: 0 },
    writeStrategy: 'write-behind',
    write: options.write ?? (({ id }, value) => void rows.set(id, value)),
    writeBehind: {
      flush: options.flush ?? false,
      maxAttempts: options.maxAttempts ?? 5,
      flushInterval: options.flushInterval ?? '20ms',
      retryDelay: '5ms',
      maxRetryDelay: '20ms',
      claimAfter: options.claimAfter ?? '1s',
      ...(options.maxQueued === undefined ? {} : { maxQueued: options.maxQueued }),
      ...(options.writeTimeout === undefined ? {} : { writeTimeout: options.writeTimeout }),
    },
  })
}

function recordingLogger() {
  const lines: { level: string; fields: object; message: string }[] = []
  const logger: Logger = {
    info: (fields, message) => void lines.push({ level: 'info', fields, message }),
    warn: (fields, message) => void lines.push({ level: 'warn', fields, message }),
    error: (fields, message) => void lines.push({ level: 'error', fields, message }),
  }
  return { lines, logger }
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

describe('write-behind bounds against a real Redis', () => {
  it('refuses write() with ERR_STRATA_WRITE_QUEUE_FULL once the queue holds maxQueued writes, warns once, and accepts again when it drains', async () => {
    const { lines, logger } = recordingLogger()
    const writer = declareAccounts(await newCache(logger), { maxQueued: 3 })
    for (let id = 1; id <= 3; id++) await writer.write({ id }, { id, balance: id })

    const refusals = await Promise.all(
      [4, 5].map((id) => writer.write({ id }, { id, balance: id }).catch((error: unknown) => error)),
    )
    for (const refusal of refusals) {
      expect(refusal).toMatchObject({
        code: 'ERR_STRATA_WRITE_QUEUE_FULL',
        namespace: 'account',
        queued: 3,
        maxQueued: 3,
      })
    }
    // Nothing queued, nothing lost: the three accepted writes are all there, and the refused ones never were.
    expect(await suite.raw.xLen(STREAM)).toBe(3)
    expect(await writer.get({ id: 4 })).toEqual({ id: 4, balance: 0 })
    expect(lines.filter((l) => l.level === 'warn')).toEqual([
      expect.objectContaining({ fields: expect.objectContaining({ queued: 3, maxQueued: 3 }) }),
    ])

    const rows = new Map<number, Account>()
    declareAccounts(await newCache(), { flush: true, rows })
    await waitUntil(() => rows.size === 3, 'another process flushing the queue')
    await waitUntil(async () => (await suite.raw.xLen(STREAM)) === 0, 'the stream emptied')
    await sleep(30) // past flushInterval: the writer counts the queue again
    await writer.write({ id: 4 }, { id: 4, balance: 4 })
    expect(await suite.raw.xLen(STREAM)).toBeLessThanOrEqual(1)
    expect(lines.filter((l) => l.level === 'warn')).toHaveLength(1)
    expect(lines.some((l) => l.level === 'info' && /room again/.test(l.message))).toBe(true)
  })

  it('counts dead letters against maxQueued, so a dead source cannot fill Redis through the dead-letter stream', async () => {
    const accounts = declareAccounts(await newCache(), {
      flush: true,
      maxQueued: 2,
      maxAttempts: 1,
      write: () => {
        throw new Error('source down')
      },
    })
    await accounts.write({ id: 1 }, { id: 1, balance: 1 })
    await accounts.write({ id: 2 }, { id: 2, balance: 2 })
    await waitUntil(async () => (await accounts.writeQueue()).deadLetters === 2, 'both writes dead-lettered')
    expect(await accounts.writeQueue()).toMatchObject({ queued: 0, deadLetters: 2 })
    await sleep(30)
    const refused: unknown = await accounts.write({ id: 3 }, { id: 3, balance: 3 }).catch((e: unknown) => e)
    expect(codeOf(refused)).toBe('ERR_STRATA_WRITE_QUEUE_FULL')
    // An operator replays or deletes the dead letters: writes are accepted again.
    await suite.raw.del(`${STREAM}:dead`)
    await sleep(30)
    await accounts.write({ id: 3 }, { id: 3, balance: 3 })
  })

  it('a process that only queues forgets the writes another process flushed within a few flush intervals, however many distinct keys it wrote', async () => {
    const KEYS = 3_000
    // 100 ms between prunes: pruning 64 entries a tick (as before) would take about 5 s to forget 3,000 writes.
    const writer = declareAccounts(await newCache(), { flushInterval: '100ms' })
    const xrangeCalls = async () =>
      commandCalls(String(await suite.redis.command('INFO', 'commandstats')), 'xrange')
    const callsBefore = await xrangeCalls()
    const startedAt = performance.now()
    for (let id = 0; id < KEYS; id++) await writer.write({ id }, { id, balance: id })
    const rows = new Map<number, Account>()
    declareAccounts(await newCache(), { flush: true, rows })
    await waitUntil(() => rows.size === KEYS, 'another process flushing every write', 15_000)
    await waitUntil(async () => (await suite.raw.xLen(STREAM)) === 0, 'the stream emptied')
    const drained = performance.now()

    // The writer checks the stream (XRANGE) only while its overlay holds entries: once the checks stop, it is empty.
    let last = await xrangeCalls()
    let lastCheckAt = performance.now()
    while (performance.now() - lastCheckAt < 400 && performance.now() - drained < 5_000) {
      await sleep(50)
      const now = await xrangeCalls()
      if (now !== last) lastCheckAt = performance.now()
      last = now
    }
    // About one flush interval after the drain here (one prune walks what is left in rounds of 64 checks, slower on
    // a loaded machine). Pruning 64 a tick would go on for seconds: about 4 s after a drain that takes under 1 s.
    expect(lastCheckAt - drained, 'the overlay emptied').toBeLessThan(2_000)
    // What the checks cost: each flushed write checked once when it is found gone, each write still queued at most
    // once more per round that found half of its 64 gone, and one round of 64 per prune (one per 100 ms) that found
    // them still queued. The prunes' number grows with the run's length (a loaded machine writes and flushes the
    // 3,000 slower), so the bound does too; checking every entry on every prune would cost 3,000 per prune.
    const prunes = Math.ceil((performance.now() - startedAt) / 100) + 2
    expect(last - callsBefore).toBeLessThanOrEqual(2 * KEYS + 64 * prunes)
  })

  it('refuses write-behind durations past 2^31-1 ms, which a Node timer would fire after 1 ms, naming the option', async () => {
    const cache = await newCache()
    for (const option of ['flushInterval', 'writeTimeout', 'claimAfter'] as const) {
      expect(() => declareAccounts(cache, { flush: true, rows: new Map(), [option]: '30d' })).toThrow(
        expect.objectContaining({
          code: 'ERR_STRATA_INVALID_OPTION',
          message: expect.stringContaining(`writeBehind.${option}`) as unknown,
        }),
      )
    }
  })
})
