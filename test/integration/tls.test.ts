import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createCache, type CacheOptions } from 'stratacache'
import { redisStore, type RedisStoreOptions } from 'stratacache/redis'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { makeCertificates, type Certificates } from '../helpers/certificates.js'
import { startRedis, type RedisServer } from '../helpers/redis-server.js'
import { recordingLogger } from '../chaos/support.js'

const dir = mkdtempSync(join(tmpdir(), 'strata-tls-'))
let certs: Certificates
let redis: RedisServer
const closers: (() => Promise<unknown>)[] = []

beforeAll(async () => {
  certs = await makeCertificates(dir)
  redis = await startRedis([], {
    tls: {
      cert: certs.serverCert,
      key: certs.serverKey,
      ca: certs.ca,
      clientCert: certs.clientCert,
      clientKey: certs.clientKey,
    },
  })
  // An ACL user allowed only the keys and channels of service 'acl-svc'.
  const reply = await redis.command(
    'ACL',
    'SETUSER',
    'cache-app',
    'on',
    '>s3cret-pass',
    'resetkeys',
    '~acl-svc:*',
    '~acl-svc#*',
    'resetchannels',
    '&acl-svc#*',
    '-@all',
    '+get',
    '+mget',
    '+set',
    '+unlink',
    '+scan',
    '+incr',
    '+pexpire',
    '+pttl',
    '+sadd',
    '+sscan',
    '+rename',
    '+eval',
    '+publish',
    '+subscribe',
    '+ping',
    '+time',
    '+hello',
  )
  expect(reply).toBe('+OK\r\n')
}, 60_000)
afterAll(async () => {
  await redis?.stop()
  rmSync(dir, { recursive: true, force: true })
})
afterEach(async () => {
  await Promise.all(closers.splice(0).map((close) => close()))
})

const pem = (path: string) => readFileSync(path)

function newCache(store: Partial<RedisStoreOptions>, options: Partial<CacheOptions> = {}) {
  const cache = createCache({
    service: 'tls-svc',
    l1: false,
    timeouts: { connect: '1s', l2: '2s' },
    l2: redisStore({ url: redis.url, connectTimeout: '500ms', ...store }),
    ...options,
  })
  closers.push(() => cache.close())
  return cache
}

const trusted = () => ({ ca: pem(certs.ca), cert: pem(certs.clientCert), key: pem(certs.clientKey) })

describe('L2 over TLS (rediss://) with a CA and a client certificate', () => {
  it('reads and writes through a TLS-only redis-server', async () => {
    expect(redis.url).toMatch(/^rediss:\/\/127\.0\.0\.1:\d+$/)
    const writer = newCache({ tls: trusted() })
    await writer.connect()
    const ns = writer.namespace('item', {
      key: 'item:{id}',
      ttl: '1m',
      load: ({ id }) => ({ id, via: 'loader' }),
    })
    await ns.set({ id: 1 }, { id: 1, via: 'set' })
    // The helper speaks TLS with the client certificate too, and sees the entry.
    expect(await redis.command('EXISTS', ns.key({ id: 1 }))).toBe(':1\r\n')

    const reader = newCache({ tls: trusted() }).namespace('item', { key: 'item:{id}', ttl: '1m' })
    expect(await reader.get({ id: 1 })).toEqual({ id: 1, via: 'set' })
    expect(reader.stats()).toMatchObject({ l2Hits: 1, l2Errors: 0 })
  })

  const untrusted =
    /cannot set up TLS with Redis at 127\.0\.0\.1:\d+ \(\w+: the server's certificate is not signed by a CA the cache trusts\)/
  const refusedCertificate =
    /cannot set up TLS with Redis at 127\.0\.0\.1:\d+ \(\w+: the server refused the client certificate, or needs one and got none\)/
  it.each([
    [
      'no CA (the server certificate is not trusted)',
      () => ({ cert: pem(certs.clientCert), key: pem(certs.clientKey) }),
      untrusted,
    ],
    ['no client certificate', () => ({ ca: pem(certs.ca) }), refusedCertificate],
    [
      'a client certificate from another CA',
      () => ({ ca: pem(certs.ca), cert: pem(certs.rogueClientCert), key: pem(certs.rogueClientKey) }),
      refusedCertificate,
    ],
    [
      'the wrong server name',
      () => ({ ...trusted(), servername: 'redis.example.com' }),
      /cannot set up TLS with Redis at 127\.0\.0\.1:\d+ \(ERR_TLS_CERT_ALTNAME_INVALID: the server's certificate is not for this host name\)/,
    ],
  ])('refuses to connect with %s, says why, and reads fall through to the loader', async (_, tls, why) => {
    const log = recordingLogger()
    const cache = newCache({ tls: tls() }, { logger: log.logger })
    const connect = cache.connect()
    await expect(connect).rejects.toMatchObject({ code: 'ERR_STRATA_L2_UNAVAILABLE' })
    await expect(connect).rejects.toThrow(why)
    // One warning, saying the same, and what to check.
    expect(log.visible()).toEqual([
      expect.objectContaining({ level: 'warn', message: expect.stringMatching(why) as unknown }),
    ])
    expect(log.visible()[0]!.message).toContain('Check `tls.ca`')
    const ns = cache.namespace('item', { key: 'item:{id}', ttl: '1m', load: () => 'from loader' })
    expect(await ns.get({ id: 1 })).toBe('from loader')
  })

  it('does not reach a TLS port over plain redis://, and says the port may expect TLS', async () => {
    const cache = newCache({ url: redis.url.replace('rediss://', 'redis://') }, { logger: false })
    const connect = cache.connect()
    await expect(connect).rejects.toMatchObject({ code: 'ERR_STRATA_L2_UNAVAILABLE' })
    // The server drops a connection that does not start a TLS handshake.
    await expect(connect).rejects.toThrow(
      /cannot reach Redis at 127\.0\.0\.1:\d+ \((ECONNRESET|connection closed): the server or the network closed/,
    )
  })

  it('refuses tls options with a redis:// URL, and half a client certificate, at construction', () => {
    expect(() => redisStore({ url: 'redis://127.0.0.1:6379', tls: { ca: 'x' } })).toThrow(
      expect.objectContaining({ code: 'ERR_STRATA_INVALID_OPTION', option: 'redisStore.url' }) as Error,
    )
    expect(() => redisStore({ url: redis.url, tls: { ca: 'x', cert: 'y' } })).toThrow(
      expect.objectContaining({ option: 'redisStore.tls' }) as Error,
    )
    expect(() => redisStore({ url: 'rediss://u:p@127.0.0.1:1', password: 'p' })).toThrow(
      expect.objectContaining({ option: 'redisStore.password' }) as Error,
    )
  })
})

describe('Redis ACL users', () => {
  it('connects as an ACL user limited to its service’s keys and channels, with every cache feature working', async () => {
    const cache = createCache({
      service: 'acl-svc',
      l1: false,
      timeouts: { l2: '2s' },
      l2: redisStore({ url: redis.url, tls: trusted(), username: 'cache-app', password: 's3cret-pass' }),
    })
    closers.push(() => cache.close())
    await cache.connect()
    let loads = 0
    const ns = cache.namespace('item', {
      key: 'item:{id}',
      ttl: '1m',
      tags: ({ id }) => [`group:${id % 2}`],
      load: ({ id }: { id: number }) => {
        loads++
        return { id }
      },
    })
    expect(await ns.get({ id: 1 })).toEqual({ id: 1 }) // lock, GET, load, SET, announce
    await ns.set({ id: 2 }, { id: 2 }) // version bump, SET, tag set, bus publish
    await expect.poll(() => ns.peek({ id: 1 })).toEqual({ id: 1 })
    expect(await ns.invalidateTag('group:0')).toBe(1)
    expect(await ns.clear()).toBeGreaterThanOrEqual(1)
    expect(ns.stats()).toMatchObject({ l2Errors: 0, loads: 1 })
    expect(loads).toBe(1)
  })

  it('cannot touch another service’s keys: NOPERM errors are L2 errors, and reads fall through', async () => {
    const cache = createCache({
      service: 'other-svc',
      l1: false,
      timeouts: { l2: '2s' },
      l2: redisStore({ url: redis.url, tls: trusted(), username: 'cache-app', password: 's3cret-pass' }),
    })
    closers.push(() => cache.close())
    await cache.connect()
    const ns = cache.namespace('item', { key: 'item:{id}', ttl: '1m', lock: false, load: () => 'loaded' })
    expect(await ns.get({ id: 1 })).toBe('loaded')
    await expect(ns.set({ id: 1 }, 'x')).rejects.toMatchObject({ code: 'ERR_STRATA_L2_FAILED' })
    expect(ns.stats().l2Errors).toBeGreaterThanOrEqual(1)
  })

  it('does not connect with a wrong password, and says authentication failed', async () => {
    const cache = newCache({ tls: trusted(), username: 'cache-app', password: 'wrong' }, { logger: false })
    const connect = cache.connect()
    await expect(connect).rejects.toMatchObject({ code: 'ERR_STRATA_L2_UNAVAILABLE', reason: 'WRONGPASS' })
    await expect(connect).rejects.toThrow(/cannot log in to Redis at .*WRONGPASS: authentication failed/)
  })
})
