import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { EntryTooLargeError, estimateSize, InvalidOptionError, MemoryStore } from 'stratacache'
import { fakeClock } from '../helpers/fake-clock.js'

describe('MemoryStore', () => {
  it('evicts the least recently used entry past maxEntries', () => {
    const store = new MemoryStore<number>({ maxEntries: 3 })
    store.set('a', 1).set('b', 2).set('c', 3)
    store.get('a') // a is now the most recently used
    store.set('d', 4)
    expect([...store.keys()]).toEqual(['d', 'a', 'c'])
    expect(store.get('b')).toBeUndefined()
    expect(store.evictions).toBe(1)
  })

  it('does not mark an entry used on peek or has', () => {
    const store = new MemoryStore<number>({ maxEntries: 2 })
    store.set('a', 1).set('b', 2)
    expect(store.peek('a')).toBe(1)
    expect(store.has('a')).toBe(true)
    store.set('c', 3)
    expect(store.has('a')).toBe(false)
  })

  it('expires entries at their TTL on the injected clock', () => {
    const clock = fakeClock()
    const store = new MemoryStore<string>({ maxEntries: 10, clock })
    store.set('a', 'x', { ttl: 1_000 })
    store.set('forever', 'y')
    clock.advance(999)
    expect(store.get('a')).toBe('x')
    expect(store.ttl('a')).toBe(1)
    clock.advance(1)
    expect(store.get('a')).toBeUndefined()
    expect(store.has('a')).toBe(false)
    expect(store.get('forever')).toBe('y')
    expect(store.ttl('forever')).toBe(Infinity)
    expect(store.size).toBe(1)
  })

  it('stores nothing for a TTL of zero or less, and drops what was there', () => {
    const store = new MemoryStore<string>({ maxEntries: 10 })
    store.set('a', 'x')
    store.set('a', 'y', { ttl: 0 })
    expect(store.has('a')).toBe(false)
  })

  it('tells undefined values apart from absent keys through has()', () => {
    const store = new MemoryStore<undefined>({ maxEntries: 10 })
    store.set('a', undefined)
    expect(store.has('a')).toBe(true)
    expect(store.has('b')).toBe(false)
  })

  it('evicts least recently used entries past the byte budget', () => {
    const store = new MemoryStore<string>({ maxEntries: 100, maxBytes: 100 })
    store.set('a', 'x', { size: 40 }).set('b', 'y', { size: 40 })
    store.get('a')
    store.set('c', 'z', { size: 40 })
    expect(store.bytes).toBe(80)
    expect([...store.keys()]).toEqual(['c', 'a'])
    store.set('a', 'x2', { size: 10 })
    expect(store.bytes).toBe(50)
  })

  it('measures with sizeOf, or estimates when only maxBytes is given', () => {
    const measured = new MemoryStore<string>({ maxEntries: 10, maxBytes: 1_000, sizeOf: (v) => v.length })
    measured.set('k', 'hello')
    expect(measured.bytes).toBe(5)
    const estimated = new MemoryStore<object>({ maxEntries: 10, maxBytes: 10_000 })
    estimated.set('k', { name: 'widget', tags: ['a', 'b'] })
    expect(estimated.bytes).toBeGreaterThan(50)
  })

  it('refuses an entry larger than the whole byte budget with a typed error and keeps no stale copy', () => {
    const store = new MemoryStore<string>({ maxEntries: 10, maxBytes: 10 })
    store.set('k', 'small', { size: 5 })
    expect(() => store.set('k', 'huge', { size: 11 })).toThrow(EntryTooLargeError)
    expect(store.has('k')).toBe(false)
    expect(store.bytes).toBe(0)
  })

  it('deletes by prefix and clears', () => {
    const store = new MemoryStore<number>({ maxEntries: 10 })
    store.set('svc:a:1', 1).set('svc:a:2', 2).set('svc:b:1', 3)
    expect(store.deletePrefix('svc:a:')).toBe(2)
    expect([...store.keys()]).toEqual(['svc:b:1'])
    store.clear()
    expect(store.size).toBe(0)
  })

  it.each([
    [{ maxEntries: 0 }, /maxEntries/],
    [{ maxEntries: Infinity }, /unbounded L1/],
    [{ maxEntries: 1.5 }, /maxEntries/],
    [{ maxEntries: 10, maxBytes: -1 }, /maxBytes/],
    [{ maxEntries: 10, sizeOf: 'x' }, /sizeOf/],
    [{ maxEntries: 10, clock: {} }, /clock/],
    [undefined, /MemoryStore options/],
  ])('refuses %j with a typed error naming the option', (options, message) => {
    expect(() => new MemoryStore(options as never)).toThrow(InvalidOptionError)
    expect(() => new MemoryStore(options as never)).toThrow(message)
  })

  it('behaves like a reference LRU model under any sequence of operations', () => {
    const op = fc.oneof(
      fc.record({ kind: fc.constant('get' as const), key: fc.nat(12) }),
      fc.record({ kind: fc.constant('set' as const), key: fc.nat(12), value: fc.nat() }),
      fc.record({ kind: fc.constant('delete' as const), key: fc.nat(12) }),
    )
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 8 }), fc.array(op, { maxLength: 200 }), (capacity, ops) => {
        const store = new MemoryStore<number>({ maxEntries: capacity })
        const model = new Map<string, number>() // insertion order = recency, oldest first
        for (const o of ops) {
          const key = String(o.key)
          if (o.kind === 'get') {
            const expected = model.get(key)
            if (expected !== undefined) {
              model.delete(key)
              model.set(key, expected)
            }
            expect(store.get(key)).toBe(expected)
          } else if (o.kind === 'set') {
            model.delete(key)
            model.set(key, o.value)
            if (model.size > capacity) model.delete(model.keys().next().value!)
            store.set(key, o.value)
          } else {
            expect(store.delete(key)).toBe(model.delete(key))
          }
          expect(store.size).toBe(model.size)
        }
        expect([...store.keys()]).toEqual([...model.keys()].reverse())
      }),
    )
  })
})

describe('estimateSize', () => {
  it('is bounded on cyclic and deep values', () => {
    const cyclic: Record<string, unknown> = { a: 'x' }
    cyclic.self = cyclic
    expect(estimateSize(cyclic)).toBeGreaterThan(0)
    let deep: unknown = 'leaf'
    for (let i = 0; i < 1_000; i++) deep = { deep }
    expect(Number.isFinite(estimateSize(deep))).toBe(true)
  })
})
