// `npm start`: the demo catalog API and its live dashboard. PostgreSQL when DATABASE_URL is set, else PGlite
// (Postgres in WebAssembly, in memory); Redis as L2 when REDIS_URL is set or one answers on 127.0.0.1:6379
// (REDIS_URL=off: never), else the disk store in DEMO_DISK_PATH (default: stratacache-demo/disk in the system's temp
// directory; with PGlite, a subdirectory of it per process, see below); DEMO_DISK_PATH=off for L1 only. With an
// L2, Ctrl-C saves the hottest keys there and the next start copies them into L1 before it takes traffic (warm
// start; DEMO_WARM_START=off for a cold start). DEMO_REGION and DEMO_PEERS (`us-east=redis://127.0.0.1:6380,…`) run
// it as one region of several.
import { readdirSync, rmSync } from 'node:fs'
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
const diskRoot = env.DEMO_DISK_PATH ?? join(tmpdir(), 'stratacache-demo', 'disk')
// PostgreSQL is shared by every demo process of the host, so is their disk store. PGlite is one seeded database per
// process: a store shared with another demo process would serve that process's edits, which this database never
// saw, and emptying a shared store at start (PGlite starts from its seed, so must its cache) deleted the live store
// of a demo already running. So with PGlite each process has a directory of its own, `pglite-<pid>` under the root:
// emptied at start (a reused pid), removed on the way out, and left behind only by a killed process, which the next
// start removes once that pid is gone. Nothing else under the root is ever deleted.
const diskPath =
  l2Url || env.DEMO_DISK_PATH === 'off'
    ? undefined
    : db.kind === 'pglite'
      ? join(diskRoot, `pglite-${process.pid}`)
      : diskRoot
if (diskPath !== undefined && db.kind === 'pglite') {
  for (const name of readdirEntries(diskRoot)) {
    const pid = /^pglite-(\d+)$/.exec(name)?.[1]
    if (pid !== undefined && (Number(pid) === process.pid || !processAlive(Number(pid)))) {
      rmSync(join(diskRoot, name), { recursive: true, force: true })
    }
  }
}
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
        ? `disk store in ${diskPath}, ${
            db.kind === 'pglite'
              ? "this process's own, as its PGlite is"
              : "shared by this host's demo processes"
          } (set REDIS_URL for Redis)`
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
  if (diskPath !== undefined && db.kind === 'pglite') rmSync(diskPath, { recursive: true, force: true })
}
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => void stop())

function readdirEntries(path: string): string[] {
  try {
    return readdirSync(path)
  } catch {
    return []
  }
}

/** True when a process with this id runs (EPERM: it does, under another user). */
function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}
