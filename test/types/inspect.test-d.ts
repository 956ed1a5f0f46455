import { describe, expectTypeOf, it } from 'vitest'
import {
  createCache,
  inspectRedis,
  type InspectWarningCode,
  type L2Store,
  type Reading,
  type RedisReport,
} from 'stratacache'

declare const store: L2Store
declare const report: RedisReport

describe('inspection typing', () => {
  it('resolves to a RedisReport from the cache and from a bare store', () => {
    expectTypeOf(createCache({ service: 's' }).inspect()).toEqualTypeOf<Promise<RedisReport>>()
    expectTypeOf(inspectRedis(store, { namespaces: [{ name: 'a', prefix: 's:a:v1:' }] })).toEqualTypeOf<
      Promise<RedisReport>
    >()
  })

  it('gives a reading its value only once it is known to be known', () => {
    const policy: Reading<string> = report.memory.policy
    // @ts-expect-error: `value` exists only on a known reading
    void policy.value
    if (policy.known) expectTypeOf(policy.value).toEqualTypeOf<string>()
    else expectTypeOf(policy.reason).toEqualTypeOf<string>()
  })

  it('is read-only all the way down', () => {
    // @ts-expect-error: the report is immutable
    report.warnings = []
    // @ts-expect-error: so are its namespaces' figures
    report.namespaces['x']!.keys = 1
    expectTypeOf(report.warnings[0]!.code).toEqualTypeOf<InspectWarningCode>()
  })

  it('takes the budget and critical options', () => {
    createCache({ service: 's', l2: store, l2Budget: { maxBytes: 1024 } })
    createCache({ service: 's' }).namespace('n', { key: 'k:{id}', ttl: '1m', critical: true })
  })
})
