// The demo's PGlite source: seeded on first start, then started from the snapshot it left, and a snapshot that
// does not load is replaced rather than trusted.
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { CatalogDb, snapshotName } from '../../examples/demo/catalog-db.js'

const dir = mkdtempSync(join(tmpdir(), 'strata-demo-db-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

describe('the demo catalog on PGlite', () => {
  it('replaces a snapshot that does not load, then starts from the new one with the seeded data', async () => {
    const name = snapshotName(10)
    writeFileSync(join(dir, name), 'not a tarball')

    const fallback = await CatalogDb.open({ productsPerTenant: 10, snapshotDir: dir })
    expect(fallback.restored).toBe(false)
    expect((await fallback.page('acme', 1, 'en', 'EUR')).total).toBe(10)
    await fallback.close()

    const warm = await CatalogDb.open({ productsPerTenant: 10, snapshotDir: dir })
    try {
      expect(warm.restored).toBe(true)
      expect((await warm.page('globex', 1, 'de', 'EUR')).total).toBe(10)
      expect(await warm.product('initech', 10, 'fr', 'GBP')).toMatchObject({ name: 'Produit tools #10' })
      expect(readdirSync(dir)).toEqual([name]) // no partial file left behind
    } finally {
      await warm.close()
    }
  }, 60_000)
})
