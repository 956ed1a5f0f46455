// A wrong or dead Redis is visible: one line naming the address and the reason, one when it is back, none per call.
import { createCache, type Cache, type CacheOptions } from 'stratacache'
import { redisStore, type RedisStoreOptions } from 'stratacache/redis'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { startRedis, type RedisServer } from '../helpers/redis-server.js'
import { blockedBetween, recordingLogger, sleep, timed, watchStalls } from './support.js'

// A Redis that is down: nothing listens on port 1 (a privileged port that no service or test server uses), so
// connecting is refused at once. A free port picked at random could be taken meanwhile by the redis-server of a test
// file running alongside.
const DEAD_PORT = 1
const DEAD_URL = `redis://127.0.0.1:${DEAD_PORT}`

const closers: (() => Promise<unknown>)[] = []
afterEach(async () => {
  vi.restoreAllMocks()
  for (const close of closers.splice(0)) await close()
})

async function ownRedis(args: string[] = []): Promise<RedisServer> {
  const redis = await startRedis(args)
  closers.push(() => redis.stop())
  return redis
}

function newCache(store: RedisStoreOptions, options: Partial<CacheOptions> = {}): Cache {
  const cache = createCache({
    service: 'visible',
    l2: redisStore(store),
    timeouts: { l2: 100 },
    ...options,
  })
  closers.unshift(() => cache.close())
  return cache
}

const declare = (cache: Cache) =>
  cache.namespace('item', { key: 'item:{id}', ttl: '1m', lock: false, load: ({ id }) => `v${id}` })

/** Captures what the process writes to stderr (and keeps it off the test output): the default logger's path. */
function captureStderr(): { lines: () => string[] } {
  let text = ''
  vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
    text += typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8')
    return true
  })
  return { lines: () => text.split('\n').filter((line) => line.startsWith('stratacache')) }
}

/** Durations printed by people-facing text: a whole number, or one decimal, then a unit. */
const ROUNDED = /\b\d+(\.\d)? (ms|s|min|h|d)\b/
const UNROUNDED = /\d\.\d{2,}/

describe('with no logger option: warnings and errors on stderr', () => {
  it('logs exactly one warning naming the address and ECONNREFUSED within its first second, not one per get', async () => {
    const stderr = captureStderr()
    watchStalls()
    const started = performance.now()
    const ns = declare(newCache({ url: DEAD_URL }))
    await expect.poll(() => stderr.lines().length, { interval: 10 }).toBe(1)
    // Logged at the first refused attempt, not after some retrying (attempts go up to 2 s apart). Less the time the
    // event loop was blocked: a stall of this process delays the line by as much.
    const loggedAt = performance.now()
    expect(loggedAt - started - blockedBetween(started, loggedAt)).toBeLessThan(1_000)

    for (let id = 0; id < 100; id++) expect(await ns.get({ id })).toBe(`v${id}`)
    await sleep(500) // reconnection attempts go on meanwhile, silently

    expect(stderr.lines()).toEqual([
      `stratacache: cannot reach Redis at 127.0.0.1:${DEAD_PORT} (ECONNREFUSED: nothing listens there). Reads fall ` +
        "through to your loaders meanwhile; writes reject. Check that redis-server runs and that the url's host " +
        'and port are right; retrying, at most 2 s apart. [service=visible]',
    ])
  })

  it('is silenced by logger: false', async () => {
    const stderr = captureStderr()
    const ns = declare(newCache({ url: DEAD_URL }, { logger: false }))
    for (let id = 0; id < 20; id++) await ns.get({ id })
    await sleep(300)
    expect(stderr.lines()).toEqual([])
  })

  it('never prints the password of the url', async () => {
    const stderr = captureStderr()
    const redis = await ownRedis(['--requirepass', 'right-pass'])
    const url = `redis://app:Wr0ng-pa55@127.0.0.1:${redis.port}`
    const cache = newCache({ url }, { timeouts: { l2: 100, connect: 300 } })
    const connect = await timed(() => cache.connect())
    await expect.poll(() => stderr.lines().length).toBe(1)
    expect(stderr.lines()[0]).toMatch(/WRONGPASS: authentication failed/)
    expect(!connect.ok && connect.error).toMatchObject({
      code: 'ERR_STRATA_L2_UNAVAILABLE',
      reason: 'WRONGPASS',
    })
    const write = await timed(() => declare(cache).set({ id: 1 }, 'x'))
    const texts = [
      ...stderr.lines(),
      !connect.ok && String(connect.error),
      !write.ok && String(write.error),
      !write.ok && String((write.error as Error).cause),
    ]
    expect(texts.join('\n')).toContain(`127.0.0.1:${redis.port}`)
    expect(texts.join('\n')).not.toContain('Wr0ng-pa55')
  })
})

describe('with a logger', () => {
  it('says authentication failed for a wrong password (WRONGPASS), and what to check', async () => {
    const redis = await ownRedis(['--requirepass', 'right-pass'])
    const log = recordingLogger()
    const ns = declare(newCache({ url: redis.url, password: 'not-the-pass' }, { logger: log.logger }))
    await expect.poll(() => log.visible().length).toBe(1)
    for (let id = 0; id < 20; id++) expect(await ns.get({ id })).toBe(`v${id}`)
    await sleep(300)
    expect(log.visible()).toHaveLength(1)
    const [line] = log.visible()
    expect(line).toMatchObject({
      level: 'warn',
      fields: { service: 'visible', address: `127.0.0.1:${redis.port}`, reason: 'WRONGPASS' },
    })
    expect(line!.message).toMatch(
      /^stratacache: cannot log in to Redis at 127\.0\.0\.1:\d+ \(WRONGPASS: authentication failed: .*\)\. .*Check the password and the ACL user/,
    )
    expect(JSON.stringify(log.lines)).not.toContain('not-the-pass')
  })

  it('says a password is required (NOAUTH) when none is given', async () => {
    const redis = await ownRedis(['--requirepass', 'right-pass'])
    const log = recordingLogger()
    declare(newCache({ url: redis.url }, { logger: log.logger }))
    await expect.poll(() => log.visible().length).toBe(1)
    expect(log.visible()[0]!.message).toMatch(
      /cannot log in to Redis at 127\.0\.0\.1:\d+ \(NOAUTH: authentication failed: Redis requires a password/,
    )
  })

  it('logs once when a running Redis stops, and once when it is back, with how long it was down', async () => {
    const redis = await ownRedis()
    const log = recordingLogger()
    const cache = newCache(
      { url: redis.url, maxReconnectDelay: 200 },
      { circuitBreaker: { failureThreshold: 3, breakFor: 200 }, logger: log.logger },
    )
    const ns = declare(cache)
    await cache.connect()
    await ns.get({ id: 'warm' })
    expect(log.visible()).toEqual([])

    await redis.kill()
    for (let id = 0; id < 100; id++) {
      expect(await ns.get({ id })).toBe(`v${id}`)
      await sleep(10)
    }
    await redis.restart()
    await expect
      .poll(
        async () => {
          await ns.get({ id: 'probe' })
          return log.visible().map((line) => line.message)
        },
        { timeout: 10_000, interval: 50 },
      )
      .toHaveLength(2)
    await sleep(300)

    const [down, back] = log.visible()
    expect(log.visible().map((line) => line.message)).toHaveLength(2)
    expect(down!.message).toMatch(/^stratacache: cannot reach Redis at 127\.0\.0\.1:\d+ \(ECONNREFUSED: /)
    expect(down!.message).toContain('retrying, at most 200 ms apart')
    expect(back).toMatchObject({
      level: 'warn',
      fields: { service: 'visible', address: `127.0.0.1:${redis.port}`, downMs: expect.any(Number) },
    })
    expect(Number.isInteger(back!.fields['downMs'])).toBe(true)
    expect(back!.message).toMatch(
      /^stratacache: Redis at 127\.0\.0\.1:\d+ is reachable again; it was unreachable for \d+(\.\d)? s\. /,
    )
  })

  it('logs once when a connected Redis stops answering (paused), with rounded durations, and once when it answers', async () => {
    const redis = await ownRedis()
    const log = recordingLogger()
    const cache = newCache(
      { url: redis.url },
      { circuitBreaker: { failureThreshold: 3, breakFor: 250 }, logger: log.logger },
    )
    const ns = declare(cache)
    await cache.connect()
    redis.pause()
    closers.unshift(async () => redis.resume())
    for (let id = 0; id < 30; id++) await ns.get({ id })
    await sleep(600) // probes fail and re-open the circuit: no more lines
    expect(log.visible()).toHaveLength(1)
    expect(log.visible()[0]!.message).toMatch(
      /^stratacache: Redis at 127\.0\.0\.1:\d+ does not answer: 3 calls in a row failed or took longer than timeouts\.l2 \(100 ms\)\. .* every 250 ms \(circuitBreaker\.breakFor\)/,
    )

    redis.resume()
    await expect
      .poll(
        async () => {
          await ns.get({ id: 'probe' })
          return log.visible().length
        },
        { timeout: 5_000, interval: 50 },
      )
      .toBe(2)
    expect(log.visible()[1]!.message).toMatch(
      /is reachable again; it was not answering for \d+(\.\d)? (ms|s)\. /,
    )
  })

  it('prints the time before the next try of an open circuit rounded, never as a float', async () => {
    const cache = newCache(
      { url: DEAD_URL },
      { circuitBreaker: { failureThreshold: 2, breakFor: 2_000 }, logger: false },
    )
    const ns = declare(cache)
    for (let id = 0; id < 3; id++) await ns.get({ id })
    await sleep(3) // a few ms into the break: the time left is no longer a round number
    const write = await timed(() => ns.set({ id: 1 }, 'x'))
    expect(write.ok).toBe(false)
    const error = !write.ok && (write.error as Error & { retryInMs: number; operation: string })
    expect(error).toMatchObject({ code: 'ERR_STRATA_L2_CIRCUIT_OPEN', operation: expect.any(String) })
    expect(error && error.message).toMatch(/lets one call try Redis again in (2|1\.\d) s\./)
    expect(error && error.message).toMatch(ROUNDED)
    expect(error && error.message).not.toMatch(UNROUNDED)
  })
})
