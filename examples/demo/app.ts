// The demo catalog API: Fastify routes over a stratacache cache (L1, Redis or disk L2) in front of the catalog
// database, plus the controls and numbers the dashboard uses.
import { readFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import Fastify, { type FastifyInstance, type FastifyReply } from 'fastify'
import { Registry } from 'prom-client'
import { createClient } from 'redis'
import { createCache, type Cache, type CacheStats, type RegionsOptions } from 'stratacache'
import { diskStore } from 'stratacache/disk'
import { prometheusMetrics } from 'stratacache/prometheus'
import { redisStore } from 'stratacache/redis'
import { declareCatalog, productTag, type PageParams, type ProductParams } from './catalog-cache.js'
import { CURRENCIES, LOCALES, type CatalogDb, type ProductUpdate } from './catalog-db.js'
import { faultyL2Store, type FaultyL2Store } from './fault-store.js'
import { LiveStats } from './live-stats.js'
import { LOAD_LIMITS, LoadGenerator } from './load-generator.js'

export interface DemoOptions {
  /** The source of truth, opened by the caller (who also closes it). */
  db: CatalogDb
  /** Redis for L2. */
  redisUrl?: string | undefined
  /** Without `redisUrl`: a directory for the disk L2 (shared by the host's processes). Without both: L1 only. */
  diskPath?: string | undefined
  /** The cache's service name: the first segment of every Redis key. @default 'catalog-demo' */
  service?: string
  /** Start with the cache bypassed (every read goes to the database). @default false */
  bypassCache?: boolean
  /** Products per tenant the load generator picks from. @default 1000 */
  productsPerTenant?: number
  /** Where purge records go until the audit log exists. @default console.log */
  log?: (line: string) => void
  /** This process's region (`DEMO_REGION`), with `peers`: the demo runs as one region of several. Needs an L2. */
  region?: string | undefined
  /** The other regions and their Redis (`DEMO_PEERS`, see `parseDemoPeers`). */
  peers?: readonly DemoPeer[] | undefined
  /**
   * `regions.heartbeat` and `regions.splitAfter` with `peers` (tests shorten them to see a split heal quickly).
   * @default the library's: heartbeat 1 s, split after 5 s
   */
  regionTiming?: Pick<RegionsOptions, 'heartbeat' | 'splitAfter'> | undefined
}

/** Another region of the demo: its name and its Redis. */
export interface DemoPeer {
  readonly region: string
  readonly url: string
}

/** One peer region as the dashboard's Regions panel shows it (from `cache.stats().regions`). */
export interface DemoRegionPeer {
  readonly region: string
  /** Whether this region counts as split from the peer (not heard from for longer than `regions.splitAfter`). */
  readonly split: boolean
  readonly heardAgoMs: number
  /** Relay lag of the last entry applied from the peer: appended there to applied here. */
  readonly lagMs: number
  /** Entries waiting in the peer's outbox for this region (known to the relaying process only). */
  readonly backlog: number | null
  readonly splits: number
  /** The last split that ended; null before any. */
  readonly lastSplit: {
    /** From the moment the peer counted as split to the moment this region had caught up with it, in ms. */
    readonly durationMs: number
    /** Changes the peer made during the split, applied here after the heal (known to the relaying process). */
    readonly replayed: number
    /** After the heal: from the first change read from the peer again to the last one missed applied, in ms. */
    readonly convergeMs: number
  } | null
  /** Times the peer's outbox overflowed before this region read it (every namespace was invalidated here). */
  readonly overflows: number
}

/**
 * `DEMO_PEERS`: comma-separated `region=redis-url` pairs, e.g. `us-east=redis://127.0.0.1:6380`.
 * @throws Error naming the pair that is not `region=url`
 */
export function parseDemoPeers(text: string): DemoPeer[] {
  return text
    .split(',')
    .map((pair) => pair.trim())
    .filter((pair) => pair !== '')
    .map((pair) => {
      const at = pair.indexOf('=')
      const region = pair.slice(0, at).trim()
      const url = pair.slice(at + 1).trim()
      if (at < 1 || !/^rediss?:\/\//.test(url)) {
        throw new Error(
          `DEMO_PEERS: expected region=redis://host:port pairs separated by commas, got "${pair}"`,
        )
      }
      return { region, url }
    })
}

export interface Demo {
  readonly app: FastifyInstance
  readonly cache: Cache
  readonly db: CatalogDb
  /** The L2 store behind its fault switch; undefined when L1-only. */
  readonly l2: FaultyL2Store | undefined
  readonly stats: LiveStats
  readonly load: LoadGenerator
  /**
   * Stops the load, the sampler, the server and the cache (not the database). With an L2, the cache first saves each
   * namespace's hottest keys there (`close({ saveHotKeys: true })`), so the next start can begin warm: see `warmStart`.
   */
  close(): Promise<void>
  /**
   * Copies the entries of the hot keys the last demo process saved, still fresh in L2, into L1 (`cache.warmStart()`);
   * undefined without an L2. Called by `npm start` before it takes traffic.
   */
  warmStart(): Promise<{ readonly warmed: number; readonly durationMs: number } | undefined>
}

const publicDir = join(dirname(fileURLToPath(import.meta.url)), 'public')
// Chart.js's self-contained build, served from node_modules: the dashboard loads nothing from the internet.
const chartJsPath = join(dirname(createRequire(import.meta.url).resolve('chart.js')), 'chart.umd.min.js')

const tenantId = { type: 'string', pattern: '^[a-z0-9-]{1,32}$' } as const
const localeAndCurrency = {
  locale: { type: 'string', enum: LOCALES, default: 'en' },
  currency: { type: 'string', enum: CURRENCIES, default: 'EUR' },
} as const

export async function createDemo(options: DemoOptions): Promise<Demo> {
  const { db } = options
  const log = options.log ?? console.log
  const disk =
    options.redisUrl || !options.diskPath
      ? undefined
      : diskStore({ path: options.diskPath, maxBytes: 256 * 1024 * 1024 })
  const l2 = options.redisUrl
    ? faultyL2Store(redisStore({ url: options.redisUrl }))
    : disk
      ? faultyL2Store(disk)
      : undefined
  const peers = options.peers ?? []
  if ((options.region !== undefined || peers.length > 0) && l2 === undefined) {
    throw new Error(
      'DEMO_REGION and DEMO_PEERS need an L2 (REDIS_URL): each region relays through its own Redis',
    )
  }
  const cache = createCache({
    service: options.service ?? 'catalog-demo',
    // Smaller than the working set (3 tenants × 1,000 products × 9 locale/currency pairs), so L2 answers too.
    l1: { maxEntries: 2_000 },
    ...(l2 ? { l2 } : {}),
    // As one region of several: writes and purges go to the peers through this region's outbox, theirs come here.
    ...(options.region !== undefined || peers.length > 0
      ? {
          ...(options.region === undefined ? {} : { region: options.region }),
          regions: {
            peers: peers.map(({ region, url }) => ({ region, l2: redisStore({ url }) })),
            ...options.regionTiming,
          },
        }
      : {}),
  })
  const { products, pages } = declareCatalog(cache, db)
  let bypass = options.bypassCache ?? false

  // L2's size for the dashboard, on a connection of its own (the cache's store has no DBSIZE, by design).
  const sizeClient = options.redisUrl
    ? createClient({
        url: options.redisUrl,
        disableOfflineQueue: true,
        socket: { connectTimeout: 1_000, reconnectStrategy: (attempt) => Math.min(attempt * 200, 2_000) },
      })
    : undefined
  sizeClient?.on('error', () => {})
  sizeClient?.connect().catch(() => {})
  const l2Keys = async (): Promise<number | null> => {
    // During a simulated outage the cache cannot see L2, and neither does the dashboard.
    if (disk !== undefined) return l2?.outage || disk.status !== 'ready' ? null : disk.stats().entries
    if (sizeClient === undefined || !sizeClient.isReady || l2?.outage) return null
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<null>((resolve) => (timer = setTimeout(() => resolve(null), 250)))
    try {
      return await Promise.race([sizeClient.dbSize(), timeout])
    } finally {
      clearTimeout(timer)
    }
  }

  const stats = new LiveStats({ cache, sourceQueries: () => db.queries, l2Keys })
  const registry = new Registry()
  prometheusMetrics(cache, { registry })

  // Unknown fields are refused with a 400 rather than silently dropped (Fastify's default removes them).
  const app = Fastify({ logger: false, ajv: { customOptions: { removeAdditional: false } } })
  const load = new LoadGenerator(app, options.productsPerTenant ?? 1000)

  // Requests answered with the cache bypassed, so the dashboard counts them apart from cache reads: the hit ratio
  // is a share of cache reads only, and a bypassed second has none.
  const bypassed = new WeakSet<object>()
  app.addHook('onResponse', async (request, reply) => {
    if (request.url.startsWith('/api/tenants/')) stats.record(reply.elapsedTime, bypassed.has(request))
  })
  // The cache's own errors (a loader that failed with nothing stale to serve, say) are the service's 503.
  app.setErrorHandler(async (error: Error & { code?: string; statusCode?: number }, _request, reply) => {
    const strata = typeof error.code === 'string' && error.code.startsWith('ERR_STRATA_')
    const status = strata ? 503 : (error.statusCode ?? 500)
    return reply.status(status).send({ error: error.code ?? 'ERR_INTERNAL', message: error.message })
  })

  // --- the catalog API -----------------------------------------------------------------------------------

  app.get<{
    Params: { tenantId: string; productId: number }
    Querystring: { locale: string; currency: string }
  }>(
    '/api/tenants/:tenantId/products/:productId',
    {
      schema: {
        params: {
          type: 'object',
          properties: { tenantId, productId: { type: 'integer', minimum: 1 } },
          required: ['tenantId', 'productId'],
        },
        querystring: { type: 'object', properties: localeAndCurrency },
      },
    },
    async (request, reply) => {
      const params: ProductParams = { ...request.params, ...request.query }
      if (bypass) bypassed.add(request)
      const product = bypass
        ? await db.product(params.tenantId, params.productId, params.locale, params.currency)
        : await products.get(params)
      return product ?? notFound(reply, params)
    },
  )

  app.get<{ Params: { tenantId: string }; Querystring: { page: number; locale: string; currency: string } }>(
    '/api/tenants/:tenantId/products',
    {
      schema: {
        params: { type: 'object', properties: { tenantId }, required: ['tenantId'] },
        querystring: {
          type: 'object',
          properties: {
            page: { type: 'integer', minimum: 1, maximum: 10_000, default: 1 },
            ...localeAndCurrency,
          },
        },
      },
    },
    async (request) => {
      const params: PageParams = { ...request.params, ...request.query }
      if (bypass) bypassed.add(request)
      return bypass
        ? db.page(params.tenantId, params.page, params.locale, params.currency)
        : pages.get(params)
    },
  )

  // PATCH changes what the body names; PUT replaces all three fields. Both write the database first, then drop
  // every cached value about the product through its tag: all 9 locale × currency variants and the pages that list
  // it, from L2 and from every process's L1 (through the invalidation bus). Writing one variant through
  // `products.write()` would leave the 8 others and the pages stale, because one edit changes several of them.
  const updateSchema = (required: string[]) => ({
    params: {
      type: 'object',
      properties: { tenantId, productId: { type: 'integer', minimum: 1 } },
      required: ['tenantId', 'productId'],
    },
    querystring: { type: 'object', properties: localeAndCurrency },
    body: {
      type: 'object',
      additionalProperties: false,
      minProperties: 1,
      required,
      properties: {
        name: { type: 'string', minLength: 1, maxLength: 200 },
        description: { type: 'string', maxLength: 2_000 },
        amountCents: { type: 'integer', minimum: 0, maximum: 100_000_000 },
      },
    },
  })
  const update = async (
    request: { params: { tenantId: string; productId: number }; query: { locale: string; currency: string } },
    body: ProductUpdate,
    reply: FastifyReply,
  ) => {
    const params: ProductParams = { ...request.params, ...request.query }
    const found = await db.updateProduct(
      params.tenantId,
      params.productId,
      params.locale,
      params.currency,
      body,
    )
    if (!found) return notFound(reply, params)
    let cacheState = 'invalidated'
    try {
      await cache.invalidateTag(productTag(params.tenantId, params.productId))
    } catch (error) {
      // The database has the change and this process's L1 dropped its copies, but L2 (and so the other processes)
      // may serve the old value until it expires. Say so rather than fail a write that happened.
      cacheState = `not invalidated in L2 (${(error as { code?: string }).code ?? String(error)}): other processes may serve the old value until it expires`
    }
    if (bypass) bypassed.add(request)
    const product = bypass
      ? await db.product(params.tenantId, params.productId, params.locale, params.currency)
      : await products.get(params)
    return { product, cache: cacheState }
  }
  type UpdateRoute = {
    Params: { tenantId: string; productId: number }
    Querystring: { locale: string; currency: string }
    Body: ProductUpdate
  }
  app.patch<UpdateRoute>(
    '/api/tenants/:tenantId/products/:productId',
    { schema: updateSchema([]) },
    (request, reply) => update(request, request.body, reply),
  )
  app.put<UpdateRoute>(
    '/api/tenants/:tenantId/products/:productId',
    { schema: updateSchema(['name', 'description', 'amountCents']) },
    (request, reply) => update(request, request.body, reply),
  )

  // --- operations --------------------------------------------------------------------------------------------

  app.post<{ Body: { namespace?: 'product' | 'product-page' | 'all'; tag?: string; reason: string } }>(
    '/api/admin/purge',
    {
      schema: {
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['reason'],
          properties: {
            namespace: { type: 'string', enum: ['product', 'product-page', 'all'] },
            tag: { type: 'string', pattern: '^[a-z0-9:-]{1,100}$' },
            reason: { type: 'string', minLength: 3, maxLength: 500 },
          },
          oneOf: [{ required: ['namespace'] }, { required: ['tag'] }],
        },
      },
    },
    async (request) => {
      const { namespace, tag, reason } = request.body
      // TODO(#6): record the purge in the audit log (who, what, why, when) once the audit capability lands; until
      // then it is one log line.
      log(
        `purge ${namespace !== undefined ? `namespace=${namespace}` : `tag=${tag}`} reason=${JSON.stringify(reason)}`,
      )
      let deleted = 0
      if (tag !== undefined) {
        deleted = await cache.invalidateTag(tag)
      } else {
        if (namespace === 'product' || namespace === 'all') deleted += await products.clear()
        if (namespace === 'product-page' || namespace === 'all') deleted += await pages.clear()
      }
      return { purged: tag !== undefined ? { tag } : { namespace }, deletedFromL2: deleted, reason }
    },
  )

  app.post<{ Body: { ms: number } }>(
    '/api/admin/slowdown',
    {
      schema: {
        body: {
          type: 'object',
          required: ['ms'],
          properties: { ms: { type: 'integer', minimum: 0, maximum: 10_000 } },
        },
      },
    },
    async (request) => {
      db.slowdownMs = request.body.ms
      return { slowdownMs: db.slowdownMs }
    },
  )

  app.post<{ Body: { on: boolean } }>(
    '/api/admin/outage',
    { schema: { body: onOff } },
    async (request, reply) => {
      if (l2 === undefined) {
        return reply
          .status(409)
          .send({ error: 'NO_L2', message: 'The demo runs L1-only: there is no Redis to lose.' })
      }
      l2.setOutage(request.body.on)
      return { outage: l2.outage }
    },
  )

  app.post<{ Body: { on: boolean } }>('/api/admin/bypass', { schema: { body: onOff } }, async (request) => {
    bypass = request.body.on
    return { bypass }
  })

  app.post<{ Body: { seconds?: number; rate?: number } }>(
    '/api/admin/load',
    {
      schema: {
        body: {
          type: 'object',
          properties: {
            seconds: { type: 'integer', minimum: 1, maximum: LOAD_LIMITS.maxSeconds },
            rate: { type: 'integer', minimum: 1, maximum: LOAD_LIMITS.maxRate },
          },
        },
      },
    },
    async (request) => load.start(request.body?.seconds ?? 15, request.body?.rate ?? 1_000),
  )
  app.post('/api/admin/load/stop', async () => {
    await load.stop()
    return load.status
  })

  app.get('/api/stats', async () => {
    const s = cache.stats()
    return {
      mode: {
        db: db.kind,
        l2: options.redisUrl ? redactUrl(options.redisUrl) : disk ? `disk ${disk.address}` : null,
        l2Kind: options.redisUrl ? 'redis' : disk ? 'disk' : null,
        l2Status: s.l2?.status ?? null,
        circuit: s.l2?.circuit ?? null,
        outage: l2?.outage ?? false,
        bypass,
        slowdownMs: db.slowdownMs,
      },
      load: load.status,
      totals: {
        sourceQueries: db.queries,
        ...Object.values(s.namespaces).reduce(
          (sum, n) => ({
            l1Hits: sum.l1Hits + n.l1Hits,
            l2Hits: sum.l2Hits + n.l2Hits,
            misses: sum.misses + n.misses,
          }),
          { l1Hits: 0, l2Hits: 0, misses: 0 },
        ),
      },
      hotKeys: products
        .hotKeys()
        .map(({ key, score }) => ({ key: key.slice(products.prefix.length), score })),
      samples: stats.history().slice(-60),
      regions: regionsOf(s),
    }
  })

  app.get('/metrics', async (_request, reply) =>
    reply.type(registry.contentType).send(await registry.metrics()),
  )

  // --- the dashboard -----------------------------------------------------------------------------------------

  const assets: Record<string, [file: string, type: string]> = {
    '/dashboard': [join(publicDir, 'dashboard.html'), 'text/html; charset=utf-8'],
    '/dashboard.js': [join(publicDir, 'dashboard.js'), 'text/javascript; charset=utf-8'],
    '/dashboard.css': [join(publicDir, 'dashboard.css'), 'text/css; charset=utf-8'],
    '/vendor/chart.umd.min.js': [chartJsPath, 'text/javascript; charset=utf-8'],
    '/favicon.svg': [join(publicDir, 'favicon.svg'), 'image/svg+xml'],
  }
  for (const [path, [file, type]] of Object.entries(assets)) {
    const body = await readFile(file)
    app.get(path, async (_request, reply) => reply.type(type).header('cache-control', 'no-cache').send(body))
  }
  app.get('/', async (_request, reply) => reply.redirect('/dashboard'))
  // The page links its icon; a browser opening /api/stats or /metrics directly still asks for /favicon.ico.
  app.get('/favicon.ico', async (_request, reply) => reply.redirect('/favicon.svg', 301))

  stats.start()
  return {
    app,
    cache,
    db,
    l2,
    stats,
    load,
    async close() {
      await load.stop()
      stats.stop()
      await app.close()
      await cache.close(l2 ? { saveHotKeys: true } : {})
      sizeClient?.destroy()
    },
    async warmStart() {
      if (l2 === undefined) return undefined
      const result = await cache.warmStart()
      const warmed = Object.values(result.namespaces).reduce((sum, ns) => sum + ns.warmed, 0)
      return { warmed, durationMs: result.durationMs }
    },
  }
}

const onOff = {
  type: 'object',
  required: ['on'],
  properties: { on: { type: 'boolean' } },
} as const

function notFound(reply: FastifyReply, params: ProductParams) {
  return reply.status(404).send({
    error: 'NOT_FOUND',
    message: `No product ${params.productId} for tenant "${params.tenantId}".`,
  })
}

/** The Regions panel's numbers; null when the demo runs as no region. */
function regionsOf(s: CacheStats) {
  if (s.regions === undefined) return null
  const peers = Object.values(s.regions.peers).map((peer): DemoRegionPeer => ({
    region: peer.region,
    split: peer.split,
    heardAgoMs: Math.round(peer.heardAgoMs),
    lagMs: Math.round(peer.lagMs.last),
    backlog: peer.backlog ?? null,
    splits: peer.splits,
    lastSplit:
      peer.lastSplit === undefined
        ? null
        : {
            durationMs: Math.round(peer.lastSplit.durationMs),
            replayed: peer.lastSplit.replayed,
            convergeMs: Math.round(peer.lastSplit.convergeMs),
          },
    overflows: peer.overflows,
  }))
  return { region: s.regions.region, relaying: s.regions.relaying, peers }
}

/** The Redis URL without its password, for the page. */
function redactUrl(url: string): string {
  try {
    const parsed = new URL(url)
    if (parsed.password) parsed.password = '***'
    return parsed.toString()
  } catch {
    return 'redis'
  }
}
