// What people read when something fails: rounded durations, operations in their words, causes that say what to check.
import { readFileSync } from 'node:fs'
import {
  consoleLogger,
  describeL2Operation,
  L2_OPERATIONS,
  L2CircuitOpenError,
  L2Error,
  L2TimeoutError,
  L2UnavailableError,
  LoaderTimeoutError,
} from 'stratacache'
import { createClient } from 'redis'
import { redisStore } from 'stratacache/redis'
import { describe, expect, it } from 'vitest'
import { formatDuration } from '../../src/core/format-duration.js'
import { describeRedisFailure, redactUrl, type RedisTarget } from '../../src/tiers/redis-failure.js'

describe('formatDuration', () => {
  it.each([
    [0, '0 ms'],
    [0.2, 'under 1 ms'],
    [1, '1 ms'],
    [150, '150 ms'],
    [999.4, '999 ms'],
    [999.6, '1 s'],
    [1_500, '1.5 s'],
    [1999.5397160000002, '2 s'],
    [12_345, '12 s'],
    [59_960, '1 min'],
    [90_000, '1.5 min'],
    [3_600_000, '1 h'],
    [5_400_000, '1.5 h'],
    [86_400_000 * 2, '2 d'],
    [2_147_483_647, '25 d'],
    [Infinity, 'forever'],
    [-1_500, '-1.5 s'],
  ])('prints %j ms as %j', (ms, text) => {
    expect(formatDuration(ms)).toBe(text)
  })

  it('is what error messages print: no float, no raw millisecond count above a second', () => {
    expect(new L2CircuitOpenError(1999.5397160000002, 'get').message).toContain('try Redis again in 2 s.')
    expect(new L2TimeoutError('get', 100).message).toContain('did not answer within 100 ms')
    expect(new LoaderTimeoutError('product', 'k', 30_000).message).toContain('did not settle within 30 s')
    expect(new L2UnavailableError(2_000).message).toContain('within 2 s')
  })
})

describe('L2 operations in the words of the user', () => {
  it('has a phrase for every operation the L2 guard runs', () => {
    const guard = readFileSync(new URL('../../src/policies/l2-guard.ts', import.meta.url), 'utf8')
    const operations = [...guard.matchAll(/#run\(\s*'([A-Za-z]+)'/g)].map((m) => m[1]!)
    expect(operations.length).toBeGreaterThan(30)
    expect(operations.filter((operation) => !Object.hasOwn(L2_OPERATIONS, operation))).toEqual([])
  })

  it('names the operation in messages and keeps the internal name in `operation`', () => {
    const error = new L2Error('getVersion', { cause: new Error('The client is closed.') })
    expect(error.operation).toBe('getVersion')
    expect(error.message).toMatch(
      /^Reading the namespace's generation \(its invalidateAll counter\) from Redis failed: The client is closed\. Reads/,
    )
    expect(new L2TimeoutError('set', 100)).toMatchObject({
      operation: 'set',
      message: expect.stringMatching(/^Writing an entry to Redis did not answer within 100 ms/) as unknown,
    })
    expect(new L2CircuitOpenError(500, 'getMany')).toMatchObject({
      operation: 'getMany',
      retryInMs: 500,
      message: expect.stringMatching(
        /^Reading entries from Redis was skipped: the circuit breaker is open/,
      ) as unknown,
    })
    expect(describeL2Operation('somethingNew')).toBe('the Redis call `somethingNew`')
  })
})

describe('describeRedisFailure', () => {
  const target: RedisTarget = {
    address: '127.0.0.1:6390',
    tls: false,
    connectTimeoutMs: 1_000,
    retryMs: 2_000,
  }
  const netError = (code: string, message = `connect ${code}`) => Object.assign(new Error(message), { code })
  const reply = (message: string) => {
    class SimpleError extends Error {}
    return new SimpleError(message)
  }

  it.each([
    [
      netError('ECONNREFUSED'),
      'ECONNREFUSED',
      'cannot reach Redis at 127.0.0.1:6390 (ECONNREFUSED: nothing listens there)',
    ],
    [netError('ENOTFOUND'), 'ENOTFOUND', 'the host name "127.0.0.1" does not resolve'],
    [netError('EAI_AGAIN'), 'EAI_AGAIN', 'DNS did not answer'],
    [netError('ETIMEDOUT'), 'ETIMEDOUT', 'no answer within the connect timeout, 1 s'],
    [netError('EHOSTUNREACH'), 'EHOSTUNREACH', 'no route to that host'],
    [netError('ECONNRESET'), 'ECONNRESET', 'the server or the network closed the connection'],
    [
      netError('DEPTH_ZERO_SELF_SIGNED_CERT', 'self-signed certificate'),
      'DEPTH_ZERO_SELF_SIGNED_CERT',
      'cannot set up TLS',
    ],
    [
      netError('CERT_HAS_EXPIRED', 'certificate has expired'),
      'CERT_HAS_EXPIRED',
      "the server's certificate has expired",
    ],
    [
      netError('ERR_SSL_WRONG_VERSION_NUMBER', 'wrong version number'),
      'ERR_SSL_WRONG_VERSION_NUMBER',
      'the port does not speak TLS',
    ],
    [
      netError('EWEIRD', 'something odd happened'),
      'EWEIRD',
      'cannot reach Redis at 127.0.0.1:6390 (EWEIRD: something odd happened)',
    ],
    [
      new Error('Unknown RESP type 72 "H"'),
      'NOT_REDIS',
      'what answers there is not Redis (it began its answer with "H", as HTTP does)',
    ],
  ])('explains %s as %s', (error, reason, text) => {
    const failure = describeRedisFailure(error, target, false)
    expect(failure).toMatchObject({ address: '127.0.0.1:6390', reason, retryMs: 2_000 })
    expect(failure.summary).toContain(text)
    expect(failure.advice.length).toBeGreaterThan(10)
  })

  it("explains node-redis's connect timeout, and mentions TLS on a rediss:// url", () => {
    class ConnectionTimeoutError extends Error {}
    const failure = describeRedisFailure(
      new ConnectionTimeoutError('Connection timeout'),
      { ...target, tls: true },
      false,
    )
    expect(failure).toMatchObject({ reason: 'CONNECT_TIMEOUT' })
    expect(failure.summary).toContain('(connect timeout: no answer within the connect timeout, 1 s)')
    expect(failure.advice).toContain('a rediss:// url on a port without TLS')
  })

  it.each([
    [
      'WRONGPASS invalid username-password pair or user is disabled.',
      'WRONGPASS',
      'authentication failed: wrong username or password',
    ],
    [
      'NOAUTH Authentication required.',
      'NOAUTH',
      'authentication failed: Redis requires a password and none was given',
    ],
    [
      'ERR AUTH <password> called without any password configured for the default user.',
      'AUTH',
      'authentication failed: a password was given, but Redis has none',
    ],
    ["NOPERM this user has no permissions to run the 'hello' command", 'NOPERM', 'refused the connection'],
  ])('explains the reply %j as %s', (message, reason, text) => {
    const failure = describeRedisFailure(reply(message), target, true)
    expect(failure).toMatchObject({ reason })
    expect(failure.summary).toContain(text)
  })

  it('knows the address of a node-redis client passed in, without its credentials', async () => {
    const fromUrl = redisStore({ client: createClient({ url: 'redis://app:s3cret@10.1.2.3:6400' }) })
    const fromSocket = redisStore({
      client: createClient({ socket: { host: 'cache.internal', port: 6401 } }),
    })
    expect([fromUrl.address, fromSocket.address]).toEqual(['10.1.2.3:6400', 'cache.internal:6401'])
    expect(fromUrl.describeFailure(new Error('boom'))).toMatchObject({
      address: '10.1.2.3:6400',
      retryMs: undefined,
    })
    await Promise.all([fromUrl.close(), fromSocket.close()])
  })

  it('never repeats credentials found in a message', () => {
    const failure = describeRedisFailure(
      new Error('bad url redis://app:hunter2@10.0.0.1:6379'),
      target,
      false,
    )
    expect(failure.summary).not.toContain('hunter2')
    expect(failure.summary).toContain('redis://***@10.0.0.1:6379')
    expect(redactUrl('rediss://:p%40ss@host:6380/1 and redis://u:p@h')).toBe(
      'rediss://***@host:6380/1 and redis://***@h',
    )
  })
})

describe('consoleLogger', () => {
  function stream() {
    const lines: string[] = []
    return { lines, write: (text: string) => void lines.push(text) }
  }

  it('writes warnings and errors, one line each with the service and namespace, and leaves info off', () => {
    const out = stream()
    const log = consoleLogger({ stream: out })
    log.info({ service: 'catalog' }, 'stratacache: L2 ready')
    log.warn({ service: 'catalog', namespace: 'order', address: '127.0.0.1:6379' }, 'stratacache: something')
    log.error({ service: 'catalog' }, 'stratacache: worse')
    expect(out.lines).toEqual([
      'stratacache: something [service=catalog namespace=order]\n',
      'stratacache: error: worse [service=catalog]\n',
    ])
  })

  it('writes info lines too at level info', () => {
    const out = stream()
    consoleLogger({ stream: out, level: 'info' }).info({}, 'stratacache: L2 ready')
    expect(out.lines).toEqual(['stratacache: L2 ready\n'])
  })

  it('holds back a line repeated within the window, and says how many it held back', async () => {
    const out = stream()
    const log = consoleLogger({ stream: out, repeatWindowMs: 50 })
    for (let i = 0; i < 100; i++) log.warn({ service: 's' }, 'stratacache: the same thing')
    log.warn({ service: 's' }, 'stratacache: another thing')
    expect(out.lines).toHaveLength(2)
    await new Promise((resolve) => setTimeout(resolve, 60))
    log.warn({ service: 's' }, 'stratacache: the same thing')
    expect(out.lines[2]).toMatch(
      /^stratacache: the same thing \[service=s\] \(99 more like it held back in the \d+ ms before\)\n$/,
    )
  })
})
