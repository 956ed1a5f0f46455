// Checks the built package as a user installs it: exports resolve from dist/, types exist, publint is clean.
// `npm test` builds first; this file runs the real Node resolver, not the vitest alias to src/.
import { execFileSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { publint } from 'publint'
import { beforeAll, describe, expect, it } from 'vitest'

const root = fileURLToPath(new URL('../..', import.meta.url))

describe('published package', () => {
  beforeAll(() => {
    if (!existsSync(`${root}/dist/index.js`))
      throw new Error('dist/ is missing: run `npm run build` (npm test does)')
  })

  it('resolves both entry points from dist/ with the names the docs use', () => {
    const script = `
      const main = await import('stratacache'); const redis = await import('stratacache/redis');
      const prometheus = await import('stratacache/prometheus'); const ioredis = await import('stratacache/ioredis');
      const disk = await import('stratacache/disk');
      console.log(JSON.stringify({ main: Object.keys(main).sort(), redis: Object.keys(redis).sort(),
        ioredis: Object.keys(ioredis).sort(), disk: Object.keys(disk).sort(),
        prometheus: Object.keys(prometheus), resolved: import.meta.resolve('stratacache') }))`
    const out = JSON.parse(
      execFileSync(process.execPath, ['--input-type=module', '-e', script], { cwd: root, encoding: 'utf8' }),
    )
    expect(out.resolved).toMatch(/\/dist\/index\.js$/)
    expect(out.main).toEqual(
      expect.arrayContaining(['createCache', 'MemoryStore', 'channelNames', 'StrataError']),
    )
    expect(out.redis).toEqual(
      expect.arrayContaining(['redisStore', 'RedisStore', 'redisClusterStore', 'RedisClusterStore']),
    )
    expect(out.ioredis).toEqual(['IoredisStore', 'ioredisStore'])
    expect(out.disk).toEqual(['DiskStore', 'diskStore'])
    expect(out.prometheus).toEqual(['prometheusMetrics'])
  })

  it('ships type declarations for every export and passes publint', async () => {
    for (const file of ['index.d.ts', 'redis.d.ts', 'ioredis.d.ts', 'disk.d.ts', 'prometheus.d.ts'])
      expect(existsSync(`${root}/dist/${file}`)).toBe(true)
    const { messages } = await publint({ pkgDir: root, level: 'warning' })
    expect(messages).toEqual([])
  })
})
