// The demo as one region of two, on two real redis-servers: `npm start`'s program with DEMO_REGION and DEMO_PEERS
// (eu-west), and the demo app in this process as the other region (us-east). /api/stats carries the Regions block
// the dashboard's panel draws; an update in one region reaches the other's cache, and a split between them heals
// with its report (how long, what was replayed, how long converging took) in us-east's Regions block.
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { createDemo, parseDemoPeers, type Demo, type DemoRegionPeer } from '../../examples/demo/app.js'
import { CatalogDb, type ProductView } from '../../examples/demo/catalog-db.js'
import { spawnDemo, type RunningDemo } from '../../examples/demo/spawn-demo.js'
import { startProxy, type TcpProxy } from '../chaos/tcp-proxy.js'
import { startRedis, type RedisServer } from '../helpers/redis-server.js'

interface RegionsBlock {
  region: string
  relaying: boolean
  peers: DemoRegionPeer[]
}

let eu: RedisServer
let us: RedisServer
/** us-east's link to eu-west's Redis (its relay reads eu-west's outbox through it): cut to split the regions. */
let euLink: TcpProxy
let euDemo: RunningDemo
let usDb: CatalogDb
let usDemo: Demo

beforeAll(async () => {
  eu = await startRedis()
  us = await startRedis()
  euLink = await startProxy(eu.port)
  usDb = await CatalogDb.open({ productsPerTenant: 100 })
  usDemo = await createDemo({
    db: usDb,
    redisUrl: us.url,
    service: 'catalog-demo',
    productsPerTenant: 100,
    log: () => {},
    region: 'us-east',
    peers: [{ region: 'eu-west', url: euLink.url }],
    // A split seen within 3 s of the cut (the default is 5 s): eu-west, a heartbeat a second, stays well inside it.
    regionTiming: { heartbeat: '200ms', splitAfter: '3s' },
  })
  await usDemo.cache.connect()
  euDemo = await spawnDemo({
    // Port 0: the demo binds whichever port is free and prints its address, which spawnDemo reads. A free port
    // found here could be taken by another process in the seconds before the demo binds it.
    PORT: '0',
    REDIS_URL: eu.url,
    DEMO_REGION: 'eu-west',
    DEMO_PEERS: `us-east=${us.url}`,
  })
}, 60_000)

afterAll(async () => {
  await euDemo?.stop()
  await usDemo?.close()
  await usDb?.close()
  await euLink?.close()
  await eu?.stop()
  await us?.stop()
})

async function usPeer(): Promise<DemoRegionPeer> {
  const stats = (await usDemo.app.inject({ method: 'GET', url: '/api/stats' })).json<{
    regions: RegionsBlock
  }>()
  return stats.regions.peers[0]!
}

async function euStats(): Promise<{ regions: RegionsBlock | null }> {
  const response = await fetch(`${euDemo.url}/api/stats`)
  return (await response.json()) as { regions: RegionsBlock | null }
}

describe('demo as a region', () => {
  it('says so at start and carries a Regions block in /api/stats: relay lag, split state, backlog, last split', async () => {
    await vi.waitFor(
      async () => {
        expect(euDemo.output()).toContain('region: eu-west, peers: us-east')
        const { regions } = await euStats()
        expect(regions).toMatchObject({ region: 'eu-west', relaying: true })
        expect(regions!.peers).toHaveLength(1)
        const peer = regions!.peers[0]!
        expect(peer).toMatchObject({ region: 'us-east', split: false, splits: 0, overflows: 0 })
        // The relay has read us-east's outbox at least once: it counted the backlog.
        expect(peer.backlog).toBeTypeOf('number')
        expect(peer.lagMs).toBeTypeOf('number')
        expect(peer.heardAgoMs).toBeLessThan(5_000)
        expect(peer).toHaveProperty('lastSplit', null)
      },
      { timeout: 15_000, interval: 200 },
    )
    // us-east started before eu-west (whose start takes seconds): it may count as split from it until eu-west's
    // first heartbeat is relayed.
    await vi.waitFor(
      async () => {
        const usStats = (await usDemo.app.inject({ method: 'GET', url: '/api/stats' })).json<{
          regions: RegionsBlock
        }>()
        expect(usStats.regions).toMatchObject({
          region: 'us-east',
          peers: [{ region: 'eu-west', split: false }],
        })
      },
      { timeout: 15_000, interval: 200 },
    )
  })

  it("relays an update made in us-east to eu-west's cache (each region has its own database copy here)", async () => {
    const url = '/api/tenants/acme/products/5?locale=en&currency=EUR'
    const before = (await (await fetch(`${euDemo.url}${url}`)).json()) as ProductView
    // eu-west's copy is cached now; us-east changes the product (in its database, which eu-west's does not share:
    // the name eu-west reloads is its own, so the test asserts the reload, not the new name).
    const queries = async () =>
      ((await (await fetch(`${euDemo.url}/api/stats`)).json()) as { totals: { sourceQueries: number } })
        .totals.sourceQueries
    const cached = await queries()
    await fetch(`${euDemo.url}${url}`)
    expect(await queries()).toBe(cached)
    const patch = await usDemo.app.inject({ method: 'PATCH', url, payload: { name: 'Renamed in us-east' } })
    expect(patch.statusCode).toBe(200)
    // The relayed invalidation drops eu-west's copy: its next read goes to its database.
    await vi.waitFor(
      async () => {
        await fetch(`${euDemo.url}${url}`)
        expect(await queries()).toBeGreaterThan(cached)
      },
      { timeout: 10_000, interval: 100 },
    )
    expect(before.id).toBe(5)
  })

  it('reports a healed split in /api/stats: how long it lasted, the changes replayed, and how long converging took', async () => {
    // us-east may have counted as split until eu-west's first heartbeat (see above): start from a connected state.
    await vi.waitFor(async () => expect((await usPeer()).split).toBe(false), {
      timeout: 15_000,
      interval: 100,
    })
    const splitsBefore = (await usPeer()).splits
    await euLink.cut()
    await vi.waitFor(async () => expect((await usPeer()).split).toBe(true), {
      timeout: 15_000,
      interval: 100,
    })
    // A change in eu-west during the split: queued in its outbox, replayed in us-east after the heal.
    const patch = await fetch(`${euDemo.url}/api/tenants/acme/products/7?locale=en&currency=EUR`, {
      method: 'PATCH',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'Renamed in eu-west during a split' }),
    })
    expect(patch.status).toBe(200)
    await euLink.heal()
    const healed = await vi.waitFor(
      async () => {
        const peer = await usPeer()
        expect(peer.split).toBe(false)
        expect(peer.splits).toBe(splitsBefore + 1)
        return peer
      },
      { timeout: 20_000, interval: 100 },
    )
    const last = healed.lastSplit!
    expect(last).toEqual({
      durationMs: expect.any(Number) as number,
      replayed: expect.any(Number) as number,
      convergeMs: expect.any(Number) as number,
    })
    expect(last.replayed).toBeGreaterThanOrEqual(1)
    // Converging is the end of the split: from the first change read again to the last missed one applied.
    expect(last.convergeMs).toBeGreaterThanOrEqual(0)
    expect(last.convergeMs).toBeLessThanOrEqual(last.durationMs)
    expect(Number.isInteger(last.convergeMs) && Number.isInteger(last.durationMs)).toBe(true)
  }, 60_000)

  it('parses DEMO_PEERS and refuses a pair that is not region=redis-url', () => {
    expect(parseDemoPeers('us-east=redis://127.0.0.1:6380, ap=rediss://h:1')).toEqual([
      { region: 'us-east', url: 'redis://127.0.0.1:6380' },
      { region: 'ap', url: 'rediss://h:1' },
    ])
    expect(() => parseDemoPeers('us-east')).toThrow(/DEMO_PEERS.*"us-east"/)
    expect(() => parseDemoPeers('=redis://x')).toThrow(/DEMO_PEERS/)
  })
})
