// The fail-safe throttle: keys whose loader just failed, answered stale (not loaded again) until `failSafeThrottle`
// has passed.
//
// Invariants:
// - Nothing is throttled unless both `failSafeThrottle` and `staleFor` are on: a throttled key answers stale.
// - At most 10,000 keys, expired ones swept first; past that a failure is not throttled (the source is asked again).
import type { NamespaceContext } from '../namespace/context.js'

const MAX_THROTTLED = 10_000

export class FailSafeThrottle<P, V> {
  readonly #ctx: NamespaceContext<P, V>
  /** Keys whose loader failed, and until when it is not called again. */
  readonly #until = new Map<string, number>()

  constructor(ctx: NamespaceContext<P, V>) {
    this.#ctx = ctx
  }

  isThrottled(key: string): boolean {
    const until = this.#until.get(key)
    if (until === undefined) return false
    if (until > this.#ctx.clock.now()) return true
    this.#until.delete(key)
    return false
  }

  throttle(key: string): void {
    const options = this.#ctx.options
    if (options.failSafeThrottleMs === 0 || options.staleForMs === 0) return
    const now = this.#ctx.clock.now()
    if (this.#until.size >= MAX_THROTTLED) {
      for (const [k, until] of this.#until) if (until <= now) this.#until.delete(k)
    }
    if (this.#until.size < MAX_THROTTLED) this.#until.set(key, now + options.failSafeThrottleMs)
  }

  /** Forgets `key` (it was written or invalidated: its next read may load at once). */
  delete(key: string): void {
    this.#until.delete(key)
  }

  clear(): void {
    this.#until.clear()
  }
}
