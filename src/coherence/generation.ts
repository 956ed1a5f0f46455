// A namespace's generation: `invalidateAll()` bumps it in Redis (one INCR) and every key depends on it.
//
// Invariants:
// - Until the generation is known, reads skip L2 and writes to L2 wait for it (they would use keys of a
//   generation that may be over).
// - Announcements (the bus) only move a process forward. A read from Redis ("exact": the truth, even if lower,
//   after Redis lost its data) is applied as exact only if no announcement arrived while it was in flight;
//   otherwise it could take the process back to a generation another process just left, so it is applied
//   forward-only and the generation is read again.
// - Each read also checks that Redis was not restored from a snapshot or replaced by a promoted replica
//   (`L2Store.readGeneration`): its entries may then be older than what processes served and invalidated since,
//   so the read that finds it raises the generation past every one in use, and the process announces it.
import type { L2Guard } from '../policies/l2-guard.js'
import type { GenerationRead } from '../tiers/l2-store.js'

export interface GenerationHost {
  /** The L2 guard, or undefined without L2. */
  readonly l2: L2Guard | undefined
  readonly closed: boolean
  /** The generation this process uses now (the key schema's). */
  current(): number
  /** Adopts `generation`: forgets L1 and loads in flight (they belong to the other generation's keys). */
  change(generation: number): void
  /** An L2 error reading it (counted by the namespace). */
  failed(): void
  /** Tracks background work for close(). */
  background(work: Promise<unknown>): void
}

export class GenerationTracker {
  /** `service:namespace:vN#gen`: outside the namespace's key prefix, so `clear()` leaves it. */
  readonly key: string
  readonly #host: GenerationHost
  #known: boolean
  /** The read under way: resolves to its L2 error, or undefined once known. */
  #reading: Promise<unknown> | undefined
  /** Announcements applied so far: a read that saw this number change while in flight is not exact. */
  #announcements = 0
  /**
   * Told when a read of this process found Redis restored and raised the generation (already adopted here), so
   * that the process announces it and says so (coherence/invalidation.ts sets it).
   */
  onRestored: ((generation: number, restored: NonNullable<GenerationRead['restored']>) => void) | undefined

  constructor(key: string, host: GenerationHost) {
    this.key = key
    this.#host = host
    this.#known = host.l2 === undefined
  }

  /** The generation this process uses now. */
  current(): number {
    return this.#host.current()
  }

  /** Whether this process knows the generation (always, without L2). */
  get known(): boolean {
    return this.#known
  }

  /** Reads the generation from Redis, once at a time. Resolves to the L2 error when it could not. */
  read(): Promise<unknown> {
    if (this.#reading !== undefined) return this.#reading
    const l2 = this.#host.l2
    if (l2 === undefined || this.#host.closed) return Promise.resolve(undefined)
    const before = this.#announcements
    let again = false
    const reading = l2.readGeneration(this.key, this.#host.current()).then(
      ({ generation, restored }) => {
        const exact = this.#announcements === before
        this.#apply(generation, exact)
        if (restored !== undefined) this.onRestored?.(generation, restored)
        // An announcement overtook the read: the answer may predate it. Read again (it is exact next time, unless
        // overtaken again).
        again = !exact
        return undefined
      },
      (error: unknown) => {
        this.#host.failed()
        return error
      },
    )
    this.#reading = reading
    this.#host.background(
      reading.then(() => {
        if (this.#reading === reading) this.#reading = undefined
        if (again) void this.read()
      }),
    )
    return reading
  }

  /** A generation announced on the bus (or bumped by this process): only ever forward. */
  announce(generation: number): void {
    this.#announcements++
    this.#apply(generation, false)
  }

  /** For writes to L2: the generation, read now if need be. @throws the L2 error when it cannot be read. */
  async require(): Promise<void> {
    if (this.#known) return
    const error = await this.read()
    if (!this.#known) throw error instanceof Error ? error : new Error(String(error))
  }

  #apply(generation: number, exact: boolean): void {
    const current = this.#host.current()
    if (exact ? generation !== current : generation > current) this.#host.change(generation)
    this.#known = true
  }
}
