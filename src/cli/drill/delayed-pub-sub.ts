// A fault wrapper around an L2 store: every pub/sub message reaches the cache late (the delayed-invalidation drill,
// and the staleness chaos test).
import type { L2Store } from '../../tiers/l2-store.js'

/**
 * The same store, but every message a `subscribe` listener gets is handed to it from a timer, `delayMs` late (a
 * number, or a function read as each message arrives, so a drill can switch the delay on and off). Everything else
 * goes straight to the store, bound to it: the store keeps its state in private fields, which a Proxy receiver
 * could not reach.
 */
export function delayedPubSub<S extends L2Store>(store: S, delayMs: number | (() => number)): S {
  const delay = typeof delayMs === 'number' ? () => delayMs : delayMs
  return new Proxy(store, {
    get(target, property) {
      if (property === 'subscribe') {
        return (channel: string, listener: (message: string) => void) =>
          target.subscribe(channel, (message) => {
            const ms = delay()
            if (ms <= 0) listener(message)
            else setTimeout(() => listener(message), ms).unref()
          })
      }
      const value: unknown = Reflect.get(target, property, target)
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value
    },
  })
}
