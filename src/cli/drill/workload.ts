// The drill's synthetic workload: key parameters for key number n of a namespace, and the source's Redis keys.
import type { Namespace } from '../../namespace.js'

/** The source's value of one cache key: the version the writer last wrote (absent: 0). */
export const sourceKey = (cacheKey: string) => `drill:source:${cacheKey}`
/** The source's load counter of a namespace in one run: every load the workers made, counted by the source itself. */
export const sourceLoadsKey = (service: string, namespace: string) => `drill:loads:${service}:${namespace}`

/**
 * The parameters of key number `n`: every parameter (placeholders and dimensions) gets `n`, as its declared type
 * (`params: { productId: 'number' }`), or `'k<n>'` when undeclared. Distinct n, distinct keys (unless a
 * parameter is declared boolean: it has two values).
 */
export function paramsFor(namespace: Pick<Namespace<never, unknown>, 'params' | 'options'>, n: number) {
  const types = namespace.options.params ?? {}
  const params: Record<string, unknown> = {}
  for (const name of namespace.params) {
    const type = types[name]
    params[name] =
      type === 'number' ? n : type === 'bigint' ? BigInt(n) : type === 'boolean' ? n % 2 === 0 : `k${n}`
  }
  return params
}
