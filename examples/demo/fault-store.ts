// A fault-injecting wrapper around the demo's L2 store: "simulate a Redis outage" freezes every L2 call, as a
// paused or partitioned Redis would, so the cache's own timeouts and circuit breaker handle it for real.
import type { L2Store } from 'stratacache'

/**
 * Passes every call through to `inner` until `outage` is switched on. During an outage a call never answers (the
 * worst case for a client: a connection that is open but silent, like `redis-server` under SIGSTOP), pub/sub
 * messages are dropped, and the real Redis is left untouched. The cache then does what it would do in production:
 * each call gives up after `timeouts.l2`, consecutive failures open the circuit breaker, and reads fall through to
 * L1 and the loader. When the outage ends, the frozen calls are released with an error (their callers gave up long
 * ago) and the circuit's next probe finds Redis again.
 */
export type FaultyL2Store = L2Store & {
  readonly outage: boolean
  /** Starts or ends the simulated outage. */
  setOutage(on: boolean): void
}

/** Methods that are not Redis calls: passed through even during an outage. */
const PASS_THROUGH = new Set<PropertyKey>(['name', 'status', 'connect', 'onEvent'])

/**
 * Wraps every method of `inner` generically (a Proxy), so the wrapper follows the L2 interface as it grows
 * instead of listing its methods.
 */
export function faultyL2Store(inner: L2Store): FaultyL2Store {
  const frozen = new Set<(error: Error) => void>()
  let outage = false
  const release = (error: Error) => {
    for (const settle of [...frozen]) settle(error)
  }
  const call = <T>(run: () => Promise<T>): Promise<T> => {
    if (!outage) return run()
    return new Promise<T>((_, reject) => {
      const settle = (error: Error) => {
        frozen.delete(settle)
        reject(error)
      }
      frozen.add(settle)
    })
  }
  const controls = {
    get outage() {
      return outage
    },
    setOutage(on: boolean) {
      outage = on
      if (!on) release(new Error('connection reset (simulated Redis outage ended)'))
    },
    subscribe(channel: string, listener: (message: string) => void): Promise<void> {
      // Messages that arrive during the outage are lost, as they would be on a partitioned connection.
      return inner.subscribe(channel, (message) => {
        if (!outage) listener(message)
      })
    },
    async close(): Promise<void> {
      release(new Error('store closed'))
      await inner.close()
    },
  }
  return new Proxy(inner, {
    get(target, property) {
      if (property in controls) return Reflect.get(controls, property)
      // Bound to the store: it keeps its state in private fields, which a Proxy receiver could not reach.
      const value: unknown = Reflect.get(target, property, target)
      if (typeof value !== 'function' || PASS_THROUGH.has(property)) {
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value
      }
      return (...args: unknown[]) =>
        call(() => (value as (...a: unknown[]) => Promise<unknown>).apply(target, args))
    },
  }) as FaultyL2Store
}
