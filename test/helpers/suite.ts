// The set-up most integration test files share: a redis-server of the file's own (started before its tests,
// stopped after), an optional raw client to read and plant bytes, and cleanups run after each test.
import { afterAll, afterEach, beforeAll, beforeEach } from 'vitest'
import { rawClient, type RawClient } from '../chaos/support.js'
import { startRedis, type RedisServer } from './redis-server.js'

export interface RedisSuite {
  /** Set before the file's first test. */
  readonly redis: RedisServer
  /** With `raw: true`: a client of the test's own, replying with Buffers. */
  readonly raw: RawClient
  /** Cleanups (closing caches, stopping listeners) run after each test. */
  readonly closers: (() => Promise<unknown> | void)[]
}

export function redisSuite(options: { raw?: boolean; flushBeforeEach?: boolean } = {}): RedisSuite {
  const suite = { closers: [] } as unknown as { -readonly [K in keyof RedisSuite]: RedisSuite[K] }
  beforeAll(async () => {
    suite.redis = await startRedis()
    if (options.raw) suite.raw = await rawClient(suite.redis.url)
  })
  afterAll(async () => {
    if (options.raw) await suite.raw.close()
    await suite.redis.stop()
  })
  if (options.flushBeforeEach) {
    beforeEach(async () => {
      await suite.redis.command('FLUSHALL')
    })
  }
  afterEach(async () => {
    // A test that froze Redis (SIGSTOP) and failed before thawing it must not leave the next tests a frozen server.
    suite.redis.resume()
    for (const close of suite.closers.splice(0)) await close()
  })
  return suite
}
