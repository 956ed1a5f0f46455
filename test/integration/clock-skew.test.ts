// Processes whose clocks disagree still agree on when an entry expires: entry times are written on Redis's clock
// (measured with TIME at connect), so a writer an hour ahead or behind changes nothing for the other processes.
import { createCache, type Cache, type CacheOptions, type Clock } from 'stratacache'
import { redisStore } from 'stratacache/redis'
import { describe, expect, it } from 'vitest'
import { redisSuite } from '../helpers/suite.js'

const suite = redisSuite({ flushBeforeEach: true })
const HOUR = 3_600_000
/**
 * The entries' TTL: long enough that a reader reaching an entry halfway through its life, on a machine that stalls
 * for a second, still finds it fresh.
 */
const TTL_MS = 3_000
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** A clock `skewMs` away from the host's: what a process on a badly synced host reads. */
const skewed = (skewMs: number): Clock => ({ now: () => Date.now() + skewMs })
/** A host whose clock is `skewMs` off, measured against Redis's in any case. */
const onHost = (skewMs: number): Partial<CacheOptions> => ({ clock: skewed(skewMs), clockSync: true })

async function newCache(options: Partial<CacheOptions> = {}): Promise<Cache> {
  const cache = createCache({
    service: 'it-skew',
    random: () => 0,
    l2: redisStore({ url: suite.redis.url }),
    timeouts: { l2: '2s' },
    logger: false,
    ...options,
  })
  suite.closers.push(() => cache.close())
  await cache.connect()
  return cache
}

function declare(cache: Cache, source: { value: string; loads: number }) {
  return cache.namespace('item', {
    key: 'i:{id}',
    ttl: TTL_MS,
    jitter: 0,
    load: (_: { id: number }) => {
      source.loads++
      return source.value
    },
  })
}

describe('clock skew between processes that share Redis', () => {
  it('entries written by a process whose clock runs an hour behind are fresh for every other process until Redis expires them', async () => {
    const writer = declare(await newCache(onHost(-HOUR)), { value: 'unused', loads: 0 })
    const source = { value: 'loaded', loads: 0 }
    const reader = declare(await newCache(), source)

    await writer.set({ id: 1 }, 'written')
    expect(await reader.get({ id: 1 })).toBe('written')
    expect(source.loads).toBe(0)
    // Half its life later the entry is still fresh for the reader (its L1 copy, or L2 again).
    await sleep(TTL_MS / 2)
    expect(await reader.get({ id: 1 })).toBe('written')
    expect(source.loads).toBe(0)
  })

  it("a reader's L1 copy of an entry written by a process an hour ahead does not outlive the Redis key", async () => {
    const writer = declare(await newCache(onHost(HOUR)), { value: 'unused', loads: 0 })
    const source = { value: 'loaded', loads: 0 }
    const reader = declare(await newCache(), source)

    await writer.set({ id: 1 }, 'written')
    // Read late in the entry's life: the reader must keep it only for what is left of it (half), not a full TTL,
    // which would outlive the Redis key by half a TTL.
    await sleep(TTL_MS / 2)
    expect(await reader.get({ id: 1 })).toBe('written')
    await expect
      .poll(async () => suite.redis.command('EXISTS', 'it-skew:item:v1:i:1'), { timeout: 2 * TTL_MS })
      .toBe(':0\r\n')
    expect(await reader.get({ id: 1 })).toBe('loaded')
    expect(source.loads).toBe(1)
  })

  it('measures invalidation lag on Redis clock: a sender ten minutes behind or ahead does not read as ten minutes of lag', async () => {
    for (const skew of [-10 * 60_000, 10 * 60_000]) {
      const sender = await newCache(onHost(skew))
      const receiver = await newCache()
      for (const cache of [sender, receiver]) {
        await expect.poll(() => cache.stats().bus?.subscribed).toBe(true)
      }
      declare(receiver, { value: 'unused', loads: 0 })
      await declare(sender, { value: 'unused', loads: 0 }).set({ id: 1 }, 'written')
      await expect.poll(() => receiver.stats().bus?.received).toBeGreaterThanOrEqual(1)
      // A message takes milliseconds on loopback: what must not show is the skew (600,000 ms), in either direction
      // (a sender behind read as a lag of ten minutes; one ahead, as 0, hiding any real lag).
      expect(receiver.stats().bus!.lagMs.max).toBeLessThan(60_000)
      await Promise.all([sender.close(), receiver.close()])
    }
  })

  it("measures the offset to Redis's clock at connect, reports it in stats, and says so once in the log", async () => {
    const warnings: string[] = []
    const logger = {
      debug() {},
      info() {},
      warn: (_: object, message: string) => warnings.push(message),
      error() {},
    }
    const ahead = await newCache({ ...onHost(HOUR), logger })
    const offset = ahead.stats().l2!.clockOffsetMs
    expect(Math.abs(offset + HOUR)).toBeLessThan(1000)
    expect(warnings.filter((w) => w.includes('clock'))).toEqual([
      expect.stringContaining("this process's clock is 1 h ahead of Redis's"),
    ])
    // On the host's own clock there is nothing to correct (skew under the tolerance reads as 0).
    const synced = await newCache()
    expect(synced.stats().l2!.clockOffsetMs).toBe(0)
  })

  it('leaves an injected clock alone: caches sharing a fake clock that stands still agree to the millisecond', async () => {
    // A fake clock far from Redis's that does not advance while real time passes: measured, it would read as a skew
    // that grows between one cache's connect and the next, and the two caches would disagree about when an entry
    // written by one ends for the other.
    let now = 1_700_000_000_000
    const clock = { now: () => now }
    let loads = 0
    const declareOn = (cache: Cache) =>
      cache.namespace('frozen', {
        key: 'f:{id}',
        ttl: '10s',
        jitter: 0,
        load: (_: { id: number }) => `load #${++loads}`,
      })
    const a = declareOn(await newCache({ clock }))
    await sleep(300) // more than the skew tolerance of real time passes between the two connects
    const bCache = await newCache({ clock })
    const b = declareOn(bCache)
    expect(bCache.stats().l2!.clockOffsetMs).toBe(0)
    expect(await a.get({ id: 1 })).toBe('load #1')
    await expect.poll(() => b.peek({ id: 1 })).toBe('load #1')
    now += 6_000
    expect(await b.get({ id: 1 })).toBe('load #1') // from L2: 4 s of the entry's life left
    now += 3_999
    expect(await b.get({ id: 1 })).toBe('load #1') // b's L1 copy, 1 ms before the entry ends on the shared clock
    now += 2
    expect(await b.get({ id: 1 })).toBe('load #2')
  })

  it('corrects an injected clock that runs with real time by default: a skewed host simulated without clockSync', async () => {
    // The review's reproduction simulates a host an hour behind with an injected clock and no other option.
    const writerCache = await newCache({ clock: skewed(-HOUR) })
    expect(Math.abs(writerCache.stats().l2!.clockOffsetMs - HOUR)).toBeLessThan(1000)
    const writer = declare(writerCache, { value: 'unused', loads: 0 })
    const source = { value: 'loaded', loads: 0 }
    const reader = declare(await newCache(), source)
    await writer.set({ id: 1 }, 'written')
    expect(await reader.get({ id: 1 })).toBe('written')
    expect(source.loads).toBe(0)
  })

  it('leaves alone, by default, an injected clock that jumps while it is measured', async () => {
    // A test's fake clock moved by hand: 5 s forward on every read, far more than the real time that passes.
    let now = 1_700_000_000_000
    const cache = await newCache({ clock: { now: () => (now += 5_000) } })
    expect(cache.stats().l2!.clockOffsetMs).toBe(0)
  })

  it("refuses a clockSync other than true, false or 'auto', naming the option", () => {
    expect(() => createCache({ service: 'it-skew', clockSync: 'yes' as unknown as boolean })).toThrow(
      /clockSync.*'auto'/,
    )
  })
})
