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
// - On a Redis Cluster the entries live on other nodes than the generation: after each read, every fence shard's
//   node is checked the same way (`L2Store.readOrigins`), in the background; a change found raises the
//   generation the same way. A node that comes back makes the bus report missed messages, hence a new read.
import type { L2Guard } from '../policies/l2-guard.js'
import type { GenerationRead, OriginRead, OriginRecord } from '../tiers/l2-store.js'

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
  /**
   * The fence shards' origin keys on a Redis Cluster (`FenceShard.origin`); empty on one node, and for a store
   * without the shards' restore check (`L2Guard.checksOrigins`).
   */
  readonly originKeys: readonly string[]
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
  /** The origin check under way (`#checkOrigins`), whether another was asked for meanwhile, and its retry. */
  #checking: Promise<void> | undefined
  #checkAgain = false
  #originRetry: ReturnType<typeof setTimeout> | undefined
  /** Checks in a row that left shards unchecked: the retry's backoff. */
  #originFailures = 0

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
        if (this.#host.originKeys.length > 0) this.#host.background(this.#checkOrigins(l2))
        // An announcement overtook the read: the answer may predate it. Read again (it is exact next time, unless
        // overtaken again).
        again = !exact
        return undefined
      },
      (error: unknown) => {
        this.#host.failed()
        // The shards are checked all the same (a cluster back before it is ready fails this read), and again later.
        if (this.#host.originKeys.length > 0) this.#host.background(this.#checkOrigins(l2))
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

  /**
   * The restore check of the nodes holding the entries (a Redis Cluster), one at a time: a raised generation is
   * adopted forward only, as an announcement is (another process may be ahead). While a shard's node does not
   * answer (down, or back before its cluster is ready), or the check fails, it is made again, from 250 ms to 30 s
   * apart; a read meanwhile restarts the wait.
   */
  #checkOrigins(l2: NonNullable<GenerationHost['l2']>): Promise<void> {
    clearTimeout(this.#originRetry)
    this.#originRetry = undefined
    if (this.#checking !== undefined) {
      this.#checkAgain = true
      return this.#checking
    }
    const checking = (async () => {
      let unchecked: number
      try {
        unchecked = await this.#checkOriginsOnce(l2)
      } catch {
        this.#host.failed()
        unchecked = this.#host.originKeys.length
      }
      this.#checking = undefined
      if (this.#host.closed) return
      if (this.#checkAgain) {
        this.#checkAgain = false
        this.#originFailures = 0
        this.#host.background(this.#checkOrigins(l2))
      } else if (unchecked > 0) {
        const delay = Math.min(30_000, 250 * 2 ** Math.min(this.#originFailures++, 7))
        this.#originRetry = setTimeout(() => {
          this.#originRetry = undefined
          if (!this.#host.closed) this.#host.background(this.#checkOrigins(l2))
        }, delay)
        this.#originRetry.unref()
      } else {
        this.#originFailures = 0
      }
    })()
    this.#checking = checking
    return checking
  }

  /**
   * One check. For each shard whose server changed (a run_id is new at each start of a server): a server that was
   * already running when the shard was recorded, while the recorded one still serves slots, received the slot from
   * it by a reshard, keys intact; any other change is a restore, raised for once across processes per change of
   * server (`<id before>><id now>`, the same whichever shard or check sees it); then the new ids are recorded, after
   * the raise. Separate L2 calls, so that a node that does not answer costs the first its timeout, never the result
   * of a raise. Resolves to the number of shards to check again.
   */
  async #checkOriginsOnce(l2: NonNullable<GenerationHost['l2']>): Promise<number> {
    const keys = this.#host.originKeys
    const reads = await l2.readOrigins(keys)
    let unchecked = 0
    const changed: { read: OriginRead; record: OriginRecord; moved: boolean }[] = []
    const records: OriginRecord[] = []
    reads.forEach((read, i) => {
      if (read === undefined) return void unchecked++
      // The same server, or one that will not say its id (no check).
      if (read === null || read.from === read.now) return
      const record = { key: keys[i]!, expected: read.recorded, now: read.now }
      // No id yet (a first check, or the data lost with a restart): nothing older came back.
      if (read.from === '') return void records.push(record)
      // Running before the record (1 s of margin: uptime counts seconds, and two servers' clocks differ a little).
      const moved = read.recordedAtMs !== undefined && read.startedAtMs + 1_000 < read.recordedAtMs
      changed.push({ read, record, moved })
    })
    const serving = changed.some((change) => change.moved) ? await l2.serverIds() : []
    const restores = new Map<string, { from: string; to: string }>()
    for (const { read, record, moved } of changed) {
      // Which servers serve slots now is unknown: neither a reshard nor a restore can be told, so check again.
      if (moved && serving === undefined) {
        unchecked++
        continue
      }
      records.push(record)
      // A reshard: recorded without a raise.
      if (moved && serving!.includes(read.from)) continue
      restores.set(`${read.from}>${read.now}`, { from: read.from, to: read.now })
    }
    if (restores.size > 0) {
      const { generation, raised } = await l2.raiseForRestores(this.key, this.#host.current(), [
        ...restores.keys(),
      ])
      if (this.#host.closed) return 0
      // Forward only, as an announcement: another process may be ahead.
      this.#apply(generation, false)
      if (raised) this.onRestored?.(generation, restores.values().next().value!)
    }
    await l2.recordOrigins(records)
    return unchecked
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
