// What a master's failover costs the reads of keys on the other masters. A Redis Cluster of 3 masters and 3
// replicas (started here); 300 keys stored, L1 off; reads of random keys, 20 at a time, for 2 s, then one master is
// killed (SIGKILL) and the reads go on for 10 s while its replica takes over. Per second: reads of keys on the
// masters that stayed up, and how many of them went to the loader. For node-redis's cluster client and an ioredis
// Cluster, one after the other.
//
//   npm run build && npx tsx bench/cluster-failover.ts
//
// Every loop is bounded in time; the cluster is stopped at the end.
import { Cluster } from 'ioredis'
import { createCache, type Logger } from '../dist/index.js'
import { ioredisStore } from '../dist/ioredis.js'
import { redisClusterStore } from '../dist/redis.js'
import { clusterSlot } from '../dist/tiers/cluster-slot.js'
import type { L2Store } from '../dist/tiers/l2-store.js'
import { startRedisCluster, type RedisCluster } from '../test/helpers/redis-cluster.js'
import { commandLine, machine, machineLine } from './harness.js'

const KEYS = 300
const PARALLEL = 20
const BEFORE_MS = 2_000
const AFTER_MS = 10_000

interface Second {
  /** Reads of keys whose master stayed up. */
  live: number
  /** Of them, those the loader answered. */
  loaded: number
}

interface Run {
  readonly store: string
  readonly onVictim: number
  readonly killedAtMs: number
  readonly seconds: Second[]
  readonly circuit: string[]
}

async function measure(cluster: RedisCluster, name: string, store: L2Store): Promise<Run> {
  // Times are from the first timed read (set below), so the circuit's changes and the seconds share one origin.
  let origin = performance.now()
  const at = () => Math.round(performance.now() - origin)
  const circuit: string[] = []
  const quiet = () => undefined
  const logger: Logger = {
    debug: (fields) => {
      const state = (fields as { circuit?: string }).circuit
      if (state !== undefined) circuit.push(`${at()} ms ${state}`)
    },
    info: quiet,
    warn: quiet,
    error: quiet,
  }
  const cache = createCache({ service: `failover-${name}`, l1: false, l2: store, logger })
  await cache.connect()
  try {
    const loads = new Map<number, number>()
    const ns = cache.namespace('item', {
      key: 'item:{id}',
      ttl: '10m',
      load: ({ id }: { id: number }) => {
        loads.set(id, (loads.get(id) ?? 0) + 1)
        return { id }
      },
    })
    for (let id = 0; id < KEYS; id++) await ns.get({ id })
    const masterOf = (id: number) => cluster.masterOf(clusterSlot(ns.key({ id })))
    const victim = await masterOf(0)
    const onVictim = new Set<number>()
    for (let id = 0; id < KEYS; id++) if ((await masterOf(id)) === victim) onVictim.add(id)
    const seconds: Second[] = []
    circuit.length = 0
    origin = performance.now()
    let killedAtMs = -1
    while (at() < BEFORE_MS + AFTER_MS) {
      if (killedAtMs < 0 && at() >= BEFORE_MS) {
        killedAtMs = at()
        await victim.kill()
      }
      const reads: Promise<unknown>[] = []
      for (let i = 0; i < PARALLEL; i++) {
        const id = Math.floor(Math.random() * KEYS)
        if (onVictim.has(id)) {
          reads.push(ns.get({ id }).catch(quiet))
          continue
        }
        const second = (seconds[Math.floor(at() / 1_000)] ??= { live: 0, loaded: 0 })
        second.live++
        const before = loads.get(id) ?? 0
        // Answered by a load of its key since it began (its own, or one it joined).
        reads.push(ns.get({ id }).then(() => void ((loads.get(id) ?? 0) > before && second.loaded++), quiet))
      }
      await Promise.all(reads)
      await new Promise((resolve) => setTimeout(resolve, 2))
    }
    return { store: name, onVictim: onVictim.size, killedAtMs, seconds, circuit }
  } finally {
    await cache.close()
  }
}

async function main(): Promise<void> {
  console.log(`# cluster-failover\n\n${machineLine(machine())}\nCommand: ${commandLine()}\n`)
  for (const name of ['node-redis', 'ioredis']) {
    const cluster = await startRedisCluster({ masters: 3, replicas: 1 })
    const io =
      name === 'ioredis'
        ? new Cluster(
            cluster.nodes.slice(0, 3).map((node) => ({ host: '127.0.0.1', port: node.port })),
            {
              lazyConnect: true,
              enableOfflineQueue: false,
              shardedSubscribers: true,
              retryDelayOnTryAgain: 2,
              redisOptions: { maxRetriesPerRequest: 0 },
            },
          )
        : undefined
    io?.on('error', () => undefined)
    try {
      const store =
        io === undefined
          ? redisClusterStore({ rootNodes: cluster.urls.slice(0, 3).map((url) => ({ url })) })
          : ioredisStore({ client: io })
      const run = await measure(cluster, name, store)
      console.log(
        `## ${run.store}: ${run.onVictim} of ${KEYS} keys on the killed master, killed at ${run.killedAtMs} ms\n`,
      )
      console.log(
        '| second | reads of keys on live masters | loaded | share loaded |\n| ---: | ---: | ---: | ---: |',
      )
      run.seconds.forEach((s, i) => {
        const share = s.live === 0 ? 0 : (100 * s.loaded) / s.live
        console.log(`| ${i} | ${s.live} | ${s.loaded} | ${share.toFixed(0)}% |`)
      })
      console.log(
        `\nCircuit (ms from the first timed read): ${run.circuit.join(', ') || 'never left closed'}\n`,
      )
    } finally {
      io?.disconnect()
      await cluster.stop()
    }
  }
}

await main()
