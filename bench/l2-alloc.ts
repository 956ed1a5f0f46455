// Bytes allocated per L2 hit, and by which functions: the garbage an L2 hit leaves, which the collector's share of an
// L2-heavy profile comes from.
//
//   npm run build && node --no-turbo-inlining --import tsx bench/l2-alloc.ts
//
// The set-up is the l2-overhead scenario's: 100 callers, L1 off, the store's GET (and getMany) answering from memory
// with the bytes stratacache wrote, so only stratacache's own allocations are counted besides the floor's (the JSON
// text and the parsed value). V8's sampling heap profiler (through `node:inspector`) records every sampled allocation,
// including objects the collector has freed since, over `--gets` gets after a warm-up. Unlike a CPU-time figure, the
// result barely moves with the machine's load. `--no-turbo-inlining` makes each allocation count against the function
// that makes it instead of the one it was inlined into (the total is about the same either way). A second pass
// counts only what lived through a minor collection: short-lived garbage is cheap to collect, survivors are not (a
// Map whose entries churn once per read kept every settled flight alive that way: docs/benchmarks.md).
import inspector from 'node:inspector/promises'
import { parseArgs } from 'node:util'
import { createCache } from '../dist/index.js'
import { redisStore } from '../dist/redis.js'
import { startRedis } from '../test/helpers/redis-server.js'
import { product, productNamespace, productParams, type ProductParams } from './fixtures.js'

const { values } = parseArgs({
  options: { gets: { type: 'string', default: '300000' }, top: { type: 'string', default: '20' } },
})
const gets = Number(values.gets)
const top = Number(values.top)
if (!Number.isInteger(gets) || gets < 10_000)
  throw new Error(`--gets must be an integer >= 10000, got ${values.gets}`)

const CONCURRENCY = 100
const KEYS_PER_CALLER = 100
const KEYS = CONCURRENCY * KEYS_PER_CALLER
/** One sample per this many bytes allocated, on average (V8's default is 512 KiB: far too coarse here). */
const SAMPLING_INTERVAL = 1_024

interface ProfileNode {
  callFrame: { functionName: string; url: string; lineNumber: number }
  selfSize: number
  children: ProfileNode[]
}

const server = await startRedis()
const store = redisStore({ url: server.url })
const cache = createCache({ service: 'bench-alloc', l1: false, l2: store, logger: false })
const ns = cache.namespace('product', { ...productNamespace, ttl: 10 * 60_000, load: product })
const session = new inspector.Session()
try {
  await cache.connect()
  const params = productParams(KEYS)
  for (let from = 0; from < KEYS; from += 100) {
    await Promise.all(params.slice(from, from + 100).map((p) => ns.set(p, product(p))))
  }
  const bytes = new Map<string, Uint8Array>()
  for (const p of params) {
    const value = await store.get(ns.key(p))
    if (value === null) throw new Error(`${ns.key(p)} is not in Redis after set`)
    bytes.set(ns.key(p), value)
  }
  // From here on the store answers from memory: own properties shadow the class methods.
  const inMemory = store as unknown as {
    get: (key: string) => Promise<Uint8Array | null>
    getMany: (keys: readonly string[]) => Promise<(Uint8Array | null)[]>
  }
  inMemory.get = (key) => Promise.resolve(bytes.get(key) ?? null)
  inMemory.getMany = (keys) => Promise.resolve(keys.map((key) => bytes.get(key) ?? null))

  const run = async (count: number) => {
    const perCaller = Math.ceil(count / CONCURRENCY)
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async (_, caller) => {
        const first = caller * KEYS_PER_CALLER
        for (let i = 0; i < perCaller; i++)
          await ns.get(params[first + (i % KEYS_PER_CALLER)] as ProductParams)
      }),
    )
    return perCaller * CONCURRENCY
  }
  await run(100_000)
  session.connect()

  /**
   * Bytes per hit by function over `gets` gets. `survivors`: only objects that lived through a minor collection
   * (a scavenge), which the collector copies or promotes: what makes its work, as opposed to garbage that dies young.
   */
  const profile = async (survivors: boolean) => {
    await session.post('HeapProfiler.startSampling', {
      samplingInterval: SAMPLING_INTERVAL,
      includeObjectsCollectedByMajorGC: true,
      includeObjectsCollectedByMinorGC: !survivors,
    })
    const done = await run(gets)
    const { profile } = (await session.post('HeapProfiler.stopSampling')) as {
      profile: { head: ProfileNode }
    }
    const byFunction = new Map<string, number>()
    let total = 0
    const walk = (node: ProfileNode) => {
      if (node.selfSize > 0) {
        const { functionName, url, lineNumber } = node.callFrame
        const where = `${functionName || '(anonymous)'} ${url.split('/').slice(-2).join('/')}:${lineNumber + 1}`
        byFunction.set(where, (byFunction.get(where) ?? 0) + node.selfSize)
        total += node.selfSize
      }
      for (const child of node.children) walk(child)
    }
    walk(profile.head)
    return { done, total, byFunction }
  }

  const print = (title: string, { done, total, byFunction }: Awaited<ReturnType<typeof profile>>) => {
    console.log(`${title}: ${Math.round(total / done)}\n`)
    console.log('| bytes per hit | share | function |\n| ---: | ---: | --- |')
    for (const [where, size] of [...byFunction].sort((a, b) => b[1] - a[1]).slice(0, top)) {
      console.log(`| ${Math.round(size / done)} | ${((100 * size) / total).toFixed(1)}% | \`${where}\` |`)
    }
    console.log()
  }

  const allocated = await profile(false)
  const survived = await profile(true)
  const loads = ns.stats().loads
  if (loads > 0) throw new Error(`${loads} gets missed L2 and loaded: the result would count the loads`)
  console.log(
    `Node ${process.version}, ${allocated.done.toLocaleString('en')} L2 hits at ${CONCURRENCY} callers\n`,
  )
  print('bytes allocated per L2 hit', allocated)
  print('bytes per L2 hit that lived through a minor GC', survived)
} finally {
  session.disconnect()
  await cache.close()
  await server.stop()
}
