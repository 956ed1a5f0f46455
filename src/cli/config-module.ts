// Loads the user's config module (`--config`): its default export is a Cache, or a function returning one.
import { existsSync } from 'node:fs'
import { extname, isAbsolute, join, resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import type { Cache } from '../cache.js'
import { CliUsageError, ConfigModuleError } from '../errors.js'

/** Looked for in the working directory when `--config` is not given. */
export const DEFAULT_CONFIG_FILES = ['stratacache.config.mjs', 'stratacache.config.js'] as const

/** What the CLI uses of a cache; checked by shape, so a cache made by another copy of the library still fits. */
export type LoadedCache = Pick<Cache, 'service' | 'options' | 'namespaces' | 'close'> &
  Partial<Pick<Cache, 'inspect' | 'purge' | 'connect' | 'stats'>>

/**
 * Imports the config module and returns its cache. The caller closes it.
 * @throws CliUsageError when no module is given and none of the default files exists; ConfigModuleError when the
 * module cannot be imported or does not export a cache.
 */
export async function loadConfigModule(
  command: string,
  path: string | undefined,
  cwd: string,
): Promise<{ cache: LoadedCache; path: string }> {
  const file = path ?? DEFAULT_CONFIG_FILES.find((name) => existsSync(join(cwd, name)))
  if (file === undefined) {
    throw new CliUsageError(
      command,
      `Missing --config: give the module that creates your cache (no ${DEFAULT_CONFIG_FILES.join(' or ')} in ${cwd})`,
    )
  }
  const absolute = isAbsolute(file) ? file : resolve(cwd, file)
  if (!existsSync(absolute)) throw new ConfigModuleError(file, 'no such file')
  let exported: unknown
  try {
    const module = (await import(pathToFileURL(absolute).href)) as Record<string, unknown>
    exported = module.default
  } catch (error) {
    const code = (error as { code?: unknown }).code
    if (['.ts', '.mts', '.cts'].includes(extname(absolute)) && code === 'ERR_UNKNOWN_FILE_EXTENSION') {
      throw new ConfigModuleError(
        file,
        "a TypeScript module needs a loader: run with NODE_OPTIONS='--import tsx' (or on Node.js 22.18 or newer, " +
          'which strips types by itself; or compile it to .js)',
        { cause: error },
      )
    }
    throw new ConfigModuleError(file, `importing it failed: ${oneLine(error)}`, { cause: error })
  }
  if (exported === undefined) {
    throw new ConfigModuleError(
      file,
      'it has no default export; add `export default cache` (or a function returning the cache)',
    )
  }
  let cache: unknown = exported
  if (typeof exported === 'function') {
    try {
      cache = await (exported as () => unknown)()
    } catch (error) {
      throw new ConfigModuleError(file, `its default export threw: ${oneLine(error)}`, { cause: error })
    }
  }
  if (!isCache(cache)) {
    throw new ConfigModuleError(
      file,
      'its default export is not a cache; export the result of createCache() (or a function returning it), ' +
        'after declaring its namespaces',
    )
  }
  return { cache, path: file }
}

function isCache(value: unknown): value is LoadedCache {
  if (value === null || typeof value !== 'object') return false
  const v = value as Record<string, unknown>
  return (
    typeof v.service === 'string' &&
    typeof v.namespaces === 'function' &&
    typeof v.close === 'function' &&
    typeof v.options === 'object'
  )
}

function oneLine(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error)
  return text.replace(/\s+/g, ' ').trim()
}
