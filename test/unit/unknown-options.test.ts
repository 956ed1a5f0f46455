// Unknown option keys are refused everywhere options are taken, naming the key, its place and the closest known key.
import type { Meter } from '@opentelemetry/api'
import { Registry, register as globalRegistry } from 'prom-client'
import { describe, expect, it, vi } from 'vitest'
import {
  InvalidArgumentError,
  InvalidOptionError,
  MemoryStore,
  UnknownOptionError,
  createCache,
  type CacheOptions,
  type NamespaceOptions,
} from 'stratacache'
import { diskStore, DiskStore } from 'stratacache/disk'
import { openTelemetry } from 'stratacache/opentelemetry'
import { prometheusMetrics } from 'stratacache/prometheus'
import { redisStore } from 'stratacache/redis'
import { closestName, rejectUnknown } from '../../src/core/known-options.js'
import { resolveNamespaceOptions } from '../../src/options.js'
import { resolvePolicy } from '../../src/cli/simulate/policy.js'
import { cacheFactory } from '../helpers/caches.js'

const newCache = cacheFactory('unknown-options')
const key32 = Buffer.alloc(32, 7)
/** Passes the `l2` shape check; the cache is refused before it is used. */
const fakeL2 = { get: () => undefined } as unknown as CacheOptions['l2']

/** What `attempt` throws, checked to be an UnknownOptionError. */
function unknownOption(attempt: () => unknown): UnknownOptionError {
  try {
    attempt()
  } catch (error) {
    expect(error).toBeInstanceOf(UnknownOptionError)
    return error as UnknownOptionError
  }
  throw new Error('expected an UnknownOptionError, nothing was thrown')
}

describe('closestName', () => {
  it.each([
    ['sfot', ['soft', 'hard'], 'soft'], // two letters swapped: one edit
    ['staleFro', ['ttl', 'staleFor', 'staleWhileRevalidate'], 'staleFor'],
    ['maxentries', ['maxEntries', 'maxBytes'], 'maxEntries'], // case only
    ['conect', ['l2', 'connect'], 'connect'],
    ['timeout', ['timeouts', 'ttl'], 'timeouts'],
    ['tll', ['ttl', 'wait'], 'ttl'],
  ])('suggests %s → the closest of %j', (typo, names, expected) => {
    expect(closestName(typo, names)).toBe(expected)
  })

  it.each([
    ['redis', ['service', 'l1', 'l2', 'timeouts']],
    ['retired', ['active', 'keys']],
    ['x', ['ttl', 'jitter']],
    ['', ['a']],
  ])('suggests nothing for %s when nothing in %j is close', (typo, names) => {
    expect(closestName(typo, names)).toBeUndefined()
  })
})

describe('rejectUnknown', () => {
  const place = { where: 'test()', at: (path: string) => `t.${path}` }

  it('accepts known keys, and undefined values under them', () => {
    expect(() => rejectUnknown({ a: 1, b: undefined }, { a: true, b: true }, place)).not.toThrow()
  })

  it('refuses a key even when its value is undefined', () => {
    expect(() => rejectUnknown({ c: undefined }, { a: true }, place)).toThrow(UnknownOptionError)
  })

  it('refuses a group that is not an object with ERR_STRATA_INVALID_OPTION naming it', () => {
    for (const value of [null, 'x', 3, ['a']]) {
      expect(() => rejectUnknown(value, { a: true }, place, 'group')).toThrow(
        expect.objectContaining({ code: 'ERR_STRATA_INVALID_OPTION', option: 't.group' }) as Error,
      )
    }
  })

  it('lists the known keys when nothing is close', () => {
    const error = unknownOption(() =>
      rejectUnknown({ zzz: 1 }, { soft: true, hard: true }, place, 'timeouts'),
    )
    expect(error.message).toBe('Unknown option `timeouts.zzz` in test(). `timeouts` takes `soft`, `hard`.')
    expect(error).toMatchObject({ suggestion: undefined, known: ['soft', 'hard'], option: 't.timeouts.zzz' })
  })
})

describe('createCache refuses unknown options', () => {
  it('names the key and lists what it takes when nothing is close: createCache({ zzz })', () => {
    const error = unknownOption(() => createCache({ service: 's', zzz: 'redis://127.0.0.1' } as never))
    expect(error).toMatchObject({
      code: 'ERR_STRATA_UNKNOWN_OPTION',
      where: 'createCache()',
      path: 'zzz',
      option: 'zzz',
      value: 'redis://127.0.0.1',
      suggestion: undefined,
    })
    expect(error).toBeInstanceOf(InvalidOptionError)
    expect(error.name).toBe('UnknownOptionError')
    expect(error.message).toMatch(
      /^Unknown option `zzz` in createCache\(\)\. It takes `service`, `l1`, `l2`, /,
    )
  })

  it('reports a misspelt service as the typo, not as a missing service', () => {
    expect(unknownOption(() => createCache({ servce: 'catalog' } as never))).toMatchObject({
      path: 'servce',
      suggestion: 'service',
    })
  })

  it.each<[string, Record<string, unknown>, string, string]>([
    ['l1', { l1: { maxEntires: 5 } }, 'l1.maxEntires', 'l1.maxEntries'],
    ['l2Budget', { l2: fakeL2, l2Budget: { maxByte: 1 } }, 'l2Budget.maxByte', 'l2Budget.maxBytes'],
    ['timeouts', { timeouts: { conect: '1s' } }, 'timeouts.conect', 'timeouts.connect'],
    [
      'circuitBreaker',
      { circuitBreaker: { breakfor: '1s' } },
      'circuitBreaker.breakfor',
      'circuitBreaker.breakFor',
    ],
    ['compression', { compression: { treshold: 10 } }, 'compression.treshold', 'compression.threshold'],
    [
      'encryption',
      { encryption: { active: 'k1', keys: { k1: key32 }, key: key32 } },
      'encryption.key',
      'encryption.keys',
    ],
    ['ttlCaps', { ttlCaps: { personnal: '1m' } }, 'ttlCaps.personnal', 'ttlCaps.personal'],
  ])('a typo in %s: %j is refused, suggesting %s', (_, options, path, suggestion) => {
    const error = unknownOption(() => createCache({ service: 's', ...options }))
    expect(error).toMatchObject({ where: 'createCache()', path, option: path, suggestion })
    expect(error.message).toBe(`Unknown option \`${path}\` in createCache(). Did you mean \`${suggestion}\`?`)
  })

  it('setEncryptionKeys refuses an unknown key of the ring, and keeps the current one', () => {
    const cache = newCache({ encryption: { active: 'k1', keys: { k1: key32 } } })
    const error = unknownOption(() =>
      cache.setEncryptionKeys({ active: 'k1', keys: { k1: key32 }, retired: ['k0'] } as never),
    )
    expect(error).toMatchObject({ where: 'setEncryptionKeys()', path: 'retired', suggestion: undefined })
    expect(cache.options.keyRing?.activeId).toBe('k1')
  })
})

describe('cache.namespace refuses unknown options', () => {
  const base = { key: 'product:{id}', ttl: '5m' } as const

  it('staleFro: names the namespace and suggests staleFor', () => {
    const error = unknownOption(() => newCache().namespace('products', { ...base, staleFro: '1h' } as never))
    expect(error).toMatchObject({
      code: 'ERR_STRATA_UNKNOWN_OPTION',
      where: 'namespace "products"',
      path: 'staleFro',
      option: 'products.staleFro',
      suggestion: 'staleFor',
    })
    expect(error.message).toBe('Unknown option `staleFro` in namespace "products". Did you mean `staleFor`?')
  })

  it.each<[string, Record<string, unknown>, string, string]>([
    ['l1', { l1: { tll: '1s' } }, 'l1.tll', 'l1.ttl'],
    ['timeouts', { timeouts: { sfot: '100ms' } }, 'timeouts.sfot', 'timeouts.soft'],
    ['lock', { lock: { wiat: '1s' } }, 'lock.wiat', 'lock.wait'],
    ['source', { source: { maxConcurency: 2 } }, 'source.maxConcurency', 'source.maxConcurrent'],
    [
      'writeBehind',
      { writeStrategy: 'write-behind', write: () => {}, writeBehind: { batchsize: 10 } },
      'writeBehind.batchsize',
      'writeBehind.batchSize',
    ],
    ['hotKeys', { hotKeys: { track: 5, intreval: '1s' } }, 'hotKeys.intreval', 'hotKeys.interval'],
    ['slo', { slo: { readP90: '100ms' } }, 'slo.readP90', 'slo.readP99'],
    [
      'accessLog',
      { accessLog: { file: 'a.jsonl', sampleRatio: 0.1 } },
      'accessLog.sampleRatio',
      'accessLog.sampleRate',
    ],
    [
      'compression',
      { compression: { algoritm: 'deflate' } },
      'compression.algoritm',
      'compression.algorithm',
    ],
    ['redact', { redact: { paths: ['user.ssn'], maks: '***' } }, 'redact.maks', 'redact.mask'],
    [
      'exceptions',
      { exceptions: [{ rule: 'r', reason: 'why', untill: '2030-01-01' }] },
      'exceptions[0].untill',
      'exceptions[0].until',
    ],
  ])('a typo in %s: %j is refused, suggesting %s', (_, options, path, suggestion) => {
    const error = unknownOption(() => newCache().namespace('products', { ...base, ...options }))
    expect(error).toMatchObject({
      where: 'namespace "products"',
      path,
      option: `products.${path}`,
      suggestion,
    })
    expect(error.message).toBe(
      `Unknown option \`${path}\` in namespace "products". Did you mean \`${suggestion}\`?`,
    )
  })

  it('accepts every function a declaration carries: load, loadMany, tags, labels, write, writeMany', () => {
    const declaration: NamespaceOptions<'item:{id}', readonly [], { id: number }, string> = {
      key: 'item:{id}',
      ttl: '1m',
      load: () => 'v',
      loadMany: (params) => params.map(() => 'v'),
      tags: () => ['t'],
      labels: () => ({ tenant: 'a' }),
      write: () => {},
    }
    expect(() => newCache().namespace('item', declaration)).not.toThrow()
    expect(() =>
      resolveNamespaceOptions('queued', {
        key: 'q:{id}',
        ttl: '1m',
        writeStrategy: 'write-behind',
        writeMany: () => {},
      }),
    ).not.toThrow()
  })

  it('refuses a timeouts group that is not an object, which was ignored before', () => {
    expect(() => newCache().namespace('products', { ...base, timeouts: '2s' } as never)).toThrow(
      expect.objectContaining({ code: 'ERR_STRATA_INVALID_OPTION', option: 'products.timeouts' }) as Error,
    )
  })
})

describe('updatePolicy refuses unknown keys', () => {
  it('suggests the policy option, and leaves the policy unchanged', () => {
    const ns = newCache().namespace('price', { key: 'price:{id}', ttl: '1m' })
    const before = ns.options
    const error = unknownOption(() => ns.updatePolicy({ stalefor: '1h' } as never))
    expect(error).toMatchObject({
      where: 'updatePolicy() of namespace "price"',
      path: 'stalefor',
      option: 'patch.stalefor',
      suggestion: 'staleFor',
    })
    expect(unknownOption(() => ns.updatePolicy({ timeouts: { hrad: '1s' } } as never))).toMatchObject({
      path: 'timeouts.hrad',
      suggestion: 'timeouts.hard',
    })
    expect(ns.options).toBe(before)
  })

  it('still says why a declaration-only option cannot change, rather than calling it unknown', () => {
    const ns = newCache().namespace('price', { key: 'price:{id}', ttl: '1m' })
    expect(() => ns.updatePolicy({ consistency: 'strong' } as never)).toThrow(InvalidArgumentError)
    expect(() => ns.updatePolicy({ consistency: 'strong' } as never)).toThrow(/part of the declaration/)
  })
})

describe('redisStore refuses unknown options', () => {
  it('at the top level, before creating a client', () => {
    const error = unknownOption(() =>
      redisStore({ url: 'redis://127.0.0.1:1', conectTimeout: '1s' } as never),
    )
    expect(error).toMatchObject({
      where: 'redisStore()',
      path: 'conectTimeout',
      option: 'redisStore.conectTimeout',
      suggestion: 'connectTimeout',
    })
  })

  it('in tls, saying where other TLS options go', () => {
    const error = unknownOption(() =>
      redisStore({ url: 'rediss://127.0.0.1:1', tls: { rejectUnauthorized: false } } as never),
    )
    expect(error).toMatchObject({
      path: 'tls.rejectUnauthorized',
      option: 'redisStore.tls.rejectUnauthorized',
    })
    expect(error.message).toMatch(/`tls` takes `ca`, `cert`, `key`, `servername`\. .*clientOptions\.socket/)
    expect(
      unknownOption(() => redisStore({ url: 'rediss://127.0.0.1:1', tls: { servrname: 'x' } } as never)),
    ).toMatchObject({ suggestion: 'tls.servername' })
  })
})

describe('diskStore refuses unknown options', () => {
  // A directory that is never created: the options are refused at construction, before any file is opened.
  const base = { path: '/nonexistent/strata-unknown-options', maxBytes: 1024 * 1024 }

  it('sweepEvry: names the key and suggests sweepEvery, from diskStore() and new DiskStore()', () => {
    for (const make of [diskStore, (o: typeof base) => new DiskStore(o)]) {
      const error = unknownOption(() => make({ ...base, sweepEvry: 1_000 } as never))
      expect(error).toMatchObject({
        code: 'ERR_STRATA_UNKNOWN_OPTION',
        where: 'diskStore()',
        path: 'sweepEvry',
        option: 'diskStore.sweepEvry',
        value: 1_000,
        suggestion: 'sweepEvery',
      })
      expect(error.message).toBe('Unknown option `sweepEvry` in diskStore(). Did you mean `sweepEvery`?')
    }
  })

  it('reports the typo before a value it would have checked, and names its other options the same way', () => {
    expect(unknownOption(() => diskStore({ path: '', maxByte: 1 } as never))).toMatchObject({
      option: 'diskStore.maxByte',
      suggestion: 'maxBytes',
    })
    expect(() => diskStore({ ...base, pollEvery: 0 })).toThrow(
      expect.objectContaining({ code: 'ERR_STRATA_INVALID_OPTION', option: 'diskStore.pollEvery' }) as Error,
    )
  })

  it('lists what it takes when nothing is close', () => {
    expect(unknownOption(() => diskStore({ ...base, zzz: true } as never)).message).toBe(
      'Unknown option `zzz` in diskStore(). It takes `path`, `maxBytes`, `sweepEvery`, `pollEvery`, `durable`, `clock`.',
    )
  })
})

describe('new MemoryStore refuses unknown options', () => {
  it('maxByte: names the key and suggests maxBytes', () => {
    const error = unknownOption(() => new MemoryStore({ maxEntries: 10, maxByte: 1_000 } as never))
    expect(error).toMatchObject({
      code: 'ERR_STRATA_UNKNOWN_OPTION',
      where: 'new MemoryStore()',
      path: 'maxByte',
      option: 'MemoryStore.maxByte',
      suggestion: 'maxBytes',
    })
    expect(error.message).toBe('Unknown option `maxByte` in new MemoryStore(). Did you mean `maxBytes`?')
  })

  it('names its other options the same way, and still takes every option it has', () => {
    expect(() => new MemoryStore({ maxEntries: 0 })).toThrow(
      expect.objectContaining({ option: 'MemoryStore.maxEntries' }) as Error,
    )
    const store = new MemoryStore<string>({
      maxEntries: 10,
      maxBytes: 1_000,
      sizeOf: (value) => value.length,
      clock: { now: () => 0 },
    })
    expect(store.set('a', 'alpha').get('a')).toBe('alpha')
  })
})

describe('openTelemetry refuses unknown options', () => {
  /** A meter that records whether anything was created on it. */
  const spyMeter = () => {
    const create = vi.fn(() => ({ record: () => {}, addCallback: () => {} }))
    const meter = {
      createHistogram: create,
      createCounter: create,
      createObservableCounter: create,
      createObservableGauge: create,
      createObservableUpDownCounter: create,
      createUpDownCounter: create,
      createGauge: create,
      addBatchObservableCallback: create,
      removeBatchObservableCallback: create,
    } as unknown as Meter
    return { meter, create }
  }

  it('meterProvder: suggests `meter` and says how to get one from a provider, before creating anything', () => {
    const { meter, create } = spyMeter()
    const error = unknownOption(() => openTelemetry(newCache(), { meter, meterProvder: {} } as never))
    expect(error).toMatchObject({
      code: 'ERR_STRATA_UNKNOWN_OPTION',
      where: 'openTelemetry()',
      path: 'meterProvder',
      option: 'meterProvder',
      suggestion: 'meter',
    })
    expect(error.message).toBe(
      'Unknown option `meterProvder` in openTelemetry(). Did you mean `meter`? It takes a meter: ' +
        "`meter: meterProvider.getMeter('stratacache')` (by default, the global meter provider's).",
    )
    expect(create).not.toHaveBeenCalled()
  })

  it.each([
    ['meterProvider', 'meter'],
    ['tracerProvider', 'tracer'],
    ['spnas', 'spans'],
    ['metric', 'metrics'],
    ['duration', 'durations'],
  ])('openTelemetry(cache, { %s }): "Did you mean `%s`?"', (key, suggestion) => {
    const error = unknownOption(() => openTelemetry(newCache(), { [key]: false }))
    expect(error).toMatchObject({ path: key, suggestion })
    expect(error.message).toContain(`Did you mean \`${suggestion}\`?`)
  })

  it('refuses options that are not an object, naming the place', () => {
    expect(() => openTelemetry(newCache(), null as never)).toThrow(
      expect.objectContaining({
        code: 'ERR_STRATA_INVALID_OPTION',
        option: 'openTelemetry() options',
      }) as Error,
    )
  })
})

describe('prometheusMetrics refuses unknown options', () => {
  const stratacacheMetrics = () =>
    globalRegistry.getMetricsAsArray().filter((metric) => metric.name.startsWith('stratacache_')).length

  it('registery: suggests `registry`, and registers nothing on the global registry', () => {
    const before = stratacacheMetrics()
    const error = unknownOption(() => prometheusMetrics(newCache(), { registery: new Registry() } as never))
    expect(error).toMatchObject({
      code: 'ERR_STRATA_UNKNOWN_OPTION',
      where: 'prometheusMetrics()',
      path: 'registery',
      option: 'registery',
      suggestion: 'registry',
    })
    expect(error.message).toBe('Unknown option `registery` in prometheusMetrics(). Did you mean `registry`?')
    expect(stratacacheMetrics()).toBe(before)
  })

  it.each([
    ['registers', 'registry'], // prom-client's own metric option
    ['register', 'registry'],
    ['prefx', 'prefix'],
  ])('prometheusMetrics(cache, { %s }): "Did you mean `%s`?"', (key, suggestion) => {
    expect(unknownOption(() => prometheusMetrics(newCache(), { [key]: 'x' }))).toMatchObject({
      path: key,
      suggestion,
    })
  })

  it('lists what it takes when nothing is close, and still takes both options', () => {
    expect(unknownOption(() => prometheusMetrics(newCache(), { zzz: 1 } as never)).message).toBe(
      'Unknown option `zzz` in prometheusMetrics(). It takes `registry`, `prefix`.',
    )
    const registry = new Registry()
    const metrics = prometheusMetrics(newCache(), { registry, prefix: 'unknown_options_' })
    expect(registry.getMetricsAsArray().length).toBeGreaterThan(0)
    metrics.unregister()
  })
})

describe('partial groups merge with the defaults', () => {
  it('l1: { maxBytes } alone keeps 10,000 entries', () => {
    expect(newCache({ l1: { maxBytes: 1_000_000 } }).options.l1).toEqual({
      maxEntries: 10_000,
      maxBytes: 1_000_000,
    })
    expect(newCache({ l1: {} }).options.l1).toEqual({ maxEntries: 10_000, maxBytes: undefined })
    expect(newCache({ l1: { maxEntries: 5 } }).options.l1).toEqual({ maxEntries: 5, maxBytes: undefined })
  })

  it('a bad value in a partial l1 is still refused', () => {
    expect(() => newCache({ l1: { maxBytes: 0 } })).toThrow(/`l1\.maxBytes`/)
    expect(() => newCache({ l1: { maxEntries: 0 } })).toThrow(/`l1\.maxEntries`/)
  })

  it('createCache timeouts and circuitBreaker keep the defaults of what they leave out', () => {
    const o = newCache({ timeouts: { l2: '50ms' }, circuitBreaker: { breakFor: '5s' } }).options
    expect(o).toMatchObject({ l2TimeoutMs: 50, connectTimeoutMs: 2_000, breakMs: 5_000, failureThreshold: 5 })
  })

  it('namespace groups keep the defaults of what they leave out', () => {
    const o = resolveNamespaceOptions('p', {
      key: 'p:{id}',
      ttl: '1m',
      timeouts: { soft: '100ms' },
      lock: { ttl: '2s' },
      source: { maxConcurrent: 3 },
      hotKeys: { track: 5 },
      writeStrategy: 'write-behind',
      write: () => {},
      writeBehind: { batchSize: 10 },
    })
    expect(o).toMatchObject({
      softTimeoutMs: 100,
      hardTimeoutMs: 30_000,
      lock: { ttlMs: 2_000, waitMs: 10_000 },
      source: { maxConcurrent: 3, maxPerSecond: Infinity, maxWaitMs: 5_000, overflow: 'wait' },
      hotKeys: { track: 5, refresh: true, intervalMs: 1_000, concurrency: 4 },
      writeBehind: { batchSize: 10, maxAttempts: 5, flushIntervalMs: 100, maxQueued: 100_000, flush: true },
    })
  })

  it('a simulate policy file l1 with only a policy keeps 10,000 entries', () => {
    expect(resolvePolicy({ ttl: '5m', l1: { policy: 'lru' } }, 'p.json').l1).toEqual({
      maxEntries: 10_000,
      policy: 'lru',
    })
  })
})
