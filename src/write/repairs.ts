// write/: repairs. A change of an entry (`set`, `write`, `delete`) whose L2 step or announcement failed rejects, but
// the old value may still be in L2 and in the other processes' L1, where it would be served for its whole TTL. The
// namespace remembers the key and invalidates it again (version bump, delete, announcement) once Redis answers.
//
// Invariants:
// - An invalidation is never wrong, only a miss: a repair may drop a newer value, never keep an older one. A later
//   change of the key that succeeds did all a repair would, so it ends the repair (`settled`).
// - A change that fails while a repair pass runs is repaired by a later pass: each failure is remembered as its own
//   (compared by identity), and a failure during a whole-namespace pass is kept for the next pass, not counted done.
// - `repairsPending` is derived from what is remembered (`#count`), never adjusted by hand, so it cannot drift.
// - Bounded: past `MAX_PENDING_REPAIRS` keys the namespace invalidates everything (invalidateAll) once Redis
//   answers, instead of each key. The keys remembered so far stay remembered (and distrusted, below); the others
//   are only counted.
// - Until then this process reads a remembered key from its source, not from L2 (storage/entry-store.ts asks
//   `has` on every L2 read): the writer reads its own write even while Redis answers reads but refuses writes.
// - Nothing waits for a repair: it runs on a timer, with backoff, until it succeeds or the cache closes. A pass
//   stops at the first key Redis did not answer for (down, slow, circuit open), and goes past a key Redis refused
//   with an error reply (that key stays pending). At close, one last pass within `CLOSE_PASS_MS`.
import { setTimeout as sleep } from 'node:timers/promises'
import { L2Error } from '../errors.js'
import type { NamespaceContext } from '../namespace/context.js'

/** Keys a namespace remembers for repair; past it, the next repair invalidates the whole namespace. */
export const MAX_PENDING_REPAIRS = 10_000
/** The first repair attempt after a failure, then doubling up to `REPAIR_MAX_MS` while Redis does not answer. */
export const REPAIR_FIRST_MS = 250
const REPAIR_MAX_MS = 5_000
/** How long the last pass at close may take: a shutdown must not wait on thousands of round trips. */
export const CLOSE_PASS_MS = 1_000

/** How a namespace repairs: one key (as `delete` does), or all of them (as `invalidateAll` does). */
export interface RepairActions<P> {
  key(params: P): Promise<void>
  all(): Promise<void>
}

/** One remembered failure: a later failure of the same key replaces it, so a pass under way cannot erase it. */
interface Pending<P> {
  readonly params: P
}

export class Repairs<P, V> {
  readonly #ctx: NamespaceContext<P, V>
  readonly #actions: RepairActions<P>
  readonly #keys = new Map<string, Pending<P>>()
  /** Failures past the bound not remembered by key, for the next whole-namespace pass. */
  #unkeyed = 0
  /** A whole-namespace pass is due: the bound was passed. */
  #whole = false
  #running: Promise<void> | undefined
  #waitMs = REPAIR_FIRST_MS
  /** Aborted at close: stops the wait before the next attempt, and a pass under way after its current key. */
  readonly #stop = new AbortController()

  constructor(ctx: NamespaceContext<P, V>, actions: RepairActions<P>) {
    this.#ctx = ctx
    this.#actions = actions
    ctx.rt.beforeClose(() => this.#close())
  }

  /** Changes whose repair is pending. */
  get pending(): number {
    return this.#ctx.counters.repairsPending
  }

  /**
   * Whether `key` may still hold, in L2, the value a failed change replaced (its repair is pending). The question
   * of every L2 read: a lookup in a map that is empty but after a failed write.
   */
  has(key: string): boolean {
    return this.#keys.has(key)
  }

  /** The pending failure of `key`, if any: what `settled` compares with once a change of it succeeds. */
  peek(key: string): object | undefined {
    return this.#keys.get(key)
  }

  /**
   * A change of `key` succeeded (version bumped, L2 written or deleted, announced): a repair of a failure remembered
   * before it started (`before`, from `peek`) would only drop its value again. A failure since is kept.
   */
  settled(key: string, before: object | undefined): void {
    if (before === undefined || this.#keys.get(key) !== before) return
    this.#keys.delete(key)
    this.#ctx.counters.repairsDone++
    this.#count()
  }

  /** The change of `key` (for `params`) failed in L2 or in its announcement: invalidate it again later. */
  add(key: string, params: P): void {
    const ctx = this.#ctx
    if (ctx.rt.closed) return
    ctx.counters.repairsQueued++
    if (this.#keys.has(key) || this.#keys.size < MAX_PENDING_REPAIRS) {
      this.#keys.set(key, { params })
    } else {
      this.#unkeyed++
      if (!this.#whole) {
        this.#whole = true
        ctx.rt.logger.warn(
          { service: ctx.rt.service, namespace: ctx.name },
          `stratacache: more than ${MAX_PENDING_REPAIRS} changes did not reach Redis; once it answers, every entry ` +
            'of the namespace is invalidated (invalidateAll) instead of each key',
        )
      }
    }
    this.#count()
    if (this.#running === undefined) {
      ctx.rt.logger.warn(
        { service: ctx.rt.service, namespace: ctx.name, key },
        'stratacache: a change did not reach Redis or the other processes (the call rejected); its key is ' +
          'invalidated again once Redis answers, until then other processes may serve the old value ' +
          '(stats().repairsPending)',
      )
      this.#running = this.#loop()
      ctx.rt.background(this.#running)
    }
  }

  #count(): void {
    this.#ctx.counters.repairsPending = this.#keys.size + this.#unkeyed
  }

  /** Attempts with backoff until nothing is pending, or the cache closes. */
  async #loop(): Promise<void> {
    const ctx = this.#ctx
    let repaired = 0
    try {
      while (this.pending > 0) {
        await sleep(this.#waitMs, undefined, { signal: this.#stop.signal, ref: false }).catch(() => undefined)
        if (this.#stop.signal.aborted) return
        repaired += await this.#pass(Infinity)
        this.#waitMs = this.pending === 0 ? REPAIR_FIRST_MS : Math.min(this.#waitMs * 2, REPAIR_MAX_MS)
      }
      ctx.rt.logger.info(
        { service: ctx.rt.service, namespace: ctx.name, repaired },
        `stratacache: Redis answers again; ${repaired} ${repaired === 1 ? 'change that had not reached it was' : 'changes that had not reached it were'} ` +
          'repaired (their keys invalidated in every process)',
      )
    } finally {
      this.#running = undefined
    }
  }

  /**
   * One pass, until `deadline` (performance.now()): the whole namespace if the bound was passed, else each key.
   * Resolves to the changes repaired.
   */
  async #pass(deadline: number): Promise<number> {
    const counters = this.#ctx.counters
    if (this.#whole) {
      // What this pass covers: the failures so far. Those that come while it runs stay for the next pass.
      const covered = [...this.#keys]
      const unkeyed = this.#unkeyed
      try {
        await this.#actions.all()
      } catch {
        return 0
      }
      let done = unkeyed
      this.#unkeyed -= unkeyed
      this.#whole = this.#unkeyed > 0
      for (const [key, pending] of covered) {
        if (this.#keys.get(key) !== pending) continue
        this.#keys.delete(key)
        done++
      }
      counters.repairsDone += done
      this.#count()
      return done
    }
    let done = 0
    for (const [key, pending] of [...this.#keys]) {
      if (performance.now() > deadline || (deadline === Infinity && this.#stop.signal.aborted)) break
      if (this.#keys.get(key) !== pending) continue // settled, or failed again since the pass began
      try {
        await this.#actions.key(pending.params)
      } catch (error) {
        // Redis answered with an error for this key (a wrong type, a refused command): the others may still go.
        if (error instanceof L2Error && error.reply !== undefined) continue
        break
      }
      if (this.#keys.get(key) !== pending) continue // a failure of the key while this ran: still to repair
      this.#keys.delete(key)
      counters.repairsDone++
      done++
    }
    this.#count()
    return done
  }

  /** At close: one last pass within `CLOSE_PASS_MS`, then what is left is said. */
  async #close(): Promise<void> {
    this.#stop.abort()
    await this.#running
    if (this.pending > 0) await this.#pass(performance.now() + CLOSE_PASS_MS)
    const ctx = this.#ctx
    if (this.pending === 0) return
    ctx.rt.logger.warn(
      { service: ctx.rt.service, namespace: ctx.name, pending: this.pending },
      `stratacache: closed with ${this.pending} ${this.pending === 1 ? 'change' : 'changes'} that did not reach ` +
        'Redis: other processes may serve the old values until they expire',
    )
  }
}
