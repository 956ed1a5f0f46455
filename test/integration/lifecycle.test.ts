import { fileURLToPath } from 'node:url'
import { createClient } from 'redis'
import { CacheClosedError, createCache } from 'stratacache'
import { redisStore } from 'stratacache/redis'
import { afterEach, describe, expect, inject, it } from 'vitest'
import { rawClient, runChild } from '../chaos/support.js'

const url = inject('redisUrl')
const closers: (() => Promise<void>)[] = []
afterEach(async () => {
  await Promise.all(closers.splice(0).map((close) => close()))
})

const childScript = fileURLToPath(new URL('./fixtures/close-child.ts', import.meta.url))

describe('a Redis client passed in by the user', () => {
  it('is used by the cache, and left open by cache.close()', async () => {
    const client = createClient({ url })
    client.on('error', () => {})
    await client.connect()
    closers.push(async () => {
      if (client.isOpen) await client.close()
    })
    const cache = createCache({ service: 'it-lifecycle', l2: redisStore({ client }) })
    const ns = cache.namespace('user-client', { key: 'item:{id}', ttl: '1m', load: ({ id }) => `v${id}` })
    await ns.set({ id: 1 }, 'set through the user client')
    expect(await client.get(ns.key({ id: 1 }))).toMatch(/^SC/)
    expect(cache.stats().l2).toMatchObject({ status: 'ready', circuit: 'closed', failures: 0, timeouts: 0 })

    await cache.close()
    expect(client.isOpen).toBe(true)
    expect(client.isReady).toBe(true)
    expect(await client.ping()).toBe('PONG')
    await client.close()
    expect(client.isOpen).toBe(false)
  })

  it("keeps the user's own 'error' listener after cache.close(): a later socket error reaches it", async () => {
    const client = createClient({ url })
    const seen: string[] = []
    client.on('error', (error: Error) => seen.push(error.message))
    await client.connect()
    closers.push(async () => {
      if (client.isOpen) await client.close()
    })
    const cache = createCache({ service: 'it-lifecycle', l2: redisStore({ client }) })
    await cache.connect()
    await cache.close()
    // node-redis emits on the client behind the object createClient() returns (`_self`): what a socket error does.
    const emitter = (client as unknown as { _self: { emit(event: string, error: Error): boolean } })._self
    expect(() => emitter.emit('error', new Error('read ECONNRESET'))).not.toThrow()
    expect(seen).toEqual(['read ECONNRESET'])
    expect(await client.ping()).toBe('PONG')
  })

  it('is connected by the store when it was not open yet, and still not closed by cache.close()', async () => {
    const client = createClient({ url })
    client.on('error', () => {})
    closers.push(async () => {
      if (client.isOpen) await client.close()
    })
    const cache = createCache({ service: 'it-lifecycle', l2: redisStore({ client }) })
    await cache.connect()
    expect(client.isReady).toBe(true)
    const ns = cache.namespace('user-client-lazy', {
      key: 'item:{id}',
      ttl: '1m',
      load: ({ id }) => `v${id}`,
    })
    expect(await ns.get({ id: 1 })).toBe('v1')
    await expect.poll(() => client.exists(ns.key({ id: 1 }))).toBe(1)
    await cache.close()
    expect(client.isOpen).toBe(true)
    expect(await client.ping()).toBe('PONG')
  })
})

describe('cache.close()', () => {
  it('rejects calls made after close with ERR_STRATA_CLOSED, and can be called twice', async () => {
    const cache = createCache({ service: 'it-lifecycle', l2: redisStore({ url }) })
    const ns = cache.namespace('closed', { key: 'item:{id}', ttl: '1m', load: () => 1 })
    await ns.get({ id: 1 })
    await cache.close()
    await cache.close()
    await expect(ns.get({ id: 1 })).rejects.toBeInstanceOf(CacheClosedError)
    await expect(ns.set({ id: 1 }, 2)).rejects.toMatchObject({ code: 'ERR_STRATA_CLOSED' })
    expect(cache.stats().l2?.status).toBe('closed')
  })

  it('waits for the background L2 write of a load before it resolves', async () => {
    const raw = await rawClient(url)
    closers.push(() => raw.close())
    const cache = createCache({ service: 'it-lifecycle', l2: redisStore({ url }) })
    await cache.connect()
    const ns = cache.namespace('close-flush', { key: 'item:{id}', ttl: '1m', load: ({ id }) => `v${id}` })
    await ns.getMany([...Array(20).keys()].map((id) => ({ id })))
    await cache.close()
    expect(await raw.exists([...Array(20).keys()].map((id) => ns.key({ id })))).toBe(20)
  })

  it('leaves no timer or socket behind: a process that used the cache exits by itself after close()', async () => {
    const result = await runChild(childScript, [url, '300'], 15_000)
    expect(result.timedOut, `child did not exit; stderr: ${result.stderr}`).toBe(false)
    expect(result.code, result.stderr).toBe(0)
    const report = parseReport(result.stdout)
    expect(report.reads).toBeGreaterThanOrEqual(7)
    expect(Date.now() - report.closedAt).toBeLessThan(3_000)
    expect(report.active).toEqual([])
  })

  it('leaves no timer or socket behind with Redis down: the process exits by itself after close()', async () => {
    // Nothing listens on port 1 (a privileged port that no service or test server uses), whereas a free port picked
    // at random could be taken meanwhile by another test file's redis-server. The child uses the cache for 1.5 s, so
    // its reconnection backoff has grown.
    const deadUrl = 'redis://127.0.0.1:1'
    const result = await runChild(childScript, [deadUrl, '1500'], 15_000)
    expect(result.timedOut, `child did not exit; stderr: ${result.stderr}`).toBe(false)
    expect(result.code, result.stderr).toBe(0)
    const report = parseReport(result.stdout)
    expect(report.reads).toBeGreaterThanOrEqual(7)
    expect(Date.now() - report.closedAt).toBeLessThan(3_000)
    expect(report.active).toEqual([])
  })
})

function parseReport(stdout: string): { reads: number; closedAt: number; active: string[] } {
  return JSON.parse(stdout.trim()) as { reads: number; closedAt: number; active: string[] }
}
