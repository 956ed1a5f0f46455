// The default logger's repeat guard does not hide a second outage: Redis killed, restarted, killed again within its
// 60 s window prints "cannot reach Redis" twice, with the "reachable again" line between. And an outage is one
// line even when a reconnection's handshake is reset midway (a Redis killed while the client reconnects).
import { createCache } from 'stratacache'
import { redisStore } from 'stratacache/redis'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { setTimeout as sleep } from 'node:timers/promises'
import { consoleLogger } from '../../src/observability/console-logger.js'
import { closedGraceMs } from '../../src/observability/l2-outage-log.js'
import { startRedis } from '../helpers/redis-server.js'
import { startProxy } from './tcp-proxy.js'

const closers: (() => Promise<unknown>)[] = []
afterEach(async () => {
  vi.restoreAllMocks()
  for (const close of closers.splice(0)) await close()
})

/** Captures what the process writes to stderr (and keeps it off the test output): the default logger's path. */
function captureStderr(): { lines: () => string[] } {
  let text = ''
  vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
    text += typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8')
    return true
  })
  return { lines: () => text.split('\n').filter((line) => line.startsWith('stratacache')) }
}

/** The store's longest wait between reconnection attempts, in ms. */
const RETRY_MS = 100
const DOWN = /^stratacache: cannot reach Redis at 127\.0\.0\.1:\d+ \(ECONNREFUSED: /
const BACK = /^stratacache: Redis at 127\.0\.0\.1:\d+ is reachable again; /

describe('the default logger and a second outage', () => {
  /** A cache on `url` logging to the captured stderr, and a poll of its lines (a get per poll keeps L2 tried). */
  async function watched(url: string) {
    const stderr = captureStderr()
    const cache = createCache({
      service: 'second-outage',
      l2: redisStore({ url, maxReconnectDelay: RETRY_MS }),
      timeouts: { l2: 100 },
      circuitBreaker: { failureThreshold: 3, breakFor: 100 },
    })
    closers.unshift(() => cache.close())
    const ns = cache.namespace('item', {
      key: 'item:{id}',
      ttl: '1m',
      lock: false,
      load: ({ id }) => `v${id}`,
    })
    await cache.connect()
    await ns.get({ id: 'warm' })
    const kinds = () =>
      stderr.lines().map((line) => (DOWN.test(line) ? 'down' : BACK.test(line) ? 'back' : line))
    const poll = async (expected: string[]) =>
      expect
        .poll(
          async () => {
            await ns.get({ id: 'probe' })
            return kinds()
          },
          { timeout: 10_000, interval: 50 },
        )
        .toEqual(expected)
    return { stderr, kinds, poll }
  }

  it('prints the second "cannot reach Redis" line after a recovery, within the repeat window', async () => {
    const redis = await startRedis()
    closers.push(() => redis.stop())
    const { stderr, poll } = await watched(redis.url)

    await redis.kill()
    await poll(['down'])
    await redis.restart()
    await poll(['down', 'back'])
    await redis.kill()
    await poll(['down', 'back', 'down'])
    await redis.restart()
    await poll(['down', 'back', 'down', 'back'])
    expect(stderr.lines()[2]).toBe(stderr.lines()[0]) // the same line: held back before, as a repeat
  })

  it('adds no line for a reconnection reset during its handshake: the outage stays one ECONNREFUSED line', async () => {
    const redis = await startRedis()
    closers.push(() => redis.stop())
    const proxy = await startProxy(redis.port)
    closers.push(() => proxy.close())
    const { kinds, poll } = await watched(proxy.url)

    await proxy.cut()
    await poll(['down'])
    // The next attempt connects and its handshake waits in the proxy; then the connection is reset, as a Redis killed
    // during a reconnection resets it, and the attempts after it are refused.
    proxy.hold()
    const before = proxy.connections
    await proxy.heal()
    await expect.poll(() => proxy.connections, { timeout: 5_000, interval: 5 }).toBeGreaterThan(before)
    await proxy.cut()
    // No event marks "nothing more will be logged": wait out the time a reset is held before it is logged alone.
    await sleep(closedGraceMs(RETRY_MS) + 500)
    expect(kinds()).toEqual(['down'])
    proxy.release()
    await proxy.heal()
    await poll(['down', 'back'])
  })
})

describe('consoleLogger repeat guard', () => {
  it('still holds back an identical line that no recovery separates', () => {
    const lines: string[] = []
    const log = consoleLogger({ stream: { write: (text: string) => lines.push(text) } })
    const begin = { service: 's', outage: 'begin' }
    log.warn(begin, 'stratacache: cannot reach Redis at x')
    log.warn(begin, 'stratacache: cannot reach Redis at x')
    log.warn({ service: 'other', outage: 'end' }, 'stratacache: Redis at y is reachable again') // another cache
    log.warn(begin, 'stratacache: cannot reach Redis at x')
    log.warn({ service: 's', outage: 'end' }, 'stratacache: Redis at x is reachable again')
    log.warn(begin, 'stratacache: cannot reach Redis at x')
    log.warn({ service: 's', outage: 'end' }, 'stratacache: Redis at x is reachable again')
    expect(lines).toEqual([
      'stratacache: cannot reach Redis at x [service=s]\n',
      'stratacache: Redis at y is reachable again [service=other]\n',
      'stratacache: Redis at x is reachable again [service=s]\n',
      'stratacache: cannot reach Redis at x [service=s]\n',
      'stratacache: Redis at x is reachable again [service=s]\n',
    ])
  })
})
