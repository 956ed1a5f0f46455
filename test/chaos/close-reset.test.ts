// A store closing while its connection is reset must not crash the process: the client's late 'error' needs a
// listener until it is gone. Run in a child process, so an uncaught exception shows as its exit code instead of as an
// error of the whole test run. (CI once crashed this way: a region-split test's cut() reset a peer store's socket
// that a close() had left behind.)
import { execFile } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'

const root = fileURLToPath(new URL('../..', import.meta.url))

/** How the store is closed before the link to Redis is cut. */
const scenarios = {
  // Redis frozen: the graceful close waits for nothing in particular, then the link is cut.
  'Redis frozen': `
    redis.pause()
    const closing = store.close()
    await new Promise((resolve) => setTimeout(resolve, 200))
    await proxy.cut()
    await closing`,
  // A get waiting for its reply: the graceful close waits for it (and times out), then the link is cut. node-redis
  // says the client is not open any more while its socket still is.
  'a get in flight': `
    redis.pause()
    store.get('k').catch(() => {})
    await new Promise((resolve) => setTimeout(resolve, 20))
    const closing = store.close()
    await new Promise((resolve) => setTimeout(resolve, 200))
    await proxy.cut()
    await closing`,
  // close() while the first connection is being made: node-redis finishes it anyway (the client becomes ready,
  // closed or not), then the link is cut under it.
  'closed while connecting': `
    store.connect().catch(() => {})
    await store.close()
    await new Promise((resolve) => setTimeout(resolve, 200))
    // The connection that came up after close() is dropped: only this INFO's own is left.
    const info = await redis.command('INFO', 'clients')
    console.log('clients ' + /connected_clients:(\\d+)/.exec(info)[1])
    await proxy.cut()`,
} as const

function script(store: 'redis' | 'ioredis', scenario: keyof typeof scenarios): string {
  const make =
    store === 'redis'
      ? `(await import('./src/redis.ts')).redisStore({ url: proxy.url, connectTimeout: 2_000 })`
      : `(await import('./src/ioredis.ts')).ioredisStore({ url: proxy.url, connectTimeout: 2_000 })`
  const connect = scenario === 'closed while connecting' ? '' : 'await store.connect()'
  return `
    import { startRedis } from './src/cli/drill/redis-server.ts'
    import { startProxy } from './src/cli/drill/tcp-proxy.ts'
    const redis = await startRedis()
    const proxy = await startProxy(redis.port)
    const store = ${make}
    ${connect}
    ${scenarios[scenario]}
    await new Promise((resolve) => setTimeout(resolve, 300))
    redis.resume()
    await proxy.close()
    await redis.stop()
    console.log('survived')
  `
}

describe('closing a store while its connection is reset', () => {
  for (const store of ['redis', 'ioredis'] as const) {
    for (const scenario of Object.keys(scenarios) as (keyof typeof scenarios)[]) {
      it(`does not crash the process with the client's late error (${store}, ${scenario})`, async () => {
        const { stdout } = await promisify(execFile)(
          process.execPath,
          ['--import', 'tsx', '--input-type=module', '-e', script(store, scenario)],
          { cwd: root, encoding: 'utf8', timeout: 15_000 },
        )
        const lines = stdout.trim().split('\n')
        expect(lines.at(-1)).toBe('survived')
        if (scenario === 'closed while connecting') expect(lines).toContain('clients 1')
      }, 20_000)
    }
  }
})
