// The region-split drill's own measuring instrument (RawRegions) on real redis-servers: what it reports as backlog,
// entries behind the source and convergence is what the test put in each region's Redis through a real cache.
import { createCache, type Cache } from 'stratacache'
import { redisStore } from 'stratacache/redis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { RawRegions } from '../../src/cli/drill/region-split.js'
import { sourceKey } from '../../src/cli/drill/workload.js'
import { encodeOutboxEntry } from '../../src/regions/outbox-wire.js'
import { regionKeys } from '../../src/regions/region-relay.js'
import { rawClient, type RawClient } from '../chaos/support.js'
import { startRedis, type RedisServer } from '../helpers/redis-server.js'

const SERVICE = 'probe'
const servers: RedisServer[] = []
const raws: RawClient[] = []
const caches: Cache[] = []

beforeAll(async () => {
  for (let i = 0; i < 3; i++) servers.push(await startRedis())
  for (const server of servers) raws.push(await rawClient(server.url))
})
afterAll(async () => {
  await Promise.all(caches.map((cache) => cache.close()))
  for (const raw of raws) raw.destroy()
  await Promise.all(servers.map((server) => server.stop()))
})

function regionCache(url: string) {
  const cache = createCache({ service: SERVICE, logger: false, l2: redisStore({ url }) })
  caches.push(cache)
  const ns = cache.namespace('product', {
    key: 'p:{id}',
    params: { id: 'string' },
    ttl: '1h',
    load: () => Promise.resolve({ drillVersion: 1 }),
  })
  return { cache, ns }
}

describe('the region-split drill’s raw probe', () => {
  it('counts the outbox backlog and the L2 entries behind the source, and sees them go', async () => {
    const [a, b, source] = servers as [RedisServer, RedisServer, RedisServer]
    const [rawA, , rawSource] = raws as [RawClient, RawClient, RawClient]
    const inA = regionCache(a.url)
    const inB = regionCache(b.url)
    await Promise.all([inA.cache.connect(), inB.cache.connect()])
    // Both regions hold version 1 of the key in L2; the source is at version 2 (a write b did not hear of).
    await inA.ns.get({ id: '7' })
    await inB.ns.get({ id: '7' })
    const key = inA.ns.key({ id: '7' })
    await rawSource.set(sourceKey(key), '2')
    // a's outbox for b: one invalidation of the namespace and one heartbeat (not counted).
    const stream = regionKeys(SERVICE, 'a').outbox('b')
    const sent = { region: 'a', sentAt: Date.now() }
    await rawA.xAdd(
      stream,
      '*',
      encodeOutboxEntry({ ...sent, relayed: { kind: 'keys', namespace: 'product', keys: ['p:7'] } }),
    )
    await rawA.xAdd(stream, '*', encodeOutboxEntry({ ...sent, relayed: { kind: 'heartbeat' } }))

    const probe = await RawRegions.open([a.url, b.url], source.url, SERVICE, [
      { name: 'product', prefix: inA.ns.prefix, schemaVersion: 1 },
    ])
    try {
      const snapshot = await probe.snapshot()
      expect(snapshot.backlog).toEqual([1])
      expect([...snapshot.versions[0]!]).toEqual([[key, 2]])

      const behind = await probe.watch(snapshot, Date.now() + 200, 25, 20)
      expect(behind.staleEntriesAtHeal).toEqual([2])
      expect(behind.entriesChecked[0]).toBeGreaterThanOrEqual(2)
      expect(behind.l2AgreedAt).toEqual([null])
      expect(behind.backlogDrainedAt).toBeNull()

      // The relay's work, done by hand: the entry dropped in both regions, the outbox acknowledged and emptied.
      await inA.ns.delete({ id: '7' })
      await inB.ns.delete({ id: '7' })
      await rawA.del(stream)
      const agreed = await probe.watch(snapshot, Date.now() + 2_000, 25, 80)
      expect(agreed.l2AgreedAt[0]).not.toBeNull()
      expect(agreed.backlogDrainedAt).not.toBeNull()
      expect(agreed.probes).toBe(1)

      // A region whose L2 holds the new version agrees too (not only an absent entry).
      await rawSource.set(sourceKey(key), '1')
      await inB.ns.get({ id: '7' })
      const again = await probe.watch(await probe.snapshot(), Date.now() + 2_000, 25, 80)
      expect(again.entriesChecked[0]).toBeGreaterThanOrEqual(1)
      expect(again.staleEntriesAtHeal).toEqual([0])
    } finally {
      probe.close()
    }
  }, 20_000)
})
