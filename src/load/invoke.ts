// The calls to the user's loaders, `load` and `loadMany`: traced, timed, counted, and their failures wrapped.
//
// Invariants:
// - Every call counts one load and one latency sample, failed or not; a failure counts one load error.
// - A loader's failure rejects with LoaderError (its cause kept); a `loadMany` result of the wrong shape with
//   LoadManyResultError. Nothing else escapes.
import { LoaderError, LoadManyResultError } from '../errors.js'
import { channels, traces } from '../observability/channels.js'
import type { LoadContext } from '../options.js'
import type { NamespaceContext } from '../namespace/context.js'

export class LoadInvoker<P, V> {
  readonly #ctx: NamespaceContext<P, V>

  constructor(ctx: NamespaceContext<P, V>) {
    this.#ctx = ctx
  }

  async callLoad(key: string, params: P, load = this.#ctx.load!, signal = this.#ctx.rt.signal): Promise<V> {
    const { name, counters, latency } = this.#ctx
    const started = performance.now()
    counters.loads++
    const context: LoadContext = { namespace: name, key, signal }
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

  async callLoadMany(keys: string[], params: P[], signal = this.#ctx.rt.signal): Promise<readonly V[]> {
    const { name, counters, latency } = this.#ctx
    const started = performance.now()
    counters.loads++
    let values: readonly V[]
    let failure: Error | undefined
    const context: LoadContext = { namespace: name, key: keys[0]!, signal }
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
