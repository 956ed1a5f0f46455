// A command the cache gave up on (its L2 timeout fired, the caller moved on) must never run later in Redis.
import { createCache, type Cache } from 'stratacache'
import { redisStore } from 'stratacache/redis'
import { createClient } from 'redis'
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { startRedis, type RedisServer } from '../helpers/redis-server.js'
import { commandCalls, sleep } from './support.js'
import { startProxy, type TcpProxy } from './tcp-proxy.js'

let redis: RedisServer
let proxy: TcpProxy
const closers: (() => Promise<unknown> | void)[] = []
beforeAll(async () => {
  redis = await startRedis()
})
afterAll(async () => {
  await redis.stop()
})
beforeEach(async () => {
  await redis.command('FLUSHALL')
  proxy = await startProxy(redis.port)
})
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close()
  await proxy.close()
})

/**
 * A cache whose L2 calls time out after `l2Timeout` ms: 100 for the cache whose abandoned calls are the subject, more
 * for the others, whose calls must not time out on a loaded machine.
 */
function cache(l2: ReturnType<typeof redisStore>, l2Timeout = 100): Cache {
  const c = createCache({ service: 'abandoned', l2, timeouts: { l2: l2Timeout } })
  closers.push(() => c.close())
  return c
}

const declare = (c: Cache, source: { value: string }) =>
  c.namespace('item', { key: 'i:{id}', ttl: '10m', l1: false, load: () => source.value })

/**
 * L2 calls of `c` not settled yet: neither answered, failed, timed out nor refused. A call's deadline moves by the
 * time the event loop was blocked while it was pending, so "its timeout has passed" is not "it was given up": wait
 * for this to reach 0 instead.
 */
function unsettled(c: Cache): number {
  const l2 = c.stats().l2!
  return l2.calls - l2.succeeded - l2.failures - l2.timeouts - l2.refused
}

/**
 * Records the commands Redis runs from now on (MONITOR, on a connection of its own, not through the proxy) until
 * `stop()`. `writes()`: the SETs and scripts among them a replay would send, from a client (not run by a script),
 * other than a namespace's generation read, which a cache rightly sends after reconnecting (its restore check:
 * docs/consistency.md).
 */
async function watchCommands() {
  const client = createClient({ url: redis.url })
  client.on('error', () => {})
  await client.connect()
  const seen: string[] = []
  await client.monitor((line: string) => seen.push(line))
  return {
    writes: () =>
      seen.filter(
        (line) => !/\[\d+ lua\]/.test(line) && /\] "(set|eval)" /i.test(line) && !line.includes('run_id'),
      ),
    stop: () => client.close(),
  }
}

/** Calls of `command` Redis has run since it started. */
async function calls(command: string): Promise<number> {
  return commandCalls(await redis.command('INFO', 'commandstats'), command)
}

describe('a client passed in, with its offline queue on (node-redis defaults)', () => {
  it('never replays, once the partition heals, the writes the cache gave up on during it', async () => {
    const source = { value: 'v1' }
    // The application's own client, default options: node-redis queues commands while disconnected.
    const userClient = createClient({ url: proxy.url })
    userClient.on('error', () => {})
    closers.push(() => userClient.close().catch(() => userClient.destroy()))
    const a = cache(redisStore({ client: userClient }))
    const b = cache(redisStore({ url: redis.url }), 2_000)
    await Promise.all([a.connect(), b.connect()])
    const nsA = declare(a, source)
    const nsB = declare(b, source)
    // Generations known: the reads the declarations started have settled.
    await expect.poll(() => unsettled(a) + unsettled(b)).toBe(0)

    await proxy.cut() // A is partitioned from Redis
    await expect.poll(() => userClient.isReady).toBe(false)
    // A answers from the source; its GET, version read and SET of v1 time out and are abandoned.
    expect(await nsA.get({ id: 1 })).toBe('v1')
    await nsA.get({ id: 2 }) // and a few more, as traffic goes on
    await nsA.get({ id: 3 })
    source.value = 'v2'
    await nsB.set({ id: 1 }, 'v2') // meanwhile B writes the new value
    expect(await nsB.get({ id: 1 })).toBe('v2')
    await expect.poll(() => unsettled(a)).toBe(0) // every call of A has timed out (or was refused)

    const before = { get: await calls('get') }
    const commands = await watchCommands()
    await proxy.heal() // A's client reconnects; a replay would happen now
    await expect.poll(() => userClient.isReady, { timeout: 5_000 }).toBe(true)
    await sleep(500)
    await commands.stop()
    expect(commands.writes()).toEqual([])
    const fresh = declare(cache(redisStore({ url: redis.url }), 2_000), { value: 'from the source' })
    expect(await fresh.get({ id: 1 })).toBe('v2')
    expect(await redis.command('EXISTS', nsA.key({ id: 2 }), nsA.key({ id: 3 }))).toBe(':0\r\n')
    expect(await redis.command('KEYS', '*#lock')).toBe('*0\r\n') // no lock left behind by a late SET NX
    // A works again through its client.
    expect(await nsA.get({ id: 1 })).toBe('v2')
    expect(await calls('get')).toBeGreaterThan(before.get)
  })
})

describe('a client the store made', () => {
  it('does not send the commands that waited for a reconnection the cache gave up on, once it succeeds late', async () => {
    const source = { value: 'v1' }
    const a = cache(redisStore({ url: proxy.url, connectTimeout: '5s' }))
    await a.connect()
    const ns = declare(a, source)
    await expect.poll(() => unsettled(a)).toBe(0) // generation known: its read has settled

    await proxy.cut() // the connection drops; the store reconnects with backoff
    await expect.poll(() => a.stats().l2?.status).not.toBe('ready')
    const held = proxy.connections
    proxy.hold() // the next attempt connects, but its handshake gets no answer until release
    await proxy.heal()
    await expect.poll(() => proxy.connections, { timeout: 5_000 }).toBeGreaterThan(held)
    // Its GET, version read and SET wait for that attempt; the cache gives up on them and answers from the source.
    expect(await ns.get({ id: 1 })).toBe('v1')
    await expect.poll(() => unsettled(a)).toBe(0) // every call waiting for the attempt has been given up

    const commands = await watchCommands()
    proxy.release()
    await expect.poll(() => a.stats().l2?.status, { timeout: 5_000 }).toBe('ready')
    await sleep(300)
    await commands.stop()
    expect(commands.writes()).toEqual([])
    expect(await redis.command('EXISTS', ns.key({ id: 1 }))).toBe(':0\r\n')
  })
})
