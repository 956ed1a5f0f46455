// `npm run tour` runs examples/basic.ts: run it as a user would and check what it prints.
import { execFile } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { describe, expect, inject, it } from 'vitest'

const root = fileURLToPath(new URL('../..', import.meta.url))
const run = (env: Record<string, string>) =>
  promisify(execFile)(process.execPath, ['--import', 'tsx', 'examples/basic.ts'], {
    cwd: root,
    env: { ...process.env, ...env },
    timeout: 20_000,
  })

describe('the npm run tour script', () => {
  it('runs on embedded defaults (L1 and the disk store): one db query for 1,000 concurrent gets, negative caching, a typed error, L2 hits after a restart', async () => {
    const { stdout } = await run({ REDIS_URL: '' })
    expect(stdout).toContain('L1 + disk store in ')
    expect(stdout).toMatch(/second get: L1 hit .* db queries: 1\n/)
    expect(stdout).toMatch(/1,000 concurrent gets of a cold key: one db query .* db queries: 3\n/)
    expect(stdout).toMatch(/getMany of 20 products \(4 cached\): loads 16 .* db queries: 19\n/)
    expect(stdout).toMatch(/asking again: negative entry, no db query .* db queries: 20\n/)
    expect(stdout).toContain('ERR_STRATA_INVALID_KEY_PARAM')
    expect(stdout).toMatch(/a new cache \(a restart\): L2 hit, no db query .* db queries: 20\n/)
    // The counters in words, not a JSON dump of every histogram (whose Infinity bucket printed as null).
    expect(stdout).toMatch(
      /\nstats: \d+ L1 hits, 0 L2 hits, \d+ misses \(each caller that joined a load counts\), 20 loads, 0 L2 errors;/,
    )
    expect(stdout).not.toContain('bucketsMs')
  })

  it('runs with Redis as L2 when REDIS_URL is set', async () => {
    const { stdout } = await run({ REDIS_URL: inject('redisUrl') })
    expect(stdout).toContain('L1 + Redis')
    expect(stdout).toMatch(/ 0 L2 errors;/)
  })
})
