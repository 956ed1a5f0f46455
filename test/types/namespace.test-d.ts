import { describe, expectTypeOf, it } from 'vitest'
import { createCache, type Namespace, type PolicyException, type Scalar } from 'stratacache'

const cache = createCache({ service: 'types' })

interface Product {
  id: number
  name: string
}
declare function fetchProduct(tenant: string, id: number, locale: string): Promise<Product | null>

const products = cache.namespace('product', {
  key: 'tenant:{tenantId}:product:{productId}',
  dimensions: ['locale', 'currency'],
  ttl: '5m',
  load: async ({ tenantId, productId, locale, currency }) => {
    expectTypeOf(tenantId).toEqualTypeOf<Scalar>()
    expectTypeOf(currency).toEqualTypeOf<Scalar>()
    return fetchProduct(String(tenantId), Number(productId), String(locale))
  },
})

describe('namespace typing', () => {
  it('infers key parameters from the template and dimensions, and the value from load', () => {
    expectTypeOf(products).toEqualTypeOf<
      Namespace<
        {
          readonly tenantId: Scalar
          readonly productId: Scalar
          readonly locale: Scalar
          readonly currency: Scalar
        },
        Product | null
      >
    >()
    expectTypeOf(
      products.get({ tenantId: 't1', productId: 42, locale: 'en', currency: 'EUR' }),
    ).toEqualTypeOf<Promise<Product | null>>()
    expectTypeOf(products.getMany).returns.toEqualTypeOf<Promise<(Product | null)[]>>()
    expectTypeOf(products.peek).returns.toEqualTypeOf<Promise<Product | null | undefined>>()
  })

  it('rejects a missing, extra, empty or non-scalar parameter at compile time', () => {
    // @ts-expect-error currency is missing
    void products.get({ tenantId: 't1', productId: 42, locale: 'en' })
    // @ts-expect-error region is not declared
    void products.get({ tenantId: 't1', productId: 42, locale: 'en', currency: 'EUR', region: 'eu' })
    // @ts-expect-error an empty string literal can never name an entry
    void products.get({ tenantId: '', productId: 42, locale: 'en', currency: 'EUR' })
    // @ts-expect-error an object is not a scalar
    void products.get({ tenantId: 't1', productId: { id: 42 }, locale: 'en', currency: 'EUR' })
    // @ts-expect-error null is not a scalar
    void products.set({ tenantId: 't1', productId: null, locale: 'en', currency: 'EUR' }, null)
    // @ts-expect-error extra parameter on delete
    void products.delete({ tenantId: 't1', productId: 1, locale: 'en', currency: 'EUR', x: 1 })
    // @ts-expect-error missing parameter in a getMany item
    void products.getMany([{ tenantId: 't1', productId: 1, locale: 'en' }])
    const fine = { tenantId: 't1', productId: 1, locale: 'en', currency: 'EUR' } as const
    void products.getMany([
      fine,
      // @ts-expect-error empty parameter in a getMany item
      { tenantId: '', productId: 1, locale: 'en', currency: 'EUR' },
    ])
    // @ts-expect-error extra parameter in a getMany item
    void products.getMany([{ tenantId: 't1', productId: 1, locale: 'en', currency: 'EUR', x: 1 }])
    const list: { tenantId: string; productId: number; locale: string; currency: string }[] = []
    void products.getMany(list)
    // A string variable is fine: its emptiness is checked at run time.
    const tenantId: string = 't1'
    void products.get({ tenantId, productId: 1, locale: 'en', currency: 'EUR' })
  })

  it('checks the value type on set', () => {
    void products.set({ tenantId: 't1', productId: 1, locale: 'en', currency: 'EUR' }, { id: 1, name: 'x' })
    // @ts-expect-error name is missing from the value
    void products.set({ tenantId: 't1', productId: 1, locale: 'en', currency: 'EUR' }, { id: 1 })
  })

  it('narrows parameter types when the loader annotates them', () => {
    const typed = cache.namespace('typed', {
      key: 'product:{productId}',
      ttl: '1m',
      load: ({ productId }: { productId: number }) => ({ id: productId }),
    })
    expectTypeOf(typed.get({ productId: 1 })).toEqualTypeOf<Promise<{ id: number }>>()
    // @ts-expect-error productId was declared a number
    void typed.get({ productId: '1' })
  })

  it('refuses an annotated loader that does not take every key parameter', () => {
    cache.namespace('broken', {
      key: 'product:{productId}:{variant}',
      ttl: '1m',
      // @ts-expect-error variant is missing from the loader's parameter type
      load: ({ productId }: { productId: number }) => productId,
    })
  })

  it('types a namespace without parameters as taking an empty object', () => {
    const settings = cache.namespace('settings', { key: 'all', ttl: '1m', load: () => ({ theme: 'dark' }) })
    expectTypeOf(settings.get({})).toEqualTypeOf<Promise<{ theme: string }>>()
    // @ts-expect-error no parameter is declared
    void settings.get({ id: 1 })
  })

  it('infers the value from loadMany when there is no load', () => {
    const batch = cache.namespace('batch', {
      key: 'k:{id}',
      ttl: '1m',
      loadMany: (list) => list.map(() => 1),
    })
    expectTypeOf(batch.getMany([{ id: 1 }])).toEqualTypeOf<Promise<number[]>>()
  })

  it('types the data protection options', () => {
    const guarded = createCache({
      service: 'types-dp',
      compression: { threshold: 1024, algorithm: 'deflate' },
      encryption: { active: 'k1', keys: { k1: new Uint8Array(32) } },
      ttlCaps: { personal: '10m' },
    })
    guarded.namespace('person', {
      key: 'p:{id}',
      ttl: '1m',
      classification: 'personal',
      redact: ['ssn', 'cards[].number'],
      encrypt: true,
      compression: false,
      maxValueBytes: 65_536,
    })
    guarded.namespace('masked', { key: 'm:{id}', ttl: '1m', redact: { paths: ['a.b'], mask: '***' } })
    // @ts-expect-error not a classification
    guarded.namespace('bad-class', { key: 'b:{id}', ttl: '1m', classification: 'confidential' })
    // @ts-expect-error not an algorithm
    createCache({ service: 'x', compression: { algorithm: 'lz4' } })
    expectTypeOf(guarded.purge).parameter(0).toHaveProperty('actor').toEqualTypeOf<string>()
  })
})

describe('policy exceptions', () => {
  it('takes a list of { rule, reason, until } and exposes it resolved', () => {
    const ns = cache.namespace('excepted', {
      key: 'id:{id}',
      ttl: '1m',
      exceptions: [{ rule: 'max-ttl', reason: 'migration', until: '2030-01-01' }],
    })
    expectTypeOf(ns.options.exceptions).toEqualTypeOf<readonly PolicyException[]>()
    // @ts-expect-error: `until` is required, exceptions are debt with an expiry
    cache.namespace('no-until', { key: 'id:{id}', ttl: '1m', exceptions: [{ rule: 'r', reason: 'why' }] })
    expectTypeOf(cache.namespaces()).toEqualTypeOf<readonly Namespace<never, unknown>[]>()
  })
})

declare function productFromDb(tenantId: string, productId: number, locale: string): Promise<Product>

describe('declared parameter types (params)', () => {
  it('types the loader’s parameters as declared, so an unannotated loader passes them on as they are', () => {
    const typed = cache.namespace('declared', {
      key: 'tenant:{tenantId}:product:{productId}',
      dimensions: ['locale'],
      params: { tenantId: 'string', productId: 'number', locale: 'string' },
      ttl: '5m',
      load: ({ tenantId, productId, locale }) => {
        expectTypeOf(tenantId).toEqualTypeOf<string>()
        expectTypeOf(productId).toEqualTypeOf<number>()
        return productFromDb(tenantId, productId, locale) // no String()/Number(): the types are the declared ones
      },
      tags: ({ productId }) => [`product:${productId.toFixed(0)}`],
    })
    expectTypeOf(typed).toEqualTypeOf<
      Namespace<{ readonly tenantId: string; readonly productId: number; readonly locale: string }, Product>
    >()
    void typed.get({ tenantId: 't1', productId: 42, locale: 'en' })
    // @ts-expect-error productId is declared a number
    void typed.get({ tenantId: 't1', productId: '42', locale: 'en' })
    // @ts-expect-error extra parameter: still refused
    void typed.get({ tenantId: 't1', productId: 42, locale: 'en', region: 'eu' })
    // @ts-expect-error the declared types hold in getMany items too
    void typed.getMany([{ tenantId: 't1', productId: true, locale: 'en' }])
  })

  it('leaves undeclared parameters Scalar', () => {
    const partly = cache.namespace('partly', {
      key: 'tenant:{tenantId}:product:{productId}',
      params: { productId: 'bigint' },
      ttl: '5m',
      load: ({ tenantId, productId }) => ({ tenantId, productId }),
    })
    expectTypeOf(partly).toEqualTypeOf<
      Namespace<
        { readonly tenantId: Scalar; readonly productId: bigint },
        { tenantId: Scalar; productId: bigint }
      >
    >()
  })

  it('refuses a type name that is not a scalar’s, and a name that is not a key parameter', () => {
    cache.namespace('bad-type', {
      key: 'product:{productId}',
      // @ts-expect-error 'object' is not a scalar type name
      params: { productId: 'object' },
      ttl: '5m',
    })
    cache.namespace('bad-name', {
      key: 'product:{productId}',
      // @ts-expect-error prodId is not a parameter of the key
      params: { productId: 'number', prodId: 'number' },
      ttl: '5m',
    })
  })

  it('keeps the Scalar error where nothing is declared: the loader must convert', () => {
    cache.namespace('scalar', {
      key: 'tenant:{tenantId}:product:{productId}',
      dimensions: ['locale'],
      ttl: '5m',
      // @ts-expect-error Scalar is not assignable to string: declare `params`, or convert with String()
      load: ({ tenantId, productId, locale }) => productFromDb(tenantId, productId, locale),
    })
  })
})
