// The cache contract's parts: the `exceptions` option, cache.namespaces(), the model, the Markdown and the check.
import { describe, expect, it } from 'vitest'
import { createCache, InvalidOptionError } from 'stratacache'
import { main } from '../../src/cli/run.js'
import type { CliIo } from '../../src/cli/command.js'
import { checkContract } from '../../src/cli/contract/check.js'
import { describeCache, type ContractSource } from '../../src/cli/contract/describe.js'
import { renderContract } from '../../src/cli/contract/render.js'
import { formatCount, formatDuration, formatShare } from '../../src/cli/format.js'

const load = () => 1

/** The namespace as seen through other resolved options: what other parts of the library may add. */
function withOptions<T extends object>(ns: T, options: object): T {
  return new Proxy(ns, {
    get(target, property) {
      if (property === 'options') return options
      const value: unknown = Reflect.get(target, property, target)
      return typeof value === 'function' ? value.bind(target) : value
    },
  })
}

describe('namespace option `exceptions`', () => {
  it('is resolved sorted by expiry, then rule, and frozen', () => {
    const cache = createCache({ service: 'svc' })
    const ns = cache.namespace('a', {
      key: 'k:{id}',
      ttl: '1m',
      load,
      exceptions: [
        { rule: 'z-rule', reason: 'why z', until: '2030-01-01' },
        { rule: 'b-rule', reason: 'why b', until: '2031-05-05' },
        { rule: 'a-rule', reason: 'why a', until: '2030-01-01' },
      ],
    })
    expect(ns.options.exceptions.map((e) => e.rule)).toEqual(['a-rule', 'z-rule', 'b-rule'])
    expect(Object.isFrozen(ns.options.exceptions)).toBe(true)
    expect(Object.isFrozen(ns.options.exceptions[0])).toBe(true)
    expect(cache.namespace('b', { key: 'k:{id}', ttl: '1m', load }).options.exceptions).toEqual([])
  })

  it.each([
    [{ rule: 'r', reason: 'why' }, 'a.exceptions[0].until', /exceptions are debt with an expiry/],
    [{ rule: 'r', reason: 'why', until: '2026-02-30' }, 'a.exceptions[0].until', /ISO date/],
    [{ rule: 'r', reason: 'why', until: '2026-1-5' }, 'a.exceptions[0].until', /ISO date/],
    [{ rule: 'r', reason: 'why', until: '2026-01-05T00:00:00Z' }, 'a.exceptions[0].until', /ISO date/],
    [{ rule: '', reason: 'why', until: '2026-01-05' }, 'a.exceptions[0].rule', /the rule excepted/],
    [{ rule: 'r', reason: '  ', until: '2026-01-05' }, 'a.exceptions[0].reason', /why the exception exists/],
    ['r', 'a.exceptions[0]', /`rule`, `reason` and `until`/],
  ])('refuses the exception %j, naming %s', (exception, option, expected) => {
    const cache = createCache({ service: 'svc' })
    const declare = () =>
      cache.namespace('a', { key: 'k:{id}', ttl: '1m', load, exceptions: [exception as never] })
    expect(declare).toThrow(InvalidOptionError)
    expect(declare).toThrow(`Invalid option \`${option}\``)
    expect(declare).toThrow(expected)
  })

  it('refuses a non-array and a rule excepted twice', () => {
    const cache = createCache({ service: 'svc' })
    expect(() => cache.namespace('a', { key: 'k', ttl: '1m', load, exceptions: {} as never })).toThrow(
      'Invalid option `a.exceptions`',
    )
    const twice = { rule: 'r', reason: 'why', until: '2030-01-01' }
    expect(() => cache.namespace('a', { key: 'k', ttl: '1m', load, exceptions: [twice, twice] })).toThrow(
      /`a\.exceptions\[1\]\.rule`: expected each rule at most once/,
    )
  })
})

describe('namespace option `warmUps`', () => {
  it('is printed in the contract with each job’s owner, schedule, key source and budget, sorted by name', () => {
    const cache = createCache({ service: 'svc' })
    cache.namespace('product', {
      key: 'p:{id}',
      ttl: '1m',
      load,
      owner: 'team-catalog',
      warmUps: [
        {
          name: 'top-products',
          owner: 'team-catalog',
          schedule: 'every deploy, before traffic',
          from: 'top.jsonl',
          maxPerSecond: 200,
          timeLimit: '10m',
        },
        { name: 'all-prices', owner: 'team-pricing', schedule: 'daily 05:00 UTC' },
      ],
    })
    cache.namespace('plain', { key: 'q:{id}', ttl: '1m', load })
    const model = describeCache(cache)
    const product = model.namespaces.find((ns) => ns.name === 'product')!
    expect(product.warmUps).toEqual([
      {
        name: 'all-prices',
        owner: 'team-pricing',
        schedule: 'daily 05:00 UTC',
        from: null,
        maxPerSecond: null,
        timeLimitMs: null,
      },
      {
        name: 'top-products',
        owner: 'team-catalog',
        schedule: 'every deploy, before traffic',
        from: 'top.jsonl',
        maxPerSecond: 200,
        timeLimitMs: 600_000,
      },
    ])
    const text = renderContract(model)
    expect(text).toContain(
      '- **Warm-up jobs** (run by your pipeline or scheduler with `stratacache warm`; the cache runs none by itself):\n' +
        '  - `all-prices`: owner team-pricing; runs daily 05:00 UTC; budget: none declared\n' +
        '  - `top-products`: owner team-catalog; runs every deploy, before traffic; keys from top.jsonl; budget: 200 keys/s at most, stops after 10m\n',
    )
    // A namespace without jobs prints no line: contracts of caches that declare none do not change.
    expect(text.match(/Warm-up jobs/g)).toHaveLength(1)
    expect(model.namespaces.find((ns) => ns.name === 'plain')!.warmUps).toEqual([])
  })

  it.each([
    [{ owner: 'o', schedule: 's' }, 'a.warmUps[0].name', /the job's name/],
    [{ name: 'n', schedule: 's' }, 'a.warmUps[0].owner', /who answers for the job/],
    [{ name: 'n', owner: 'o', schedule: ' ' }, 'a.warmUps[0].schedule', /when it runs/],
    [{ name: 'n', owner: 'o', schedule: 's', maxPerSecond: 0 }, 'a.warmUps[0].maxPerSecond', /positive/],
    [
      { name: 'n', owner: 'o', schedule: 's', timeLimit: 'soon' },
      'a.warmUps[0].timeLimit',
      /such as '250ms'/,
    ],
    [
      { name: 'n', owner: 'o', schedule: 's', when: 'x' },
      '`warmUps[0].when` in namespace "a"',
      /Unknown option/,
    ],
  ])('refuses the job %j, naming %s', (job, option, expected) => {
    const cache = createCache({ service: 'svc' })
    const declare = () => cache.namespace('a', { key: 'k:{id}', ttl: '1m', load, warmUps: [job as never] })
    expect(declare).toThrow(InvalidOptionError)
    expect(declare).toThrow(option)
    expect(declare).toThrow(expected)
  })

  it('refuses a job name declared twice', () => {
    const cache = createCache({ service: 'svc' })
    const job = { name: 'n', owner: 'o', schedule: 's' }
    expect(() => cache.namespace('a', { key: 'k', ttl: '1m', load, warmUps: [job, job] })).toThrow(
      /`a\.warmUps\[1\]\.name`: expected each job name at most once/,
    )
  })
})

describe('cache.namespaces()', () => {
  it('lists the declared namespaces in declaration order, as a frozen array', async () => {
    const cache = createCache({ service: 'svc' })
    const b = cache.namespace('b', { key: 'k', ttl: '1m', load })
    const a = cache.namespace('a', { key: 'k', ttl: '1m', load })
    const list = cache.namespaces()
    expect(list.map((ns) => ns.name)).toEqual(['b', 'a'])
    expect(list[0]).toBe(b)
    expect(list[1]).toBe(a)
    expect(Object.isFrozen(list)).toBe(true)
    await cache.close()
  })
})

describe('contract model and Markdown', () => {
  it('reads data-protection options defensively: printed when present with the right shape', () => {
    const cache = createCache({ service: 'svc', l1: false })
    cache.namespace('user', { key: 'user:{id}', ttl: '1m', load })
    const [ns] = cache.namespaces()
    // What other parts of the library add to the resolved options (classification, critical, codec).
    const options = {
      ...ns!.options,
      classification: 'personal',
      critical: true,
      codec: { encrypt: true, redactor: { paths: ['ssn', 'cards[].number'] } },
    }
    const source: ContractSource = {
      service: cache.service,
      options: cache.options,
      namespaces: () => [withOptions(ns!, options)],
    }
    const model = describeCache(source)
    expect(model.namespaces[0]!.data).toEqual({
      classification: 'personal',
      critical: true,
      redactedFields: ['ssn', 'cards[].number'],
      encrypted: true,
    })
    const markdown = renderContract(model)
    expect(markdown).toContain('- **Classification**: personal\n')
    expect(markdown).toContain('- **Critical** (must not be evicted): yes\n')
    expect(markdown).toContain('- **Redacted fields**: `ssn`, `cards[].number`\n')
    expect(markdown).toContain('- **L1 copy**: none (the cache has no L1)\n')
    expect(markdown).toMatch(
      /^\| `user` +\| not declared \| eventual +\| none +\| 1m +\| none +\| personal +\| yes +\|$/m,
    )

    const odd = { ...ns!.options, classification: 7, critical: 'yes', redact: [1], codec: null }
    const data = describeCache({ ...source, namespaces: () => [withOptions(ns!, odd)] }).namespaces[0]!.data
    expect(data).toEqual({ classification: null, critical: null, redactedFields: null, encrypted: null })
  })

  /** A cache with a namespace of each write path: none (no `write`), write-through, cache-aside. */
  function writePaths(through: { timeouts?: { write: '5s' } } = {}) {
    const cache = createCache({ service: 'svc' })
    // The default writeStrategy is write-through, but without `write` there is no write path: ns.write() throws.
    cache.namespace('readonly', { key: 'r:{id}', ttl: '1m', load })
    cache.namespace('through', { key: 't:{id}', ttl: '1m', load, write: () => {}, ...through })
    cache.namespace('aside', {
      key: 'a:{id}',
      ttl: '1m',
      load,
      write: () => {},
      writeStrategy: 'cache-aside',
    })
    return cache
  }

  it('claims a write path only for a namespace with a `write` function', () => {
    const cache = writePaths()
    const model = describeCache(cache)
    const strategy = Object.fromEntries(model.namespaces.map((ns) => [ns.name, ns.consistency.writeStrategy]))
    expect(strategy).toEqual({
      aside: 'cache-aside',
      readonly: 'none',
      through: 'write-through',
    })
    expect(cache.namespaces().map((ns) => [ns.name, ns.options.writer])).toEqual([
      ['readonly', false],
      ['through', true],
      ['aside', true],
    ])
    const markdown = renderContract(model)
    expect(markdown).toMatch(/^\| `readonly` +\| not declared \| eventual +\| none +\|/m)
    expect(markdown).toMatch(/^\| `through` +\| not declared \| eventual +\| write-through +\|/m)
    expect(markdown.match(/- \*\*Write strategy\*\*: none: no `write` function/g)).toHaveLength(1)
    expect(markdown.match(/- \*\*Write strategy\*\*: write-through:/g)).toHaveLength(1)
  })

  it("states write()'s source-write timeout where write() writes the source itself", () => {
    const cache = writePaths({ timeouts: { write: '5s' } })
    const through = cache.namespaces().find((ns) => ns.name === 'through')!
    /** `through` under another name, with other resolved options. */
    const as = (name: string, options: object) =>
      new Proxy(withOptions(through, options), {
        get: (target, property) => (property === 'name' ? name : Reflect.get(target, property, target)),
      })
    // Write-behind needs L2 to be declared; its resolved options, as such a namespace has them.
    const behind = as('behind', {
      ...through.options,
      writeStrategy: 'write-behind',
      writeBehind: { batchSize: 100, flushIntervalMs: 100, maxAttempts: 5 },
    })
    // A cache from a version of the library without the option.
    const older = as('older', { ...through.options, writeTimeoutMs: undefined })
    const model = describeCache({
      service: cache.service,
      options: cache.options,
      namespaces: () => [...cache.namespaces(), behind, older],
    })
    const timeouts = Object.fromEntries(
      model.namespaces.map((ns) => [ns.name, ns.consistency.writeTimeoutMs]),
    )
    expect(timeouts).toEqual({ aside: 30_000, behind: null, older: null, readonly: null, through: 5_000 })
    const markdown = renderContract(model)
    expect(markdown).toMatch(
      /- \*\*Write strategy\*\*: write-through: .*; a source write still pending after 5s is aborted, the entry dropped everywhere, and `write\(\)` rejects with ERR_STRATA_WRITE_TIMEOUT/,
    )
    expect(markdown).toMatch(/- \*\*Write strategy\*\*: cache-aside: .*still pending after 30s is aborted/)
    // Not for write-behind (its flusher's calls have their own bound), nor for a cache that does not say.
    expect(markdown.match(/ERR_STRATA_WRITE_TIMEOUT/g)).toHaveLength(2)
  })

  it('is deterministic: namespaces sorted by name whatever the declaration order', () => {
    const render = (names: string[]) => {
      const cache = createCache({ service: 'svc' })
      for (const name of names)
        cache.namespace(name, { key: 'id:{id}', ttl: '1m', load, owner: `team-${name}` })
      return renderContract(describeCache(cache))
    }
    const text = render(['b', 'c', 'a'])
    expect(text).toBe(render(['a', 'b', 'c']))
    expect(text.indexOf('## Namespace `a`')).toBeLessThan(text.indexOf('## Namespace `b`'))
    expect(text).not.toMatch(/\d{4}-\d{2}-\d{2}/) // no date anywhere
    expect(text.endsWith('.\n')).toBe(true)
  })

  it('escapes pipes and folds new lines in table cells', () => {
    const cache = createCache({ service: 'svc' })
    cache.namespace('a', {
      key: 'k',
      ttl: '1m',
      load,
      exceptions: [{ rule: 'r', reason: 'a | b\nc', until: '2030-01-01' }],
    })
    expect(renderContract(describeCache(cache))).toContain('| `r`  | a \\| b c | 2030-01-01 |')
  })
})

describe('contract check', () => {
  const model = (until: string) => {
    const cache = createCache({ service: 'svc' })
    cache.namespace('a', { key: 'k', ttl: '1m', load, exceptions: [{ rule: 'r', reason: 'why', until }] })
    return describeCache(cache)
  }

  it('holds an exception through its until day and expires it the day after', () => {
    const m = model('2030-03-01')
    const text = renderContract(m)
    expect(checkContract(text, text, m, '2030-03-01')).toMatchObject({ ok: true, expired: [] })
    expect(checkContract(text, text, m, '2030-02-20').expiringSoon).toEqual([
      { namespace: 'a', rule: 'r', reason: 'why', until: '2030-03-01', daysLeft: 9 },
    ])
    expect(checkContract(text, text, m, '2030-02-01').expiringSoon).toEqual([])
    expect(checkContract(text, text, m, '2030-03-02')).toMatchObject({
      ok: false,
      drift: [],
      expired: [{ namespace: 'a', rule: 'r', until: '2030-03-01' }],
    })
  })

  it('groups changed lines by section, removals before additions', () => {
    const m = model('2030-03-01')
    const text = renderContract(m)
    const edited = text.replace('- **TTL**: 1m', '- **TTL**: 2m').replace('# Cache contract', '# Contract')
    const result = checkContract(edited, text, m, '2030-01-01')
    expect(result.ok).toBe(false)
    expect(result.drift).toEqual([
      {
        section: 'header',
        kind: 'changed',
        lines: [
          { op: '-', text: '# Contract: `svc`' },
          { op: '+', text: '# Cache contract: `svc`' },
        ],
      },
      {
        section: 'a',
        kind: 'changed',
        lines: [
          { op: '-', text: '- **TTL**: 2m' },
          { op: '+', text: '- **TTL**: 1m' },
        ],
      },
    ])
  })
})

describe('formatting', () => {
  it.each([
    [0, '0ms'],
    [250, '250ms'],
    [30_000, '30s'],
    [90_500, '1m 30s 500ms'],
    [3_600_000, '1h'],
    [90_000_000, '1d 1h'],
    [Infinity, 'unbounded'],
  ])('formats %d ms as %s', (ms, text) => expect(formatDuration(ms)).toBe(text))

  it('formats shares and counts without locale', () => {
    expect([formatShare(0.001), formatShare(0.61234), formatShare(1), formatShare(0.000012)]).toEqual([
      '0.1%',
      '61.23%',
      '100%',
      '0.0012%',
    ])
    expect([formatCount(1234567), formatCount(12.345), formatCount(-1500), formatCount(Infinity)]).toEqual([
      '1,234,567',
      '12.35',
      '-1,500',
      'unlimited',
    ])
  })
})

describe('progress', () => {
  const io = (tty: boolean) => {
    const err: string[] = []
    const out: string[] = []
    const value: CliIo = {
      out: (t) => out.push(t),
      err: (t) => err.push(t),
      errIsTty: tty,
      cwd: process.cwd(),
    }
    return { value, err, out }
  }
  const args = [
    'simulate',
    '--log',
    'test/fixtures/cli/access.jsonl',
    '--policy',
    'test/fixtures/cli/current.json',
    '--vs',
    'test/fixtures/cli/proposed.json',
  ]

  it('is drawn on stderr when it is a terminal, and cleared before the report', async () => {
    const terminal = io(true)
    expect(await main(args, terminal.value)).toBe(0)
    expect(terminal.err).toContain('\r\u001b[Kreading the log: 0%')
    expect(terminal.err).toContain('\r\u001b[Kreplaying the proposed policy: 0%')
    expect(terminal.err.at(-1)).toBe('\r\u001b[K')
    expect(terminal.out.join('')).toContain('Shadow evaluation of access.jsonl')
  })

  it('is not drawn into a pipe or a log', async () => {
    const pipe = io(false)
    expect(await main(args, pipe.value)).toBe(0)
    expect(pipe.err).toEqual([])
  })
})

describe('CLI documentation', () => {
  it('documents every command and flag in docs/cli.md and in the command’s --help', async () => {
    const { readFileSync } = await import('node:fs')
    const { commands, comingCommands } = await import('../../src/cli/commands/index.js')
    const doc = readFileSync(new URL('../../docs/cli.md', import.meta.url), 'utf8')
    expect(commands.length).toBeGreaterThanOrEqual(2)
    for (const command of commands) {
      expect(doc).toContain(`## ${command.name}\n`)
      expect(command.help).toMatch(new RegExp(`^Usage: stratacache ${command.name}`))
      for (const flag of Object.keys(command.flags)) {
        expect(doc).toContain(`--${flag}`)
        expect(command.help).toContain(`--${flag}`)
      }
    }
    for (const coming of comingCommands) expect(doc).toContain(`\`${coming.name}\``)
  })
})
