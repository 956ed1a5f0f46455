// `stratacache warm`, run as a user runs it (the built CLI in a child process), on a cache whose L2 is the disk
// store, so that a second run sees what the first warmed; and its progress bar, drawn in-process on a fake terminal.
import { execFile } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { main } from '../../src/cli/run.js'
import { startRedis } from '../helpers/redis-server.js'

const root = fileURLToPath(new URL('../..', import.meta.url))
const bin = join(root, 'dist/cli/main.js')
const config = 'test/fixtures/cli/warm-config.mjs'
let dir: string
let env: Record<string, string>

interface Run {
  code: number
  stdout: string
  stderr: string
}

function run(args: readonly string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [bin, 'warm', ...args],
      { cwd: root, env: { ...process.env, ...env }, timeout: 15_000 },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === 'number' ? error.code : -1
        resolve({ code, stdout, stderr })
      },
    )
  })
}
const loads = () =>
  existsSync(env.STRATACACHE_TEST_LOADS!)
    ? readFileSync(env.STRATACACHE_TEST_LOADS!, 'utf8').trim().split('\n').filter(Boolean).length
    : 0

beforeAll(() => {
  if (!existsSync(bin)) throw new Error('dist/cli/main.js is missing: run `npm run build` (npm test does)')
})
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'stratacache-warm-'))
  env = { STRATACACHE_TEST_DISK: join(dir, 'disk'), STRATACACHE_TEST_LOADS: join(dir, 'loads.txt') }
})
afterEach(() => rmSync(dir, { recursive: true, force: true }))

describe('stratacache warm', () => {
  it('warms a JSON lines key list, and a second run finds every key fresh in L2 without loading', async () => {
    const list = join(dir, 'keys.jsonl')
    writeFileSync(
      list,
      Array.from({ length: 20 }, (_, id) => JSON.stringify({ id: id + 20 })).join('\n') + '\n\n',
    )
    const first = await run(['--config', config, '--namespace', 'product', '--from', list])
    // On failure, the output says whether some entries did not land in L2 ("not stored: …").
    expect(first.code, first.stdout + first.stderr).toBe(0)
    expect(first.stdout).toMatch(/^warmed product: 20 keys in \S+.*: 20 loaded, 0 fresh already, 0 failed\n$/)
    // Not a terminal: no progress drawn.
    expect(first.stderr).toBe('')
    expect(loads()).toBe(20)
    const second = await run(['-c', config, '-n', 'product', '-f', list])
    expect(second.code, second.stderr).toBe(0)
    expect(second.stdout).toMatch(/: 0 loaded, 20 fresh already, 0 failed\n$/)
    expect(loads()).toBe(20)
  })

  it('exits 1 and names the key when some keys fail, with the counts as JSON', async () => {
    const list = join(dir, 'keys.json')
    writeFileSync(list, JSON.stringify([{ id: 12 }, { id: 13 }, { id: 14 }]))
    const r = await run(['--config', config, '--namespace', 'product', '--from', list, '--json'])
    expect(r.code, r.stderr).toBe(1)
    const result = JSON.parse(r.stdout) as { errors: { key: string; message: string }[] }
    expect(result).toMatchObject({
      namespace: 'product',
      done: 3,
      loaded: 2,
      failed: 1,
      notStored: 0,
      timedOut: false,
    })
    expect(result.errors).toEqual([
      expect.objectContaining({
        key: expect.stringContaining('product:13'),
        message: expect.stringContaining('cursed'),
      }),
    ])
  })

  it('exits 1 and says so when the loaded keys did not reach Redis, which is what the job is for', async () => {
    const down = await startRedis()
    await down.stop()
    env.STRATACACHE_TEST_REDIS = down.url
    const list = join(dir, 'keys.jsonl')
    writeFileSync(list, '{"id":1}\n{"id":2}\n{"id":3}\n')
    const text = await run(['-c', config, '-n', 'product', '-f', list])
    expect(text.code, text.stderr).toBe(1)
    expect(text.stdout).toMatch(/: 3 loaded, 0 fresh already, 0 failed\n/)
    expect(text.stdout).toMatch(/^not stored: 3 of the loaded keys were not stored in L2, .*timeouts\.l2/m)
    const json = await run(['-c', config, '-n', 'product', '-f', list, '--json'])
    expect(json.code, json.stderr).toBe(1)
    expect(JSON.parse(json.stdout)).toMatchObject({ loaded: 3, failed: 0, notStored: 3 })
    expect(loads()).toBe(6)
  })

  it('keeps to --max-per-second, and stops starting keys at --time-limit (exit 1), reading keys from a module', async () => {
    const r = await run([
      ...['--config', config, '--namespace', 'product', '--from', 'test/fixtures/cli/warm-keys.mjs'],
      ...['--max-per-second', '20', '--time-limit', '500ms', '--json'],
    ])
    expect(r.code, r.stderr).toBe(1)
    const result = JSON.parse(r.stdout) as { done: number; timedOut: boolean }
    expect(result.timedOut).toBe(true)
    // 20 a second for half a second: about 10 started, far from the 100 listed.
    expect(result.done).toBeGreaterThan(0)
    expect(result.done).toBeLessThan(30)
    expect(loads()).toBe(result.done)
  })

  it('refuses a bad command line with exit 2, and an unusable key list with exit 3, in one line', async () => {
    const noNamespace = await run(['--config', config, '--from', 'x.jsonl'])
    expect(noNamespace.code).toBe(2)
    expect(noNamespace.stderr).toMatch(/^stratacache warm: Missing --namespace NAME/)
    const list = join(dir, 'keys.jsonl')
    writeFileSync(list, '{"id":1}\nnot json\n')
    const unknown = await run(['--config', config, '--namespace', 'nope', '--from', list])
    expect(unknown.code).toBe(2)
    expect(unknown.stderr).toMatch(/No namespace "nope" in .*it declares: product/)
    const rate = await run(['--config', config, '-n', 'product', '--from', list, '--max-per-second', 'fast'])
    expect(rate.code).toBe(2)
    expect(rate.stderr).toMatch(/--max-per-second must be a positive number, got "fast"/)
    const limit = await run(['--config', config, '-n', 'product', '--from', list, '--time-limit', 'soon'])
    expect(limit.code).toBe(2)
    const bad = await run(['--config', config, '--namespace', 'product', '--from', list])
    expect(bad.code).toBe(3)
    expect(bad.stdout).toBe('')
    expect(bad.stderr.trimEnd().split('\n')).toHaveLength(1)
    expect(bad.stderr).toMatch(/keys\.jsonl: line 2 is not JSON: not json\. \[ERR_STRATA_CLI_INPUT\]/)
    const missing = await run([
      '--config',
      config,
      '--namespace',
      'product',
      '--from',
      join(dir, 'none.jsonl'),
    ])
    expect(missing.code).toBe(3)
    expect(missing.stderr).toMatch(/none\.jsonl: no such file/)
  })

  it('draws a progress bar on a terminal and clears it before the summary', async () => {
    const list = join(dir, 'keys.json')
    writeFileSync(list, JSON.stringify(Array.from({ length: 30 }, (_, id) => ({ id: id + 50 }))))
    Object.assign(process.env, env)
    let out = ''
    let err = ''
    const code = await main(['warm', '--config', config, '--namespace', 'product', '--from', list], {
      out: (text) => (out += text),
      err: (text) => (err += text),
      errIsTty: true,
      cwd: root,
    })
    expect(code, err).toBe(0)
    expect(err).toContain(
      '\r\u001b[Kwarming product [####################] 100% 30/30 · loaded 30 · fresh 0 · failed 0 · ',
    )
    expect(err.endsWith('\r\u001b[K')).toBe(true)
    expect(out).toMatch(/^warmed product: 30 keys/)
  })
})
