// The README's fifteen-line example, run as written (with a stand-in `db` and its own Redis), so it cannot rot.
import { execFile } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import ts from 'typescript'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startRedis, type RedisServer } from '../helpers/redis-server.js'

const root = fileURLToPath(new URL('../..', import.meta.url))

// A Redis of its own: the example's service and keys are the ones the tour (examples/basic.ts) uses too.
let redis: RedisServer
beforeAll(async () => {
  redis = await startRedis()
})
afterAll(() => redis?.stop())

/** The first ```ts block after the marker comment that names this file. */
function readmeExample(): string {
  const readme = readFileSync(join(root, 'README.md'), 'utf8')
  const marker = readme.indexOf('<!-- test/examples/readme.test.ts runs this block')
  expect(marker, 'the README marks the block this test runs').toBeGreaterThan(-1)
  const match = /```ts\n([\s\S]*?)```/.exec(readme.slice(marker))
  return match![1]!
}

describe('the README', () => {
  it('type-checks its fifteen-line example against a db whose functions take typed parameters', () => {
    // The first thing a newcomer copies: under the project's strict settings, with a `db` typed as an application's
    // would be (no `Scalar` in sight), it must compile as written.
    const file = join(root, 'examples', `.readme-typecheck-${process.pid}.ts`)
    writeFileSync(
      file,
      `declare const db: {
  product(tenantId: string, productId: number, locale: string, currency: string): Promise<{ name: string }>
}
${readmeExample()}
export {}
`,
    )
    try {
      const config = ts.getParsedCommandLineOfConfigFile(join(root, 'tsconfig.json'), undefined, {
        ...ts.sys,
        onUnRecoverableConfigFileDiagnostic: (d) => {
          throw new Error(ts.flattenDiagnosticMessageText(d.messageText, '\n'))
        },
      })!
      const program = ts.createProgram([file], { ...config.options, noEmit: true })
      const errors = ts
        .getPreEmitDiagnostics(program)
        .filter((d) => d.file?.fileName === file)
        .map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n'))
      expect(errors).toEqual([])
    } finally {
      rmSync(file, { force: true })
    }
  }, 60_000)

  it('runs its fifteen-line example: one query, the key it names, and a tag invalidation that forces a reload', async () => {
    const example = readmeExample()
    expect(example.split('\n').filter((line) => line.trim() !== '').length).toBeLessThanOrEqual(16)
    const imports = example.match(/^import .*$/gm)!.join('\n')
    // The example's last line closes the cache: run the checks before it.
    const body = example
      .replace(/^import .*$/gm, '')
      .replace('redis://127.0.0.1:6379', redis.url)
      .replace(/await cache\.close\(\)\s*$/, '')
    const script = `${imports}
let queries = 0
const db = {
  async product(tenantId: string, productId: number, locale: string, currency: string) {
    queries++
    return { tenantId, productId, name: locale === 'en' ? 'Screw' : 'Schraube', price: \`1.99 \${currency}\` }
  },
}
${body}
const params = { tenantId: 't1', productId: 42, locale: 'en', currency: 'EUR' }
const afterInvalidation = queries
await products.get(params) // the tag dropped the entry: loads again
await products.get(params) // and caches it
console.log(JSON.stringify({ product, key: products.key(params), afterInvalidation, queries }))
await cache.close()
`
    // Inside the project, so tsx maps 'stratacache' to the sources through tsconfig's `paths`.
    const file = join(root, 'examples', `.readme-example-${process.pid}.ts`)
    writeFileSync(file, script)
    try {
      const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', file], {
        cwd: root,
        timeout: 20_000,
      })
      expect(JSON.parse(stdout.trim().split('\n').at(-1)!)).toEqual({
        product: { tenantId: 't1', productId: 42, name: 'Screw', price: '1.99 EUR' },
        key: 'catalog:product:v1:tenant:t1:product:42:currency=EUR:locale=en',
        afterInvalidation: 1,
        queries: 2,
      })
    } finally {
      rmSync(file, { force: true })
    }
  })

  it('runs every other example of the README, in order, as one program (with stand-ins for the application’s objects)', async () => {
    const readme = readFileSync(join(root, 'README.md'), 'utf8')
    const marker = readme.indexOf('<!-- test/examples/readme.test.ts runs this block')
    const blocks = [...readme.matchAll(/```ts\n([\s\S]*?)```/g)]
      .filter((m) => m.index < marker || m.index > marker + 200)
      .map((m) => m[1]!)
    expect(blocks.length).toBeGreaterThanOrEqual(6)
    const imports = new Set<string>()
    const bodies = blocks.map((block) => {
      for (const line of block.match(/^import .*$/gm) ?? []) imports.add(line)
      // Closing the cache mid-way would stop the later examples: the program closes it at the end.
      return block.replace(/^import .*$/gm, '').replace(/^await cache\.close\(\).*$/gm, '')
    })
    // The disk store's example opens a directory of the test's own.
    const diskPath = mkdtempSync(join(tmpdir(), 'stratacache-readme-'))
    const script = `${[...imports].join('\n')}
// Stand-ins for what the examples take from the application.
const db = {
  product: async (tenantId: string, productId: number, locale: string, currency: string) => ({ tenantId, productId, locale, currency }),
  order: async (tenantId: string, orderId: number) => ({ tenantId, orderId }),
  account: async (id: number) => ({ id, ownerId: 42 }),
  saveAccount: async () => {},
}
const pricing = { fetch: async (sku: string, _: { signal: AbortSignal }) => ({ sku, cents: 199 }) }
const topSkus = ['sku-1', 'sku-2', 'sku-3']
const params = { tenantId: 't1', productId: 42, locale: 'en', currency: 'EUR' }
const value = { tenantId: 't1', productId: 42, locale: 'en', currency: 'EUR' }
const next = { id: 7, ownerId: 42 }
const routes = new Map<string, (request: unknown, reply: unknown) => Promise<unknown>>()
const app = { get: (path: string, handler: (request: unknown, reply: unknown) => Promise<unknown>) => void routes.set(path, handler) }
${bodies.join('\n').replaceAll('redis://127.0.0.1:6379', redis.url).replaceAll('/var/cache/catalog', diskPath)}
let scraped = ''
const reply = { type: () => reply, send: (body: string) => { scraped = body; return reply } }
await routes.get('/metrics')!({}, reply)
console.log(JSON.stringify({ product, many: many.length, fromStore: store.get('a'), scraped: scraped.includes('stratacache_hits_total') }))
await cache.close()
`
    const file = join(root, 'examples', `.readme-all-${process.pid}.ts`)
    writeFileSync(file, script)
    try {
      const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', file], {
        cwd: root,
        timeout: 30_000,
      })
      expect(JSON.parse(stdout.trim().split('\n').at(-1)!)).toEqual({
        product: { tenantId: 't1', productId: 42, locale: 'en', currency: 'EUR' },
        many: 1,
        fromStore: 'alpha',
        scraped: true,
      })
    } finally {
      rmSync(file, { force: true })
      rmSync(diskPath, { recursive: true, force: true })
    }
  })
})
