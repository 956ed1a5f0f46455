// The built `stratacache` CLI, run as a user runs it (a child process of dist/cli/main.js; `npm test` builds first).
import { execFile } from 'node:child_process'
import { accessSync, constants, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest'

const root = fileURLToPath(new URL('../..', import.meta.url))
const bin = join(root, 'dist/cli/main.js')
const fixtures = 'test/fixtures/cli'
const config = `${fixtures}/contract-config.mjs`
const committed = `${fixtures}/contract.md`

interface Run {
  code: number
  stdout: string
  stderr: string
}

function run(
  args: readonly string[],
  options: { env?: Record<string, string>; file?: string } = {},
): Promise<Run> {
  const [command, argv] =
    options.file === undefined ? [process.execPath, [bin, ...args]] : [options.file, [...args]]
  return new Promise((resolve) => {
    execFile(
      command,
      argv,
      { cwd: root, env: { ...process.env, ...options.env }, timeout: 15_000 },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === 'number' ? error.code : -1
        resolve({ code, stdout, stderr })
      },
    )
  })
}

/** An error is one line on stderr, nothing on stdout. */
function expectOneLineError(r: Run, code: number, pattern: RegExp): void {
  expect(r.code).toBe(code)
  expect(r.stdout).toBe('')
  expect(r.stderr.endsWith('\n')).toBe(true)
  expect(r.stderr.trimEnd().split('\n')).toHaveLength(1)
  expect(r.stderr.trimEnd()).toMatch(pattern)
}

let tmp: string

beforeAll(() => {
  if (!existsSync(bin)) throw new Error('dist/cli/main.js is missing: run `npm run build` (npm test does)')
  tmp = mkdtempSync(join(tmpdir(), 'stratacache-cli-'))
})

afterAll(() => rmSync(tmp, { recursive: true, force: true }))

describe('stratacache (the executable)', () => {
  it('is the package’s bin: an executable file with a node shebang that runs by itself', async () => {
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'))
    expect(pkg.bin).toEqual({ stratacache: './dist/cli/main.js' })
    expect(readFileSync(bin, 'utf8').startsWith('#!/usr/bin/env node\n')).toBe(true)
    accessSync(bin, constants.X_OK)
    const r = await run(['--version'], { file: bin })
    expect(r).toEqual({ code: 0, stdout: `${pkg.version}\n`, stderr: '' })
  })

  it('runs through npm as `npx stratacache`', async () => {
    const npx = await new Promise<Run>((resolve) => {
      execFile(
        'npx',
        ['--no-install', 'stratacache', '--version'],
        { cwd: root, timeout: 30_000 },
        (error, stdout, stderr) =>
          resolve({ code: error === null ? 0 : Number(error.code ?? -1), stdout, stderr }),
      )
    })
    expect(npx.code).toBe(0)
    expect(npx.stdout).toBe(`${JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).version}\n`)
  })

  it('lists its commands in --help', async () => {
    const r = await run(['--help'])
    expect(r.code).toBe(0)
    expect(r.stderr).toBe('')
    expect(r.stdout).toMatch(/^Usage: stratacache <command> \[flags\]/)
    expect(r.stdout).toMatch(/^ {2}contract {2}\S/m)
    expect(r.stdout).toMatch(/^ {2}simulate {2}\S/m)
    expect(r.stdout).toMatch(/^ {2}inspect {3}\S/m)
    expect(r.stdout).toMatch(/^ {2}purge {5}\S/m)
    // A URL, not a path: an installed package has no docs/ folder. It is the repository package.json names.
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { homepage: string }
    const docs = `${pkg.homepage.replace(/#readme$/, '')}/blob/main/docs/cli.md`
    expect(r.stdout).toContain(`Documentation: ${docs}\n`)
    expect(existsSync(join(root, 'docs/cli.md'))).toBe(true)
    expect(r.stdout).not.toContain('in the repository')
    const simulate = await run(['simulate', '--help'])
    expect(simulate.stdout).toContain(`${docs}#access-log-format`)
  })

  it('prints its help on stderr and exits 2 without a command', async () => {
    const r = await run([])
    expect(r.code).toBe(2)
    expect(r.stdout).toBe('')
    expect(r.stderr).toMatch(/^Usage: stratacache/)
  })

  it.each(['contract', 'inspect', 'purge', 'simulate'])('has --help (and -h) for %s', async (command) => {
    for (const flag of ['--help', '-h']) {
      const r = await run([command, flag])
      expect(r.code).toBe(0)
      expect(r.stderr).toBe('')
      expect(r.stdout).toMatch(new RegExp(`^Usage: stratacache ${command} `))
      expect(r.stdout).toContain('Exit codes:')
    }
  })

  it.each([
    [
      ['frobnicate'],
      /^stratacache: Unknown command "frobnicate"; commands: contract, drill, inspect, purge, relay, simulate, warm\. /,
    ],
    [['--frob'], /^stratacache: Unknown flag --frob before the command\./],
    [['inspect'], /^stratacache inspect: Give exactly one of --config FILE or --redis URL\./],
    [
      ['inspect', '--redis', 'http://x'],
      /^stratacache inspect: --redis must be a redis:\/\/ or rediss:\/\/ URL/,
    ],
    [['inspect', '--redis', 'redis://x', '--sample', '0'], /--sample must be a positive whole number/],
    [['purge', '--namespace', 'p'], /^stratacache purge: Missing --reason/],
    [['purge', '--reason', 'r'], /^stratacache purge: Say what to purge/],
    [['purge', '--tag', 'a', '--tenant', 'b', '--reason', 'r'], /--tag and --tenant do not go together/],
    [
      ['contract', '--bogus'],
      /^stratacache contract: Unknown flag --bogus\. Run `stratacache contract --help` for the flags it takes\. \[ERR_STRATA_CLI_USAGE\]$/,
    ],
    [['contract', '--config'], /^stratacache contract: Flag --config needs a value\./],
    [['contract', '--json=yes'], /^stratacache contract: Flag --json takes no value\./],
    [['contract', 'extra'], /^stratacache contract: Unexpected argument "extra"/],
    [['contract', '--check', 'a.md', '--out', 'b.md'], /--check and --out do not go together/],
    [['contract', '--today', '2026-01-01'], /--today is used only with --check/],
    [['contract', '--check', 'a.md', '--today', '2026-02-30'], /--today must be a date written YYYY-MM-DD/],
    [['simulate'], /^stratacache simulate: Missing --log FILE/],
    [['simulate', '--log', 'x', '--policy', 'y'], /^stratacache simulate: Missing --vs FILE/],
    [['simulate', '--log', 'x', '--policy', 'y', '--vs', 'z', '--sample-rate', '2'], /--sample-rate must be/],
  ])('refuses %j with one line and exit code 2', async (args, pattern) => {
    expectOneLineError(await run(args), 2, pattern)
  })
})

describe('stratacache contract', () => {
  it('prints the contract pinned in the committed fixture', async () => {
    const r = await run(['contract', '--config', config])
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    expect(r.stdout).toBe(readFileSync(join(root, committed), 'utf8'))
  })

  it('reads a config whose default export is an async function, with an L2 it never waits for', async () => {
    const r = await run(['contract', '--config', `${fixtures}/contract-config-l2.mjs`])
    expect(r.code).toBe(0)
    expect(r.stdout).toBe(readFileSync(join(root, fixtures, 'contract-l2.md'), 'utf8'))
    expect(r.stdout).toContain('write-behind: queued durably in Redis')
  })

  it('writes the same text with --out, and says so on stderr', async () => {
    const out = join(tmp, 'written.md')
    const r = await run(['contract', '-c', config, '-o', out])
    expect(r.code).toBe(0)
    expect(r.stdout).toBe('')
    expect(r.stderr).toBe(`wrote ${out} (4 namespaces of service "catalog")\n`)
    expect(readFileSync(out, 'utf8')).toBe(readFileSync(join(root, committed), 'utf8'))
  })

  it('prints the contract as JSON with --json', async () => {
    const r = await run(['contract', '--config', config, '--json'])
    expect(r.code).toBe(0)
    const model = JSON.parse(r.stdout)
    expect(model.service).toBe('catalog')
    expect(model.namespaces.map((ns: { name: string }) => ns.name)).toEqual([
      'account',
      'product',
      'profile',
      'session',
    ])
    const product = model.namespaces[1]
    expect(product.key.example).toBe(
      'catalog:product:v2:tenant:tenantId:product:productId:currency=currency:locale=locale',
    )
    expect(product.freshness).toMatchObject({ ttlMs: 300_000, jitterMs: 30_000, staleForMs: 3_600_000 })
    expect(product.slo).toEqual({ readP99Ms: 120, staleReadsMax: 0.001, windowMs: 300_000 })
    expect(product.data).toEqual({
      classification: 'internal',
      critical: false,
      redactedFields: null,
      encrypted: false,
    })
    expect(model.namespaces[2].data).toEqual({
      classification: 'personal',
      critical: true,
      redactedFields: ['email', 'cards[].number'],
      encrypted: false,
    })
    expect(model.namespaces[3].exceptions.map((e: { rule: string }) => e.rule)).toEqual([
      'no-owner',
      'no-slo',
    ])
  })

  it('loads a TypeScript config under a TypeScript loader, and says how when there is none', async () => {
    const ts = `${fixtures}/contract-config.ts`
    const typed = await run(['contract', '--config', ts], { env: { NODE_OPTIONS: '--import tsx' } })
    expect(typed.code).toBe(0)
    expect(typed.stdout).toContain('## Namespace `user`')
    const untyped = await run(['contract', '--config', ts], { env: { NODE_OPTIONS: '' } })
    // Node.js 22.18+ and 24 strip types by themselves (`process.features.typescript`): no loader needed there.
    if ((process.features as { typescript?: unknown }).typescript) {
      expect([untyped.code, untyped.stdout]).toEqual([0, typed.stdout])
    } else {
      expectOneLineError(
        untyped,
        3,
        /^stratacache contract: Config module .*contract-config\.ts: a TypeScript module needs a loader: run with NODE_OPTIONS='--import tsx'.* \[ERR_STRATA_CONFIG_MODULE\]$/,
      )
    }
  })

  it.each([
    [
      'test/fixtures/cli/nothing-here.mjs',
      /Config module test\/fixtures\/cli\/nothing-here\.mjs: no such file\./,
    ],
    [`${fixtures}/no-default.mjs`, /it has no default export; add `export default cache`/],
    [`${fixtures}/access.jsonl`, /importing it failed/],
  ])('exits 3 with one line when the config module %s cannot be used', async (path, pattern) => {
    expectOneLineError(await run(['contract', '--config', path]), 3, pattern)
  })

  it('asks for --config when there is none and no default file', async () => {
    expectOneLineError(
      await run(['contract']),
      2,
      /^stratacache contract: Missing --config: give the module that creates your cache \(no stratacache\.config\.mjs or stratacache\.config\.js in /,
    )
  })

  describe('--check', () => {
    it('passes when the committed contract matches the code and no exception has expired', async () => {
      const r = await run(['contract', '--check', committed, '--config', config, '--today', '2026-01-01'])
      expect(r).toEqual({
        code: 0,
        stdout: `contract ok: ${committed} matches the code (4 namespaces, 3 policy exceptions, none expired on 2026-01-01)\n`,
        stderr: '',
      })
    })

    it('fails on drift, naming each section and the lines that differ', async () => {
      const drifted = join(tmp, 'drifted.md')
      const text = readFileSync(join(root, committed), 'utf8')
      const sessionAt = text.indexOf('## Namespace `session`')
      writeFileSync(
        drifted,
        text
          .slice(0, sessionAt)
          .replace('- **TTL**: 5m\n', '- **TTL**: 10m\n')
          .replace('## Namespace `account`', '## Namespace `legacy`\n\nGone.\n\n## Namespace `account`'),
      )
      const r = await run(['contract', '--check', drifted, '--config', config, '--today', '2026-01-01'])
      expect(r.code).toBe(1)
      expect(r.stdout).toBe('')
      expect(r.stderr).toContain(`stratacache contract: ${drifted} differs from the code (3 sections):\n`)
      expect(r.stderr).toContain('  namespace `legacy`: in the file, no longer declared in the code\n')
      expect(r.stderr).toContain(
        '  namespace `product`: 2 lines differ (- file, + code)\n    - - **TTL**: 10m\n    + - **TTL**: 5m\n',
      )
      expect(r.stderr).toContain('  namespace `session`: declared in the code, missing from the file\n')
      // The overview table was left as it was: the header has not drifted.
      expect(r.stderr).not.toContain('header and overview')
      expect(r.stderr).toContain(
        `Review the change, then regenerate the file: stratacache contract --config ${config} --out ${drifted}\n`,
      )
    })

    it('ignores line-ending and trailing-space differences', async () => {
      const crlf = join(tmp, 'crlf.md')
      writeFileSync(crlf, readFileSync(join(root, committed), 'utf8').replace(/\n/g, '  \r\n') + '\r\n\r\n')
      const r = await run(['contract', '--check', crlf, '--config', config, '--today', '2026-01-01'])
      expect(r.code).toBe(0)
    })

    it('fails when the file does not exist, saying how to create it', async () => {
      const r = await run(['contract', '--check', 'docs/none.md', '--config', config])
      expect(r.code).toBe(1)
      expect(r.stderr).toBe(
        `stratacache contract: docs/none.md does not exist. Generate it: stratacache contract --config ${config} --out docs/none.md\n`,
      )
    })

    it('fails on each expired policy exception, naming it', async () => {
      const r = await run(['contract', '--check', committed, '--config', config, '--today', '2099-07-01'])
      expect(r.code).toBe(1)
      expect(r.stdout).toBe('')
      const lines = r.stderr.trimEnd().split('\n')
      expect(lines).toEqual([
        'stratacache contract: policy exception `no-owner` of namespace `session` expired on 2099-06-30 (today is 2099-07-01). Pay the debt and remove it, or renew it with a later `until` and a reason.',
        'stratacache contract: policy exception `no-slo` of namespace `session` expired on 2099-06-30 (today is 2099-07-01). Pay the debt and remove it, or renew it with a later `until` and a reason.',
      ])
    })

    it('holds an exception through its `until` day, and warns in the two weeks before', async () => {
      const r = await run(['contract', '--check', committed, '--config', config, '--today', '2099-06-30'])
      expect(r.code).toBe(0)
      expect(r.stderr).toBe(
        'warning: policy exception `no-owner` of namespace `session` expires on 2099-06-30 (today)\n' +
          'warning: policy exception `no-slo` of namespace `session` expires on 2099-06-30 (today)\n',
      )
    })

    it('reports drift and expiry as JSON with --json', async () => {
      const r = await run([
        'contract',
        '--check',
        committed,
        '--config',
        config,
        '--today',
        '2100-01-01',
        '--json',
      ])
      expect(r.code).toBe(1)
      const result = JSON.parse(r.stdout)
      expect(result).toMatchObject({
        ok: false,
        file: committed,
        today: '2100-01-01',
        missing: false,
        drift: [],
      })
      expect(result.expired.map((e: { rule: string }) => e.rule)).toEqual([
        'max-ttl-5m',
        'no-owner',
        'no-slo',
      ])
    })
  })
})

describe('stratacache simulate', () => {
  const args = [
    'simulate',
    '--log',
    `${fixtures}/access.jsonl`,
    '--policy',
    `${fixtures}/current.json`,
    '--vs',
    `${fixtures}/proposed.json`,
  ]

  it('prints both policies side by side with bars', async () => {
    const r = await run(args)
    expect(r.code).toBe(0)
    expect(r.stderr).toBe('')
    expect(r.stdout).toContain('Shadow evaluation of access.jsonl: 8 reads over 1m\n')
    expect(r.stdout).toMatch(/^L1 hit ratio +0% +62\.5% +37\.5%$/m)
    expect(r.stdout).toMatch(/^L2 hit ratio \(of L1 misses\) +25% +33\.3% +40%$/m)
    expect(r.stdout).toMatch(/^overall hit ratio +25% +75% +62\.5%$/m)
    // Like with like: misses per second are predicted and observed; source calls (misses plus background refreshes)
    // only predicted, as the log records reads and a refresh is not one.
    expect(r.stdout).toMatch(/^misses \/ s +0\.1 +0\.0333 +0\.05$/m)
    expect(r.stdout).toMatch(/^source calls \/ s +0\.1 +0\.05 +n\/a$/m)
    expect(r.stdout).toMatch(/^stale reads +0% +12\.5% +n\/a$/m)
    expect(r.stdout).toContain('stale reads (proposed: +12.5 points, worse)\n')
    expect(r.stdout).toContain(`  proposed  ${'█'.repeat(23)}${'░'.repeat(7)}  75%\n`)
  })

  it('gives the exact numbers with --json, and writes an HTML report with --html', async () => {
    const html = join(tmp, 'report.html')
    const r = await run([...args, '--json', '--html', html])
    expect(r.code).toBe(0)
    expect(r.stderr).toBe(`wrote ${html}\n`)
    const report = JSON.parse(r.stdout)
    expect(report.current).toMatchObject({
      reads: 8,
      l1Hits: 0,
      l2Hits: 2,
      misses: 6,
      sourceCalls: 6,
      staleReads: 0,
      sourceCallsPerSecond: 0.1,
    })
    expect(report.proposed).toMatchObject({
      reads: 8,
      l1Hits: 5,
      l2Hits: 1,
      staleReads: 1,
      misses: 2,
      sourceCalls: 3,
      staleShare: 0.125,
      sourceCallsPerSecond: 0.05,
    })
    expect(report.observed).toMatchObject({
      l1Hits: 3,
      l2Hits: 2,
      misses: 3,
      missesPerSecond: 0.05,
      sourceCalls: null,
      sourceCallsPerSecond: null,
      staleShare: null,
    })
    const page = readFileSync(html, 'utf8')
    expect(page).toMatch(/^<!doctype html>/)
    expect(page).toContain('<td>62.5%</td>') // the observed hit ratio
  })

  it('scales per-second figures by --sample-rate', async () => {
    const r = await run([...args, '--json', '--sample-rate', '0.25'])
    expect(JSON.parse(r.stdout).current.sourceCallsPerSecond).toBe(0.4)
  })

  it('exits 3 with one line naming the file and line of a bad record', async () => {
    const log = join(tmp, 'bad.jsonl')
    writeFileSync(
      log,
      '{"t":1,"ns":"p","k":"a1","o":"l1","s":0}\n{"t":2,"ns":"p","k":"a1","o":"hit","s":0}\n',
    )
    const r = await run(['simulate', '--log', log, '--policy', args[4]!, '--vs', args[6]!])
    expectOneLineError(
      r,
      3,
      /Access log .*bad\.jsonl, line 2: `o` must be "l1", "l2" or "miss"\. .*\[ERR_STRATA_ACCESS_LOG\]$/,
    )
  })

  it('warns when a policy names a namespace the log never reads, or the two policies replay different ones', async () => {
    const typo = join(tmp, 'typo.json')
    writeFileSync(typo, '{ "ttl": "30s", "namespace": "products" }\n')
    const r = await run(['simulate', '--log', args[2]!, '--policy', args[4]!, '--vs', typo])
    expect(r.code).toBe(0)
    const warnings = r.stderr.trimEnd().split('\n')
    expect(warnings).toEqual([
      'warning: the proposed policy (typo.json) names namespace "products", which test/fixtures/cli/access.jsonl ' +
        'never reads, so its column replays nothing; the log has "price", "product"',
      'warning: the policies replay different reads (current: "product", proposed: "products"), and the observed ' +
        'column follows the current one: give both the same "namespace" to compare like with like',
    ])
    expect(r.stdout).toMatch(/^reads replayed +8 +0 +8$/m)
    // Policies that agree, on a namespace the log has: no warning (the first test's stderr is empty too).
    const everything = join(tmp, 'everything.json')
    writeFileSync(everything, '{ "ttl": "30s" }\n')
    const both = await run(['simulate', '--log', args[2]!, '--policy', everything, '--vs', everything])
    expect([both.code, both.stderr]).toEqual([0, ''])
    expect(both.stdout).toMatch(/^reads replayed +9 +9 +9$/m)
  })

  it('exits 3 with one line for a missing log, a policy that is not JSON, a bad policy field, or a policy too large', async () => {
    expectOneLineError(
      await run(['simulate', '--log', 'nope.jsonl', '--policy', args[4]!, '--vs', args[6]!]),
      3,
      /^stratacache simulate: nope\.jsonl: no such access log\. \[ERR_STRATA_CLI_INPUT\]$/,
    )
    const notJson = join(tmp, 'policy.txt')
    writeFileSync(notJson, 'ttl: 5m\n')
    expectOneLineError(
      await run(['simulate', '--log', args[2]!, '--policy', notJson, '--vs', args[6]!]),
      3,
      /policy\.txt: not JSON .*\[ERR_STRATA_CLI_INPUT\]$/,
    )
    const badField = join(tmp, 'bad-policy.json')
    writeFileSync(badField, '{ "ttl": "5m", "l1": { "maxEntries": 10, "policy": "arc" } }\n')
    expectOneLineError(
      await run(['simulate', '--log', args[2]!, '--policy', args[4]!, '--vs', badField]),
      3,
      /Invalid option `bad-policy\.json: l1\.policy`: expected "w-tinylfu" or "lru", got "arc" \(string\)\. \[ERR_STRATA_INVALID_OPTION\]$/,
    )
    // The access log passed as the policy by mistake (here a 2 MB file): refused by its size, not parsed.
    const huge = join(tmp, 'access-as-policy.jsonl')
    writeFileSync(huge, 'x'.repeat(2 * 1024 * 1024))
    expectOneLineError(
      await run(['simulate', '--log', args[2]!, '--policy', huge, '--vs', args[6]!]),
      3,
      /access-as-policy\.jsonl: the policy file is 2097152 bytes, more than the 1048576 a policy may be: the access log goes to --log, a policy's JSON to --policy and --vs\. \[ERR_STRATA_CLI_INPUT\]$/,
    )
  })
})

describe('stratacache inspect and purge, against a real Redis', () => {
  const purgeConfig = `${fixtures}/purge-config.mjs`

  /** Empties the fixture's namespace, then fills it with `count` entries through a cache of the test's own. */
  async function seed(url: string, count: number): Promise<void> {
    const { createCache } = await import('stratacache')
    const { redisStore } = await import('stratacache/redis')
    const cache = createCache({ service: 'cli-purge', l2: redisStore({ url }) })
    const ns = cache.namespace('product', {
      key: 'product:{id}',
      ttl: '1h',
      load: ({ id }) => ({ id }),
      tags: ({ id }) => [`tenant:${Number(id) % 2 === 0 ? 'even' : 'odd'}`],
    })
    await cache.connect()
    // The suite's Redis is shared: start from an empty namespace.
    await ns.clear()
    for (let id = 0; id < count; id++) await ns.get({ id })
    await cache.close()
  }

  it('inspects a bare Redis by URL and prefix, as text and as JSON', async () => {
    const url = inject('redisUrl')
    await seed(url, 20)
    const text = await run(['inspect', '--redis', url, '--prefix', 'cli-purge:product:v1:'])
    expect(text.code, text.stderr).toBe(0)
    expect(text.stdout).toMatch(/^memory used {3}\d/m)
    expect(text.stdout).toMatch(/^policy {8}\S/m)
    expect(text.stdout).toMatch(/^cli-purge:product:v1: +\d+ +\d+ /m)
    // The seeded entries live an hour plus jitter: the TTL line counts them under "< 1d".
    expect(text.stdout).toMatch(
      /^ {2}cli-purge:product:v1: {2}< 10s \d+ · < 1m \d+ · < 10m \d+ · < 1h \d+ · < 1d [1-9]\d* · longer \d+$/m,
    )
    const json = await run(['inspect', '--redis', url, '--prefix', 'cli-purge:product:v1:', '--json'])
    const report = JSON.parse(json.stdout) as {
      namespaces: Record<string, { entries: number; stoppedBy: string }>
    }
    expect(report.namespaces['cli-purge:product:v1:']).toMatchObject({ stoppedBy: 'complete' })
    expect(report.namespaces['cli-purge:product:v1:']!.entries).toBeGreaterThanOrEqual(20)
  })

  it('inspects through a config module: its namespaces, budget and critical flags', async () => {
    const url = inject('redisUrl')
    const r = await run(['inspect', '--config', purgeConfig], { env: { STRATACACHE_TEST_REDIS: url } })
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toMatch(/^product \(critical\)/m)
    expect(r.stdout).toMatch(/^budget .*EXCEEDED/m)
  })

  it('purges a tenant and a namespace through the cache, each recorded in the audit log', async () => {
    const url = inject('redisUrl')
    await seed(url, 10)
    const audit = join(tmp, 'audit.jsonl')
    const env = { STRATACACHE_TEST_REDIS: url, STRATACACHE_TEST_AUDIT: audit }
    const tenant = await run(
      [
        'purge',
        '--config',
        purgeConfig,
        '--tenant',
        'even',
        '--reason',
        'DSR-1: test',
        '--actor',
        'ci',
        '--json',
      ],
      { env },
    )
    expect(tenant.code, tenant.stderr).toBe(0)
    expect(JSON.parse(tenant.stdout)).toMatchObject({ keysDeleted: 5 })
    const all = await run(['purge', '--config', purgeConfig, '--namespace', 'product', '--reason', 'INC-2'], {
      env,
    })
    expect(all.code, all.stderr).toBe(0)
    expect(all.stdout).toMatch(/^purged 5 keys \(namespace product\); audit record \S+\n$/)
    const records = readFileSync(audit, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>)
    expect(records.map((r) => [r.phase ?? r.event ?? r.status, r.actor, r.reason])).toHaveLength(4)
    expect(JSON.stringify(records)).toContain('DSR-1: test')
    expect(JSON.stringify(records)).toContain('"ci"')
  })

  it('refuses to purge without an audit sink: one line, exit 3, nothing deleted', async () => {
    const url = inject('redisUrl')
    await seed(url, 4)
    const r = await run(['purge', '--config', purgeConfig, '--namespace', 'product', '--reason', 'x'], {
      env: { STRATACACHE_TEST_REDIS: url, STRATACACHE_TEST_AUDIT: '' },
    })
    expectOneLineError(r, 3, /ERR_STRATA_AUDIT_SINK_REQUIRED/)
  })
})
