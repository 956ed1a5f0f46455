// The demo's key families: one product per tenant, locale and currency, and pages of the product list. Read this
// file to see how a namespace is declared; app.ts shows how the routes use them.
import type { Cache } from 'stratacache'
import type { CatalogDb } from './catalog-db.js'

export interface ProductParams {
  tenantId: string
  productId: number
  locale: string
  currency: string
}

export interface PageParams {
  tenantId: string
  page: number
  locale: string
  currency: string
}

/** Every cached value about one product carries this tag: one `invalidateTag` drops all of them, everywhere. */
export const productTag = (tenantId: string, productId: number) => `product:${tenantId}:${productId}`
export const tenantTag = (tenantId: string) => `tenant:${tenantId}`

export function declareCatalog(cache: Cache, db: CatalogDb) {
  const products = cache.namespace('product', {
    // → catalog-demo:product:v1:tenant:acme:product:42:currency=EUR:locale=de
    key: 'tenant:{tenantId}:product:{productId}',
    // A product's name depends on the locale and its price on the currency: both are part of the key, and a read
    // that forgets one is a type error (and a typed runtime error), never a shared entry.
    dimensions: ['locale', 'currency'],
    schemaVersion: 1,
    // Short on purpose, so the dashboard shows entries expiring, refreshing and being served stale.
    ttl: '10s',
    jitter: '2s',
    // Past its TTL a value may still answer for 5 minutes: at once while it refreshes in the background
    // (stale-while-revalidate), or when the database fails or is slower than the soft timeout (fail-safe).
    staleFor: '5m',
    timeouts: { soft: '150ms', hard: '3s' },
    refreshAhead: 0.8,
    // Writes broadcast on the bus; whatever happens to a message, no process serves an L1 copy older than 5 s.
    consistency: 'bounded',
    maxStaleness: '5s',
    hotKeys: { track: 10 },
    // At most 16 queries at once from this process; past that, answer stale where a stale value exists.
    source: { maxConcurrent: 16, overflow: 'stale' },
    owner: 'team-catalog',
    description: 'One product as shown to a shopper: localized text and the price in one currency.',
    load: ({ tenantId, productId, locale, currency }: ProductParams) =>
      db.product(tenantId, productId, locale, currency),
    tags: ({ tenantId, productId }) => [tenantTag(tenantId), productTag(tenantId, productId)],
  })

  const pages = cache.namespace('product-page', {
    key: 'tenant:{tenantId}:page:{page}',
    dimensions: ['locale', 'currency'],
    schemaVersion: 1,
    ttl: '30s',
    jitter: '5s',
    staleFor: '5m',
    timeouts: { soft: '150ms', hard: '3s' },
    owner: 'team-catalog',
    description: 'A page of the product list, in one locale and currency.',
    load: ({ tenantId, page, locale, currency }: PageParams) => db.page(tenantId, page, locale, currency),
    // A page is tagged with each product it shows, so updating a product drops the pages that list it too.
    tags: ({ tenantId }, value) => [
      tenantTag(tenantId),
      ...value.items.map((product) => productTag(tenantId, product.id)),
    ],
  })

  return { products, pages }
}
