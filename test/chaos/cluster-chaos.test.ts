// Chaos on a real Redis Cluster (3 masters + 3 replicas, one for the whole file): one cold key read by 4 processes,
// then, for both cluster stores (node-redis's cluster client, an ioredis Cluster), slots resharded while reads and
// writes run, and a master killed with the bus subscribed. Tests run in file order: the reshards first, the failovers (which move masters to
// other ports for good) last.
import { createCache, type Cache } from 'stratacache'
import { redisClusterStore } from 'stratacache/redis'
import { ioredisStore } from 'stratacache/ioredis'
import { Cluster } from 'ioredis'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { CLUSTER_FENCE_SHARDS, KeyLayout } from '../../src/core/key-layout.js'
import { clusterSlot } from '../../src/tiers/cluster-slot.js'
import type { L2Store } from '../../src/tiers/l2-store.js'
import { startRedisCluster, type RedisCluster } from '../helpers/redis-cluster.js'
import type { RedisServer } from '../helpers/redis-server.js'
import { execFile } from 'node:child_process'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { startChild, type Child } from './fixtures/start-child.js'
import type { StampedeReport } from './fixtures/stampede-child.js'
import { sleep, within } from './support.js'

let cluster: RedisCluster
const caches: Cache[] = []
const ioClusters: Cluster[] = []
beforeAll(async () => {
  cluster = await startRedisCluster({ masters: 3, replicas: 1 })
}, 40_000)
afterAll(async () => {
  await cluster?.stop()
})
afterEach(async () => {
  await Promise.all(caches.splice(0).map((cache) => cache.close()))
  for (const client of ioClusters.splice(0)) client.disconnect()
  await cluster.waitReady()
  await cluster.onMasters('FLUSHALL')
})

/** Prints what a drill measured when CHAOS_REPORT is set (the numbers docs/operations.md quotes). */
const report = (what: string, numbers: object) => {
  if (process.env['CHAOS_REPORT'] !== undefined) console.log(`${what}: ${JSON.stringify(numbers)}`)
}

interface StoreKind {
  readonly name: string
  make(): L2Store
}
const kinds: StoreKind[] = [
  {
    name: 'node-redis cluster',
    make: () => redisClusterStore({ rootNodes: cluster.urls.slice(0, 3).map((url) => ({ url })) }),
  },
  {
    name: 'ioredis cluster',
    make: () => {
      const client = new Cluster(
        cluster.nodes.slice(0, 3).map((node) => ({ host: '127.0.0.1', port: node.port })),
        {
          lazyConnect: true,
          enableOfflineQueue: false,
          shardedSubscribers: true,
          redisOptions: { maxRetriesPerRequest: 0 },
        },
      )
      ioClusters.push(client)
      return ioredisStore({ client })
    },
  },
]

/** The live masters now. */
async function masters(): Promise<RedisServer[]> {
  const roles = await Promise.all(cluster.nodes.map((node) => cluster.role(node)))
  return cluster.nodes.filter((_, i) => roles[i] === 'master')
}

/** The slots of a namespace's 16 fence shards (service `service`, namespace `item`, schema version 1). */
function shardSlots(service: string): number[] {
  const layout = new KeyLayout(`${service}:item:v1:`, CLUSTER_FENCE_SHARDS)
  return [...new Set(layout.shards.map((shard) => clusterSlot(shard.tag)))]
}

describe('a cold key read by 4 processes on the cluster', () => {
  const childScript = fileURLToPath(new URL('./fixtures/stampede-child.ts', import.meta.url))
  const children: Child[] = []
  afterEach(async () => {
    for (const child of children) child.kill()
    await Promise.all(children.splice(0).map((child) => child.exited))
  })

  it('calls the loader once in total for 4 processes x 250 concurrent gets', async () => {
    const counter = 'test:loader-calls:cluster'
    const args = ['--cluster', cluster.urls.slice(0, 3).join(','), '--id', 'cold', '--counter', counter]
    args.push('--loader-ms', '300', '--gets', '250')
    children.push(...Array.from({ length: 4 }, () => startChild(childScript, args, 30_000)))
    await within(
      Promise.all(children.map((c) => c.waitForLine((l) => l === 'READY'))),
      20_000,
      'children ready',
    )
    for (const child of children) child.send('go')
    const exits = await within(Promise.all(children.map((c) => c.exited)), 20_000, 'children exit')
    const reports = exits.map((exit) => {
      expect(exit.code, exit.stderr).toBe(0)
      return JSON.parse(exit.stdout.split('\n').find((l) => l.startsWith('{'))!) as StampedeReport
    })
    const owner = await cluster.masterOf(clusterSlot(counter))
    expect(await owner.command('GET', counter)).toBe('$1\r\n1\r\n')
    for (const report of reports) expect(report).toMatchObject({ gets: 250, rejected: 0, errors: [] })
    // One value everywhere: the one the single loader call returned, in the process that holds the lock.
    expect(new Set(reports.flatMap((r) => r.values)).size).toBe(1)
    expect(reports.filter((r) => r.stats.loads === 1)).toHaveLength(1)
    expect(reports.filter((r) => r.stats.loads === 0 && r.stats.lockWaits >= 1)).toHaveLength(3)
  }, 60_000)
})

describe.each(kinds)('$name', (kind) => {
  /** Two caches of one service sharing a source (a Map), the namespace `bounded` with `maxStaleness`. */
  async function twoCaches(service: string, maxStalenessMs: number) {
    const source = new Map<number, number>()
    const make = async () => {
      const cache = createCache({ service, l2: kind.make(), timeouts: { l2: '1s' } })
      caches.push(cache)
      const items = cache.namespace('item', {
        key: 'item:{id}',
        params: { id: 'number' },
        ttl: '1h',
        consistency: 'bounded',
        maxStaleness: maxStalenessMs,
        load: ({ id }) => ({ id, version: source.get(id) ?? 0 }),
        write: ({ id }, value) => {
          source.set(id, value.version)
        },
      })
      await cache.connect()
      await expect.poll(() => cache.stats().bus?.subscribed, { timeout: 10_000 }).toBe(true)
      return { cache, items }
    }
    return { source, a: await make(), b: await make() }
  }

  it('reshards a namespace and its bus channel while reads and writes run: no caller error, no read staler than maxStaleness', async () => {
    const service = `reshard-${kind.name.split(' ')[0]}`
    const maxStalenessMs = 1_000
    const { a, b } = await twoCaches(service, maxStalenessMs)
    const ids = Array.from({ length: 40 }, (_, id) => id)
    await a.items.getMany(ids.map((id) => ({ id })))
    await b.items.getMany(ids.map((id) => ({ id })))

    /** When each version of each key was acknowledged (write resolved), in order. */
    const acks = new Map<number, { version: number; at: number }[]>(ids.map((id) => [id, []]))
    const reads: { id: number; startedAt: number; version: number }[] = []
    const errors: unknown[] = []
    let slowest = 0
    let running = true
    // The longest this process (both caches, the writer and the readers) was kept from running, sampled every 10 ms.
    const stalls = monitorEventLoopDelay({ resolution: 10 })
    stalls.enable()
    const writer = (async () => {
      for (let n = 0; running; n++) {
        const id = n % ids.length
        const version = (acks.get(id)!.at(-1)?.version ?? 0) + 1
        const started = performance.now()
        try {
          await a.items.write({ id }, { id, version })
          acks.get(id)!.push({ version, at: performance.now() })
        } catch (error) {
          errors.push(error)
        }
        slowest = Math.max(slowest, performance.now() - started)
        await sleep(10)
      }
    })()
    const reader = async (items: typeof a.items, offset: number) => {
      for (let n = offset; running; n++) {
        const id = (n * 7) % ids.length
        const startedAt = performance.now()
        try {
          const got = await items.get({ id })
          reads.push({ id, startedAt, version: got.version })
        } catch (error) {
          errors.push(error)
        }
        slowest = Math.max(slowest, performance.now() - startedAt)
        await sleep(2)
      }
    }
    const readers = [reader(a.items, 0), reader(b.items, 3), reader(b.items, 5)]

    // Move every slot of the namespace (16 fence shards) and the bus channel's to the next master, one at a time.
    await sleep(200)
    const slots = [...shardSlots(service), clusterSlot(`${service}#bus`)]
    const startedAt = performance.now()
    let keysMoved = 0
    for (const slot of slots) {
      const now = await masters()
      const owner = await cluster.masterOf(slot)
      const to = now[(now.indexOf(owner) + 1) % now.length]!
      keysMoved += await cluster.migrateSlot(slot, to, { batch: 3, pauseMs: 15 })
    }
    const reshardMs = performance.now() - startedAt
    await cluster.waitReady()
    await sleep(300)
    running = false
    await Promise.all([writer, ...readers])
    stalls.disable()
    const maxStallMs = stalls.max / 1e6

    expect(errors).toEqual([])
    expect(keysMoved).toBeGreaterThan(40)
    // A read is stale beyond the bound when a newer version had been acknowledged maxStaleness before it started,
    // give or take this process's longest stall: an L1 copy expires at its fill time + maxStaleness, and a stall
    // after a write's ack was recorded but before a read's L1 fill of the older value delays the fill (so its
    // expiry) by as much. A copy served past its bound by more than that stall still fails the test.
    const stale = reads.filter((read) => {
      const known = acks
        .get(read.id)!
        .filter((ack) => ack.at < read.startedAt - maxStalenessMs - maxStallMs)
        .at(-1)
      return known !== undefined && known.version > read.version
    })
    expect(stale, `longest stall of this process: ${Math.round(maxStallMs)} ms`).toEqual([])
    const l2 = [a.cache.stats().l2!, b.cache.stats().l2!]
    report(`reshard (${kind.name})`, {
      slots: slots.length,
      keysMoved,
      reshardMs: Math.round(reshardMs),
      reads: reads.length,
      writes: [...acks.values()].reduce((sum, list) => sum + list.length, 0),
      slowestMs: Math.round(slowest),
      maxStallMs: Math.round(maxStallMs),
      l2Errors: a.items.stats().l2Errors + b.items.stats().l2Errors,
      errorReplies: l2.map((s) => s.errorRepliesByKind),
    })
    // MOVED, ASK and TRYAGAIN are the clients' business: none reaches the cache as an error reply.
    expect(l2.map((s) => s.errorReplies)).toEqual([0, 0])

    // The bus channel moved too: an invalidation published now still reaches the other cache's L1.
    const received = b.cache.stats().bus!.received
    await a.items.write({ id: 1 }, { id: 1, version: 1_000 })
    await expect.poll(() => b.cache.stats().bus!.received, { timeout: 15_000 }).toBeGreaterThan(received)
    expect((await b.items.get({ id: 1 })).version).toBe(1_000)
  }, 90_000)

  it('resubscribes the bus after the master of its channel dies: an invalidation published afterwards reaches the other L1, and L1 was made suspect meanwhile', async () => {
    const service = `failover-${kind.name.split(' ')[0]}`
    const source = new Map<number, number>()
    const make = async () => {
      const cache = createCache({ service, l2: kind.make(), timeouts: { l2: '1s' } })
      caches.push(cache)
      // An L1 that lives an hour: only the bus (or the suspect-L1 rule) can make this process drop its copy.
      const items = cache.namespace('item', {
        key: 'item:{id}',
        params: { id: 'number' },
        ttl: '1h',
        l1: { ttl: '1h' },
        load: ({ id }) => ({ id, version: source.get(id) ?? 0 }),
        write: ({ id }, value) => {
          source.set(id, value.version)
        },
      })
      await cache.connect()
      await expect.poll(() => cache.stats().bus?.subscribed, { timeout: 10_000 }).toBe(true)
      return { cache, items }
    }
    const a = await make()
    const b = await make()
    expect((await b.items.get({ id: 1 })).version).toBe(0)
    const slot = clusterSlot(`${service}#bus`)
    const victim = await cluster.masterOf(slot)
    const killedAt = performance.now()
    await victim.kill()
    await expect.poll(async () => (await cluster.masterOf(slot)) !== victim, { timeout: 20_000 }).toBe(true)
    const promotedMs = performance.now() - killedAt
    await cluster.waitReady()
    // Writes after the failover, until one reaches the other process by the bus.
    let version = 0
    const received = b.cache.stats().bus!.received
    await expect
      .poll(
        async () => {
          await a.items.write({ id: 1 }, { id: 1, version: ++version }).catch(() => undefined)
          await sleep(200)
          return b.cache.stats().bus!.received
        },
        { timeout: 20_000, interval: 0 },
      )
      .toBeGreaterThan(received)
    const busBackMs = performance.now() - killedAt
    await expect.poll(async () => (await b.items.get({ id: 1 })).version, { timeout: 5_000 }).toBe(version)
    // The subscription was lost, then came back: counted, and the L1 was treated as possibly stale.
    expect(b.cache.stats().bus!.reconnects).toBeGreaterThanOrEqual(1)
    expect(b.cache.stats().bus!.subscribed).toBe(true)
    report(`failover (${kind.name})`, {
      promotedMs: Math.round(promotedMs),
      busBackMs: Math.round(busBackMs),
      writesBeforeOneArrived: version,
    })
    await victim.restart()
    await cluster.waitReady(30_000)
  }, 90_000)

  it("keeps reading the other masters' keys from Redis while one master fails over: reads have a circuit per slot", async () => {
    const service = `slots-${kind.name.split(' ')[0]}`
    const loads = new Map<number, number>()
    const cache = createCache({ service, l1: false, l2: kind.make(), logger: false })
    caches.push(cache)
    const items = cache.namespace('item', {
      key: 'item:{id}',
      params: { id: 'number' },
      ttl: '1h',
      load: ({ id }) => {
        loads.set(id, (loads.get(id) ?? 0) + 1)
        return { id }
      },
    })
    await cache.connect()
    const ids = Array.from({ length: 120 }, (_, id) => id)
    for (const id of ids) await items.get({ id })
    const masterOf = (id: number) => cluster.masterOf(clusterSlot(items.key({ id })))
    const victim = await masterOf(0)
    const owners = await Promise.all(ids.map(masterOf))
    const dead = ids.filter((_, i) => owners[i] === victim)
    const live = ids.filter((_, i) => owners[i] !== victim)
    loads.clear()

    await victim.kill()
    const killedAt = performance.now()
    // The first 600 ms: the cluster marks a master failed only after cluster-node-timeout (1 s), so until then the
    // other masters answer for their slots. Reads of the dead master's keys go on beside, failing.
    // Sixteen readers of them, so that their failures come in bursts, as under a server's concurrent requests.
    let stop = false
    const deadReads = Array.from({ length: 16 }, async (_, reader) => {
      for (let i = reader; !stop; i += 16) {
        await items.get({ id: dead[i % dead.length]! }).catch(() => undefined)
        // A refused read and a loader that answers at once settle in microtasks: let I/O run, as a server does.
        await new Promise((resolve) => setImmediate(resolve))
      }
    })
    let liveReads = 0
    let liveLoaded = 0
    while (performance.now() - killedAt < 600) {
      const id = live[liveReads % live.length]!
      const before = loads.get(id) ?? 0
      await items.get({ id })
      liveReads++
      if ((loads.get(id) ?? 0) > before) liveLoaded++
    }
    stop = true
    await Promise.all(deadReads)
    report(`slot circuits (${kind.name})`, { liveReads, liveLoaded, slotsOpen: cache.stats().l2!.slotsOpen })
    expect(liveReads).toBeGreaterThan(20)
    // Before read circuits per slot, the dead master's failures opened the one circuit within 9-112 ms, and every
    // read after that went to the loader.
    expect(liveLoaded).toBeLessThanOrEqual(liveReads * 0.05)
    // Because the dead master's slots opened their own read circuits.
    expect(cache.stats().l2!.slotsOpen).toBeGreaterThan(0)

    await expect.poll(async () => (await masterOf(0)) !== victim, { timeout: 20_000 }).toBe(true)
    await victim.restart()
    await cluster.waitReady(30_000)
  }, 90_000)
})

describe('closing a cluster store while it connects', () => {
  it('lets the process exit: the connections node-redis completes after close() are dropped', async () => {
    // node-redis finishes a slot discovery under way after destroy() and connects to every master; without the
    // store destroying them once it ends, the process never exits. Closed at once, and a few ms into the discovery.
    const roots = JSON.stringify(cluster.urls.slice(0, 3).map((url) => ({ url })))
    const script = `
      const { redisClusterStore } = await import('./src/redis.ts')
      for (const delay of [0, 5]) {
        const store = redisClusterStore({ rootNodes: ${roots} })
        store.connect().catch(() => {})
        await new Promise((resolve) => setTimeout(resolve, delay))
        await store.close()
      }
      console.log('closed')
    `
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ['--import', 'tsx', '--input-type=module', '-e', script],
      { cwd: fileURLToPath(new URL('../..', import.meta.url)), encoding: 'utf8', timeout: 15_000 },
    )
    expect(stdout.trim()).toBe('closed')
  }, 20_000)
})

/**
 * Runs fixtures/cluster-close-child.ts on the cluster with `args`: once it is ready, `meanwhile`, then it closes its
 * cache. Resolves to how it exited, and how long after printing CLOSED (what keeps it alive after close()).
 */
async function closeInChild(args: readonly string[], meanwhile: () => Promise<void>, exitWithinMs: number) {
  const child = startChild(
    fileURLToPath(new URL('./fixtures/cluster-close-child.ts', import.meta.url)),
    ['--cluster', cluster.urls.slice(0, 3).join(','), ...args],
    30_000,
  )
  try {
    await within(
      child.waitForLine((line) => line === 'READY'),
      20_000,
      'child ready',
    )
    await meanwhile()
    child.send('go')
    await within(
      child.waitForLine((line) => line === 'CLOSED'),
      10_000,
      'child closed',
    )
    const closedAt = performance.now()
    const exit = await within(child.exited, exitWithinMs, 'child exit')
    return { exit, afterCloseMs: performance.now() - closedAt }
  } finally {
    child.kill()
  }
}

describe('closing a cluster store while a node is down', () => {
  it('leaves no reconnection timer behind: the process ends soon after close(), however long maxReconnectDelay is', async () => {
    const victim = (await masters())[0]!
    const { exit, afterCloseMs } = await closeInChild(
      [],
      async () => {
        await victim.kill()
        // Long enough for the node's connection to be several attempts into its backoff.
        await sleep(3_000)
      },
      15_000,
    )
    expect(exit.code, exit.stderr).toBe(0)
    expect(afterCloseMs).toBeLessThan(1_500)
    await victim.restart()
    await cluster.waitReady(30_000)
  }, 60_000)
})

describe('closing a cluster store while the masters are frozen', () => {
  it('lets the process exit: the connections whose replies close() waited for are dropped when it gives up', async () => {
    // Every master frozen: close() waits for replies that never come, until its timeout (connectTimeout, 1 s), and
    // no replica can take over (a failover needs the masters' votes).
    const frozen = await masters()
    try {
      // Before the fix node-redis had forgotten its nodes by then, and their sockets kept the process running.
      const { exit, afterCloseMs } = await closeInChild(
        ['--pending'],
        async () => {
          for (const node of frozen) node.pause()
        },
        5_000,
      )
      expect(exit.code, exit.stderr).toBe(0)
      expect(afterCloseMs).toBeLessThan(2_000)
    } finally {
      for (const node of frozen) node.resume()
    }
  }, 60_000)
})
