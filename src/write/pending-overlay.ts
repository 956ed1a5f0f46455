// Read-your-writes for write-behind: this process's queued writes by key, until the stream no longer holds them.

/** One queued write of a key: its stream id and value. */
interface Queued<V> {
  readonly id: string
  readonly value: V
}

/** Stream entries checked per round of a prune; a round mostly of entries still queued ends the prune. */
const CHECKS_PER_ROUND = 64

/**
 * This process's latest queued write per key, served to its reads until the source has it. Entries leave when
 * this process acknowledges the write itself ({@link forget}), when a read finds it gone from the stream
 * ({@link lookup}), or when {@link prune} finds another process flushed it. A prune checks as many entries as have
 * left the stream since the last one (so it keeps up with any write rate), plus at most one round of
 * {@link CHECKS_PER_ROUND} still queued: its Redis cost is bounded by the flushed writes, and the map holds at most
 * the writes still in the stream plus those flushed since the last prune.
 */
export class PendingOverlay<V> {
  /** By key; in the order entries were last queued or last checked, so a prune starts with the least recent. */
  readonly #entries = new Map<string, Queued<V>>()
  readonly #inStream: (id: string) => Promise<boolean>

  constructor(inStream: (id: string) => Promise<boolean>) {
    this.#inStream = inStream
  }

  get size(): number {
    return this.#entries.size
  }

  /** Records the write of `key` just queued as `id`: the latest one wins. */
  set(key: string, id: string, value: V): void {
    // Re-inserted so a prune reaches it last: the older entries are the likelier to be flushed.
    this.#entries.delete(key)
    this.#entries.set(key, { id, value })
  }

  /** This process's latest queued write of `key` as recorded, without asking whether the stream still holds it. */
  peek(key: string): Readonly<Queued<V>> | undefined {
    return this.#entries.get(key)
  }

  /** Forgets `key` if its latest queued write is `id` (this process acknowledged or dead-lettered it). */
  forget(key: string, id: string): void {
    if (this.#entries.get(key)?.id === id) this.#entries.delete(key)
  }

  /**
   * The latest queued write of `key` while the stream still holds it. When Redis cannot tell, the queued value is
   * the better answer.
   */
  async lookup(key: string): Promise<{ value: V } | undefined> {
    const queued = this.#entries.get(key)
    if (queued === undefined) return undefined
    let stillQueued = true
    try {
      stillQueued = await this.#inStream(queued.id)
    } catch {
      // Unknown: keep answering with the queued value.
    }
    if (stillQueued) return { value: queued.value }
    if (this.#entries.get(key) === queued) this.#entries.delete(key)
    return undefined
  }

  /**
   * Forgets the entries another process has flushed: checks them against the stream, least recently checked
   * first, a round of {@link CHECKS_PER_ROUND} at a time, and goes on while at least half of a round was gone (the
   * flushers keep up, the next ones are likely gone too). Each entry is checked at most once per prune.
   * @throws L2 errors: the entries not yet checked stay.
   */
  async prune(): Promise<void> {
    let unchecked = this.#entries.size
    while (unchecked > 0) {
      const round: [string, Queued<V>][] = []
      for (const entry of this.#entries) {
        if (round.length === Math.min(CHECKS_PER_ROUND, unchecked)) break
        round.push(entry)
      }
      unchecked -= round.length
      const present = await Promise.all(round.map(([, queued]) => this.#inStream(queued.id)))
      let gone = 0
      round.forEach(([key, queued], i) => {
        // Queued again meanwhile: the newer entry is already at the end, behind the unchecked ones.
        if (this.#entries.get(key) !== queued) return
        this.#entries.delete(key)
        // Still queued: to the end, so the next round (and the next prune) checks others first.
        if (present[i]) this.#entries.set(key, queued)
        else gone++
      })
      if (gone * 2 < round.length) return
    }
  }
}
