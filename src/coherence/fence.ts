// The fences: "may this loaded value still be stored?", answered in one place for every path that stores a load.
//
// Invariants this file keeps (each has a regression test on a real Redis):
// - A value whose load started before a write, delete, tag invalidation, clear or generation change of its entry
//   is never put in this process's L1 afterwards (LocalFence, for events this process saw: its own writes and the
//   bus's messages).
// - Nor in L2 (the L2 fence: the entry's version and the namespace's invalidation marks, read before the load and
//   checked by the store script atomically), whichever process invalidated it.
// - A load whose fence could not be read is never written to L2: its callers get the value, L2 keeps what it has.

/**
 * Epochs of the invalidations this process saw, per key and per tag. A flight takes a token (the epoch) when it
 * starts; anything that touches its key, one of its tags, or the whole namespace afterwards bumps the epoch past it,
 * and `mayFill` says no. A write in progress keeps its key fenced until it ends: a read that starts during the write
 * may read the old value in L2 before the write's L2 step lands.
 */
export class LocalFence {
  /** The oldest token still running work holds (the flight registry's answer), for pruning. */
  readonly #oldestToken: (current: number) => number
  /** Entries past which the maps are pruned; grows with the work in flight so pruning stays amortised O(1). */
  #pruneAt = PRUNE_AT
  #epoch = 0
  /** The last epoch at which each key was written or invalidated (pruned, see `prune`). */
  readonly #keys = new Map<string, number>()
  /** Writes of each key still in progress. */
  readonly #writing = new Map<string, number>()
  readonly #tags = new Map<string, number>()
  /** The last namespace-wide invalidation (clear, invalidateAll, a generation change, close). */
  #all = 0
  /** The last tag invalidation of any tag: negative entries carry no tags, so every tag invalidation reaches them. */
  #anyTag = 0

  /** @param oldestToken the oldest token held by work still running, or `current` when none is. */
  constructor(oldestToken: (current: number) => number = (current) => current) {
    this.#oldestToken = oldestToken
  }

  /** A token for work starting now. */
  open(): number {
    return this.#epoch
  }

  /** A write of `key` starts: loads already under way, and those starting until `endWrite`, are fenced. */
  beginWrite(key: string): void {
    this.#writing.set(key, (this.#writing.get(key) ?? 0) + 1)
    this.#keys.set(key, ++this.#epoch)
    this.#bound()
  }

  endWrite(key: string): void {
    const left = (this.#writing.get(key) ?? 1) - 1
    if (left === 0) this.#writing.delete(key)
    else this.#writing.set(key, left)
    this.#keys.set(key, ++this.#epoch)
    this.#bound()
  }

  /** Another process wrote `key` (a bus message). */
  touchKey(key: string): void {
    this.#keys.set(key, ++this.#epoch)
    this.#bound()
  }

  touchTags(tags: readonly string[]): void {
    const epoch = ++this.#epoch
    for (const tag of tags) this.#tags.set(tag, epoch)
    this.#anyTag = epoch
    this.#bound()
  }

  touchAll(): void {
    this.#all = ++this.#epoch
  }

  /**
   * Whether a value loaded under `token` may still fill L1: nothing touched its key, its tags (any tag, for a
   * negative entry) or the namespace since, and no write of its key is in progress.
   */
  mayFill(token: number, key: string, tags: readonly string[], negative: boolean): boolean {
    if (this.#all > token || this.#writing.has(key)) return false
    const touched = this.#keys.get(key)
    if (touched !== undefined && touched > token) return false
    if (negative) return this.#anyTag <= token
    for (const tag of tags) {
      const at = this.#tags.get(tag)
      if (at !== undefined && at > token) return false
    }
    return true
  }

  /**
   * Forgets epochs no live work can be fenced by: those at or below `oldestToken`, the oldest token still held (or
   * the current epoch when none is). Called as the maps grow, so they stay as large as the work in flight.
   */
  prune(oldestToken: number): void {
    for (const [key, epoch] of this.#keys) if (epoch <= oldestToken) this.#keys.delete(key)
    for (const [tag, epoch] of this.#tags) if (epoch <= oldestToken) this.#tags.delete(tag)
  }

  /** Entries kept (for the bound test). */
  get size(): number {
    return this.#keys.size + this.#tags.size
  }

  /** Keeps the maps as large as the work in flight needs: past a threshold, forgets what no running work can need. */
  #bound(): void {
    if (this.size <= this.#pruneAt) return
    this.prune(this.#oldestToken(this.#epoch))
    this.#pruneAt = Math.max(PRUNE_AT, 2 * this.size)
  }
}

/** Epochs kept before the first pruning. */
const PRUNE_AT = 1_024
