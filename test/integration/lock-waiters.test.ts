// The cross-process lock on a real Redis: a stray `#lock` key is broken, not waited on; a waiter is woken by the
// announcement (or by the pub/sub connection coming back), and does not poll Redis while it waits.
import { createCache, type L2Store } from 'stratacache'
import { redisStore } from 'stratacache/redis'
import { createClient } from 'redis'
import { afterEach, beforeAll, describe, expect, it } from 'vitest'
import { commandCalls } from '../chaos/support.js'
import { startProxy } from '../chaos/tcp-proxy.js'
import { deferred } from '../helpers/deferred.js'
import { startRedis } from '../helpers/redis-server.js'

// A server of the file's own, not the suite's shared one: a test here drops every pub/sub connection
// (`CLIENT KILL TYPE pubsub`), which would reach the caches of the files running beside this one.
let url: string
let port: number
const closers: (() => Promise<unknown>)[] = []
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close()
})

let raw: ReturnType<typeof createClient>
beforeAll(async () => {
  const redis = await startRedis()
  url = redis.url
  port = redis.port
  raw = createClient({ url })
  await raw.connect()
  return async () => {
    await raw.close()
    await redis.stop()
  }
})

/** A real Redis store whose calls are counted by method name (the calls still reach Redis). */
function counted(store: L2Store): { store: L2Store; calls: Map<string, number> } {
  const calls = new Map<string, number>()
  const proxy = new Proxy(store, {
    get(target, prop, receiver) {
      const value: unknown = Reflect.get(target, prop, receiver === proxy ? target : receiver)
      if (typeof value !== 'function' || typeof prop !== 'string') return value
      return (...args: unknown[]) => {
        calls.set(prop, (calls.get(prop) ?? 0) + 1)
        return (value as (...a: unknown[]) => unknown).apply(target, args)
      }
    },
  })
  return { store: proxy, calls }
}

async function cacheOn(service: string, l2: L2Store = redisStore({ url })) {
  const cache = createCache({ service, l2, timeouts: { l2: '2s' } })
  closers.push(() => cache.close())
  await cache.connect()
  return cache
}

describe('a lock key that cannot be a live lock', () => {
  const strays: [string, (key: string) => Promise<unknown>][] = [
    ['with no expiry', (key) => raw.set(key, 'AAAAAAAAAAAAAAAA')],
    ['holding foreign text, with an expiry', (key) => raw.set(key, 'held by a script', { PX: 600_000 })],
    ['of another type (a hash)', (key) => raw.hSet(key, 'owner', 'someone')],
  ]
  for (const [index, [what, plant]] of strays.entries()) {
    it(`is broken by the next miss, which loads at once instead of waiting: ${what}`, async () => {
      const cache = await cacheOn('lock-stray')
      let loads = 0
      const ns = cache.namespace('item', {
        key: 'i:{id}',
        ttl: '1m',
        lock: { ttl: '5s', wait: '1h' }, // waiting on the stray key would outlast the test
        load: ({ id }) => {
          loads++
          return `v${id}`
        },
      })
      const id = index + 1 // a key of its own per case
      const lockKey = ns.key({ id }) + '#lock'
      await plant(lockKey)
      expect(await ns.get({ id })).toBe(`v${id}`)
      expect(loads).toBe(1)
      expect(ns.stats()).toMatchObject({ lockWaits: 0, locksBroken: 1 })
      await expect.poll(() => raw.exists(lockKey)).toBe(0) // our lock, released after the value landed
    })
  }

  it("respects another process's live lock: waits for its value instead of loading", async () => {
    const gate = deferred<string>()
    const a = await cacheOn('lock-live')
    const b = await cacheOn('lock-live')
    let loadsB = 0
    const nsA = a.namespace('item', { key: 'i:{id}', ttl: '1m', load: () => gate.promise })
    const nsB = b.namespace('item', {
      key: 'i:{id}',
      ttl: '1m',
      load: () => {
        loadsB++
        return 'from b'
      },
    })
    const first = nsA.get({ id: 7 })
    await expect.poll(() => raw.exists(nsA.key({ id: 7 }) + '#lock')).toBe(1)
    const second = nsB.get({ id: 7 })
    await expect.poll(() => nsB.stats().lockWaits).toBe(1)
    gate.resolve('from a')
    expect(await first).toBe('from a')
    expect(await second).toBe('from a')
    expect(loadsB).toBe(0)
    expect(nsB.stats().locksBroken).toBe(0)
  })
})

describe('a lock waiter', () => {
  it('sleeps until the announcement: a few commands per wait, no polling, no PTTL', async () => {
    const gate = deferred<string>()
    const a = await cacheOn('lock-quiet')
    const { store, calls } = counted(redisStore({ url }))
    const b = await cacheOn('lock-quiet', store)
    const nsA = a.namespace('item', {
      key: 'i:{id}',
      ttl: '1m',
      lock: { ttl: '10s' },
      load: () => gate.promise,
    })
    const nsB = b.namespace('item', { key: 'i:{id}', ttl: '1m', lock: { ttl: '10s' }, load: () => 'from b' })
    const first = nsA.get({ id: 1 })
    await expect.poll(() => raw.exists(nsA.key({ id: 1 }) + '#lock')).toBe(1)
    calls.clear()
    const second = nsB.get({ id: 1 })
    await expect.poll(() => nsB.stats().lockWaits).toBe(1)
    // The holder takes 1.5 s; a waiter that polled every 250 ms would send ~24 commands meanwhile.
    await new Promise((resolve) => setTimeout(resolve, 1_500))
    gate.resolve('from a')
    expect(await second).toBe('from a')
    expect(await first).toBe('from a')
    // One read of L2, one lock attempt, a read after registering for the announcement, one after it.
    expect(calls.get('acquireLock')).toBe(1)
    expect(calls.get('ttl') ?? 0).toBe(0)
    expect(calls.get('get')).toBeLessThanOrEqual(3)
    const total = [...calls.values()].reduce((sum, n) => sum + n, 0)
    expect(total).toBeLessThanOrEqual(8)
  })

  it('reads L2 again when its pub/sub connection comes back: an announcement lost meanwhile costs no lock TTL', async () => {
    const gate = deferred<string>()
    const a = await cacheOn('lock-lost')
    const b = await cacheOn('lock-lost')
    // A lock TTL and a wait far past the test's timeout: only the wake-up on reconnection can end B's wait in time.
    const lock = { ttl: '60s', wait: '120s' } as const
    const nsA = a.namespace('item', { key: 'i:{id}', ttl: '1m', lock, load: () => gate.promise })
    const nsB = b.namespace('item', { key: 'i:{id}', ttl: '1m', lock, load: () => 'from b' })
    const first = nsA.get({ id: 1 })
    await expect.poll(() => raw.exists(nsA.key({ id: 1 }) + '#lock')).toBe(1)
    const second = nsB.get({ id: 1 })
    await expect.poll(() => nsB.stats().lockWaits).toBe(1)
    // Drop every subscriber, then let A finish at once: its announcement goes out while B's subscriber is still
    // away (the store waits at least 40 ms before reconnecting), so B never hears it.
    await raw.sendCommand(['CLIENT', 'KILL', 'TYPE', 'pubsub'])
    gate.resolve('from a')
    expect(await first).toBe('from a')
    expect(await second).toBe('from a')
  }, 15_000)

  it('adopts the value that landed between its last read and the lock it then won, instead of loading it again', async () => {
    // B reaches Redis through a link 150 ms each way: its read after the wait runs in Redis 300 ms before its next
    // lock attempt does, and the value lands in between (another process stores it and the lock is free). The
    // announcement of that landing wakes no one: B was reading, not waiting.
    const link = await startProxy(port, { latencyMs: 150 })
    closers.push(() => link.close())
    const a = await cacheOn('lock-late-read')
    const b = await cacheOn('lock-late-read', redisStore({ url: link.url }))
    let loadsB = 0
    const declare = (load: () => string) =>
      ({ key: 'i:{id}', ttl: '1m', lock: { ttl: '10s', wait: '10s' }, load }) as const
    const nsA = a.namespace(
      'item',
      declare(() => 'unused'),
    )
    const nsB = b.namespace(
      'item',
      declare(() => {
        loadsB++
        return 'from b'
      }),
    )
    await nsB.get({ id: 0 }) // B knows the namespace's generation (no lock without it)
    loadsB = 0
    // Another process's live lock (a token of ours, in its shape), expiring in 800 ms: B waits it out.
    await raw.set(nsB.key({ id: 1 }) + '#lock', 'TTTTTTTTTTTTTTTT', { PX: 800 })
    const gets = async () => commandCalls(await raw.info('commandstats'), 'get')
    const second = nsB.get({ id: 1 })
    await expect.poll(() => nsB.stats().lockWaits).toBe(1)
    await new Promise((resolve) => setTimeout(resolve, 400)) // its read after the failed attempt ran too
    const before = await gets()
    // Its read once the lock expired has just run in Redis (a miss): the value lands now.
    await expect.poll(gets, { interval: 2, timeout: 3_000 }).toBeGreaterThan(before)
    await nsA.set({ id: 1 }, 'from a')
    expect(await second).toBe('from a')
    expect(loadsB).toBe(0)
    // The lock it won and did not need is handed back.
    await expect.poll(() => raw.exists(nsB.key({ id: 1 }) + '#lock')).toBe(0)
  })

  it("loads at once when the holder's value never lands (a delete won the race), instead of sleeping out the lock's TTL", async () => {
    const gate = deferred<string>()
    const a = await cacheOn('lock-refused')
    const b = await cacheOn('lock-refused')
    const lock = { ttl: '60s', wait: '120s' } as const // only the wake-up on release can end B's wait in time
    let loadsB = 0
    const nsA = a.namespace('item', {
      key: 'i:{id}',
      ttl: '1m',
      lock,
      load: () => gate.promise,
    })
    const nsB = b.namespace('item', {
      key: 'i:{id}',
      ttl: '1m',
      lock,
      load: () => {
        loadsB++
        return 'new, from b'
      },
    })
    const first = nsA.get({ id: 1 })
    await expect.poll(() => raw.exists(nsA.key({ id: 1 }) + '#lock')).toBe(1)
    const second = nsB.get({ id: 1 })
    await expect.poll(() => nsB.stats().lockWaits).toBe(1)
    // The source changes while A loads: A's value is older than the delete, so its store is refused.
    await nsB.delete({ id: 1 })
    gate.resolve('old, from a')
    expect(await first).toBe('old, from a')
    expect(await second).toBe('new, from b')
    expect(loadsB).toBe(1)
    expect(nsA.stats().staleLoadsDropped).toBe(1)
  }, 15_000)

  it('a miss racing the release of the previous load of its key (still in flight) does not sleep out the lock TTL', async () => {
    // The first get's lock is released in the background after its store; the second get, on an entry the clock
    // already expired, tries the lock while that release is under way, and must hear it.
    let now = Date.now()
    const cache = createCache({
      service: 'lock-release-race',
      l2: redisStore({ url }),
      clock: { now: () => now },
    })
    closers.push(() => cache.close())
    await cache.connect()
    let loads = 0
    const ns = cache.namespace('item', {
      key: 'i:{id}',
      ttl: '1s',
      jitter: 0,
      lock: { ttl: '60s', wait: '120s' },
      load: () => `v${++loads}`,
    })
    for (let id = 1; id <= 5; id++) {
      expect(await ns.get({ id })).toBe(`v${loads}`)
      now += 1_001
      expect(await ns.get({ id })).toBe(`v${loads}`)
    }
    expect(loads).toBe(10)
  }, 15_000)
})
