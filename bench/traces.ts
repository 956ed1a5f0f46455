// Access traces for the hit-ratio benchmark: the readers, and the replays against a store, plain LRU and Belady's OPT.
import { readFileSync } from 'node:fs'
import { basename } from 'node:path'
import { gunzipSync } from 'node:zlib'
import { LRUCache } from 'lru-cache'

/**
 * Trace formats (see ../shared/traces/README.md):
 * - `arc`: lines `start count ignored request#`, standing for keys start … start+count-1 in order (ARC paper traces);
 * - `lirs`: one integer key per line; empty lines and lines holding `*` are skipped (LIRS trace set).
 */
export type TraceFormat = 'arc' | 'lirs'

/** A trace as the sequence of its requested keys, interned as strings (as an L1 sees them) and as numbers. */
export interface Trace {
  readonly name: string
  readonly keys: readonly string[]
  /** Distinct keys requested. */
  readonly distinct: number
}

/** The format of a trace file from its name: `.lis` files are ARC traces, anything else LIRS. */
export function formatOf(path: string): TraceFormat {
  return /\.lis(\.gz)?$/.test(path) ? 'arc' : 'lirs'
}

/** Reads a trace file (gzip when its name ends in `.gz`) into the keys it requests, in order. */
export function readTrace(path: string, format: TraceFormat = formatOf(path)): Trace {
  const raw = readFileSync(path)
  const text = (path.endsWith('.gz') ? gunzipSync(raw) : raw).toString('latin1')
  const numbers: number[] = []
  let line = 0
  for (const row of text.split('\n')) {
    line++
    const trimmed = row.trim()
    if (trimmed === '' || trimmed === '*') continue
    if (format === 'lirs') {
      const key = Number(trimmed)
      if (!Number.isSafeInteger(key))
        throw new Error(`${path}:${line}: expected an integer key, got "${trimmed}"`)
      numbers.push(key)
    } else {
      const [start, count] = trimmed.split(/\s+/).map(Number)
      if (!Number.isSafeInteger(start) || !Number.isSafeInteger(count) || count! < 0) {
        throw new Error(`${path}:${line}: expected "start count ignored request#", got "${trimmed}"`)
      }
      for (let k = 0; k < count!; k++) numbers.push(start! + k)
    }
  }
  // One string per distinct key, shared by all its requests: the store hashes each key string once, as a cache
  // would for keys held by the application.
  const interned = new Map<number, string>()
  const keys = numbers.map((n) => {
    let key = interned.get(n)
    if (key === undefined) interned.set(n, (key = String(n)))
    return key
  })
  return { name: basename(path), keys, distinct: interned.size }
}

/** The part of a store a replay needs: `get` (undefined on a miss) and `set`. */
export interface ReplayStore {
  get(key: string): unknown
  set(key: string, value: unknown): unknown
}

/** Hit ratio in percent of `store` on `keys` from cold: demand fill, a get then a set on every miss. */
export function replay(keys: readonly string[], store: ReplayStore): number {
  let hits = 0
  for (const key of keys) {
    if (store.get(key) !== undefined) hits++
    else store.set(key, true)
  }
  return (100 * hits) / keys.length
}

/** Hit ratio of a plain LRU of `capacity` entries (lru-cache), demand fill. */
export function lruHitRatio(keys: readonly string[], capacity: number): number {
  return replay(keys, new LRUCache<string, true>({ max: capacity }))
}

/**
 * Hit ratio of Belady's optimal offline policy (MIN) with `capacity` entries, demand fill: every miss is cached,
 * and when the cache is full the entry whose next request is farthest in the future (or never comes) is evicted.
 * O(n log n): a max-heap of next-use positions with lazy deletion.
 */
export function optHitRatio(keys: readonly string[], capacity: number): number {
  const n = keys.length
  // next[i]: position of the next request for keys[i], or n + i when there is none (distinct, and past all real
  // positions, so "never again" sorts farthest).
  const next = new Float64Array(n)
  const seen = new Map<string, number>()
  for (let i = n - 1; i >= 0; i--) {
    next[i] = seen.get(keys[i]!) ?? n + i
    seen.set(keys[i]!, i)
  }
  /** The current next use of each cached key. */
  const cached = new Map<string, number>()
  const heap = new MaxHeap(n)
  /** Which key a heap value stands for: value v < n is a request position, v >= n stands for position v - n. */
  const keyOf = (v: number) => keys[v < n ? v : v - n]!
  let hits = 0
  for (let i = 0; i < n; i++) {
    const key = keys[i]!
    if (cached.has(key)) {
      hits++
    } else if (cached.size >= capacity) {
      for (;;) {
        const farthest = heap.pop()
        const victim = keyOf(farthest)
        // Stale heap values (the key was requested again since) are skipped.
        if (cached.get(victim) === farthest) {
          cached.delete(victim)
          break
        }
      }
    }
    cached.set(key, next[i]!)
    heap.push(next[i]!)
  }
  return (100 * hits) / n
}

/** A binary max-heap of numbers with a fixed capacity. */
class MaxHeap {
  readonly #items: Float64Array
  #size = 0

  constructor(capacity: number) {
    this.#items = new Float64Array(capacity)
  }

  push(value: number): void {
    const items = this.#items
    let i = this.#size++
    while (i > 0) {
      const parent = (i - 1) >> 1
      if (items[parent]! >= value) break
      items[i] = items[parent]!
      i = parent
    }
    items[i] = value
  }

  pop(): number {
    const items = this.#items
    const top = items[0]!
    const last = items[--this.#size]!
    let i = 0
    for (;;) {
      let child = 2 * i + 1
      if (child >= this.#size) break
      if (child + 1 < this.#size && items[child + 1]! > items[child]!) child++
      if (items[child]! <= last) break
      items[i] = items[child]!
      i = child
    }
    items[i] = last
    return top
  }
}
