// The demo on a real PostgreSQL (the DATABASE_URL path, through `pg`): this machine runs one on 127.0.0.1:5432
// (trust auth, database `test`); STRATACACHE_TEST_DATABASE_URL points the test elsewhere. The demo keeps its
// tables in its own schema, created and seeded when missing.
import { randomBytes } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest'
import { createDemo, type Demo } from '../../examples/demo/app.js'
import { CatalogDb, type ProductView } from '../../examples/demo/catalog-db.js'

const url = process.env.STRATACACHE_TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test'
let db: CatalogDb
let demo: Demo

beforeAll(async () => {
  try {
    db = await CatalogDb.open({ databaseUrl: url, productsPerTenant: 100 })
  } catch (error) {
    throw new Error(
      `PostgreSQL at ${url} is not reachable (${error instanceof Error ? error.message : String(error)}); ` +
        'start one (apt-get install -y postgresql) or set STRATACACHE_TEST_DATABASE_URL',
      { cause: error },
    )
  }
  demo = await createDemo({
    db,
    redisUrl: inject('redisUrl'),
    service: `demo-pg-${randomBytes(4).toString('hex')}`,
    productsPerTenant: 100,
    log: () => {},
  })
  await demo.cache.connect()
}, 60_000)

afterAll(async () => {
  await demo?.close()
  await db?.close()
})

describe('demo API on PostgreSQL', () => {
  it('reads from PostgreSQL once, then from the cache; an update shows on the next read', async () => {
    expect(db.kind).toBe('postgres')
    const path = '/api/tenants/acme/products/11?locale=fr&currency=EUR'
    const before = db.queries
    const first = await demo.app.inject({ method: 'GET', url: path })
    const second = await demo.app.inject({ method: 'GET', url: path })
    expect(first.statusCode).toBe(200)
    expect(first.json<ProductView>()).toMatchObject({ tenantId: 'acme', id: 11, locale: 'fr' })
    expect(second.json()).toEqual(first.json())
    expect(db.queries - before).toBe(1)

    const name = `Nom ${randomBytes(3).toString('hex')}`
    const update = await demo.app.inject({ method: 'PATCH', url: path, payload: { name } })
    expect(update.statusCode).toBe(200)
    const after = await demo.app.inject({ method: 'GET', url: path })
    expect(after.json<ProductView>().name).toBe(name)
  })
})
