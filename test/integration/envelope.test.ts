import { channelNames, createCache, type CacheOptions, type DecodeErrorMessage } from 'stratacache'
import { redisStore } from 'stratacache/redis'
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest'
import { rawClient, recordChannel, type RawClient } from '../chaos/support.js'

const url = inject('redisUrl')
const SERVICE = 'it-envelope'
const closers: (() => Promise<void>)[] = []
let raw: RawClient

beforeAll(async () => {
  raw = await rawClient(url)
})
afterAll(async () => {
  await raw.close()
})
afterEach(async () => {
  await Promise.all(closers.splice(0).map((close) => close()))
})

function newCache(options: Partial<CacheOptions> = {}) {
  const cache = createCache({ service: SERVICE, l2: redisStore({ url }), timeouts: { l2: '2s' }, ...options })
  closers.push(() => cache.close())
  return cache
}

/** Waits for the background L2 write after a load and returns the raw bytes. */
async function bytesAt(key: string): Promise<Buffer> {
  await expect.poll(() => raw.exists(key)).toBe(1)
  const bytes = await raw.get(key)
  if (bytes === null) throw new Error(`${key} vanished`)
  return bytes
}

/** An envelope as another writer would produce it, for planting in Redis. */
function envelope(options: { schemaVersion: number; payload: string; now?: number; ttlMs?: number }): Buffer {
  const { schemaVersion, payload, now = Date.now(), ttlMs = 60_000 } = options
  const header = Buffer.alloc(33)
  header.write('SC', 0, 'latin1')
  header[2] = 1
  header[3] = 0
  header[4] = 1
  header.writeUInt32BE(schemaVersion, 5)
  header.writeDoubleBE(now, 9)
  header.writeDoubleBE(now + ttlMs, 17)
  header.writeDoubleBE(now + ttlMs, 25)
  return Buffer.concat([header, Buffer.from(payload, 'utf8')])
}

describe('the bytes stratacache writes to Redis', () => {
  it('stores an envelope: magic SC, format version 1, JSON serializer, the schema version, then the JSON value', async () => {
    const before = Date.now()
    const ns = newCache().namespace('shape', {
      key: 'item:{id}',
      ttl: '1m',
      schemaVersion: 7,
      load: ({ id }) => ({ id, name: 'widget' }),
    })
    await ns.get({ id: 1 })
    const key = ns.key({ id: 1 })
    expect(key).toBe(`${SERVICE}:shape:v7:item:1`)
    const bytes = await bytesAt(key)
    expect(bytes.subarray(0, 2).toString('latin1')).toBe('SC')
    expect(bytes[2]).toBe(1)
    expect(bytes[3]).toBe(0)
    expect(bytes[4]).toBe(1)
    expect(bytes.readUInt32BE(5)).toBe(7)
    const createdAt = bytes.readDoubleBE(9)
    const freshUntil = bytes.readDoubleBE(17)
    const staleUntil = bytes.readDoubleBE(25)
    expect(createdAt).toBeGreaterThanOrEqual(before)
    expect(createdAt).toBeLessThanOrEqual(Date.now())
    expect(freshUntil - createdAt).toBeGreaterThanOrEqual(60_000)
    expect(freshUntil - createdAt).toBeLessThanOrEqual(66_000)
    expect(staleUntil).toBeGreaterThanOrEqual(freshUntil)
    expect(JSON.parse(bytes.subarray(33).toString('utf8'))).toEqual({ id: 1, name: 'widget' })
  })

  it('gives the Redis key a PTTL between ttl and ttl + jitter', async () => {
    const ns = newCache().namespace('pttl-range', {
      key: 'item:{id}',
      ttl: '60s',
      jitter: '10s',
      load: ({ id }) => id,
    })
    const keys = [1, 2, 3, 4, 5].map((id) => ns.key({ id }))
    await ns.getMany([1, 2, 3, 4, 5].map((id) => ({ id })))
    for (const key of keys) {
      await bytesAt(key)
      const pttl = await raw.pTTL(key)
      // A few ms may pass between the write and the PTTL read.
      expect(pttl).toBeGreaterThan(60_000 - 1_000)
      expect(pttl).toBeLessThanOrEqual(70_000)
    }
  })

  it('uses exactly ttl + jitter as the PTTL when random() returns 1, and exactly ttl when it returns 0', async () => {
    const high = newCache({ random: () => 1 }).namespace('pttl-high', {
      key: 'item:{id}',
      ttl: '60s',
      jitter: '10s',
      load: () => 'high',
    })
    const low = newCache({ random: () => 0 }).namespace('pttl-low', {
      key: 'item:{id}',
      ttl: '60s',
      jitter: '10s',
      load: () => 'low',
    })
    await Promise.all([high.get({ id: 1 }), low.get({ id: 1 })])
    const highBytes = await bytesAt(high.key({ id: 1 }))
    const lowBytes = await bytesAt(low.key({ id: 1 }))
    expect(highBytes.readDoubleBE(25) - highBytes.readDoubleBE(9)).toBe(70_000)
    expect(lowBytes.readDoubleBE(25) - lowBytes.readDoubleBE(9)).toBe(60_000)
    const highTtl = await raw.pTTL(high.key({ id: 1 }))
    const lowTtl = await raw.pTTL(low.key({ id: 1 }))
    expect(highTtl).toBeGreaterThan(70_000 - 1_000)
    expect(highTtl).toBeLessThanOrEqual(70_000)
    expect(lowTtl).toBeGreaterThan(60_000 - 1_000)
    expect(lowTtl).toBeLessThanOrEqual(60_000)
  })

  it('writes the same TTL for a set as for a load', async () => {
    const ns = newCache({ random: () => 1 }).namespace('pttl-set', {
      key: 'item:{id}',
      ttl: '30s',
      jitter: '3s',
    })
    await ns.set({ id: 1 }, { via: 'set' })
    const pttl = await raw.pTTL(ns.key({ id: 1 }))
    expect(pttl).toBeGreaterThan(33_000 - 1_000)
    expect(pttl).toBeLessThanOrEqual(33_000)
  })
})

describe('bytes in Redis that are not a readable envelope', () => {
  const foreign: [string, Buffer][] = [
    ['random garbage', Buffer.from([0xde, 0xad, 0xbe, 0xef, 0x00, 0xff, 0x10, 0x20, 0x30, 0x40, 0x50])],
    ['a truncated envelope', envelope({ schemaVersion: 1, payload: '"abc"' }).subarray(0, 20)],
    ['an envelope of another schema version', envelope({ schemaVersion: 2, payload: '"from v2"' })],
    [
      'a JSON string another library wrote',
      Buffer.from(JSON.stringify({ value: 'written by another cache library', expires: 123 })),
    ],
    ['a short JSON string', Buffer.from('"hi"')],
  ]

  it.each(foreign)(
    'treats %s as a miss: counted, published on the decode-error channel, loaded and overwritten',
    async (label, bytes) => {
      const decodeErrors = recordChannel<DecodeErrorMessage>(channelNames.decodeError)
      closers.push(async () => decodeErrors.stop())
      let loads = 0
      const namespace = `foreign-${label.replace(/[^a-z]+/g, '-')}`
      const ns = newCache().namespace(namespace, {
        key: 'item:{id}',
        ttl: '1m',
        load: ({ id }) => {
          loads++
          return { id, fresh: true }
        },
      })
      const key = ns.key({ id: 1 })
      await raw.set(key, bytes)

      await expect(ns.get({ id: 1 })).resolves.toEqual({ id: 1, fresh: true })
      expect(loads).toBe(1)
      expect(ns.stats()).toMatchObject({ decodeErrors: 1, misses: 1, l2Hits: 0, loads: 1 })
      const published = decodeErrors.messages.filter((m) => m.namespace === namespace)
      expect(published).toHaveLength(1)
      expect(published[0]!.key).toBe(key)
      expect(published[0]!.error).toMatchObject({ code: 'ERR_STRATA_DECODE', key })

      // The loaded value replaces the foreign bytes in Redis.
      await expect.poll(async () => (await raw.get(key))?.subarray(0, 2).toString('latin1')).toBe('SC')
      const stored = (await raw.get(key))!
      expect(stored.readUInt32BE(5)).toBe(1)
      expect(JSON.parse(stored.subarray(33).toString('utf8'))).toEqual({ id: 1, fresh: true })
    },
  )

  it('reads foreign bytes as a miss in peek too, without loading', async () => {
    const decodeErrors = recordChannel<DecodeErrorMessage>(channelNames.decodeError)
    closers.push(async () => decodeErrors.stop())
    let loads = 0
    const ns = newCache().namespace('foreign-peek', {
      key: 'item:{id}',
      ttl: '1m',
      load: () => ++loads,
    })
    await raw.set(ns.key({ id: 1 }), Buffer.from('not an envelope at all, just text'))
    await expect(ns.peek({ id: 1 })).resolves.toBeUndefined()
    expect(loads).toBe(0)
    expect(ns.stats().decodeErrors).toBe(1)
    expect(decodeErrors.messages.filter((m) => m.namespace === 'foreign-peek')).toHaveLength(1)
  })
})
