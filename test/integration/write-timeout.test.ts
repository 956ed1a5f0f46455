// `write()` bounds its source write with the namespace's `timeouts.write`: a source that never answers must not hang
// the caller, and a write whose outcome is unknown must not leave the value it may have replaced cached anywhere.
import { createCache, InvalidOptionError, WriteTimeoutError, type Cache, type Duration } from 'stratacache'
import { redisStore } from 'stratacache/redis'
import { describe, expect, it } from 'vitest'
import { redisSuite } from '../helpers/suite.js'
import { deferred } from '../helpers/deferred.js'

const suite = redisSuite({ flushBeforeEach: true })
const { closers } = suite

/**
 * Two processes' caches over one source, each with `v1` cached in L1 and L2. The source's writes wait for
 * `source.gate` (ignoring their signal unless `honoursSignal`), then apply the value; `source.signals` holds the
 * signal each write was given.
 */
async function twoProcesses(
  options: {
    writeStrategy?: 'write-through' | 'cache-aside'
    honoursSignal?: boolean
    timeout?: Duration
    l2Timeout?: Duration
  } = {},
) {
  const rows = new Map([['1', 'v1']])
  const gate = deferred<void>()
  const signals: AbortSignal[] = []
  let loads = 0
  const process = async () => {
    const cache: Cache = createCache({
      service: 'write-timeout',
      l2: redisStore({ url: suite.redis.url }),
      ...(options.l2Timeout === undefined ? {} : { timeouts: { l2: options.l2Timeout } }),
    })
    closers.push(() => cache.close())
    await cache.connect()
    const ns = cache.namespace('item', {
      key: 'item:{id}',
      ttl: '1h',
      writeStrategy: options.writeStrategy ?? 'write-through',
      timeouts: { write: options.timeout ?? '150ms' },
      load: ({ id }) => {
        loads++
        return rows.get(String(id))!
      },
      write: async ({ id }, value: string, { signal }) => {
        signals.push(signal)
        if (options.honoursSignal) {
          await new Promise((resolve, reject) => {
            signal.addEventListener('abort', () => reject(signal.reason as Error), { once: true })
            void gate.promise.then(resolve)
          })
        } else {
          await gate.promise
        }
        rows.set(String(id), value)
      },
    })
    return { cache, ns }
  }
  const a = await process()
  const b = await process()
  expect(await a.ns.get({ id: 1 })).toBe('v1')
  expect(await b.ns.get({ id: 1 })).toBe('v1')
  return { a, b, rows, gate, signals, loads: () => loads }
}

describe('write() past timeouts.write', () => {
  it('rejects with ERR_STRATA_WRITE_TIMEOUT, aborts the source call, and drops the old value in every process', async () => {
    const { a, b, rows, gate, signals, loads } = await twoProcesses()
    const error = await a.ns.write({ id: 1 }, 'v2').then(
      () => undefined,
      (e: unknown) => e,
    )
    expect(error).toBeInstanceOf(WriteTimeoutError)
    expect(error).toMatchObject({ code: 'ERR_STRATA_WRITE_TIMEOUT', call: 'write', timeoutMs: 150 })
    expect((error as Error).message).toMatch(/did not take a write within 150 ms.*Raise `timeouts.write`/s)
    // The source was told to stop, with the same error as the reason.
    expect(signals).toHaveLength(1)
    expect(signals[0]!.aborted).toBe(true)
    expect(signals[0]!.reason).toBe(error)
    // Nothing cached the old value any more: not this process, not L2, not the other process's L1.
    expect(await a.ns.peek({ id: 1 })).toBeUndefined()
    await expect.poll(() => b.ns.peek({ id: 1 })).toBeUndefined()
    expect(a.cache.stats().namespaces.item!.writeTimeouts).toBe(1)
    expect(rows.get('1')).toBe('v1')
    // Reads load what the source holds.
    const before = loads()
    expect(await b.ns.get({ id: 1 })).toBe('v1')
    expect(loads()).toBe(before + 1)
    gate.resolve()
  })

  it('drops the key again when the abandoned write lands later: a read in between cached the value it replaced', async () => {
    const { a, b, rows, gate } = await twoProcesses()
    await expect(a.ns.write({ id: 1 }, 'v2')).rejects.toBeInstanceOf(WriteTimeoutError)
    await expect.poll(() => b.ns.peek({ id: 1 })).toBeUndefined()
    // A read after the drop loads the old value (the source does not have the write yet) and caches it everywhere.
    expect(await b.ns.get({ id: 1 })).toBe('v1')
    expect(await a.ns.get({ id: 1 })).toBe('v1')
    expect(await a.ns.peek({ id: 1 })).toBe('v1')
    // The source ignored its signal and applies the write now.
    gate.resolve()
    await expect.poll(() => rows.get('1')).toBe('v2')
    await expect.poll(() => a.ns.peek({ id: 1 })).toBeUndefined()
    await expect.poll(() => b.ns.peek({ id: 1 })).toBeUndefined()
    expect(await a.ns.get({ id: 1 })).toBe('v2')
    expect(await b.ns.get({ id: 1 })).toBe('v2')
  })

  it('leaves the key alone when the abandoned write fails later (the source kept the old value)', async () => {
    const { a, b, gate } = await twoProcesses({ honoursSignal: true })
    await expect(a.ns.write({ id: 1 }, 'v2')).rejects.toMatchObject({ code: 'ERR_STRATA_WRITE_TIMEOUT' })
    await expect.poll(() => b.ns.peek({ id: 1 })).toBeUndefined()
    expect(await b.ns.get({ id: 1 })).toBe('v1')
    gate.resolve()
    // The source's rejection (its signal's reason) was dropped, not thrown at the host; the reloaded value stays.
    await new Promise((resolve) => setTimeout(resolve, 50))
    expect(await b.ns.peek({ id: 1 })).toBe('v1')
  })

  it('cache-aside: drops the key too', async () => {
    const { a, b, gate } = await twoProcesses({ writeStrategy: 'cache-aside' })
    await expect(a.ns.write({ id: 1 }, 'v2')).rejects.toBeInstanceOf(WriteTimeoutError)
    expect(await a.ns.peek({ id: 1 })).toBeUndefined()
    await expect.poll(() => b.ns.peek({ id: 1 })).toBeUndefined()
    gate.resolve()
  })

  it('still rejects with the timeout when Redis is frozen during the drop; the drop is queued for repair', async () => {
    const { a, gate } = await twoProcesses({ l2Timeout: '50ms' })
    suite.redis.pause()
    try {
      await expect(a.ns.write({ id: 1 }, 'v2')).rejects.toBeInstanceOf(WriteTimeoutError)
      expect(a.cache.stats().namespaces.item!.repairsPending).toBe(1)
      // This process's own copy is gone at once.
      expect(a.cache.stats().l1!.entries).toBe(0)
    } finally {
      suite.redis.resume()
      gate.resolve()
    }
    await expect.poll(() => a.cache.stats().namespaces.item!.repairsPending).toBe(0)
    expect(await a.ns.peek({ id: 1 })).toBeUndefined()
  })

  it('a write that settles in time is not affected: write-through caches the new value', async () => {
    const { a, b, rows, gate } = await twoProcesses({ timeout: '10s' })
    const writing = a.ns.write({ id: 1 }, 'v2')
    gate.resolve()
    await writing
    expect(rows.get('1')).toBe('v2')
    expect(await a.ns.peek({ id: 1 })).toBe('v2')
    // The other process dropped its L1 copy (the bus) and reads the written value from L2, without a load.
    await expect.poll(() => b.ns.get({ id: 1 })).toBe('v2')
    expect(a.cache.stats().namespaces.item!.writeTimeouts).toBe(0)
  })
})

describe('timeouts.write as an option', () => {
  it('defaults to 30 s', () => {
    const cache = createCache({ service: 'write-timeout-options' })
    closers.push(() => cache.close())
    const ns = cache.namespace('a', { key: 'a:{id}', ttl: '1m', load: () => 1, write: () => {} })
    expect(ns.options.writeTimeoutMs).toBe(30_000)
  })

  it('is refused on a write-behind namespace, naming the option that bounds its source writes', () => {
    const cache = createCache({ service: 'write-timeout-options', l2: redisStore({ url: suite.redis.url }) })
    closers.push(() => cache.close())
    const declare = () =>
      cache.namespace('wb', {
        key: 'wb:{id}',
        ttl: '1m',
        writeStrategy: 'write-behind',
        timeouts: { write: '1s' },
        load: () => 1,
        write: () => {},
      })
    expect(declare).toThrow(InvalidOptionError)
    expect(declare).toThrow(/timeouts\.write.*writeBehind\.writeTimeout/)
  })

  it('is refused when it is not a duration', () => {
    const cache = createCache({ service: 'write-timeout-options' })
    closers.push(() => cache.close())
    expect(() =>
      cache.namespace('a', {
        key: 'a:{id}',
        ttl: '1m',
        timeouts: { write: 'soon' as never },
        load: () => 1,
        write: () => {},
      }),
    ).toThrow(InvalidOptionError)
  })
})
