// The L2 gets of one tick, sent as one getMany (one MGET): at 100 concurrent readers, one command instead of 100
// costs node-redis, the guard and Redis far less per key (docs/benchmarks.md, "The L2 hit, coalesced").
//
// Invariants:
// - A get is sent no later than the end of the tick it was issued in (process.nextTick: from inside a microtask,
//   once the microtasks queued so far have run, so a wave of readers resumed by one reply goes together), before
//   node-redis writes to its socket (setImmediate): coalescing adds no wait a reader could notice. A read is never
//   older than its get call (a strong read relies on this). `flush()` sends at once (the cache is closing).
// - A tick's first get alone is sent as a get: a lone reader's command is the one it would send anyway.
// - At most `MAX_COALESCED_GETS` keys per command: a larger burst is split, so no one reply grows without bound.
// - One fate per command: the guard's timeout, breaker verdict or failure of a getMany settles every get in it.
//   With `groupOf` (a Redis Cluster: the key's slot), a command holds one group's keys only, so a master that
//   fails fails only the gets of its own slots.

/** Keys per getMany at most; a tick with more gets sends several. */
export const MAX_COALESCED_GETS = 64

/** Where a get answers: its bytes (null for none) or its failure. Neither method may throw. */
export interface GetReply {
  resolve(bytes: Uint8Array | null): void
  reject(error: Error): void
}

/** The gets of one command under way: each key's reply at the same index. */
class Batch {
  readonly keys: string[] = []
  readonly replies: GetReply[] = []

  resolveAll(values: readonly (Uint8Array | null | undefined)[]): void {
    const replies = this.replies
    for (let i = 0; i < replies.length; i++) replies[i]!.resolve(values[i] ?? null)
  }

  rejectAll(error: Error): void {
    for (const reply of this.replies) reply.reject(error)
  }

  /** `resolveAll`, as the settler of the batch's command (L2Guard). */
  resolve(values: readonly (Uint8Array | null | undefined)[]): void {
    this.resolveAll(values)
  }

  /** `rejectAll`, as the settler of the batch's command (L2Guard). */
  reject(error: Error): void {
    this.rejectAll(error)
  }
}

/**
 * How the guard sends a batch: `one` for a lone key, `many` for more; each settles through the given callbacks,
 * which never throw (the cache's own catch what they run).
 */
export interface GetSender {
  one(key: string, reply: GetReply): void
  many(keys: string[], batch: Batch): void
}

export type { Batch as CoalescedBatch }

export class CoalescedGets {
  readonly #sender: GetSender
  readonly #maxKeys: number
  readonly #groupOf: ((key: string) => number) | undefined
  /** Without groups: the batch still taking gets in this tick; undefined once sent. */
  #open: Batch | undefined
  /** With groups: each group's batch still taking gets in this tick. */
  readonly #openByGroup = new Map<number, Batch>()

  /**
   * @param groupOf the group of a key (a cluster slot): a command holds one group's keys. Absent: any keys.
   */
  constructor(sender: GetSender, maxKeys = MAX_COALESCED_GETS, groupOf?: (key: string) => number) {
    this.#sender = sender
    this.#maxKeys = maxKeys
    this.#groupOf = groupOf
  }

  get(key: string): Promise<Uint8Array | null> {
    return new Promise<Uint8Array | null>((resolve, reject) => this.read(key, { resolve, reject }))
  }

  /**
   * `get`, answering through `reply` instead of a promise of its own: the L2 hit path's read, one promise and one
   * microtask less per get (the reader's flight is its own reply: read/reader.ts).
   */
  read(key: string, reply: GetReply): void {
    const group = this.#groupOf?.(key)
    const batch = group === undefined ? this.#openBatch() : this.#openGroupBatch(group)
    batch.keys.push(key)
    batch.replies.push(reply)
    if (batch.keys.length >= this.#maxKeys) {
      // Full: sent now; the next get of this tick opens another (and schedules its own send).
      if (group === undefined) this.#open = undefined
      else this.#openByGroup.delete(group)
      this.#send(batch)
    }
  }

  /** The batch taking this tick's gets; the tick's first get opens it and schedules its send. */
  #openBatch(): Batch {
    if (this.#open !== undefined) return this.#open
    process.nextTick(this.#sendOpen)
    return (this.#open = new Batch())
  }

  /** `#openBatch` for one group's gets (one send at the tick's end serves every group). */
  #openGroupBatch(group: number): Batch {
    let batch = this.#openByGroup.get(group)
    if (batch === undefined) {
      if (this.#openByGroup.size === 0) process.nextTick(this.#sendOpen)
      batch = new Batch()
      this.#openByGroup.set(group, batch)
    }
    return batch
  }

  /** Sends what is open now, without waiting for the tick's end: the cache is closing (L2Guard.close). */
  flush(): void {
    this.#sendOpen()
  }

  /**
   * The tick's end: the open batches go. A batch sent when full left nothing open, or a newer batch that scheduled
   * a send of its own (which then finds nothing).
   */
  readonly #sendOpen = (): void => {
    const batch = this.#open
    if (batch !== undefined) {
      this.#open = undefined
      this.#send(batch)
    }
    if (this.#openByGroup.size === 0) return
    const batches = [...this.#openByGroup.values()]
    this.#openByGroup.clear()
    for (const each of batches) this.#send(each)
  }

  #send(batch: Batch): void {
    if (batch.keys.length === 1) this.#sender.one(batch.keys[0]!, batch.replies[0]!)
    else this.#sender.many(batch.keys, batch)
  }
}
