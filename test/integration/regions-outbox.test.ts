// Regions on real redis-servers, two things the relay test does not cover: the outbox bound (`outboxMaxLength`)
// and what a relay does when entries it never read were trimmed; and `peek()` behind the same read gate as `get()`.
import { createCache, type Cache, type Logger } from 'stratacache'
import { redisStore } from 'stratacache/redis'
import { Registry } from 'prom-client'
import { prometheusMetrics } from 'stratacache/prometheus'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { startRedis, type RedisServer } from '../helpers/redis-server.js'

const SERVICE = 'obx'
type Region = 'eu' | 'us'
const servers = {} as Record<Region, RedisServer>
const caches: Cache[] = []

beforeAll(async () => {
  servers.eu = await startRedis()
  servers.us = await startRedis()
})
afterAll(async () => {
  await servers.eu.stop()
  await servers.us.stop()
})
afterEach(async () => {
  await Promise.all(caches.splice(0).map((cache) => cache.close()))
  await servers.eu.command('FLUSHALL')
  await servers.us.command('FLUSHALL')
})

function recorder(): Logger & { warnings: string[] } {
  const warnings: string[] = []
  return { warnings, info: () => {}, warn: (_fields, message) => warnings.push(message), error: () => {} }
}

/** A process of `region` with one namespace per consistency class, all reading `rows`. */
function proc(
  region: Region,
  rows: Map<string, number>,
  options: { relay?: boolean; outboxMaxLength?: number; logger?: Logger } = {},
) {
  const peer: Region = region === 'eu' ? 'us' : 'eu'
  const cache = createCache({
    service: SERVICE,
    logger: options.logger ?? false,
    l2: redisStore({ url: servers[region].url }),
    // Nothing here is about slow calls: on a loaded machine, the default 100 ms would open the circuit mid-test.
    timeouts: { l2: '2s' },
    region,
    regions: {
      peers: [{ region: peer, l2: redisStore({ url: servers[peer].url }) }],
      heartbeat: '50ms',
      splitAfter: '400ms',
      relay: options.relay ?? true,
      ...(options.outboxMaxLength === undefined ? {} : { outboxMaxLength: options.outboxMaxLength }),
    },
  })
  caches.push(cache)
  const loads = { strong: 0, bounded: 0, eventual: 0 }
  const declare = (name: 'strong' | 'bounded' | 'eventual') =>
    cache.namespace(name, {
      key: 'row:{id}',
      params: { id: 'string' },
      ttl: '1h',
      ...(name === 'bounded'
        ? { consistency: 'bounded' as const, maxStaleness: '300ms' as const }
        : { consistency: name }),
      load: ({ id }) => {
        loads[name]++
        return { v: rows.get(id) ?? 0 }
      },
      write: ({ id }, value: { v: number }) => void rows.set(id, value.v),
      writeStrategy: 'write-through' as const,
    })
  return {
    cache,
    loads,
    strong: declare('strong'),
    bounded: declare('bounded'),
    eventual: declare('eventual'),
  }
}

async function until(check: () => Promise<boolean> | boolean, ms = 5_000): Promise<void> {
  const started = performance.now()
  while (!(await check())) {
    if (performance.now() - started > ms) throw new Error(`not within ${ms} ms`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

describe('regions: the outbox bound', () => {
  it('trims each outbox to about outboxMaxLength entries', async () => {
    const rows = new Map<string, number>()
    // No relay reads eu's outbox for us: it only grows, up to the bound.
    const eu = proc('eu', rows, { outboxMaxLength: 10 })
    await eu.cache.connect()
    for (let i = 0; i < 300; i++) await eu.eventual.delete({ id: `k${i}` })
    const length = Number(
      (await servers.eu.command('XLEN', `${SERVICE}#outbox{${SERVICE}.regions.eu}:us`))
        .split('\r\n')[0]!
        .slice(1),
    )
    // MAXLEN ~ trims whole stream nodes (100 entries by default): about the bound, never the 300 appended.
    expect(length).toBeGreaterThanOrEqual(10)
    expect(length).toBeLessThan(200)
  })

  it('refuses an outboxMaxLength that is not a whole number of entries, naming the option', () => {
    const l2 = redisStore({ url: servers.eu.url })
    for (const bad of [0, -1, 1.5, '100', Number.NaN]) {
      let error: unknown
      try {
        createCache({
          service: 's',
          l2,
          region: 'eu',
          regions: { peers: [{ region: 'us', l2 }], outboxMaxLength: bad as number },
        })
      } catch (caught) {
        error = caught
      }
      expect(error).toMatchObject({ code: 'ERR_STRATA_INVALID_OPTION', option: 'regions.outboxMaxLength' })
    }
    // A misspelt key is refused too, naming the right one.
    expect(() =>
      createCache({
        service: 's',
        l2,
        region: 'eu',
        regions: { peers: [{ region: 'us', l2 }], outboxMaxLenght: 10 } as never,
      }),
    ).toThrow(/outboxMaxLength/)
  })

  it('a relay back after its outbox overflowed invalidates every namespace, counts it, warns once, and serves nothing stale', async () => {
    const rows = new Map<string, number>([['a', 1]])
    const eu = proc('eu', rows, { outboxMaxLength: 5 })
    // us: a process that only reads (its L1 holds the old value), and the region's relay.
    const usReader = proc('us', rows, { relay: false })
    const usRelay = proc('us', rows)
    await Promise.all([eu.cache.connect(), usReader.cache.connect(), usRelay.cache.connect()])
    expect(await usReader.eventual.get({ id: 'a' })).toEqual({ v: 1 })
    expect(await usReader.bounded.get({ id: 'a' })).toEqual({ v: 1 })
    await until(() => (usRelay.cache.stats().regions?.peers.eu?.relayed ?? 0) >= 2)

    // us's relay stops; eu changes `a`, then writes far past the bound: the entry for `a` is trimmed unread.
    await usRelay.cache.close()
    await eu.eventual.write({ id: 'a' }, { v: 2 })
    for (let i = 0; i < 300; i++) await eu.eventual.delete({ id: `k${i}` })

    // What would be stale without the overflow's answer: us's L2 and the reader's L1 still hold v 1.
    expect(await usReader.eventual.peek({ id: 'a' })).toEqual({ v: 1 })

    const logger = recorder()
    const back = proc('us', rows, { logger })
    await back.cache.connect()
    await until(() => (back.cache.stats().regions?.peers.eu?.overflows ?? 0) >= 1)
    const peer = back.cache.stats().regions!.peers.eu!
    expect(peer.overflows).toBe(1)
    // At least the 100-entry stream nodes Redis trimmed whole.
    expect(peer.dropped).toBeGreaterThanOrEqual(100)
    expect(logger.warnings.filter((message) => message.includes('outbox'))).toHaveLength(1)
    expect(logger.warnings.find((message) => message.includes('outbox'))).toMatch(
      /region eu's outbox for us were trimmed before this region applied them.*strong, bounded, eventual/,
    )

    // Every process of us drops its copy (a new generation, through us's bus): the reader loads v 2.
    await until(async () => (await usReader.eventual.peek({ id: 'a' })) === undefined)
    expect(await usReader.eventual.get({ id: 'a' })).toEqual({ v: 2 })
    expect(await usReader.bounded.get({ id: 'a' })).toEqual({ v: 2 })
    expect(await back.eventual.get({ id: 'a' })).toEqual({ v: 2 })

    // Reported once: the relay goes on with the entries after the loss, and later steps find nothing lost.
    const relayed = back.cache.stats().regions!.peers.eu!.relayed
    await eu.eventual.delete({ id: 'after' })
    await until(() => back.cache.stats().regions!.peers.eu!.relayed > relayed + 2)
    expect(back.cache.stats().regions!.peers.eu!.overflows).toBe(1)
    expect(logger.warnings.filter((message) => message.includes('outbox'))).toHaveLength(1)

    const registry = new Registry()
    const metrics = prometheusMetrics(back.cache, { registry })
    try {
      expect(await registry.metrics()).toContain(
        'stratacache_region_outbox_overflows_total{cache="obx",region="us",peer_region="eu"} 1',
      )
    } finally {
      metrics.unregister()
    }
  })

  it('counts entries a relay took and never acknowledged, trimmed before it was back, as lost: the claim finds them gone', async () => {
    const rows = new Map<string, number>([['a', 1]])
    const eu = proc('eu', rows, { outboxMaxLength: 5 })
    await eu.cache.connect()
    // us cached the old value; a relay of us took eu's write of `a` and died before applying it.
    const usFirst = proc('us', rows, { relay: false })
    await usFirst.cache.connect()
    expect(await usFirst.eventual.get({ id: 'a' })).toEqual({ v: 1 })
    await usFirst.cache.close()
    const outbox = `${SERVICE}#outbox{${SERVICE}.regions.eu}:us`
    await servers.eu.command('XGROUP', 'CREATE', outbox, 'relay', '$', 'MKSTREAM')
    await eu.eventual.write({ id: 'a' }, { v: 2 })
    await servers.eu.command(
      'XREADGROUP',
      'GROUP',
      'relay',
      'dead-relay',
      'COUNT',
      '1000',
      'STREAMS',
      outbox,
      '>',
    )
    // Then the entries it took are trimmed (what MAXLEN ~ does to the oldest stream node once eu writes past its
    // bound; done by hand so that only taken entries are lost: every entry it did not take is still there).
    await servers.eu.command('XTRIM', outbox, 'MAXLEN', '0')
    const taken = Number(/^\*4\r\n:(\d+)/.exec(await servers.eu.command('XPENDING', outbox, 'relay'))?.[1])
    expect(taken).toBeGreaterThan(0)

    const logger = recorder()
    const us = proc('us', rows, { logger })
    await us.cache.connect()
    await until(() => (us.cache.stats().regions?.peers.eu?.overflows ?? 0) >= 1)
    expect(us.cache.stats().regions!.peers.eu!).toMatchObject({ overflows: 1, dropped: taken })
    expect(logger.warnings.filter((message) => message.includes('outbox'))).toHaveLength(1)
    expect(await us.eventual.get({ id: 'a' })).toEqual({ v: 2 })
  })

  it('a relay that keeps up reports no overflow however many entries pass through', async () => {
    const rows = new Map<string, number>()
    const eu = proc('eu', rows, { outboxMaxLength: 5 })
    const us = proc('us', rows)
    await Promise.all([eu.cache.connect(), us.cache.connect()])
    for (let i = 0; i < 50; i++) {
      await eu.eventual.delete({ id: `k${i}` })
      if (i % 10 === 0) await new Promise((resolve) => setTimeout(resolve, 60))
    }
    await until(() => (us.cache.stats().regions?.peers.eu?.relayed ?? 0) >= 50)
    await new Promise((resolve) => setTimeout(resolve, 200))
    expect(us.cache.stats().regions!.peers.eu!.overflows).toBe(0)
  })
})

describe('regions: peek() behind the read gate', () => {
  it('during a split, peek refuses what get would refuse (strong, bounded past its bound) and eventual still answers', async () => {
    const rows = new Map<string, number>([['a', 1]])
    // No process of eu runs: us stops hearing from it and splits.
    const us = proc('us', rows)
    await us.cache.connect()
    await us.strong.get({ id: 'a' })
    await us.bounded.get({ id: 'a' })
    await us.eventual.get({ id: 'a' })
    expect(await us.bounded.peek({ id: 'a' })).toEqual({ v: 1 })
    await until(() => us.cache.stats().regions?.peers.eu?.split === true)

    expect(await us.strong.peek({ id: 'a' })).toBeUndefined()
    expect(await us.bounded.peek({ id: 'a' })).toBeUndefined()
    expect(await us.eventual.peek({ id: 'a' })).toEqual({ v: 1 })
    // peek never loads.
    expect(us.loads).toEqual({ strong: 1, bounded: 1, eventual: 1 })
    expect(us.cache.stats().namespaces.bounded!.regionRefused).toBeGreaterThan(0)

    // get revalidates the bounded value; peek then answers with it while it is younger than the bound.
    expect(await us.bounded.get({ id: 'a' })).toEqual({ v: 1 })
    expect(us.loads.bounded).toBe(2)
    expect(await us.bounded.peek({ id: 'a' })).toEqual({ v: 1 })
  })
})
