// Type-checks the published declarations as a user's project does: the packed tarball installed from a file, its
// peers and @types/node from the npm registry, `tsc --noEmit` with `skipLibCheck: false`, once against the oldest
// supported @types/node (20) and once against the latest. Needs the registry: without it the test fails, by design.
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

/** A user's project: ESM, strict, NodeNext, every entry point imported and used, no library check skipped. */
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
import { Registry } from 'prom-client'
import { channelNames, createCache, tracingChannelNames, type CacheStats, type HitMessage } from 'stratacache'
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
`,
}

/** The version range the package declares for `name` (peer, else dev dependency). */
function declaredRange(pkg: Record<string, Record<string, string> | undefined>, name: string): string {
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
  // The peers at the ranges the package declares, TypeScript at the one it is built with.
  const pkg = JSON.parse(await readFile(join(root, 'package.json'), 'utf8')) as Record<
    string,
    Record<string, string> | undefined
  >
  const peers = ['typescript', 'redis', 'prom-client', '@opentelemetry/api'].map(
    (name) => `${name}@${declaredRange(pkg, name)}`,
  )
  await npmIn(project, [...INSTALL, join(work, packed!.filename), ...peers, '@types/node@20'])
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

  it.each(['20', 'latest'])(
    'type-check with @types/node@%s, strict, NodeNext, skipLibCheck false',
    async (version) => {
      const project = await consumerProject()
      await npmIn(project, [...INSTALL, `@types/node@${version}`])
      const installed = JSON.parse(
        await readFile(join(project, 'node_modules/@types/node/package.json'), 'utf8'),
      ) as { version: string }
      const tsc = join(project, 'node_modules/typescript/bin/tsc')
      const result = await run(process.execPath, [tsc, '--noEmit', '-p', project], { cwd: project }).then(
        () => '',
        (error: Error & { stdout?: string }) => error.stdout || error.message,
      )
      expect(result, `tsc with @types/node ${installed.version}`).toBe('')
    },
  )
})
