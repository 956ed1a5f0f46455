// The runtime lists of option keys match the option types exactly: a key added to an interface and not to its list
// (so refused at run time as unknown) fails here, as does a listed key the interface lost.
import { describe, expectTypeOf, it } from 'vitest'
import type {
  AccessLogOptions,
  CacheOptions,
  CompressionOptions,
  Duration,
  KeyRing,
  L1Options,
  NamespaceOptions,
  PolicyException,
  PolicyPatch,
  RedactOption,
} from 'stratacache'
import type { RedisStoreOptions, RedisTlsOptions } from 'stratacache/redis'
import type {
  CACHE_GROUP_KEYS,
  CACHE_OPTION_KEYS,
  NAMESPACE_GROUP_KEYS,
  NAMESPACE_OPTION_KEYS,
} from '../../src/options.js'
import type { POLICY_OPTION_KEYS } from '../../src/namespace/policy.js'
import type { REDIS_STORE_OPTION_KEYS, REDIS_TLS_OPTION_KEYS } from '../../src/tiers/redis-store.js'
import type { POLICY_FILE_KEYS, POLICY_FILE_L1_KEYS, PolicyFile } from '../../src/cli/simulate/policy.js'

type Ns = NamespaceOptions<string, readonly string[], unknown, unknown>
type Group<T> = Exclude<T, false | undefined>
type Keys<T> = keyof T
type G = typeof NAMESPACE_GROUP_KEYS

describe('option key lists', () => {
  it('createCache: every key of CacheOptions and of each group, and nothing else', () => {
    expectTypeOf<Keys<typeof CACHE_OPTION_KEYS>>().toEqualTypeOf<keyof CacheOptions>()
    expectTypeOf<Keys<typeof CACHE_GROUP_KEYS>>().toEqualTypeOf<
      'l1' | 'l2Budget' | 'timeouts' | 'circuitBreaker' | 'compression' | 'encryption' | 'ttlCaps'
    >()
    expectTypeOf<Keys<typeof CACHE_GROUP_KEYS.l1>>().toEqualTypeOf<keyof L1Options>()
    expectTypeOf<Keys<typeof CACHE_GROUP_KEYS.l2Budget>>().toEqualTypeOf<
      keyof Group<CacheOptions['l2Budget']>
    >()
    expectTypeOf<Keys<typeof CACHE_GROUP_KEYS.timeouts>>().toEqualTypeOf<
      keyof Group<CacheOptions['timeouts']>
    >()
    expectTypeOf<Keys<typeof CACHE_GROUP_KEYS.circuitBreaker>>().toEqualTypeOf<
      keyof Group<CacheOptions['circuitBreaker']>
    >()
    expectTypeOf<Keys<typeof CACHE_GROUP_KEYS.compression>>().toEqualTypeOf<keyof CompressionOptions>()
    expectTypeOf<Keys<typeof CACHE_GROUP_KEYS.encryption>>().toEqualTypeOf<keyof KeyRing>()
    expectTypeOf<Keys<typeof CACHE_GROUP_KEYS.ttlCaps>>().toEqualTypeOf<
      keyof Group<CacheOptions['ttlCaps']>
    >()
  })

  it('cache.namespace: every key of NamespaceOptions (functions included) and of each group', () => {
    expectTypeOf<Keys<typeof NAMESPACE_OPTION_KEYS>>().toEqualTypeOf<keyof Ns>()
    expectTypeOf<Keys<G['l1']>>().toEqualTypeOf<keyof Group<Ns['l1']>>()
    expectTypeOf<Keys<G['timeouts']>>().toEqualTypeOf<keyof Group<Ns['timeouts']>>()
    expectTypeOf<Keys<G['lock']>>().toEqualTypeOf<keyof Group<Ns['lock']>>()
    expectTypeOf<Keys<G['hotKeys']>>().toEqualTypeOf<keyof Group<Ns['hotKeys']>>()
    expectTypeOf<Keys<G['source']>>().toEqualTypeOf<keyof Group<Ns['source']>>()
    expectTypeOf<Keys<G['writeBehind']>>().toEqualTypeOf<keyof Group<Ns['writeBehind']>>()
    expectTypeOf<Keys<G['slo']>>().toEqualTypeOf<keyof Group<Ns['slo']>>()
    expectTypeOf<Keys<G['accessLog']>>().toEqualTypeOf<keyof AccessLogOptions>()
    expectTypeOf<Keys<G['compression']>>().toEqualTypeOf<keyof CompressionOptions>()
    expectTypeOf<Keys<G['redact']>>().toEqualTypeOf<keyof Exclude<RedactOption, readonly string[]>>()
    expectTypeOf<Keys<G['exceptions']>>().toEqualTypeOf<keyof PolicyException>()
  })

  it('updatePolicy, redisStore and simulate policy files', () => {
    expectTypeOf<Keys<typeof POLICY_OPTION_KEYS>>().toEqualTypeOf<keyof PolicyPatch>()
    expectTypeOf<Keys<typeof REDIS_STORE_OPTION_KEYS>>().toEqualTypeOf<keyof RedisStoreOptions>()
    expectTypeOf<Keys<typeof REDIS_TLS_OPTION_KEYS>>().toEqualTypeOf<keyof RedisTlsOptions>()
    expectTypeOf<Keys<typeof POLICY_FILE_KEYS>>().toEqualTypeOf<keyof PolicyFile>()
    expectTypeOf<Keys<typeof POLICY_FILE_L1_KEYS>>().toEqualTypeOf<keyof Group<PolicyFile['l1']>>()
  })
})

describe('Duration', () => {
  it('takes one part or a compound from the largest unit down', () => {
    expectTypeOf<'30s'>().toExtend<Duration>()
    expectTypeOf<'1.5h'>().toExtend<Duration>()
    expectTypeOf<'1h30m'>().toExtend<Duration>()
    expectTypeOf<'2m30s'>().toExtend<Duration>()
    expectTypeOf<'1d12h'>().toExtend<Duration>()
    expectTypeOf<'1m30s500ms'>().toExtend<Duration>()
    expectTypeOf<250>().toExtend<Duration>()
  })

  it('refuses units out of order, and text without a unit', () => {
    expectTypeOf<'30m1h'>().not.toExtend<Duration>()
    expectTypeOf<'1ms5s'>().not.toExtend<Duration>()
    expectTypeOf<'5'>().not.toExtend<Duration>()
    expectTypeOf<'5 minutes'>().not.toExtend<Duration>()
  })
})
