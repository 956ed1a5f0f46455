// The key layout for Redis Cluster: everything one script touches for one entry shares a slot, on every shard.
import calculateSlot from 'cluster-key-slot'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { CLUSTER_FENCE_SHARDS, KeyLayout } from '../../src/core/key-layout.js'
import { escapeKeyText, KeySchema } from '../../src/core/keys.js'
import { isEntryKey } from '../../src/storage/entry-store.js'
import { clusterSlot } from '../../src/tiers/cluster-slot.js'

const schema = (fenceShards: number, maxKeyLength = 256) =>
  new KeySchema({
    service: 'catalog',
    namespace: 'product',
    schemaVersion: 2,
    template: 'tenant:{tenantId}:product:{productId}',
    dimensions: ['locale'],
    maxKeyLength,
    fenceShards,
  })

const param = fc.oneof(fc.string({ minLength: 1, maxLength: 40 }), fc.integer(), fc.boolean())
const params = fc.record({ tenantId: param, productId: param, locale: param })
const tag = fc.string({ minLength: 1, maxLength: 30 })

describe('cluster slots', () => {
  it('computes the slot Redis Cluster does (checked against cluster-key-slot), hash tags included', () => {
    expect(clusterSlot('foo')).toBe(12182)
    expect(clusterSlot('{user1000}.following')).toBe(clusterSlot('{user1000}.followers'))
    // An empty first tag means no tag: Redis 7.0.15's CLUSTER KEYSLOT answers 8363 here (cluster-key-slot, 4015).
    expect(clusterSlot('foo{}{bar}')).toBe(8363)
    fc.assert(
      fc.property(
        fc.string({ maxLength: 60, unit: fc.constantFrom('a', 'b', '{', '}', ':', '#', 'é') }),
        fc.string({ maxLength: 60 }),
        (braces, key) => {
          for (const text of [braces, key]) {
            if (!text.includes('{}')) expect(clusterSlot(text)).toBe(calculateSlot(text))
          }
        },
      ),
    )
  })
})

describe('the one-node layout', () => {
  it('builds the keys and bookkeeping keys of earlier versions, byte for byte', () => {
    const keys = schema(1)
    expect(keys.build({ tenantId: 't1', productId: 42, locale: 'en' })).toBe(
      'catalog:product:v2:tenant:t1:product:42:locale=en',
    )
    const [shard] = keys.layout.shards
    expect(keys.layout.shards).toHaveLength(1)
    expect(shard).toMatchObject({
      tag: '',
      seq: 'catalog:product:v2#seq',
      cleared: 'catalog:product:v2#cleared',
      anyTag: 'catalog:product:v2#anytag',
      negativeSet: 'catalog:product:v2:#neg',
    })
    expect(shard!.tagSet('tenant%3At1')).toBe('catalog:product:v2:#tag{tenant%3At1}')
    keys.setGeneration(3)
    expect(keys.build({ tenantId: 't1', productId: 42, locale: 'en' })).toBe(
      'catalog:product:v2:g3:tenant:t1:product:42:locale=en',
    )
  })
})

describe('the Redis Cluster layout', () => {
  const keys = schema(CLUSTER_FENCE_SHARDS)

  it('builds the keys docs/architecture.md shows', () => {
    const documented = new KeySchema({
      service: 'catalog',
      namespace: 'product',
      schemaVersion: 2,
      template: 'tenant:{tenantId}:product:{productId}',
      dimensions: [],
      maxKeyLength: 256,
      fenceShards: CLUSTER_FENCE_SHARDS,
    })
    const key = documented.build({ tenantId: 't1', productId: 42 })
    expect(key).toBe('catalog:product:v2:{6e4lmd.13}:tenant:t1:product:42')
    const shard = documented.layout.shardOf(key)
    expect([shard.seq, shard.cleared, shard.anyTag, shard.negativeSet, shard.tagSet('tenant%3At1')]).toEqual([
      'catalog:product:v2#seq{6e4lmd.13}',
      'catalog:product:v2#cleared{6e4lmd.13}',
      'catalog:product:v2#anytag{6e4lmd.13}',
      'catalog:product:v2:{6e4lmd.13}#neg',
      'catalog:product:v2:{6e4lmd.13}#tag{tenant%3At1}',
    ])
  })

  it("puts an entry's value, version, lock, pruning marker and its shard's marks and tag sets in one slot", () => {
    fc.assert(
      fc.property(params, fc.nat(5), fc.array(tag, { maxLength: 3 }), (p, generation, tags) => {
        keys.setGeneration(generation)
        const key = keys.build(p)
        const shard = keys.layout.shardOf(key)
        const slot = clusterSlot(key)
        const sets = tags.map((t) => shard.tagSet(escapeKeyText(t)!))
        const related = [
          `${key}#v`,
          `${key}#lock`,
          `${key}#gone`,
          shard.seq,
          shard.cleared,
          shard.anyTag,
          shard.negativeSet,
          `${shard.negativeSet}#snapshot`,
          ...sets,
          ...sets.map((set) => `${set}#inv`),
          ...sets.map((set) => `${set}#snapshot`),
        ]
        for (const other of related) expect(clusterSlot(other)).toBe(slot)
        expect(isEntryKey(key, keys.prefix)).toBe(true)
        for (const other of [`${key}#v`, `${key}#lock`, shard.negativeSet, ...sets]) {
          expect(isEntryKey(other, keys.prefix)).toBe(false)
        }
      }),
    )
    keys.setGeneration(0)
  })

  it('keeps an entry in its shard across generations and when its key is hashed for length', () => {
    const short = schema(CLUSTER_FENCE_SHARDS, 60)
    fc.assert(
      fc.property(params, fc.integer({ min: 1, max: 1000 }), (p, generation) => {
        short.setGeneration(0)
        const before = short.build(p)
        short.setGeneration(generation)
        const after = short.build(p)
        expect(short.layout.shardOf(after)).toBe(short.layout.shardOf(before))
        expect(isEntryKey(after, short.prefix)).toBe(true)
      }),
    )
  })

  it('spreads a namespace over its shards, on distinct slots, and namespaces over different slots', () => {
    const counts = new Array<number>(CLUSTER_FENCE_SHARDS).fill(0)
    for (let i = 0; i < 16_000; i++) {
      counts[keys.layout.shardOf(keys.build({ tenantId: 't1', productId: i, locale: 'en' })).index]!++
    }
    for (const count of counts) expect(count).toBeGreaterThan(700)
    const slots = new Set(keys.layout.shards.map((shard) => clusterSlot(shard.seq)))
    expect(slots.size).toBeGreaterThanOrEqual(CLUSTER_FENCE_SHARDS - 1)
    const other = new KeyLayout('catalog:price:v2:', CLUSTER_FENCE_SHARDS)
    const shared = other.shards.filter((shard) => slots.has(clusterSlot(shard.seq)))
    expect(shared.length).toBeLessThanOrEqual(1)
  })

  it('keeps bookkeeping keys of a shard out of the namespace prefix that clear() scans, as on one node', () => {
    for (const shard of keys.layout.shards) {
      for (const mark of [shard.seq, shard.cleared, shard.anyTag])
        expect(mark.startsWith(keys.prefix)).toBe(false)
      expect(shard.negativeSet.startsWith(keys.prefix)).toBe(true)
    }
  })
})
