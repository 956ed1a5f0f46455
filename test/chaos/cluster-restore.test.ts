// A node of a Redis Cluster comes back with older data: restarted from a snapshot (RDB) taken before a write. Its
// entries were invalidated since; the namespace's generation lives on another node, whose own check sees nothing.
// Each fence shard's node is checked against the server id recorded next to the shard (L2Store.readOrigins).
import type { Logger } from 'stratacache'
import { ioredisStore } from 'stratacache/ioredis'
import { redisClusterStore } from 'stratacache/redis'
import { Cluster } from 'ioredis'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { CLUSTER_FENCE_SHARDS, KeyLayout } from '../../src/core/key-layout.js'
import { clusterSlot } from '../../src/tiers/cluster-slot.js'
import type { L2Store } from '../../src/tiers/l2-store.js'
import { startRedisCluster, type RedisCluster } from '../helpers/redis-cluster.js'
import type { RedisServer } from '../helpers/redis-server.js'
import { integerReply, productProcess, recordingLogger } from './support.js'

const SERVICE = 'chaos-cluster-restore'
const PREFIX = `${SERVICE}:product:v1:`
const GENERATION_KEY = `${SERVICE}:product:v1#gen`
const LAYOUT = new KeyLayout(PREFIX, CLUSTER_FENCE_SHARDS)

let cluster: RedisCluster
const closers: (() => Promise<unknown>)[] = []
beforeAll(async () => {
  // No replicas: a killed master is not replaced, it comes back from its own snapshot.
  cluster = await startRedisCluster({ masters: 3 })
}, 40_000)
afterAll(async () => {
  await cluster?.stop()
})
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close()
  await cluster.waitReady()
  await cluster.onMasters('FLUSHALL')
})

const kinds: { readonly name: string; make(): L2Store }[] = [
  {
    name: 'node-redis cluster',
    make: () =>
      redisClusterStore({ rootNodes: cluster.urls.map((url) => ({ url })), maxReconnectDelay: 100 }),
  },
  {
    name: 'ioredis cluster',
    make: () => {
      const client = new Cluster(
        cluster.nodes.map((node) => ({ host: '127.0.0.1', port: node.port })),
        {
          lazyConnect: true,
          enableOfflineQueue: false,
          shardedSubscribers: true,
          clusterRetryStrategy: () => 100,
          redisOptions: { maxRetriesPerRequest: 0 },
        },
      )
      closers.push(async () => client.disconnect())
      return ioredisStore({ client })
    },
  },
]

/** One process: a cache on the cluster and its product namespace, reading `source`. */
function processOn(store: L2Store, source: Map<number, string>, logger?: Logger) {
  return productProcess(
    { service: SERVICE, l2: store, timeouts: { l2: 1_000 }, logger: logger ?? false },
    source,
    closers,
  )
}

/**
 * Process `a` on a new source, with an id's entry ('v1') in L2 away from the generation's node (or on it,
 * `onGeneration`), and that shard's server recorded (each process's first check, in the background), so that a
 * snapshot taken now has the record.
 */
async function cachedEntry(store: L2Store, options: { onGeneration?: boolean; logger?: Logger } = {}) {
  const source = new Map<number, string>()
  const a = await processOn(store, source, options.logger)
  const at = await idAwayFromGeneration(a, options.onGeneration)
  source.set(at.id, 'v1')
  expect(await a.product.get({ id: at.id })).toBe('v1')
  await expect.poll(() => exists(at.node, at.key)).toBe(1)
  await expect.poll(() => exists(at.node, at.origin)).toBe(1)
  return { source, a, ...at }
}

/**
 * `node` snapshots the 'v1' entry; then cache-aside: the source changes and `a` deletes the entry everywhere; then
 * `node` restarts from the snapshot, which brings 'v1' back with its version.
 */
async function restoredAfterDelete(
  node: RedisServer,
  entry: {
    source: Map<number, string>
    a: { product: { delete(p: { id: number }): Promise<void> } }
    id: number
  },
) {
  await node.command('SAVE')
  entry.source.set(entry.id, 'v2')
  await entry.a.product.delete({ id: entry.id })
  await node.kill()
  await node.restart()
  await cluster.waitReady()
}

/**
 * An id of the namespace whose entry lives on another node than the generation (only the shard check can see its
 * restore), or, `onGeneration`, on the generation's node (both checks see it).
 */
async function idAwayFromGeneration(
  process: { product: { key(p: { id: number }): string } },
  onGeneration = false,
) {
  const generationNode = await cluster.masterOf(clusterSlot(GENERATION_KEY))
  for (let id = 1; id < 200; id++) {
    const key = process.product.key({ id })
    const node = await cluster.masterOf(clusterSlot(key))
    if ((node === generationNode) === onGeneration)
      return { id, key, node, origin: LAYOUT.shardOf(key).origin }
  }
  throw new Error('no id tried lives where it should')
}

/** The generation in Redis, as a number (0 when absent). */
async function generationNow(): Promise<number> {
  const node = await cluster.masterOf(clusterSlot(GENERATION_KEY))
  return Number(bulk(await node.command('GET', GENERATION_KEY)) ?? 0)
}

const exists = async (node: RedisServer, key: string) => integerReply(await node.command('EXISTS', key))
/** A bulk string reply's text, or undefined for nil. */
const bulk = (reply: string) => (reply.startsWith('$-1') ? undefined : reply.split('\r\n')[1])
const runId = async (node: RedisServer) => /run_id:(\w+)/.exec(await node.command('INFO', 'server'))![1]!

describe('a Redis Cluster node restarted from a snapshot taken before a write', () => {
  for (const kind of kinds) {
    it(`${kind.name}: running processes move to one new generation and read the written value`, async () => {
      const { logger, lines } = recordingLogger()
      const entry = await cachedEntry(kind.make(), { logger })
      const { source, a, id, key, node } = entry
      const b = await processOn(kind.make(), source)
      expect(await b.product.get({ id })).toBe('v1') // from L2 into B's L1
      await restoredAfterDelete(node, entry)
      expect(await exists(node, key)).toBe(1) // the 'v1' entry is back, with its version

      // Both processes hear the node come back (the bus missed messages) and check again; one raises, once.
      await expect
        .poll(() => a.product.stats().l2Restores + b.product.stats().l2Restores, { timeout: 15_000 })
        .toBe(1)
      expect(await generationNow()).toBe(1)
      await expect.poll(() => a.product.get({ id }), { timeout: 5_000 }).toBe('v2')
      await expect.poll(() => b.product.get({ id }), { timeout: 5_000 }).toBe('v2')
      if (a.product.stats().l2Restores === 1) {
        const warned = lines.filter((line) =>
          /restarted from a snapshot or a replica took over/.test(line.message),
        )
        expect(warned).toHaveLength(1)
      }

      // A process started afterwards finds the change already raised for: no second raise.
      const c = await processOn(kind.make(), source)
      expect(await c.product.get({ id })).toBe('v2')
      await expect.poll(() => c.cache.stats().l2?.status).toBe('ready')
      await new Promise((resolve) => setTimeout(resolve, 500)) // its background check of the shards
      expect(c.product.stats().l2Restores).toBe(0)
      expect(await generationNow()).toBe(1)
    }, 60_000)
  }

  it('a node restarted empty, and a process started after the restore, move no generation', async () => {
    const { a, id, node, origin } = await cachedEntry(kinds[0]!.make())
    // Restarted without a snapshot (the test's nodes persist nothing but SAVE's): nothing older came back.
    await node.command('FLUSHALL')
    await node.command('SAVE')
    await node.kill()
    await node.restart()
    await cluster.waitReady()
    await expect.poll(() => exists(node, origin), { timeout: 15_000 }).toBe(1) // recorded again, for the new id
    await expect.poll(() => a.product.get({ id }), { timeout: 5_000 }).toBe('v1')
    expect(a.product.stats().l2Restores).toBe(0)
    expect(await generationNow()).toBe(0)
  }, 60_000)

  it('a slot moved to another master by a reshard raises nothing: its keys moved with it, intact', async () => {
    const { source, a, id, key, node, origin } = await cachedEntry(kinds[0]!.make())
    // The entry's slot, and with it its shard's recorded id (same hash tag), moves to another master.
    const to = cluster.nodes.find((other) => other !== node)!
    await cluster.migrateSlot(clusterSlot(key), to)
    await cluster.waitReady()
    expect(await exists(to, key)).toBe(1)

    // A process started now checks every shard: the moved one names a server that still serves slots.
    const b = await processOn(kinds[0]!.make(), source)
    await expect
      .poll(async () => bulk(await to.command('GET', origin))?.split('/')[0], { timeout: 10_000 })
      .toBe(await runId(to))
    expect(await b.product.get({ id })).toBe('v1') // the moved entry, read from L2
    expect(b.loads.count).toBe(0)
    expect(a.product.stats().l2Restores + b.product.stats().l2Restores).toBe(0)
    expect(await generationNow()).toBe(0)
  }, 60_000)

  it('the node holding the generation restored: raised once, though its own check and its shards both see it', async () => {
    const entry = await cachedEntry(kinds[0]!.make(), { onGeneration: true })
    const { source, a, id, node, origin } = entry
    const b = await processOn(kinds[0]!.make(), source)
    await restoredAfterDelete(node, entry)
    await expect
      .poll(() => a.product.stats().l2Restores + b.product.stats().l2Restores, { timeout: 15_000 })
      .toBe(1)
    await expect.poll(() => a.product.get({ id }), { timeout: 5_000 }).toBe('v2')
    await expect.poll(() => b.product.get({ id }), { timeout: 5_000 }).toBe('v2')
    // Both processes' shard checks have run since (the origins hold the new id): nothing raised again.
    await expect
      .poll(async () => bulk(await node.command('GET', origin))?.split('/')[0], { timeout: 10_000 })
      .toBe(await runId(node))
    expect(a.product.stats().l2Restores + b.product.stats().l2Restores).toBe(1)
    expect(await generationNow()).toBe(1)
    // The generation's own check, in a process started now, sees the same change of server: not raised again.
    const c = await processOn(kinds[0]!.make(), source)
    expect(await c.product.get({ id })).toBe('v2')
    const generationOrigin = `${GENERATION_KEY}#origin{${GENERATION_KEY}}`
    await expect
      .poll(async () => bulk(await node.command('GET', generationOrigin)), { timeout: 10_000 })
      .toBe(await runId(node))
    expect(c.product.stats().l2Restores).toBe(0)
    expect(await generationNow()).toBe(1)
  }, 60_000)

  it('a master that received a slot by a reshard, then restarted from its snapshot: raised', async () => {
    const entry = await cachedEntry(kinds[0]!.make())
    const { source, a, id, key, node } = entry
    // The slot moves to a master that was running before the shard was recorded, and holds no other shard of the
    // namespace (its own move elsewhere first, and a process checks once so that they record their new servers):
    // only the moved shard can tell that master's restart. No check runs between the move and the restart.
    const generationNode = await cluster.masterOf(clusterSlot(GENERATION_KEY))
    const to = cluster.nodes.find((other) => other !== node && other !== generationNode)!
    const own = []
    for (const shard of LAYOUT.shards) {
      if ((await cluster.masterOf(clusterSlot(shard.tag))) === to) own.push(shard)
    }
    for (const shard of own) await cluster.migrateSlot(clusterSlot(shard.tag), node, { pauseMs: 0 })
    await cluster.waitReady()
    const checker = await processOn(kinds[0]!.make(), source)
    for (const shard of own) {
      await expect
        .poll(async () => bulk(await node.command('GET', shard.origin))?.split('/')[0], { timeout: 10_000 })
        .toBe(await runId(node))
    }
    await checker.cache.close()
    await cluster.migrateSlot(clusterSlot(key), to)
    await cluster.waitReady()
    // The snapshot has the moved entry, and the shard's record naming the first master.
    await restoredAfterDelete(to, entry)
    expect(await exists(to, key)).toBe(1) // 'v1' is back
    // The recorded master still serves slots, but the one answering started after the record: a restore.
    await expect.poll(() => a.product.stats().l2Restores, { timeout: 15_000 }).toBe(1)
    await expect.poll(() => a.product.get({ id }), { timeout: 5_000 }).toBe('v2')
    expect(await generationNow()).toBe(1)
  }, 60_000)
})
