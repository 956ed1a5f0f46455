// Synthetic, seeded access patterns for the hit-ratio benchmark: recency-biased shapes standing in for the sprite
// and P3 traces of the ARC paper (not available here), and frequency shapes as a check that those still win.

/** A generated workload: its keys in request order, and the capacities it is measured at. */
export interface Workload {
  readonly name: string
  /** What the workload stands for, in one line (printed under the table). */
  readonly description: string
  readonly capacities: readonly number[]
  /** Generates the requests for a cache of `capacity` entries; the same every call (seeded). */
  keys(capacity: number): readonly string[]
}

/** mulberry32: a small seeded generator of floats in [0, 1); the workloads must be the same on every run. */
export function random(seed: number): () => number {
  let s = seed >>> 0
  return () => {
    s = (s + 0x6d2b79f5) >>> 0
    let t = Math.imul(s ^ (s >>> 15), 1 | s)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** Draws ranks 0..n-1 with probability proportional to 1 / (rank + 1)^skew (inverse of the cumulative weights). */
export function zipf(n: number, skew: number, next: () => number): () => number {
  const cumulative = new Float64Array(n)
  let total = 0
  for (let i = 0; i < n; i++) cumulative[i] = total += 1 / (i + 1) ** skew
  return () => {
    const target = next() * total
    let lo = 0
    let hi = n - 1
    while (lo < hi) {
      const mid = (lo + hi) >> 1
      if (cumulative[mid]! < target) lo = mid + 1
      else hi = mid
    }
    return lo
  }
}

/** Interns integer keys as strings, one string per key, as the trace reader does. */
function interned(numbers: readonly number[]): string[] {
  const strings = new Map<number, string>()
  return numbers.map((n) => {
    let key = strings.get(n)
    if (key === undefined) strings.set(n, (key = String(n)))
    return key
  })
}

const REQUESTS = 400_000

export const WORKLOADS: readonly Workload[] = [
  {
    name: 'recency',
    description:
      'a new key one request in three, every other request a re-read of one of the 400 newest keys (only recency helps)',
    capacities: [500, 5000],
    keys() {
      const next = random(1)
      const out: number[] = []
      let newest = -1
      for (let i = 0; i < REQUESTS; i++) {
        if (newest < 0 || next() < 1 / 3) out.push(++newest)
        else out.push(newest - Math.floor(next() * Math.min(400, newest + 1)))
      }
      return interned(out)
    },
  },
  {
    name: 'shifting-set',
    description: 'Zipf 1.0 over a set of 20,000 keys that is replaced by a new set every 50,000 requests',
    capacities: [500, 5000],
    keys() {
      const next = random(2)
      const rank = zipf(20_000, 1, next)
      const out: number[] = []
      for (let i = 0; i < REQUESTS; i++) out.push(Math.floor(i / 50_000) * 20_000 + rank())
      return interned(out)
    },
  },
  {
    name: 'drifting-zipf',
    description: 'Zipf 1.0 over 100,000 keys whose hottest key moves on by one key every 20 requests',
    capacities: [500, 5000],
    keys() {
      const next = random(3)
      const rank = zipf(100_000, 1, next)
      const out: number[] = []
      for (let i = 0; i < REQUESTS; i++) out.push(Math.floor(i / 20) + rank())
      return interned(out)
    },
  },
  {
    name: 'stack-mix',
    description:
      'a file-system-like mix: 70% re-reads at a geometric LRU stack distance (mean 300), 20% new keys, 10% Zipf 0.9 over 50,000 keys',
    capacities: [500, 5000],
    keys() {
      const next = random(4)
      const rank = zipf(50_000, 0.9, next)
      // The recency stack as a ring of recent requests: a re-read picks a request some distance back.
      const out: number[] = []
      let fresh = 1_000_000
      for (let i = 0; i < REQUESTS; i++) {
        const u = next()
        if (u < 0.7 && out.length > 0) {
          const distance = Math.min(out.length, 1 + Math.floor(-Math.log(1 - next()) * 300))
          out.push(out[out.length - distance]!)
        } else if (u < 0.9) out.push(fresh++)
        else out.push(rank())
      }
      return interned(out)
    },
  },
  {
    name: 'scan-mix',
    description: 'Zipf 0.9 over 100,000 keys, and a scan of 5,000 new keys every 50,000 requests',
    capacities: [500, 5000],
    keys() {
      const next = random(5)
      const rank = zipf(100_000, 0.9, next)
      const out: number[] = []
      let scanned = 1_000_000
      for (let i = 0; i < REQUESTS; i++) {
        out.push(rank())
        if (i % 50_000 === 49_999) for (let s = 0; s < 5_000; s++) out.push(scanned++)
      }
      return interned(out)
    },
  },
  {
    name: 'phases',
    description:
      'the workload changes under the cache: a loop over 1.2x the capacity, then the recency pattern, then the loop again (100,000 requests each)',
    capacities: [500, 5000],
    keys(capacity) {
      const next = random(6)
      const loop = Math.round(1.2 * capacity)
      const out: number[] = []
      for (let i = 0; i < 100_000; i++) out.push(i % loop)
      let newest = 10_000_000
      const first = newest
      for (let i = 0; i < 100_000; i++) {
        if (newest === first || next() < 1 / 3) out.push(++newest)
        else out.push(newest - Math.floor(next() * Math.min(400, newest - first)))
      }
      for (let i = 0; i < 100_000; i++) out.push(i % loop)
      return interned(out)
    },
  },
]
