// The host tier (`createCache({ l2: redisStore, host: diskStore })`): copies of L2 entries shared by the processes
// of one host, read after L1 and before Redis; every invalidation, from this host or another, drops them.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createCache, InvalidOptionError, type Cache, type CacheOptions } from 'stratacache'
import { diskStore } from 'stratacache/disk'
import { redisStore } from 'stratacache/redis'
import { afterEach, describe, expect, it } from 'vitest'
import { within } from '../chaos/support.js'
import { redisSuite } from '../helpers/suite.js'

const suite = redisSuite({ flushBeforeEach: true })
const dirs: string[] = []
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true })
})
/** A directory standing for one host's disk. */
function host(): string {
  const dir = mkdtempSync(join(tmpdir(), 'strata-host-'))
  dirs.push(dir)
  return dir
}

interface Item {
  readonly id: number
  readonly version: string
}

/** A process: a cache on the suite's Redis, with the disk store in `path` as its host tier when given. */
async function processOn(path: string | undefined, options: Partial<CacheOptions> = {}) {
  const cache: Cache = createCache({
    service: 'it-host',
    l2: redisStore({ url: suite.redis.url }),
    ...(path === undefined ? {} : { host: diskStore({ path, maxBytes: 16 * 1024 * 1024 }) }),
    logger: false,
    // Generous: on a loaded machine an L2 timeout is a miss, which is not what these tests are about.
    timeouts: { l2: '2s' },
    ...options,
  })
  suite.closers.push(() => cache.close())
  const source = { loads: 0 }
  const items = cache.namespace('item', {
    key: 'item:{id}',
    ttl: '10m',
    tags: ({ id }) => [`group:${Number(id) % 2}`],
    load: ({ id }: { id: number }): Item => {
      source.loads++
      return { id, version: 'loaded' }
    },
  })
  await cache.connect()
  await expect.poll(() => cache.stats().bus?.subscribed).toBe(true)
  return { cache, items, source }
}

/** Waits until the host tier holds a copy of `items`' entry for `id` (copies are put in the background). */
async function copied(path: string, key: string): Promise<void> {
  const raw = diskStore({ path, maxBytes: 16 * 1024 * 1024 })
  await raw.connect()
  try {
    await expect.poll(async () => (await raw.get(key)) !== null).toBe(true)
  } finally {
    await raw.close()
  }
}

describe('host tier', () => {
  it('answers another process of the host from its copy, without a Redis read or a load', async () => {
    const path = host()
    const a = await processOn(path)
    const b = await processOn(path)
    expect(await a.items.get({ id: 1 })).toEqual({ id: 1, version: 'loaded' })
    await copied(path, a.items.key({ id: 1 }))
    expect(await b.items.get({ id: 1 })).toEqual({ id: 1, version: 'loaded' })
    // Answered by the copy: a host hit skips the Redis read (entry-store.ts), and nothing was loaded.
    expect(b.items.stats()).toMatchObject({ hostHits: 1, l2Hits: 1, misses: 0 })
    expect(b.source.loads).toBe(0)
    // getMany: the copies answer what they hold, Redis the rest.
    await a.items.get({ id: 2 })
    await copied(path, a.items.key({ id: 2 }))
    expect((await b.items.getMany([{ id: 1 }, { id: 2 }, { id: 3 }])).map((item) => item?.id)).toEqual([
      1, 2, 3,
    ])
    expect(b.items.stats().hostHits).toBe(2)
  })

  it('drops copies when a process of this host or of another host writes, deletes or invalidates a tag', async () => {
    const path = host()
    const a = await processOn(path)
    const b = await processOn(path)
    const elsewhere = await processOn(host())
    await a.items.getMany([{ id: 1 }, { id: 2 }, { id: 4 }])
    for (const id of [1, 2, 4]) await copied(path, a.items.key({ id }))
    // A write on this host: its own copy is gone when set() resolves, the peer's L1 through the bus.
    await a.items.set({ id: 1 }, { id: 1, version: 'written here' })
    await expect.poll(() => b.items.get({ id: 1 })).toEqual({ id: 1, version: 'written here' })
    // A write on another host: every process of this one drops the copy when the message arrives.
    await elsewhere.items.set({ id: 2 }, { id: 2, version: 'written elsewhere' })
    await expect.poll(() => b.items.get({ id: 2 })).toEqual({ id: 2, version: 'written elsewhere' })
    // A tag invalidation on another host: the copies carrying the tag go.
    await elsewhere.items.invalidateTag('group:0')
    await expect
      .poll(async () => {
        await b.items.get({ id: 4 })
        return b.source.loads
      })
      .toBe(1)
    // A delete: the next read loads.
    await elsewhere.items.delete({ id: 1 })
    await expect
      .poll(async () => {
        await a.items.get({ id: 1 })
        return a.source.loads
      })
      .toBe(4)
  })

  it('keeps no copy of a strong namespace, and none longer than a bounded one’s staleness bound', async () => {
    const path = host()
    const { cache } = await processOn(path)
    const strong = cache.namespace('strong', {
      key: 's:{id}',
      ttl: '10m',
      consistency: 'strong',
      load: ({ id }) => ({ id }),
    })
    const bounded = cache.namespace('bounded', {
      key: 'b:{id}',
      ttl: '10m',
      consistency: 'bounded',
      maxStaleness: '5s',
      load: ({ id }) => ({ id }),
    })
    await strong.get({ id: 1 })
    await bounded.get({ id: 1 })
    await copied(path, bounded.key({ id: 1 }))
    const raw = diskStore({ path, maxBytes: 16 * 1024 * 1024 })
    await raw.connect()
    const [strongTtl, boundedTtl] = await raw.ttlMany([strong.key({ id: 1 }), bounded.key({ id: 1 })])
    await raw.close()
    expect(strongTtl).toBe(-2)
    expect(boundedTtl).toBeGreaterThan(0)
    expect(boundedTtl).toBeLessThanOrEqual(5_000)
  })

  it('treats a host store that cannot open as misses: reads go on to Redis, failures are counted', async () => {
    const file = join(host(), 'a-file')
    writeFileSync(file, 'not a directory')
    const broken = await processOn(join(file, 'store'))
    expect(await broken.items.get({ id: 1 })).toEqual({ id: 1, version: 'loaded' })
    expect(await broken.items.getMany([{ id: 1 }, { id: 2 }])).toHaveLength(2)
    expect(broken.cache.stats().host!.errors).toBeGreaterThan(0)
    expect(broken.items.stats().l2Errors).toBe(0)
  })

  // A custom host store's bug (review of 9e72da7): a flight whose host read threw outside its handlers never
  // settled, so every later get of the key joined it and hung, and the throw was an unhandled rejection.
  for (const [bug, getMany] of [
    ['answers no array', () => Promise.resolve(undefined)],
    ['answers too few values', () => Promise.resolve([])],
    ['answers values that are not bytes', (keys: readonly string[]) => Promise.resolve(keys.map(() => 'x'))],
    [
      'throws instead of rejecting',
      () => {
        throw new Error('host bug')
      },
    ],
  ] as const) {
    it(`treats a host store that ${bug} as misses: reads go on to Redis, and none is left waiting`, async () => {
      const disk = diskStore({ path: host(), maxBytes: 16 * 1024 * 1024 })
      Object.assign(disk, { getMany })
      // A process of this host: its own cache on the shared Redis, with the faulty host store.
      const processOfHost = () => {
        const cache = createCache({
          service: 'it-host-bug',
          l2: redisStore({ url: suite.redis.url }),
          host: disk,
          logger: false,
          timeouts: { l2: '2s' },
        })
        suite.closers.push(() => cache.close())
        return cache
      }
      const cache = processOfHost()
      let loads = 0
      const items = cache.namespace('item', {
        key: 'item:{id}',
        ttl: '10m',
        load: ({ id }: { id: number }) => ({ id, loads: ++loads }),
      })
      await cache.connect()
      expect(await within(items.get({ id: 1 }), 5_000, 'the first get')).toEqual({ id: 1, loads: 1 })
      // A second process reads the key: its L1 is empty, the host read fails the same way, L2 answers.
      const other = processOfHost()
      const otherItems = other.namespace('item', {
        key: 'item:{id}',
        ttl: '10m',
        load: () => ({ id: 0, loads: -1 }),
      })
      await other.connect()
      const reads = [otherItems.get({ id: 1 }), otherItems.get({ id: 1 }), otherItems.peek({ id: 1 })]
      expect(await within(Promise.all(reads), 5_000, 'the reads of the second process')).toEqual([
        { id: 1, loads: 1 },
        { id: 1, loads: 1 },
        { id: 1, loads: 1 },
      ])
      expect(other.stats().host!.errors).toBeGreaterThan(0)
      expect(otherItems.stats().l2Hits).toBe(2)
      expect(loads).toBe(1)
    })
  }

  it('refuses a host tier without l2, or the l2 store itself, saying what to pass', () => {
    const disk = diskStore({ path: host(), maxBytes: 1024 * 1024 })
    expect(() => createCache({ service: 'x', host: disk })).toThrow(InvalidOptionError)
    expect(() => createCache({ service: 'x', host: disk })).toThrow(/pass the disk store as `l2` itself/)
    expect(() => createCache({ service: 'x', l2: disk, host: disk })).toThrow(/a store other than `l2`/)
    expect(() => createCache({ service: 'x', l2: disk, host: {} as never })).toThrow(/`host`/)
  })
})
