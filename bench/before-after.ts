// Before/after: this checkout's build against another build of stratacache, on the two hit paths, the miss path
// and the write path, in one process.
//
//   git worktree add ../before <commit> && (cd ../before && npm ci && npm run build)
//   npm run build && npx tsx bench/before-after.ts ../before
//
// Both builds serve the same keys: an L1 hit (awaited `get`, 1,000 keys warm in L1) and an L2 hit with the network
// taken out (`l1: false`, the store's GET answers from memory, as in the l2-overhead scenario). The metric is gets
// per CPU-second of this process (`process.cpuUsage`), which a shared machine's load disturbs far less than
// wall-clock throughput; rounds alternate between the builds (before, after, before, …) so that both see the same
// machine. Prints one Markdown table; the ratio is after / before (above 1 is faster). The miss path is an L1-only
// get whose every call loads (10,000 keys in turn through an L1 of 100 entries; a loader that answers at once, and
// never reads its signal): what stratacache adds around a load. The write path is a
// write-through `write()` to the local redis-server (real round trips: bump, set, broadcast) with a source write that
// does nothing, 50 writers at a time: it measures what stratacache adds around the source call.
import path from 'node:path'
import { pathToFileURL } from 'node:url'
import { parseArgs } from 'node:util'
import { startRedis } from '../test/helpers/redis-server.js'
import { product, productNamespace, productParams, type ProductParams } from './fixtures.js'
import { formatOps, median } from './harness.js'

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: { rounds: { type: 'string', default: '11' } },
})
const beforeDir = positionals[0]
if (beforeDir === undefined) {
  console.error('usage: npx tsx bench/before-after.ts <checkout of the "before" build> [--rounds 11]')
  process.exit(2)
}
const rounds = Number(values.rounds)
if (!Number.isInteger(rounds) || rounds < 3)
  throw new Error(`--rounds must be an integer >= 3, got ${values.rounds}`)

/** The parts of a stratacache build this script uses (the public API of both builds). */
interface Build {
  createCache: (options: object) => {
    namespace: (
      name: string,
      options: object,
    ) => {
      get: (p: ProductParams) => Promise<unknown>
      set: (p: ProductParams, value: unknown) => Promise<void>
      write: (p: ProductParams, value: unknown) => Promise<void>
      key: (p: ProductParams) => string
    }
    connect: () => Promise<void>
    close: () => Promise<void>
  }
  redisStore: (options: { url: string }) => object
}

async function load(dir: string): Promise<Build> {
  const dist = path.resolve(dir, 'dist')
  const index = (await import(pathToFileURL(path.join(dist, 'index.js')).href)) as Pick<Build, 'createCache'>
  const redis = (await import(pathToFileURL(path.join(dist, 'redis.js')).href)) as Pick<Build, 'redisStore'>
  return { createCache: index.createCache, redisStore: redis.redisStore }
}

/** A logger that drops everything (the before build may not know `logger: false`). */
const silent = { debug() {}, info() {}, warn() {}, error() {} }

const L1_KEYS = 1_000
const L1_CALLS = 400_000
const L2_CONCURRENCY = 100
const L2_KEYS_PER_CALLER = 100
const L2_GETS_PER_CALLER = 600
const MISS_KEYS = 10_000
const MISS_CALLS = 60_000
const MISS_CONCURRENCY = 10
const WRITE_CONCURRENCY = 50
const WRITES = 3_000

/** Calls per CPU-second of `count` awaited calls of `get`, `concurrency` callers at a time. */
async function perCpuSecond(
  get: (index: number) => Promise<unknown>,
  keys: number,
  count: number,
  concurrency: number,
): Promise<number> {
  const perCaller = Math.ceil(count / concurrency)
  const cpu = process.cpuUsage()
  await Promise.all(
    Array.from({ length: concurrency }, async (_, caller) => {
      const first = (caller * Math.floor(keys / concurrency)) % keys
      for (let i = 0; i < perCaller; i++) await get((first + i) % keys)
    }),
  )
  const used = process.cpuUsage(cpu)
  return (perCaller * concurrency) / ((used.user + used.system) / 1e6)
}

interface Path {
  name: string
  measure: () => Promise<number>
  close: () => Promise<void>
}

async function l1Path(build: Build): Promise<Path> {
  const params = productParams(L1_KEYS)
  const cache = build.createCache({ service: 'bench-ab-l1', logger: silent })
  const ns = cache.namespace('product', { ...productNamespace, ttl: 10 * 60_000, load: product })
  for (const p of params) await ns.get(p)
  return {
    name: 'L1 hit',
    measure: () => perCpuSecond((i) => ns.get(params[i]!), L1_KEYS, L1_CALLS, 1),
    close: () => cache.close(),
  }
}

async function l2Path(build: Build, url: string, service: string): Promise<Path> {
  const keys = L2_CONCURRENCY * L2_KEYS_PER_CALLER
  const params = productParams(keys)
  const store = build.redisStore({ url }) as {
    get: (key: string) => Promise<Uint8Array | null>
    getMany: (keys: readonly string[]) => Promise<(Uint8Array | null)[]>
  }
  // A generous L2 timeout for the warm-up's writes on a busy machine.
  const cache = build.createCache({ service, l1: false, l2: store, logger: silent, timeouts: { l2: 2_000 } })
  const ns = cache.namespace('product', { ...productNamespace, ttl: 10 * 60_000, load: product })
  await cache.connect()
  for (let from = 0; from < keys; from += 100)
    await Promise.all(params.slice(from, from + 100).map((p) => ns.set(p, product(p))))
  const bytes = new Map<string, Uint8Array>()
  for (const p of params) {
    const key = ns.key(p)
    const value = await store.get(key)
    if (value === null) throw new Error(`${key} is not in Redis after the warm-up`)
    bytes.set(key, value)
  }
  // From here on the store's GET answers from memory: an own property shadows the class method. So does its
  // getMany, which a build that coalesces gets (`coalesceGets`) sends the gets of one tick through.
  store.get = (key) => Promise.resolve(bytes.get(key) ?? null)
  store.getMany = (keys) => Promise.resolve(keys.map((key) => bytes.get(key) ?? null))
  return {
    name: 'L2 hit (store GET from memory)',
    measure: () =>
      perCpuSecond((i) => ns.get(params[i]!), keys, L2_CONCURRENCY * L2_GETS_PER_CALLER, L2_CONCURRENCY),
    close: () => cache.close(),
  }
}

async function missPath(build: Build): Promise<Path> {
  const params = productParams(MISS_KEYS)
  const cache = build.createCache({ service: 'bench-ab-miss', l1: { maxEntries: 100 }, logger: silent })
  const ns = cache.namespace('product', { ...productNamespace, ttl: 10 * 60_000, load: product })
  return {
    name: 'L3 load (L1 miss, no L2)',
    measure: () => perCpuSecond((i) => ns.get(params[i]!), MISS_KEYS, MISS_CALLS, MISS_CONCURRENCY),
    close: () => cache.close(),
  }
}

async function writePath(build: Build, url: string, service: string): Promise<Path> {
  const params = productParams(WRITES)
  const cache = build.createCache({
    service,
    l2: build.redisStore({ url }),
    logger: silent,
    timeouts: { l2: 2_000 },
  })
  const ns = cache.namespace('product', {
    ...productNamespace,
    ttl: 10 * 60_000,
    load: product,
    write: () => {},
  })
  await cache.connect()
  return {
    name: 'write() (write-through, source write does nothing)',
    measure: () =>
      perCpuSecond((i) => ns.write(params[i]!, product(params[i]!)), WRITES, WRITES, WRITE_CONCURRENCY),
    close: () => cache.close(),
  }
}

const redis = await startRedis()
try {
  const before = await load(beforeDir)
  const after = await load('.')
  const rows: string[] = []
  for (const make of [
    (b: Build) => l1Path(b),
    (b: Build, tag: string) => l2Path(b, redis.url, `bench-ab-${tag}`),
    (b: Build) => missPath(b),
    (b: Build, tag: string) => writePath(b, redis.url, `bench-ab-write-${tag}`),
  ]) {
    const paths = [await make(before, 'before'), await make(after, 'after')]
    const samples: number[][] = [[], []]
    try {
      for (let round = -1; round < rounds; round++) {
        for (const [i, p] of paths.entries()) {
          const rate = await p.measure()
          if (round >= 0) samples[i]!.push(rate) // round -1 warms both up
        }
      }
    } finally {
      for (const p of paths) await p.close()
    }
    const [b, a] = samples.map((s) => median(s)) as [number, number]
    const range = (s: number[]) => `${formatOps(Math.min(...s))}–${formatOps(Math.max(...s))}`
    rows.push(
      `| ${paths[0]!.name} | ${formatOps(b)} (${range(samples[0]!)}) | ${formatOps(a)} (${range(samples[1]!)}) | ` +
        `${(a / b).toFixed(2)}x |`,
    )
  }
  console.log(
    `Before: ${path.resolve(beforeDir)}; after: ${process.cwd()}; ${rounds} rounds each, medians.\n`,
  )
  console.log('| path | before, calls per CPU-second (range) | after (range) | after / before |')
  console.log('| --- | --- | --- | --- |')
  for (const row of rows) console.log(row)
} finally {
  await redis.stop()
}
