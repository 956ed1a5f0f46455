// One L2Store contract, run against every store: node-redis and ioredis, each on one node and on a 3-master Redis
// Cluster (real servers), and the disk store (LMDB files in a fresh directory). Keys are built as the cache builds
// them (the store's fence shards).
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createCache, type Cache } from 'stratacache'
import { redisClusterStore, redisStore } from 'stratacache/redis'
import { ioredisStore } from 'stratacache/ioredis'
import { diskStore } from 'stratacache/disk'
import { Cluster } from 'ioredis'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { KeySchema } from '../../src/core/keys.js'
import { clusterSlot } from '../../src/tiers/cluster-slot.js'
import type { L2Store } from '../../src/tiers/l2-store.js'
import { startRedisCluster, type RedisCluster } from '../helpers/redis-cluster.js'
import { startRedis, type RedisServer } from '../helpers/redis-server.js'

interface Target {
  readonly name: string
  /** What the store answers to INFO server: Redis its version, the disk store its engine. */
  checkServer(fields: Readonly<Record<string, string>>): void
  start(): Promise<void>
  store(): L2Store
  flush(): Promise<unknown>
  stop(): Promise<void>
}

let single: RedisServer | undefined
let cluster: RedisCluster | undefined
let diskPath: string | undefined
const redisVersion = (fields: Readonly<Record<string, string>>) =>
  expect(Number(fields['redis_version']?.split('.')[0])).toBeGreaterThanOrEqual(7)
const targets: Target[] = [
  {
    name: 'node-redis, one node',
    async start() {
      single = await startRedis()
    },
    checkServer: redisVersion,
    store: () => redisStore({ url: single!.url }),
    flush: () => single!.command('FLUSHALL'),
    stop: async () => single?.stop(),
  },
  ...ioredisTargets('', {}),
  {
    name: 'node-redis, Redis Cluster (3 masters)',
    async start() {
      cluster = await startRedisCluster({ masters: 3 })
    },
    checkServer: redisVersion,
    store: () => redisClusterStore({ rootNodes: cluster!.urls.slice(0, 2).map((url) => ({ url })) }),
    flush: () => cluster!.onMasters('FLUSHALL'),
    stop: async () => cluster?.stop(),
  },
  // ioredis's auto-pipelining sends `callBuffer` without its command name (ioredis 5.11): the stores must not
  // depend on the client's way of sending.
  ...ioredisTargets(', enableAutoPipelining', { enableAutoPipelining: true }),
  {
    // No server: every store of a test opens the same directory, as the processes of one host do.
    name: 'disk (LMDB, one host)',
    checkServer: (fields) => expect(fields['engine']).toBe('lmdb'),
    async start() {
      diskPath = mkdtempSync(join(tmpdir(), 'strata-conformance-'))
    },
    store: () => diskStore({ path: diskPath!, maxBytes: 64 * 1024 * 1024 }),
    async flush() {
      // Every store of the test is closed by now: the next test starts on empty files.
      rmSync(diskPath!, { recursive: true, force: true })
      diskPath = mkdtempSync(join(tmpdir(), 'strata-conformance-'))
    },
    stop: async () => {
      if (diskPath !== undefined) rmSync(diskPath, { recursive: true, force: true })
    },
  },
]

/**
 * ioredis on one node (a client the store makes from a URL) and on a 3-master Cluster (a client passed in, which the
 * store leaves open: disconnected after each test), both with `options` on their clients.
 */
function ioredisTargets(label: string, options: { enableAutoPipelining?: boolean }): Target[] {
  let server: RedisServer | undefined
  let nodes: RedisCluster | undefined
  const clusters: Cluster[] = []
  return [
    {
      name: `ioredis, one node${label}`,
      async start() {
        server = await startRedis()
      },
      checkServer: redisVersion,
      store: () => ioredisStore({ url: server!.url, redisOptions: options }),
      flush: () => server!.command('FLUSHALL'),
      stop: async () => server?.stop(),
    },
    {
      name: `ioredis, Redis Cluster (3 masters)${label}`,
      async start() {
        nodes = await startRedisCluster({ masters: 3 })
      },
      checkServer: redisVersion,
      store: () => {
        const client = new Cluster(
          nodes!.nodes.slice(0, 2).map((node) => ({ host: '127.0.0.1', port: node.port })),
          {
            ...options,
            lazyConnect: true,
            enableOfflineQueue: false,
            shardedSubscribers: true,
            redisOptions: { ...options, maxRetriesPerRequest: 0 },
          },
        )
        clusters.push(client)
        return ioredisStore({ client })
      },
      flush: async () => {
        for (const client of clusters.splice(0)) client.disconnect()
        await nodes!.onMasters('FLUSHALL')
      },
      stop: async () => nodes?.stop(),
    },
  ]
}

const bytes = (text: string) => Buffer.from(text)
const text = (value: Uint8Array | null) => (value === null ? null : Buffer.from(value).toString())
const token = () => randomBytes(16).toString('base64url')

describe.each(targets)('L2Store contract: $name', (target) => {
  const stores: L2Store[] = []
  const caches: Cache[] = []
  const open = async () => {
    const store = target.store()
    stores.push(store)
    await store.connect()
    return store
  }
  /** Keys as the cache builds them for this store: its fence shards, hash tags included. */
  const schemaFor = (store: L2Store) =>
    new KeySchema({
      service: 'conf',
      namespace: 'item',
      schemaVersion: 1,
      template: 'item:{id}',
      dimensions: [],
      maxKeyLength: 256,
      fenceShards: store.fenceShards ?? 1,
    })

  beforeAll(() => target.start(), 30_000)
  afterAll(() => target.stop())
  afterEach(async () => {
    await Promise.all(caches.splice(0).map((cache) => cache.close()))
    await Promise.all(stores.splice(0).map((store) => store.close()))
    await target.flush()
  })

  it('connects to a server it supports, and stores bytes with a TTL', async () => {
    const store = await open()
    expect(store.status).toBe('ready')
    await store.set('conf:a', bytes('one'), 60_000)
    expect(text(await store.get('conf:a'))).toBe('one')
    expect(await store.get('conf:missing')).toBeNull()
    const [ttl, none] = await store.ttlMany(['conf:a', 'conf:missing'])
    expect(ttl).toBeGreaterThan(59_000)
    expect(none).toBe(-2)
    await store.set('conf:short', bytes('x'), 30)
    await expect.poll(() => store.get('conf:short'), { timeout: 2_000 }).toBeNull()
  })

  it('answers stats(), when it keeps counters, before connect, while open and after close, never throwing', async () => {
    // Optional (Redis keeps its counters in INFO); cache.stats() and every exporter's scrape read it, closed caches too.
    const store = target.store()
    stores.push(store)
    if (store.stats === undefined) return
    const before = store.stats()
    expect(before).toMatchObject({ corruptReads: 0, tooLarge: 0 })
    await store.connect()
    await store.set('conf:stats', bytes('v'), 60_000)
    const open = store.stats()
    expect(open.entries).toBeGreaterThanOrEqual(1)
    expect(open.bytes).toBeGreaterThan(0)
    expect(open.bytes).toBeLessThanOrEqual(open.maxBytes)
    await store.close()
    expect(store.stats()).toEqual(open)
  })

  it('reads and writes keys of many slots in one getMany and one setMany, in order', async () => {
    const store = await open()
    const keys = Array.from({ length: 60 }, (_, i) => `conf:many:${i}`)
    expect(new Set(keys.map((key) => clusterSlot(key))).size).toBeGreaterThan(30)
    await store.setMany(
      keys.filter((_, i) => i % 3 !== 0).map((key) => ({ key, value: bytes(key), ttlMs: 60_000 })),
    )
    const values = await store.getMany(keys)
    expect(values.map(text)).toEqual(keys.map((key, i) => (i % 3 === 0 ? null : key)))
    expect(await store.getMany([])).toEqual([])
    expect(await store.delete(keys)).toBe(40)
    expect((await store.getMany(keys)).every((value) => value === null)).toBe(true)
  })

  it('walks every key of a prefix with scan, whichever node holds it', async () => {
    const store = await open()
    const keys = Array.from({ length: 120 }, (_, i) => `conf:scan:${i}`)
    await store.setMany(keys.map((key) => ({ key, value: bytes('v'), ttlMs: 60_000 })))
    await store.set('other:1', bytes('v'), 60_000)
    const seen = new Set<string>()
    let cursor = '0'
    for (let step = 0; step < 1_000; step++) {
      const reply = await store.scan('conf:scan:*', cursor, 50)
      for (const key of reply.keys) seen.add(key)
      cursor = reply.cursor
      if (cursor === '0') break
    }
    expect(cursor).toBe('0')
    expect([...seen].sort()).toEqual([...keys].sort())
  })

  it('counts versions and increments', async () => {
    const store = await open()
    const key = schemaFor(store).build({ id: 1 })
    expect(await store.getVersion(`${key}#v`)).toBe(0)
    expect(await store.bumpVersion(`${key}#v`, 60_000)).toBe(1)
    expect(await store.bumpVersion(`${key}#v`, 60_000)).toBe(2)
    expect(await store.getVersion(`${key}#v`)).toBe(2)
    expect(await store.increment('conf:counter')).toBe(1)
    expect(await store.increment('conf:counter')).toBe(2)
  })

  it('reads a generation with its restore check: keeps the server id, and raises the generation once when another id is there', async () => {
    const store = await open()
    const generationKey = `${schemaFor(store).prefix.slice(0, -1)}#gen`
    if (store.readGeneration === undefined) {
      // A store with no server identity to check: the cache reads its generation with getVersion.
      expect(target.name).toMatch(/^disk/)
      return
    }
    expect(await store.readGeneration(generationKey, 0)).toEqual({ generation: 0 })
    const originKey = `${generationKey}#origin{${generationKey}}`
    const id = text(await store.get(originKey))
    expect(id).toMatch(/^[0-9a-f]{40}$/)
    expect(await store.readGeneration(generationKey, 0)).toEqual({ generation: 0 })
    // Another server's id, as after a restart from a snapshot or a failover: raised past the one in use (3), once.
    const other = 'f'.repeat(40)
    await store.set(originKey, bytes(other), 60_000)
    expect(await store.readGeneration(generationKey, 3)).toEqual({
      generation: 4,
      restored: { from: other, to: id },
    })
    expect(await store.readGeneration(generationKey, 3)).toEqual({ generation: 4 })
    expect(await store.getVersion(generationKey)).toBe(4)
  })

  it('stores a loaded value under its fence, and refuses it after a version bump, an invalidation mark or under another epoch', async () => {
    const store = await open()
    const schema = schemaFor(store)
    const keys = Array.from({ length: 40 }, (_, id) => schema.build({ id }))
    const layout = schema.layout
    for (const { shard, indexes } of layout.group(keys)) {
      const versionKeys = indexes.map((i) => `${keys[i]!}#v`)
      const fence = await store.readFence(versionKeys, shard.seq, shard.epoch)
      expect(fence).toEqual({ versions: indexes.map(() => 0), seq: 0, epoch: expect.any(String) })
      // The epoch, set by the first fence read, stays until the store loses its data.
      expect((await store.readFence(versionKeys, shard.seq, shard.epoch)).epoch).toBe(fence.epoch)
      const [first, second, third] = indexes.map((i) => keys[i]!)
      const tagSet = shard.tagSet('t1')
      const fenceOf = (key: string, epoch = fence.epoch) => ({
        versionKey: `${key}#v`,
        version: 0,
        epochKey: shard.epoch,
        epoch,
        seq: 0,
        marks: [shard.cleared, `${tagSet}#inv`],
        sets: [tagSet],
      })
      expect(
        await store.storeFenced(
          { key: first!, value: bytes('loaded'), ttlMs: 60_000 },
          fenceOf(first!, 'before'),
        ),
      ).toBe(false)
      expect(
        await store.storeFenced({ key: first!, value: bytes('loaded'), ttlMs: 60_000 }, fenceOf(first!)),
      ).toBe(true)
      expect(text(await store.get(first!))).toBe('loaded')
      if (second !== undefined) {
        await store.bumpVersion(`${second}#v`, 60_000)
        expect(
          await store.storeFenced({ key: second, value: bytes('old'), ttlMs: 60_000 }, fenceOf(second)),
        ).toBe(false)
      }
      if (third !== undefined) {
        expect(await store.markInvalidated(shard.seq, [`${tagSet}#inv`, shard.anyTag], 60_000)).toBe(1)
        expect(
          await store.storeFenced({ key: third, value: bytes('old'), ttlMs: 60_000 }, fenceOf(third)),
        ).toBe(false)
        expect((await store.readFence([`${third}#v`], shard.seq, shard.epoch)).seq).toBe(1)
      }
      const members: string[] = []
      let cursor = '0'
      for (let step = 0; step < 100; step++) {
        const reply = await store.scanSet(tagSet, cursor, 100)
        members.push(...reply.members)
        cursor = reply.cursor
        if (cursor === '0') break
      }
      expect(members).toEqual([first])
    }
  })

  it('takes, extends and releases locks, and breaks a lock key that cannot be a live lock', async () => {
    const store = await open()
    const lock = `${schemaFor(store).build({ id: 'locked' })}#lock`
    const mine = token()
    expect(await store.acquireLock(lock, mine, 10_000)).toEqual({ won: true, broke: false })
    const theirs = await store.acquireLock(lock, token(), 10_000)
    expect(theirs.won).toBe(false)
    expect(theirs.won ? 0 : theirs.remainingMs).toBeGreaterThan(9_000)
    expect(await store.extendLock(lock, mine, 20_000)).toBe(true)
    expect(await store.extendLock(lock, token(), 20_000)).toBe(false)
    expect(await store.unlock(lock, token())).toBe(false)
    expect(await store.unlock(lock, mine)).toBe(true)
    expect(await store.tryLock(lock, mine, 10_000)).toBe(true)
    expect(await store.tryLock(lock, token(), 10_000)).toBe(false)
    await store.delete([lock])
    // Left without an expiry (by hand, by a crashed tool): broken by the next taker.
    await store.set(lock, bytes('junk'), 60_000)
    await store.delete([lock])
    await store.increment(lock)
    expect(await store.acquireLock(lock, mine, 10_000)).toEqual({ won: true, broke: true })
  })

  it('adds to tag sets, renames them atomically to a snapshot in their slot, and scans them', async () => {
    const store = await open()
    const schema = schemaFor(store)
    const key = schema.build({ id: 7 })
    const set = schema.layout.shardOf(key).tagSet('t7')
    await store.set(key, bytes('v'), 60_000)
    await store.addToSet(set, key, 60_000)
    expect(await store.renameIfExists(set, `${set}#snapshot`)).toBe(true)
    expect(await store.renameIfExists(set, `${set}#snapshot2`)).toBe(false)
    expect((await store.scanSet(`${set}#snapshot`, '0', 100)).members).toEqual([key])
  })

  it('queues writes durably in a stream with a consumer group (write-behind)', async () => {
    const store = await open()
    const queue = 'conf:item#wb'
    await store.queueCreateGroup(queue, 'flushers')
    await store.queueCreateGroup(queue, 'flushers')
    const first = await store.queueAppend(queue, { key: 'k1', value: bytes('v1') })
    await store.queueAppend(queue, { key: 'k2', value: 'v2' }, 1_000)
    const read = await store.queueRead(queue, 'flushers', 'a', 10)
    expect(read.map((entry) => Buffer.from(entry.fields['key']!).toString())).toEqual(['k1', 'k2'])
    expect(await store.queueSize(queue, 'flushers')).toEqual({ length: 2, pending: 2 })
    const pending = await store.queuePending(queue, 'flushers', 0, 10)
    expect(pending.map((entry) => entry.consumer)).toEqual(['a', 'a'])
    const claimed = await store.queueClaim(queue, 'flushers', 'b', 0, [first])
    expect(claimed.map((entry) => entry.id)).toEqual([first])
    await store.queueAck(queue, 'flushers', [first])
    expect(await store.queueGet(queue, first)).toBeUndefined()
    const [second] = read.filter((entry) => entry.id !== first)
    expect(text(Buffer.from((await store.queueGet(queue, second!.id))!.fields['value']!))).toBe('v2')
    expect(await store.queueSize(queue, 'flushers')).toEqual({ length: 1, pending: 1 })
    await store.queueDeleteConsumer(queue, 'flushers', 'b')
  })

  it('marks a write-behind write pending: the latest id stays, and fenced stores wait until it is removed', async () => {
    const store = await open()
    const schema = schemaFor(store)
    const key = schema.build({ id: 7 })
    const mark = schema.pendingMark(key)!
    const [shard] = schema.layout.group([key]).map((group) => group.shard)
    const read = await store.readFence([`${key}#v`], shard!.seq, shard!.epoch)
    const fence = {
      versionKey: `${key}#v`,
      version: 0,
      epochKey: shard!.epoch,
      epoch: read.epoch,
      pendingKey: mark,
      seq: 0,
      marks: [],
      sets: [],
    }
    await store.markPending(mark, '1700000000000-5', 60_000)
    await store.markPending(mark, '1700000000000-4', 60_000) // an earlier write, marked late: the later stays
    expect(await store.unlock(mark, '1700000000000-4')).toBe(false)
    expect(await store.storeFenced({ key, value: bytes('from the source'), ttlMs: 60_000 }, fence)).toBe(
      false,
    )
    expect(await store.unlock(mark, '1700000000000-5')).toBe(true)
    expect(await store.storeFenced({ key, value: bytes('from the source'), ttlMs: 60_000 }, fence)).toBe(true)
  })

  it('counts entries trimmed before a group read them (queueDropped) until they are settled (region outboxes)', async () => {
    const store = await open()
    if (store.queueDropped === undefined || store.queueSettleDropped === undefined) return
    const queue = 'conf:{region}#outbox'
    await store.queueCreateGroup(queue, 'relay')
    await store.queueAppend(queue, { n: '0' }, 5)
    const [read] = await store.queueRead(queue, 'relay', 'a', 10)
    await store.queueAck(queue, 'relay', [read!.id])
    expect(await store.queueDropped(queue, 'relay')).toBe(0)
    for (let i = 1; i <= 300; i++) await store.queueAppend(queue, { n: String(i) }, 5)
    const dropped = (await store.queueDropped(queue, 'relay'))!
    const { length } = await store.queueSize(queue, 'relay')
    // MAXLEN ~ trims whole stream nodes: at least 100 of the 300 appended after the last read are gone.
    expect(dropped).toBeGreaterThanOrEqual(100)
    expect(dropped + length).toBe(300)
    expect(await store.queueDropped(queue, 'relay')).toBe(dropped)
    await store.queueSettleDropped(queue, 'relay', dropped)
    expect(await store.queueDropped(queue, 'relay')).toBe(0)
    // Reading on past the gap finds nothing more lost.
    const next = await store.queueRead(queue, 'relay', 'a', 10)
    expect(Buffer.from(next[0]!.fields['n']!).toString()).toBe(String(dropped + 1))
    await store.queueAck(
      queue,
      'relay',
      next.map((entry) => entry.id),
    )
    expect(await store.queueDropped(queue, 'relay')).toBe(0)
  })

  it('delivers a published message to a subscriber in another store', async () => {
    const listener = await open()
    const publisher = await open()
    const received: string[] = []
    await listener.subscribe('conf#bus', (message) => received.push(message))
    await publisher.publish('conf#bus', 'hello')
    await expect.poll(() => received, { timeout: 5_000 }).toEqual(['hello'])
  })

  it('answers INFO and CONFIG GET, and tells error replies from outages', async () => {
    const store = await open()
    const info = await store.info('server')
    expect(info.ok).toBe(true)
    if (info.ok) target.checkServer(info.value)
    const config = await store.configGet('maxmemory-policy')
    expect(config.ok && config.value['maxmemory-policy']).toBeTypeOf('string')
    await store.set('conf:string', bytes('v'), 60_000)
    const error = await store.scanSet('conf:string', '0', 10).catch((e: unknown) => e)
    expect(store.errorReplyKind?.(error)).toBe('WRONGTYPE')
    expect(store.errorReplyKind?.(new Error('socket closed'))).toBeUndefined()
  })

  it('runs a namespace end to end: get, write, invalidateTag, invalidateAll, clear, across two caches', async () => {
    let loads = 0
    const make = async () => {
      // A generous L2 timeout: on a loaded machine a timeout is a miss, which is not what this test is about.
      const cache = createCache({ service: 'conf', l2: target.store(), timeouts: { l2: '2s' } })
      caches.push(cache)
      const items = cache.namespace('item', {
        key: 'tenant:{tenantId}:item:{id}',
        ttl: '1h',
        tags: ({ tenantId }) => [`tenant:${tenantId}`],
        load: ({ tenantId, id }) => {
          loads++
          return { tenantId: String(tenantId), id: Number(id), version: 'loaded' }
        },
      })
      await cache.connect()
      await expect.poll(() => cache.stats().bus?.subscribed).toBe(true)
      return { cache, items }
    }
    const a = await make()
    const b = await make()
    const params = Array.from({ length: 40 }, (_, id) => ({ tenantId: id % 2 === 0 ? 't1' : 't2', id }))
    // getMany across slots: loaded once, then read from L2 by the other cache.
    expect((await a.items.getMany(params)).map((item) => item?.id)).toEqual(params.map((p) => p.id))
    expect(loads).toBe(40)
    // The loaded values reach L2 in the background: wait for all 40 before the other cache reads them.
    const raw = await open()
    const keys = new KeySchema({
      service: 'conf',
      namespace: 'item',
      schemaVersion: 1,
      template: 'tenant:{tenantId}:item:{id}',
      dimensions: [],
      maxKeyLength: 1024,
      fenceShards: raw.fenceShards ?? 1,
    })
    await expect
      .poll(async () =>
        (await raw.getMany(params.map((p) => keys.build(p)))).every((value) => value !== null),
      )
      .toBe(true)
    await expect
      .poll(async () => (await b.items.getMany(params)).every((item) => item?.version === 'loaded'))
      .toBe(true)
    expect(loads).toBe(40)
    // A write in one cache reaches the other's L1 through the (sharded) bus.
    await a.items.set({ tenantId: 't1', id: 0 }, { tenantId: 't1', id: 0, version: 'written' })
    await expect.poll(() => b.items.get({ tenantId: 't1', id: 0 })).toMatchObject({ version: 'written' })
    // invalidateTag: every t1 entry, on every shard, in L2 and in the other cache's L1.
    expect(await a.items.invalidateTag('tenant:t1')).toBe(20)
    await expect
      .poll(async () => {
        await b.items.getMany(params)
        return loads
      })
      .toBe(60)
    // invalidateAll: a new generation everywhere.
    await b.items.invalidateAll()
    await expect
      .poll(async () => {
        await a.items.get({ tenantId: 't2', id: 1 })
        return loads
      })
      .toBe(61)
    // clear(): every entry of the namespace, whichever master holds it.
    await a.items.getMany(params)
    // Loaded values reach L2 in the background: wait for all 40 of the new generation (its keys are a's now).
    const current = params.map((p) => a.items.key(p))
    await expect.poll(async () => (await raw.getMany(current)).every((value) => value !== null)).toBe(true)
    expect(await a.items.clear()).toBeGreaterThanOrEqual(40)
    expect((await raw.getMany(current)).every((value) => value === null)).toBe(true)
  })

  it('calls the loader once for 200 concurrent gets of one cold key across 4 caches', async () => {
    let loads = 0
    const make = async () => {
      const cache = createCache({ service: 'conf-stampede', l2: target.store() })
      caches.push(cache)
      const items = cache.namespace('item', {
        key: 'item:{id}',
        ttl: '1h',
        load: async ({ id }) => {
          loads++
          await new Promise((resolve) => setTimeout(resolve, 100))
          return { id: Number(id) }
        },
      })
      await cache.connect()
      await expect.poll(() => cache.stats().bus?.subscribed).toBe(true)
      return items
    }
    const namespaces = await Promise.all([make(), make(), make(), make()])
    const answers = await Promise.all(
      namespaces.flatMap((items) => Array.from({ length: 50 }, () => items.get({ id: 9 }))),
    )
    expect(answers.every((answer) => answer.id === 9)).toBe(true)
    expect(loads).toBe(1)
  })
})
