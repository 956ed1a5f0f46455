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
import { rejectUnknown, type OptionKeys } from '../core/known-options.js'
import { InvalidArgumentError } from '../errors.js'
import type { LoadPipeline } from '../load/pipeline.js'
import type { NamespaceContext } from '../namespace/context.js'
import type { EntryStore } from '../storage/entry-store.js'

/** How a warm-up runs. */
export interface WarmOptions {
  /**
   * Keys loaded at the same time by this warm-up (the namespace's `source` limit still applies).
   * @default 4
   */
  concurrency?: number
  /** Keys started per second at most (a budget for the source), e.g. `50`. @default unlimited */
  maxPerSecond?: number
  /** Stops starting keys once aborted (those under way finish); the result then says `aborted: true`. */
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
    const counts = { done: 0, loaded: 0, fresh: 0, failed: 0 }
    const errors: { key: string | undefined; error: Error }[] = []
    const running = new Set<Promise<void>>()
    let nextStart = started
    let aborted = false
    const settle = (outcome: 'loaded' | 'fresh' | 'failed', key?: string, error?: unknown) => {
      counts.done++
      counts[outcome]++
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
        if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait))
        nextStart = Math.max(nextStart, performance.now() - intervalMs) + intervalMs
        if (signal?.aborted) {
          aborted = true
          break
        }
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
    return Object.freeze({
      ...counts,
      durationMs: performance.now() - started,
      aborted,
      errors: Object.freeze(errors),
    })
  }

  async #warmOne(key: string, params: P, refresh: boolean): Promise<'loaded' | 'fresh'> {
    const ctx = this.#ctx
    if (!ctx.generation.known) await ctx.generation.read()
    const now = ctx.clock.now()
    const running = ctx.flights.joinable(key, now)
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
    const flight = ctx.flights.start(key, ctx.fence.open(), (f) => {
      f.missed = true
      f.phase = 'load'
      return this.#pipeline.loadCoordinated(key, params, f, undefined)
    })
    await flight.promise
    return 'loaded'
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
