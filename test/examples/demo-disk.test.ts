// The demo without Redis (`npm start` on a machine without one): the disk store is its L2, shared by two demo
// processes of the host, and the dashboard's numbers say so.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { diskStore } from 'stratacache/disk'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createDemo, type Demo } from '../../examples/demo/app.js'
import { CatalogDb, type ProductView } from '../../examples/demo/catalog-db.js'

let db: CatalogDb
let demo: Demo
/** A second process of the same service on the same host: its own L1, the shared disk L2 and its bus. */
let peer: Demo
let diskPath: string

beforeAll(async () => {
  db = await CatalogDb.open({ productsPerTenant: 100 })
  diskPath = mkdtempSync(join(tmpdir(), 'strata-demo-disk-'))
  const options = { db, diskPath, service: 'demo-disk', productsPerTenant: 100, log: () => {} }
  demo = await createDemo(options)
  peer = await createDemo(options)
  await Promise.all([demo.cache.connect(), peer.cache.connect()])
}, 30_000)

afterAll(async () => {
  await demo?.close()
  await peer?.close()
  await db?.close()
  if (diskPath !== undefined) rmSync(diskPath, { recursive: true, force: true })
})

describe('demo on the disk store', () => {
  it('answers a product loaded by another process of the host from disk, without a database query', async () => {
    const url = '/api/tenants/acme/products/7?locale=en&currency=EUR'
    const first = await demo.app.inject({ method: 'GET', url })
    expect(first.statusCode).toBe(200)
    // The loaded value reaches the disk in the background: wait until it is there, as another process sees it.
    const raw = diskStore({ path: diskPath, maxBytes: 1024 * 1024 })
    await raw.connect()
    await expect
      .poll(async () => {
        // The entry itself, not its lock or version key (`…#lock`, `…#v`), which exist before it lands.
        const { keys } = await raw.scan('demo-disk:product:*', '0', 1_000)
        return keys.filter((key) => !key.includes('#')).length
      })
      .toBeGreaterThan(0)
    await raw.close()
    const before = db.queries
    const second = await peer.app.inject({ method: 'GET', url })
    expect(second.json<ProductView>()).toEqual(first.json<ProductView>())
    expect(db.queries - before).toBe(0)
    const stats = (await peer.app.inject({ method: 'GET', url: '/api/stats' })).json<{
      mode: { l2: string; l2Kind: string; l2Status: string }
    }>()
    expect(stats.mode).toMatchObject({ l2: `disk ${diskPath}`, l2Kind: 'disk', l2Status: 'ready' })
  })

  it('shows an update made through one process in the other at once (the bus on one host)', async () => {
    const url = '/api/tenants/acme/products/9?locale=en&currency=EUR'
    await demo.app.inject({ method: 'GET', url })
    await peer.app.inject({ method: 'GET', url })
    const update = await demo.app.inject({
      method: 'PATCH',
      url: '/api/tenants/acme/products/9?locale=en&currency=EUR',
      payload: { name: 'Renamed on disk' },
    })
    expect(update.statusCode).toBe(200)
    await expect
      .poll(async () => (await peer.app.inject({ method: 'GET', url })).json<ProductView>().name)
      .toBe('Renamed on disk')
  })
})
