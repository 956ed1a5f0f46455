// Scenario inspect: how close cache.inspect()'s sampled estimates come to the truth, and what an inspection costs.
// Each measurement starts its own redis-server, so every round has a fresh hash seed (SCAN's order, and the sample).
import { createCache } from '../dist/index.js'
import { redisStore } from '../dist/redis.js'
import { startRedis } from '../test/helpers/redis-server.js'
import {
  formatCount,
  formatMs,
  markdownTable,
  runRounds,
  withTimeout,
  type Column,
  type Contestant,
  type Metrics,
  type Scenario,
  type ScenarioContext,
  type ScenarioReport,
} from './harness.js'

const SERVICE = 'bench'
/** Entries of the sampled namespace; each also has a version key (as after a write), so 2 × ENTRIES keys. */
const ENTRIES = 10_000
/** Keys of everything else on the same Redis. */
const OTHER_KEYS = 100_000
const VALUE_BYTES = 200
const ROUND_LIMIT_MS = 60_000
const SAMPLES = [400, 1_000, 4_000] as const
const REFERENCE = `sample ${SAMPLES[1].toLocaleString('en')}`

export const inspect: Scenario = {
  name: 'inspect',
  title: `cache.inspect() estimates of a ${(2 * ENTRIES).toLocaleString('en')}-key namespace among ${OTHER_KEYS.toLocaleString('en')} other keys`,
  needsRedis: false,
  run,
}

/** Plants keys `from..to` of the namespace as the cache writes them (entry PX 1 h, version key PX 1 h 1 min). */
const PLANT_ENTRIES = `
for i = tonumber(ARGV[2]), tonumber(ARGV[3]) do
  redis.call('SET', ARGV[1] .. 'p:' .. i, ARGV[4], 'PX', 3600000)
  redis.call('SET', ARGV[1] .. 'p:' .. i .. '#v', '1', 'PX', 3660000)
end`
/** Plants keys `other:from..to`, without a TTL. */
const PLANT_OTHERS =
  "for i = tonumber(ARGV[1]), tonumber(ARGV[2]) do redis.call('SET', 'other:' .. i, ARGV[3]) end"
/** Keys per EVAL: each call stays well within the helper's 2 s command timeout on a busy machine. */
const CHUNK = 5_000

async function measureOnce(sampleKeys: number): Promise<Metrics> {
  const redis = await startRedis()
  const cache = createCache({ service: SERVICE, l2: redisStore({ url: redis.url }), timeouts: { l2: 2_000 } })
  try {
    const ns = cache.namespace('product', { key: 'p:{id}', ttl: '1h' })
    const value = 'x'.repeat(VALUE_BYTES)
    for (let from = 1; from <= ENTRIES; from += CHUNK / 2) {
      const to = String(Math.min(ENTRIES, from + CHUNK / 2 - 1))
      await redis.command('EVAL', PLANT_ENTRIES, '0', ns.prefix, String(from), to, value)
    }
    for (let from = 1; from <= OTHER_KEYS; from += CHUNK) {
      await redis.command(
        'EVAL',
        PLANT_OTHERS,
        '0',
        String(from),
        String(Math.min(OTHER_KEYS, from + CHUNK - 1)),
        value,
      )
    }
    await cache.connect()
    // The truth: a scan of the whole keyspace that measures every key of the namespace.
    const truth = (await cache.inspect({ sampleKeys: 1e9, maxTime: '30s' })).namespaces.product!
    if (truth.estimated || truth.keys !== 2 * ENTRIES) throw new Error(`full scan found ${truth.keys} keys`)
    const started = performance.now()
    const report = await cache.inspect({ sampleKeys })
    const ms = performance.now() - started
    const product = report.namespaces.product!
    const error = (estimate: number, actual: number) => (Math.abs(estimate - actual) / actual) * 100
    return {
      keysError: error(product.keys, 2 * ENTRIES),
      entriesError: error(product.entries, ENTRIES),
      bytesError: error(product.bytes.estimatedTotal, truth.bytes.sampled),
      seen: product.seen,
      ms,
    }
  } finally {
    await cache.close()
    await redis.stop()
  }
}

async function run(context: ScenarioContext): Promise<ScenarioReport> {
  const contestants: Contestant[] = SAMPLES.map((sampleKeys) => ({
    name: `sample ${sampleKeys.toLocaleString('en')}`,
    call: `inspect({ sampleKeys: ${sampleKeys} })`,
    measure: () => withTimeout(measureOnce(sampleKeys), ROUND_LIMIT_MS, `inspect with ${sampleKeys} samples`),
  }))
  const result = await runRounds({
    scenario: 'inspect',
    contestants,
    reference: REFERENCE,
    rounds: context.rounds ?? 15,
    warmupRounds: 1,
    log: context.log,
  })
  const percent = (value: number) => `${value.toFixed(1)}%`
  const columns: Column[] = [
    { metric: 'keysError', label: '\\|error\\| of keys', format: percent, range: true },
    { metric: 'entriesError', label: '\\|error\\| of entries', format: percent, range: true },
    { metric: 'bytesError', label: '\\|error\\| of bytes', format: percent, range: true },
    { metric: 'seen', label: 'keys seen', format: formatCount },
    { metric: 'ms', label: 'inspect() ms', format: formatMs, range: true, ratio: true },
  ]
  const reference = result.contestants.find((c) => c.name === REFERENCE)!
  const worst = Math.max(...reference.samples.keysError!, ...reference.samples.entriesError!)
  return {
    sections: [
      {
        title: 'Estimate error per round (each round a fresh redis-server: a new hash seed)',
        table: markdownTable(result, columns),
        notes: [
          `Namespace: ${ENTRIES.toLocaleString('en')} entries of ${VALUE_BYTES} bytes and their version keys; ` +
            `${OTHER_KEYS.toLocaleString('en')} other keys on the same Redis. Truth: a full scan measuring every key.`,
          '|error| is |estimate − truth| / truth; a cell is the median over the rounds, then the min–max.',
          'inspect() ms: INFO and CONFIG GET, the bounded SCAN and the MEMORY USAGE + PTTL sample, on loopback.',
        ],
      },
    ],
    targets: [
      {
        text: `${REFERENCE} (the default) estimates keys and entries within 25% in every round`,
        met: worst < 25,
        measured: `worst ${percent(worst)}`,
      },
    ],
    results: [result],
  }
}
