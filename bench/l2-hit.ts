// Scenario l2-hit: Redis hits with L1 off, stratacache against raw node-redis GET and the peers on the same Redis.
import KeyvRedis from '@keyv/redis'
import { BentoCache, bentostore } from 'bentocache'
import { redisDriver } from 'bentocache/drivers/redis'
import { createCache as createCacheManager } from 'cache-manager'
import { Keyv } from 'keyv'
import { createClient, RESP_TYPES } from 'redis'
import { createCache } from '../dist/index.js'
import { redisStore } from '../dist/redis.js'
import {
  product,
  productNamespace,
  productParams,
  stringKey,
  TTL_MS,
  type ProductParams,
} from './fixtures.js'
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

/** Concurrent callers in the throughput phase; each reads its own keys, so no library can merge requests. */
const CONCURRENCY = 100
const KEYS_PER_CALLER = 100
const KEYS = CONCURRENCY * KEYS_PER_CALLER
/** Sequential awaited gets per round in the latency phase. */
const LATENCY_CALLS = 5_000
/** Gets per caller per round in the throughput phase. */
const GETS_PER_CALLER = 100
/** Each phase stops here even if it has not done its count (a stalled Redis, a hung client). */
const PHASE_LIMIT_MS = 15_000
/**
 * The floor, and the reference: what any cache returning objects must do at least, with node-redis's own
 * per-command timeout off as stratacache turns it off on its commands (it bounds calls with its own deadline).
 */
const REFERENCE = 'node-redis + JSON.parse, timeout off'
const NO_TIMEOUT = 'node-redis, timeout off'
const DEFAULT_TIMEOUT = 'node-redis, default timeout'
const UNCOALESCED = 'stratacache, coalesceGets: false'
const HAND_COALESCED = 'node-redis MGET per tick + JSON.parse'
/** stratacache's envelope header (src/codecs/envelope.ts): the JSON payload starts after it. */
const ENVELOPE_HEADER_BYTES = 33
const TARGET_P50 = 1.2
const TARGET_THROUGHPUT = 0.8

export const l2Hit: Scenario = {
  name: 'l2-hit',
  title: 'L2 (Redis) hit latency and throughput, L1 off',
  needsRedis: true,
  run,
}

async function run(context: ScenarioContext): Promise<ScenarioReport> {
  const url = context.redisUrl
  if (url === undefined) throw new Error('l2-hit needs a redis-server')
  const params = productParams(KEYS)
  const closers: (() => Promise<unknown>)[] = []
  try {
    const contestants = await setup(url, params, closers, context.log)
    const result = await runRounds({
      scenario: 'l2-hit',
      contestants,
      reference: REFERENCE,
      rounds: context.rounds ?? 9,
      warmupRounds: 1,
      log: context.log,
    })
    const median = (name: string, metric: string) =>
      result.contestants.find((c) => c.name === name)!.median[metric]!
    const p50Ratio = median('stratacache', 'p50Ms') / median(REFERENCE, 'p50Ms')
    const opsRatio = median('stratacache', 'opsPerSec') / median(REFERENCE, 'opsPerSec')
    const opsRatioDefault = median('stratacache', 'opsPerSec') / median(DEFAULT_TIMEOUT, 'opsPerSec')
    const opsRatioUncoalesced = median(UNCOALESCED, 'opsPerSec') / median(REFERENCE, 'opsPerSec')
    const opsRatioHand = median('stratacache', 'opsPerSec') / median(HAND_COALESCED, 'opsPerSec')
    return {
      sections: [
        {
          title:
            `Redis GET hits: ${LATENCY_CALLS.toLocaleString('en')} sequential gets (1 caller), then ` +
            `${CONCURRENCY} concurrent callers x ${GETS_PER_CALLER} gets, per contestant per round`,
          table: markdownTable(result, [
            { metric: 'p50Ms', label: 'p50, 1 caller', format: formatUs, ratio: true },
            { metric: 'p99Ms', label: 'p99, 1 caller', format: formatUs, ratio: true },
            {
              metric: 'opsPerSec',
              label: `ops/s, ${CONCURRENCY} callers`,
              format: formatOps,
              range: true,
              ratio: true,
            },
            { metric: 'misses', label: 'misses per round', format: formatCount },
          ]),
          notes: [
            'All contestants read ~250-byte JSON products from the same local redis-server, each over its own ' +
              'connection. The node-redis rows read the very keys stratacache wrote (its 33-byte envelope + JSON).',
            `The reference, "${REFERENCE}", is the floor of a cache returning objects: GET the bytes as a Buffer ` +
              "and JSON.parse the payload after the header, with node-redis's per-command timeout off " +
              '(`commandOptions: { timeout: 0 }`). stratacache turns that timeout off on its own commands too and ' +
              'bounds each call with its own deadline (100 ms by default), so this is the like-for-like floor. ' +
              `"${NO_TIMEOUT}" returns the bytes as a string without decoding them.`,
            `"${DEFAULT_TIMEOUT}" is node-redis as created (\`createClient({ url })\`): node-redis 6 arms an ` +
              '`AbortSignal.timeout` (5 s) for every command, which costs it a timer per call; against it ' +
              `stratacache is at ${opsRatioDefault.toFixed(2)}x throughput.`,
            'stratacache sends the gets issued in one tick as one MGET (`coalesceGets`, on by default; at most 64 ' +
              `keys each, a lone get as a GET). "${UNCOALESCED}" sends one GET per get: ` +
              `${opsRatioUncoalesced.toFixed(2)}x the floor's throughput. "${HAND_COALESCED}" is the floor ` +
              'coalesced by hand the same way (the least a cache that batches must do); stratacache is at ' +
              `${opsRatioHand.toFixed(2)}x of it.`,
            'stratacache runs with `l1: false` and its default L2 timeout (100 ms) and circuit breaker; ' +
              '"misses" counts its fallbacks to the loader (an L2 error or timeout), which should stay 0.',
            'bentocache uses its Redis driver (ioredis) as its only layer; cache-manager uses one Keyv store on ' +
              '@keyv/redis (node-redis).',
          ],
        },
      ],
      targets: [
        {
          text: `stratacache p50 at 1 caller within ${TARGET_P50}x of the floor (node-redis GET + JSON.parse, timeout off)`,
          met: p50Ratio <= TARGET_P50,
          measured: `${p50Ratio.toFixed(2)}x`,
        },
        {
          text: `stratacache throughput at ${CONCURRENCY} callers >= ${TARGET_THROUGHPUT}x the floor`,
          met: opsRatio >= TARGET_THROUGHPUT,
          measured: `${opsRatio.toFixed(2)}x`,
        },
      ],
      results: [result],
    }
  } finally {
    for (const close of closers.reverse()) await close()
  }
}

/** Latency at 1 caller, then throughput at CONCURRENCY callers, of `get(index)` over the KEYS keys. */
async function measure(get: (index: number) => Promise<unknown>, cursor: { at: number }): Promise<Metrics> {
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
  const latencies = samples.subarray(0, calls)

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
  return { p50Ms: quantile(latencies, 0.5), p99Ms: quantile(latencies, 0.99), opsPerSec, misses }
}

async function setup(
  url: string,
  params: readonly ProductParams[],
  closers: (() => Promise<unknown>)[],
  log: (line: string) => void,
): Promise<Contestant[]> {
  const values = params.map(product)
  const keys = params.map(stringKey)
  /**
   * Writes in slices of 100 concurrent calls: pipelined, yet small enough that stratacache's 100 ms L2 timeout
   * holds on a busy machine (a slice of 500 did time out on the shared 2-core machine).
   */
  const fill = async (write: (index: number) => Promise<unknown>) => {
    for (let from = 0; from < KEYS; from += 100) {
      await Promise.all(Array.from({ length: Math.min(100, KEYS - from) }, (_, i) => write(from + i)))
    }
  }
  log(`  l2-hit: writing ${KEYS.toLocaleString('en')} keys per contestant`)

  // stratacache, L1 off: every get is GET + envelope decode + JSON.parse. Its loader counts fallbacks.
  const cache = createCache({ service: 'bench', l1: false, l2: redisStore({ url }) })
  closers.push(() => cache.close())
  let fallbacks = 0
  const ns = cache.namespace('product', {
    ...productNamespace,
    ttl: TTL_MS,
    load: (p: ProductParams) => {
      fallbacks++
      return product(p)
    },
  })
  await cache.connect()
  await fill((i) => ns.set(params[i]!, values[i]!))
  const strataCursor = { at: 0 }
  // The same service and namespace, so it reads the entries written above, one GET per get.
  const uncoalesced = createCache({
    service: 'bench',
    l1: false,
    l2: redisStore({ url, coalesceGets: false }),
  })
  closers.push(() => uncoalesced.close())
  const uncoalescedNs = uncoalesced.namespace('product', {
    ...productNamespace,
    ttl: TTL_MS,
    load: (p: ProductParams) => {
      fallbacks++
      return product(p)
    },
  })
  await uncoalesced.connect()
  const uncoalescedCursor = { at: 0 }

  // Raw node-redis on the keys stratacache wrote: the same bytes over the wire, nothing decoded.
  const raw = createClient({ url })
  raw.on('error', (error: unknown) => log(`  node-redis error: ${String(error)}`))
  await raw.connect()
  closers.push(() => raw.close())
  const strataKeys = params.map((p) => ns.key(p))
  const rawCursor = { at: 0 }
  const rawNoTimeout = createClient({ url, commandOptions: { timeout: 0 } })
  rawNoTimeout.on('error', (error: unknown) => log(`  node-redis error: ${String(error)}`))
  await rawNoTimeout.connect()
  closers.push(() => rawNoTimeout.close())
  const noTimeoutCursor = { at: 0 }
  // The floor: GET the bytes and JSON.parse the payload after the header, node-redis's own timeout off.
  const rawBuffers = rawNoTimeout.withTypeMapping({ [RESP_TYPES.BLOB_STRING]: Buffer })
  const parseCursor = { at: 0 }
  const getAndParse = async (i: number): Promise<unknown> => {
    const bytes = await rawBuffers.get(strataKeys[i]!)
    return bytes === null ? null : JSON.parse(bytes.toString('utf8', ENVELOPE_HEADER_BYTES))
  }

  // The floor coalesced by hand: the keys asked in one tick, one MGET at the tick's end (64 at most, as stratacache).
  const handCursor = { at: 0 }
  let pending: { keys: string[]; settle: ((bytes: Buffer | null) => void)[] } | undefined
  const flush = () => {
    const batch = pending!
    pending = undefined
    rawBuffers.mGet(batch.keys).then(
      (replies) => replies.forEach((bytes, i) => batch.settle[i]!(bytes)),
      () => batch.settle.forEach((settle) => settle(null)),
    )
  }
  const mgetAndParse = (i: number): Promise<unknown> =>
    new Promise<Buffer | null>((resolve) => {
      if (pending === undefined) {
        pending = { keys: [], settle: [] }
        process.nextTick(() => pending !== undefined && flush())
      }
      pending.keys.push(strataKeys[i]!)
      pending.settle.push(resolve)
      if (pending.keys.length === 64) flush()
    }).then((bytes) => (bytes === null ? null : JSON.parse(bytes.toString('utf8', ENVELOPE_HEADER_BYTES))))

  const bento = new BentoCache({
    default: 'cache',
    stores: {
      cache: bentostore().useL2Layer(
        redisDriver({ connection: { host: '127.0.0.1', port: Number(new URL(url).port) } }),
      ),
    },
  })
  closers.push(() => bento.disconnectAll())
  await fill((i) => bento.set({ key: keys[i]!, value: values[i], ttl: TTL_MS }))
  const bentoCursor = { at: 0 }

  const manager = createCacheManager({ stores: [new Keyv({ store: new KeyvRedis(url) })] })
  closers.push(() => manager.disconnect())
  await fill((i) => manager.set(keys[i]!, values[i], TTL_MS))
  const managerCursor = { at: 0 }

  /** A stratacache contestant: its misses are the loader's fallbacks during its rounds. */
  const strata = (
    name: string,
    call: string,
    namespace: { get: (p: ProductParams) => Promise<unknown> },
    cursor: { at: number },
  ): Contestant => ({
    name,
    call,
    async measure() {
      const before = fallbacks
      const metrics = await measure((i) => namespace.get(params[i]!), cursor)
      return { ...metrics, misses: metrics.misses! + fallbacks - before }
    },
  })

  return [
    strata('stratacache', '`await ns.get(params)`, `l1: false`', ns, strataCursor),
    {
      name: REFERENCE,
      call: '`JSON.parse(await client.get(key))` of the payload, Buffer reply, `commandOptions: { timeout: 0 }`',
      measure: () => measure(getAndParse, parseCursor),
    },
    strata(
      UNCOALESCED,
      '`await ns.get(params)`, `l1: false`, `redisStore({ url, coalesceGets: false })`',
      uncoalescedNs,
      uncoalescedCursor,
    ),
    {
      name: HAND_COALESCED,
      call: 'the gets of one tick as one `MGET` (64 keys at most), Buffer replies, then `JSON.parse`',
      measure: () => measure(mgetAndParse, handCursor),
    },
    {
      name: NO_TIMEOUT,
      call: '`await client.get(key)`, `commandOptions: { timeout: 0 }`',
      measure: () => measure((i) => rawNoTimeout.get(strataKeys[i]!), noTimeoutCursor),
    },
    {
      name: DEFAULT_TIMEOUT,
      call: '`await client.get(key)`, `createClient({ url })`',
      measure: () => measure((i) => raw.get(strataKeys[i]!), rawCursor),
    },
    {
      name: 'bentocache',
      call: '`await bento.get({ key })`, L2 only (ioredis)',
      measure: () => measure((i) => bento.get({ key: keys[i]! }), bentoCursor),
    },
    {
      name: 'cache-manager',
      call: '`await cache.get(key)`, Keyv + @keyv/redis',
      measure: () => measure((i) => manager.get(keys[i]!), managerCursor),
    },
  ]
}
