import { describe, expect, it, vi } from 'vitest'
import { LoaderError, LoaderTimeoutError, type Duration } from 'stratacache'
import { cacheFactory } from '../helpers/caches.js'
import { deferred } from '../helpers/deferred.js'
import { fakeClock } from '../helpers/fake-clock.js'

const newCache = cacheFactory('resilience')

describe('stale-while-revalidate', () => {
  it('answers a stale value at once and refreshes it once in the background, however many readers', async () => {
    const clock = fakeClock()
    let version = 0
    let gate = deferred<void>()
    const ns = newCache({ clock }).namespace('item', {
      key: 'item:{id}',
      ttl: '1m',
      jitter: 0,
      staleFor: '1h',
      load: async () => {
        const v = ++version
        if (v > 1) await gate.promise
        return `v${v}`
      },
    })
    expect(await ns.get({ id: 1 })).toBe('v1')
    clock.advance(60_000) // stale now
    const reads = await Promise.all(Array.from({ length: 100 }, () => ns.get({ id: 1 })))
    expect(new Set(reads)).toEqual(new Set(['v1']))
    await vi.waitFor(() => expect(version).toBe(2)) // one refresh started
    gate.resolve()
    await vi.waitFor(async () => expect(await ns.peek({ id: 1 })).toBe('v2'))
    expect(await ns.get({ id: 1 })).toBe('v2')
    expect(version).toBe(2)
    expect(ns.stats()).toMatchObject({ refreshes: 1, staleServed: { swr: 100 } })
    gate = deferred<void>()
  })

  it('stops serving a value once its stale window has passed, and loads in the foreground', async () => {
    const clock = fakeClock()
    let version = 0
    const ns = newCache({ clock }).namespace('item', {
      key: 'item:{id}',
      ttl: '1m',
      jitter: 0,
      staleFor: '10m',
      load: () => `v${++version}`,
    })
    await ns.get({ id: 1 })
    clock.advance(60_000 + 600_000)
    expect(await ns.get({ id: 1 })).toBe('v2')
    expect(ns.stats().staleServed.swr).toBe(0)
  })

  it('does not keep a stale window for negative entries', async () => {
    const clock = fakeClock()
    let calls = 0
    const ns = newCache({ clock }).namespace('item', {
      key: 'item:{id}',
      ttl: '1m',
      negativeTtl: '5s',
      staleFor: '1h',
      load: () => {
        calls++
        return null
      },
    })
    await ns.get({ id: 1 })
    clock.advance(5_000)
    await ns.get({ id: 1 })
    expect(calls).toBe(2)
    expect(ns.stats().staleServed.swr).toBe(0)
  })
})

describe('fail-safe', () => {
  function failingNamespace(throttle: Duration = '10s') {
    const clock = fakeClock()
    let calls = 0
    let failing = false
    const ns = newCache({ clock }).namespace('item', {
      key: 'item:{id}',
      ttl: '1m',
      jitter: 0,
      staleFor: '1h',
      staleWhileRevalidate: false,
      failSafeThrottle: throttle,
      load: () => {
        calls++
        if (failing) throw new Error('db down')
        return `v${calls}`
      },
    })
    return { clock, ns, calls: () => calls, fail: (on: boolean) => (failing = on) }
  }

  it('serves the stale value when the loader throws, counts it, and throttles the failing loader', async () => {
    const { clock, ns, calls, fail } = failingNamespace()
    expect(await ns.get({ id: 1 })).toBe('v1')
    clock.advance(60_000)
    fail(true)
    expect(await ns.get({ id: 1 })).toBe('v1')
    expect(calls()).toBe(2)
    // Inside the throttle the failing loader is not called again.
    for (let i = 0; i < 5; i++) expect(await ns.get({ id: 1 })).toBe('v1')
    expect(calls()).toBe(2)
    clock.advance(10_000)
    fail(false)
    expect(await ns.get({ id: 1 })).toBe('v3')
    expect(ns.stats()).toMatchObject({ loadErrors: 1, staleServed: { failSafe: 6, swr: 0 } })
  })

  it('without stale data rejects with a typed error carrying the loader error as cause', async () => {
    const cache = newCache()
    const boom = new Error('db down')
    const ns = cache.namespace('item', {
      key: 'item:{id}',
      ttl: '1m',
      staleFor: '1h',
      load: () => {
        throw boom
      },
    })
    const error = await ns.get({ id: 1 }).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(LoaderError)
    expect((error as LoaderError).cause).toBe(boom)
  })

  it('a stale-while-revalidate refresh that fails keeps the stale value and throttles further refreshes', async () => {
    const clock = fakeClock()
    let calls = 0
    const ns = newCache({ clock }).namespace('item', {
      key: 'item:{id}',
      ttl: '1m',
      jitter: 0,
      staleFor: '1h',
      failSafeThrottle: '30s',
      load: () => {
        if (++calls > 1) throw new Error('db down')
        return 'v1'
      },
    })
    await ns.get({ id: 1 })
    clock.advance(60_000)
    expect(await ns.get({ id: 1 })).toBe('v1')
    await vi.waitFor(() => expect(ns.stats().loadErrors).toBe(1))
    for (let i = 0; i < 10; i++) expect(await ns.get({ id: 1 })).toBe('v1')
    expect(calls).toBe(2)
    clock.advance(30_000)
    await ns.get({ id: 1 })
    await vi.waitFor(() => expect(calls).toBe(3))
  })
})

describe('loader timeouts', () => {
  it('hard timeout: aborts the loader signal and rejects with ERR_STRATA_LOADER_TIMEOUT', async () => {
    let signal: AbortSignal | undefined
    const ns = newCache().namespace('item', {
      key: 'item:{id}',
      ttl: '1m',
      timeouts: { hard: 30 },
      load: (_, context) => {
        signal = context.signal
        return new Promise<string>(() => {})
      },
    })
    const error = await ns.get({ id: 1 }).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(LoaderTimeoutError)
    expect(error).toMatchObject({ code: 'ERR_STRATA_LOADER_TIMEOUT', timeoutMs: 30 })
    expect(signal?.aborted).toBe(true)
    expect(signal?.reason).toBe(error)
    expect(ns.stats().loadTimeouts).toBe(1)
  })

  it('hard timeout with a stale value: answers stale (fail-safe)', async () => {
    const clock = fakeClock()
    let calls = 0
    const ns = newCache({ clock }).namespace('item', {
      key: 'item:{id}',
      ttl: '1m',
      jitter: 0,
      staleFor: '1h',
      staleWhileRevalidate: false,
      timeouts: { hard: 30 },
      load: () => (++calls === 1 ? 'v1' : new Promise<string>(() => {})),
    })
    await ns.get({ id: 1 })
    clock.advance(60_000)
    expect(await ns.get({ id: 1 })).toBe('v1')
    expect(ns.stats()).toMatchObject({ loadTimeouts: 1, staleServed: { failSafe: 1 } })
  })

  it('soft timeout: answers stale at the soft timeout, and the load lands in the cache later', async () => {
    const clock = fakeClock()
    let calls = 0
    const slow = deferred<string>()
    const ns = newCache({ clock }).namespace('item', {
      key: 'item:{id}',
      ttl: '1m',
      jitter: 0,
      staleFor: '1h',
      staleWhileRevalidate: false,
      timeouts: { soft: 20, hard: 5_000 },
      load: () => (++calls === 1 ? 'v1' : slow.promise),
    })
    await ns.get({ id: 1 })
    clock.advance(60_000)
    expect(await ns.get({ id: 1 })).toBe('v1')
    expect(ns.stats().staleServed.softTimeout).toBe(1)
    // Readers meanwhile join the running load's flight and get the stale answer: no second load.
    expect(await ns.get({ id: 1 })).toBe('v1')
    expect(calls).toBe(2)
    slow.resolve('v2')
    await vi.waitFor(async () => expect(await ns.peek({ id: 1 })).toBe('v2'))
    expect(await ns.get({ id: 1 })).toBe('v2')
    expect(calls).toBe(2)
  })

  it('ignores a loader that rejects after its hard timeout: no unhandled rejection, exact counts', async () => {
    const unhandled: unknown[] = []
    const onUnhandled = (reason: unknown) => unhandled.push(reason)
    process.on('unhandledRejection', onUnhandled)
    try {
      let rejectLate!: (error: Error) => void
      const ns = newCache().namespace('item', {
        key: 'item:{id}',
        ttl: '1m',
        timeouts: { hard: 20 },
        load: () => new Promise<string>((_, reject) => (rejectLate = reject)),
      })
      await expect(ns.get({ id: 1 })).rejects.toMatchObject({ code: 'ERR_STRATA_LOADER_TIMEOUT' })
      rejectLate(new Error('too late'))
      await new Promise((resolve) => setTimeout(resolve, 20))
      expect(unhandled).toEqual([])
      expect(ns.stats()).toMatchObject({ loads: 1, loadTimeouts: 1 })
    } finally {
      process.off('unhandledRejection', onUnhandled)
    }
  })

  it('refuses a soft timeout that is not shorter than the hard one', () => {
    expect(() =>
      newCache().namespace('item', { key: 'x', ttl: 1, timeouts: { soft: '2s', hard: '1s' }, load: () => 1 }),
    ).toThrow(/`item.timeouts.soft`.*shorter than timeouts.hard/)
  })
})

describe('refresh-ahead', () => {
  it('refreshes an entry read after the declared fraction of its TTL, before it expires', async () => {
    const clock = fakeClock()
    let version = 0
    const ns = newCache({ clock }).namespace('item', {
      key: 'item:{id}',
      ttl: '100s',
      jitter: 0,
      refreshAhead: 0.8,
      load: () => `v${++version}`,
    })
    await ns.get({ id: 1 })
    clock.advance(79_000)
    expect(await ns.get({ id: 1 })).toBe('v1')
    expect(version).toBe(1)
    clock.advance(1_000)
    expect(await ns.get({ id: 1 })).toBe('v1') // still fresh: answered at once, refreshed behind
    await vi.waitFor(async () => expect(await ns.peek({ id: 1 })).toBe('v2'))
    clock.advance(21_000) // past the first entry's TTL: the refreshed one answers
    expect(await ns.get({ id: 1 })).toBe('v2')
    expect(version).toBe(2)
    expect(ns.stats()).toMatchObject({ refreshes: 1, misses: 1 })
  })

  it('refuses a fraction outside (0, 1]', () => {
    expect(() =>
      newCache().namespace('item', { key: 'x', ttl: 1, refreshAhead: 1.5, load: () => 1 }),
    ).toThrow(/`item.refreshAhead`/)
  })
})

describe('hot keys', () => {
  it('ranks the most read keys and refreshes them shortly before they expire', async () => {
    const clock = fakeClock()
    const loads = new Map<number, number>()
    const ns = newCache({ clock }).namespace('item', {
      key: 'item:{id}',
      ttl: '10s',
      jitter: 0,
      hotKeys: { track: 2, interval: 20 },
      load: ({ id }) => {
        loads.set(Number(id), (loads.get(Number(id)) ?? 0) + 1)
        return `v${id}`
      },
    })
    for (let id = 1; id <= 5; id++) await ns.get({ id })
    for (let i = 0; i < 50; i++) await ns.get({ id: 3 })
    for (let i = 0; i < 20; i++) await ns.get({ id: 5 })
    await vi.waitFor(() =>
      expect(ns.hotKeys().map((h) => h.key)).toEqual([ns.key({ id: 3 }), ns.key({ id: 5 })]),
    )
    expect(ns.hotKeys()[0]!.score).toBeGreaterThan(ns.hotKeys()[1]!.score)
    // Within two intervals of expiry, the hot keys (and only they) are refreshed in the background.
    clock.advance(10_000 - 30)
    await vi.waitFor(() => expect([loads.get(3), loads.get(5)]).toEqual([2, 2]))
    expect([loads.get(1), loads.get(2), loads.get(4)]).toEqual([1, 1, 1])
  })

  it('is empty unless declared', async () => {
    const ns = newCache().namespace('item', { key: 'item:{id}', ttl: '1m', load: () => 1 })
    await ns.get({ id: 1 })
    expect(ns.hotKeys()).toEqual([])
  })
})

describe('source protection', () => {
  it('never runs more loads at once than source.maxConcurrent, across many distinct keys', async () => {
    let running = 0
    let peak = 0
    const ns = newCache().namespace('item', {
      key: 'item:{id}',
      ttl: '1m',
      source: { maxConcurrent: 3 },
      load: async ({ id }) => {
        peak = Math.max(peak, ++running)
        await new Promise((resolve) => setTimeout(resolve, 5))
        running--
        return id
      },
    })
    const values = await Promise.all(Array.from({ length: 30 }, (_, id) => ns.get({ id })))
    expect(values).toEqual(Array.from({ length: 30 }, (_, id) => id))
    expect(peak).toBe(3)
    expect(ns.stats()).toMatchObject({ loads: 30, loadsPerSecond: 30, sourceBusy: 0 })
  })

  it("overflow 'error' refuses a load over the limit at once with ERR_STRATA_SOURCE_BUSY", async () => {
    const gate = deferred<string>()
    const ns = newCache().namespace('item', {
      key: 'item:{id}',
      ttl: '1m',
      source: { maxConcurrent: 1, overflow: 'error' },
      load: () => gate.promise,
    })
    const first = ns.get({ id: 1 })
    await expect(ns.get({ id: 2 })).rejects.toMatchObject({
      code: 'ERR_STRATA_SOURCE_BUSY',
      reason: 'concurrency',
    })
    gate.resolve('ok')
    expect(await first).toBe('ok')
    expect(ns.stats().sourceBusy).toBe(1)
  })

  it("overflow 'stale' answers from stale data while the source is at its limit", async () => {
    const clock = fakeClock()
    const gate = deferred<string>()
    let calls = 0
    const ns = newCache({ clock }).namespace('item', {
      key: 'item:{id}',
      ttl: '1m',
      jitter: 0,
      staleFor: '1h',
      staleWhileRevalidate: false,
      source: { maxConcurrent: 1, overflow: 'stale' },
      load: ({ id }) => (++calls <= 2 ? `v${id}` : gate.promise),
    })
    await ns.get({ id: 1 })
    await ns.get({ id: 2 })
    clock.advance(60_000)
    const busy = ns.get({ id: 1 }) // takes the only slot and waits on the gate
    expect(await ns.get({ id: 2 })).toBe('v2') // no room: the stale value answers
    gate.resolve('fresh')
    expect(await busy).toBe('fresh')
    expect(ns.stats()).toMatchObject({ sourceBusy: 1, staleServed: { failSafe: 1 } })
  })
})
