import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createClient } from 'redis'
import {
  channelNames,
  createCache,
  jsonLinesAuditSink,
  type AuditRecord,
  type CacheOptions,
  type KeyRing,
  type SecurityMessage,
  type SerializeErrorMessage,
} from 'stratacache'
import { redisStore, redisStreamAuditSink } from 'stratacache/redis'
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest'
import { rawClient, recordChannel, type RawClient } from '../chaos/support.js'
import { startRedis } from '../helpers/redis-server.js'

const url = inject('redisUrl')
const SERVICE = 'it-dp'
const closers: (() => Promise<unknown>)[] = []
let raw: RawClient
const dir = mkdtempSync(join(tmpdir(), 'strata-dp-'))

const k1 = Buffer.alloc(32, 0x11)
const k2 = Buffer.alloc(32, 0x22)

beforeAll(async () => {
  raw = await rawClient(url)
})
afterAll(async () => {
  await raw.close()
  rmSync(dir, { recursive: true, force: true })
})
afterEach(async () => {
  await Promise.all(closers.splice(0).map((close) => close()))
})

/**
 * A cache over the shared test Redis, closed after the test; `l1: false` by default so reads go to L2. The L2
 * timeout is generous: these tests are about bytes, not latency, and must not fail on a busy machine.
 */
function newCache(options: Partial<CacheOptions> = {}) {
  const cache = createCache({
    service: SERVICE,
    l1: false,
    l2: redisStore({ url }),
    timeouts: { l2: '2s' },
    ...options,
  })
  closers.push(() => cache.close())
  return cache
}

function record<T>(channel: string) {
  const recorder = recordChannel<T>(channel)
  closers.push(async () => recorder.stop())
  return recorder
}

/** Waits for the background L2 write after a load and returns the raw bytes. */
async function bytesAt(key: string): Promise<Buffer> {
  await expect.poll(() => raw.exists(key)).toBe(1)
  const bytes = await raw.get(key)
  if (bytes === null) throw new Error(`${key} vanished`)
  return bytes
}

const customer = (id: string) => ({
  id,
  name: `Customer ${id}`,
  email: `${id}@example.com`,
  ssn: `SSN-${id}-987-65-4321`,
  cards: [{ number: `4111-${id}-1111-1111`, brand: 'visa' }],
})

describe('a personal namespace with redaction and encryption', () => {
  it('never writes a plaintext field to Redis, and answers the same redacted shape on a miss and on a hit', async () => {
    const ring: KeyRing = { active: 'k1', keys: { k1 } }
    const declare = (cache: ReturnType<typeof newCache>) =>
      cache.namespace('customer', {
        key: 'tenant:{tenantId}:customer:{id}',
        ttl: '5m',
        classification: 'personal',
        redact: ['ssn', 'cards[].number'],
        load: ({ id }) => customer(String(id)),
      })
    const writer = declare(newCache({ encryption: ring, compression: { threshold: 0 } }))
    const miss = await writer.get({ tenantId: 't1', id: 'c1' })
    expect(miss).toEqual({
      id: 'c1',
      name: 'Customer c1',
      email: 'c1@example.com',
      cards: [{ brand: 'visa' }],
    })

    const key = writer.key({ tenantId: 't1', id: 'c1' })
    const bytes = await bytesAt(key)
    // Not the redacted fields, and not any other field either: everything after the key id is ciphertext.
    for (const plaintext of [
      'SSN-c1',
      '4111-c1',
      'Customer c1',
      'c1@example.com',
      'visa',
      '"email"',
      '"name"',
    ]) {
      expect(bytes.includes(plaintext)).toBe(false)
    }
    expect(bytes[2]).toBe(2) // format version 2
    expect(bytes[3]! & 0b1000).toBe(0b1000) // encrypted
    expect(bytes.toString('latin1', 34, 36)).toBe('k1')

    // Another process (no L1) reads it from L2: the same shape as the miss.
    const reader = declare(newCache({ encryption: ring }))
    expect(await reader.get({ tenantId: 't1', id: 'c1' })).toEqual(miss)
    expect(reader.stats()).toMatchObject({ l2Hits: 1, loads: 0, untrustedValues: 0 })
  })
})

describe('encryption key rotation over a live cache', () => {
  it('reads values under the old key, writes new ones with the new key, and misses values of a retired key', async () => {
    const declare = (cache: ReturnType<typeof newCache>, tag: string) => {
      let loads = 0
      const ns = cache.namespace('rotating', {
        key: 'item:{id}',
        ttl: '5m',
        load: ({ id }) => {
          loads++
          return { id, by: tag }
        },
      })
      return { ns, loads: () => loads }
    }
    // Phase 1: every process runs with k1.
    const old = declare(newCache({ encryption: { active: 'k1', keys: { k1 } } }), 'old')
    await old.ns.get({ id: 1 })
    const key = old.ns.key({ id: 1 })
    expect((await bytesAt(key)).toString('latin1', 34, 36)).toBe('k1')

    // Phase 2: a rolled-out process knows k2 and makes it active, keeping k1 to read what is still cached.
    const rotated = declare(newCache({ encryption: { active: 'k2', keys: { k1, k2 } } }), 'rotated')
    expect(await rotated.ns.get({ id: 1 })).toEqual({ id: 1, by: 'old' })
    expect(rotated.loads()).toBe(0)
    await rotated.ns.set({ id: 2 }, { id: 2, by: 'rotated' })
    expect((await bytesAt(rotated.ns.key({ id: 2 }))).toString('latin1', 34, 36)).toBe('k2')
    // A process not rolled out yet cannot read k2 values: a miss (it loads), reported, never an exception.
    const events = record<SecurityMessage>(channelNames.security)
    expect(await old.ns.get({ id: 2 })).toEqual({ id: 2, by: 'old' })
    expect(old.ns.stats().untrustedValues).toBe(1)
    expect(events.messages).toContainEqual(
      expect.objectContaining({ namespace: 'rotating', problem: 'unknown-key', keyId: 'k2' }),
    )
    await old.ns.delete({ id: 2 })

    // Phase 3: k1 retired. Its values still in Redis are misses, reloaded and rewritten under k2.
    const retired = declare(newCache({ encryption: { active: 'k2', keys: { k2 } } }), 'retired')
    expect(await retired.ns.get({ id: 1 })).toEqual({ id: 1, by: 'retired' })
    expect(retired.ns.stats()).toMatchObject({ untrustedValues: 1, loads: 1 })
    await expect.poll(async () => (await raw.get(key))?.toString('latin1', 34, 36)).toBe('k2')
    expect(await retired.ns.get({ id: 1 })).toEqual({ id: 1, by: 'retired' })
    expect(retired.ns.stats()).toMatchObject({ l2Hits: 1, loads: 1 })
  })
})

describe('encryption key rotation inside one running cache', () => {
  it('swaps the key ring for every namespace at once, without a restart', async () => {
    const events = record<SecurityMessage>(channelNames.security)
    const cache = newCache({ encryption: { active: 'k1', keys: { k1 } } })
    let loads = 0
    const ns = cache.namespace('live', {
      key: 'item:{id}',
      ttl: '5m',
      load: ({ id }) => {
        loads++
        return { id }
      },
    })
    await ns.get({ id: 1 })
    const keyId = async (id: number) => (await bytesAt(ns.key({ id }))).toString('latin1', 34, 36)
    expect(await keyId(1)).toBe('k1')

    cache.setEncryptionKeys({ active: 'k2', keys: { k1, k2 } })
    expect(await ns.get({ id: 1 })).toEqual({ id: 1 }) // still under k1: read
    await ns.set({ id: 2 }, { id: 2 })
    expect(await keyId(2)).toBe('k2')
    expect(loads).toBe(1)

    cache.setEncryptionKeys({ active: 'k2', keys: { k2 } }) // k1 retired
    expect(await ns.get({ id: 1 })).toEqual({ id: 1 }) // a miss: reloaded
    expect(loads).toBe(2)
    expect(events.messages).toEqual([expect.objectContaining({ problem: 'unknown-key', keyId: 'k1' })])
    await expect.poll(() => keyId(1)).toBe('k2')

    // An invalid ring is refused and the current one stays.
    expect(() => cache.setEncryptionKeys({ active: 'k3', keys: { k2 } })).toThrow(
      expect.objectContaining({ option: 'setEncryptionKeys.active' }) as Error,
    )
    expect(await ns.get({ id: 2 })).toEqual({ id: 2 })
    expect(() => newCache().setEncryptionKeys({ active: 'k1', keys: { k1 } })).toThrow(
      expect.objectContaining({ option: 'encryption' }) as Error,
    )
  })
})

describe('ciphertext swapped between tenants', () => {
  it('fails to open under the other tenant’s key: a miss, a security event, the right tenant’s value', async () => {
    const events = record<SecurityMessage>(channelNames.security)
    const ns = newCache({ encryption: { active: 'k1', keys: { k1 } } }).namespace('account', {
      key: 'tenant:{tenantId}:account',
      ttl: '5m',
      load: ({ tenantId }) => ({ tenantId, balance: tenantId === 'a' ? 100 : 5 }),
    })
    await ns.get({ tenantId: 'a' })
    await ns.get({ tenantId: 'b' })
    const keyA = ns.key({ tenantId: 'a' })
    const keyB = ns.key({ tenantId: 'b' })
    const bytesA = await bytesAt(keyA)
    await bytesAt(keyB)
    // An attacker with write access to Redis copies tenant a's entry over tenant b's.
    await raw.set(keyB, bytesA, { PX: 60_000 })

    expect(await ns.get({ tenantId: 'b' })).toEqual({ tenantId: 'b', balance: 5 })
    expect(ns.stats()).toMatchObject({ untrustedValues: 1, decodeErrors: 0 })
    expect(events.messages).toEqual([
      expect.objectContaining({
        namespace: 'account',
        key: keyB,
        problem: 'tampered',
        keyId: 'k1',
        error: expect.objectContaining({ code: 'ERR_STRATA_UNTRUSTED_VALUE' }) as unknown,
      }),
    ])
    // Tenant a's own entry is untouched and still opens.
    expect(await ns.get({ tenantId: 'a' })).toEqual({ tenantId: 'a', balance: 100 })
  })

  it('refuses a flipped bit and a planted plaintext value the same way', async () => {
    const events = record<SecurityMessage>(channelNames.security)
    const ns = newCache({ encryption: { active: 'k1', keys: { k1 } } }).namespace('flip', {
      key: 'item:{id}',
      ttl: '5m',
      load: ({ id }) => ({ id, real: true }),
    })
    await ns.get({ id: 1 })
    const key = ns.key({ id: 1 })
    const bytes = Buffer.from(await bytesAt(key))
    bytes[bytes.byteLength - 20]! ^= 0x01
    await raw.set(key, bytes, { PX: 60_000 })
    expect(await ns.get({ id: 1 })).toEqual({ id: 1, real: true })

    // A plaintext envelope, valid in every other way, planted where only ciphertext belongs.
    const plain = await (async () => {
      const clear = newCache().namespace('flip', { key: 'item:{id}', ttl: '5m', encrypt: false })
      await clear.set({ id: 2 }, { id: 2, real: false })
      return raw.get(key.replace(/1$/, '2'))
    })()
    expect(plain?.[2]).toBe(1)
    expect(await ns.get({ id: 2 })).toEqual({ id: 2, real: true })
    expect(events.messages.map((m) => m.problem)).toEqual(['tampered', 'unencrypted'])
    expect(ns.stats().untrustedValues).toBe(2)
  })
})

describe('compression selected by size', () => {
  it('compresses values from the threshold up, stores smaller ones as plain version 1 JSON, and reads both', async () => {
    const ns = newCache({ compression: { threshold: 1024, algorithm: 'deflate' } }).namespace('sized', {
      key: 'item:{id}',
      ttl: '5m',
      load: ({ id }: { id: number }) => ({ id, text: 'lorem ipsum '.repeat(id) }),
    })
    const small = { id: 10 } // ~150 bytes of JSON
    const large = { id: 1000 } // ~12 KB of JSON
    await ns.getMany([small, large])
    const smallBytes = await bytesAt(ns.key(small))
    const largeBytes = await bytesAt(ns.key(large))
    expect(smallBytes[2]).toBe(1)
    expect(JSON.parse(smallBytes.subarray(33).toString())).toEqual({
      id: 10,
      text: 'lorem ipsum '.repeat(10),
    })
    expect(largeBytes[2]).toBe(2)
    expect(largeBytes[3]).toBe(0b0100)
    expect(largeBytes[33]).toBe(1) // deflate
    const json = JSON.stringify({ id: 1000, text: 'lorem ipsum '.repeat(1000) })
    expect(largeBytes.readUInt32BE(34)).toBe(Buffer.byteLength(json))
    expect(largeBytes.byteLength).toBeLessThan(json.length / 10)

    const reader = newCache({ compression: false }).namespace('sized', { key: 'item:{id}', ttl: '5m' })
    expect(await reader.getMany([small, large])).toEqual([
      JSON.parse(smallBytes.subarray(33).toString()),
      JSON.parse(json),
    ])
    expect(reader.stats()).toMatchObject({ l2Hits: 2, decodeErrors: 0 })
  })

  it('counts a planted zip bomb as a decode error, a miss, without inflating it', async () => {
    const { deflateSync } = await import('node:zlib')
    const ns = newCache({ maxValueBytes: 64 * 1024 }).namespace('bomb', {
      key: 'item:{id}',
      ttl: '5m',
      load: () => 'real',
    })
    const header = Buffer.alloc(33)
    header.write('SC', 0, 'latin1')
    header[2] = 2
    header[3] = 0b0100
    header[4] = 1
    header.writeUInt32BE(1, 5)
    const now = Date.now()
    header.writeDoubleBE(now, 9)
    header.writeDoubleBE(now + 60_000, 17)
    header.writeDoubleBE(now + 60_000, 25)
    const inner = Buffer.alloc(5)
    inner[0] = 1
    inner.writeUInt32BE(10, 1) // claims 10 bytes; inflates to 32 MiB
    await raw.set(
      ns.key({ id: 1 }),
      Buffer.concat([header, inner, deflateSync(Buffer.alloc(32 * 1024 * 1024, 0x20))]),
    )
    expect(await ns.get({ id: 1 })).toBe('real')
    expect(ns.stats()).toMatchObject({ decodeErrors: 1, loads: 1 })
  })
})

describe('values over maxValueBytes', () => {
  it('are served from the loader, counted, and never written to L2; set() refuses them', async () => {
    const errors = record<SerializeErrorMessage>(channelNames.serializeError)
    const ns = newCache({ maxValueBytes: 1000 }).namespace('big', {
      key: 'item:{id}',
      ttl: '5m',
      load: ({ id }: { id: number }) => 'x'.repeat(id),
    })
    expect(await ns.get({ id: 2000 })).toHaveLength(2000)
    expect(await ns.get({ id: 10 })).toHaveLength(10)
    await expect.poll(() => raw.exists(ns.key({ id: 10 }))).toBe(1)
    expect(await raw.exists(ns.key({ id: 2000 }))).toBe(0)
    expect(ns.stats()).toMatchObject({ oversized: 1, serializeErrors: 0, loads: 2 })
    expect(errors.messages).toContainEqual(
      expect.objectContaining({
        error: expect.objectContaining({ code: 'ERR_STRATA_VALUE_TOO_LARGE' }) as unknown,
      }),
    )
    await expect(ns.set({ id: 3 }, 'y'.repeat(5000))).rejects.toMatchObject({
      code: 'ERR_STRATA_VALUE_TOO_LARGE',
      key: ns.key({ id: 3 }),
      size: 5002,
      maxBytes: 1000,
    })
    expect(await raw.exists(ns.key({ id: 3 }))).toBe(0)
  })

  it('are said once per namespace in the log, naming the fix, then only counted', async () => {
    const warnings: { fields: Record<string, unknown>; message: string }[] = []
    const cache = newCache({
      maxValueBytes: 1000,
      l1: { maxEntries: 100 },
      logger: {
        info: () => {},
        error: () => {},
        warn: (fields, message) => void warnings.push({ fields: fields as Record<string, unknown>, message }),
      },
    })
    const big = cache.namespace('big', {
      key: 'item:{id}',
      ttl: '5m',
      load: ({ id }: { id: number }) => 'x'.repeat(id),
    })
    const odd = cache.namespace('odd', {
      key: 'item:{id}',
      ttl: '5m',
      load: ({ id }: { id: number }) => ({ n: BigInt(id) }),
    })
    for (const id of [2000, 3000, 4000]) expect(await big.get({ id })).toHaveLength(id)
    for (const id of [1, 2, 3]) expect((await odd.get({ id })).n).toBe(BigInt(id))
    expect(warnings.map((w) => [w.fields.namespace, w.fields.code])).toEqual([
      ['big', 'ERR_STRATA_VALUE_TOO_LARGE'],
      ['odd', 'ERR_STRATA_SERIALIZE'],
    ])
    expect(warnings[0]!.message).toMatch(
      /2002 bytes serialized, more than `maxValueBytes` \(1000\).*raise `maxValueBytes`.*kept in L1.*stats\(\)\.oversized/,
    )
    expect(warnings[1]!.message).toMatch(
      /could not be serialized: .*BigInt.*configure a `serializer`.*kept in L1.*stats\(\)\.serializeErrors/,
    )
    expect(big.stats()).toMatchObject({ oversized: 3 })
    expect(odd.stats()).toMatchObject({ serializeErrors: 3 })
    // Kept in L1 (entry-bounded): the next reads are hits, not loads.
    expect((await odd.get({ id: 1 })).n).toBe(1n)
    expect(odd.stats()).toMatchObject({ loads: 3, l1Hits: 1 })
  })
})

describe('the audit log of administrative purges', () => {
  it('a Redis stream record given up on while the client was disconnected is not written once it reconnects', async () => {
    const redis = await startRedis()
    closers.push(() => redis.stop())
    // A client of the user's, with node-redis's offline queue: commands sent while disconnected wait for the next
    // connection.
    const client = createClient({ url: redis.url, socket: { reconnectStrategy: () => 50 } })
    client.on('error', () => {})
    await client.connect()
    closers.push(() => client.close().catch(() => {}))
    const stream = `${SERVICE}:audit:offline`
    const cache = createCache({
      service: SERVICE,
      audit: redisStreamAuditSink({ client, stream }),
      timeouts: { audit: '200ms' },
    })
    closers.push(() => cache.close())
    const ns = cache.namespace('sessions', { key: 'session:{id}', ttl: '5m' })
    await ns.set({ id: 1 }, 'v')
    await redis.kill()
    await expect(cache.purge({ namespace: 'sessions', actor: 'bob', reason: 'INC-9' })).rejects.toMatchObject(
      {
        code: 'ERR_STRATA_AUDIT_WRITE',
        purged: false,
      },
    )
    expect(await ns.peek({ id: 1 })).toBe('v') // not purged
    await redis.restart()
    await expect.poll(() => client.isReady, { timeout: 5_000 }).toBe(true)
    // Commands run in order: once PING answers, anything queued before it has run.
    await client.ping()
    // No `requested` record for a purge that did not run.
    expect(await client.xLen(stream)).toBe(0)
  })

  it('records who, what, when, why and how many keys to a JSON lines file and to a Redis stream', async () => {
    const path = join(dir, 'purges.jsonl')
    const client = createClient({ url })
    client.on('error', () => {})
    await client.connect()
    closers.push(() => client.close())
    const stream = `${SERVICE}:audit:${Date.now()}`
    const fileSink = jsonLinesAuditSink(path)
    const streamSink = redisStreamAuditSink({ client, stream })
    // Both sinks: a tee is a three-line sink of your own.
    const cache = newCache({
      audit: { append: (r) => Promise.all([fileSink.append(r), streamSink.append(r)]).then(() => {}) },
    })
    const ns = cache.namespace('orders', {
      key: 'tenant:{tenantId}:order:{id}',
      ttl: '5m',
      tags: ({ tenantId }) => [`tenant:${tenantId}`],
      load: ({ tenantId, id }) => ({ tenantId, id }),
    })
    for (let id = 0; id < 5; id++) await ns.set({ tenantId: 't1', id }, { tenantId: 't1', id })
    await ns.set({ tenantId: 't2', id: 0 }, { tenantId: 't2', id: 0 })

    const byTag = await cache.purge({ tag: 'tenant:t1', actor: 'alice@ops', reason: 'DSR-42 erasure' })
    expect(byTag.keysDeleted).toBe(5)
    expect(await raw.exists(ns.key({ tenantId: 't1', id: 0 }))).toBe(0)
    expect(await raw.exists(ns.key({ tenantId: 't2', id: 0 }))).toBe(1)
    const sessions = cache.namespace('sessions', { key: 'session:{id}', ttl: '5m' })
    for (let id = 0; id < 3; id++) await sessions.set({ id }, { id })
    const whole = await cache.purge({ namespace: 'sessions', actor: 'bob', reason: 'INC-9 bad deploy' })
    expect(whole.keysDeleted).toBe(3)
    expect(await raw.exists(sessions.key({ id: 0 }))).toBe(0)

    const lines = readFileSync(path, 'utf8')
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l) as AuditRecord)
    expect(lines).toEqual([
      expect.objectContaining({
        id: byTag.id,
        phase: 'requested',
        actor: 'alice@ops',
        reason: 'DSR-42 erasure',
        target: { tag: 'tenant:t1' },
      }),
      expect.objectContaining({ id: byTag.id, phase: 'completed', keysDeleted: 5, service: SERVICE }),
      expect.objectContaining({
        id: whole.id,
        phase: 'requested',
        actor: 'bob',
        target: { namespace: 'sessions' },
      }),
      expect.objectContaining({ id: whole.id, phase: 'completed', keysDeleted: 3 }),
    ])
    for (const line of lines) expect(Math.abs(Date.parse(line.at) - Date.now())).toBeLessThan(60_000)

    const entries = await client.xRange(stream, '-', '+')
    expect((entries ?? []).map((e) => e.message)).toEqual([
      expect.objectContaining({
        id: byTag.id,
        phase: 'requested',
        actor: 'alice@ops',
        tag: 'tenant:t1',
        action: 'purge',
      }),
      expect.objectContaining({ id: byTag.id, phase: 'completed', keysDeleted: '5' }),
      expect.objectContaining({
        id: whole.id,
        phase: 'requested',
        namespace: 'sessions',
        reason: 'INC-9 bad deploy',
      }),
      expect.objectContaining({ id: whole.id, phase: 'completed', keysDeleted: '3' }),
    ])
    await client.del(stream)
  })

  it('records a failed purge (Redis gone) and rethrows its error', async () => {
    const records: AuditRecord[] = []
    const cache = createCache({
      service: SERVICE,
      l2: redisStore({ url: 'redis://127.0.0.1:1' }),
      timeouts: { l2: 50 },
      audit: { append: async (r) => void records.push(r) },
    })
    closers.push(() => cache.close())
    cache.namespace('gone', { key: 'x:{id}', ttl: '1m' })
    await expect(cache.purge({ namespace: 'gone', actor: 'a', reason: 'r' })).rejects.toMatchObject({
      code: expect.stringMatching(/^ERR_STRATA_L2_/) as unknown,
    })
    expect(records.map((r) => r.phase)).toEqual(['requested', 'failed'])
    expect(records[1]!.error).toMatch(/^ERR_STRATA_L2_/)
  })
})
