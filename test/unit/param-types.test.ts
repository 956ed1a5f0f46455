// `params` declares key parameter types: the loader gets them as declared, and a key is never built (so no loader
// is called) from a value of another type. The compile-time side is in test/types/namespace.test-d.ts.
import { createCache, type StrataError } from 'stratacache'
import { describe, expect, it } from 'vitest'
import { cacheFactory } from '../helpers/caches.js'

const newCache = cacheFactory('param-types')

function declare(load: (params: { tenantId: string; productId: number }) => unknown = (p) => p) {
  return newCache().namespace('product', {
    key: 'tenant:{tenantId}:product:{productId}',
    params: { tenantId: 'string', productId: 'number' },
    ttl: '1m',
    load,
  })
}

describe('params: declared key parameter types', () => {
  it('passes the declared types to the loader, and builds the same keys as without a declaration', async () => {
    const seen: unknown[] = []
    const ns = declare((params) => {
      seen.push([typeof params.tenantId, typeof params.productId])
      return params.productId + 1
    })
    expect(await ns.get({ tenantId: 't1', productId: 41 })).toBe(42)
    expect(seen).toEqual([['string', 'number']])
    expect(ns.key({ tenantId: 't1', productId: 41 })).toBe('param-types:product:v1:tenant:t1:product:41')
    expect(ns.params).toEqual(['tenantId', 'productId'])
    expect(ns.options.params).toEqual({ tenantId: 'string', productId: 'number' })
    expect(Object.isFrozen(ns.options.params)).toBe(true)
  })

  it('refuses a value of another type with ERR_STRATA_INVALID_KEY_PARAM (wrong-type), before any loader call', async () => {
    let loads = 0
    const ns = declare((params) => {
      loads++
      return params
    })
    const wrong = { tenantId: 't1', productId: '41' } as unknown as { tenantId: string; productId: number }
    const error = (await ns.get(wrong).catch((e: unknown) => e)) as StrataError & Record<string, unknown>
    expect(error.code).toBe('ERR_STRATA_INVALID_KEY_PARAM')
    expect(error).toMatchObject({
      param: 'productId',
      problem: 'wrong-type',
      value: '41',
      declaredType: 'number',
    })
    expect(error.message).toBe(
      'Key parameter `productId` of namespace "product" must be a number (`params` declares it so) (got "41" ' +
        '(string)). The namespace expects exactly: `tenantId`, `productId`.',
    )
    await expect(ns.getMany([wrong])).rejects.toMatchObject({ problem: 'wrong-type' })
    await expect(ns.set(wrong, 1)).rejects.toMatchObject({ problem: 'wrong-type' })
    expect(() => ns.key(wrong)).toThrow(/must be a number/)
    expect(loads).toBe(0)
    // Missing and non-scalar values keep their own problem.
    const missing = { tenantId: 't1' } as unknown as { tenantId: string; productId: number }
    await expect(ns.get(missing)).rejects.toMatchObject({ problem: 'missing' })
  })

  it('refuses a value of another type when the entry is in L1 too, not only when a key must be built', async () => {
    const ns = declare()
    expect(await ns.get({ tenantId: 't1', productId: 41 })).toEqual({ tenantId: 't1', productId: 41 })
    // '41' has the same text as 41, so the L1 index alone would find the entry.
    const wrong = { tenantId: 't1', productId: '41' } as unknown as { tenantId: string; productId: number }
    await expect(ns.get(wrong)).rejects.toMatchObject({
      code: 'ERR_STRATA_INVALID_KEY_PARAM',
      problem: 'wrong-type',
    })
    await expect(ns.getMany([wrong])).rejects.toMatchObject({ problem: 'wrong-type' })
    expect(ns.stats().l1Hits).toBe(0)
  })

  it('refuses a declaration naming a parameter the key does not have, or a type that is not a scalar’s', () => {
    const cache = createCache({ service: 'param-types-bad' })
    const declareWith = (params: unknown) => () =>
      cache.namespace(`n${Math.random().toString(36).slice(2, 8)}`, {
        key: 'product:{productId}',
        ttl: '1m',
        params: params as { productId: 'number' },
      })
    expect(declareWith({ prodId: 'number' })).toThrow(
      expect.objectContaining({
        code: 'ERR_STRATA_INVALID_OPTION',
        message: expect.stringMatching(/\.params\.prodId/),
      }),
    )
    expect(declareWith({ productId: 'object' })).toThrow(/'string', 'number', 'bigint' or 'boolean'/)
    expect(declareWith(['number'])).toThrow(/an object such as \{ productId: 'number' \}/)
    expect(declareWith({})).not.toThrow()
    void cache.close()
  })
})
