import { createCache } from 'stratacache'
import { redisStore } from 'stratacache/redis'
import { afterEach, describe, expect, inject, it } from 'vitest'

const url = inject('redisUrl')
const closers: (() => Promise<void>)[] = []
afterEach(async () => {
  await Promise.all(closers.splice(0).map((close) => close()))
})

function newCache(service: string) {
  const cache = createCache({ service, l2: redisStore({ url }) })
  closers.push(() => cache.close())
  return cache
}

describe('read path against a real Redis', () => {
  it('serves a value loaded by one process to another from L2 without calling its loader', async () => {
    let loads = 0
    const declare = (cache: ReturnType<typeof newCache>) =>
      cache.namespace('product', {
        key: 'tenant:{tenantId}:product:{productId}',
        ttl: '1m',
        load: ({ productId }) => {
          loads++
          return { id: productId, name: `product ${productId}` }
        },
      })
    const a = declare(newCache('it-read-path'))
    const b = declare(newCache('it-read-path'))
    expect(await a.get({ tenantId: 't1', productId: 7 })).toEqual({ id: 7, name: 'product 7' })
    await expect.poll(() => b.peek({ tenantId: 't1', productId: 7 })).toEqual({ id: 7, name: 'product 7' })
    expect(await b.get({ tenantId: 't1', productId: 7 })).toEqual({ id: 7, name: 'product 7' })
    expect(loads).toBe(1)
    expect(b.stats()).toMatchObject({ l2Hits: 1, misses: 0, loads: 0 })
  })
})
