// `npm run tour`: a short tour of stratacache on embedded defaults (L1, and the disk store as L2), or with Redis when
// REDIS_URL is set.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createCache, type CacheOptions } from 'stratacache'
import { diskStore } from 'stratacache/disk'
import { redisStore } from 'stratacache/redis'

const redisUrl = process.env.REDIS_URL
// A fresh directory per tour, so every run starts cold; another process of this host could open it too.
const diskPath = redisUrl ? undefined : mkdtempSync(join(tmpdir(), 'stratacache-tour-'))
const options = (): CacheOptions => ({
  service: 'catalog',
  l1: { maxEntries: 10_000 },
  l2: redisUrl ? redisStore({ url: redisUrl }) : diskStore({ path: diskPath!, maxBytes: 64 * 1024 * 1024 }),
  // A local disk answers in microseconds; this bound only matters on a machine so busy that a call waits for the CPU.
  ...(redisUrl ? {} : { timeouts: { l2: '1s' } }),
})
const cache = createCache(options())

// A pretend database: 40 ms a query, and it counts its queries.
let queries = 0
const db = {
  async product(tenantId: string, productId: number, locale: string, currency: string) {
    queries++
    await new Promise((resolve) => setTimeout(resolve, 40))
    if (productId > 1_000) return null
    return { tenantId, productId, name: locale === 'de' ? 'Schraube' : 'Screw', price: `1.99 ${currency}` }
  },
}

const products = cache.namespace('product', {
  key: 'tenant:{tenantId}:product:{productId}',
  dimensions: ['locale', 'currency'],
  schemaVersion: 1,
  ttl: '5m',
  jitter: '30s',
  owner: 'team-catalog',
  load: ({ tenantId, productId, locale, currency }) =>
    db.product(String(tenantId), Number(productId), String(locale), String(currency)),
})

async function timed<T>(label: string, work: () => Promise<T>): Promise<T> {
  const started = performance.now()
  const value = await work()
  console.log(
    `${label.padEnd(52)} ${(performance.now() - started).toFixed(2).padStart(7)} ms   db queries: ${queries}`,
  )
  return value
}

console.log(
  `stratacache tour: ${redisUrl ? `L1 + Redis at ${redisUrl}` : `L1 + disk store in ${diskPath} (set REDIS_URL for Redis)`}\n`,
)
const params = { tenantId: 't1', productId: 42, locale: 'en', currency: 'EUR' }
console.log('key:', products.key(params), '\n')

await timed('first get: miss, loads from the db', () => products.get(params))
await timed('second get: L1 hit', () => products.get(params))
await timed('another locale is another entry: miss', () => products.get({ ...params, locale: 'de' }))
await timed('1,000 concurrent gets of a cold key: one db query', () =>
  Promise.all(Array.from({ length: 1_000 }, () => products.get({ ...params, productId: 7 }))),
)
await timed('getMany of 20 products (4 cached): loads 16', () =>
  products.getMany(
    Array.from({ length: 20 }, (_, i) => ({ ...params, productId: i < 4 ? [42, 7][i % 2]! : 100 + i })),
  ),
)
const missing = await timed('a product that does not exist: cached as null', () =>
  products.get({ ...params, productId: 5_000 }),
)
await timed('asking again: negative entry, no db query', () => products.get({ ...params, productId: 5_000 }))
console.log(`\nmissing product is ${JSON.stringify(missing)}`)

// The compiler rejects an empty literal; input that arrives at run time is checked at run time.
const tenantFromRequest: string = ''
try {
  await products.get({ ...params, tenantId: tenantFromRequest })
} catch (error) {
  console.log(
    `\nbad input is a typed error (${(error as { code: string }).code}):\n  ${(error as Error).message}`,
  )
}

// The counters a newcomer reads first; ns.stats() has more (stale serves, latency histograms…: docs/observability.md).
const { l1Hits, l2Hits, misses, loads, l2Errors } = cache.stats().namespaces.product!
console.log(
  `\nstats: ${l1Hits} L1 hits, ${l2Hits} L2 hits, ${misses} misses (each caller that joined a load counts), ` +
    `${loads} loads, ${l2Errors} L2 errors; the rest of ns.stats() in docs/observability.md`,
)
await cache.close()

// A new process (a restart, another worker) starts with an empty L1, and finds the loaded values in L2.
const next = createCache(options())
const again = next.namespace('product', {
  key: 'tenant:{tenantId}:product:{productId}',
  dimensions: ['locale', 'currency'],
  schemaVersion: 1,
  ttl: '5m',
  load: ({ tenantId, productId, locale, currency }) =>
    db.product(String(tenantId), Number(productId), String(locale), String(currency)),
})
await timed('\na new cache (a restart): L2 hit, no db query', () => again.get(params))
await next.close()
if (diskPath !== undefined) rmSync(diskPath, { recursive: true, force: true })
