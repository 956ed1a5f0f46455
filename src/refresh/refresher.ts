// refresh/: values refreshed in the background while readers are answered at once: stale-while-revalidate,
// refresh-ahead, suspect entries after a bus outage, and the hottest keys before they expire. The fail-safe
// throttle (fail-safe-throttle.ts) keeps a failing source from being asked again at once.
//
// Invariants:
// - One refresh per key in this process (none while a flight of the key runs), and, through the lock, one across
//   processes: a process that finds the lock held leaves the refresh to its holder.
// - A refresh goes through the same load pipeline as a miss (fence, source limit, timeouts, fenced store); its
//   failure throttles the key and is never seen by a reader.
// - A refresh triggered by a flight (an L2 hit past its refresh point) starts once that flight has left the
//   registry, or it would see the flight and stand down.
// - The hot-keys sweep runs on a timer, off the read path; it halves every count each interval.
import type { Entry } from '../codecs/envelope.js'
import type { ResolvedNamespaceOptions } from '../options.js'
import { isHeld, type LockHolder } from '../policies/cross-process-lock.js'
import type { LoadPipeline } from '../load/pipeline.js'
import { NO_TAGS, type NamespaceContext } from '../namespace/context.js'
import type { EntryStore } from '../storage/entry-store.js'

/** One of the hottest keys, as `ns.hotKeys()` reports it. */
export interface HotKey {
  readonly key: string
  /** Reads in the last tracking interval, plus half of the interval before, and so on (a decaying count). */
  readonly score: number
}

export class Refresher<P, V> {
  readonly #ctx: NamespaceContext<P, V>
  readonly #store: EntryStore<P, V>
  readonly #pipeline: LoadPipeline<P, V>
  #hotKeys: readonly HotKey[] = []

  constructor(ctx: NamespaceContext<P, V>, store: EntryStore<P, V>, pipeline: LoadPipeline<P, V>) {
    this.#ctx = ctx
    this.#store = store
    this.#pipeline = pipeline
  }

  /**
   * Refreshes `key` in the background, once per key in this process and, through the lock, once across processes:
   * if another process holds the lock it is refreshing already. Failures throttle the key (fail-safe).
   */
  refreshInBackground(key: string, params: P): void {
    const ctx = this.#ctx
    if (ctx.rt.closed || ctx.flights.has(key) || ctx.throttle.isThrottled(key)) return
    if (ctx.load === undefined && ctx.loadMany === undefined) {
      // Nothing to load from: a suspect entry (a bus outage) is revalidated by reading L2 again.
      this.#revalidateFromL2(key, params)
      return
    }
    ctx.counters.refreshes++
    ctx.flights.startRefresh(
      key,
      ctx.fence.open(),
      (flight) => this.#refresh(key, params, flight.token),
      (failed) => {
        if (failed) ctx.throttle.throttle(key)
      },
    )
  }

  async #refresh(key: string, params: P, token: number): Promise<V | undefined> {
    const { lock, generation } = this.#ctx
    let holder: LockHolder | undefined
    if (lock !== undefined && generation.known) {
      const acquired = await lock.acquire(key)
      if (isHeld(acquired)) return undefined
      if (acquired !== 'unavailable') holder = acquired
    }
    // Another process may have refreshed it just before we took the lock.
    const current = await this.#store.readL2(key)
    if (current !== undefined && this.#ctx.clock.now() < refreshAt(current.entry, this.#ctx.options)) {
      await holder?.release()
      this.#store.fillFromL2(params, key, current, token)
      return current.entry.value as V
    }
    return this.#pipeline.loadAndStore(key, params, { token }, undefined, holder)
  }

  /** A suspect L1 entry in a namespace without a loader: replaced by L2's copy, or dropped when L2 has none. */
  #revalidateFromL2(key: string, params: P): void {
    const ctx = this.#ctx
    const token = ctx.fence.open()
    const read = this.#store.readL2(key)
    if (read === undefined) return
    ctx.rt.background(
      read.then((stored) => {
        if (stored !== undefined) this.#store.fillFromL2(params, key, stored, token)
        else if (ctx.fence.mayFill(token, key, NO_TAGS, false)) this.#store.l1Delete(params)
      }),
    )
  }

  /** The hottest keys as of the last sweep (empty without `hotKeys` or L1). */
  hotKeys(): readonly HotKey[] {
    return this.#hotKeys
  }

  /** Every hot-keys interval: rank this namespace's L1 entries by decaying reads, refresh the hottest before expiry. */
  sweepHotKeys(): void {
    const ctx = this.#ctx
    const config = ctx.options.hotKeys
    if (config === false || ctx.rt.closed) return
    const now = ctx.clock.now()
    if (ctx.l1 === undefined) return
    const nodes = [...ctx.l1.nodes()]
    nodes.sort((a, b) => b.hits - a.hits)
    const top = nodes.slice(0, config.track).filter((n) => n.hits > 0)
    this.#hotKeys = Object.freeze(top.map((n) => Object.freeze({ key: n.key, score: n.hits })))
    if (config.refresh) {
      for (const node of top) {
        if (ctx.flights.refreshCount >= config.concurrency) break
        // Due within the next two intervals: refresh now, so a hot key is never read cold.
        if (node.value.freshUntil - now <= 2 * config.intervalMs)
          this.refreshInBackground(node.key, node.params as P)
      }
    }
    for (const node of nodes) node.hits = Math.floor(node.hits / 2)
  }
}

/** The time after which a read of `entry` triggers a background refresh: refresh-ahead, else its freshness end. */
export function refreshAt(entry: Entry, options: ResolvedNamespaceOptions): number {
  const fraction = options.refreshAhead
  if (fraction >= 1) return entry.freshUntil
  return entry.createdAt + fraction * (entry.freshUntil - entry.createdAt)
}
