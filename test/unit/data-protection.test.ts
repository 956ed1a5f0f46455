import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import zlib from 'node:zlib'
import fc from 'fast-check'
import { afterAll, describe, expect, it } from 'vitest'
import {
  jsonLinesAuditSink,
  jsonSerializer,
  type AuditRecord,
  type AuditSink,
  type KeyRing,
} from 'stratacache'
import { ResolvedKeyRing } from '../../src/codecs/encryption.js'
import { encodeEnvelope, ENVELOPE_HEADER_BYTES } from '../../src/codecs/envelope.js'
import { Redactor } from '../../src/codecs/redaction.js'
import { cacheFactory } from '../helpers/caches.js'

const newCache = cacheFactory('unit-dp')
const ring: KeyRing = { active: 'k1', keys: { k1: Buffer.alloc(32, 1) } }
const dir = mkdtempSync(join(tmpdir(), 'strata-audit-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

describe('redaction paths', () => {
  const person = {
    name: 'Ada',
    user: { ssn: '123-45-6789', email: 'ada@example.com', address: { zip: '12345', city: 'London' } },
    cards: [
      { number: '4111111111111111', brand: 'visa' },
      { number: '5500000000000004', brand: 'mc' },
    ],
    tokens: ['t1', 't2'],
  }

  it('removes nested fields and fields of every array element', () => {
    const redactor = new Redactor(['user.ssn', 'user.address.zip', 'cards[].number'], 'redact')
    expect(redactor.apply(person)).toEqual({
      name: 'Ada',
      user: { email: 'ada@example.com', address: { city: 'London' } },
      cards: [{ brand: 'visa' }, { brand: 'mc' }],
      tokens: ['t1', 't2'],
    })
  })

  it('masks instead of removing when a mask is given, keeping the shape', () => {
    const redactor = new Redactor(
      { paths: ['user.ssn', 'cards[].number', 'tokens[]'], mask: '***' },
      'redact',
    )
    const out = redactor.apply(person)
    expect(out.user.ssn).toBe('***')
    expect(out.cards.map((c) => c.number)).toEqual(['***', '***'])
    expect(out.tokens).toEqual(['***', '***'])
  })

  it('steps into a top-level array with a leading []', () => {
    const redactor = new Redactor(['[].email'], 'redact')
    expect(redactor.apply([{ id: 1, email: 'a@b' }, { id: 2 }, 'x'])).toEqual([{ id: 1 }, { id: 2 }, 'x'])
  })

  it('never mutates its input and shares untouched branches', () => {
    const redactor = new Redactor(['user.ssn'], 'redact')
    const before = JSON.stringify(person)
    const out = redactor.apply(person)
    expect(JSON.stringify(person)).toBe(before)
    expect(out.cards).toBe(person.cards)
    expect(out).not.toBe(person)
    // Nothing to redact: the very same object back (no copy on the hot path).
    const other = { name: 'x' }
    expect(redactor.apply(other)).toBe(other)
    expect(redactor.apply(null)).toBeNull()
    expect(redactor.apply('text')).toBe('text')
  })

  it('leaves no declared field anywhere in any value (property)', () => {
    const redactor = new Redactor(['user.ssn', 'cards[].number'], 'redact')
    const value = fc.record({
      user: fc.record({ ssn: fc.string(), other: fc.jsonValue() }, { requiredKeys: [] }),
      cards: fc.array(fc.record({ number: fc.string(), brand: fc.string() }, { requiredKeys: [] })),
      rest: fc.jsonValue(),
    })
    fc.assert(
      fc.property(value, (v) => {
        const out = redactor.apply(v)
        expect(Object.hasOwn(out.user, 'ssn')).toBe(false)
        for (const card of out.cards) expect(Object.hasOwn(card, 'number')).toBe(false)
        expect(out.rest).toBe(v.rest)
      }),
    )
  })

  it.each([
    ['an empty list', []],
    ['an empty path', ['']],
    ['a path with a space', ['user ssn']],
    ['an empty segment', ['user..ssn']],
    ['a bare [] after the first segment', ['user.[]']],
    ['not a list', 'user.ssn'],
  ])('refuses %s', (_, paths) => {
    expect(() => new Redactor(paths as string[], 'ns.redact')).toThrow(
      expect.objectContaining({ code: 'ERR_STRATA_INVALID_OPTION', option: 'ns.redact' }) as Error,
    )
  })
})

describe('redaction of class instances and other non-plain objects', () => {
  class Card {
    constructor(
      public number: string,
      public brand: string,
    ) {}
    get last4(): string {
      return this.number.slice(-4)
    }
  }
  class Address {
    constructor(
      public zip: string,
      public city: string,
    ) {}
  }
  class User {
    readonly #note = 'private'
    constructor(
      public id: number,
      public ssn: string,
      public address: Address,
      public cards: Card[],
    ) {}
    /** A getter on the prototype that would hand the redacted field back if the instance were kept. */
    get taxId(): string {
      return this.ssn
    }
    note(): string {
      return this.#note
    }
  }
  const ada = () =>
    new User(1, '078-05-1120', new Address('12345', 'London'), [
      new Card('4111111111111111', 'visa'),
      new Card('5500000000000004', 'mc'),
    ])

  it('redacts a class instance, nested instances and arrays of instances as the plain objects JSON writes for them', () => {
    const redactor = new Redactor(['ssn', 'address.zip', 'cards[].number'], 'user.redact')
    const user = ada()
    const out = redactor.apply(user) as unknown as Record<string, unknown>
    expect(out).toStrictEqual({
      id: 1,
      address: { city: 'London' },
      cards: [{ brand: 'visa' }, { brand: 'mc' }],
    })
    // Plain objects all the way down the paths: no prototype getter is left to read a removed field through.
    expect(Object.getPrototypeOf(out)).toBe(Object.prototype)
    expect(out['taxId']).toBeUndefined()
    expect((out['cards'] as Record<string, unknown>[])[0]!['last4']).toBeUndefined()
    expect(JSON.stringify(out)).not.toMatch(/078-05-1120|4111|5500|12345/)
    // The loader's objects are not mutated.
    expect([user.ssn, user.taxId, user.address.zip, user.cards[0]!.number]).toEqual([
      '078-05-1120',
      '078-05-1120',
      '12345',
      '4111111111111111',
    ])
    const masked = new Redactor({ paths: ['ssn', 'cards[].number'], mask: '***' }, 'user.redact').apply(user)
    expect(masked).toMatchObject({ ssn: '***', cards: [{ number: '***' }, { number: '***' }] })
    expect((masked as unknown as Record<string, unknown>)['taxId']).toBeUndefined()
  })

  it('turns an instance along a path into a plain object even when it holds none of the fields', () => {
    class Account {
      constructor(public id: number) {}
      get ssn(): string {
        return 'from-a-getter'
      }
    }
    const out = new Redactor(['ssn'], 'redact').apply(new Account(7)) as unknown as Record<string, unknown>
    expect(out).toStrictEqual({ id: 7 })
    expect(out['ssn']).toBeUndefined()
    // Off the paths, instances are left alone.
    const account = new Account(8)
    const other = new Redactor(['user.ssn'], 'redact').apply({ account })
    expect(other.account).toBe(account)
  })

  it('redacts what toJSON returns for an object that has one, and leaves a Date as it is', () => {
    class Entity {
      toJSON() {
        return { id: 3, ssn: 'x', inner: new Address('9', 'Paris') }
      }
    }
    const out = new Redactor(['ssn', 'inner.zip'], 'redact').apply(new Entity())
    expect(out).toStrictEqual({ id: 3, inner: { city: 'Paris' } })
    const when = new Date(0)
    const dated = { createdAt: when, ssn: 's' }
    const redacted = new Redactor(['ssn', 'createdAt.time'], 'redact').apply(dated)
    expect(redacted).toStrictEqual({ createdAt: when })
    expect(redacted.createdAt).toBe(when)
  })

  it.each([
    ['a Map as the value', ['ssn'], new Map([['ssn', 'x']]), '', 'a Map'],
    [
      'a Set where an array of objects was declared',
      ['cards[].number'],
      { cards: new Set([{ number: '4111' }]) },
      'cards',
      'a Set',
    ],
    [
      'a typed array along a path',
      ['user.ssn'],
      { user: new Uint8Array(4) },
      'user',
      'a Uint8Array (binary data)',
    ],
    ['a Map inside an array', ['[].email'], [{ email: 'a' }, new Map([['email', 'b']])], '[]', 'a Map'],
  ])('refuses %s with ERR_STRATA_REDACT, naming where and what', (_, paths, value, path, found) => {
    expect(() => new Redactor(paths, 'person.redact').apply(value)).toThrow(
      expect.objectContaining({ code: 'ERR_STRATA_REDACT', option: 'person.redact', path, found }) as Error,
    )
  })

  it('passes a Map or a Set through when no path steps into it', () => {
    const tags = new Set(['a'])
    const value = { ssn: 'x', tags, index: new Map([['k', 1]]) }
    const out = new Redactor(['ssn', 'user.email'], 'redact').apply(value)
    expect(out).toStrictEqual({ tags, index: value.index })
  })

  it('serves, and keeps in L1, a loaded class instance without its redacted fields (d7)', async () => {
    let loads = 0
    const ns = newCache().namespace('user', {
      key: 'u:{id}',
      ttl: '5m',
      classification: 'personal',
      redact: ['ssn', 'cards[].number'],
      load: () => {
        loads++
        return ada()
      },
    })
    const miss = await ns.get({ id: 1 })
    const hit = await ns.get({ id: 1 })
    expect(loads).toBe(1)
    for (const value of [miss, hit]) {
      expect(JSON.stringify(value)).toBe(
        '{"id":1,"address":{"zip":"12345","city":"London"},"cards":[{"brand":"visa"},{"brand":"mc"}]}',
      )
      expect((value as unknown as Record<string, unknown>)['taxId']).toBeUndefined()
    }
    await ns.set({ id: 2 }, ada())
    expect(JSON.stringify(await ns.peek({ id: 2 }))).not.toContain('078-05-1120')
  })

  it('caches nothing when a loaded value cannot be redacted: the load fails with ERR_STRATA_REDACT as its cause', async () => {
    let loads = 0
    const ns = newCache().namespace('by-map', {
      key: 'u:{id}',
      ttl: '5m',
      redact: ['ssn'],
      load: () => {
        loads++
        return new Map([['ssn', 'x']]) as unknown as { ssn: string }
      },
    })
    for (let i = 0; i < 2; i++) {
      await expect(ns.get({ id: 1 })).rejects.toMatchObject({
        code: 'ERR_STRATA_LOADER_FAILED',
        cause: { code: 'ERR_STRATA_REDACT' },
      })
    }
    expect(loads).toBe(2)
    await expect(ns.set({ id: 2 }, new Map() as unknown as { ssn: string })).rejects.toMatchObject({
      code: 'ERR_STRATA_REDACT',
    })
    expect(await ns.peek({ id: 2 })).toBeUndefined()
  })
})

describe('what an encrypted entry reveals', () => {
  it('keeps the flags (negative, compressed, encrypted), timestamps and key id in clear, and encrypts only the value', () => {
    const keyRing = new ResolvedKeyRing(ring, 'encryption')
    const transforms = { key: 'svc:user:1', keyRing, encrypt: true }
    const times = { createdAt: 1_000, freshUntil: 2_000, staleUntil: 3_000 }
    const negative = encodeEnvelope({ ...times, value: null }, 1, jsonSerializer, transforms)
    const positive = encodeEnvelope(
      { ...times, value: { ssn: '078-05-1120' } },
      1,
      jsonSerializer,
      transforms,
    )
    // docs/security.md, "What an encrypted entry reveals": byte 3 holds the flags, unencrypted.
    expect(negative[3]! & 0b1001).toBe(0b1001) // negative + encrypted
    expect(positive[3]! & 0b1001).toBe(0b1000) // encrypted only
    expect([negative.readDoubleBE(9), negative.readDoubleBE(17), negative.readDoubleBE(25)]).toEqual([
      1_000, 2_000, 3_000,
    ])
    const idLength = negative[ENVELOPE_HEADER_BYTES]!
    expect(
      negative.subarray(ENVELOPE_HEADER_BYTES + 1, ENVELOPE_HEADER_BYTES + 1 + idLength).toString(),
    ).toBe('k1')
    expect(positive.includes(Buffer.from('078-05-1120'))).toBe(false)
    // GCM keeps lengths: a negative entry is header, key id, IV and the 16-byte tag alone.
    expect(negative.byteLength).toBe(ENVELOPE_HEADER_BYTES + 1 + 2 + 12 + 16)
    expect(positive.byteLength).toBe(negative.byteLength + '{"ssn":"078-05-1120"}'.length)
  })
})

describe('redaction in a namespace (L1 only)', () => {
  it('returns the same redacted shape on a miss and on a hit, and redacts set() too', async () => {
    const ns = newCache().namespace('person', {
      key: 'person:{id}',
      ttl: '1m',
      redact: ['ssn', 'cards[].number'],
      load: ({ id }) => ({ id, ssn: 'secret', cards: [{ number: '4111', brand: 'visa' }] }),
    })
    const miss = await ns.get({ id: 1 })
    const hit = await ns.get({ id: 1 })
    expect(miss).toEqual({ id: 1, cards: [{ brand: 'visa' }] })
    expect(hit).toEqual(miss)
    expect(ns.stats()).toMatchObject({ misses: 1, l1Hits: 1 })
    await ns.set({ id: 2 }, { id: 2, ssn: 'set-secret', cards: [] })
    expect(await ns.peek({ id: 2 })).toEqual({ id: 2, cards: [] })
  })

  it('redacts every value of loadMany', async () => {
    const ns = newCache().namespace('people', {
      key: 'person:{id}',
      ttl: '1m',
      redact: { paths: ['ssn'], mask: '[redacted]' },
      loadMany: (list) => list.map(({ id }) => ({ id, ssn: `s${id}` })),
    })
    expect(await ns.getMany([{ id: 1 }, { id: 2 }])).toEqual([
      { id: 1, ssn: '[redacted]' },
      { id: 2, ssn: '[redacted]' },
    ])
  })

  it('still reports a loadMany result that is not an array as ERR_STRATA_LOAD_MANY_RESULT', async () => {
    const ns = newCache().namespace('bad-many', {
      key: 'person:{id}',
      ttl: '1m',
      redact: ['ssn'],
      loadMany: () => ({ not: 'an array' }) as unknown as { ssn: string }[],
    })
    await expect(ns.getMany([{ id: 1 }])).rejects.toMatchObject({ code: 'ERR_STRATA_LOAD_MANY_RESULT' })
  })

  it('hands the full value to the source on write() and caches the redacted one', async () => {
    const written: unknown[] = []
    const ns = newCache().namespace('writer', {
      key: 'person:{id}',
      ttl: '1m',
      redact: ['ssn'],
      write: (_, value) => void written.push(value),
    })
    await ns.write({ id: 1 }, { id: 1, ssn: 'x' })
    expect(written).toEqual([{ id: 1, ssn: 'x' }])
    expect(await ns.peek({ id: 1 })).toEqual({ id: 1 })
  })
})

describe('the L1 byte budget with compression and a size limit', () => {
  it('weighs a compressed value at its uncompressed size', async () => {
    const cache = newCache({ l1: { maxEntries: 100, maxBytes: 5_000 }, compression: { threshold: 0 } })
    let loads = 0
    const ns = cache.namespace('big', {
      key: 'x:{id}',
      ttl: '1m',
      load: () => {
        loads++
        return 'a'.repeat(20_000) // compresses to a few dozen bytes
      },
    })
    await ns.get({ id: 1 })
    await ns.get({ id: 1 })
    expect(loads).toBe(2) // 20 KB is over the whole 5 KB budget: served, not kept
    expect(cache.stats().l1?.bytes).toBe(0)
  })

  it('keeps a value too large for L2 in L1, weighed at its real size', async () => {
    const cache = newCache({ l1: { maxEntries: 100, maxBytes: 10_000 }, maxValueBytes: 1_000 })
    const ns = cache.namespace('mid', { key: 'x:{id}', ttl: '1m', load: () => 'b'.repeat(3_000) })
    await ns.get({ id: 1 })
    await ns.get({ id: 1 })
    expect(ns.stats()).toMatchObject({ oversized: 1, loads: 1, l1Hits: 1 })
    expect(cache.stats().l1?.bytes).toBe(3_002) // its serialized size
  })
})

describe('classification', () => {
  it('defaults to internal, with no extra rule', () => {
    const ns = newCache().namespace('plain', { key: 'x:{id}', ttl: '1d' })
    expect(ns.options.classification).toBe('internal')
  })

  it.each(['personal', 'secret'] as const)(
    'refuses a %s namespace that neither redacts nor encrypts, naming the rule',
    (classification) => {
      expect(() => newCache().namespace('p', { key: 'x:{id}', ttl: '30s', classification })).toThrow(
        expect.objectContaining({
          code: 'ERR_STRATA_CLASSIFICATION',
          rule: 'protection-required',
          namespace: 'p',
          classification,
          message: expect.stringContaining('protection-required') as unknown,
        }) as Error,
      )
    },
  )

  it('accepts a personal namespace that redacts, or that encrypts through the cache key ring', () => {
    const cache = newCache({ encryption: ring })
    expect(() =>
      cache.namespace('redacts', { key: 'x:{id}', ttl: '5m', classification: 'personal', redact: ['ssn'] }),
    ).not.toThrow()
    const encrypts = cache.namespace('encrypts', { key: 'x:{id}', ttl: '5m', classification: 'personal' })
    expect(encrypts.options.codec.encrypt).toBe(true)
    expect(() =>
      cache.namespace('opted-out', { key: 'x:{id}', ttl: '5m', classification: 'secret', encrypt: false }),
    ).toThrow(expect.objectContaining({ rule: 'protection-required' }) as Error)
  })

  it('caps the lifetime (ttl + jitter + staleFor) at 15 minutes for personal and 1 minute for secret', () => {
    const cache = newCache()
    const protectedNs = { key: 'x:{id}', redact: ['ssn'] } as const
    expect(() =>
      cache.namespace('p1', { ...protectedNs, ttl: '15m', jitter: 0, classification: 'personal' }),
    ).not.toThrow()
    expect(() => cache.namespace('p2', { ...protectedNs, ttl: '15m', classification: 'personal' })).toThrow(
      expect.objectContaining({
        rule: 'ttl-cap',
        message: expect.stringContaining('ttlCaps.personal') as unknown,
      }) as Error,
    )
    expect(() =>
      cache.namespace('p3', { ...protectedNs, ttl: '5m', staleFor: '11m', classification: 'personal' }),
    ).toThrow(expect.objectContaining({ rule: 'ttl-cap' }) as Error)
    expect(() =>
      cache.namespace('s1', { ...protectedNs, ttl: '50s', jitter: '10s', classification: 'secret' }),
    ).not.toThrow()
    expect(() => cache.namespace('s2', { ...protectedNs, ttl: '2m', classification: 'secret' })).toThrow(
      expect.objectContaining({ rule: 'ttl-cap', classification: 'secret' }) as Error,
    )
  })

  it('refuses write-behind for personal and secret data: the queue would hold the writes in clear', () => {
    const cache = newCache()
    for (const classification of ['personal', 'secret'] as const) {
      expect(() =>
        cache.namespace(`wb-${classification}`, {
          key: 'x:{id}',
          ttl: '30s',
          redact: ['ssn'],
          classification,
          writeStrategy: 'write-behind',
          write: () => {},
        }),
      ).toThrow(expect.objectContaining({ rule: 'no-write-behind', classification }) as Error)
    }
  })

  it('takes the caps from the cache options', () => {
    const cache = newCache({ ttlCaps: { personal: '1h', secret: '10s' } })
    expect(() =>
      cache.namespace('p', { key: 'x:{id}', ttl: '50m', redact: ['a'], classification: 'personal' }),
    ).not.toThrow()
    expect(() =>
      cache.namespace('s', { key: 'x:{id}', ttl: '30s', redact: ['a'], classification: 'secret' }),
    ).toThrow(expect.objectContaining({ rule: 'ttl-cap' }) as Error)
  })

  it('refuses an unknown class', () => {
    expect(() =>
      newCache().namespace('u', { key: 'x:{id}', ttl: '1m', classification: 'confidential' as 'secret' }),
    ).toThrow(
      expect.objectContaining({ code: 'ERR_STRATA_INVALID_OPTION', option: 'u.classification' }) as Error,
    )
  })
})

describe('codec options', () => {
  it.each([
    ['a short key', { active: 'k1', keys: { k1: Buffer.alloc(16) } }, 'encryption.keys.k1'],
    ['a string key', { active: 'k1', keys: { k1: 'not-bytes' } }, 'encryption.keys.k1'],
    ['an active id not in the ring', { active: 'k2', keys: { k1: Buffer.alloc(32) } }, 'encryption.active'],
    ['a key id with a colon', { active: 'a:b', keys: { 'a:b': Buffer.alloc(32) } }, 'encryption.keys'],
  ])('refuses a key ring with %s', (_, encryption, option) => {
    expect(() => newCache({ encryption: encryption as unknown as KeyRing })).toThrow(
      expect.objectContaining({ code: 'ERR_STRATA_INVALID_OPTION', option }) as Error,
    )
  })

  it('does not keep a reference to the caller’s key buffers', () => {
    const key = Buffer.alloc(32, 7)
    const cache = newCache({ encryption: { active: 'k', keys: { k: key } } })
    key.fill(0)
    expect(cache.options.keyRing?.activeKey.export().equals(Buffer.alloc(32, 7))).toBe(true)
  })

  it('refuses encrypt: true without a key ring', () => {
    expect(() => newCache().namespace('e', { key: 'x:{id}', ttl: '1m', encrypt: true })).toThrow(
      expect.objectContaining({ option: 'e.encrypt' }) as Error,
    )
  })

  it('validates compression', () => {
    expect(() => newCache({ compression: { algorithm: 'lz4' as 'brotli' } })).toThrow(
      expect.objectContaining({ option: 'compression.algorithm' }) as Error,
    )
    expect(() => newCache({ compression: { algorithm: 'deflate', level: 12 } })).toThrow(
      expect.objectContaining({ option: 'compression.level' }) as Error,
    )
    expect(() => newCache({ compression: { threshold: -1 } })).toThrow(
      expect.objectContaining({ option: 'compression.threshold' }) as Error,
    )
    const ns = newCache({ compression: { threshold: 10 } }).namespace('c', { key: 'x:{id}', ttl: '1m' })
    expect(ns.options.codec.compression).toEqual({ algorithm: 'brotli', level: 4, threshold: 10 })
    const off = newCache({ compression: {} }).namespace('d', { key: 'x:{id}', ttl: '1m', compression: false })
    expect(off.options.codec.compression).toBeUndefined()
  })

  it('takes zstd on a Node whose zlib has it, and refuses it elsewhere naming the versions that have it', () => {
    if ('zstdCompressSync' in zlib) {
      const ns = newCache({ compression: { algorithm: 'zstd' } }).namespace('z', { key: 'x:{id}', ttl: '1m' })
      expect(ns.options.codec.compression).toMatchObject({ algorithm: 'zstd' })
    } else {
      expect(() => newCache({ compression: { algorithm: 'zstd' } })).toThrow(/22\.15\+/)
    }
  })

  it('refuses a maxValueBytes that is not a positive whole number', () => {
    expect(() => newCache({ maxValueBytes: 0 })).toThrow(
      expect.objectContaining({ option: 'maxValueBytes' }) as Error,
    )
    expect(() => newCache().namespace('m', { key: 'x:{id}', ttl: '1m', maxValueBytes: 1.5 })).toThrow(
      expect.objectContaining({ option: 'm.maxValueBytes' }) as Error,
    )
  })
})

describe('cache.purge (L1 only)', () => {
  /** An in-memory sink, optionally failing on the nth append. */
  function memorySink(failOn?: number): AuditSink & { records: AuditRecord[] } {
    const records: AuditRecord[] = []
    let calls = 0
    return {
      records,
      append(record) {
        if (++calls === failOn) return Promise.reject(new Error('disk full'))
        records.push(record)
        return Promise.resolve()
      },
    }
  }

  it('is refused without an audit sink, and nothing is purged', async () => {
    const cache = newCache()
    const ns = cache.namespace('n', { key: 'x:{id}', ttl: '1m' })
    await ns.set({ id: 1 }, 'v')
    await expect(cache.purge({ namespace: 'n', actor: 'alice', reason: 'test' })).rejects.toMatchObject({
      code: 'ERR_STRATA_AUDIT_SINK_REQUIRED',
    })
    expect(await ns.peek({ id: 1 })).toBe('v')
    // Code paths keep working without a sink.
    await ns.clear()
    expect(await ns.peek({ id: 1 })).toBeUndefined()
  })

  it('records the request before purging and the outcome after, with one id', async () => {
    const sink = memorySink()
    const cache = newCache({ audit: sink })
    const ns = cache.namespace('n', { key: 'x:{id}', ttl: '1m' })
    await ns.set({ id: 1 }, 'v')
    const result = await cache.purge({ namespace: 'n', actor: 'alice', reason: 'INC-1' })
    expect(await ns.peek({ id: 1 })).toBeUndefined()
    expect(sink.records.map((r) => r.phase)).toEqual(['requested', 'completed'])
    expect(sink.records[0]).toMatchObject({
      id: result.id,
      action: 'purge',
      service: 'unit-dp',
      actor: 'alice',
      reason: 'INC-1',
      target: { namespace: 'n' },
    })
    expect(sink.records[1]).toMatchObject({ id: result.id, keysDeleted: 0 })
    expect(Date.parse(sink.records[0]!.at)).not.toBeNaN()
  })

  it('does not purge when the request cannot be recorded', async () => {
    const cache = newCache({ audit: memorySink(1) })
    const ns = cache.namespace('n', { key: 'x:{id}', ttl: '1m' })
    await ns.set({ id: 1 }, 'v')
    await expect(cache.purge({ namespace: 'n', actor: 'a', reason: 'r' })).rejects.toMatchObject({
      code: 'ERR_STRATA_AUDIT_WRITE',
      purged: false,
    })
    expect(await ns.peek({ id: 1 })).toBe('v')
  })

  /** A sink that never answers the nth append (it stores the others). */
  function hangingSink(hangOn: number): AuditSink & { records: AuditRecord[] } {
    const records: AuditRecord[] = []
    let calls = 0
    return {
      records,
      append(record) {
        if (++calls === hangOn) return new Promise<void>(() => {})
        records.push(record)
        return Promise.resolve()
      },
    }
  }

  it('does not purge when the sink does not answer the request within timeouts.audit', async () => {
    const cache = newCache({ audit: hangingSink(1), timeouts: { audit: '50ms' } })
    const ns = cache.namespace('n', { key: 'x:{id}', ttl: '1m' })
    await ns.set({ id: 1 }, 'v')
    const error = await cache.purge({ namespace: 'n', actor: 'a', reason: 'r' }).catch((e: unknown) => e)
    expect(error).toMatchObject({ code: 'ERR_STRATA_AUDIT_WRITE', purged: false })
    expect((error as Error).message).toMatch(
      /did not answer within 50 ms \(`timeouts.audit`\); it may still store the record.*Nothing was purged/,
    )
    expect(await ns.peek({ id: 1 })).toBe('v')
  })

  it('reports a purge whose outcome the sink does not store in time as done (`purged: true`)', async () => {
    const sink = hangingSink(2)
    const cache = newCache({ audit: sink, timeouts: { audit: '50ms' } })
    const ns = cache.namespace('n', { key: 'x:{id}', ttl: '1m' })
    await ns.set({ id: 1 }, 'v')
    await expect(cache.purge({ namespace: 'n', actor: 'a', reason: 'r' })).rejects.toMatchObject({
      code: 'ERR_STRATA_AUDIT_WRITE',
      purged: true,
    })
    expect(await ns.peek({ id: 1 })).toBeUndefined()
    expect(sink.records.map((r) => r.phase)).toEqual(['requested'])
  })

  it('aborts the signal it gave the sink when it stops waiting, with the timeout as the reason', async () => {
    let signal: AbortSignal | undefined
    const sink: AuditSink = {
      append: (_record, context) => {
        signal = context!.signal
        return new Promise<void>(() => {})
      },
    }
    const cache = newCache({ audit: sink, timeouts: { audit: '50ms' } })
    cache.namespace('n', { key: 'x:{id}', ttl: '1m' })
    expect(signal).toBeUndefined()
    const error = await cache.purge({ namespace: 'n', actor: 'a', reason: 'r' }).catch((e: unknown) => e)
    expect(error).toMatchObject({ code: 'ERR_STRATA_AUDIT_WRITE', purged: false })
    expect(signal!.aborted).toBe(true)
    expect(String(signal!.reason)).toMatch(/did not answer within 50 ms \(`timeouts.audit`\)/)
  })

  it('a JSON lines record given up on before its turn is not written', async () => {
    const path = join(dir, 'given-up.jsonl')
    const sink = jsonLinesAuditSink(path)
    const records = ['first', 'second', 'third'].map((actor): AuditRecord => ({
      id: actor,
      phase: 'requested',
      at: new Date(0).toISOString(),
      service: 's',
      action: 'purge',
      actor,
      reason: 'r',
      target: { namespace: 'n' },
    }))
    const givenUp = new AbortController()
    const appends = records.map((record, i) =>
      sink.append(record, { signal: i === 1 ? givenUp.signal : new AbortController().signal }),
    )
    // The second waits behind the first (appends are serialized) when the cache stops waiting for it.
    givenUp.abort(new Error('the cache stopped waiting'))
    const settled = await Promise.allSettled(appends)
    expect(settled.map((s) => s.status)).toEqual(['fulfilled', 'rejected', 'fulfilled'])
    const lines = readFileSync(path, 'utf8').trimEnd().split('\n')
    expect(lines.map((line) => (JSON.parse(line) as AuditRecord).actor)).toEqual(['first', 'third'])
  })

  it('timeouts.audit defaults to 10 s and is refused when not a duration', () => {
    expect(newCache().options.auditTimeoutMs).toBe(10_000)
    expect(() => newCache({ timeouts: { audit: 'soon' as never } })).toThrow(
      expect.objectContaining({ code: 'ERR_STRATA_INVALID_OPTION', option: 'timeouts.audit' }),
    )
  })

  it.each([
    [{ namespace: 'n', reason: 'r' }, 'actor'],
    [{ namespace: 'n', actor: ' ', reason: 'r' }, 'actor'],
    [{ namespace: 'n', actor: 'a' }, 'reason'],
    [{ actor: 'a', reason: 'r' }, 'purge request'],
    [{ namespace: 'nope', actor: 'a', reason: 'r' }, 'namespace'],
  ])('refuses %o (names %s)', async (request, argument) => {
    const sink = memorySink()
    const cache = newCache({ audit: sink })
    cache.namespace('n', { key: 'x:{id}', ttl: '1m' })
    await expect(cache.purge(request as never)).rejects.toMatchObject({
      code: 'ERR_STRATA_INVALID_ARGUMENT',
      argument,
    })
    expect(sink.records).toEqual([])
  })

  it('refuses a purge by tag that no namespace it reaches could satisfy (none declares tags), before recording it', async () => {
    const sink = memorySink()
    const cache = newCache({ audit: sink })
    // The key names the tenant, but no entry carries a tag: a purge of 'tenant:t1' would delete nothing.
    const ns = cache.namespace('product', { key: 'tenant:{tenantId}:product:{id}', ttl: '1m' })
    await ns.set({ tenantId: 't1', id: 1 }, 'v')
    for (const request of [
      { tag: 'tenant:t1', actor: 'dpo', reason: 'DSR-9' },
      { namespace: 'product', tag: 'tenant:t1', actor: 'dpo', reason: 'DSR-9' },
    ]) {
      const error = await cache.purge(request).catch((e: unknown) => e)
      expect(error).toMatchObject({ code: 'ERR_STRATA_INVALID_ARGUMENT', argument: 'tag' })
      expect((error as Error).message).toMatch(
        /declares? (no )?`tags`, so a purge by tag would delete nothing. Declare `tags`/,
      )
    }
    expect(sink.records).toEqual([])
    expect(await ns.peek({ tenantId: 't1', id: 1 })).toBe('v')
    // Once one namespace reached declares tags, the purge runs (and reaches every namespace).
    cache.namespace('order', { key: 'o:{id}', ttl: '1m', tags: () => ['tenant:t1'] })
    await expect(cache.purge({ tag: 'tenant:t1', actor: 'dpo', reason: 'DSR-9' })).resolves.toMatchObject({
      keysDeleted: 0,
    })
    expect(sink.records.map((r) => r.phase)).toEqual(['requested', 'completed'])
  })

  it('appends JSON lines to a file created owner-only, one line per record, in order', async () => {
    const path = join(dir, 'audit.jsonl')
    const cache = newCache({ audit: jsonLinesAuditSink(path) })
    const ns = cache.namespace('n', { key: 'x:{id}', ttl: '1m', tags: () => ['tenant:t1'] })
    await ns.set({ id: 1 }, 'v')
    await Promise.all([
      cache.purge({ tag: 'tenant:t1', actor: 'bob', reason: 'DSR-7' }),
      cache.purge({ namespace: 'n', tag: 'tenant:t2', actor: 'carol', reason: 'DSR-8' }),
    ])
    const lines = readFileSync(path, 'utf8').trimEnd().split('\n')
    const records = lines.map((line) => JSON.parse(line) as AuditRecord)
    expect(records).toHaveLength(4)
    expect(records.filter((r) => r.actor === 'bob').map((r) => r.phase)).toEqual(['requested', 'completed'])
    expect(records.find((r) => r.actor === 'carol')?.target).toEqual({ namespace: 'n', tag: 'tenant:t2' })
    expect(statSync(path).mode & 0o777).toBe(0o600)
  })
})
