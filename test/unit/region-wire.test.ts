// The region outbox's entry format (regions/outbox-wire.ts), pinned field for field, and the relative keys that let
// an invalidation name the same entry in regions with other generations and layouts (core/keys.ts).
import { describe, expect, it } from 'vitest'
import { decodeOutboxEntry, encodeOutboxEntry } from '../../src/regions/outbox-wire.js'
import { KeySchema } from '../../src/core/keys.js'

const bytes = (fields: Record<string, string>) =>
  Object.fromEntries(Object.entries(fields).map(([k, v]) => [k, Buffer.from(v)]))

describe('region outbox entries', () => {
  it('encodes each kind to the documented fields', () => {
    const head = { region: 'eu', sentAt: 1_700_000_000_000 }
    expect(
      encodeOutboxEntry({ ...head, relayed: { kind: 'keys', namespace: 'item', keys: ['item:1'] } }),
    ).toEqual({
      v: '1',
      r: 'eu',
      t: '1700000000000',
      k: 'keys',
      n: 'item',
      x: '["item:1"]',
    })
    expect(
      encodeOutboxEntry({ ...head, relayed: { kind: 'tags', namespace: 'item', tags: ['t:1'] } }),
    ).toEqual({
      v: '1',
      r: 'eu',
      t: '1700000000000',
      k: 'tags',
      n: 'item',
      x: '["t:1"]',
    })
    expect(encodeOutboxEntry({ ...head, relayed: { kind: 'clear', namespace: 'item' } })).toEqual({
      v: '1',
      r: 'eu',
      t: '1700000000000',
      k: 'clear',
      n: 'item',
    })
    expect(encodeOutboxEntry({ ...head, relayed: { kind: 'all', namespace: 'item' } }).k).toBe('all')
    expect(encodeOutboxEntry({ ...head, relayed: { kind: 'heartbeat' } })).toEqual({
      v: '1',
      r: 'eu',
      t: '1700000000000',
      k: 'hb',
    })
  })

  it('decodes what it encodes, for every kind', () => {
    for (const relayed of [
      { kind: 'keys', namespace: 'n', keys: ['a', 'b'] },
      { kind: 'tags', namespace: 'n', tags: ['x'] },
      { kind: 'clear', namespace: 'n' },
      { kind: 'all', namespace: 'n' },
      { kind: 'heartbeat' },
    ] as const) {
      const entry = { region: 'us', sentAt: 5, relayed }
      expect(decodeOutboxEntry(bytes(encodeOutboxEntry(entry)))).toEqual({ ok: true, entry })
    }
  })

  it('refuses foreign or malformed entries with a reason, never throwing', () => {
    const good = encodeOutboxEntry({
      region: 'eu',
      sentAt: 1,
      relayed: { kind: 'keys', namespace: 'n', keys: ['a'] },
    })
    for (const fields of [
      {},
      { ...good, v: '2' },
      { ...good, t: 'soon' },
      { ...good, k: 'drop' },
      { ...good, x: 'not json' },
      { ...good, x: '[1]' },
      { ...good, x: '[""]' },
      { v: '1', r: 'eu', t: '1', k: 'keys' },
    ]) {
      const decoded = decodeOutboxEntry(bytes(fields))
      expect(decoded.ok).toBe(false)
    }
  })
})

describe('relative keys', () => {
  const schema = (fenceShards: number) =>
    new KeySchema({
      service: 'svc',
      namespace: 'item',
      schemaVersion: 1,
      template: 'tenant:{t}:item:{id}',
      dimensions: [],
      maxKeyLength: 256,
      fenceShards,
    })

  it('names the same entry across generations and between one node and a cluster', () => {
    const eu = schema(1)
    const us = schema(16)
    eu.setGeneration(3)
    us.setGeneration(7)
    const params = { t: 't1', id: 42 }
    const relative = eu.relativeKey(eu.build(params))
    expect(relative).toBe('tenant:t1:item:42')
    expect(us.keysForRelative(relative!)).toEqual([us.build(params)])
    expect(us.relativeKey(us.build(params))).toBe(relative)
    expect(eu.keysForRelative(us.relativeKey(us.build(params))!)).toEqual([eu.build(params)])
  })

  it('gives no relative key for a key of another generation', () => {
    const eu = schema(1)
    const old = eu.build({ t: 't1', id: 1 })
    eu.setGeneration(1)
    expect(eu.relativeKey(old)).toBeUndefined()
  })

  it("names every shard's candidate for a hashed key sent to a cluster", () => {
    const eu = schema(1)
    const us = schema(16)
    const params = { t: 'x'.repeat(300), id: 1 }
    const relative = eu.relativeKey(eu.build(params))!
    expect(relative.startsWith('#')).toBe(true)
    const candidates = us.keysForRelative(relative)
    expect(candidates).toHaveLength(16)
    expect(candidates).toContain(us.build(params))
  })
})
