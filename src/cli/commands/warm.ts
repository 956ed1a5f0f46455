// `stratacache warm`: a warm-up job (`ns.warm()`) from a key list, with a budget, a progress bar and an exit code.
import { createReadStream, existsSync, readFileSync } from 'node:fs'
import { extname, isAbsolute, resolve } from 'node:path'
import { createInterface } from 'node:readline'
import { pathToFileURL } from 'node:url'
import { parseDuration } from '../../core/duration.js'
import { CliInputError, CliUsageError, ConfigModuleError, StrataError } from '../../errors.js'
import type { WarmProgress, WarmResult } from '../../refresh/warm.js'
import { defineCommand, ExitCode, required, type CliIo } from '../command.js'
import { loadConfigModule } from '../config-module.js'
import { formatCount, formatDuration } from '../format.js'

const MODULE_EXTENSIONS = new Set(['.js', '.mjs', '.cjs', '.ts', '.mts', '.cts'])

export const warmCommand = defineCommand({
  name: 'warm',
  summary: 'load a list of keys into the cache before traffic needs them, with a budget for the source',
  help: `Usage: stratacache warm --config FILE --namespace NAME --from FILE|MODULE [--max-per-second N]
                        [--time-limit DURATION] [--concurrency N] [--refresh] [--json]

Runs ns.warm() as a job: every key goes through the namespace's loader with its lock (one load per key across
processes), source limit and timeouts; keys already fresh in L1 or L2 are not loaded again (unless --refresh).
Progress is drawn on stderr when it is a terminal; the summary goes to stdout.

--from names the keys' parameters, one object each:
  FILE.json             a JSON array of objects, e.g. [{"tenantId":"t1","productId":42}]
  FILE (any other)      JSON lines: one object a line, blank lines skipped
  MODULE (.js .mjs .ts) its default export: an array or (async) iterable of objects, or a function returning one

Flags:
  -c, --config FILE          the module that creates your cache
  -n, --namespace NAME       the namespace to warm
  -f, --from FILE|MODULE     the keys (above)
      --max-per-second N     keys started per second at most: the source's budget (default: unlimited)
      --time-limit DURATION  stop starting keys after this long, e.g. 5m (those under way finish)
      --concurrency N        keys loaded at the same time (default 4; the namespace's source limit still applies)
      --refresh              load every key, even one that is fresh (a refresh before a deploy)
      --json                 print the result as JSON
  -h, --help                 this help

Exit codes: 0 every key warmed; 1 some keys failed, or were loaded but not stored in L2 (Redis down, or slower
than the namespace's timeouts.l2), or the time limit stopped the job; 2 bad command line; 3 the config module,
the key list or the cache could not be used.

Examples:
  npx stratacache warm --config stratacache.config.mjs --namespace product --from top-products.jsonl \\
    --max-per-second 200 --time-limit 10m`,
  flags: {
    config: { type: 'string', short: 'c' },
    namespace: { type: 'string', short: 'n' },
    from: { type: 'string', short: 'f' },
    'max-per-second': { type: 'string' },
    'time-limit': { type: 'string' },
    concurrency: { type: 'string' },
    refresh: { type: 'boolean' },
    json: { type: 'boolean' },
  },
  async run(flags, io) {
    const name = required('warm', flags, 'namespace', 'NAME (the namespace to warm)')
    const from = required('warm', flags, 'from', 'FILE|MODULE (the keys to warm)')
    const maxPerSecond = positive(flags['max-per-second'], 'max-per-second')
    const concurrency = positive(flags.concurrency, 'concurrency')
    const timeLimitMs = timeLimit(flags['time-limit'])
    const keys = await readKeys(from, io.cwd)
    const { cache, path } = await loadConfigModule('warm', flags.config, io.cwd)
    const limit = new AbortController()
    const timer = timeLimitMs === undefined ? undefined : setTimeout(() => limit.abort(), timeLimitMs).unref()
    const bar = progressBar(io, name, keys.total)
    try {
      const ns = cache.namespaces().find((candidate) => candidate.name === name)
      if (ns === undefined) {
        const known = cache.namespaces().map((candidate) => candidate.name)
        throw new CliUsageError(
          'warm',
          `No namespace "${name}" in ${path}; it declares: ${known.length > 0 ? known.join(', ') : 'none'}`,
        )
      }
      if (typeof ns.warm !== 'function') throw new ConfigModuleError(path, 'its cache has no warm()')
      let result: WarmResult
      try {
        result = await ns.warm(keys.iterable as Iterable<never>, {
          signal: limit.signal,
          onProgress: (progress) => bar.update(progress),
          ...(maxPerSecond === undefined ? {} : { maxPerSecond }),
          ...(concurrency === undefined ? {} : { concurrency }),
          ...(flags.refresh === true ? { refresh: true } : {}),
        })
      } catch (error) {
        // A key list that breaks off mid-way (a bad line) is the list's fault, not the cache's.
        if (error instanceof CliInputError) throw error
        if (error instanceof StrataError) throw error
        throw new CliInputError(from, `reading the keys failed: ${messageOf(error)}`, { cause: error })
      }
      bar.done()
      const timedOut = result.aborted
      io.out(
        flags.json === true ? asJson(name, result, timedOut) : asText(name, result, timedOut, timeLimitMs),
      )
      return result.failed > 0 || result.notStored > 0 || timedOut ? ExitCode.checkFailed : ExitCode.ok
    } finally {
      bar.done()
      clearTimeout(timer)
      await cache.close()
    }
  },
})

function positive(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined
  const number = Number(value)
  if (!Number.isFinite(number) || number <= 0 || value.trim() === '') {
    throw new CliUsageError('warm', `--${flag} must be a positive number, got "${value}"`)
  }
  if (flag === 'concurrency' && !Number.isInteger(number)) {
    throw new CliUsageError('warm', `--concurrency must be a whole number, got "${value}"`)
  }
  return number
}

function timeLimit(value: string | undefined): number | undefined {
  if (value === undefined) return undefined
  try {
    const ms = parseDuration(value, 'time-limit')
    if (ms > 0) return ms
  } catch {
    // Reported below, in the CLI's words.
  }
  throw new CliUsageError('warm', `--time-limit must be a duration such as 30s, 5m or 1h30m, got "${value}"`)
}

/** The key list: an iterable of parameter objects, and how many when that is known before the job runs. */
interface KeyList {
  readonly iterable: Iterable<unknown> | AsyncIterable<unknown>
  readonly total: number | undefined
}

async function readKeys(from: string, cwd: string): Promise<KeyList> {
  const file = isAbsolute(from) ? from : resolve(cwd, from)
  if (!existsSync(file)) throw new CliInputError(from, 'no such file')
  const extension = extname(file)
  if (MODULE_EXTENSIONS.has(extension)) return readModule(from, file)
  if (extension === '.json') {
    let parsed: unknown
    try {
      parsed = JSON.parse(readFileSync(file, 'utf8'))
    } catch (error) {
      throw new CliInputError(from, `not JSON (${messageOf(error)})`, { cause: error })
    }
    if (!Array.isArray(parsed)) throw new CliInputError(from, 'a .json key list must be an array of objects')
    parsed.forEach((item, i) => checkParams(from, item, `item ${i + 1}`))
    return { iterable: parsed, total: parsed.length }
  }
  // JSON lines, streamed: a list of millions of keys is never held whole. Counted first, for the progress bar.
  let total = 0
  for await (const line of createInterface({ input: createReadStream(file), crlfDelay: Infinity })) {
    if (line.trim() !== '') total++
  }
  return { iterable: jsonLines(from, file), total }
}

async function* jsonLines(from: string, file: string): AsyncIterable<unknown> {
  let number = 0
  for await (const line of createInterface({ input: createReadStream(file), crlfDelay: Infinity })) {
    number++
    if (line.trim() === '') continue
    let parsed: unknown
    try {
      parsed = JSON.parse(line)
    } catch {
      throw new CliInputError(from, `line ${number} is not JSON: ${line.slice(0, 80)}`)
    }
    yield checkParams(from, parsed, `line ${number}`)
  }
}

async function readModule(from: string, file: string): Promise<KeyList> {
  let exported: unknown
  try {
    exported = ((await import(pathToFileURL(file).href)) as { default?: unknown }).default
    if (typeof exported === 'function') exported = await (exported as () => unknown)()
  } catch (error) {
    throw new CliInputError(from, `importing the key module failed: ${messageOf(error)}`, { cause: error })
  }
  if (Array.isArray(exported)) return { iterable: exported, total: exported.length }
  if (
    exported !== null &&
    typeof exported === 'object' &&
    (Symbol.iterator in exported || Symbol.asyncIterator in exported)
  ) {
    return { iterable: exported as Iterable<unknown> | AsyncIterable<unknown>, total: undefined }
  }
  throw new CliInputError(
    from,
    'its default export must be an array or (async) iterable of key parameters, or a function returning one',
  )
}

function checkParams(from: string, value: unknown, where: string): unknown {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new CliInputError(from, `${where} is not an object of key parameters such as {"productId":42}`)
  }
  return value
}

/** A bar on stderr when it is a terminal, redrawn at most ten times a second; nothing otherwise. */
function progressBar(
  io: CliIo,
  namespace: string,
  total: number | undefined,
): { update(progress: WarmProgress): void; done(): void } {
  const started = performance.now()
  let drawnAt = 0
  let shown = false
  const draw = (p: WarmProgress) => {
    const seconds = (performance.now() - started) / 1_000
    const rate = seconds > 0 ? `${formatCount(Math.round(p.done / seconds))}/s` : ''
    const notStored = p.notStored > 0 ? ` · not stored ${formatCount(p.notStored)}` : ''
    const counts = `loaded ${formatCount(p.loaded)}${notStored} · fresh ${formatCount(p.fresh)} · failed ${formatCount(p.failed)}`
    let head = `warming ${namespace}: ${formatCount(p.done)}`
    if (total !== undefined && total > 0) {
      const share = Math.min(1, p.done / total)
      const filled = Math.round(share * 20)
      head = `warming ${namespace} [${'#'.repeat(filled)}${'-'.repeat(20 - filled)}] ${Math.floor(share * 100)}% ${formatCount(p.done)}/${formatCount(total)}`
    }
    io.err(`\r\u001b[K${head} · ${counts} · ${rate}`)
    shown = true
  }
  return {
    update(progress) {
      if (!io.errIsTty) return
      const now = performance.now()
      if (now - drawnAt < 100 && progress.done !== total) return
      drawnAt = now
      draw(progress)
    },
    done() {
      if (shown) io.err('\r\u001b[K')
      shown = false
    },
  }
}

function asText(namespace: string, r: WarmResult, timedOut: boolean, limitMs: number | undefined): string {
  const lines = [
    `warmed ${namespace}: ${formatCount(r.done)} keys in ${formatDuration(r.durationMs)}: ` +
      `${formatCount(r.loaded)} loaded, ${formatCount(r.fresh)} fresh already, ${formatCount(r.failed)} failed`,
  ]
  if (r.notStored > 0) {
    lines.push(
      `not stored: ${formatCount(r.notStored)} of the loaded keys were not stored in L2, or not confirmed ` +
        "within the namespace's timeouts.l2 (Redis unreachable, an error, slow), so other processes may load " +
        'them again. Check Redis or raise timeouts.l2, then run again: the keys stored already are found fresh.',
    )
  }
  if (timedOut) {
    lines.push(
      `stopped by --time-limit ${formatDuration(limitMs ?? 0)}: the keys after these were not started`,
    )
  }
  for (const { key, error } of r.errors)
    lines.push(`  failed ${key ?? '(bad parameters)'}: ${messageOf(error)}`)
  if (r.failed > r.errors.length) lines.push(`  … and ${formatCount(r.failed - r.errors.length)} more`)
  return `${lines.join('\n')}\n`
}

function asJson(namespace: string, r: WarmResult, timedOut: boolean): string {
  const errors = r.errors.map(({ key, error }) => ({
    key: key ?? null,
    code: (error as { code?: unknown }).code ?? null,
    message: messageOf(error),
  }))
  const result = {
    namespace,
    done: r.done,
    loaded: r.loaded,
    fresh: r.fresh,
    failed: r.failed,
    notStored: r.notStored,
    durationMs: Math.round(r.durationMs),
    timedOut,
    errors,
  }
  return `${JSON.stringify(result, null, 2)}\n`
}

function messageOf(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).replace(/\s+/g, ' ').trim()
}
