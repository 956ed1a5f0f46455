import diagnosticsChannel from 'node:diagnostics_channel'
import { describe, expect, it } from 'vitest'
import {
  CacheClosedError,
  channelNames,
  DuplicateNamespaceError,
  InvalidOptionError,
  LoaderError,
  LoadManyResultError,
  NoLoaderError,
  SerializationError,
  createCache,
  type CacheOptions,
} from 'stratacache'
import { cacheFactory } from '../helpers/caches.js'
import { deferred } from '../helpers/deferred.js'
import { fakeClock } from '../helpers/fake-clock.js'

const newCache = cacheFactory('unit')

describe('get: L1 and in-process single-flight', () => {
  it('calls the loader once for 1,000 concurrent callers and releases them all with its value', async () => {
    const cache = newCache()
    const gate = deferred<string>()
    let calls = 0
    const ns = cache.namespace('item', {
      key: 'item:{id}',
      ttl: '1m',
      load: () => {
        calls++
        return gate.promise
      },
    })
    const all = Promise.all(Array.from({ length: 1_000 }, () => ns.get({ id: 1 })))
    gate.resolve('value')
    expect(new Set(await all)).toEqual(new Set(['value']))
    expect(calls).toBe(1)
    // One loader call; each of the 1,000 reads is a miss (it waited for the load), as the read histogram counts it.
    expect(ns.stats()).toMatchObject({ misses: 1_000, loads: 1, l1Hits: 0 })
    expect(ns.stats().latencyMs.read.count).toBe(1_000)
  })

  it('delivers a loader error to every waiter as a typed error with the cause, and tries again on the next call', async () => {
    const cache = newCache()
    let calls = 0
    const boom = new Error('db down')
    const ns = cache.namespace('item', {
      key: 'item:{id}',
      ttl: '1m',
      load: async () => {
        calls++
        await Promise.resolve()
        if (calls === 1) throw boom
        return 'ok'
      },
    })
    const results = await Promise.allSettled(Array.from({ length: 10 }, () => ns.get({ id: 1 })))
    expect(calls).toBe(1)
    for (const result of results) {
      expect(result.status).toBe('rejected')
      const error = (result as PromiseRejectedResult).reason as LoaderError
      expect(error).toBeInstanceOf(LoaderError)
      expect(error.code).toBe('ERR_STRATA_LOADER_FAILED')
      expect(error.cause).toBe(boom)
      expect(error.message).toContain('db down')
    }
    expect(await ns.get({ id: 1 })).toBe('ok')
    expect(calls).toBe(2)
    expect(ns.stats()).toMatchObject({ loads: 2, loadErrors: 1 })
  })

  it('serves the second get from L1 without calling the loader', async () => {
    const cache = newCache()
    let calls = 0
    const ns = cache.namespace('item', {
      key: 'item:{id}',
      ttl: '1m',
      load: ({ id }) => ({ id, n: ++calls }),
    })
    const first = await ns.get({ id: 'a' })
    expect(await ns.get({ id: 'a' })).toBe(first) // the same decoded object: no copy on an L1 hit
    expect(calls).toBe(1)
    expect(ns.stats()).toMatchObject({ l1Hits: 1, misses: 1, hitRatio: 0.5 })
  })

  it('caches null and undefined as negative entries with their own TTL, never confused with a miss', async () => {
    const clock = fakeClock()
    const cache = newCache({ clock })
    let calls = 0
    const ns = cache.namespace('item', {
      key: 'item:{id}',
      ttl: '10m',
      negativeTtl: '5s',
      load: ({ id }) => {
        calls++
        return id === 'null' ? null : undefined
      },
    })
    expect(await ns.get({ id: 'null' })).toBeNull()
    expect(await ns.get({ id: 'undef' })).toBeUndefined()
    expect(await ns.get({ id: 'null' })).toBeNull()
    expect(await ns.get({ id: 'undef' })).toBeUndefined()
    expect(calls).toBe(2)
    clock.advance(5_000)
    await ns.get({ id: 'null' })
    expect(calls).toBe(3)
  })

  it('expires L1 entries at ttl plus jitter on the injected clock', async () => {
    const clock = fakeClock()
    const cache = newCache({ clock, random: () => 1 })
    let calls = 0
    const ns = cache.namespace('item', { key: 'item:{id}', ttl: '1m', jitter: '10s', load: () => ++calls })
    await ns.get({ id: 1 })
    clock.advance(69_999)
    expect(await ns.get({ id: 1 })).toBe(1)
    clock.advance(1)
    expect(await ns.get({ id: 1 })).toBe(2)
  })

  it('spreads expirations of entries written together over the jitter window', async () => {
    const clock = fakeClock()
    let seed = 0
    const cache = newCache({ clock, random: () => (seed = (seed * 9301 + 49297) % 233280) / 233280 })
    const ns = cache.namespace('item', { key: 'item:{id}', ttl: '1m', jitter: '30s', load: ({ id }) => id })
    await Promise.all(Array.from({ length: 1_000 }, (_, id) => ns.get({ id })))
    // Count how many survive at each 5 s step of the jitter window: a smooth decline, not a cliff.
    const ids = Array.from({ length: 1_000 }, (_, id) => id)
    const alive: number[] = []
    clock.advance(60_000)
    for (let step = 0; step < 6; step++) {
      const values = await Promise.all(ids.map((id) => ns.peek({ id })))
      alive.push(values.filter((v) => v !== undefined).length)
      clock.advance(5_000)
    }
    expect(alive[0]).toBeGreaterThan(950)
    for (let i = 1; i < alive.length; i++) expect(alive[i]).toBeLessThan(alive[i - 1]!)
    expect(alive[5]).toBeLessThan(250)
  })

  it('keeps L1 shorter than L2 when the namespace says so, and skips L1 when l1 is false', async () => {
    const clock = fakeClock()
    const cache = newCache({ clock })
    let calls = 0
    const short = cache.namespace('short', {
      key: 'k:{id}',
      ttl: '1m',
      l1: { ttl: '5s' },
      load: () => ++calls,
    })
    await short.get({ id: 1 })
    clock.advance(5_000)
    await short.get({ id: 1 })
    expect(calls).toBe(2)
    const none = cache.namespace('none', { key: 'k:{id}', ttl: '1m', l1: false, load: () => ++calls })
    await none.get({ id: 1 })
    await none.get({ id: 1 })
    expect(calls).toBe(4)
    expect(cache.stats().l1?.entries).toBe(1)
  })
})

describe('getMany', () => {
  it('returns values in order, loads missing keys with one loadMany call and duplicates once', async () => {
    const cache = newCache()
    const batches: number[][] = []
    const ns = cache.namespace('item', {
      key: 'item:{id}',
      ttl: '1m',
      loadMany: (list) => {
        batches.push(list.map((p) => Number(p.id)))
        return list.map((p) => `v${p.id}`)
      },
    })
    await ns.get({ id: 2 })
    expect(await ns.getMany([{ id: 1 }, { id: 2 }, { id: 3 }, { id: 1 }])).toEqual(['v1', 'v2', 'v3', 'v1'])
    expect(batches).toEqual([[2], [1, 3]])
  })

  it('falls back to load per missing key and joins keys already loading', async () => {
    const cache = newCache()
    const gate = deferred<string>()
    let calls = 0
    const ns = cache.namespace('item', {
      key: 'item:{id}',
      ttl: '1m',
      load: ({ id }) => {
        calls++
        return id === 1 ? gate.promise : `v${id}`
      },
    })
    const pending = ns.get({ id: 1 })
    const many = ns.getMany([{ id: 1 }, { id: 2 }])
    gate.resolve('v1')
    expect(await many).toEqual(['v1', 'v2'])
    expect(await pending).toBe('v1')
    expect(calls).toBe(2)
  })

  it('rejects with a typed error when loadMany returns the wrong number of results', async () => {
    const cache = newCache()
    const ns = cache.namespace('item', { key: 'item:{id}', ttl: '1m', loadMany: () => ['only one'] })
    await expect(ns.getMany([{ id: 1 }, { id: 2 }])).rejects.toBeInstanceOf(LoadManyResultError)
    await expect(ns.getMany([{ id: 1 }, { id: 2 }])).rejects.toThrow(/one entry per requested key \(2/)
  })

  it('rejects when a loader fails, while the keys that loaded stay cached', async () => {
    const cache = newCache()
    let calls = 0
    const ns = cache.namespace('item', {
      key: 'item:{id}',
      ttl: '1m',
      load: ({ id }) => {
        calls++
        if (id === 2) throw new Error('no 2')
        return `v${id}`
      },
    })
    await expect(ns.getMany([{ id: 1 }, { id: 2 }])).rejects.toBeInstanceOf(LoaderError)
    expect(await ns.get({ id: 1 })).toBe('v1')
    expect(calls).toBe(2)
  })

  it('refuses a list that is not an array, and bad parameters inside it', async () => {
    const ns = newCache().namespace('item', { key: 'item:{id}', ttl: '1m', load: () => 1 })
    await expect(ns.getMany('nope' as never)).rejects.toThrow(/expected an array of key parameter objects/)
    const fromRequest: string = ''
    await expect(ns.getMany([{ id: 1 }, { id: fromRequest }])).rejects.toMatchObject({
      code: 'ERR_STRATA_INVALID_KEY_PARAM',
    })
  })
})

describe('writes', () => {
  it('set replaces the value, delete removes it, peek never loads, clear empties the namespace only', async () => {
    const cache = newCache()
    let calls = 0
    const a = cache.namespace('a', { key: 'k:{id}', ttl: '1m', load: ({ id }) => `loaded ${id} #${++calls}` })
    const b = cache.namespace('b', { key: 'k:{id}', ttl: '1m', load: ({ id }) => `b ${id}` })
    await a.set({ id: 1 }, 'manual')
    expect(await a.get({ id: 1 })).toBe('manual')
    expect(await a.peek({ id: 2 })).toBeUndefined()
    await a.delete({ id: 1 })
    expect(await a.peek({ id: 1 })).toBeUndefined()
    expect(await a.get({ id: 1 })).toBe('loaded 1 #1')
    await b.get({ id: 1 })
    expect(await a.clear()).toBe(0)
    expect(await a.peek({ id: 1 })).toBeUndefined()
    expect(await b.peek({ id: 1 })).toBe('b 1')
  })

  it('does not cache a load that a set raced: the set value wins, the load still answers its callers', async () => {
    const cache = newCache()
    const gate = deferred<string>()
    const ns = cache.namespace('item', { key: 'item:{id}', ttl: '1m', load: () => gate.promise })
    const loading = ns.get({ id: 1 })
    await ns.set({ id: 1 }, 'written')
    gate.resolve('stale from the source')
    expect(await loading).toBe('stale from the source')
    expect(await ns.get({ id: 1 })).toBe('written')
  })

  it('does not cache a load that a delete raced', async () => {
    const cache = newCache()
    const gate = deferred<string>()
    let calls = 0
    const ns = cache.namespace('item', {
      key: 'item:{id}',
      ttl: '1m',
      load: () => (++calls === 1 ? gate.promise : 'fresh'),
    })
    const loading = ns.get({ id: 1 })
    await ns.delete({ id: 1 })
    gate.resolve('old')
    await loading
    expect(await ns.get({ id: 1 })).toBe('fresh')
  })

  it('rejects a set whose value the serializer cannot represent, storing nothing', async () => {
    const cache = newCache({ l1: { maxEntries: 10, maxBytes: 10_000 } })
    const ns = cache.namespace('item', { key: 'item:{id}', ttl: '1m' })
    await expect(ns.set({ id: 1 }, { n: 1n })).rejects.toBeInstanceOf(SerializationError)
    expect(await ns.peek({ id: 1 })).toBeUndefined()
  })

  it('rejects get without a loader when nothing is cached, naming the fixes', async () => {
    const ns = newCache().namespace('item', { key: 'item:{id}', ttl: '1m' })
    await expect(ns.get({ id: 1 })).rejects.toBeInstanceOf(NoLoaderError)
    await expect(ns.get({ id: 1 })).rejects.toThrow(/Declare `load`.*`peek`.*`set`/)
  })
})

describe('diagnostics_channel events', () => {
  it('publishes miss, load and hit events in order with their content', async () => {
    const cache = newCache()
    const ns = cache.namespace('events', { key: 'item:{id}', ttl: '1m', load: () => 'v' })
    const seen: [string, unknown][] = []
    const names = [channelNames.hit, channelNames.miss, channelNames.load] as const
    const listeners = names.map((name) => {
      const listener = (message: unknown) => seen.push([name, message])
      diagnosticsChannel.subscribe(name, listener)
      return () => diagnosticsChannel.unsubscribe(name, listener)
    })
    try {
      await ns.get({ id: 1 })
      await ns.get({ id: 1 })
    } finally {
      listeners.forEach((off) => off())
    }
    const key = 'unit:events:v1:item:1'
    expect(seen.map(([name]) => name)).toEqual(['stratacache:miss', 'stratacache:load', 'stratacache:hit'])
    expect(seen[0]![1]).toEqual({ namespace: 'events', key })
    expect(seen[1]![1]).toMatchObject({ namespace: 'events', keys: [key], durationMs: expect.any(Number) })
    expect(seen[2]![1]).toEqual({ namespace: 'events', key, tier: 'l1' })
  })
})

describe('lifecycle and configuration', () => {
  it('refuses every call after close with a typed error, and aborts the signal of a load under way', async () => {
    const cache = newCache()
    let signal: AbortSignal | undefined
    const ns = cache.namespace('item', {
      key: 'item:{id}',
      ttl: '1m',
      load: (_, context) => {
        signal = context.signal
        started()
        return new Promise<number>((resolve) => context.signal.addEventListener('abort', () => resolve(1)))
      },
    })
    let started!: () => void
    const loaderCalled = new Promise<void>((resolve) => (started = resolve))
    const loading = ns.get({ id: 1 })
    await loaderCalled
    await cache.close()
    expect(await loading).toBe(1)
    await cache.close()
    expect(signal?.aborted).toBe(true)
    await expect(ns.get({ id: 1 })).rejects.toBeInstanceOf(CacheClosedError)
    await expect(ns.set({ id: 1 }, 2)).rejects.toMatchObject({ code: 'ERR_STRATA_CLOSED' })
    expect(() => cache.namespace('other', { key: 'x', ttl: 1 })).toThrow(CacheClosedError)
  })

  it('refuses a second namespace with the same name', () => {
    const cache = newCache()
    cache.namespace('item', { key: 'x', ttl: 1 })
    expect(() => cache.namespace('item', { key: 'y', ttl: 1 })).toThrow(DuplicateNamespaceError)
  })

  it.each([
    [{ service: '' }, /`service`/],
    [{ service: 'a:b' }, /`service`/],
    [{ l1: { maxEntries: 0 } }, /maxEntries/],
    [{ l1: 'big' }, /`l1`/],
    [{ l2: {} }, /`l2`/],
    [{ timeouts: { l2: '1 minute' } }, /`timeouts.l2`/],
    [{ timeouts: { l2: 0 } }, /`timeouts.l2`.*at least 1 ms/],
    [{ circuitBreaker: { failureThreshold: 0 } }, /failureThreshold/],
    [{ serializer: { id: 0, serialize: String, deserialize: String } }, /`serializer`/],
    [{ clock: { now: 1 } }, /`clock`/],
    [{ maxKeyLength: 10 }, /maxKeyLength/],
  ])('refuses cache options %j at construction, naming the option', (options, message) => {
    const build = () => createCache({ service: 'ok', ...options } as CacheOptions)
    expect(build).toThrow(InvalidOptionError)
    expect(build).toThrow(message)
  })

  it.each([
    [{ key: 'x' }, /`item.ttl`.*every namespace declares its freshness/],
    [{ key: 'x', ttl: -1 }, /`item.ttl`/],
    [{ key: 'x', ttl: '5 minutes' }, /`item.ttl`: expected .*'5m'/],
    [{ key: 'x', ttl: 0 }, /`item.ttl`.*at least 1 ms/],
    [{ key: 'x', ttl: 1, jitter: 'soon' }, /`item.jitter`/],
    [{ key: 'x', ttl: 1, negativeTtl: 0 }, /`item.negativeTtl`/],
    [{ key: 'x', ttl: 1, l1: { ttl: 0 } }, /`item.l1.ttl`/],
    [{ key: 'x', ttl: 1, load: 'db' }, /`item.load`: expected a function/],
    [{ key: 'x', ttl: 1, owner: 3 }, /`item.owner`/],
    [{ key: 'a b', ttl: 1 }, /`item.key`/],
    [{ key: 'x', ttl: 1, schemaVersion: 1.5 }, /`item.schemaVersion`/],
  ])('refuses namespace options %j at construction, naming the option', (options, message) => {
    const build = () => newCache().namespace('item', options as never)
    expect(build).toThrow(InvalidOptionError)
    expect(build).toThrow(message)
  })

  it('reports invalid key parameters as a rejected promise, not a synchronous throw', async () => {
    const ns = newCache().namespace('item', { key: 'item:{id}', ttl: '1m', load: () => 1 })
    const fromRequest: string = '' // a runtime value: the compiler cannot see it is empty
    const result = ns.get({ id: fromRequest })
    expect(result).toBeInstanceOf(Promise)
    await expect(result).rejects.toMatchObject({
      code: 'ERR_STRATA_INVALID_KEY_PARAM',
      param: 'id',
      problem: 'empty',
    })
  })
})

describe('L1 eviction through the namespace', () => {
  it('keeps a re-read entry and the newest write when full, evicting an entry read once (reads count as use)', async () => {
    const cache = newCache({ l1: { maxEntries: 3 } })
    let calls = 0
    const ns = cache.namespace('item', { key: 'item:{id}', ttl: '1m', load: ({ id }) => `v${id}#${++calls}` })
    await ns.get({ id: 1 })
    await ns.get({ id: 2 })
    await ns.get({ id: 3 })
    await ns.get({ id: 1 }) // 1 is read twice now: the policy protects it
    await ns.get({ id: 4 }) // full: 2 or 3 (each read once) goes
    expect(calls).toBe(4)
    await ns.get({ id: 1 })
    await ns.get({ id: 4 })
    expect(calls).toBe(4)
    expect(ns.stats().l1Hits).toBe(3)
  })

  it('serves a value from L1 right after it was set, even in a full one-entry L1', async () => {
    const cache = newCache({ l1: { maxEntries: 1 } })
    let calls = 0
    const ns = cache.namespace('item', { key: 'item:{id}', ttl: '1m', load: ({ id }) => `v${id}#${++calls}` })
    for (let id = 0; id < 50; id++) {
      // Make the resident entry as frequent as can be, so admission would refuse a newcomer if it could.
      for (let i = 0; i < 20; i++) await ns.get({ id: 0 })
      await ns.set({ id: 1000 + id }, `set${id}`)
      const before = calls
      expect(await ns.get({ id: 1000 + id })).toBe(`set${id}`)
      expect(calls).toBe(before)
    }
  })
})
