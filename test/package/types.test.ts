// Type-checks the published declarations as a user's project does: the packed tarball installed from a file, its
// peers, TypeScript and @types/node from the npm registry, `tsc --noEmit` with `skipLibCheck: false`, at both ends of
// what the README supports: the oldest TypeScript it names (5.4) with the oldest @types/node of the `engines` floor
// (20.13), and the TypeScript the package is built with, against the newest @types/node of Node.js 20 and against the
// latest. Needs the registry: without it the test fails, by design.
import { execFile } from 'node:child_process'
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { afterAll, describe, expect, it } from 'vitest'

const root = fileURLToPath(new URL('../..', import.meta.url))
const run = promisify(execFile)
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm'
const INSTALL = ['install', '--no-audit', '--no-fund', '--prefer-offline', '--fetch-retries=1']

interface PackageJson {
  engines: { node: string }
  exports: Record<string, unknown>
  peerDependencies?: Record<string, string>
  devDependencies?: Record<string, string>
}
const pkg = JSON.parse(await readFile(join(root, 'package.json'), 'utf8')) as PackageJson

/** `pattern`'s first group in `text`, or an error saying where the version was expected. */
function found(pattern: RegExp, text: string, where: string): string {
  const version = pattern.exec(text)?.[1]
  if (version === undefined) throw new Error(`No version matching ${pattern} in ${where}`)
  return version
}
/** The oldest @types/node: the line of the oldest Node.js `engines` allows (`>=20.13.0`: `20.13`, its newest patch). */
const oldestTypesNode = found(/^>=(\d+\.\d+)\.\d+$/, pkg.engines.node, 'package.json engines.node')
/** The oldest TypeScript the README's "Supported versions" names ("**TypeScript 5.4 or newer**"). */
const oldestTypeScript = found(
  /\*\*TypeScript (\d+\.\d+) or newer\*\*/,
  await readFile(join(root, 'README.md'), 'utf8'),
  'README.md',
)

/**
 * A user's project: ESM, strict, NodeNext, every entry point of package.json `exports` imported and used (a test
 * below holds the list to `exports`), no library check skipped.
 */
const consumer = {
  'package.json': JSON.stringify({ name: 'stratacache-consumer', private: true, type: 'module' }, null, 2),
  'tsconfig.json': JSON.stringify(
    {
      compilerOptions: {
        target: 'ES2022',
        module: 'NodeNext',
        moduleResolution: 'NodeNext',
        types: ['node'],
        strict: true,
        exactOptionalPropertyTypes: true,
        noUncheckedIndexedAccess: true,
        skipLibCheck: false,
        noEmit: true,
      },
      include: ['index.ts'],
    },
    null,
    2,
  ),
  'index.ts': `
import diagnosticsChannel from 'node:diagnostics_channel'
import { Redis } from 'ioredis'
import { Registry } from 'prom-client'
import { channelNames, createCache, tracingChannelNames, type CacheStats, type HitMessage } from 'stratacache'
import { diskStore, type DiskStore, type DiskStoreStats } from 'stratacache/disk'
import { ioredisStore } from 'stratacache/ioredis'
import { openTelemetry } from 'stratacache/opentelemetry'
import { prometheusMetrics, type PrometheusMetrics } from 'stratacache/prometheus'
import { redisStore } from 'stratacache/redis'

const cache = createCache({ service: 'consumer', l2: redisStore({ url: 'redis://127.0.0.1:6379' }) })
const product = cache.namespace('product', { key: 'product:{id}', ttl: '1m', load: ({ id }) => ({ id, name: 'x' }) })
export const name: Promise<string> = product.get({ id: 1 }).then((p) => p.name)
export const stats: CacheStats = cache.stats()
diagnosticsChannel.subscribe(channelNames.hit, (message) => void (message as HitMessage).tier)
diagnosticsChannel.tracingChannel(tracingChannelNames.get)
const exported: PrometheusMetrics = prometheusMetrics(cache, { registry: new Registry(), prefix: 'app_cache_' })
exported.unregister()
openTelemetry(cache, { spans: true, metrics: true }).stop()
// ioredis: a client made from a URL with ioredis's own options, and the user's own ioredis client.
const options = { enableOfflineQueue: false, maxRetriesPerRequest: 0 }
createCache({ service: 'consumer', l2: ioredisStore({ url: 'redis://127.0.0.1:6379', redisOptions: options }) })
createCache({ service: 'consumer', l2: ioredisStore({ client: new Redis({ ...options, lazyConnect: true }) }) })
const disk: DiskStore = diskStore({ path: '/var/cache/consumer', maxBytes: 256 * 1024 * 1024 })
createCache({ service: 'consumer', l2: disk })
export const diskStats: DiskStoreStats = disk.stats()
`,
}

/** The version range the package declares for `name` (peer, else dev dependency). */
function declaredRange(name: string): string {
  const range = pkg.peerDependencies?.[name] ?? pkg.devDependencies?.[name]
  if (range === undefined) throw new Error(`package.json declares no version of ${name}`)
  return range
}

async function newestMtime(dir: string): Promise<number> {
  let newest = 0
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) newest = Math.max(newest, (await stat(join(entry.parentPath, entry.name))).mtimeMs)
  }
  return newest
}

/** Runs npm; a failure throws with npm's own output, which says what went wrong. */
async function npmIn(cwd: string, args: string[], timeout = 45_000): Promise<string> {
  try {
    return (await run(npm, args, { cwd, timeout, maxBuffer: 16 * 1024 * 1024 })).stdout
  } catch (error) {
    const { stdout = '', stderr = '' } = error as { stdout?: string; stderr?: string }
    throw new Error(`\`npm ${args.join(' ')}\` failed in ${cwd}:\n${stderr || stdout}`.trimEnd(), {
      cause: error,
    })
  }
}

/** The version of the package installed at `node_modules/<dir>` in `project`. */
async function installed(project: string, dir: string): Promise<string> {
  const { version } = JSON.parse(
    await readFile(join(project, 'node_modules', dir, 'package.json'), 'utf8'),
  ) as {
    version: string
  }
  return version
}

/** Where the oldest TypeScript is installed in the consumer project, beside `typescript` (an npm alias). */
const OLDEST_TS_DIR = 'typescript-oldest'

/**
 * Packs the package and installs it with its peers in a new consumer project; made once, awaited by every test, so
 * a registry that cannot be reached fails each test with the reason rather than leaving them skipped.
 */
async function prepareConsumer(work: string): Promise<string> {
  // The tarball is packed from dist/: refuse a dist/ older than the sources rather than check stale declarations.
  const built = await stat(join(root, 'dist/index.d.ts')).catch(() => undefined)
  if (built === undefined) throw new Error('dist/ is missing: run `npm run build` (npm test does)')
  if ((await newestMtime(join(root, 'src'))) > built.mtimeMs) {
    throw new Error('dist/ is older than src/: run `npm run build` (npm test does)')
  }
  // --prefer-online: the registry itself must answer, not the local cache.
  const registry = (await npmIn(root, ['config', 'get', 'registry'])).trim()
  try {
    await npmIn(root, ['view', '@types/node', 'version', '--prefer-online', '--fetch-retries=1'], 30_000)
  } catch (error) {
    throw new Error(
      `The npm registry ${registry} could not be reached. This test installs the packed stratacache, its peers ` +
        'and @types/node from it, and fails rather than skip without it.',
      { cause: error },
    )
  }
  const [packed] = JSON.parse(await npmIn(root, ['pack', '--json', '--pack-destination', work])) as {
    filename: string
  }[]
  const project = join(work, 'consumer')
  await mkdir(project)
  for (const [file, text] of Object.entries(consumer)) await writeFile(join(project, file), text)
  // The peers the declarations import (stratacache/disk's do not import lmdb) at the ranges the package declares,
  // TypeScript at the one it is built with and, beside it, at the oldest the README supports.
  const peers = ['typescript', 'redis', 'ioredis', 'prom-client', '@opentelemetry/api'].map(
    (name) => `${name}@${declaredRange(name)}`,
  )
  const oldest = [`${OLDEST_TS_DIR}@npm:typescript@${oldestTypeScript}`, `@types/node@${oldestTypesNode}`]
  await npmIn(project, [...INSTALL, join(work, packed!.filename), ...peers, ...oldest])
  return project
}

describe('published declarations', { tags: ['registry'] }, () => {
  let work: string | undefined
  let prepared: Promise<string> | undefined
  const consumerProject = async () => {
    work ??= await mkdtemp(join(tmpdir(), 'stratacache-types-'))
    prepared ??= prepareConsumer(work)
    return prepared
  }

  afterAll(async () => {
    if (work !== undefined) await rm(work, { recursive: true, force: true })
  })

  // Both ends of each range, paired as users can pair them: @types/node before 20.16.10 (so 20.13) fail on their own
  // declarations under TypeScript 5.9, and the latest @types/node needs TypeScript 5.6 or newer.
  it.each([
    { typescript: oldestTypeScript, dir: OLDEST_TS_DIR, typesNode: oldestTypesNode },
    { typescript: declaredRange('typescript'), dir: 'typescript', typesNode: '20' },
    { typescript: declaredRange('typescript'), dir: 'typescript', typesNode: 'latest' },
  ])(
    'type-check with typescript@$typescript and @types/node@$typesNode, strict, NodeNext, skipLibCheck false',
    async ({ typescript: spec, dir, typesNode }) => {
      const project = await consumerProject()
      await npmIn(project, [...INSTALL, `@types/node@${typesNode}`])
      const [typescript, types] = [await installed(project, dir), await installed(project, '@types/node')]
      // Where a line is asked for (5.4, 20.13, 20), the version installed is on it.
      if (/^\d+(\.\d+)?$/.test(spec))
        expect(typescript.startsWith(`${spec}.`), `typescript ${typescript}`).toBe(true)
      if (typesNode !== 'latest') expect(types.startsWith(`${typesNode}.`), `@types/node ${types}`).toBe(true)
      const tsc = join(project, 'node_modules', dir, 'bin/tsc')
      const result = await run(process.execPath, [tsc, '--noEmit', '-p', project], { cwd: project }).then(
        () => '',
        (error: Error & { stdout?: string }) => error.stdout || error.message,
      )
      expect(result, `tsc ${typescript} with @types/node ${types}`).toBe('')
    },
    // Past the registry tag's 60 s: the first also packs and installs (up to npmIn's 45 s), and a tsc run without
    // skipLibCheck took 20-40 s on two busy cores.
    120_000,
  )
})

describe('the consumer project', () => {
  it('imports every entry point of package.json exports', () => {
    const entries = Object.keys(pkg.exports).filter((entry) => entry !== './package.json')
    const imported = [...consumer['index.ts'].matchAll(/ from '(stratacache(?:\/[\w-]+)?)'/g)].map(
      ([, specifier]) => `.${specifier!.slice('stratacache'.length)}`,
    )
    expect(imported.sort()).toEqual(entries.sort())
  })
})
