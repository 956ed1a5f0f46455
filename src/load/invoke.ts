// The calls to the user's loaders, `load` and `loadMany`: traced, timed, counted, and their failures wrapped.
//
// Invariants:
// - Every call counts one load and one latency sample, failed or not; a failure counts one load error.
// - A loader's failure rejects with LoaderError (its cause kept); a `loadMany` result of the wrong shape with
//   LoadManyResultError. Nothing else escapes.
import { InvalidArgumentError, LoaderError, LoadManyResultError } from '../errors.js'
import { parseDuration } from '../core/duration.js'
import { channels, traces } from '../observability/channels.js'
import type { CallSignal } from '../core/bounded-call.js'
import type { LoadContext } from '../options.js'
import type { NamespaceContext } from '../namespace/context.js'

export class LoadInvoker<P, V> {
  readonly #ctx: NamespaceContext<P, V>

  constructor(ctx: NamespaceContext<P, V>) {
    this.#ctx = ctx
  }

  /** `callSignal`: the bounded call's, whose signal is made only if the loader reads `context.signal`. */
  async callLoad(
    key: string,
    params: P,
    load: NonNullable<NamespaceContext<P, V>['load']>,
    callSignal: CallSignal,
    lifetime: LoadLifetime,
  ): Promise<V> {
    const { name, counters, latency } = this.#ctx
    const started = performance.now()
    counters.loads++
    const context = loadContext(name, key, callSignal, lifetime)
    try {
      const value = traces.load.hasSubscribers
        ? await traces.load.tracePromise(async () => load(params, context), {
            service: this.#ctx.rt.service,
            namespace: name,
            keys: 1,
          })
        : await load(params, context)
      const durationMs = performance.now() - started
      latency.load.observe(durationMs)
      if (channels.load.hasSubscribers) channels.load.publish({ namespace: name, keys: [key], durationMs })
      return value
    } catch (cause) {
      counters.loadErrors++
      const durationMs = performance.now() - started
      latency.load.observe(durationMs)
      if (channels.load.hasSubscribers) {
        channels.load.publish({ namespace: name, keys: [key], durationMs, error: cause })
      }
      throw new LoaderError(name, key, { cause })
    }
  }

  async callLoadMany(
    keys: string[],
    params: P[],
    callSignal: CallSignal,
    lifetime: LoadLifetime,
  ): Promise<readonly V[]> {
    const { name, counters, latency } = this.#ctx
    const started = performance.now()
    counters.loads++
    let values: readonly V[]
    let failure: Error | undefined
    const context = loadContext(name, keys[0]!, callSignal, lifetime)
    try {
      const loadMany = this.#ctx.loadMany!
      values = traces.load.hasSubscribers
        ? await traces.load.tracePromise(async () => loadMany(params, context), {
            service: this.#ctx.rt.service,
            namespace: name,
            keys: keys.length,
          })
        : await loadMany(params, context)
      if (!Array.isArray(values) || values.length !== keys.length) {
        failure = new LoadManyResultError(name, keys.length, values)
      }
    } catch (cause) {
      failure = new LoaderError(name, keys[0]!, { cause })
    }
    if (failure !== undefined) counters.loadErrors++
    const durationMs = performance.now() - started
    latency.load.observe(durationMs)
    if (channels.load.hasSubscribers) {
      channels.load.publish({ namespace: name, keys, durationMs, error: failure })
    }
    if (failure !== undefined) throw failure
    return values!
  }
}

/**
 * The life a loader gave the values it returned (`context.setTtl`, `context.expireAt`), read by the store. Empty
 * when it said nothing: the namespace's policy applies.
 */
export interface LoadLifetime {
  /** Fresh for at most this long (ms), from when the value is stored. */
  ttlMs?: number
  /** Never served after this instant (epoch ms on the cache's clock), not even stale. */
  until?: number
}

/**
 * The context a loader call receives; its `setTtl` and `expireAt` write to `lifetime`. Its `signal` is a getter: the
 * bounded call makes an AbortController only for a loader that reads it.
 */
function loadContext(
  namespace: string,
  key: string,
  callSignal: CallSignal,
  lifetime: LoadLifetime,
): LoadContext {
  return {
    namespace,
    key,
    get signal() {
      return callSignal.signal
    },
    setTtl(ttl) {
      try {
        lifetime.ttlMs = parseDuration(ttl, 'setTtl')
      } catch {
        throw new InvalidArgumentError(
          'context.setTtl(ttl)',
          ttl,
          "a duration such as '5m', '1h30m' or a number of ms",
        )
      }
    },
    expireAt(time) {
      const at = time instanceof Date ? time.getTime() : time
      if (typeof at !== 'number' || !Number.isFinite(at)) {
        throw new InvalidArgumentError(
          'context.expireAt(time)',
          time,
          'a valid Date or a finite number of epoch ms',
        )
      }
      lifetime.until = at
    },
  }
}
