// Scenario cluster: L2 hits on a Redis Cluster (3 masters, started by the scenario), L1 off: stratacache on
// node-redis's cluster client and on an ioredis Cluster, side by side with raw GET and per-slot MGET on each client.
//
// `BENCH_CLUSTER_SIZE=tiny npm run bench -- cluster --rounds 1` runs it with tiny counts (a smoke run that only
// proves it works; its numbers mean nothing).
import { Cluster } from 'ioredis'
import { createCluster, RESP_TYPES } from 'redis'
import { createCache, type Cache } from '../dist/index.js'
import { ioredisStore } from '../dist/ioredis.js'
import { redisClusterStore } from '../dist/redis.js'
import { clusterSlot } from '../dist/tiers/cluster-slot.js'
import type { L2Store } from '../dist/tiers/l2-store.js'
import { startRedisCluster, type RedisCluster } from '../test/helpers/redis-cluster.js'
import { product, productNamespace, productParams, TTL_MS, type ProductParams } from './fixtures.js'
import {
  formatCount,
  formatOps,
  formatUs,
  markdownTable,
  quantile,
  runRounds,
  type Contestant,
  type Metrics,
  type Scenario,
  type ScenarioContext,
  type ScenarioReport,
} from './harness.js'

const TINY = process.env['BENCH_CLUSTER_SIZE'] === 'tiny'
/** Concurrent callers in the throughput phase, each on keys of its own. */
const CONCURRENCY = TINY ? 4 : 100
const KEYS_PER_CALLER = TINY ? 10 : 100
const KEYS = CONCURRENCY * KEYS_PER_CALLER
/** Sequential awaited gets per round in the latency phase. */
const LATENCY_CALLS = TINY ? 20 : 5_000
const GETS_PER_CALLER = TINY ? 10 : 100
/** Keys per getMany (spread over the namespace's 16 fence-shard slots, so over every master). */
const BATCH = TINY ? 10 : 100
/** Sequential awaited getMany calls per round. */
const BATCH_CALLS = TINY ? 5 : 1_000
/** Each phase stops here even if it has not done its count. */
const PHASE_LIMIT_MS = 15_000
const REFERENCE = 'node-redis cluster'

export const cluster: Scenario = {
  name: 'cluster',
  title: 'L2 hits on a Redis Cluster (3 masters), L1 off: node-redis and ioredis cluster clients',
  needsRedis: false,
  run,
}

async function run(context: ScenarioContext): Promise<ScenarioReport> {
  const closers: (() => Promise<unknown>)[] = []
  try {
    const nodes = await startRedisCluster({ masters: 3 })
    closers.push(() => nodes.stop())
    const contestants = await setup(nodes, closers, context.log)
    const result = await runRounds({
      scenario: 'cluster',
      contestants,
      reference: REFERENCE,
      rounds: context.rounds ?? 7,
      warmupRounds: TINY ? 0 : 1,
      log: context.log,
    })
    const median = (name: string, metric: string) =>
      result.contestants.find((c) => c.name === name)!.median[metric]!
    const manyRatio = median('stratacache, node-redis', 'manyP50Ms') / median(REFERENCE, 'manyP50Ms')
    return {
      sections: [
        {
          title:
            `Cluster GET hits: ${LATENCY_CALLS.toLocaleString('en')} sequential gets (1 caller), ` +
            `${CONCURRENCY} concurrent callers x ${GETS_PER_CALLER} gets, then ` +
            `${BATCH_CALLS.toLocaleString('en')} sequential getMany of ${BATCH} keys, per contestant per round`,
          table: markdownTable(result, [
            { metric: 'p50Ms', label: 'get p50, 1 caller', format: formatUs, ratio: true },
            { metric: 'p99Ms', label: 'get p99, 1 caller', format: formatUs },
            {
              metric: 'opsPerSec',
              label: `gets/s, ${CONCURRENCY} callers`,
              format: formatOps,
              range: true,
              ratio: true,
            },
            { metric: 'manyP50Ms', label: `getMany(${BATCH}) p50`, format: formatUs, ratio: true },
            { metric: 'misses', label: 'misses per round', format: formatCount },
          ]),
          notes: [
            'A local cluster of 3 masters (no replicas) that the scenario starts; every contestant reads the ' +
              'very keys stratacache wrote (its envelope + ~250 bytes of JSON), each over its own client.',
            'Raw rows return the bytes without decoding; stratacache decodes the envelope and parses the JSON. ' +
              'A raw getMany groups the keys by slot and sends one MGET per slot concurrently, as stratacache ' +
              "does (a single MGET across slots is refused: CROSSSLOT); the namespace's keys live on its 16 " +
              'fence-shard slots.',
            'stratacache runs with `l1: false`, its default L2 timeout (100 ms) and circuit breaker; "misses" ' +
              'counts its fallbacks to the loader (an L2 error or timeout), which should stay 0.',
            TINY ? 'TINY COUNTS (BENCH_CLUSTER_SIZE=tiny): a smoke run, not a measurement.' : '',
          ].filter((note) => note !== ''),
        },
      ],
      targets: [
        {
          text: `stratacache getMany(${BATCH}) p50 on the node-redis cluster within 1.5x of raw per-slot MGET`,
          met: manyRatio <= 1.5,
          measured: `${manyRatio.toFixed(2)}x`,
        },
      ],
      results: [result],
    }
  } finally {
    for (const close of closers.reverse()) await close().catch(() => undefined)
  }
}

/** Latency at 1 caller, throughput at CONCURRENCY callers, and getMany latency, of one contestant. */
async function measure(
  get: (index: number) => Promise<unknown>,
  getMany: (indexes: readonly number[]) => Promise<readonly unknown[]>,
  cursor: { at: number },
): Promise<Metrics> {
  let misses = 0
  const samples = new Float64Array(LATENCY_CALLS)
  let calls = 0
  const latencyDeadline = performance.now() + PHASE_LIMIT_MS
  while (calls < LATENCY_CALLS && performance.now() < latencyDeadline) {
    const started = performance.now()
    const value = await get(cursor.at)
    samples[calls++] = performance.now() - started
    if (value === undefined || value === null) misses++
    cursor.at = (cursor.at + 1) % KEYS
  }

  let done = 0
  const started = performance.now()
  const deadline = started + PHASE_LIMIT_MS
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async (_, caller) => {
      const first = caller * KEYS_PER_CALLER
      for (let i = 0; i < GETS_PER_CALLER && performance.now() < deadline; i++) {
        const value = await get(first + (i % KEYS_PER_CALLER))
        if (value === undefined || value === null) misses++
        done++
      }
    }),
  )
  const opsPerSec = (done / (performance.now() - started)) * 1_000

  const many = new Float64Array(BATCH_CALLS)
  let batches = 0
  const manyDeadline = performance.now() + PHASE_LIMIT_MS
  while (batches < BATCH_CALLS && performance.now() < manyDeadline) {
    const from = (batches * BATCH) % (KEYS - BATCH + 1)
    const indexes = Array.from({ length: BATCH }, (_, i) => from + i)
    const begun = performance.now()
    const values = await getMany(indexes)
    many[batches++] = performance.now() - begun
    misses += values.filter((value) => value === undefined || value === null).length
  }
  const latencies = samples.subarray(0, calls)
  return {
    p50Ms: quantile(latencies, 0.5),
    p99Ms: quantile(latencies, 0.99),
    opsPerSec,
    manyP50Ms: quantile(many.subarray(0, batches), 0.5),
    misses,
  }
}

/** `keys` grouped by cluster slot. */
function bySlot(keys: readonly string[]): string[][] {
  const groups = new Map<number, string[]>()
  for (const key of keys) {
    const slot = clusterSlot(key)
    const group = groups.get(slot)
    if (group === undefined) groups.set(slot, [key])
    else group.push(key)
  }
  return [...groups.values()]
}

async function setup(
  nodes: RedisCluster,
  closers: (() => Promise<unknown>)[],
  log: (line: string) => void,
): Promise<Contestant[]> {
  const params = productParams(KEYS)
  const values = params.map(product)
  const rootNodes = nodes.urls.map((url) => ({ url }))
  const ioredisCluster = (): Cluster => {
    const client = new Cluster(
      nodes.nodes.map((node) => ({ host: '127.0.0.1', port: node.port })),
      {
        lazyConnect: true,
        enableOfflineQueue: false,
        shardedSubscribers: true,
        redisOptions: { maxRetriesPerRequest: 0 },
      },
    )
    closers.push(async () => client.disconnect())
    return client
  }

  /** A stratacache namespace on `store`, L1 off; its loader counts fallbacks. */
  const strata = async (store: L2Store) => {
    const cache: Cache = createCache({ service: 'bench', l1: false, l2: store })
    closers.push(() => cache.close())
    const counter = { fallbacks: 0 }
    const ns = cache.namespace('product', {
      ...productNamespace,
      ttl: TTL_MS,
      load: (p: ProductParams) => {
        counter.fallbacks++
        return product(p)
      },
    })
    await cache.connect()
    return { ns, counter }
  }

  log(`  cluster: writing ${KEYS.toLocaleString('en')} keys`)
  const viaNodeRedis = await strata(redisClusterStore({ rootNodes }))
  for (let from = 0; from < KEYS; from += 100) {
    await Promise.all(params.slice(from, from + 100).map((p, i) => viaNodeRedis.ns.set(p, values[from + i]!)))
  }
  const viaIoredis = await strata(ioredisStore({ client: ioredisCluster() }))
  const keys = params.map((p) => viaNodeRedis.ns.key(p))

  const raw = createCluster({ rootNodes, defaults: { disableOfflineQueue: true } })
  raw.on('error', (error: unknown) => log(`  node-redis cluster error: ${String(error)}`))
  await raw.connect()
  closers.push(() => raw.close())
  const rawBuffers = raw.withTypeMapping({ [RESP_TYPES.BLOB_STRING]: Buffer })
  const io = ioredisCluster()
  await io.connect()

  const rawMany = async (
    indexes: readonly number[],
    mget: (group: string[]) => Promise<unknown[]>,
  ): Promise<unknown[]> => (await Promise.all(bySlot(indexes.map((i) => keys[i]!)).map(mget))).flat()

  const strataContestant = (name: string, via: typeof viaNodeRedis, call: string): Contestant => {
    const cursor = { at: 0 }
    return {
      name,
      call,
      async measure() {
        const before = via.counter.fallbacks
        const metrics = await measure(
          (i) => via.ns.get(params[i]!),
          (indexes) => via.ns.getMany(indexes.map((i) => params[i]!)),
          cursor,
        )
        return { ...metrics, misses: metrics['misses']! + via.counter.fallbacks - before }
      },
    }
  }
  const nodeRedisCursor = { at: 0 }
  const ioredisCursor = { at: 0 }
  return [
    strataContestant('stratacache, node-redis', viaNodeRedis, '`ns.get` / `ns.getMany`, `redisClusterStore`'),
    strataContestant(
      'stratacache, ioredis',
      viaIoredis,
      '`ns.get` / `ns.getMany`, `ioredisStore({ client: cluster })`',
    ),
    {
      name: REFERENCE,
      call: '`GET`; `MGET` per slot, concurrently (Buffer replies)',
      measure: () =>
        measure(
          (i) => rawBuffers.get(keys[i]!),
          (indexes) => rawMany(indexes, (group) => rawBuffers.mGet(group)),
          nodeRedisCursor,
        ),
    },
    {
      name: 'ioredis cluster',
      call: '`getBuffer`; `mgetBuffer` per slot, concurrently',
      measure: () =>
        measure(
          (i) => io.getBuffer(keys[i]!),
          (indexes) => rawMany(indexes, (group) => io.mgetBuffer(group)),
          ioredisCursor,
        ),
    },
  ]
}
