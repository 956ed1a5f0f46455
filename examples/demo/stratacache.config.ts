// The demo's cache as a config module for the CLI (`contract`, `inspect`, `drill`): the same service and namespaces
// as `npm start`, with Redis from REDIS_URL (none: L1 only). The catalog database opens on the first load only, so
// commands that read declarations (and the drill, which replaces the loaders) never start it.
//   NODE_OPTIONS='--import tsx' npx stratacache drill redis-restart --config examples/demo/stratacache.config.ts
import { createCache } from 'stratacache'
import { redisStore } from 'stratacache/redis'
import { declareCatalog } from './catalog-cache.js'
import { CatalogDb } from './catalog-db.js'

export default function config() {
  const url = process.env.REDIS_URL
  const cache = createCache({
    service: 'catalog-demo',
    l1: { maxEntries: 2_000 },
    ...(url === undefined || url === '' ? {} : { l2: redisStore({ url }) }),
  })
  let opened: Promise<CatalogDb> | undefined
  const db = () => (opened ??= CatalogDb.open())
  const lazy = {
    product: async (...args: Parameters<CatalogDb['product']>) => (await db()).product(...args),
    page: async (...args: Parameters<CatalogDb['page']>) => (await db()).page(...args),
  }
  declareCatalog(cache, lazy as CatalogDb)
  return cache
}
