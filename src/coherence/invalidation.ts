// coherence/: how processes stay in step. This file: invalidations to and from the other processes (the bus),
// `invalidateAll()`, and forgetting what this process holds. The fences that keep old loads out of the tiers are
// in fence.ts, the namespace's generation in generation.ts, tags in tags.ts.
//
// Invariants:
// - An invalidation from another process drops what it names from L1 and fences the loads of it under way here,
//   so none of them fills L1 with an older value afterwards.
// - Writes await their announcement: when a write resolves, the other processes were told, or it rejected with
//   InvalidationNotSentError (after one retry), never silently.
// - After a bus outage, L1 entries are kept as suspects (revalidated on their next read, still a fail-safe
//   fallback), not dropped, unless the namespace has no stale window.
// - Forgetting everything fences every load under way: a clear, a generation change or close leaves nothing from
//   before it in L1.
// - An invalidateAll() whose INCR timed out is settled once Redis answers: if the INCR ran after all, the new
//   generation is adopted and announced, so no process stays on the generation it left.
import { setTimeout as sleep } from 'node:timers/promises'
import type { Invalidation } from '../bus/wire.js'
import { InvalidationNotSentError, L2TimeoutError, RegionOutboxError } from '../errors.js'
import { relayedOf } from '../regions/outbox-wire.js'
import type { RegionView } from '../regions/region-relay.js'
import type { NamespaceContext } from '../namespace/context.js'
import type { Tags } from './tags.js'

/** First wait before a timed-out invalidateAll() reads the generation again; doubled up to the second. */
const SETTLE_FIRST_MS = 100
const SETTLE_MAX_MS = 2_000

/**
 * Drops the host tier's copies an invalidation names (in the background: the bus handler is synchronous; close()
 * waits for it).
 */
function dropHostCopies<P, V>(ctx: NamespaceContext<P, V>, invalidation: Invalidation | 'missed'): void {
  const host = ctx.rt.host
  if (host !== undefined) ctx.rt.background(host.drop(ctx.prefix, invalidation))
}

/** Writes retry a failed invalidation announcement once before reporting it. */
const PUBLISH_ATTEMPTS = 2

export class Invalidator<P, V> {
  readonly #ctx: NamespaceContext<P, V>
  readonly #tags: Tags<P, V>

  constructor(ctx: NamespaceContext<P, V>, tags: Tags<P, V>) {
    this.#ctx = ctx
    this.#tags = tags
    ctx.generation.onRestored = (generation, restored) => this.#restored(generation, restored)
  }

  /**
   * A generation read of this process found Redis restored (another server id next to the generation) and raised
   * the generation, which this process already uses: says so, and announces it to the other processes, which
   * would otherwise read it only on their next generation read. Not relayed: another region's Redis was not
   * restored. An announcement that fails is not retried: every process reads the generation again on reconnecting.
   */
  #restored(generation: number, restored: { readonly from: string; readonly to: string }): void {
    const ctx = this.#ctx
    ctx.counters.l2Restores++
    ctx.rt.logger.warn(
      {
        service: ctx.rt.service,
        namespace: ctx.name,
        generation,
        serverBefore: restored.from,
        serverNow: restored.to,
      },
      `stratacache: Redis now answers as another server (run_id ${restored.from} before, ${restored.to} now): it ` +
        'was restarted from a snapshot or a replica took over, so its entries may be older than writes made since. ' +
        `Namespace "${ctx.name}" moved to generation ${generation}: entries stored before are not read again, and ` +
        'values load from the source. Counted in stats().l2Restores.',
    )
    ctx.rt.background(
      broadcast(
        ctx,
        { kind: 'namespace', namespace: ctx.name, generation },
        'the invalidation of every entry',
        false,
      ).catch(() => undefined),
    )
  }

  /**
   * What the bus delivers for this namespace: another process's invalidation, 'missed' (the bus was down) or
   * 'l2-ready' (the L2 connection is ready again).
   */
  receive(invalidation: Invalidation | 'missed' | 'l2-ready' | 'deaf'): void {
    const generation = this.#ctx.generation
    if (invalidation === 'deaf') {
      // Announcements of values landing cannot reach lock waiters until the bus is back.
      this.#ctx.lock?.hearing(false)
      return
    }
    if (invalidation === 'l2-ready') {
      // Read again even when known: the connection may now reach a server restored from a snapshot, or a promoted
      // replica, whose entries are older than what was served (the read checks, generation.ts).
      void generation.read()
      return
    }
    if (invalidation !== 'missed') return this.apply(invalidation)
    // Deaf for a while: the generation may have moved on too, so read it again. Meanwhile the last known one
    // stays in use (turning L2 off until the answer came would drop the writes of loads in flight): a bump
    // missed during the outage is picked up within a round trip, and the suspect L1 entries revalidate.
    this.suspectEverything()
    void generation.read()
    // Announcements of values landing were lost too: lock waiters read L2 again rather than sleep out the lock.
    this.#ctx.lock?.hearing(true)
  }

  /** Another process wrote: drop what it names from L1, and stop any load of it here from caching an older value. */
  apply(invalidation: Invalidation): void {
    dropHostCopies(this.#ctx, invalidation)
    if (invalidation.kind === 'namespace') {
      this.forgetEverything()
      if (invalidation.generation !== undefined) this.#ctx.generation.announce(invalidation.generation)
      return
    }
    if (invalidation.kind === 'tags') {
      this.#tags.dropTagged(invalidation.tags)
      return
    }
    const l1 = this.#ctx.l1
    for (const key of invalidation.keys) {
      this.#ctx.fence.touchKey(key)
      this.cancelFlight(key)
      const node = l1?.byKey(key)
      if (node !== undefined) l1!.remove(node)
    }
  }

  /**
   * `ns.invalidateAll()`, once the cache is known open: a new generation, announced to every process (and, unless
   * `relay` is false because another region's invalidateAll brought it here, to the other regions).
   */
  async invalidateAll(relay = true): Promise<void> {
    const ctx = this.#ctx
    this.forgetEverything()
    const l2 = ctx.rt.l2
    if (l2 === undefined) return
    const before = ctx.generation.current()
    let generation: number
    try {
      generation = await l2.increment(ctx.generation.key)
    } catch (error) {
      ctx.counters.l2Errors++
      // Sent but not answered in time: it may still run when Redis answers (a pause, a slow link).
      if (error instanceof L2TimeoutError) ctx.rt.background(this.#settleGeneration(before, relay))
      throw error
    }
    await this.#adoptGeneration(generation, relay)
  }

  /** This process's new generation (bumped by it), then every process's: forward only. */
  async #adoptGeneration(generation: number, relay: boolean): Promise<void> {
    const ctx = this.#ctx
    ctx.generation.announce(generation)
    await broadcast(
      ctx,
      { kind: 'namespace', namespace: ctx.name, generation },
      'the invalidation of every entry',
      relay,
    )
  }

  /**
   * After an invalidateAll() whose INCR timed out: reads the generation once Redis answers (retrying with backoff
   * until the cache closes) and, if it moved past `before` and past the one adopted since, adopts and announces it.
   * Otherwise the INCR would run unannounced: processes started later would use the new generation and the running
   * ones the old, each missing the other's writes.
   */
  async #settleGeneration(before: number, relay: boolean): Promise<void> {
    const ctx = this.#ctx
    const l2 = ctx.rt.l2!
    for (let wait = SETTLE_FIRST_MS; !ctx.rt.closed; wait = Math.min(wait * 2, SETTLE_MAX_MS)) {
      await sleep(wait, undefined, { signal: ctx.rt.signal, ref: false }).catch(() => undefined)
      if (ctx.rt.closed) return
      let generation: number
      try {
        generation = await l2.getVersion(ctx.generation.key)
      } catch {
        continue
      }
      // Past the one in use, not merely past `before`: another process's invalidateAll, adopted meanwhile from the
      // bus, is not to be announced again (it would drop every L1 once more, and make peer regions bump again).
      if (generation > Math.max(before, ctx.generation.current())) {
        this.forgetEverything()
        await this.#adoptGeneration(generation, relay).catch(() => undefined)
      }
      return
    }
  }

  /**
   * The bus was down: invalidations may have been missed. Entries are kept but treated as stale: the next read
   * revalidates them (in the background with stale-while-revalidate, in the foreground otherwise), and they can
   * still answer if the source fails. Without a stale window they are dropped. Dropping them all would throw away
   * the fail-safe values just when Redis came back empty, and send every key to the source at once.
   */
  suspectEverything(): void {
    const l1 = this.#ctx.l1
    // Nothing cached here yet (the usual first subscription at start): nothing can be stale.
    if (l1 === undefined || l1.nodes().next().done === true) return
    if (this.#ctx.options.staleForMs === 0) {
      this.forgetEverything()
      return
    }
    for (const node of l1.nodes()) {
      node.suspect = true
      node.refreshAt = -Infinity
    }
  }

  /** Drops L1 and fences every load under way (a clear, a generation change, close). */
  forgetEverything(): void {
    this.#ctx.fence.touchAll()
    this.#ctx.flights.cancelAll()
    this.#ctx.throttle.clear()
    this.#ctx.l1?.clear()
  }

  /** Stops loads of `key` here from being joined; the fence already keeps their values out. */
  cancelFlight(key: string): void {
    this.#ctx.flights.cancel(key)
    this.#ctx.throttle.delete(key)
  }
}

/**
 * Tells the other processes to drop L1 entries. Awaited by writes, so peers were told when a write resolves; a
 * failed announcement is retried once, then logged and thrown (InvalidationNotSentError), never swallowed.
 * With regions, the same invalidation is appended to the region's outbox for the other regions (unless it came
 * from one: `relay` false), at the same time; a failed append rejects with RegionOutboxError.
 */
export async function broadcast<P, V>(
  ctx: NamespaceContext<P, V>,
  invalidation: Invalidation,
  what: string,
  relay = true,
): Promise<void> {
  // This process's own copies in the host tier first, awaited: a read after the write must not find the old one
  // there. The host's other processes drop them again when the message reaches them.
  await ctx.rt.host?.drop(ctx.prefix, invalidation)
  const bus = ctx.rt.bus
  if (bus === undefined) return
  const regions = relay ? ctx.rt.regions : undefined
  const appended = regions === undefined ? undefined : appendToOutbox(ctx, regions, invalidation)
  let error: unknown
  for (let attempt = 0; attempt < PUBLISH_ATTEMPTS; attempt++) {
    error = await bus.publish(invalidation)
    if (error === undefined) break
  }
  const outboxError = await appended
  if (error !== undefined) {
    ctx.rt.logger.warn(
      { service: ctx.rt.service, namespace: ctx.name, kind: invalidation.kind },
      'stratacache: an invalidation could not be announced; other processes may serve their old L1 copies until they expire',
    )
    throw new InvalidationNotSentError(ctx.name, what, { cause: error })
  }
  if (outboxError !== undefined) {
    ctx.rt.logger.warn(
      { service: ctx.rt.service, namespace: ctx.name, kind: invalidation.kind },
      "stratacache: an invalidation could not be appended to the region's outbox; other regions may serve the old value until it expires",
    )
    throw new RegionOutboxError(ctx.name, what, regions!.region, { cause: outboxError })
  }
}

/** Appends `invalidation` to the region's outbox, its keys made relative. Resolves to the error, never rejects. */
async function appendToOutbox<P, V>(
  ctx: NamespaceContext<P, V>,
  regions: RegionView,
  invalidation: Invalidation,
): Promise<unknown> {
  const relative: string[] = []
  if (invalidation.kind === 'keys') {
    for (const key of invalidation.keys) {
      // A key of another generation than the current one: invalidateAll() ran meanwhile and was relayed itself.
      const text = ctx.keys.relativeKey(key)
      if (text !== undefined) relative.push(text)
    }
    if (relative.length === 0) return undefined
  }
  try {
    await regions.append(relayedOf(invalidation, relative))
    return undefined
  } catch (error) {
    return error ?? new Error('append failed')
  }
}
