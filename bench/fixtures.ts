// What every scenario caches: one key family (2 placeholders + 2 dimensions) and a small product value.

/** The stratacache namespace used by every scenario: 2 placeholders in the template, 2 dimensions. */
export const productNamespace = {
  key: 'tenant:{tenantId}:product:{productId}',
  dimensions: ['locale', 'currency'],
} as const

export interface ProductParams {
  readonly tenantId: string
  readonly productId: number
  readonly locale: string
  readonly currency: string
}

export interface Product {
  readonly id: number
  readonly tenantId: string
  readonly name: string
  readonly price: number
  readonly currency: string
  readonly locale: string
  readonly tags: readonly string[]
  readonly stock: number
  readonly updatedAt: string
}

/** `count` distinct parameter sets, spread over a few tenants, locales and currencies. */
export function productParams(count: number): ProductParams[] {
  const locales = ['en', 'fr', 'de']
  const currencies = ['EUR', 'USD']
  return Array.from({ length: count }, (_, i) => ({
    tenantId: `t${i % 4}`,
    productId: 10_000 + i,
    locale: locales[i % locales.length]!,
    currency: currencies[i % currencies.length]!,
  }))
}

/**
 * The string key a user of a key-value cache would build for `p`. Peers get these prebuilt (outside the measured
 * call) while stratacache builds its key inside `get`: the comparison is conservative for stratacache.
 */
export function stringKey(p: ProductParams): string {
  return `t:${p.tenantId}:p:${p.productId}:${p.locale}:${p.currency}`
}

/** A product of about 250 bytes of JSON. */
export function product(p: ProductParams): Product {
  return {
    id: p.productId,
    tenantId: p.tenantId,
    name: `Product ${p.productId}, a reasonably descriptive name`,
    price: 19.99 + (p.productId % 100),
    currency: p.currency,
    locale: p.locale,
    tags: ['catalog', 'bench', `group-${p.productId % 10}`],
    stock: p.productId % 37,
    updatedAt: '2025-01-01T00:00:00.000Z',
  }
}

/** The TTL every cache gets in the scenarios: long enough that nothing expires during a run. */
export const TTL_MS = 10 * 60_000
