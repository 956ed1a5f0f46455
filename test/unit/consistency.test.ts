import { describe, expect, it } from 'vitest'
import { InvalidOptionError, NoWriterError, WriteError } from 'stratacache'
import { cacheFactory } from '../helpers/caches.js'
import { fakeClock } from '../helpers/fake-clock.js'

const newCache = cacheFactory('consistency')

describe('consistency classes are declared and enforced', () => {
  it.each([
    [{ consistency: 'strong', l1: { ttl: '1s' } }, /`item.l1`.*'strong' keeps no L1/],
    [{ consistency: 'strong', staleFor: '1m' }, /`item.staleFor`.*never serves stale/],
    [{ consistency: 'bounded' }, /`item.maxStaleness`.*needs its bound/],
    [
      { consistency: 'eventual', maxStaleness: '5s' },
      /`item.maxStaleness`.*belongs to consistency: 'bounded'/,
    ],
    [{ consistency: 'linearizable' }, /`item.consistency`/],
    [{ writeStrategy: 'write-around' }, /`item.writeStrategy`/],
  ])('refuses %j at construction', (options, message) => {
    const declare = () => newCache().namespace('item', { key: 'k:{id}', ttl: '1m', ...options } as never)
    expect(declare).toThrow(InvalidOptionError)
    expect(declare).toThrow(message)
  })

  it('strong keeps no L1 copy', async () => {
    let calls = 0
    const ns = newCache().namespace('item', {
      key: 'k:{id}',
      ttl: '1m',
      consistency: 'strong',
      load: () => ++calls,
    })
    await ns.get({ id: 1 })
    await ns.get({ id: 1 })
    expect(calls).toBe(2) // no L2 here, and no L1 by class
    expect(ns.options.l1TtlMs).toBe(0)
  })

  it('bounded never keeps an L1 copy longer than maxStaleness, whatever the TTL', async () => {
    const clock = fakeClock()
    let calls = 0
    const ns = newCache({ clock }).namespace('item', {
      key: 'k:{id}',
      ttl: '1h',
      consistency: 'bounded',
      maxStaleness: '5s',
      load: () => ++calls,
    })
    await ns.get({ id: 1 })
    clock.advance(4_999)
    expect(await ns.get({ id: 1 })).toBe(1)
    clock.advance(1)
    expect(await ns.get({ id: 1 })).toBe(2)
  })
})

describe('write()', () => {
  function writable(strategy: 'write-through' | 'cache-aside', failing = false) {
    const source = new Map<string, string>()
    let loads = 0
    const ns = newCache().namespace('item', {
      key: 'k:{id}',
      ttl: '1h',
      writeStrategy: strategy,
      load: ({ id }) => {
        loads++
        return source.get(String(id)) ?? 'none'
      },
      write: ({ id }, value) => {
        if (failing) throw new Error('db refused')
        source.set(String(id), value)
      },
    })
    return { ns, source, loads: () => loads }
  }

  it('write-through: writes the source, then caches the new value', async () => {
    const { ns, source, loads } = writable('write-through')
    expect(await ns.get({ id: 1 })).toBe('none')
    await ns.write({ id: 1 }, 'new')
    expect(source.get('1')).toBe('new')
    expect(await ns.get({ id: 1 })).toBe('new')
    expect(loads()).toBe(1)
  })

  it('cache-aside: writes the source, then drops the entry so the next read loads it', async () => {
    const { ns, loads } = writable('cache-aside')
    await ns.get({ id: 1 })
    await ns.write({ id: 1 }, 'new')
    expect(await ns.get({ id: 1 })).toBe('new')
    expect(loads()).toBe(2)
  })

  it('a failed source write rejects with ERR_STRATA_WRITE_FAILED and leaves the cache unchanged', async () => {
    const { ns } = writable('write-through', true)
    await ns.get({ id: 1 })
    const error = await ns.write({ id: 1 }, 'new').catch((e: unknown) => e)
    expect(error).toBeInstanceOf(WriteError)
    expect((error as WriteError).cause).toMatchObject({ message: 'db refused' })
    expect(await ns.get({ id: 1 })).toBe('none')
  })

  it('refuses write() without a write function, naming the fix', async () => {
    const ns = newCache().namespace('item', { key: 'k:{id}', ttl: '1m', load: () => 1 })
    await expect(ns.write({ id: 1 }, 2)).rejects.toBeInstanceOf(NoWriterError)
    await expect(ns.write({ id: 1 }, 2)).rejects.toThrow(/Declare `write`.*set\(\)/)
  })
})
