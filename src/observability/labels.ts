// Read counters per label set (tenant, region, endpoint), bounded so a tenant id cannot explode the series.

/** The labels a namespace's `labels` function may give a read. Absent ones are reported as ''. */
export interface ReadLabels {
  readonly tenant?: string
  readonly region?: string
  readonly endpoint?: string
}

/** Reads of one label set. */
export interface LabeledReads {
  readonly labels: { readonly tenant: string; readonly region: string; readonly endpoint: string }
  readonly l1Hits: number
  readonly l2Hits: number
  readonly misses: number
}

type Counts = { -readonly [K in keyof LabeledReads]: LabeledReads[K] }

/** The label value reads take once the cap is reached, or when the labels function fails. */
export const OTHER_LABEL = '_other'

/**
 * Counts reads per label set, up to `maxSets` distinct sets; reads of further sets are counted under
 * `{ tenant: '_other', region: '_other', endpoint: '_other' }`, so memory and series stay bounded.
 */
export class LabeledCounters<P> {
  readonly #labelsOf: (params: P) => ReadLabels
  readonly #maxSets: number
  readonly #sets = new Map<string, Counts>()
  #other: Counts | undefined
  /** Reads counted under `_other` because the cap was reached or the labels function failed. */
  overflowed = 0

  constructor(labelsOf: (params: P) => ReadLabels, maxSets: number) {
    this.#labelsOf = labelsOf
    this.#maxSets = maxSets
  }

  count(params: P, outcome: 'l1Hits' | 'l2Hits' | 'misses', times = 1): void {
    this.#counts(params)[outcome] += times
  }

  snapshot(): readonly LabeledReads[] {
    const all = [...this.#sets.values(), ...(this.#other === undefined ? [] : [this.#other])]
    return Object.freeze(all.map((c) => Object.freeze({ ...c, labels: c.labels })))
  }

  #counts(params: P): Counts {
    let tenant: string, region: string, endpoint: string
    try {
      const labels = this.#labelsOf(params)
      // Read inside the try: a getter on what the labels function returned may throw too.
      tenant = text(labels?.tenant)
      region = text(labels?.region)
      endpoint = text(labels?.endpoint)
    } catch {
      return this.#overflow()
    }
    const id = `${tenant}\u0000${region}\u0000${endpoint}`
    const found = this.#sets.get(id)
    if (found !== undefined) return found
    if (this.#sets.size >= this.#maxSets) return this.#overflow()
    const counts: Counts = {
      labels: Object.freeze({ tenant, region, endpoint }),
      l1Hits: 0,
      l2Hits: 0,
      misses: 0,
    }
    this.#sets.set(id, counts)
    return counts
  }

  #overflow(): Counts {
    this.overflowed++
    this.#other ??= {
      labels: Object.freeze({ tenant: OTHER_LABEL, region: OTHER_LABEL, endpoint: OTHER_LABEL }),
      l1Hits: 0,
      l2Hits: 0,
      misses: 0,
    }
    return this.#other
  }
}

/**
 * A label value as text, for any value: counting a read must never throw (it runs in the read path's cleanup, where
 * a throw once left a failed load in place for good). A bigint or a symbol as `String` writes it; an object as JSON,
 * else as its own `toString` (a cycle, a throwing `toJSON`), else `_other`.
 */
function text(value: unknown): string {
  switch (typeof value) {
    case 'string':
      return value
    case 'undefined':
      return ''
    case 'number':
    case 'boolean':
    case 'bigint':
    case 'symbol':
      return value.toString()
  }
  if (value === null) return ''
  try {
    const json = JSON.stringify(value) as string | undefined
    // undefined for a function
    if (json !== undefined) return json
  } catch {
    // a cycle, or a toJSON that throws: its toString below
  }
  try {
    // What String(value) gives, without trusting toString to exist (Object.create(null)) or to return a string.
    const toString: unknown = (value as { toString?: unknown }).toString
    const out: unknown = typeof toString === 'function' ? toString.call(value) : undefined
    if (typeof out === 'string') return out
  } catch {
    // a toString that throws
  }
  return OTHER_LABEL
}
