// The demo's traffic shape, shared by the dashboard's load button and the autocannon script: skewed like a real
// catalog (a few products get most reads), over tenants, locales and currencies.
import { CURRENCIES, LOCALES, TENANTS } from './catalog-db.js'

/** Picks 1..n with probability proportional to 1 / rank^s (Zipf), by binary search over the cumulative weights. */
export function zipf(n: number, s: number, random: () => number = Math.random): () => number {
  const cumulative = new Float64Array(n)
  let total = 0
  for (let rank = 1; rank <= n; rank++) {
    total += 1 / rank ** s
    cumulative[rank - 1] = total
  }
  return () => {
    const target = random() * total
    let lo = 0
    let hi = n - 1
    while (lo < hi) {
      const mid = (lo + hi) >> 1
      if (cumulative[mid]! < target) lo = mid + 1
      else hi = mid
    }
    return lo + 1
  }
}

export interface WorkloadOptions {
  /** Products per tenant to pick from. @default 1000 */
  products?: number
  /** Share of requests that list a page instead of reading one product. @default 0.05 */
  pageShare?: number
  random?: () => number
}

/** Returns a function that gives the path of the next read request. */
export function workload(options: WorkloadOptions = {}): () => string {
  const random = options.random ?? Math.random
  const product = zipf(options.products ?? 1000, 1.2, random)
  const page = zipf(20, 1.2, random)
  const pageShare = options.pageShare ?? 0.05
  // Most traffic goes to the biggest tenant, and to the first locale and currency.
  const pick = <T>(values: readonly T[], weights: readonly number[]): T => {
    let r = random()
    for (let i = 0; i < values.length; i++) {
      r -= weights[i]!
      if (r < 0) return values[i]!
    }
    return values[values.length - 1]!
  }
  return () => {
    const tenant = pick(TENANTS, [0.6, 0.3, 0.1])
    const locale = pick(LOCALES, [0.6, 0.25, 0.15])
    const currency = pick(CURRENCIES, [0.6, 0.3, 0.1])
    const query = `locale=${locale}&currency=${currency}`
    return random() < pageShare
      ? `/api/tenants/${tenant}/products?page=${page()}&${query}`
      : `/api/tenants/${tenant}/products/${product()}?${query}`
  }
}
