// A store closing while its connection is reset (Redis frozen, so the graceful close waits for its reply, then the
// link cut) must not crash the process: the client's late 'error' needs a listener until it is gone. Run in a child
// process, so an uncaught exception shows as its exit code instead of as an error of the whole test run.
import { execFile } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'

const root = fileURLToPath(new URL('../..', import.meta.url))

function script(store: 'redis' | 'ioredis'): string {
  const make =
    store === 'redis'
      ? `(await import('./src/redis.ts')).redisStore({ url: proxy.url, connectTimeout: 2_000 })`
      : `(await import('./src/ioredis.ts')).ioredisStore({ url: proxy.url, connectTimeout: 2_000 })`
  return `
    import { startRedis } from './src/cli/drill/redis-server.ts'
    import { startProxy } from './src/cli/drill/tcp-proxy.ts'
    const redis = await startRedis()
    const proxy = await startProxy(redis.port)
    const store = ${make}
    await store.connect()
    redis.pause()
    const closing = store.close()
    await new Promise((resolve) => setTimeout(resolve, 200))
    await proxy.cut()
    await closing
    await new Promise((resolve) => setTimeout(resolve, 300))
    redis.resume()
    await proxy.close()
    await redis.stop()
    console.log('survived')
  `
}

describe('closing a store while its connection is reset', () => {
  for (const store of ['redis', 'ioredis'] as const) {
    it(`does not crash the process with the client's late error (${store})`, async () => {
      const { stdout } = await promisify(execFile)(
        process.execPath,
        ['--import', 'tsx', '--input-type=module', '-e', script(store)],
        { cwd: root, encoding: 'utf8', timeout: 15_000 },
      )
      expect(stdout.trim()).toBe('survived')
    }, 20_000)
  }
})
