// `npm start`: the demo catalog API and its live dashboard. PostgreSQL when DATABASE_URL is set, else PGlite
// (Postgres in WebAssembly, in memory); Redis as L2 when REDIS_URL is set or one answers on 127.0.0.1:6379, else
// the disk store in DEMO_DISK_PATH (default: stratacache-demo in the system's temp directory); DEMO_DISK_PATH=off
// for L1 only. With an L2, Ctrl-C saves the hottest keys there and the next start copies them into L1 before it
// takes traffic (warm start; DEMO_WARM_START=off for a cold start). DEMO_REGION and DEMO_PEERS
// (`us-east=redis://127.0.0.1:6380,…`) run it as one region of several.
import { rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createDemo, parseDemoPeers } from './app.js'
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
const diskPath =
  l2Url || env.DEMO_DISK_PATH === 'off'
    ? undefined
    : (env.DEMO_DISK_PATH ?? join(tmpdir(), 'stratacache-demo'))
// PGlite starts from its seed on every run: so does the disk tier, or it would serve the last run's edits.
if (diskPath !== undefined && db.kind === 'pglite') rmSync(diskPath, { recursive: true, force: true })
const demo = await createDemo({
  db,
  redisUrl: l2Url,
  diskPath,
  bypassCache: env.DEMO_CACHE === 'off',
  // DEMO_REGION=eu-west DEMO_PEERS=us-east=redis://127.0.0.1:6380: this process is one region of several.
  region: env.DEMO_REGION || undefined,
  peers: env.DEMO_PEERS ? parseDemoPeers(env.DEMO_PEERS) : undefined,
})
// Before taking traffic: the hot keys the last demo process saved on its way out (Ctrl-C), copied from L2 into L1.
// Not on the disk store beside PGlite: both start empty every time, so there is never anything to warm from.
const warmable = env.DEMO_WARM_START !== 'off' && (l2Url !== undefined || db.kind !== 'pglite')
const warm = warmable ? await demo.warmStart() : undefined
const address = await demo.app.listen({ port, host })

console.log(
  `stratacache demo: ${address}/dashboard  (ready in ${Math.round(performance.now() - started)} ms)`,
)
console.log(`  source: ${db.kind === 'postgres' ? 'PostgreSQL (DATABASE_URL)' : 'PGlite, in memory, seeded'}`)
console.log(
  `  L2:     ${
    l2Url
      ? `Redis at ${l2Url.replace(/\/\/[^@]*@/, '//***@')}`
      : diskPath
        ? `disk store in ${diskPath}, shared by this host's processes (set REDIS_URL for Redis)`
        : 'none: L1 only (set REDIS_URL or start a redis-server on 127.0.0.1:6379)'
  }`,
)
if (env.DEMO_REGION) {
  const peers = env.DEMO_PEERS ? parseDemoPeers(env.DEMO_PEERS).map((peer) => peer.region) : []
  console.log(`  region: ${env.DEMO_REGION}, peers: ${peers.join(', ') || 'none'}`)
}
if (warm !== undefined) {
  console.log(
    warm.warmed > 0
      ? `  warm:   ${warm.warmed} hot entries from the last run copied from L2 into L1 in ${Math.round(warm.durationMs)} ms`
      : '  warm:   nothing saved by a previous run (Ctrl-C saves the hot keys for the next start)',
  )
}
console.log(`  try:    curl '${address}/api/tenants/acme/products/42?locale=de&currency=EUR'`)

let stopping = false
const stop = async () => {
  if (stopping) return
  stopping = true
  await demo.close()
  await db.close()
}
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => void stop())
