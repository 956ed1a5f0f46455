// Starts a real Redis Cluster for tests: redis-server processes with --cluster-enabled on free loopback ports,
// joined with `redis-cli --cluster create`, and stopped (their temp dirs removed) afterwards.
import { execFile } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { createClient } from 'redis'
import { startRedis, type RedisServer } from './redis-server.js'

const run = promisify(execFile)

export interface RedisClusterOptions {
  /** Masters (at least 3, as `redis-cli --cluster create` requires). @default 3 */
  readonly masters?: number
  /** Replicas per master. @default 0 */
  readonly replicas?: number
  /** How long the cluster may take to agree (`cluster_state:ok` on every node). @default 15 s */
  readonly readyTimeoutMs?: number
}

export interface RedisCluster {
  /** Every node, masters first as created (roles change after a failover: ask `role()`). */
  readonly nodes: readonly RedisServer[]
  /** `redis://127.0.0.1:port` of every node, for `rootNodes`. */
  readonly urls: readonly string[]
  /** The node serving `slot` now (asks a live node's CLUSTER SHARDS). */
  masterOf(slot: number): Promise<RedisServer>
  /** The role a node reports (`master` or `slave`), or undefined when it does not answer. */
  role(node: RedisServer): Promise<string | undefined>
  /** Waits until every live node reports `cluster_state:ok` (after a failover, a reshard). */
  waitReady(timeoutMs?: number): Promise<void>
  /** Runs a command on every live master (FLUSHALL between tests). */
  onMasters(...args: string[]): Promise<string[]>
  /**
   * Moves `slot` to `to` as `redis-cli --cluster reshard` does, slowly enough for clients to meet both redirections:
   * the slot is marked IMPORTING on `to` and MIGRATING on its master, its keys are moved `batch` at a time with
   * MIGRATE, `pauseMs` apart (meanwhile a command for a key already moved gets `ASK`, a multi-key one with keys on
   * both sides `TRYAGAIN`), then every master is told the new owner (a client with the old map then gets `MOVED`).
   * `midway` runs once, awaited, after the first batch moved (the slot's keys then on both sides). Resolves to the
   * number of keys moved.
   */
  migrateSlot(
    slot: number,
    to: RedisServer,
    options?: { batch?: number; pauseMs?: number; midway?: () => Promise<void> },
  ): Promise<number>
  /** Stops every node and removes their files. */
  stop(): Promise<void>
}

/**
 * Starts `masters` + `masters * replicas` nodes and joins them. Each node keeps its cluster config file in a temp
 * dir of its own (`--cluster-config-file`), persists nothing else, and times out unreachable peers after 1 s so a
 * failover takes about a second.
 */
export async function startRedisCluster(options: RedisClusterOptions = {}): Promise<RedisCluster> {
  const masters = options.masters ?? 3
  const replicas = options.replicas ?? 0
  const readyTimeoutMs = options.readyTimeoutMs ?? 15_000
  if (masters < 3) throw new Error('a Redis Cluster needs at least 3 masters')
  const dir = mkdtempSync(join(tmpdir(), 'strata-cluster-'))
  const nodes: RedisServer[] = []
  const stop = async () => {
    await Promise.all(nodes.map((node) => node.stop()))
    rmSync(dir, { recursive: true, force: true })
  }
  try {
    const count = masters * (1 + replicas)
    for (let i = 0; i < count; i++) {
      nodes.push(
        await startRedis([
          '--cluster-enabled',
          'yes',
          '--cluster-config-file',
          join(dir, `nodes-${i}.conf`),
          '--cluster-node-timeout',
          '1000',
          // A replica takes over however long it was cut off from its master (tests kill masters at will).
          '--cluster-replica-validity-factor',
          '0',
        ]),
      )
    }
    const addresses = nodes.map((node) => `127.0.0.1:${node.port}`)
    await run(
      'redis-cli',
      ['--cluster', 'create', ...addresses, '--cluster-replicas', String(replicas), '--cluster-yes'],
      { timeout: readyTimeoutMs },
    ).catch((error: unknown) => {
      throw new Error(
        `redis-cli --cluster create failed: ${error instanceof Error ? error.message : String(error)}`,
      )
    })
  } catch (error) {
    await stop()
    throw error
  }

  const live = async () => {
    const answers = await Promise.all(
      nodes.map((node) =>
        node.command('PING').then(
          () => node,
          () => undefined,
        ),
      ),
    )
    return answers.filter((node) => node !== undefined)
  }

  const cluster: RedisCluster = {
    nodes,
    urls: nodes.map((node) => node.url),
    async masterOf(slot) {
      for (const node of await live()) {
        const reply = await node.command('CLUSTER', 'SLOTS').catch(() => '')
        const ports = slotOwners(reply)
        const port = ports.find((range) => range.from <= slot && slot <= range.to)?.port
        const owner = nodes.find((n) => n.port === port)
        if (owner !== undefined) return owner
      }
      throw new Error(`no live node knows who serves slot ${slot}`)
    },
    async role(node) {
      const reply = await node.command('ROLE').catch(() => undefined)
      return reply === undefined ? undefined : /\$\d+\r\n(master|slave)\r\n/.exec(reply)?.[1]
    },
    async waitReady(timeoutMs = readyTimeoutMs) {
      const deadline = Date.now() + timeoutMs
      for (;;) {
        const nodesNow = await live()
        const states = await Promise.all(
          nodesNow.map((node) => node.command('CLUSTER', 'INFO').catch(() => '')),
        )
        if (nodesNow.length > 0 && states.every((state) => state.includes('cluster_state:ok'))) return
        if (Date.now() > deadline) {
          throw new Error(`the cluster did not reach cluster_state:ok on every node within ${timeoutMs} ms`)
        }
        await new Promise((resolve) => setTimeout(resolve, 50))
      }
    },
    async onMasters(...args) {
      const liveNodes = await live()
      const roles = await Promise.all(liveNodes.map((node) => cluster.role(node)))
      return Promise.all(
        liveNodes.filter((_, i) => roles[i] === 'master').map((node) => node.command(...args)),
      )
    },
    async migrateSlot(slot, to, { batch = 5, pauseMs = 20, midway } = {}) {
      const from = await cluster.masterOf(slot)
      if (from === to) return 0
      const clients = new Map<RedisServer, ReturnType<typeof createClient>>()
      const client = async (node: RedisServer) => {
        let made = clients.get(node)
        if (made === undefined) {
          made = createClient({ url: node.url, socket: { reconnectStrategy: false } })
          made.on('error', () => {})
          clients.set(node, made)
          await made.connect()
        }
        return made
      }
      try {
        const [source, target] = await Promise.all([client(from), client(to)])
        const [fromId, toId] = await Promise.all([source.clusterMyId(), target.clusterMyId()])
        await target.sendCommand(['CLUSTER', 'SETSLOT', String(slot), 'IMPORTING', fromId])
        await source.sendCommand(['CLUSTER', 'SETSLOT', String(slot), 'MIGRATING', toId])
        let moved = 0
        for (;;) {
          const keys = await source.sendCommand<string[]>([
            'CLUSTER',
            'GETKEYSINSLOT',
            String(slot),
            String(batch),
          ])
          if (keys.length === 0) break
          await source.sendCommand([
            'MIGRATE',
            '127.0.0.1',
            String(to.port),
            '',
            '0',
            '5000',
            'REPLACE',
            'KEYS',
            ...keys,
          ])
          if (moved === 0) await midway?.()
          moved += keys.length
          await new Promise((resolve) => setTimeout(resolve, pauseMs))
        }
        // The new owner first (it bumps its epoch), then the old one, then every other master, as redis-cli does.
        await target.sendCommand(['CLUSTER', 'SETSLOT', String(slot), 'NODE', toId])
        await source.sendCommand(['CLUSTER', 'SETSLOT', String(slot), 'NODE', toId])
        const live = await Promise.all(
          nodes.map(async (node) => ((await cluster.role(node)) === 'master' ? node : undefined)),
        )
        for (const node of live) {
          if (node === undefined || node === from || node === to) continue
          await (await client(node)).sendCommand(['CLUSTER', 'SETSLOT', String(slot), 'NODE', toId])
        }
        return moved
      } finally {
        await Promise.all([...clients.values()].map((c) => c.close().catch(() => undefined)))
      }
    },
    stop,
  }
  try {
    await cluster.waitReady()
  } catch (error) {
    await stop()
    throw error
  }
  return cluster
}

/** CLUSTER SLOTS' raw RESP reply → `{ from, to, port }` of each range's master (its first node). */
function slotOwners(reply: string): { from: number; to: number; port: number }[] {
  // Each range starts `*N\r\n:from\r\n:to\r\n*M\r\n$9\r\n127.0.0.1\r\n:port\r\n…`: its master comes first.
  const ranges: { from: number; to: number; port: number }[] = []
  const pattern = /:(\d+)\r\n:(\d+)\r\n\*\d+\r\n\$\d+\r\n[^\r]*\r\n:(\d+)\r\n/g
  for (let match = pattern.exec(reply); match !== null; match = pattern.exec(reply)) {
    ranges.push({ from: Number(match[1]), to: Number(match[2]), port: Number(match[3]) })
  }
  return ranges
}
