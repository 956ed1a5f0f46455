// `npm start`: the demo catalog API and its live dashboard. PostgreSQL when DATABASE_URL is set, else PGlite
// (Postgres in WebAssembly, in memory); Redis as L2 when REDIS_URL is set or one answers on 127.0.0.1:6379.
import { createDemo } from './app.js'
import { CatalogDb } from './catalog-db.js'
import { redisAnswers } from './redis-probe.js'

const env = process.env
const port = Number(env.PORT ?? 3000)
const host = env.HOST ?? '127.0.0.1'

async function redisUrl(): Promise<string | undefined> {
  if (env.REDIS_URL === 'off') return undefined
  if (env.REDIS_URL) return env.REDIS_URL
  return (await redisAnswers('127.0.0.1', 6379)) ? 'redis://127.0.0.1:6379' : undefined
}

const started = performance.now()
const [db, l2Url] = await Promise.all([CatalogDb.open({ databaseUrl: env.DATABASE_URL }), redisUrl()])
const demo = await createDemo({ db, redisUrl: l2Url, bypassCache: env.DEMO_CACHE === 'off' })
const address = await demo.app.listen({ port, host })

console.log(
  `stratacache demo: ${address}/dashboard  (ready in ${Math.round(performance.now() - started)} ms)`,
)
console.log(`  source: ${db.kind === 'postgres' ? 'PostgreSQL (DATABASE_URL)' : 'PGlite, in memory, seeded'}`)
console.log(
  `  L2:     ${l2Url ? `Redis at ${l2Url.replace(/\/\/[^@]*@/, '//***@')}` : 'none: L1 only (set REDIS_URL or start a redis-server on 127.0.0.1:6379)'}`,
)
console.log(`  try:    curl '${address}/api/tenants/acme/products/42?locale=de&currency=EUR'`)

let stopping = false
const stop = async () => {
  if (stopping) return
  stopping = true
  await demo.close()
  await db.close()
}
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => void stop())
