// The demo's source of truth: a product catalog in PostgreSQL (`pg`) or PGlite (Postgres in WebAssembly), which
// counts its queries and can be slowed down on purpose to show how the cache absorbs a slow source.
import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { mkdir } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { Worker } from 'node:worker_threads'

export const TENANTS = ['acme', 'globex', 'initech'] as const
export const LOCALES = ['en', 'de', 'fr'] as const
export const CURRENCIES = ['EUR', 'USD', 'GBP'] as const
export const PAGE_SIZE = 20

/** What the API returns for one product in one locale and currency. */
export interface ProductView {
  readonly tenantId: string
  readonly id: number
  readonly sku: string
  readonly category: string
  readonly name: string
  readonly description: string
  readonly locale: string
  readonly price: { readonly amountCents: number; readonly currency: string }
  readonly updatedAt: string
}

export interface ProductPage {
  readonly tenantId: string
  readonly page: number
  readonly total: number
  readonly items: readonly ProductView[]
}

/** A change to one product: its name and description in one locale, its price in one currency. */
export interface ProductUpdate {
  readonly name?: string | undefined
  readonly description?: string | undefined
  readonly amountCents?: number | undefined
}

/** The two drivers expose the same `query`; this is the slice the demo uses. */
export interface SqlClient {
  query<R>(text: string, params?: unknown[]): Promise<{ rows: R[] }>
  close(): Promise<void>
}

export interface OpenOptions {
  /** A PostgreSQL URL; without one the catalog runs on an in-memory PGlite. */
  databaseUrl?: string | undefined
  /** Products per tenant to seed when the catalog is empty. @default 1000 */
  productsPerTenant?: number
  /**
   * Where PGlite keeps a snapshot of the seeded database between starts (one gzip file per seed size and PGlite
   * version); `false` starts from scratch every time. @default `<os tmpdir>/stratacache-demo`
   */
  snapshotDir?: string | false
}

const S = 'stratacache_demo'

interface ProductRow {
  tenant_id: string
  id: number
  sku: string
  category: string
  name: string
  description: string
  locale: string
  amount_cents: number
  currency: string
  updated_at: Date | string
}

/** One product in one locale (falling back to English) and one currency. */
const PRODUCT_SELECT = `
  SELECT p.tenant_id, p.id, p.sku, p.category, p.updated_at,
         coalesce(t.name, en.name) AS name, coalesce(t.description, en.description) AS description,
         coalesce(t.locale, 'en') AS locale, pr.amount_cents, pr.currency
  FROM ${S}.product p
  JOIN ${S}.product_text en ON en.tenant_id = p.tenant_id AND en.product_id = p.id AND en.locale = 'en'
  LEFT JOIN ${S}.product_text t ON t.tenant_id = p.tenant_id AND t.product_id = p.id AND t.locale = $2
  JOIN ${S}.price pr ON pr.tenant_id = p.tenant_id AND pr.product_id = p.id AND pr.currency = $3`

/** The tables, created when missing (on PostgreSQL too, in their own schema). */
const SCHEMA = [
  `CREATE SCHEMA IF NOT EXISTS ${S}`,
  `CREATE TABLE IF NOT EXISTS ${S}.tenant (id text PRIMARY KEY, name text NOT NULL)`,
  `CREATE TABLE IF NOT EXISTS ${S}.product (
     tenant_id text NOT NULL REFERENCES ${S}.tenant (id), id int NOT NULL, sku text NOT NULL,
     category text NOT NULL, updated_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (tenant_id, id))`,
  `CREATE TABLE IF NOT EXISTS ${S}.product_text (
     tenant_id text NOT NULL, product_id int NOT NULL, locale text NOT NULL, name text NOT NULL,
     description text NOT NULL, PRIMARY KEY (tenant_id, product_id, locale))`,
  `CREATE TABLE IF NOT EXISTS ${S}.price (
     tenant_id text NOT NULL, product_id int NOT NULL, currency text NOT NULL, amount_cents int NOT NULL,
     PRIMARY KEY (tenant_id, product_id, currency))`,
]

/**
 * The seed, run when the catalog is empty: generated inside the database with generate_series, so no row crosses
 * the wire. `$1` is the number of products per tenant.
 */
const SEED = [
  `INSERT INTO ${S}.tenant (id, name) VALUES ${TENANTS.map((t) => `('${t}', '${t[0]!.toUpperCase()}${t.slice(1)} Corp')`).join(', ')}
   ON CONFLICT DO NOTHING`,
  `INSERT INTO ${S}.product (tenant_id, id, sku, category)
   SELECT t.id, g, upper(left(t.id, 3)) || '-' || lpad(g::text, 6, '0'),
          (ARRAY['tools', 'garden', 'kitchen', 'office', 'toys'])[1 + g % 5]
   FROM ${S}.tenant t, generate_series(1, $1::int) g`,
  `INSERT INTO ${S}.product_text (tenant_id, product_id, locale, name, description)
   SELECT p.tenant_id, p.id, l.locale, l.word || ' ' || p.category || ' #' || p.id,
          l.word || ' (' || l.locale || ') ' || p.sku
   FROM ${S}.product p, (VALUES ('en', 'Product'), ('de', 'Produkt'), ('fr', 'Produit')) AS l (locale, word)`,
  `INSERT INTO ${S}.price (tenant_id, product_id, currency, amount_cents)
   SELECT p.tenant_id, p.id, c.currency, ((100 + p.id * 37 % 9900) * c.rate)::int
   FROM ${S}.product p, (VALUES ('EUR', 1.0), ('USD', 1.08), ('GBP', 0.86)) AS c (currency, rate)`,
]

export class CatalogDb {
  readonly kind: 'postgres' | 'pglite'
  /** PGlite only: whether the database started from a snapshot an earlier start left. */
  readonly restored: boolean
  readonly #sql: SqlClient
  #queries = 0
  /** Added to every query while the demo simulates a slow source, in ms. */
  slowdownMs = 0

  private constructor(sql: SqlClient, kind: 'postgres' | 'pglite', restored = false) {
    this.#sql = sql
    this.kind = kind
    this.restored = restored
  }

  /**
   * Connects (or starts PGlite), creates the schema if missing and seeds it when it is empty. PGlite starts from a
   * snapshot of the seeded database when an earlier start left one (see `snapshotDir`), and leaves one otherwise.
   */
  static async open(options: OpenOptions = {}): Promise<CatalogDb> {
    const productsPerTenant = options.productsPerTenant ?? 1000
    if (options.databaseUrl) {
      const sql = await connectPostgres(options.databaseUrl)
      const db = new CatalogDb(sql, 'postgres')
      await db.#migrate(productsPerTenant).catch(async (error: unknown) => {
        await sql.close()
        throw error
      })
      return db
    }
    const snapshot =
      options.snapshotDir === false
        ? undefined
        : join(options.snapshotDir ?? join(tmpdir(), 'stratacache-demo'), snapshotName(productsPerTenant))
    const sql = await startPglite(snapshot)
    const db = new CatalogDb(sql, 'pglite', sql.restored)
    try {
      await db.#migrate(productsPerTenant)
      if (snapshot !== undefined && !sql.restored) {
        await mkdir(dirname(snapshot), { recursive: true })
        // A start without a snapshot is still a start: warn and go on.
        await sql
          .snapshot(snapshot)
          .catch((error: Error) => console.warn(`PGlite snapshot not written: ${error.message}`))
      }
    } catch (error) {
      await sql.close()
      throw error
    }
    return db
  }

  /** Queries sent to the database since start: the source load the cache is there to reduce. */
  get queries(): number {
    return this.#queries
  }

  async product(tenantId: string, id: number, locale: string, currency: string): Promise<ProductView | null> {
    const { rows } = await this.#query<ProductRow>(`${PRODUCT_SELECT} WHERE p.tenant_id = $1 AND p.id = $4`, [
      tenantId,
      locale,
      currency,
      id,
    ])
    return rows[0] === undefined ? null : toView(rows[0])
  }

  async page(tenantId: string, page: number, locale: string, currency: string): Promise<ProductPage> {
    const [{ rows }, { rows: count }] = await Promise.all([
      this.#query<ProductRow>(`${PRODUCT_SELECT} WHERE p.tenant_id = $1 ORDER BY p.id LIMIT $4 OFFSET $5`, [
        tenantId,
        locale,
        currency,
        PAGE_SIZE,
        (page - 1) * PAGE_SIZE,
      ]),
      this.#query<{ n: number }>(`SELECT count(*)::int AS n FROM ${S}.product WHERE tenant_id = $1`, [
        tenantId,
      ]),
    ])
    return { tenantId, page, total: count[0]?.n ?? 0, items: rows.map(toView) }
  }

  /** Applies `update` in one statement; resolves to false when the product does not exist. */
  async updateProduct(
    tenantId: string,
    id: number,
    locale: string,
    currency: string,
    update: ProductUpdate,
  ): Promise<boolean> {
    // One statement, so the change is atomic without a transaction (a pg pool would need a dedicated client).
    const { rows } = await this.#query<{ id: number }>(
      `WITH p AS (
         UPDATE ${S}.product SET updated_at = now() WHERE tenant_id = $1 AND id = $2 RETURNING id
       ), t AS (
         INSERT INTO ${S}.product_text (tenant_id, product_id, locale, name, description)
         SELECT $1, p.id, $3, coalesce($5, en.name), coalesce($6, en.description)
         FROM p JOIN ${S}.product_text en ON en.tenant_id = $1 AND en.product_id = p.id AND en.locale = 'en'
         WHERE $5::text IS NOT NULL OR $6::text IS NOT NULL
         ON CONFLICT (tenant_id, product_id, locale) DO UPDATE
           SET name = coalesce($5, ${S}.product_text.name), description = coalesce($6, ${S}.product_text.description)
       ), pr AS (
         UPDATE ${S}.price SET amount_cents = $7
         WHERE tenant_id = $1 AND product_id IN (SELECT id FROM p) AND currency = $4 AND $7::int IS NOT NULL
       )
       SELECT id FROM p`,
      [
        tenantId,
        id,
        locale,
        currency,
        update.name ?? null,
        update.description ?? null,
        update.amountCents ?? null,
      ],
    )
    return rows.length > 0
  }

  close(): Promise<void> {
    return this.#sql.close()
  }

  async #query<R>(text: string, params: unknown[]): Promise<{ rows: R[] }> {
    this.#queries++
    if (this.slowdownMs > 0) await sleep(this.slowdownMs)
    return this.#sql.query<R>(text, params)
  }

  async #migrate(productsPerTenant: number): Promise<void> {
    for (const statement of SCHEMA) await this.#sql.query(statement)
    const { rows } = await this.#sql.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${S}.product`)
    if ((rows[0]?.n ?? 0) > 0) return
    for (const statement of SEED) {
      await this.#sql.query(statement, statement.includes('$1') ? [productsPerTenant] : [])
    }
  }
}

function toView(row: ProductRow): ProductView {
  return {
    tenantId: row.tenant_id,
    id: row.id,
    sku: row.sku,
    category: row.category,
    name: row.name,
    description: row.description,
    locale: row.locale,
    price: { amountCents: row.amount_cents, currency: row.currency },
    updatedAt: new Date(row.updated_at).toISOString(),
  }
}

async function connectPostgres(url: string): Promise<SqlClient> {
  const { default: pg } = await import('pg')
  const pool = new pg.Pool({ connectionString: url, max: 10, connectionTimeoutMillis: 5_000 })
  // An idle client that loses its connection emits on the pool; without a listener that would crash the process.
  pool.on('error', (error) => console.error(`postgres: ${error.message}`))
  return {
    query: async <R>(text: string, params?: unknown[]) => {
      const result = await pool.query(text, params)
      return { rows: result.rows as R[] }
    },
    close: () => pool.end(),
  }
}

interface PgliteClient extends SqlClient {
  /** Whether the database was started from a snapshot (already seeded). */
  readonly restored: boolean
  /** Writes the data directory to `path` (gzip), atomically. */
  snapshot(path: string): Promise<void>
}

/** PGlite on a worker thread (see pglite-worker.mjs), behind the same `query` as the pg pool. */
async function startPglite(snapshot: string | undefined): Promise<PgliteClient> {
  const worker = new Worker(new URL('./pglite-worker.mjs', import.meta.url), { workerData: { snapshot } })
  const pending = new Map<number, { resolve: (rows: unknown[]) => void; reject: (error: Error) => void }>()
  let nextId = 0
  let failure: Error | undefined
  const fail = (error: Error) => {
    failure ??= error
    for (const { reject } of pending.values()) reject(error)
    pending.clear()
  }
  const ready = new Promise<boolean>((resolve, reject) => {
    worker.once('message', (message: { restored: boolean }) => resolve(message.restored))
    worker.once('error', reject)
    worker.once('exit', (code) =>
      reject(new Error(`the PGlite worker exited with code ${code} while starting`)),
    )
  })
  worker.on(
    'message',
    (message: { id?: number; rows?: unknown[]; error?: { message: string; code?: string } }) => {
      const call = message.id === undefined ? undefined : pending.get(message.id)
      if (call === undefined) return
      pending.delete(message.id!)
      if (message.error) {
        call.reject(Object.assign(new Error(message.error.message), { code: message.error.code }))
      } else {
        call.resolve(message.rows ?? [])
      }
    },
  )
  worker.on('error', fail)
  const exited = new Promise<void>((resolve) =>
    worker.once('exit', () => {
      fail(new Error('the PGlite worker has stopped'))
      resolve()
    }),
  )
  const call = (message: object) =>
    new Promise<unknown[]>((resolve, reject) => {
      if (failure !== undefined) return reject(failure)
      const id = nextId++
      pending.set(id, { resolve, reject })
      worker.postMessage({ ...message, id })
    })
  const restored = await ready
  return {
    restored,
    query: async <R>(text: string, params?: unknown[]) => ({ rows: (await call({ text, params })) as R[] }),
    snapshot: async (path: string) => {
      await call({ snapshot: path })
    },
    close: async () => {
      if (failure === undefined) worker.postMessage({ close: true })
      await exited
    },
  }
}

/** The snapshot's file name: changes with the schema, the seed, its size and the PGlite version. */
export function snapshotName(productsPerTenant: number): string {
  const hash = createHash('sha256')
    .update(JSON.stringify([SCHEMA, SEED, productsPerTenant, pgliteVersion()]))
    .digest('hex')
    .slice(0, 16)
  return `pglite-catalog-${hash}.tar.gz`
}

function pgliteVersion(): string {
  // The package exports no package.json: find it above its entry point.
  let dir = dirname(createRequire(import.meta.url).resolve('@electric-sql/pglite'))
  for (let i = 0; i < 4; i++) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as {
        name?: string
        version?: string
      }
      if (pkg.name === '@electric-sql/pglite') return pkg.version ?? 'unknown'
    } catch {
      // not here
    }
    dir = dirname(dir)
  }
  return 'unknown'
}
