// The host tier (`createCache({ host })`): copies of L2 entries in a store the processes of one host share (the
// disk store), read after L1 and before L2, so that a process's L1 miss costs a local read instead of a round trip
// when another process of the host read or loaded the entry first.
//
// Invariants:
// - A host copy is never the only copy: it holds the very bytes of an L2 entry (or of a value just stored there
//   through the fence), so losing it, or the whole host store, only costs an L2 read.
// - A copy lives no longer than its entry is fresh, nor than the namespace's L1 copies may (`l1TtlMs`, which a
//   bounded namespace caps to its staleness bound, and a strong one sets to 0: strong namespaces keep no copy). A
//   host copy is an L1 copy that the host's processes share, and it keeps L1's promise.
// - Every invalidation this process announces or receives drops the host copies it names (by key, through the
//   copies' host tag sets, or the namespace's whole prefix), and so does a bus outage. Each process of the host
//   receives each message, so a copy put by a process that had not yet seen an invalidation is dropped when that
//   process sees it: its put and its drop run in order, as writes of one process to the store do.
// - The host store failing is never a read failure: a failed host read is a host miss (counted in the cache's
//   `stats().host.errors`),
//   and the read goes on to L2.
import type { Invalidation } from '../bus/wire.js'
import type { L2Store } from '../tiers/l2-store.js'

/** Host tag-set members deleted per scan step when a tag is invalidated. */
const SCAN_COUNT = 500

export class HostTier {
  readonly store: L2Store
  /** Host calls that failed (each a host miss, or a copy not put or not dropped). */
  errors = 0

  constructor(store: L2Store) {
    this.store = store
  }

  #onError(): void {
    this.errors++
  }

  /**
   * The copies of `keys`, null where there is none; all null when the host store fails, throws, or answers
   * something else than bytes or null for each key (a custom store's bug). Never rejects.
   */
  getMany(keys: readonly string[]): Promise<(Uint8Array | null)[]> {
    const failed = () => {
      this.#onError()
      return keys.map(() => null)
    }
    let answer: Promise<(Uint8Array | null)[]>
    try {
      answer = Promise.resolve(this.store.getMany(keys))
    } catch {
      return Promise.resolve(failed())
    }
    return answer.then((values) => (answers(values, keys.length) ? values : failed()), failed)
  }

  /**
   * Puts a copy for `ttlMs`, after adding its key to its tags' host sets (so a tag invalidation cannot miss a copy
   * that landed). Never rejects.
   */
  put(key: string, bytes: Uint8Array, ttlMs: number, tagSets: readonly string[]): Promise<void> {
    const ttl = Math.max(1, Math.floor(ttlMs))
    return Promise.all(tagSets.map((set) => this.store.addToSet(set, key, ttl)))
      .then(() => this.store.set(key, bytes, ttl))
      .catch(() => this.#onError())
  }

  /** Drops what `invalidation` names of a namespace whose keys start with `prefix`. Never rejects. */
  async drop(prefix: string, invalidation: Invalidation | 'missed'): Promise<void> {
    try {
      if (invalidation === 'missed' || invalidation.kind === 'namespace') {
        await this.#deletePrefix(prefix)
      } else if (invalidation.kind === 'keys') {
        await this.store.delete(invalidation.keys)
      } else {
        for (const tag of invalidation.tags) await this.#dropSet(hostTagSet(prefix, tag))
      }
    } catch {
      this.#onError()
    }
  }

  async #dropSet(set: string): Promise<void> {
    let cursor = '0'
    const members: string[] = []
    do {
      const step = await this.store.scanSet(set, cursor, SCAN_COUNT)
      members.push(...step.members)
      cursor = step.cursor
    } while (cursor !== '0')
    await this.store.delete([...members, set])
  }

  async #deletePrefix(prefix: string): Promise<void> {
    const pattern = prefix.replace(/[*?[\]\\]/g, '\\$&') + '*'
    let cursor = '0'
    do {
      const step = await this.store.scan(pattern, cursor, SCAN_COUNT)
      if (step.keys.length > 0) await this.store.delete(step.keys)
      cursor = step.cursor
    } while (cursor !== '0')
  }
}

/** The host set of the copies carrying `tag` in the namespace of `prefix` (under the prefix: a clear drops it). */
export function hostTagSet(prefix: string, tag: string): string {
  return `${prefix}#host-tag:${tag}`
}

/** Whether a host store's `getMany` answered bytes or null for each of `count` keys. */
function answers(values: unknown, count: number): values is (Uint8Array | null)[] {
  return (
    Array.isArray(values) &&
    values.length === count &&
    values.every((value) => value === null || value instanceof Uint8Array)
  )
}
