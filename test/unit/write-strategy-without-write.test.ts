// A `writeStrategy` says how `write()` reaches the source: declared without `write`, it is refused.
import { InvalidOptionError } from 'stratacache'
import { describe, expect, it } from 'vitest'
import { cacheFactory } from '../helpers/caches.js'

const newCache = cacheFactory('write-strategy')
const load = () => 1

describe('writeStrategy without write', () => {
  it.each(['write-through', 'cache-aside'] as const)(
    "refuses writeStrategy: '%s' with ERR_STRATA_INVALID_OPTION naming the fix",
    (writeStrategy) => {
      const attempt = () =>
        newCache().namespace('products', { key: 'p:{id}', ttl: '1m', load, writeStrategy })
      expect(attempt).toThrow(InvalidOptionError)
      expect(attempt).toThrow(
        expect.objectContaining({
          code: 'ERR_STRATA_INVALID_OPTION',
          option: 'products.writeStrategy',
          value: writeStrategy,
        }) as Error,
      )
      expect(attempt).toThrow(
        /declare `write`, the function that writes the source, or drop `writeStrategy`\), got "/,
      )
    },
  )

  it("refuses writeStrategy: 'write-behind' without write, naming `write`", () => {
    expect(() =>
      newCache().namespace('products', { key: 'p:{id}', ttl: '1m', load, writeStrategy: 'write-behind' }),
    ).toThrow(
      expect.objectContaining({ code: 'ERR_STRATA_INVALID_OPTION', option: 'products.write' }) as Error,
    )
  })

  it('accepts it with write, and no writeStrategy without write (a read-only namespace)', () => {
    const cache = newCache()
    expect(() =>
      cache.namespace('a', { key: 'a:{id}', ttl: '1m', load, write: () => {}, writeStrategy: 'cache-aside' }),
    ).not.toThrow()
    expect(() => cache.namespace('b', { key: 'b:{id}', ttl: '1m', load })).not.toThrow()
  })
})
