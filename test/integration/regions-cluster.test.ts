// Regions where one region's L2 is a Redis Cluster and the other's one node: the outbox and relay keys share a
// region's hash tag, and keys travel relative, so invalidations name the same entries in both layouts.
import { createCache, type Cache } from 'stratacache'
import { redisClusterStore, redisStore } from 'stratacache/redis'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { startRedisCluster, type RedisCluster } from '../helpers/redis-cluster.js'
import { startRedis, type RedisServer } from '../helpers/redis-server.js'

let cluster: RedisCluster
let single: RedisServer
const caches: Cache[] = []

beforeAll(async () => {
  cluster = await startRedisCluster({ masters: 3 })
  single = await startRedis()
}, 60_000)
afterAll(async () => {
  await cluster.stop()
  await single.stop()
})
afterEach(async () => {
  await Promise.all(caches.splice(0).map((cache) => cache.close()))
  await cluster.onMasters('FLUSHALL')
  await single.command('FLUSHALL')
})

const clusterStore = () => redisClusterStore({ rootNodes: cluster.urls.map((url) => ({ url })) })

function proc(region: 'eu' | 'us', rows: Map<string, number>, outboxMaxLength?: number) {
  const cache = createCache({
    service: 'geo',
    logger: false,
    // The tests count relay errors, to catch a command the cluster refuses (a key in the wrong slot): a relay step
    // that times out on a loaded machine (Node 24 in CI, the default 100 ms) is not one.
    timeouts: { l2: '2s' },
    l2: region === 'eu' ? clusterStore() : redisStore({ url: single.url }),
    region,
    regions: {
      peers: [
        region === 'eu'
          ? { region: 'us', l2: redisStore({ url: single.url }) }
          : { region: 'eu', l2: clusterStore() },
      ],
      heartbeat: '50ms',
      splitAfter: '400ms',
      ...(outboxMaxLength === undefined ? {} : { outboxMaxLength }),
    },
  })
  caches.push(cache)
  const item = cache.namespace('item', {
    key: 'item:{id}',
    params: { id: 'string' },
    ttl: '1h',
    tags: ({ id }) => [`group:${id.slice(0, 1)}`],
    load: ({ id }) => ({ v: rows.get(id) ?? 0 }),
  })
  return { cache, item }
}

async function until(check: () => Promise<boolean>, ms = 5_000): Promise<void> {
  const started = performance.now()
  while (!(await check())) {
    if (performance.now() - started > ms) throw new Error(`not within ${ms} ms`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

describe('regions with a Redis Cluster on one side', () => {
  it('relays deletes, tags and clears from the cluster region to the single-node region and back', async () => {
    const rows = new Map<string, number>()
    const eu = proc('eu', rows)
    const us = proc('us', rows)
    await Promise.all([eu.cache.connect(), us.cache.connect()])
    const ids = ['a1', 'a2', 'b1', 'b2', 'c1']
    for (const id of ids) rows.set(id, 1)
    for (const id of ids) {
      await eu.item.get({ id })
      await us.item.get({ id })
    }
    for (const id of ids) rows.set(id, 2)
    // eu (cluster) → us (one node): a delete and a tag.
    await eu.item.delete({ id: 'a1' })
    await eu.item.invalidateTag('group:b')
    await until(async () => (await us.item.get({ id: 'a1' })).v === 2)
    await until(async () => (await us.item.get({ id: 'b2' })).v === 2)
    expect(await us.item.get({ id: 'a2' })).toEqual({ v: 1 })
    // us (one node) → eu (cluster, 16 fence shards): a delete and a clear.
    await us.item.delete({ id: 'a2' })
    await until(async () => (await eu.item.get({ id: 'a2' })).v === 2)
    expect(await eu.item.get({ id: 'c1' })).toEqual({ v: 1 })
    await us.item.clear()
    await until(async () => (await eu.item.get({ id: 'c1' })).v === 2)
    expect(eu.cache.stats().regions!.errors).toBe(0)
    expect(us.cache.stats().regions!.errors).toBe(0)
  })

  it('relays a hashed (over-long) key from one node to the cluster, whichever fence shard holds it', async () => {
    const rows = new Map<string, number>()
    const eu = proc('eu', rows)
    const us = proc('us', rows)
    await Promise.all([eu.cache.connect(), us.cache.connect()])
    const id = 'z'.repeat(400)
    rows.set(id, 1)
    await eu.item.get({ id })
    rows.set(id, 2)
    await us.item.delete({ id })
    await until(async () => (await eu.item.get({ id })).v === 2)
  })

  it("detects entries trimmed from the cluster region's outbox (XINFO on the stream's node) and drops what they covered", async () => {
    const rows = new Map<string, number>([['a', 1]])
    const eu = proc('eu', rows, 5)
    const us = proc('us', rows)
    await Promise.all([eu.cache.connect(), us.cache.connect()])
    expect(await us.item.get({ id: 'a' })).toEqual({ v: 1 })
    await until(async () => (us.cache.stats().regions?.peers.eu?.relayed ?? 0) >= 2)
    // us's relay stops; eu deletes `a` (the source has changed) and then far more than its outbox keeps.
    await us.cache.close()
    rows.set('a', 2)
    await eu.item.delete({ id: 'a' })
    for (let i = 0; i < 300; i++) await eu.item.delete({ id: `k${i}` })
    const back = proc('us', rows)
    await back.cache.connect()
    await until(async () => (back.cache.stats().regions?.peers.eu?.overflows ?? 0) >= 1)
    expect(back.cache.stats().regions!.peers.eu!.dropped).toBeGreaterThanOrEqual(100)
    // us's L2 still held v 1 under the old generation: a new one was started, so the read loads v 2.
    expect(await back.item.get({ id: 'a' })).toEqual({ v: 2 })
  })
})
