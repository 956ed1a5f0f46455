// Names other libraries use for an option (ioredis, node-redis, cache-manager, keyv, bentocache, lru-cache,
// node-cache) are refused like any unknown key, with a hint at stratacache's own name for the setting.
import { createCache, UnknownOptionError } from 'stratacache'
import { ioredisStore } from 'stratacache/ioredis'
import { redisStore } from 'stratacache/redis'
import { describe, expect, it } from 'vitest'
import { cacheFactory } from '../helpers/caches.js'

const newCache = cacheFactory('option-aliases')

function unknownOption(attempt: () => unknown): UnknownOptionError {
  try {
    attempt()
  } catch (error) {
    expect(error).toBeInstanceOf(UnknownOptionError)
    return error as UnknownOptionError
  }
  throw new Error('expected an UnknownOptionError, nothing was thrown')
}

const cacheWith = (extra: Record<string, unknown>) => () => createCache({ service: 'aliases', ...extra })
const namespaceWith = (extra: Record<string, unknown>) => () =>
  newCache().namespace('item', { key: 'item:{id}', ttl: '1m', load: () => 1, ...extra } as never)

describe('createCache() suggests its own name for an option named as in other libraries', () => {
  it.each([
    ['redis', 'redis://127.0.0.1:6379', 'l2'],
    ['redisUrl', 'redis://127.0.0.1:6379', 'l2'],
    ['url', 'redis://127.0.0.1:6379', 'l2'],
    ['uri', 'redis://127.0.0.1:6379', 'l2'],
    ['connection', {}, 'l2'],
    ['connectionString', 'redis://127.0.0.1:6379', 'l2'],
    ['port', 6379, 'l2'],
    ['db', 0, 'l2'],
    ['database', 0, 'l2'],
    ['client', {}, 'l2'],
    ['redisClient', {}, 'l2'],
    ['ioredis', {}, 'l2'],
    ['store', {}, 'l2'],
    ['stores', [], 'l2'],
    ['driver', {}, 'l2'],
    ['l2Driver', {}, 'l2'],
    ['remote', {}, 'l2'],
    ['secondary', {}, 'l2'],
    ['prefix', 'app:', 'service'],
    ['keyPrefix', 'app:', 'service'],
    ['name', 'catalog', 'service'],
    ['memory', {}, 'l1'],
    ['l1Driver', {}, 'l1'],
    ['lru', {}, 'l1'],
    ['max', 500, 'l1.maxEntries'],
    ['maxItems', 500, 'l1.maxEntries'],
    ['maxKeys', 500, 'l1.maxEntries'],
    ['maxSize', 1e6, 'l1.maxBytes'],
    ['timeout', 100, 'timeouts'],
    ['commandTimeout', 100, 'timeouts.l2'],
    ['breaker', {}, 'circuitBreaker'],
  ])('createCache({ %s }): "Did you mean `%s`?"', (key, value, suggestion) => {
    const error = unknownOption(cacheWith({ [key]: value }))
    expect(error).toMatchObject({ code: 'ERR_STRATA_UNKNOWN_OPTION', path: key, suggestion })
    expect(error.message).toContain(`Did you mean \`${suggestion}\`?`)
  })

  it('says how to give a store when it suggests `l2`', () => {
    expect(unknownOption(cacheWith({ redis: 'redis://127.0.0.1:6379' })).message).toBe(
      'Unknown option `redis` in createCache(). Did you mean `l2`? It takes a store: ' +
        "`l2: redisStore({ url: 'redis://127.0.0.1:6379' })` from `stratacache/redis` (or `ioredisStore({ client })` " +
        'from `stratacache/ioredis`).',
    )
  })

  it.each([
    ['ttl', 'Entry lifetimes are set per namespace'],
    ['defaultTtl', 'Entry lifetimes are set per namespace'],
    ['stdTTL', 'Entry lifetimes are set per namespace'],
    ['expire', 'Entry lifetimes are set per namespace'],
    ['expires', 'Entry lifetimes are set per namespace'],
    ['expiresIn', 'Entry lifetimes are set per namespace'],
    ['expiration', 'Entry lifetimes are set per namespace'],
    ['maxAge', 'Entry lifetimes are set per namespace'],
    ['grace', '`staleFor`, a namespace option'],
    ['gracePeriod', '`staleFor`, a namespace option'],
    ['staleTtl', '`staleFor`, a namespace option'],
    ['allowStale', '`staleFor`, a namespace option'],
  ])('createCache({ %s }) says the setting is a namespace option', (key, sentence) => {
    const error = unknownOption(cacheWith({ [key]: '5m' }))
    expect(error.suggestion).toBeUndefined()
    expect(error.message).toContain(sentence)
    expect(error.message).not.toContain('It takes') // where it lives, not the 20 keys createCache() takes
  })
})

describe('cache.namespace() suggests its own name for an option named as in other libraries', () => {
  it.each([
    ['defaultTtl', 'ttl'],
    ['stdTTL', 'ttl'],
    ['expire', 'ttl'],
    ['expires', 'ttl'],
    ['expiresIn', 'ttl'],
    ['expiration', 'ttl'],
    ['maxAge', 'ttl'],
    ['grace', 'staleFor'],
    ['gracePeriod', 'staleFor'],
    ['staleTtl', 'staleFor'],
    ['allowStale', 'staleFor'],
    ['factory', 'load'],
    ['fetch', 'load'],
    ['fetcher', 'load'],
    ['fetchMethod', 'load'],
    ['loader', 'load'],
    ['getter', 'load'],
    ['resolver', 'load'],
    ['timeout', 'timeouts'],
    ['hardTimeout', 'timeouts.hard'],
    ['softTimeout', 'timeouts.soft'],
    ['lockTimeout', 'lock.wait'],
    ['writeTimeout', 'timeouts.write'],
  ])('namespace({ %s }): "Did you mean `%s`?"', (key, suggestion) => {
    const error = unknownOption(namespaceWith({ [key]: '1s' }))
    expect(error).toMatchObject({ path: key, suggestion })
    expect(error.message).toContain(`Did you mean \`${suggestion}\`?`)
  })

  it("namespace({ writeTimeout }) also names write-behind's own bound", () => {
    const error = unknownOption(namespaceWith({ writeTimeout: '5s' }))
    expect(error.message).toContain('`writeBehind.writeTimeout`')
  })

  it('namespace({ commandTimeout }) points at the cache option, not at a `timeouts.l2` namespaces do not have', () => {
    const error = unknownOption(namespaceWith({ commandTimeout: 100 }))
    expect(error.suggestion).toBeUndefined()
    expect(error.message).toContain("`createCache({ timeouts: { l2: '100ms' } })`")
  })

  it.each(['prefix', 'keyPrefix'])('namespace({ %s }) points at createCache({ service })', (key) => {
    const error = unknownOption(namespaceWith({ [key]: 'app:' }))
    expect(error.message).toContain('The key prefix is `createCache({ service })`.')
  })
})

describe('the Redis stores suggest `url` for connection names of other clients', () => {
  it.each(['redis', 'uri', 'connectionString', 'port', 'db', 'database'])('redisStore({ %s })', (key) => {
    const error = unknownOption(() => redisStore({ url: 'redis://127.0.0.1:1', [key]: 1 }))
    expect(error).toMatchObject({ suggestion: 'url' })
  })

  it.each([
    ['redisClient', 'client'],
    ['ioredis', 'client'],
    ['port', 'url'],
  ])('ioredisStore({ %s }) → `%s`', (key, suggestion) => {
    const error = unknownOption(() => ioredisStore({ url: 'redis://127.0.0.1:1', [key]: 1 }))
    expect(error).toMatchObject({ suggestion })
  })

  it("takes a typo of another library's name as that name when none of ours is close", () => {
    expect(unknownOption(cacheWith({ redsi: 'redis://127.0.0.1:6379' })).suggestion).toBe('l2')
    expect(unknownOption(namespaceWith({ fetchr: () => 1 })).suggestion).toBe('load')
    expect(unknownOption(namespaceWith({ expirse: '1m' })).suggestion).toBe('ttl')
  })

  it('keeps edit-distance suggestions for typos, and refuses names like `constructor` without a suggestion', () => {
    expect(unknownOption(cacheWith({ servce: 'x' })).suggestion).toBe('service')
    expect(unknownOption(cacheWith({ constructor: 1 })).suggestion).toBeUndefined()
  })
})
