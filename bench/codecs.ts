// Scenario codecs: end-to-end get (L2 hit, L1 off) and set latency with compression and encryption on and off.
import { createHash } from 'node:crypto'
import { createClient } from 'redis'
import { createCache } from '../dist/index.js'
import { redisStore } from '../dist/redis.js'
import { product, productParams, type Product } from './fixtures.js'
import {
  formatCount,
  formatUs,
  markdownTable,
  quantile,
  runRounds,
  type Contestant,
  type Metrics,
  type RoundsResult,
  type Scenario,
  type ScenarioContext,
  type ScenarioReport,
} from './harness.js'

/** Target payload sizes of the JSON values, in bytes (the list of products is cut to come closest). */
const SIZES = [
  { label: '1 KB', bytes: 1_024 },
  { label: '10 KB', bytes: 10_240 },
  { label: '100 KB', bytes: 102_400 },
] as const
const CODECS = [
  { label: 'plain', compression: false, encrypt: false },
  { label: 'brotli', compression: true, encrypt: false },
  { label: 'AES-GCM', compression: false, encrypt: true },
  { label: 'brotli + AES-GCM', compression: true, encrypt: true },
] as const
/** Distinct keys per contestant, cycled by its gets and sets. */
const KEYS = 50
/** Awaited sequential calls per contestant per round, of each of set and get. */
const CALLS = 300
/** Each phase stops here even if it has not done its count. */
const PHASE_LIMIT_MS = 10_000

export const codecs: Scenario = {
  name: 'codecs',
  title: 'get (L2 hit, L1 off) and set with compression and encryption, 1 / 10 / 100 KB JSON',
  needsRedis: true,
  run,
}

/**
 * A JSON list of products of at least `bytes` bytes (the first list to reach it): a repetitive structure as real
 * API payloads have, with distinct values and a hex SKU per item so it does not compress unrealistically well.
 */
function payload(bytes: number, seed: number): (Product & { sku: string })[] {
  const list: (Product & { sku: string })[] = []
  let size = 2
  for (const p of productParams(Math.ceil(bytes / 100))) {
    const productId = p.productId + seed * 10_000
    const sku = createHash('sha256').update(String(productId)).digest('hex').slice(0, 24)
    const item = { ...product({ ...p, productId }), sku }
    list.push(item)
    size += JSON.stringify(item).length + 1
    if (size >= bytes) break
  }
  return list
}

async function run(context: ScenarioContext): Promise<ScenarioReport> {
  const url = context.redisUrl
  if (url === undefined) throw new Error('codecs needs a redis-server')
  const closers: (() => Promise<unknown>)[] = []
  try {
    const { contestants, sizes, fallbacks } = await setup(url, closers)
    const result = await runRounds({
      scenario: 'codecs',
      contestants,
      reference: `plain, ${SIZES[0].label}`,
      rounds: context.rounds ?? 5,
      warmupRounds: 1,
      log: context.log,
    })
    const sections = SIZES.map((size) => {
      const names = CODECS.map((codec) => `${codec.label}, ${size.label}`)
      const sub: RoundsResult = {
        ...result,
        reference: names[0]!,
        contestants: result.contestants.filter((c) => names.includes(c.name)),
      }
      return {
        title: `${size.label} JSON (${sizes.get(size.label)!.json.toLocaleString('en')} bytes serialized)`,
        table: markdownTable(sub, [
          { metric: 'getP50Ms', label: 'get p50', format: formatUs, ratio: true },
          { metric: 'getP95Ms', label: 'get p95', format: formatUs, ratio: true },
          { metric: 'setP50Ms', label: 'set p50', format: formatUs, ratio: true },
          { metric: 'setP95Ms', label: 'set p95', format: formatUs, ratio: true },
          { metric: 'storedBytes', label: 'bytes in Redis', format: formatCount },
        ]),
        notes: [] as string[],
      }
    })
    sections[sections.length - 1]!.notes.push(
      `Each contestant is one namespace of one cache (\`l1: false\`, L2 timeout 1 s) on the same ` +
        `redis-server and connection; per round it does ${CALLS} awaited sequential \`set\`s then ${CALLS} ` +
        `awaited sequential \`get\`s over ${KEYS} keys. A get is GET + decrypt + decompress + JSON.parse; a set ` +
        'is JSON.stringify + compress + encrypt, then its round trips to Redis (version bump, SET, ' +
        'invalidation publish).',
      'brotli is the default `compression` (quality 4, threshold 1 KB: every payload here is over it); ' +
        'AES-GCM is `encryption` with a 32-byte key, the full cache key bound as associated data.',
      '"bytes in Redis" is `STRLEN` of one stored envelope, header included.',
    )
    const misses = fallbacks()
    return {
      sections,
      targets: [
        {
          text: 'every get was an L2 hit (no fallback to the loader, no decode error)',
          met: misses === 0,
          measured: `${misses} fallbacks`,
        },
      ],
      results: [result],
    }
  } finally {
    for (const close of closers.reverse()) await close()
  }
}

async function setup(url: string, closers: (() => Promise<unknown>)[]) {
  const cache = createCache({
    service: 'bench-codecs',
    l1: false,
    l2: redisStore({ url }),
    // A stall of the shared benchmark machine must show in p95, not abort the run with a timed-out set.
    timeouts: { l2: '1s' },
    compression: { algorithm: 'brotli' },
    encryption: { active: 'bench', keys: { bench: Buffer.alloc(32, 0x42) } },
  })
  closers.push(() => cache.close())
  await cache.connect()
  const raw = createClient({ url })
  raw.on('error', () => {})
  await raw.connect()
  closers.push(() => raw.close())

  let fallbacks = 0
  const sizes = new Map<string, { json: number }>()
  const contestants: Contestant[] = []
  for (const size of SIZES) {
    const values = Array.from({ length: KEYS }, (_, i) => payload(size.bytes, i))
    sizes.set(size.label, { json: Buffer.byteLength(JSON.stringify(values[0])) })
    for (const codec of CODECS) {
      const name = `${codec.label}, ${size.label}`
      const ns = cache.namespace(`${codec.label.replace(/[^a-z]+/gi, '-')}-${size.bytes}`, {
        key: 'list:{id}',
        ttl: '10m',
        ...(codec.compression ? {} : { compression: false as const }),
        encrypt: codec.encrypt,
        lock: false,
        load: ({ id }: { id: number }) => {
          fallbacks++
          return values[id]!
        },
      })
      for (let id = 0; id < KEYS; id++) await ns.set({ id }, values[id]!)
      const storedBytes = await raw.strLen(ns.key({ id: 0 }))
      let cursor = 0
      contestants.push({
        name,
        call: `\`ns.set\` / \`ns.get\`${codec.compression ? ', `compression`' : ''}${codec.encrypt ? ', `encryption`' : ''}`,
        async measure(): Promise<Metrics> {
          const setSamples = await sample(async () => {
            const id = cursor++ % KEYS
            await ns.set({ id }, values[id]!)
          })
          const getSamples = await sample(async () => {
            const value = await ns.get({ id: cursor++ % KEYS })
            if (!Array.isArray(value)) throw new Error(`${name}: get returned ${typeof value}`)
          })
          return {
            getP50Ms: quantile(getSamples, 0.5),
            getP95Ms: quantile(getSamples, 0.95),
            setP50Ms: quantile(setSamples, 0.5),
            setP95Ms: quantile(setSamples, 0.95),
            storedBytes,
          }
        },
      })
    }
  }
  return { contestants, sizes, fallbacks: () => fallbacks }
}

/** Latencies of `CALLS` awaited sequential calls, within PHASE_LIMIT_MS. */
async function sample(call: () => Promise<void>): Promise<Float64Array> {
  const samples = new Float64Array(CALLS)
  let n = 0
  const deadline = performance.now() + PHASE_LIMIT_MS
  while (n < CALLS && performance.now() < deadline) {
    const started = performance.now()
    await call()
    samples[n++] = performance.now() - started
  }
  return samples.subarray(0, n)
}
