// Scenario l2-overhead: stratacache's own CPU per L2 hit, with the network taken out.
//
// The store's GET answers from memory (the very bytes stratacache wrote to Redis, read back once at setup), so
// what is measured is everything stratacache does around a GET: single-flight, the guard's deadline and breaker,
// envelope decoding, clock clamping, counters. The floor is the least any cache returning objects does with the
// same bytes: await them and JSON.parse the payload. The metric is gets per CPU-second of this process
// (`process.cpuUsage`), which a shared machine's load disturbs far less than wall-clock throughput.
import { createCache } from '../dist/index.js'
import { redisStore } from '../dist/redis.js'
import { product, productNamespace, productParams, type ProductParams } from './fixtures.js'
import {
  formatOps,
  markdownTable,
  runRounds,
  type Contestant,
  type Metrics,
  type Scenario,
  type ScenarioContext,
  type ScenarioReport,
} from './harness.js'

const CONCURRENCY = 100
const KEYS_PER_CALLER = 100
const KEYS = CONCURRENCY * KEYS_PER_CALLER
const GETS_PER_CALLER = 1_000
const PHASE_LIMIT_MS = 15_000
const REFERENCE = 'JSON.parse floor'
/** stratacache's envelope header (src/codecs/envelope.ts): the JSON payload starts after it. */
const ENVELOPE_HEADER_BYTES = 33

export const l2Overhead: Scenario = {
  name: 'l2-overhead',
  title:
    "stratacache's own CPU per L2 hit (the store answers from memory), against JSON.parse of the same bytes",
  needsRedis: true,
  run,
}

/** CONCURRENCY callers, each GETS_PER_CALLER awaited gets over its own keys: gets per CPU-second and per second. */
async function measure(get: (index: number) => Promise<unknown>): Promise<Metrics> {
  let done = 0
  let misses = 0
  const deadline = performance.now() + PHASE_LIMIT_MS
  const cpu = process.cpuUsage()
  const started = performance.now()
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
  const wallMs = performance.now() - started
  const used = process.cpuUsage(cpu)
  return {
    perCpuSecond: done / ((used.user + used.system) / 1e6),
    opsPerSec: (done / wallMs) * 1_000,
    misses,
  }
}

async function run(context: ScenarioContext): Promise<ScenarioReport> {
  const url = context.redisUrl
  if (url === undefined) throw new Error('l2-overhead needs a redis-server')
  const params = productParams(KEYS)
  const store = redisStore({ url })
  const cache = createCache({ service: 'bench-overhead', l1: false, l2: store, logger: false })
  let fallbacks = 0
  const ns = cache.namespace('product', {
    ...productNamespace,
    ttl: 10 * 60_000,
    load: (p: ProductParams) => {
      fallbacks++
      return product(p)
    },
  })
  try {
    await cache.connect()
    for (let from = 0; from < KEYS; from += 100) {
      await Promise.all(params.slice(from, from + 100).map((p) => ns.set(p, product(p))))
    }
    // Read each entry's bytes back through the store itself, keyed as stratacache keys them.
    const keys = params.map((p) => ns.key(p))
    const bytes = new Map<string, Uint8Array>()
    for (let from = 0; from < KEYS; from += 500) {
      const slice = keys.slice(from, from + 500)
      const values = await store.getMany(slice)
      values.forEach((value, i) => {
        if (value === null) throw new Error(`l2-overhead: ${slice[i]} is not in Redis after set`)
        bytes.set(slice[i]!, value)
      })
    }
    // From here on the store's GET answers from memory: an own property shadows the class method.
    // So does its getMany, which coalesced gets use (`coalesceGets`).
    const inMemory = store as unknown as {
      get: (key: string) => Promise<Uint8Array | null>
      getMany: (keys: readonly string[]) => Promise<(Uint8Array | null)[]>
    }
    inMemory.get = (key) => Promise.resolve(bytes.get(key) ?? null)
    inMemory.getMany = (keys) => Promise.resolve(keys.map((key) => bytes.get(key) ?? null))
    const payloads = keys.map((key) => Buffer.from(bytes.get(key)!))

    const contestants: Contestant[] = [
      {
        name: 'stratacache',
        call: '`await ns.get(params)`, `l1: false`, store GET from memory',
        measure: () => measure((i) => ns.get(params[i]!)),
      },
      {
        name: REFERENCE,
        call: '`JSON.parse` of the payload after `await Promise.resolve(bytes)`',
        measure: () =>
          measure((i) =>
            Promise.resolve(payloads[i]!).then(
              (b) => JSON.parse(b.toString('utf8', ENVELOPE_HEADER_BYTES)) as unknown,
            ),
          ),
      },
    ]
    // Each contestant runs its rounds alone, not interleaved as in the other scenarios: the floor's allocations
    // between stratacache's rounds change how V8 sizes its young generation, which hid (and can cause) GC costs
    // of stratacache's own (a run interleaved measured before and after the deadline-queue change alike).
    const rounds = context.rounds ?? 9
    const alone = []
    for (const contestant of contestants) {
      alone.push(
        await runRounds({
          scenario: 'l2-overhead',
          contestants: [contestant],
          reference: contestant.name,
          rounds,
          warmupRounds: 1,
          log: context.log,
        }),
      )
    }
    const result = { ...alone[0]!, reference: REFERENCE, contestants: alone.flatMap((r) => r.contestants) }
    const median = (name: string) => result.contestants.find((c) => c.name === name)!.median
    const strata = median('stratacache')
    const floor = median(REFERENCE)
    const overheadUs = (1 / strata['perCpuSecond']! - 1 / floor['perCpuSecond']!) * 1e6
    return {
      sections: [
        {
          title: `${CONCURRENCY} concurrent callers x ${GETS_PER_CALLER} gets, ${KEYS.toLocaleString('en')} keys`,
          table: markdownTable(result, [
            {
              metric: 'perCpuSecond',
              label: 'gets per CPU-second',
              format: formatOps,
              range: true,
              ratio: true,
            },
            { metric: 'opsPerSec', label: 'gets/s (wall)', format: formatOps, ratio: true },
          ]),
          notes: [
            `stratacache's own work per L2 hit, beyond awaiting and parsing the bytes: ${overheadUs.toFixed(2)} µs ` +
              "of CPU (1 / its rate minus 1 / the floor's).",
            "Each contestant runs its rounds alone (all of stratacache's, then all of the floor's), so that one's " +
              'garbage does not change how V8 sizes the young generation for the other.',
            'Both read ~200-byte JSON products written by stratacache (33-byte envelope + JSON). The network, ' +
              'node-redis and Redis are out of the picture: the `l2-hit` scenario measures them.',
          ],
        },
      ],
      targets: [
        {
          text: 'every get was an L2 hit (no fallback to the loader)',
          met: fallbacks === 0,
          measured: `${fallbacks} fallbacks`,
        },
      ],
      results: [result],
    }
  } finally {
    await cache.close()
  }
}
