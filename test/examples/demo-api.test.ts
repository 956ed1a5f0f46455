// The demo catalog API against PGlite and a real redis-server: reads are cached, updates show at once, purges
// purge, /metrics parses, and a simulated Redis outage is absorbed.
import { randomBytes } from 'node:crypto'
import { afterAll, beforeAll, beforeEach, describe, expect, inject, it, vi } from 'vitest'
import { createDemo, type Demo } from '../../examples/demo/app.js'
import { CatalogDb, type ProductPage, type ProductView } from '../../examples/demo/catalog-db.js'

let db: CatalogDb
let demo: Demo
/** A second process of the same service on the same Redis: its own L1, the shared L2 and bus. */
let peer: Demo
const purges: string[] = []

beforeAll(async () => {
  // A smaller seed than the demo's 1,000 products per tenant keeps the file fast; the queries are the same.
  db = await CatalogDb.open({ productsPerTenant: 100 })
  const service = `demo-test-${randomBytes(4).toString('hex')}`
  const options = {
    db,
    redisUrl: inject('redisUrl'),
    service,
    productsPerTenant: 100,
    log: purges.push.bind(purges),
  }
  demo = await createDemo(options)
  peer = await createDemo(options)
  await Promise.all([demo.cache.connect(), peer.cache.connect()])
}, 30_000)

afterAll(async () => {
  await demo?.close()
  await peer?.close()
  await db?.close()
})

beforeEach(async () => {
  db.slowdownMs = 0
  demo.l2?.setOutage(false)
  await post(demo, '/api/admin/bypass', { on: false })
  await post(demo, '/api/admin/purge', { namespace: 'all', reason: 'test isolation' })
})

const get = async <T>(d: Demo, url: string) => {
  const response = await d.app.inject({ method: 'GET', url })
  return { status: response.statusCode, body: response.json<T>() }
}
const post = (d: Demo, url: string, payload: object) => d.app.inject({ method: 'POST', url, payload })

/** Runs `work` and returns what it resolved to and how many queries the database received meanwhile. */
async function counted<T>(work: () => Promise<T>): Promise<[T, number]> {
  const before = db.queries
  const result = await work()
  return [result, db.queries - before]
}

describe('demo API: reads', () => {
  it('reads a product from the database once, then from the cache', async () => {
    const url = '/api/tenants/acme/products/42?locale=de&currency=USD'
    const [first, firstQueries] = await counted(() => get<ProductView>(demo, url))
    const [second, secondQueries] = await counted(() => get<ProductView>(demo, url))
    expect(first.status).toBe(200)
    expect(first.body).toMatchObject({ tenantId: 'acme', id: 42, locale: 'de', price: { currency: 'USD' } })
    expect(first.body.name).toMatch(/^Produkt /)
    expect(firstQueries).toBe(1)
    expect(second.body).toEqual(first.body)
    expect(secondQueries).toBe(0)
    expect(demo.cache.stats().namespaces.product!.l1Hits).toBeGreaterThanOrEqual(1)
  })

  it('keeps each locale and currency in its own entry', async () => {
    const en = await get<ProductView>(demo, '/api/tenants/acme/products/7?locale=en&currency=EUR')
    const fr = await get<ProductView>(demo, '/api/tenants/acme/products/7?locale=fr&currency=GBP')
    expect(en.body.name).toMatch(/^Product /)
    expect(fr.body.name).toMatch(/^Produit /)
    expect(fr.body.price.currency).toBe('GBP')
    expect(fr.body.price.amountCents).not.toBe(en.body.price.amountCents)
  })

  it('serves a product another process loaded from L2, without a database query', async () => {
    const url = '/api/tenants/globex/products/3?locale=en&currency=EUR'
    await get(demo, url)
    const [fromPeer, queries] = await counted(() => get<ProductView>(peer, url))
    expect(fromPeer.body.id).toBe(3)
    expect(queries).toBe(0)
  })

  it('answers 404 for a missing product and caches the absence', async () => {
    const url = '/api/tenants/acme/products/999999'
    const [first, firstQueries] = await counted(() => get(demo, url))
    const [second, secondQueries] = await counted(() => get(demo, url))
    expect([first.status, second.status]).toEqual([404, 404])
    expect([firstQueries, secondQueries]).toEqual([1, 0])
  })

  it('lists a page of products, cached like a product', async () => {
    const url = '/api/tenants/initech/products?page=2&locale=de'
    const [page, firstQueries] = await counted(() => get<ProductPage>(demo, url))
    const [, secondQueries] = await counted(() => get<ProductPage>(demo, url))
    expect(page.body.total).toBe(100)
    expect(page.body.items.map((p) => p.id)).toEqual(Array.from({ length: 20 }, (_, i) => 21 + i))
    expect(firstQueries).toBe(2) // the rows and the count
    expect(secondQueries).toBe(0)
  })

  it('refuses an unknown locale with a 400 that says what is allowed', async () => {
    const response = await get<{ message: string }>(demo, '/api/tenants/acme/products/1?locale=xx')
    expect(response.status).toBe(400)
    expect(response.body.message).toContain('allowed values')
  })

  it('sends every read to the database while the cache is bypassed', async () => {
    await post(demo, '/api/admin/bypass', { on: true })
    const url = '/api/tenants/acme/products/5'
    const [, queries] = await counted(async () => {
      for (let i = 0; i < 3; i++) await get(demo, url)
    })
    expect(queries).toBe(3)
  })
})

describe('demo API: updates', () => {
  it('shows an update on the next read: every variant, the pages listing it, and the other process', async () => {
    const base = '/api/tenants/acme/products/12'
    const pageUrl = '/api/tenants/acme/products?page=1&currency=USD'
    // Fill both processes' caches with the old values first.
    for (const d of [demo, peer]) {
      await get(d, `${base}?locale=de&currency=USD`)
      await get(d, `${base}?locale=en&currency=USD`)
      await get(d, pageUrl)
    }
    const response = await demo.app.inject({
      method: 'PATCH',
      url: `${base}?locale=de&currency=USD`,
      payload: { name: 'Neuer Name', amountCents: 4_321 },
    })
    expect(response.statusCode).toBe(200)
    expect(response.json()).toMatchObject({ cache: 'invalidated', product: { name: 'Neuer Name' } })

    const de = await get<ProductView>(demo, `${base}?locale=de&currency=USD`)
    const en = await get<ProductView>(demo, `${base}?locale=en&currency=USD`)
    const page = await get<ProductPage>(demo, pageUrl)
    expect(de.body).toMatchObject({ name: 'Neuer Name', price: { amountCents: 4_321 } })
    expect(en.body).toMatchObject({ name: expect.stringMatching(/^Product /), price: { amountCents: 4_321 } })
    expect(page.body.items.find((p) => p.id === 12)?.price.amountCents).toBe(4_321)
    // The peer drops its L1 copies when the bus message arrives: within the namespace's 5 s bound at most.
    await vi.waitFor(
      async () => {
        const fromPeer = await get<ProductView>(peer, `${base}?locale=de&currency=USD`)
        expect(fromPeer.body.name).toBe('Neuer Name')
      },
      { timeout: 5_000, interval: 20 },
    )
  })

  it('replaces all fields with PUT and refuses a PUT that leaves one out', async () => {
    const url = '/api/tenants/globex/products/8?locale=fr&currency=EUR'
    const full = { name: 'Nom', description: 'Desc', amountCents: 100 }
    const ok = await demo.app.inject({ method: 'PUT', url, payload: full })
    const partial = await demo.app.inject({ method: 'PUT', url, payload: { name: 'Nom' } })
    expect(ok.json()).toMatchObject({
      product: { name: 'Nom', description: 'Desc', price: { amountCents: 100 } },
    })
    expect(partial.statusCode).toBe(400)
  })

  it('answers 404 when updating a product that does not exist, and 400 for unknown fields', async () => {
    const missing = await demo.app.inject({
      method: 'PATCH',
      url: '/api/tenants/acme/products/999999',
      payload: { name: 'x' },
    })
    const unknown = await demo.app.inject({
      method: 'PATCH',
      url: '/api/tenants/acme/products/1',
      payload: { colour: 'red' },
    })
    expect(missing.statusCode).toBe(404)
    expect(unknown.statusCode).toBe(400)
  })
})

describe('demo API: operations', () => {
  it('purges a namespace: the next read goes to the database again, here and in the other process', async () => {
    const url = '/api/tenants/acme/products/20'
    await get(demo, url)
    await get(peer, url)
    const response = await post(demo, '/api/admin/purge', { namespace: 'product', reason: 'price import' })
    // At least this product; the two processes' hot-key refreshes may have stored others since the last purge.
    expect(response.json()).toMatchObject({ purged: { namespace: 'product' } })
    expect(response.json().deletedFromL2).toBeGreaterThanOrEqual(1)
    expect(purges.at(-1)).toBe('purge namespace=product reason="price import"')
    const [, queries] = await counted(() => get(demo, url))
    expect(queries).toBe(1)
    await vi.waitFor(async () => expect((await counted(() => get(peer, url)))[1]).toBe(0), { timeout: 5_000 })
  })

  it('purges by tag: one tenant goes, another stays', async () => {
    await get(demo, '/api/tenants/acme/products/30')
    await get(demo, '/api/tenants/globex/products/30')
    const response = await post(demo, '/api/admin/purge', { tag: 'tenant:acme', reason: 'tenant re-import' })
    expect(response.json().deletedFromL2).toBeGreaterThanOrEqual(1)
    const [, acme] = await counted(() => get(demo, '/api/tenants/acme/products/30'))
    const [, globex] = await counted(() => get(demo, '/api/tenants/globex/products/30'))
    expect([acme, globex]).toEqual([1, 0])
  })

  it('refuses a purge without a reason', async () => {
    const response = await post(demo, '/api/admin/purge', { namespace: 'all' })
    expect(response.statusCode).toBe(400)
    expect(response.json().message).toContain('reason')
  })

  it('serves /metrics in the Prometheus text format, counting the reads', async () => {
    await get(demo, '/api/tenants/acme/products/40')
    await get(demo, '/api/tenants/acme/products/40')
    const response = await demo.app.inject({ method: 'GET', url: '/metrics' })
    expect(response.headers['content-type']).toContain('text/plain')
    const samples = parsePrometheus(response.body)
    const hits = samples.find(
      (s) =>
        s.name === 'stratacache_hits_total' &&
        s.labels.cache_namespace === 'product' &&
        s.labels.tier === 'l1',
    )
    expect(hits?.value).toBeGreaterThanOrEqual(1)
    expect(samples.find((s) => s.name === 'stratacache_l2_up')?.value).toBe(1)
  })

  it('keeps answering through a simulated Redis outage, and uses Redis again after it', async () => {
    await post(demo, '/api/admin/outage', { on: true })
    const statuses: number[] = []
    // Distinct products: each read misses L1 and asks the frozen L2, until the circuit opens and skips it.
    for (let id = 50; id < 60; id++)
      statuses.push((await get(demo, `/api/tenants/acme/products/${id}`)).status)
    expect(statuses.every((s) => s === 200)).toBe(true)
    const during = demo.cache.stats()
    expect(during.l2?.circuit).toBe('open')
    expect(during.namespaces.product!.l2Errors).toBeGreaterThan(0)

    await post(demo, '/api/admin/outage', { on: false })
    // The circuit lets a probe through after its break (2 s) and closes when it succeeds.
    await vi.waitFor(
      async () => {
        await get(demo, `/api/tenants/acme/products/${60 + Math.floor(Math.random() * 30)}`)
        expect(demo.cache.stats().l2?.circuit).toBe('closed')
      },
      { timeout: 8_000, interval: 200 },
    )
  })

  it('runs a bounded in-process load and reports it in /api/stats', async () => {
    const started = await post(demo, '/api/admin/load', { seconds: 1, rate: 200 })
    expect(started.json()).toMatchObject({ running: true, rate: 200 })
    await vi.waitFor(() => expect(demo.load.status.running).toBe(false), { timeout: 10_000 })
    await demo.stats.sample()
    const stats = await get<{ load: { sent: number; errors: number }; samples: { requests: number }[] }>(
      demo,
      '/api/stats',
    )
    expect(stats.body.load.sent).toBeGreaterThan(0)
    expect(stats.body.load.sent).toBeLessThanOrEqual(200)
    expect(stats.body.load.errors).toBe(0)
    expect(stats.body.samples.reduce((sum, s) => sum + s.requests, 0)).toBeGreaterThan(0)
    // Not a region (no DEMO_REGION): no Regions panel.
    expect((await get<{ regions: unknown }>(demo, '/api/stats')).body.regions).toBeNull()
  })

  it('feeds the dashboard no hit ratio while the cache is bypassed: bypassed reads are counted apart, never as a tier', async () => {
    type Fed = {
      requests: number
      bypassed: number
      reads: { l1: number; l2: number; miss: number }
      hitRatio: null | object
    }
    /** The samples /api/stats gives the dashboard for the requests `work` sends (a fresh sample is taken after). */
    const fed = async (work: () => Promise<void>): Promise<Fed[]> => {
      await vi.waitFor(async () => expect(await demo.stats.sample()).toBeDefined())
      const since = Date.now()
      await work()
      await vi.waitFor(async () => expect(await demo.stats.sample()).toBeDefined())
      const stats = await get<{ samples: (Fed & { t: number })[] }>(demo, '/api/stats')
      // Strictly after: the sample taken just before `since` may carry the same millisecond.
      return stats.body.samples.filter((s) => s.t > since)
    }
    const reads = async () => {
      for (let id = 30; id < 40; id++) await get(demo, `/api/tenants/acme/products/${id}`)
      await get(demo, '/api/tenants/acme/products?page=3')
    }
    await reads() // cached now: with the cache on, these would be hits in L1

    await post(demo, '/api/admin/bypass', { on: true })
    const bypassed = await fed(reads)
    expect(bypassed.reduce((sum, s) => sum + s.requests, 0)).toBe(11)
    expect(bypassed.reduce((sum, s) => sum + s.bypassed, 0)).toBe(11)
    for (const sample of bypassed) {
      expect(sample.reads).toEqual({ l1: 0, l2: 0, miss: 0 })
      expect(sample.hitRatio).toBeNull()
    }

    await post(demo, '/api/admin/bypass', { on: false })
    const cached = await fed(reads)
    expect(cached.reduce((sum, s) => sum + s.bypassed, 0)).toBe(0)
    expect(cached.reduce((sum, s) => sum + s.reads.l1 + s.reads.l2 + s.reads.miss, 0)).toBe(11)
    expect(cached.some((s) => s.hitRatio !== null)).toBe(true)
  })

  it('gives no hit ratio for a second the bypass was switched off in, when its few cache reads sit at its edge', async () => {
    // Sampled by hand, so the switch and the reads fall in one sample.
    demo.stats.stop()
    try {
      for (let id = 50; id < 70; id++) await get(demo, `/api/tenants/acme/products/${id}`)
      await vi.waitFor(async () => expect(await demo.stats.sample()).toBeDefined())
      await post(demo, '/api/admin/bypass', { on: true })
      for (let id = 50; id < 60; id++) await get(demo, `/api/tenants/acme/products/${id}`)
      await post(demo, '/api/admin/bypass', { on: false })
      for (let id = 50; id < 52; id++) await get(demo, `/api/tenants/acme/products/${id}`)
      const edge = (await demo.stats.sample())!
      expect(edge.bypassed).toBe(10)
      expect(edge.reads.l1 + edge.reads.l2 + edge.reads.miss).toBe(2)
      expect(edge.hitRatio).toBeNull()
      // A second mostly on the cache keeps its ratio, over its cache reads only.
      await post(demo, '/api/admin/bypass', { on: true })
      await get(demo, '/api/tenants/acme/products/50')
      await post(demo, '/api/admin/bypass', { on: false })
      for (let id = 50; id < 70; id++) await get(demo, `/api/tenants/acme/products/${id}`)
      const mostlyCached = (await demo.stats.sample())!
      expect(mostlyCached.bypassed).toBe(1)
      expect(mostlyCached.reads.l1 + mostlyCached.reads.l2 + mostlyCached.reads.miss).toBe(20)
      expect(mostlyCached.hitRatio).not.toBeNull()
    } finally {
      demo.stats.start()
    }
  })

  it('serves its icon, so a browser gets no 404 for it', async () => {
    const icon = await demo.app.inject({ method: 'GET', url: '/favicon.svg' })
    expect(icon.statusCode).toBe(200)
    expect(icon.headers['content-type']).toBe('image/svg+xml')
    expect(icon.body).toContain('<svg')
    const legacy = await demo.app.inject({ method: 'GET', url: '/favicon.ico' })
    expect(legacy.statusCode).toBe(301)
    expect(legacy.headers.location).toBe('/favicon.svg')
  })

  it('refuses a load beyond its limits', async () => {
    const response = await post(demo, '/api/admin/load', { seconds: 3_600, rate: 1_000 })
    expect(response.statusCode).toBe(400)
  })
})

interface PromSample {
  name: string
  labels: Record<string, string>
  value: number
}

/** A strict reader of the text exposition format: every line is a comment, blank, or `name{labels} value`. */
function parsePrometheus(text: string): PromSample[] {
  const samples: PromSample[] = []
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('# HELP ') || line.startsWith('# TYPE ')) continue
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (-?[0-9.e+-]+|NaN|[+-]Inf)$/.exec(line)
    if (match === null) throw new Error(`not a Prometheus sample line: ${line}`)
    const labels: Record<string, string> = {}
    for (const pair of (match[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[pair[1]!] = pair[2]!
    }
    samples.push({ name: match[1]!, labels, value: Number(match[3]) })
  }
  return samples
}

describe('demo API: restarts', () => {
  it('starts warm after a restart: the hot keys its predecessor saved on close are L1 hits, without a query', async () => {
    const options = {
      db,
      redisUrl: inject('redisUrl'),
      service: `demo-warm-${randomBytes(4).toString('hex')}`,
      productsPerTenant: 100,
      log: () => {},
    }
    const hot = [1, 2, 3, 4, 5].map((id) => `/api/tenants/acme/products/${id}?locale=en&currency=EUR`)
    const first = await createDemo(options)
    await first.cache.connect()
    for (let round = 0; round < 3; round++) for (const url of hot) await get(first, url)
    await first.close() // as Ctrl-C in `npm start`: saves the hot keys in Redis

    const next = await createDemo(options)
    try {
      await next.cache.connect()
      const warm = await next.warmStart()
      expect(warm?.warmed).toBeGreaterThanOrEqual(hot.length)
      const [answers, queries] = await counted(() =>
        Promise.all(hot.map((url) => get<ProductView>(next, url))),
      )
      expect(answers.map((a) => a.body.id)).toEqual([1, 2, 3, 4, 5])
      expect(queries).toBe(0)
      const product = next.cache.stats().namespaces.product!
      expect({ l1Hits: product.l1Hits, l2Hits: product.l2Hits, misses: product.misses }).toEqual({
        l1Hits: hot.length,
        l2Hits: 0,
        misses: 0,
      })
    } finally {
      await next.close()
    }
  })
})

describe('demo API without Redis', () => {
  it('runs L1-only, says so in /api/stats, and refuses the outage drill', async () => {
    const alone = await createDemo({ db, productsPerTenant: 100, log: () => {} })
    try {
      const url = '/api/tenants/initech/products/77'
      const [, first] = await counted(() => get(alone, url))
      const [, second] = await counted(() => get(alone, url))
      expect([first, second]).toEqual([1, 0])
      const stats = await get<{ mode: { l2: string | null } }>(alone, '/api/stats')
      expect(stats.body.mode.l2).toBeNull()
      const outage = await post(alone, '/api/admin/outage', { on: true })
      expect(outage.statusCode).toBe(409)
      // Nothing to start warm from, and nothing to save on close.
      await expect(alone.warmStart()).resolves.toBeUndefined()
    } finally {
      await alone.close()
    }
  })
})
