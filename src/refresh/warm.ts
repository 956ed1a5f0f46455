// Warm-up: load a known set of keys before traffic needs them (`ns.warm()`), as a job with a budget.
//
// Invariants:
// - Every load goes through the namespace's pipeline: its lock (one load per key across processes), source limit,
//   fence and timeouts. The warm-up's own `concurrency` and `maxPerSecond` bound it further, never loosen those.
// - A key already fresh in L1, being loaded by a reader, or fresh in L2 (then copied to L1) is not loaded again
//   unless `refresh` asks for it. Warm-up loads are flights like a reader's, so a `get` arriving meanwhile joins.
// - Warm-up reads are not user reads: they are not counted as hits or misses (the loader calls are, as loads).
// - A key that fails is counted, with its error kept (the first ten), and the job goes on; only bad options
//   throw. An aborted signal stops new keys from starting; those already started finish.
// - Warm start: a closing process saves the parameters of its hottest L1 entries (ranked by the eviction policy's
//   frequency sketch) in L2; a starting one copies those keys' fresh L2 entries into L1, without calling the
//   loader. Personal and secret namespaces save nothing (their key parameters would sit in L2 in clear), and a
//   saved list that does not decode is a miss counted in `decodeErrors`, never a throw.
import { setTimeout as sleep } from 'node:timers/promises'
import { rejectUnknown, type OptionKeys } from '../core/known-options.js'
import { InvalidArgumentError } from '../errors.js'
import type { LoadPipeline } from '../load/pipeline.js'
import type { NamespaceContext } from '../namespace/context.js'
import type { EntryStore, StoreOutcome } from '../storage/entry-store.js'

/** How a warm-up runs. */
export interface WarmOptions {
  /**
   * Keys loaded at the same time by this warm-up. The namespace's `source` limit still applies: keys over it wait
   * for room as a read's loads do, and a key refused there (`source.overflow: 'error'`, or no room within
   * `source.maxWait`) fails with ERR_STRATA_SOURCE_BUSY, counted in `failed`. A warm-up has no stale value to
   * answer with, so `overflow: 'stale'` waits. Keep this at or under `source.maxConcurrent`. A key holds its place
   * until its value is stored in L2 (at most `timeouts.l2` after its load), so that `notStored` can count it.
   * @default 4
   */
  concurrency?: number
  /** Keys started per second at most (a budget for the source), e.g. `50`. @default unlimited */
  maxPerSecond?: number
  /**
   * Stops starting keys once aborted (those under way finish; a wait for a free slot or for the next `maxPerSecond`
   * turn ends there, starting nothing); the result then says `aborted: true`.
   */
  signal?: AbortSignal
  /** Load every key, even one that is fresh already (a refresh before a deploy). @default false */
  refresh?: boolean
  /** Called after each key settles, with the counts so far. Must not throw (a throw is ignored). */
  onProgress?: (progress: WarmProgress) => void
}

/** The counts of a warm-up so far. */
export interface WarmProgress {
  /** Keys settled (loaded + fresh + failed). */
  readonly done: number
  /** Keys loaded from the source (or adopted from another process's load of the same key). */
  readonly loaded: number
  /** Keys fresh already, in L1 or in L2 (then copied to L1): nothing was loaded. */
  readonly fresh: number
  /** Keys whose parameters or load failed. */
  readonly failed: number
  /**
   * Of the keys loaded, those the namespace's L2 did not take, or did not confirm within `timeouts.l2` (Redis
   * unreachable, an error, slow): this process holds them in L1, other processes will load them again. Not counted
   * here: a value L2 cannot hold (counted in `serializeErrors` or `oversized`), and a key whose load was already
   * under way for a reader when the warm-up came to it (counted by that load's answer alone).
   */
  readonly notStored: number
}

/** What `ns.warm()` did. */
export interface WarmResult extends WarmProgress {
  /** From the call to the last key settled, in ms. */
  readonly durationMs: number
  /** Whether `signal` stopped it before every key was started. */
  readonly aborted: boolean
  /** The first ten failures: the key (when its parameters were valid) and the error. */
  readonly errors: readonly { readonly key: string | undefined; readonly error: Error }[]
}

const MAX_ERRORS = 10

/** How one key of a warm-up settled: `notStored` is loaded, but not in L2 (`WarmProgress.notStored`). */
type WarmOutcome = 'loaded' | 'notStored' | 'fresh' | 'failed'

/** How long a saved hot-key list is kept in L2: a deploy that takes longer starts cold. */
export const HOT_KEYS_TTL_MS = 24 * 3_600_000
/** The hot keys a namespace saves at most, by default. */
export const HOT_KEYS_DEFAULT = 1_000

/** What one namespace's warm start did. */
export interface WarmStartResult {
  /** Keys in the list the last process saved (0 when none, or it did not decode). */
  readonly saved: number
  /** Of them, those fresh in L2 and now in L1. */
  readonly warmed: number
}

const WARM_OPTION_KEYS = {
  concurrency: true,
  maxPerSecond: true,
  signal: true,
  refresh: true,
  onProgress: true,
} as const satisfies OptionKeys<WarmOptions>

export class Warmer<P, V> {
  readonly #ctx: NamespaceContext<P, V>
  readonly #store: EntryStore<P, V>
  readonly #pipeline: LoadPipeline<P, V>

  constructor(ctx: NamespaceContext<P, V>, store: EntryStore<P, V>, pipeline: LoadPipeline<P, V>) {
    this.#ctx = ctx
    this.#store = store
    this.#pipeline = pipeline
  }

  async warm(keys: Iterable<P> | AsyncIterable<P>, options: WarmOptions = {}): Promise<WarmResult> {
    const { concurrency, intervalMs, signal, refresh, onProgress } = checkOptions(keys, options)
    const started = performance.now()
    const counts = { done: 0, loaded: 0, fresh: 0, failed: 0, notStored: 0 }
    const errors: { key: string | undefined; error: Error }[] = []
    const running = new Set<Promise<void>>()
    let nextStart = started
    let aborted = false
    const settle = (outcome: WarmOutcome, key?: string, error?: unknown) => {
      counts.done++
      if (outcome === 'notStored') {
        counts.loaded++
        counts.notStored++
      } else {
        counts[outcome]++
      }
      if (error !== undefined && errors.length < MAX_ERRORS) {
        errors.push({
          key,
          error: error instanceof Error ? error : new Error(`a non-Error was thrown: ${typeof error}`),
        })
      }
      if (onProgress !== undefined) {
        try {
          onProgress({ ...counts })
        } catch {
          // The job's progress display is the caller's; its failure must not stop the job.
        }
      }
    }
    for await (const params of keys) {
      if (signal?.aborted || this.#ctx.rt.closed) {
        aborted = true
        break
      }
      while (running.size >= concurrency) await Promise.race(running)
      if (intervalMs > 0) {
        const wait = nextStart - performance.now()
        // Ends early when the signal aborts, so a slow rate (one key a minute) does not hold the job past its abort.
        if (wait > 0) await sleep(wait, undefined, { signal }).catch(() => {})
        nextStart = Math.max(nextStart, performance.now() - intervalMs) + intervalMs
      }
      // Check again: the signal may have aborted (or the cache closed) while we waited for a slot or our turn.
      if (signal?.aborted || this.#ctx.rt.closed) {
        aborted = true
        break
      }
      let key: string | undefined
      const work = (async () => {
        try {
          key = this.#ctx.keys.build(params)
          settle(await this.#warmOne(key, params, refresh))
        } catch (error) {
          settle('failed', key, error)
        }
      })()
      running.add(work)
      void work.finally(() => running.delete(work))
    }
    await Promise.all(running)
    const durationMs = performance.now() - started
    const counters = this.#ctx.counters
    counters.warmUps++
    counters.warmUpKeysLoaded += counts.loaded
    counters.warmUpKeysFresh += counts.fresh
    counters.warmUpKeysFailed += counts.failed
    counters.warmUpKeysNotStored += counts.notStored
    counters.warmUpMs += durationMs
    return Object.freeze({ ...counts, durationMs, aborted, errors: Object.freeze(errors) })
  }

  /**
   * Saves the parameters of this namespace's `max` hottest L1 entries in L2 (`<prefix>#hot`, kept a day), for the
   * next process to start warm. Resolves to how many were saved: 0 without L1 or L2, in a personal or secret
   * namespace, or when L2 failed (counted in l2Errors).
   */
  async saveHotKeys(max = HOT_KEYS_DEFAULT): Promise<number> {
    const ctx = this.#ctx
    const l1 = ctx.l1
    const l2 = ctx.rt.l2
    const policy = ctx.rt.l1
    if (l1 === undefined || l2 === undefined || policy === undefined) return 0
    if (ctx.options.classification === 'personal' || ctx.options.classification === 'secret') return 0
    const sketch = policy.sketch
    const now = ctx.clock.now()
    const ranked = [...l1.nodes()]
      .filter((node) => node.expiresAt > now)
      .map((node) => ({ params: node.params, score: sketch.frequency(node.hash) * 1_000_000 + node.hits }))
      .sort((a, b) => b.score - a.score)
      .slice(0, max)
    if (ranked.length === 0) return 0
    const list = ranked.map(({ params }) => encodeParams(params as Record<string, unknown>))
    try {
      await l2.set(
        hotKeysKey(ctx.prefix),
        Buffer.from(JSON.stringify({ v: 1, params: list })),
        HOT_KEYS_TTL_MS,
      )
      return list.length
    } catch {
      ctx.counters.l2Errors++
      return 0
    }
  }

  /**
   * Copies the entries of the hot-key list a previous process saved from L2 into L1, when still fresh there; never
   * calls the loader. A list that is not ours (foreign or corrupt bytes) is a miss counted in `decodeErrors`.
   */
  async warmStart(max?: number): Promise<WarmStartResult> {
    const ctx = this.#ctx
    // By default every saved key, as many as L1 can hold: the closing process chose how many to save.
    const limit = max ?? ctx.rt.l1?.maxEntries ?? HOT_KEYS_DEFAULT
    const l2 = ctx.rt.l2
    if (l2 === undefined || ctx.l1 === undefined) return { saved: 0, warmed: 0 }
    ctx.counters.warmStarts++
    const started = performance.now()
    try {
      return await this.#copyHotKeys(l2, limit)
    } finally {
      ctx.counters.warmStartMs += performance.now() - started
    }
  }

  /** `warmStart`'s work: the saved list from L2, then its entries still fresh there, into L1. */
  async #copyHotKeys(
    l2: NonNullable<NamespaceContext<P, V>['rt']['l2']>,
    limit: number,
  ): Promise<WarmStartResult> {
    const ctx = this.#ctx
    if (!ctx.generation.known) await ctx.generation.read()
    let bytes: Uint8Array | null
    try {
      bytes = await l2.get(hotKeysKey(ctx.prefix))
    } catch {
      ctx.counters.l2Errors++
      return { saved: 0, warmed: 0 }
    }
    if (bytes === null) return { saved: 0, warmed: 0 }
    const list = decodeHotKeys(bytes)
    if (list === undefined) {
      ctx.counters.decodeErrors++
      return { saved: 0, warmed: 0 }
    }
    const items: { params: P; key: string }[] = []
    for (const params of list.slice(0, limit)) {
      try {
        items.push({ params: params as P, key: ctx.keys.build(params) })
      } catch {
        // Parameters the namespace no longer takes (its key template changed): skipped.
      }
    }
    const token = ctx.fence.open()
    const found = await this.#store.readL2Many(items.map((item) => item.key))
    const now = ctx.clock.now()
    let warmed = 0
    items.forEach((item, i) => {
      const stored = found[i]
      if (stored === undefined || stored.entry.freshUntil <= now) return
      this.#store.fillFromL2(item.params, item.key, stored, token)
      warmed++
    })
    ctx.counters.warmStartKeys += warmed
    return { saved: list.length, warmed }
  }

  async #warmOne(key: string, params: P, refresh: boolean): Promise<WarmOutcome> {
    const ctx = this.#ctx
    if (!ctx.generation.known) await ctx.generation.read()
    const now = ctx.clock.now()
    const running = ctx.flights.joinable(key, ctx.clock)
    if (running !== undefined) {
      await running.promise
      return refresh ? 'loaded' : 'fresh'
    }
    if (!refresh) {
      const local = this.#store.l1Peek(params)
      if (local !== undefined && local.freshUntil > now) return 'fresh'
      const token = ctx.fence.open()
      const stored = await this.#store.readL2Fresh(key)
      if (stored !== undefined) {
        this.#store.fillFromL2(params, key, stored, token)
        return 'fresh'
      }
    }
    // Set when this process stores what it loaded; not when it adopts another process's value (in L2 already).
    let written: Promise<StoreOutcome> | undefined
    const flight = ctx.flights.start(key, ctx.fence.open(), (f) => {
      f.missed = true
      f.phase = 'load'
      return this.#pipeline.loadCoordinated(key, params, f, undefined, (store) => {
        written = store
      })
    })
    await flight.promise
    return (await written) === 'failed' ? 'notStored' : 'loaded'
  }
}

function checkOptions<P>(
  keys: Iterable<P> | AsyncIterable<P>,
  options: WarmOptions,
): {
  concurrency: number
  intervalMs: number
  signal: AbortSignal | undefined
  refresh: boolean
  onProgress: WarmOptions['onProgress']
} {
  const iterable =
    keys !== null && typeof keys === 'object' && (Symbol.iterator in keys || Symbol.asyncIterator in keys)
  if (!iterable) {
    throw new InvalidArgumentError('keys', keys, 'an iterable of key parameters, e.g. [{ id: 1 }, { id: 2 }]')
  }
  rejectUnknown(options, WARM_OPTION_KEYS, { where: 'ns.warm()', at: (path) => path })
  const { concurrency = 4, maxPerSecond, signal, refresh = false, onProgress } = options
  if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 10_000) {
    throw new InvalidArgumentError('options.concurrency', concurrency, 'an integer from 1 to 10000')
  }
  if (
    maxPerSecond !== undefined &&
    !(typeof maxPerSecond === 'number' && maxPerSecond > 0 && maxPerSecond < Infinity)
  ) {
    throw new InvalidArgumentError(
      'options.maxPerSecond',
      maxPerSecond,
      'a positive number of keys per second',
    )
  }
  if (signal !== undefined && !(signal instanceof AbortSignal)) {
    throw new InvalidArgumentError('options.signal', signal, 'an AbortSignal')
  }
  if (typeof refresh !== 'boolean')
    throw new InvalidArgumentError('options.refresh', refresh, 'true or false')
  if (onProgress !== undefined && typeof onProgress !== 'function') {
    throw new InvalidArgumentError('options.onProgress', onProgress, 'a function')
  }
  return {
    concurrency,
    intervalMs: maxPerSecond === undefined ? 0 : 1000 / maxPerSecond,
    signal,
    refresh,
    onProgress,
  }
}

/** The L2 key of a namespace's saved hot-key list: bookkeeping, never an entry (`isEntryKey`). */
function hotKeysKey(prefix: string): string {
  return prefix + '#hot'
}

/** Key parameters as JSON: bigints, which JSON cannot hold, as `{ "bigint": "123" }`. */
function encodeParams(params: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const [name, value] of Object.entries(params)) {
    out[name] = typeof value === 'bigint' ? { bigint: value.toString() } : value
  }
  return out
}

/** A saved hot-key list back to parameter objects; undefined for bytes that are not one. */
function decodeHotKeys(bytes: Uint8Array): Record<string, unknown>[] | undefined {
  let parsed: unknown
  try {
    parsed = JSON.parse(Buffer.from(bytes).toString('utf8'))
  } catch {
    return undefined
  }
  if (parsed === null || typeof parsed !== 'object' || (parsed as { v?: unknown }).v !== 1) return undefined
  const list = (parsed as { params?: unknown }).params
  if (!Array.isArray(list)) return undefined
  const out: Record<string, unknown>[] = []
  for (const item of list) {
    if (item === null || typeof item !== 'object' || Array.isArray(item)) return undefined
    const params: Record<string, unknown> = Object.create(null) as Record<string, unknown>
    for (const [name, value] of Object.entries(item as Record<string, unknown>)) {
      if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') {
        params[name] = value
      } else if (
        value !== null &&
        typeof value === 'object' &&
        typeof (value as { bigint?: unknown }).bigint === 'string' &&
        /^-?\d+$/.test((value as { bigint: string }).bigint)
      ) {
        params[name] = BigInt((value as { bigint: string }).bigint)
      } else {
        return undefined
      }
    }
    out.push({ ...params })
  }
  return out
}
