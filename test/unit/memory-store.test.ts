import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  EntryTooLargeError,
  estimateSize,
  InvalidArgumentError,
  InvalidOptionError,
  MemoryStore,
} from 'stratacache'
import { fakeClock } from '../helpers/fake-clock.js'

describe('MemoryStore', () => {
  it('keeps a re-read entry and the newest one past maxEntries, evicting an entry read once', () => {
    const store = new MemoryStore<number>({ maxEntries: 3 })
    store.set('a', 1).set('b', 2).set('c', 3)
    store.get('a') // a is read twice now
    store.set('d', 4)
    expect(store.size).toBe(3)
    expect(store.get('a')).toBe(1)
    expect(store.get('d')).toBe(4)
    expect([store.has('b'), store.has('c')].filter(Boolean)).toHaveLength(1)
    expect(store.evictions).toBe(1)
  })

  it('keeps its frequent entries through a scan of new keys, and the newest scanned key', () => {
    const store = new MemoryStore<number>({ maxEntries: 100 })
    for (let round = 0; round < 5; round++)
      for (let k = 0; k < 50; k++) if (store.get(`hot${k}`) === undefined) store.set(`hot${k}`, k)
    // A scan of 5x the capacity, shorter than the sketch's aging period (10x the capacity).
    for (let k = 0; k < 500; k++) if (store.get(`scan${k}`) === undefined) store.set(`scan${k}`, k)
    // The hot keys survive the scan (frequency), and the newest scanned key is there (the window).
    for (let k = 0; k < 50; k++) expect(store.has(`hot${k}`)).toBe(true)
    expect(store.has('scan499')).toBe(true)
    expect(store.size).toBe(100)
  })

  it('does not count peek or has as a use', () => {
    const run = (peeks: number) => {
      const store = new MemoryStore<number>({ maxEntries: 4 })
      for (const k of ['a', 'b', 'c', 'd']) store.set(k, 1)
      for (let i = 0; i < peeks; i++) {
        store.peek('a')
        store.has('a')
      }
      for (const k of ['e', 'f', 'g', 'h', 'i']) store.set(k, 1)
      return [...store.keys()]
    }
    expect(run(20)).toEqual(run(0))
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

  it.each([
    ['NaN', { size: Number.NaN }],
    ['a negative size', { size: -1 }],
    ['an infinite size', { size: Infinity }],
    ['a string', { size: '10' as unknown as number }],
  ])('refuses %s with ERR_STRATA_INVALID_ARGUMENT, stores nothing and keeps the budget on', (_, options) => {
    const store = new MemoryStore<string>({ maxEntries: 100_000, maxBytes: 10_000 })
    store.set('k', 'old', { size: 3 })
    expect(() => store.set('k', 'new', options)).toThrow(
      expect.objectContaining({ code: 'ERR_STRATA_INVALID_ARGUMENT', argument: 'options.size' }) as Error,
    )
    expect([store.has('k'), store.bytes]).toEqual([false, 0])
    for (let i = 0; i < 1_000; i++) store.set(`k${i}`, 'x', { size: 1_000 })
    expect(store.bytes).toBeLessThanOrEqual(10_000)
    expect(store.evictions).toBeGreaterThan(0)
  })

  it('refuses what a sizeOf returns when it is not a size (undefined, NaN), so one odd value cannot switch the byte budget off (d20)', () => {
    const store = new MemoryStore<unknown>({
      maxEntries: 100_000,
      maxBytes: 10_000,
      sizeOf: (v) => (v as string).length,
    })
    expect(() => store.set('odd', { not: 'a string' })).toThrow(
      expect.objectContaining({
        code: 'ERR_STRATA_INVALID_ARGUMENT',
        argument: 'sizeOf(value, key)',
      }) as Error,
    )
    expect(() => store.set('nan', { length: Number.NaN })).toThrow(InvalidArgumentError)
    for (let i = 0; i < 1_000; i++) store.set(`k${i}`, 'x'.repeat(1_000))
    expect(store.bytes).toBeLessThanOrEqual(10_000)
    expect(store.size).toBe(10)
  })

  it('rounds a fractional size up to whole bytes', () => {
    const store = new MemoryStore<string>({ maxEntries: 10, maxBytes: 10 })
    store.set('a', 'x', { size: 0.2 }).set('b', 'y', { size: 4.5 }).set('c', 'z', { size: 0 })
    expect(store.bytes).toBe(6)
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

  it('never serves a wrong value, stays within its bounds and accounts for every entry, under any operations', () => {
    const op = fc.oneof(
      fc.record({ kind: fc.constant('get' as const), key: fc.nat(20) }),
      fc.record({
        kind: fc.constant('set' as const),
        key: fc.nat(20),
        value: fc.nat(),
        size: fc.integer({ min: 1, max: 40 }),
      }),
      fc.record({ kind: fc.constant('delete' as const), key: fc.nat(20) }),
    )
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 8 }),
        fc.option(fc.integer({ min: 40, max: 200 }), { nil: undefined }),
        fc.array(op, { maxLength: 300 }),
        (maxEntries, maxBytes, ops) => {
          const store = new MemoryStore<number>(
            maxBytes === undefined ? { maxEntries } : { maxEntries, maxBytes },
          )
          /** The last value set per key: what a read may return, if the key is still held. */
          const written = new Map<string, number>()
          let added = 0
          let deleted = 0
          for (const o of ops) {
            const key = String(o.key)
            if (o.kind === 'get') {
              const value = store.get(key)
              if (value !== undefined) expect(value).toBe(written.get(key))
            } else if (o.kind === 'set') {
              if (!store.has(key)) added++
              store.set(key, o.value, { size: o.size })
              written.set(key, o.value)
              // A value just written is readable at once: admission never drops the newest entry.
              expect(store.peek(key)).toBe(o.value)
            } else if (store.delete(key)) {
              deleted++
            }
            const keys = [...store.keys()]
            expect(new Set(keys).size).toBe(keys.length)
            expect(keys.length).toBe(store.size)
            expect(store.size).toBeLessThanOrEqual(maxEntries)
            if (maxBytes !== undefined) expect(store.bytes).toBeLessThanOrEqual(maxBytes)
            for (const k of keys) expect(store.peek(k)).toBe(written.get(k))
            // Every entry added is still held, was deleted, or was evicted: none is lost or counted twice.
            expect(added).toBe(store.size + deleted + store.evictions)
          }
        },
      ),
    )
  })

  it('keeps bytes within maxBytes and equal to the sum of the live entries’ sizes after any sets of valid sizes', () => {
    const op = fc.oneof(
      {
        arbitrary: fc.record({
          kind: fc.constant('set' as const),
          key: fc.nat(30),
          size: fc.oneof(fc.nat(300), fc.double({ min: 0, max: 300, noNaN: true })),
        }),
        weight: 4,
      },
      { arbitrary: fc.record({ kind: fc.constant('delete' as const), key: fc.nat(30) }), weight: 1 },
    )
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 40 }),
        fc.integer({ min: 1, max: 250 }),
        fc.array(op, { maxLength: 200 }),
        (maxEntries, maxBytes, ops) => {
          const store = new MemoryStore<number>({ maxEntries, maxBytes })
          /** The size of the last successful set per key. */
          const sizes = new Map<string, number>()
          for (const o of ops) {
            const key = String(o.key)
            if (o.kind === 'delete') {
              store.delete(key)
            } else if (Math.ceil(o.size) > maxBytes) {
              expect(() => store.set(key, 0, { size: o.size })).toThrow(EntryTooLargeError)
            } else {
              store.set(key, 0, { size: o.size })
              sizes.set(key, Math.ceil(o.size))
            }
            let sum = 0
            for (const k of store.keys()) sum += sizes.get(k)!
            expect(Number.isFinite(store.bytes)).toBe(true)
            expect(store.bytes).toBeLessThanOrEqual(maxBytes)
            expect(store.bytes).toBe(sum)
          }
        },
      ),
      { numRuns: 300 },
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
