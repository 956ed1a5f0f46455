// What only a Redis Cluster asks of the store: slots, every master, sharded pub/sub, a failover, its options.
import { createCache, InvalidOptionError, type Cache, type Logger } from 'stratacache'
import { redisClusterStore, redisStreamAuditSink } from 'stratacache/redis'
import { createCluster } from 'redis'
import { ioredisStore } from 'stratacache/ioredis'
import { Cluster } from 'ioredis'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { CLUSTER_FENCE_SHARDS } from '../../src/core/key-layout.js'
import { KeySchema } from '../../src/core/keys.js'
import { clusterSlot } from '../../src/tiers/cluster-slot.js'
import type { L2Store } from '../../src/tiers/l2-store.js'
import { startRedisCluster, type RedisCluster } from '../helpers/redis-cluster.js'

let cluster: RedisCluster
const caches: Cache[] = []
/** Clients the tests pass in (never closed by a cache), disconnected after each test. */
const cleanups: (() => void)[] = []
beforeAll(async () => {
  cluster = await startRedisCluster({ masters: 3, replicas: 1 })
}, 40_000)
afterAll(async () => {
  await cluster?.stop()
})
afterEach(async () => {
  await Promise.all(caches.splice(0).map((cache) => cache.close()))
  for (const cleanup of cleanups.splice(0)) cleanup()
  await cluster.waitReady()
  await cluster.onMasters('FLUSHALL')
})

/** The key the cache builds for `item:{id}` of `service` on a cluster. */
const keyOf = (service: string, id: number) =>
  new KeySchema({
    service,
    namespace: 'item',
    schemaVersion: 1,
    template: 'item:{id}',
    dimensions: [],
    maxKeyLength: 1024,
    fenceShards: CLUSTER_FENCE_SHARDS,
  }).build({ id })

/** The commands docs/security.md lists for a cache's ACL user on a Redis Cluster. */
const CLUSTER_ACL_COMMANDS =
  '+get +mget +set +unlink +scan +incr +pexpire +pttl +sadd +sscan +rename +eval +publish +subscribe +ping +time ' +
  '+hello +spublish +ssubscribe +cluster|slots +cluster|info +exists'

const rootNodes = () => cluster.urls.slice(0, 3).map((url) => ({ url }))

/** Calls of one command on every master (INFO commandstats), summed. */
async function calls(command: string): Promise<number> {
  const replies = await cluster.onMasters('INFO', 'commandstats')
  return replies
    .map((reply) => Number(new RegExp(`cmdstat_${command}:calls=(\\d+)`).exec(reply)?.[1] ?? 0))
    .reduce((a, b) => a + b, 0)
}

async function make(
  service: string,
  options: { l2Timeout?: number; logger?: Logger; coalesceGets?: boolean; l2?: L2Store } = {},
) {
  let loads = 0
  const cache = createCache({
    service,
    ...(options.logger === undefined ? {} : { logger: options.logger }),
    l2:
      options.l2 ??
      redisClusterStore({
        rootNodes: rootNodes(),
        ...(options.coalesceGets === undefined ? {} : { coalesceGets: options.coalesceGets }),
      }),
    ...(options.l2Timeout === undefined ? {} : { timeouts: { l2: options.l2Timeout } }),
  })
  caches.push(cache)
  const items = cache.namespace('item', {
    key: 'item:{id}',
    ttl: '1h',
    l1: { ttl: '1s' },
    tags: ({ id }) => [`group:${Number(id) % 4}`],
    load: ({ id }) => {
      loads++
      return { id: Number(id) }
    },
  })
  await cache.connect()
  await expect.poll(() => cache.stats().bus?.subscribed).toBe(true)
  return { cache, items, loads: () => loads }
}

describe('redisClusterStore', () => {
  it("spreads a namespace's entries over the masters and reads 100 of them with one MGET per slot", async () => {
    // A loaded 2-core machine can take more than the default 100 ms: a timeout would be a miss, not what is tested.
    const a = await make('spread', { l2Timeout: 2_000 })
    const params = Array.from({ length: 100 }, (_, id) => ({ id }))
    await a.items.getMany(params)
    // The values land in L2 in the background.
    await expect
      .poll(async () => (await cluster.onMasters('DBSIZE')).every((n) => /:[1-9]/.test(n)))
      .toBe(true)
    const b = await make('spread', { l2Timeout: 2_000 })
    const keys = params.map((p) => keyOf('spread', p.id))
    const slots = new Set(keys.map((key) => clusterSlot(key)))
    // 16 fence shards: the namespace's entries are on up to 16 slots, hence on every master here.
    expect(slots.size).toBeGreaterThan(8)
    expect(slots.size).toBeLessThanOrEqual(16)
    const before = await calls('mget')
    expect((await b.items.getMany(params)).map((item) => item?.id)).toEqual(params.map((p) => p.id))
    expect(b.loads()).toBe(0)
    // One MGET per slot for the values, one per shard for the fences of any miss (none here).
    expect((await calls('mget')) - before).toBe(slots.size)
    expect(b.items.stats().l2Errors).toBe(0)
    expect(a.items.stats().l2Errors).toBe(0)
  })

  it('does not coalesce gets by default (a reshard would answer TRYAGAIN to a split MGET): one GET per get', async () => {
    expect(redisClusterStore({ rootNodes: rootNodes() }).coalesceGets).toBe(false)
    expect(
      ioredisStore({ client: new Cluster([], { lazyConnect: true, shardedSubscribers: true }) }).coalesceGets,
    ).toBe(false)
    const a = await make('uncoalesced', { l2Timeout: 2_000 })
    const params = Array.from({ length: 20 }, (_, id) => ({ id }))
    // set() resolves once L2 holds the value.
    await Promise.all(params.map((p) => a.items.set(p, { id: p.id })))
    const b = await make('uncoalesced', { l2Timeout: 2_000 })
    const [mgets, gets] = [await calls('mget'), await calls('get')]
    await Promise.all(params.map((p) => b.items.get(p)))
    expect(b.loads()).toBe(0)
    expect((await calls('get')) - gets).toBe(20)
    expect((await calls('mget')) - mgets).toBe(0)
  })

  it('with coalesceGets, sends 100 concurrent gets as one command per slot: MGET, or GET for a slot with one key', async () => {
    const a = await make('coalesced', { l2Timeout: 2_000 })
    const params = Array.from({ length: 100 }, (_, id) => ({ id }))
    await a.items.getMany(params)
    await expect
      .poll(async () => (await cluster.onMasters('DBSIZE')).every((n) => /:[1-9]/.test(n)))
      .toBe(true)
    const b = await make('coalesced', { l2Timeout: 2_000, coalesceGets: true })
    const keys = params.map((p) => keyOf('coalesced', p.id))
    // One command per slot (no slot holds 64 of these keys): an MGET, or a GET for a slot asked for one key.
    const perSlot = new Map<number, number>()
    for (const key of keys) perSlot.set(clusterSlot(key), (perSlot.get(clusterSlot(key)) ?? 0) + 1)
    expect(Math.max(...perSlot.values())).toBeLessThan(64)
    const lone = [...perSlot.values()].filter((n) => n === 1).length
    const [mgets, gets] = [await calls('mget'), await calls('get')]
    const values = await Promise.all(params.map((p) => b.items.get(p)))
    expect(values.map((item) => item.id)).toEqual(params.map((p) => p.id))
    expect(b.loads()).toBe(0)
    expect((await calls('mget')) - mgets).toBe(perSlot.size - lone)
    expect((await calls('get')) - gets).toBe(lone)
    expect(b.items.stats().l2Errors).toBe(0)
  })

  it('reads a slot being migrated, its keys on both sides, one GET per key: getMany and coalesced gets hit, no error, no load (node-redis, and ioredis with a short retryDelayOnTryAgain)', async () => {
    const a = await make('migrating', { l2Timeout: 2_000 })
    const params = Array.from({ length: 100 }, (_, id) => ({ id }))
    await Promise.all(params.map((p) => a.items.set(p, { id: p.id })))
    // The slot holding the most of these keys (about 6: 100 keys over 16 fence-shard slots).
    const bySlot = new Map<number, { id: number }[]>()
    for (const p of params) {
      const at = clusterSlot(keyOf('migrating', p.id))
      bySlot.set(at, [...(bySlot.get(at) ?? []), p])
    }
    const [slot, inSlot] = [...bySlot].sort((x, y) => y[1].length - x[1].length)[0]!
    expect(inSlot.length).toBeGreaterThanOrEqual(4)
    const owner = await cluster.masterOf(slot)
    const roles = await Promise.all(cluster.nodes.map((node) => cluster.role(node)))
    const to = cluster.nodes.find((node, i) => roles[i] === 'master' && node !== owner)!
    // A key of another type among them (someone else's hash): GET answers WRONGTYPE where MGET answers nil.
    const [hashed] = inSlot.splice(0, 1)
    await owner.command('DEL', keyOf('migrating', hashed!.id))
    await owner.command('HSET', keyOf('migrating', hashed!.id), 'field', 'value')
    // Fresh processes: nothing in L1, every read goes to L2. ioredis retries TRYAGAIN itself (100 ms apart, up to 16
    // times, by default): with 1 ms it gives up within the L2 timeout and the store reads one GET per key.
    const io = new Cluster(
      cluster.nodes.slice(0, 3).map((node) => ({ host: '127.0.0.1', port: node.port })),
      {
        lazyConnect: true,
        enableOfflineQueue: false,
        shardedSubscribers: true,
        retryDelayOnTryAgain: 1,
        redisOptions: { maxRetriesPerRequest: 0 },
      },
    )
    cleanups.push(() => io.disconnect())
    const b = await make('migrating', { l2Timeout: 2_000 })
    const c = await make('migrating', { l2Timeout: 2_000, coalesceGets: true })
    const d = await make('migrating', { l2Timeout: 2_000, l2: ioredisStore({ client: io }) })
    let gets = 0
    await cluster.migrateSlot(slot, to, {
      batch: 2,
      pauseMs: 0,
      // Two keys moved, the rest not: an MGET of the slot's keys gets TRYAGAIN until the migration ends, which
      // waits for these reads. Sending it again would fail them all.
      midway: async () => {
        const before = await calls('get')
        expect((await b.items.getMany(inSlot)).map((item) => item?.id)).toEqual(inSlot.map((p) => p.id))
        const each = await Promise.all(inSlot.map((p) => c.items.get(p)))
        expect(each.map((item) => item.id)).toEqual(inSlot.map((p) => p.id))
        expect((await d.items.getMany(inSlot)).map((item) => item?.id)).toEqual(inSlot.map((p) => p.id))
        gets = (await calls('get')) - before
        // The hash reads as a miss, loaded, in a batch with the others (getMany) and alone.
        expect((await b.items.getMany([hashed!, inSlot[0]!])).map((item) => item?.id)).toEqual([
          hashed!.id,
          inSlot[0]!.id,
        ])
      },
    })
    // Each key read once by each reader, by a GET on the side that held it (the moved ones after ASK).
    expect(gets).toBeGreaterThanOrEqual(3 * inSlot.length)
    expect(b.loads()).toBe(1)
    for (const reader of [b, c, d]) {
      if (reader !== b) expect(reader.loads()).toBe(0)
      expect(reader.items.stats().l2Errors).toBe(0)
      expect(reader.cache.stats().l2!.errorReplies).toBe(0)
    }
  })

  it('runs every script in one slot: tags, writes, deletes and clear give no CROSSSLOT error', async () => {
    const a = await make('scripts', { l2Timeout: 2_000 })
    const b = await make('scripts', { l2Timeout: 2_000 })
    const params = Array.from({ length: 50 }, (_, id) => ({ id }))
    await a.items.getMany(params)
    await a.items.set({ id: 1 }, { id: -1 })
    await a.items.delete({ id: 2 })
    expect(await b.items.invalidateTag('group:3')).toBeGreaterThan(0)
    await b.items.getMany(params)
    expect(await a.items.clear()).toBeGreaterThan(0)
    expect(await a.cache.invalidateTag('group:1')).toBeGreaterThanOrEqual(0)
    expect(a.items.stats().l2Errors + b.items.stats().l2Errors).toBe(0)
    expect(a.cache.stats().l2!.errorReplies + b.cache.stats().l2!.errorReplies).toBe(0)
  })

  it("checks for a restore in the generation's slot: keeps the serving node's run_id there, and raises the generation when another id is found", async () => {
    const a = await make('restore', { l2Timeout: 2_000 })
    expect(await a.items.get({ id: 1 })).toEqual({ id: 1 })
    const generationKey = 'restore:item:v1#gen'
    const originKey = `${generationKey}#origin{${generationKey}}`
    expect(clusterSlot(originKey)).toBe(clusterSlot(generationKey))
    const node = await cluster.masterOf(clusterSlot(generationKey))
    const runId = /run_id:(\w+)/.exec(await node.command('INFO', 'server'))![1]!
    expect(await node.command('GET', originKey)).toBe(`$40\r\n${runId}\r\n`)

    // As after a failover to a replica, or a restart from a snapshot: the id kept there is another server's.
    await node.command('SET', originKey, 'f'.repeat(40))
    const b = await make('restore', { l2Timeout: 2_000 })
    await expect.poll(() => b.items.stats().l2Restores).toBe(1)
    expect(await node.command('GET', generationKey)).toBe('$1\r\n1\r\n')
    // The process that was running hears of the new generation and loads again rather than read older entries.
    const loadsBefore = a.loads()
    await expect.poll(async () => (await a.items.get({ id: 1 }), a.loads())).toBe(loadsBefore + 1)
    expect(a.items.stats().l2Errors + b.items.stats().l2Errors).toBe(0)
  })

  it('works on a cluster client the app passes in, and leaves it open on close', async () => {
    const client = createCluster({
      rootNodes: rootNodes(),
      defaults: { disableOfflineQueue: true },
    })
    await client.connect()
    const cache = createCache({ service: 'given', l2: redisClusterStore({ cluster: client }) })
    const items = cache.namespace('item', { key: 'item:{id}', ttl: '1h', load: ({ id }) => ({ id }) })
    await cache.connect()
    await items.get({ id: 5 })
    await expect.poll(() => client.get(keyOf('given', 5))).not.toBeNull()
    await cache.close()
    expect(client.isReady).toBe(true)
    await client.close()
  })

  it('queues write-behind writes in a stream on the cluster and flushes them to the source, in order', async () => {
    const written: number[] = []
    const cache = createCache({
      service: 'wb',
      l2: redisClusterStore({ rootNodes: rootNodes() }),
      timeouts: { l2: 2_000 },
    })
    caches.push(cache)
    const accounts = cache.namespace('account', {
      key: 'account:{id}',
      ttl: '1m',
      load: ({ id }: { id: number }) => ({ id, balance: 0 }),
      writeStrategy: 'write-behind',
      write: (_params, value) => {
        written.push(value.balance)
      },
      writeBehind: { flush: true, batchSize: 5, flushInterval: '20ms' },
    })
    await cache.connect()
    for (let balance = 1; balance <= 20; balance++) await accounts.write({ id: 1 }, { id: 1, balance })
    await expect.poll(() => written.length, { timeout: 10_000 }).toBe(20)
    expect(written).toEqual(Array.from({ length: 20 }, (_, i) => i + 1))
    expect(await accounts.get({ id: 1 })).toEqual({ id: 1, balance: 20 })
    expect(accounts.stats().l2Errors).toBe(0)
  })

  it('appends audit records of a purge to a stream on the cluster', async () => {
    const client = createCluster({ rootNodes: rootNodes(), defaults: { disableOfflineQueue: true } })
    await client.connect()
    try {
      const cache = createCache({
        service: 'audited',
        l2: redisClusterStore({ cluster: client }),
        audit: redisStreamAuditSink({ client, stream: 'audited:audit' }),
      })
      caches.push(cache)
      const items = cache.namespace('item', { key: 'item:{id}', ttl: '1h', load: ({ id }) => ({ id }) })
      await cache.connect()
      await items.getMany(Array.from({ length: 20 }, (_, id) => ({ id })))
      await cache.purge({ namespace: 'item', actor: 'alice', reason: 'test' })
      const entries = await client.sendCommand<[string, string[]][]>('audited:audit', true, [
        'XRANGE',
        'audited:audit',
        '-',
        '+',
      ])
      expect(entries.map(([, fields]) => fields[fields.indexOf('phase') + 1])).toEqual([
        'requested',
        'completed',
      ])
      await cache.close()
    } finally {
      await client.close()
    }
  })

  it("inspects the whole cluster: every master's memory and limit added up, every master's keys sampled", async () => {
    const a = await make('inspected', { l2Timeout: 2_000 })
    const live = await Promise.all(
      cluster.nodes.map(async (node) => ((await cluster.role(node)) === 'master' ? node : undefined)),
    )
    const masters = live.filter((node) => node !== undefined)
    expect(masters).toHaveLength(3)
    const mb = 1024 * 1024
    await Promise.all(
      masters.map((node, i) => node.command('CONFIG', 'SET', 'maxmemory', String((i + 1) * 100 * mb))),
    )
    try {
      const params = Array.from({ length: 60 }, (_, id) => ({ id }))
      await a.items.getMany(params)
      const keys = params.map((p) => keyOf('inspected', p.id))
      const raw = createCluster({ rootNodes: rootNodes(), defaults: { disableOfflineQueue: true } })
      await raw.connect()
      try {
        await expect
          .poll(async () => (await Promise.all(keys.map((key) => raw.exists(key)))).every((n) => n === 1))
          .toBe(true)
      } finally {
        await raw.close()
      }
      const used = async () =>
        (await cluster.onMasters('INFO', 'memory'))
          .map((reply) => Number(/used_memory:(\d+)/.exec(reply)?.[1]))
          .reduce((total, n) => total + n, 0)
      const before = await used()
      const report = await a.cache.inspect({ sampleKeys: 1_000 })
      const after = await used()
      expect(report.memory.maxmemory).toMatchObject({ known: true, value: 600 * mb })
      expect(report.memory.used.known && report.memory.used.value).toBeGreaterThanOrEqual(
        Math.min(before, after) * 0.9,
      )
      expect(report.memory.used.known && report.memory.used.value).toBeLessThanOrEqual(
        Math.max(before, after) * 1.1,
      )
      expect(report.namespaces['item']).toMatchObject({ stoppedBy: 'complete', coverage: 1, entries: 60 })
      // A scan stopped early on the second master or later: its share is read off the cluster cursor.
      const partial = await a.cache.inspect({ sampleKeys: 30, scanCount: 5 })
      const item = partial.namespaces['item']!
      expect(item.stoppedBy).toBe('sample-size')
      expect(item.coverage).toBeGreaterThan(0)
      expect(item.coverage).toBeLessThan(1)
    } finally {
      await cluster.onMasters('CONFIG', 'SET', 'maxmemory', '0')
    }
  })

  it.each(['node-redis', 'ioredis'])(
    'runs every cache feature as an ACL user limited to its service, with +spublish +ssubscribe (%s)',
    async (client) => {
      const service = `acl-${client}`
      // The ACL of docs/security.md, on every node (ACLs are per node).
      const acl = [
        ...[
          'ACL',
          'SETUSER',
          'cache-app',
          'on',
          '>s3cret-pass',
          'resetkeys',
          `~${service}:*`,
          `~${service}#*`,
        ],
        ...['resetchannels', `&${service}#*`, '-@all', ...CLUSTER_ACL_COMMANDS.split(' ')],
      ]
      for (const node of cluster.nodes) expect(await node.command(...acl)).toBe('+OK\r\n')
      const ioClient =
        client === 'ioredis'
          ? new Cluster(
              cluster.nodes.slice(0, 3).map((node) => ({ host: '127.0.0.1', port: node.port })),
              {
                lazyConnect: true,
                enableOfflineQueue: false,
                shardedSubscribers: true,
                redisOptions: {
                  maxRetriesPerRequest: 0,
                  username: 'cache-app',
                  password: 's3cret-pass',
                  // Each node connection's ready check is an INFO, which the ACL refuses (ioredis says so, noisily).
                  enableReadyCheck: false,
                },
              },
            )
          : undefined
      try {
        const make = async () => {
          const cache = createCache({
            service,
            timeouts: { l2: '2s' },
            l2:
              ioClient === undefined
                ? redisClusterStore({
                    rootNodes: rootNodes(),
                    username: 'cache-app',
                    password: 's3cret-pass',
                  })
                : ioredisStore({ client: ioClient }),
          })
          caches.push(cache)
          await cache.connect()
          await expect.poll(() => cache.stats().bus?.subscribed).toBe(true)
          return cache.namespace('item', {
            key: 'item:{id}',
            ttl: '1m',
            tags: ({ id }: { id: number }) => [`group:${id % 2}`],
            load: ({ id }: { id: number }) => ({ id, by: 'loader' }),
          })
        }
        const a = await make()
        const b = await make()
        const params = Array.from({ length: 20 }, (_, id) => ({ id }))
        await a.getMany(params) // fences, locks, MGET per slot, loads, fenced stores
        await expect.poll(async () => (await b.getMany(params)).length).toBe(20)
        await a.set({ id: 2 }, { id: 2, by: 'set' }) // version bump, SET, SPUBLISH
        await expect.poll(() => b.get({ id: 2 })).toEqual({ id: 2, by: 'set' })
        expect(await a.invalidateTag('group:0')).toBeGreaterThanOrEqual(1)
        expect(await a.clear()).toBeGreaterThanOrEqual(1) // SCAN on every master
        expect(a.stats().l2Errors + b.stats().l2Errors).toBe(0)
      } finally {
        for (const node of cluster.nodes)
          await node.command('ACL', 'DELUSER', 'cache-app').catch(() => undefined)
      }
      ioClient?.disconnect()
    },
  )

  it("measures its clock against the cluster's (TIME): entries written by a process an hour behind stay fresh for the others", async () => {
    const HOUR = 3_600_000
    const make = async (skewMs: number, loads: { n: number }) => {
      const cache = createCache({
        service: 'skewed',
        clock: { now: () => Date.now() + skewMs },
        // Measured in any case (by default an injected clock is corrected only if it runs with real time, as this one does).
        clockSync: true,
        timeouts: { l2: '2s' },
        l2: redisClusterStore({ rootNodes: rootNodes() }),
      })
      caches.push(cache)
      await cache.connect()
      const items = cache.namespace('item', {
        key: 'item:{id}',
        ttl: '2s',
        jitter: 0,
        load: ({ id }: { id: number }) => {
          loads.n++
          return `loaded ${id}`
        },
      })
      return { cache, items }
    }
    const writer = await make(-HOUR, { n: 0 })
    const readerLoads = { n: 0 }
    const reader = await make(0, readerLoads)
    // The offset is the cluster's clock minus the process's: an hour for the one behind, none for the other.
    await expect.poll(() => writer.cache.stats().l2!.clockOffsetMs).toBeGreaterThan(HOUR - 5_000)
    expect(writer.cache.stats().l2!.clockOffsetMs).toBeLessThan(HOUR + 5_000)
    expect(reader.cache.stats().l2!.clockOffsetMs).toBe(0)
    await writer.items.set({ id: 1 }, 'written')
    expect(await reader.items.get({ id: 1 })).toBe('written')
    await new Promise((resolve) => setTimeout(resolve, 500))
    expect(await reader.items.get({ id: 1 })).toBe('written')
    expect(readerLoads.n).toBe(0)
  })

  it('refuses options it cannot honour, naming them', () => {
    expect(() => redisClusterStore({ rootNodes: rootNodes(), url: 'x' } as never)).toThrow(/url/)
    expect(() => redisClusterStore({})).toThrow(/exactly one of `rootNodes` or `cluster`/)
    expect(() => redisClusterStore({ rootNodes: [] })).toThrow(/non-empty array/)
    expect(() =>
      redisClusterStore({ rootNodes: [{ url: 'redis://127.0.0.1:1' }, { url: 'rediss://127.0.0.1:2' }] }),
    ).toThrow(/one scheme/)
    expect(() => redisClusterStore({ rootNodes: rootNodes(), tls: {} })).toThrow(/rediss/)
    expect(() =>
      redisClusterStore({ rootNodes: [{ url: 'redis://u:p@127.0.0.1:1' }], password: 'p' }),
    ).toThrow(/one place/)
  })

  it('refuses an ioredis Cluster made without shardedSubscribers, which would leave the bus deaf and every load waiting out its subscription', async () => {
    const plain = new Cluster(
      cluster.nodes.slice(0, 3).map((node) => ({ host: '127.0.0.1', port: node.port })),
      { lazyConnect: true },
    )
    let refusal: unknown
    try {
      ioredisStore({ client: plain })
    } catch (error) {
      refusal = error
    }
    expect(refusal).toBeInstanceOf(InvalidOptionError)
    expect(refusal).toMatchObject({
      code: 'ERR_STRATA_INVALID_OPTION',
      option: 'ioredisStore.client.options.shardedSubscribers',
    })
    expect((refusal as Error).message).toMatch(/new Cluster\(nodes, \{ shardedSubscribers: true, … \}\)/)
    // Nothing was opened on the app's client: it is still as the app left it.
    expect(plain.status).toBe('wait')
    plain.disconnect()
  })

  it('keeps answering while a master dies, within the L2 timeout, and uses its promoted replica afterwards', async () => {
    const warnings: string[] = []
    const logger: Logger = {
      info: () => {},
      error: () => {},
      warn: (_fields, message) => warnings.push(message),
    }
    const a = await make('failover', { l2Timeout: 100, logger })
    const params = Array.from({ length: 40 }, (_, id) => ({ id }))
    await a.items.getMany(params)
    const victim = await cluster.masterOf(clusterSlot(keyOf('failover', 0)))
    await victim.kill()
    const deadline = Date.now() + 20_000
    let slowest = 0
    let reads = 0
    // Reads during the failover: from L1 (1 s), then L2 or the loader; never an error, never a long wait.
    for (; Date.now() < deadline; reads++) {
      const started = performance.now()
      const got = await a.items.get({ id: reads % 40 })
      slowest = Math.max(slowest, performance.now() - started)
      expect(got.id).toBe(reads % 40)
      const roles = await Promise.all(cluster.nodes.map((node) => cluster.role(node)))
      if (roles.filter((role) => role === 'master').length === 3 && reads > 20) break
      await new Promise((resolve) => setTimeout(resolve, 25))
    }
    await cluster.waitReady()
    // The log says which node could not be reached, once.
    const named = warnings.filter((w) =>
      w.includes(`node of the Redis Cluster failed: cannot reach Redis at 127.0.0.1:${victim.port}`),
    )
    expect(named, warnings.join('\n')).toHaveLength(1)
    // Two L2 timeouts (the read, the fence) and the loader: well under a second.
    expect(slowest).toBeLessThan(1_000)
    // The promoted replica serves the slot: writes and reads of it work again, without restarting anything.
    await expect
      .poll(
        async () => {
          await a.items.set({ id: 0 }, { id: 100 })
          return (await a.items.get({ id: 0 })).id
        },
        { timeout: 15_000, interval: 200 },
      )
      .toBe(100)
    await victim.restart()
  }, 60_000)
})
