// A lock's keep-alive stops when the cache closes, even if the loader holding the lock never settles.
import { createCache } from 'stratacache'
import { redisStore } from 'stratacache/redis'
import { createClient } from 'redis'
import { afterEach, describe, expect, inject, it } from 'vitest'

const url = inject('redisUrl')
const closers: (() => Promise<unknown>)[] = []
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close()
})

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))
/** The first test's lock TTL. */
const LOCK_TTL_MS = 1_500

describe('the cross-process lock', () => {
  it('stops extending its lock once the cache closes, though the loader ignores its signal and never settles', async () => {
    // The application's client: the cache does not close it, so a keep-alive left running could still reach Redis.
    const client = createClient({ url })
    client.on('error', () => {})
    await client.connect()
    closers.push(() => client.close())
    const cache = createCache({ service: 'lock-keep-alive', l2: redisStore({ client }) })
    await cache.connect()
    // The keep-alive extends the lock every third of its TTL (500 ms here): a stall of the loop shorter than the
    // other two thirds (1 s) cannot let Redis expire a lock that is still kept alive.
    const ns = cache.namespace('item', {
      key: 'i:{id}',
      ttl: '1m',
      lock: { ttl: LOCK_TTL_MS },
      load: () => new Promise<string>(() => {}), // never settles, ignores its signal
    })
    const lockKey = ns.key({ id: 1 }) + '#lock'
    void ns.get({ id: 1 }).catch(() => {})
    await expect.poll(() => client.exists(lockKey)).toBe(1)
    await sleep(2 * LOCK_TTL_MS + 100) // past twice the lock's TTL: only the keep-alive keeps it
    expect(await client.exists(lockKey)).toBe(1)

    await cache.close()
    // Expired within one TTL of the close: a keep-alive left running would keep it past the poll's three.
    await expect.poll(() => client.exists(lockKey), { timeout: 3 * LOCK_TTL_MS }).toBe(0)
  })

  it('still releases a lock whose load settles normally', async () => {
    const cache = createCache({ service: 'lock-keep-alive', l2: redisStore({ url }) })
    closers.push(() => cache.close())
    await cache.connect()
    const ns = cache.namespace('item', {
      key: 'i:{id}',
      ttl: '1m',
      lock: { ttl: 300 },
      load: () => sleep(400).then(() => 'v'),
    })
    expect(await ns.get({ id: 2 })).toBe('v') // the load outlived the lock's TTL: the keep-alive held it
    const client = createClient({ url })
    await client.connect()
    closers.push(() => client.close())
    await expect.poll(() => client.exists(ns.key({ id: 2 }) + '#lock')).toBe(0) // released after the value landed
  })
})
