// The embedded L2: a store on local disk (LMDB), shared by every process of one host, with TTLs, a byte budget and
// eviction. Every operation that reads and then writes runs in one LMDB write transaction, so what the Redis stores
// do with Lua scripts (fences, locks, versions) holds across the processes of the host in the same way.
//
// Reads take a fresh snapshot per call (`#read`), so they see every commit acknowledged before them.
//
// Records (`entries`): key → [magic 0x53, type, expiresAt float64 LE (0: none), payload…]. A record that does not
// parse (foreign bytes, a future format) is a miss plus `stats().corruptReads`, never an exception: LMDB commits are
// atomic (copy-on-write pages, a robust write mutex), so a process killed mid-write leaves the last committed state.
// Set members live in `members` under [set, member]; the expiry index `expiry` under [expiresAt, key] feeds the
// periodic sweep and the eviction (entries closest to expiry go first, as Redis's `volatile-ttl`).
import { Buffer } from 'node:buffer'
import type { Database, Key, RootDatabase } from 'lmdb'
import { systemClock, type Clock } from '../core/clock.js'
import { compareStreamIds } from '../core/stream-id.js'
import { rejectUnknown, type OptionKeys, type OptionPlace } from '../core/known-options.js'
import { DiskStoreError, InvalidOptionError } from '../errors.js'
import type {
  L2Answer,
  L2Failure,
  L2Fence,
  L2FenceRead,
  L2Status,
  L2Store,
  L2StoreEvent,
  L2StoreStats,
  L2Write,
  LockAttempt,
  PendingQueueEntry,
  QueueEntry,
} from './l2-store.js'

export interface DiskStoreOptions {
  /**
   * Directory of the store's files (created if missing). Every process of the host that names the same directory
   * shares the same entries. Put it on a local disk (not NFS: LMDB's locks need one kernel).
   * @example '/var/cache/catalog'
   */
  path: string
  /**
   * Byte budget over the entries (keys, values, tag-set members, and a fixed overhead each). Past it, expired entries
   * go first, then the entries closest to expiry. Required: an unbounded cache fills the disk.
   * @example 256 * 1024 * 1024
   */
  maxBytes: number
  /** How often each process deletes a batch of expired entries, in ms. @default 10_000 */
  sweepEvery?: number
  /** How often a subscribed process looks for published messages (the invalidation bus on one host), in ms. @default 20 */
  pollEvery?: number
  /**
   * Wait for the disk to confirm each commit (fsync). Off by default: a cache loses nothing it cannot reload when
   * the machine crashes, and a process crash never loses a commit. On, a machine crash cannot damage the file.
   * @default false
   */
  durable?: boolean
  /** Time source for TTLs, in epoch milliseconds; every process of the host must use the same clock. @default Date.now */
  clock?: Clock
}

/** Every key of `DiskStoreOptions`, checked against the type by the compiler. */
const DISK_STORE_OPTION_KEYS = {
  path: true,
  maxBytes: true,
  sweepEvery: true,
  pollEvery: true,
  durable: true,
  clock: true,
} as const satisfies OptionKeys<DiskStoreOptions>
const DISK_STORE_PLACE: OptionPlace = { where: 'diskStore()', at: (path) => `diskStore.${path}` }

/**
 * Counters of one process's view of the store (`DiskStore.stats()`, also `cache.stats().l2.store` or
 * `.host.store`): `entries`, `bytes`, `evictions` and `expired` are the files', shared by every process of the host
 * (counted by any of them since the files were made); `corruptReads` and `tooLarge` are this process's.
 */
export type DiskStoreStats = L2StoreStats

/** The counters kept in the files, shared by every process of the host. */
type SharedCounts = Pick<L2StoreStats, 'entries' | 'bytes' | 'evictions' | 'expired'>
const NO_COUNTS: SharedCounts = { entries: 0, bytes: 0, evictions: 0, expired: 0 }

const MAGIC = 0x53
const STRING = 1
const SET = 2
const HEADER = 10
/** Accounted per entry and per set member on top of their bytes: B-tree node, expiry index, header. */
const ENTRY_OVERHEAD = 64
const MEMBER_OVERHEAD = 32
/** Published messages older than this are pruned: a subscriber that slept longer missed them (as with Redis). */
const BUS_RETENTION_MS = 60_000
const SWEEP_BATCH = 500
/** The fence epoch of every disk store: its versions and sequences live as long as its files. */
const DISK_EPOCH = 'disk'
/** Tag-set members checked for a gone entry on each add (the set stays bounded), as the Redis store does. */
const PRUNE_SAMPLE = 3
const MAX_ID = Number.MAX_SAFE_INTEGER
/** The longest key (or set name and member together) stored: LMDB's 1,978 bytes less room for index prefixes. */
const MAX_KEY_BYTES = 1_900
/** Above every member in a set's range (numbers sort before strings): two U+10FFFF, a noncharacter. */
const LAST_MEMBER = '\u{10FFFF}\u{10FFFF}'
const TOKEN_CHARACTERS = /^[A-Za-z0-9_-]*$/

interface StoredRecord {
  readonly type: number
  readonly expiresAt: number
  readonly payload: Buffer
}

/**
 * Creates the embedded L2 store for `createCache({ l2 })`: entries on local disk, shared by the processes of one
 * host.
 *
 * @example
 * import { diskStore } from 'stratacache/disk'
 * const cache = createCache({ service: 'catalog', l2: diskStore({ path: '/var/cache/catalog', maxBytes: 256 << 20 }) })
 */
export function diskStore(options: DiskStoreOptions): DiskStore {
  return new DiskStore(options)
}

/** An L2 store on LMDB files in one directory; see `diskStore`. */
export class DiskStore implements L2Store {
  readonly name = 'disk'
  readonly fenceShards = 1
  readonly address: string
  readonly maxBytes: number
  readonly #options: Required<Omit<DiskStoreOptions, 'clock'>>
  readonly #clock: Clock
  #status: L2Status = 'connecting'
  #listener: ((event: L2StoreEvent) => void) | undefined
  #root: RootDatabase | undefined
  #entries!: Database<Buffer, Key>
  #members!: Database<number, Key>
  #expiry!: Database<boolean, Key>
  #meta!: Database<unknown, Key>
  #queues!: Database<unknown, Key>
  #opening: Promise<void> | undefined
  #sweeper: ReturnType<typeof setInterval> | undefined
  #poller: ReturnType<typeof setInterval> | undefined
  readonly #channels = new Map<string, { last: number; listeners: ((message: string) => void)[] }>()
  readonly #inFlight = new Set<Promise<unknown>>()
  #corruptReads = 0
  #tooLarge = 0
  #warnedCorrupt = false
  /** The files' counters as read just before they were closed: what `stats()` reports once the store is closed. */
  #closedCounts: SharedCounts | undefined

  constructor(options: DiskStoreOptions) {
    if (options === null || typeof options !== 'object' || Array.isArray(options)) {
      throw new InvalidOptionError(
        'diskStore options',
        options,
        "an object such as { path: '/var/cache/app', maxBytes: 256 * 1024 * 1024 }",
      )
    }
    // Before any value: `sweepEvry` ignored would leave the sweep at its default without a word.
    rejectUnknown(options, DISK_STORE_OPTION_KEYS, DISK_STORE_PLACE)
    const { path, maxBytes, sweepEvery = 10_000, pollEvery = 20, durable = false, clock } = options
    if (typeof path !== 'string' || path.length === 0) {
      throw new InvalidOptionError(
        'diskStore.path',
        path,
        "a directory for the store's files, e.g. '/var/cache/app'",
      )
    }
    if (!Number.isSafeInteger(maxBytes) || maxBytes < 1) {
      throw new InvalidOptionError(
        'diskStore.maxBytes',
        maxBytes,
        'a positive whole number of bytes (an unbounded disk cache fills the disk), e.g. 256 * 1024 * 1024',
      )
    }
    for (const [name, value] of [
      ['sweepEvery', sweepEvery],
      ['pollEvery', pollEvery],
    ] as const) {
      if (!Number.isSafeInteger(value) || value < 1) {
        throw new InvalidOptionError(`diskStore.${name}`, value, 'a positive whole number of milliseconds')
      }
    }
    if (typeof durable !== 'boolean') {
      throw new InvalidOptionError('diskStore.durable', durable, 'true or false')
    }
    if (clock !== undefined && typeof clock?.now !== 'function') {
      throw new InvalidOptionError(
        'diskStore.clock',
        clock,
        'an object with a now() method returning epoch milliseconds',
      )
    }
    this.address = path
    this.maxBytes = maxBytes
    this.#options = { path, maxBytes, sweepEvery, pollEvery, durable }
    this.#clock = clock ?? systemClock
  }

  get status(): L2Status {
    return this.#status
  }

  onEvent(listener: (event: L2StoreEvent) => void): void {
    this.#listener = listener
  }

  /** Opens (or creates) the files. Rejects with a `DiskStoreError` (kind `OPEN_FAILED`) naming the path and why. */
  connect(): Promise<void> {
    this.#opening ??= this.#open()
    return this.#opening
  }

  async #open(): Promise<void> {
    if (this.#status === 'closed') throw new DiskStoreError('CLOSED', this.address, 'connect() after close()')
    let root: RootDatabase
    try {
      // Imported here so that `stratacache/disk` loads without lmdb until a store connects.
      const { open } = await import('lmdb')
      root = open({
        path: this.#options.path,
        // Address space, not disk: the file grows with use. Room for the budget plus B-tree and free-page slack.
        mapSize: Math.max(this.maxBytes * 4, 64 * 1024 * 1024),
        maxDbs: 8,
        noSync: !this.#options.durable,
        encoding: 'msgpack',
      })
      this.#entries = root.openDB<Buffer>({ name: 'entries', encoding: 'binary' })
      this.#members = root.openDB<number>({ name: 'members' })
      this.#expiry = root.openDB<boolean>({ name: 'expiry' })
      this.#meta = root.openDB({ name: 'meta' })
      this.#queues = root.openDB({ name: 'queues' })
      this.#root = root
    } catch (error) {
      const failure = new DiskStoreError('OPEN_FAILED', this.address, describeOpenError(error), {
        cause: error,
      })
      this.#listener?.({ type: 'error', error: failure })
      this.#opening = undefined
      throw failure
    }
    if ((this.#status as L2Status) === 'closed') {
      await root.close()
      throw new DiskStoreError('CLOSED', this.address, 'close() while connecting')
    }
    this.#sweeper = setInterval(() => void this.sweep().catch(() => {}), this.#options.sweepEvery).unref()
    this.#setStatus('ready')
  }

  async close(): Promise<void> {
    if (this.#status === 'closed') return
    this.#setStatus('closed')
    clearInterval(this.#sweeper)
    clearInterval(this.#poller)
    this.#channels.clear()
    await Promise.allSettled([...this.#inFlight])
    // Read once more while the files are open: a closed cache stays exported, and its scrapes call stats(). A
    // failed read must not fail close(): the counts then read as none.
    if (this.#root !== undefined) {
      try {
        this.#closedCounts = this.#sharedCounts()
      } catch {
        this.#closedCounts = NO_COUNTS
      }
    }
    await this.#root?.close()
  }

  describeFailure(error: unknown): L2Failure {
    const reason = error instanceof DiskStoreError ? error.kind : 'DISK'
    return {
      address: this.address,
      reason,
      summary: `cannot use the disk store at ${this.address} (${error instanceof Error ? error.message : String(error)})`,
      advice:
        'Check that the directory exists or can be created, is writable by this process, and is on a local disk',
      retryMs: undefined,
    }
  }

  errorReplyKind(error: unknown): string | undefined {
    // The store answered (as Redis does with an error reply): not an outage, so not counted by the circuit breaker.
    return error instanceof DiskStoreError && error.kind !== 'OPEN_FAILED' && error.kind !== 'CLOSED'
      ? error.kind
      : undefined
  }

  /** This process's counters and the files' shared ones; never throws (after close(): the last shared counts). */
  stats(): DiskStoreStats {
    return {
      ...(this.#closedCounts ?? (this.#root === undefined ? NO_COUNTS : this.#sharedCounts())),
      maxBytes: this.maxBytes,
      corruptReads: this.#corruptReads,
      tooLarge: this.#tooLarge,
    }
  }

  #sharedCounts(): SharedCounts {
    return {
      entries: (this.#entries.getStats() as { entryCount: number }).entryCount,
      bytes: this.#metaNumber('bytes'),
      evictions: this.#metaNumber('evictions'),
      expired: this.#metaNumber('expired'),
    }
  }

  // Reads: from a snapshot the library renews every event turn and after each commit; no lock, no write.

  get(key: string): Promise<Uint8Array | null> {
    return this.#read(() => {
      const record = this.#live(key, this.#clock.now())
      if (record === undefined) return null
      if (record.type !== STRING) throw wrongType(this.address, key)
      return record.payload
    })
  }

  getMany(keys: readonly string[]): Promise<(Uint8Array | null)[]> {
    return this.#read(() => {
      const now = this.#clock.now()
      return keys.map((key) => {
        const record = this.#live(key, now)
        return record?.type === STRING ? record.payload : null
      })
    })
  }

  scan(pattern: string, cursor: string, count: number): Promise<{ cursor: string; keys: string[] }> {
    return this.#read(() => {
      const now = this.#clock.now()
      const { prefix, test } = compileGlob(pattern)
      const after = cursor === '0' ? undefined : cursor.slice(1)
      const keys: string[] = []
      let next = '0'
      let visited = 0
      for (const { key, value } of this.#entries.getRange({ start: after ?? prefix })) {
        const name = key as string
        if (name === after) continue
        if (!name.startsWith(prefix)) break
        const record = this.#decode(name, value)
        if (record !== undefined && (record.expiresAt === 0 || record.expiresAt > now) && test(name))
          keys.push(name)
        // Visited, not matched, bounds a step, as SCAN's COUNT does: a step never walks the whole store.
        if (++visited >= count) {
          next = `k${name}`
          break
        }
      }
      return { cursor: next, keys }
    })
  }

  getVersion(versionKey: string): Promise<number> {
    return this.#read(() => {
      return this.#integer(versionKey, this.#clock.now())
    })
  }

  /** The epoch is constant (`epochKey` is not stored): versions and sequences live as long as the files do. */
  readFence(versionKeys: readonly string[], seqKey: string, _epochKey?: string): Promise<L2FenceRead> {
    return this.#read(() => {
      const now = this.#clock.now()
      return {
        versions: versionKeys.map((key) => this.#integer(key, now)),
        seq: this.#integer(seqKey, now),
        epoch: DISK_EPOCH,
      }
    })
  }

  scanSet(key: string, cursor: string, count: number): Promise<{ cursor: string; members: string[] }> {
    return this.#read(() => {
      const record = this.#live(key, this.#clock.now())
      if (record === undefined) return { cursor: '0', members: [] }
      if (record.type !== SET) throw wrongType(this.address, key)
      const from = cursor === '0' ? undefined : cursor.slice(1)
      const members: string[] = []
      for (const entry of this.#members.getRange({
        start: from === undefined ? [key] : [key, from],
        end: [key, LAST_MEMBER],
        limit: count + 1,
      })) {
        const member = (entry.key as [string, string])[1]
        if (typeof member !== 'string') continue
        if (members.length === count) return { cursor: `m${member}`, members }
        members.push(member)
      }
      return { cursor: '0', members }
    })
  }

  ttlMany(keys: readonly string[]): Promise<number[]> {
    return this.#read(() => {
      const now = this.#clock.now()
      return keys.map((key) => {
        const record = this.#live(key, now)
        if (record === undefined) return -2
        return record.expiresAt === 0 ? -1 : Math.ceil(record.expiresAt - now)
      })
    })
  }

  strlen(keys: readonly string[]): Promise<(number | null)[]> {
    return this.#read(() => {
      const now = this.#clock.now()
      return keys.map((key) => {
        const record = this.#live(key, now)
        if (record === undefined) return 0
        return record.type === STRING ? record.payload.length : null
      })
    })
  }

  memoryUsage(keys: readonly string[]): Promise<L2Answer<(number | null)[]>> {
    return this.#read(() => {
      const now = this.#clock.now()
      return {
        ok: true,
        value: keys.map((key) => {
          const raw = this.#entries.get(key)
          const record = raw === undefined ? undefined : this.#decode(key, raw)
          if (raw === undefined || record === undefined) return null
          if (record.expiresAt !== 0 && record.expiresAt <= now) return null
          return entrySize(key, raw.length)
        }),
      }
    })
  }

  /** INFO-like fields, so that `cache.inspect()` reads the budget as it reads Redis's maxmemory. */
  info(section: string): Promise<L2Answer<Readonly<Record<string, string>>>> {
    return this.#read(() => {
      const stats = this.stats()
      const sections: Record<string, Record<string, string>> = {
        server: { engine: 'lmdb', path: this.address, process_id: String(process.pid) },
        memory: {
          used_memory: String(stats.bytes),
          maxmemory: String(this.maxBytes),
          maxmemory_policy: 'volatile-ttl',
        },
        stats: { evicted_keys: String(stats.evictions), expired_keys: String(stats.expired) },
      }
      const fields = sections[section]
      return fields === undefined
        ? {
            ok: false,
            refused: `ERR the disk store has no INFO section "${section}" (server, memory, stats)`,
          }
        : { ok: true, value: fields }
    })
  }

  configGet(pattern: string): Promise<L2Answer<Readonly<Record<string, string>>>> {
    return this.#read(() => {
      const { test } = compileGlob(pattern)
      const all: Record<string, string> = {
        maxmemory: String(this.maxBytes),
        'maxmemory-policy': 'volatile-ttl',
      }
      return { ok: true, value: Object.fromEntries(Object.entries(all).filter(([name]) => test(name))) }
    })
  }

  // Writes: each in one write transaction (atomic across the host's processes), each awaited by close().

  set(key: string, value: Uint8Array, ttlMs: number): Promise<void> {
    return this.#write((now) => {
      this.#putString(key, value, expiry(now, ttlMs), now)
    })
  }

  setMany(writes: readonly L2Write[]): Promise<void> {
    return this.#write((now) => {
      for (const write of writes) this.#putString(write.key, write.value, expiry(now, write.ttlMs), now)
    })
  }

  delete(keys: readonly string[]): Promise<number> {
    return this.#write((now) => {
      let deleted = 0
      for (const key of keys) if (this.#remove(key, now)) deleted++
      return deleted
    })
  }

  increment(key: string): Promise<number> {
    return this.#write((now) => {
      const record = this.#live(key, now)
      const next = this.#integer(key, now) + 1
      this.#putString(key, digits(next), record?.expiresAt ?? 0, now)
      return next
    })
  }

  bumpVersion(versionKey: string, ttlMs: number): Promise<number> {
    return this.#write((now) => this.#bump(versionKey, ttlMs, now))
  }

  addToSet(key: string, member: string, ttlMs: number): Promise<void> {
    return this.#write((now) => this.#addMember(key, member, ttlMs, now))
  }

  renameIfExists(from: string, to: string): Promise<boolean> {
    return this.#write((now) => {
      const record = this.#live(from, now)
      if (record === undefined) return false
      checkKey(this.address, to)
      const members =
        record.type === SET
          ? [...this.#members.getRange({ start: [from], end: [from, LAST_MEMBER] })].map((entry) => ({
              member: (entry.key as [string, string])[1],
              gone: entry.value,
            }))
          : []
      // Before the first write (see storeFenced).
      for (const { member } of members) checkKey(this.address, to, member)
      this.#remove(to, now)
      this.#remove(from, now)
      this.#putRecord(to, record.type, record.payload, record.expiresAt, now)
      for (const { member, gone } of members) this.#putMember(to, member, gone)
      return true
    })
  }

  tryLock(key: string, token: string, ttlMs: number): Promise<boolean> {
    return this.#write((now) => {
      if (this.#live(key, now) !== undefined) return false
      this.#putString(key, Buffer.from(token), expiry(now, ttlMs), now)
      return true
    })
  }

  acquireLock(key: string, token: string, ttlMs: number): Promise<LockAttempt> {
    return this.#write((now): LockAttempt => {
      const held = this.#live(key, now)
      if (held === undefined) {
        this.#putString(key, Buffer.from(token), expiry(now, ttlMs), now)
        return { won: true, broke: false }
      }
      // A live lock of ours: a string with an expiry holding a token of the same length and alphabet.
      const text = held.type === STRING ? held.payload.toString('latin1') : undefined
      if (
        held.expiresAt !== 0 &&
        text !== undefined &&
        text.length === token.length &&
        TOKEN_CHARACTERS.test(text)
      ) {
        return { won: false, remainingMs: Math.max(1, Math.ceil(held.expiresAt - now)) }
      }
      this.#remove(key, now)
      this.#putString(key, Buffer.from(token), expiry(now, ttlMs), now)
      return { won: true, broke: true }
    })
  }

  unlock(key: string, token: string): Promise<boolean> {
    return this.#write((now) => {
      if (!this.#holds(key, token, now)) return false
      return this.#remove(key, now)
    })
  }

  markPending(key: string, id: string, ttlMs: number): Promise<void> {
    return this.#write((now) => {
      checkKey(this.address, key)
      const held = this.#live(key, now)
      if (held?.type === STRING && compareStreamIds(held.payload.toString('latin1'), id) > 0) return
      this.#putString(key, Buffer.from(id), expiry(now, ttlMs), now)
    })
  }

  extendLock(key: string, token: string, ttlMs: number): Promise<boolean> {
    return this.#write((now) => {
      if (!this.#holds(key, token, now)) return false
      this.#putString(key, Buffer.from(token), expiry(now, ttlMs), now)
      return true
    })
  }

  storeFenced(write: L2Write, fence: L2Fence): Promise<boolean> {
    return this.#write((now) => {
      if (this.#integer(fence.versionKey, now) !== fence.version || fence.epoch !== DISK_EPOCH) return false
      if (fence.pendingKey !== undefined && this.#live(fence.pendingKey, now) !== undefined) return false
      for (const mark of fence.marks) if (this.#integer(mark, now) > fence.seq) return false
      // Everything that could refuse the store is checked before the first write: a transaction body that throws
      // half-way would still commit what it wrote (lmdb batches async transactions).
      checkKey(this.address, write.key)
      for (const set of fence.sets) {
        checkKey(this.address, set, write.key)
        const held = this.#live(set, now)
        if (held !== undefined && held.type !== SET) throw wrongType(this.address, set)
      }
      if (!this.#putString(write.key, write.value, expiry(now, write.ttlMs), now)) return false
      for (const set of fence.sets) this.#addMember(set, write.key, write.ttlMs, now)
      return true
    })
  }

  markInvalidated(seqKey: string, marks: readonly string[], ttlMs: number): Promise<number> {
    return this.#write((now) => {
      for (const key of [seqKey, ...marks]) checkKey(this.address, key)
      const seq = this.#integer(seqKey, now) + 1
      this.#putString(seqKey, digits(seq), this.#live(seqKey, now)?.expiresAt ?? 0, now)
      for (const mark of marks) this.#putString(mark, digits(seq), expiry(now, ttlMs), now)
      return seq
    })
  }

  /** Deletes up to a batch of expired entries (every process runs this on a timer); resolves to how many. */
  sweep(): Promise<number> {
    return this.#write((now) => {
      let removed = 0
      for (const { key } of this.#expiry.getRange({ start: [0], end: [now], limit: SWEEP_BATCH })) {
        const name = (key as [number, string])[1]
        if (this.#remove(name, now, true)) removed++
        else this.#expiry.removeSync(key)
      }
      if (removed > 0) this.#count('expired', removed)
      return removed
    })
  }

  // Durable queues (write-behind), with Redis streams' semantics: ids `ms-seq`, a consumer group's last delivered
  // id, a pending list per group, claims by idle time.

  queueAppend(
    queue: string,
    fields: Readonly<Record<string, string | Uint8Array>>,
    maxLength?: number,
  ): Promise<string> {
    return this.#write((now) => {
      const [lastMs, lastSeq] = (this.#queues.get(['last', queue]) as [number, number] | undefined) ?? [0, -1]
      const ms = Math.max(Math.floor(now), lastMs)
      const seq = ms === lastMs ? lastSeq + 1 : 0
      const stored: Record<string, Uint8Array> = {}
      for (const [name, value] of Object.entries(fields)) {
        stored[name] = typeof value === 'string' ? Buffer.from(value) : value
      }
      this.#queues.putSync(['last', queue], [ms, seq])
      this.#queues.putSync(['entry', queue, ms, seq], stored)
      if (maxLength !== undefined) {
        const over = this.#queues.getKeysCount(entryRange(queue)) - maxLength
        if (over > 0) {
          for (const { key } of this.#queues.getRange({ ...entryRange(queue), limit: over })) {
            this.#queues.removeSync(key)
          }
        }
      }
      return `${ms}-${seq}`
    })
  }

  queueCreateGroup(queue: string, group: string): Promise<void> {
    return this.#write(() => {
      if (this.#queues.get(['group', queue, group]) === undefined) {
        this.#queues.putSync(['group', queue, group], [0, -1])
      }
    })
  }

  queueRead(queue: string, group: string, consumer: string, count: number): Promise<QueueEntry[]> {
    return this.#write((now) => {
      const last = this.#group(queue, group)
      const entries: QueueEntry[] = []
      for (const { key, value } of this.#queues.getRange({
        start: ['entry', queue, last[0], last[1] + 1],
        end: ['entry', queue, MAX_ID],
        limit: count,
      })) {
        const [, , ms, seq] = key as [string, string, number, number]
        entries.push({ id: `${ms}-${seq}`, fields: asFields(value) })
        this.#queues.putSync(['pending', queue, group, ms, seq], { consumer, at: now, deliveries: 1 })
        this.#queues.putSync(['group', queue, group], [ms, seq])
      }
      return entries
    })
  }

  queuePending(queue: string, group: string, minIdleMs: number, count: number): Promise<PendingQueueEntry[]> {
    return this.#read(() => {
      const now = this.#clock.now()
      const pending: PendingQueueEntry[] = []
      for (const { key, value } of this.#queues.getRange(pendingRange(queue, group))) {
        const [, , , ms, seq] = key as [string, string, string, number, number]
        const { consumer, at, deliveries } = value as PendingRecord
        if (now - at < minIdleMs) continue
        pending.push({ id: `${ms}-${seq}`, consumer, idleMs: Math.max(0, now - at), deliveries })
        if (pending.length === count) break
      }
      return pending
    })
  }

  queueClaim(
    queue: string,
    group: string,
    consumer: string,
    minIdleMs: number,
    ids: readonly string[],
  ): Promise<QueueEntry[]> {
    return this.#write((now) => {
      const claimed: QueueEntry[] = []
      for (const id of ids) {
        const [ms, seq] = parseId(id)
        const pendingKey = ['pending', queue, group, ms, seq]
        const pending = this.#queues.get(pendingKey) as PendingRecord | undefined
        if (pending === undefined || now - pending.at < minIdleMs) continue
        const fields = this.#queues.get(['entry', queue, ms, seq])
        if (fields === undefined) {
          // Trimmed away meanwhile: nothing to hand over, and nothing left to wait for.
          this.#queues.removeSync(pendingKey)
          continue
        }
        this.#queues.putSync(pendingKey, { consumer, at: now, deliveries: pending.deliveries + 1 })
        claimed.push({ id, fields: asFields(fields) })
      }
      return claimed
    })
  }

  queueAck(queue: string, group: string, ids: readonly string[]): Promise<void> {
    return this.#write(() => {
      for (const id of ids) {
        const [ms, seq] = parseId(id)
        this.#queues.removeSync(['pending', queue, group, ms, seq])
        this.#queues.removeSync(['entry', queue, ms, seq])
      }
    })
  }

  queueGet(queue: string, id: string): Promise<QueueEntry | undefined> {
    return this.#read(() => {
      const [ms, seq] = parseId(id)
      const value: unknown = this.#queues.get(['entry', queue, ms, seq])
      return value === undefined ? undefined : { id, fields: asFields(value) }
    })
  }

  queueSize(queue: string, group: string): Promise<{ length: number; pending: number }> {
    return this.#read(() => {
      return {
        length: this.#queues.getKeysCount(entryRange(queue)),
        pending: this.#queues.getKeysCount(pendingRange(queue, group)),
      }
    })
  }

  queueDeleteConsumer(queue: string, group: string, consumer: string): Promise<void> {
    return this.#write(() => {
      for (const { key, value } of this.#queues.getRange(pendingRange(queue, group))) {
        if ((value as PendingRecord).consumer === consumer) this.#queues.removeSync(key)
      }
    })
  }

  // The invalidation bus on one host: published messages are numbered in the store, and each subscribed process
  // polls for new numbers every `pollEvery` ms (one read of a counter when nothing happened).

  publish(channel: string, message: string): Promise<void> {
    return this.#write((now) => {
      const seq = ((this.#queues.get(['bus-seq', channel]) as number | undefined) ?? 0) + 1
      this.#queues.putSync(['bus-seq', channel], seq)
      this.#queues.putSync(['bus', channel, seq], { message, at: now })
      for (const { key, value } of this.#queues.getRange({
        start: ['bus', channel, 0],
        end: ['bus', channel, seq],
        limit: 16,
      })) {
        if ((value as { at: number }).at > now - BUS_RETENTION_MS) break
        this.#queues.removeSync(key)
      }
    })
  }

  subscribe(channel: string, listener: (message: string) => void): Promise<void> {
    return this.#read(() => {
      let subscription = this.#channels.get(channel)
      if (subscription === undefined) {
        this.#root!.resetReadTxn()
        subscription = {
          last: (this.#queues.get(['bus-seq', channel]) as number | undefined) ?? 0,
          listeners: [],
        }
        this.#channels.set(channel, subscription)
      }
      subscription.listeners.push(listener)
      this.#poller ??= setInterval(() => this.#poll(), this.#options.pollEvery).unref()
    })
  }

  #poll(): void {
    if (this.#status !== 'ready') return
    try {
      this.#root!.resetReadTxn()
      for (const [channel, subscription] of this.#channels) {
        const seq = (this.#queues.get(['bus-seq', channel]) as number | undefined) ?? 0
        if (seq <= subscription.last) continue
        const messages: string[] = []
        let expected = subscription.last + 1
        let missed = false
        for (const { key, value } of this.#queues.getRange({
          start: ['bus', channel, subscription.last + 1],
          end: ['bus', channel, seq + 1],
        })) {
          if ((key as [string, string, number])[2] !== expected) missed = true
          expected = (key as [string, string, number])[2] + 1
          messages.push((value as { message: string }).message)
        }
        if (expected !== seq + 1) missed = true
        subscription.last = seq
        if (missed) {
          // This process slept past the retention (a long pause): messages were pruned before it read them. Told
          // as a subscription that dropped and came back, so the cache treats its L1 as it does after a
          // reconnection (entries suspect).
          this.#listener?.({ type: 'subscriber-status', status: 'reconnecting' })
          this.#listener?.({ type: 'subscriber-status', status: 'ready' })
        }
        for (const message of messages) for (const listener of subscription.listeners) listener(message)
      }
    } catch (error) {
      this.#listener?.({ type: 'error', error })
    }
  }

  // Inside a write transaction (or a read snapshot, for the readers).

  /** Runs `body` in one write transaction; rejects when the store is not open. */
  #write<T>(body: (now: number) => T): Promise<T> {
    if (this.#root === undefined && this.#opening !== undefined && this.#status === 'connecting') {
      return this.#opening.then(() => this.#write(body))
    }
    try {
      this.#ready()
    } catch (error) {
      return Promise.reject(error instanceof Error ? error : new Error(String(error)))
    }
    const done = this.#root!.transaction(() => body(this.#clock.now()))
    this.#inFlight.add(done)
    void done.finally(() => this.#inFlight.delete(done)).catch(() => {})
    return done
  }

  /**
   * Runs `body` on this process's read snapshot; rejects (never throws) when the store is closed. A call made
   * while the files are opening waits for them, as a Redis client queues commands until it is connected.
   */
  #read<T>(body: () => T): Promise<T> {
    if (this.#root === undefined && this.#opening !== undefined && this.#status === 'connecting') {
      return this.#opening.then(() => this.#read(body))
    }
    try {
      this.#ready()
      // A fresh snapshot for every call (about a microsecond): without it, a read in the same event-loop turn as
      // another store's commit (another cache of this process, or a write just acknowledged to another process)
      // could miss it. With it, a read issued after a write was acknowledged sees it, as with Redis.
      this.#root!.resetReadTxn()
      return Promise.resolve(body())
    } catch (error) {
      return Promise.reject(error instanceof Error ? error : new Error(String(error)))
    }
  }

  #ready(): void {
    if (this.#root === undefined || this.#status !== 'ready') {
      throw new DiskStoreError(
        'CLOSED',
        this.address,
        this.#status === 'closed' ? 'the store is closed' : 'the store is not open yet: await connect()',
      )
    }
  }

  #live(key: string, now: number): StoredRecord | undefined {
    const raw = this.#entries.get(key)
    if (raw === undefined) return undefined
    const record = this.#decode(key, raw)
    if (record === undefined || (record.expiresAt !== 0 && record.expiresAt <= now)) return undefined
    return record
  }

  /** A stored record, or undefined (counted, reported once) when its bytes are not one of ours. */
  #decode(key: string, raw: Buffer): StoredRecord | undefined {
    if (raw.length >= HEADER && raw[0] === MAGIC && (raw[1] === STRING || raw[1] === SET)) {
      const expiresAt = raw.readDoubleLE(2)
      if (expiresAt >= 0) return { type: raw[1], expiresAt, payload: raw.subarray(HEADER) }
    }
    this.#corruptReads++
    if (!this.#warnedCorrupt) {
      this.#warnedCorrupt = true
      this.#listener?.({
        type: 'warning',
        message:
          `The disk store at ${this.address} holds a record it cannot read ("${key}"): served as a miss and ` +
          'counted in stats().corruptReads. Another program or another format writes to this directory: give ' +
          'each cache its own path.',
      })
    }
    return undefined
  }

  #integer(key: string, now: number): number {
    const record = this.#live(key, now)
    if (record === undefined || record.type !== STRING) return 0
    const value = Number(record.payload.toString('latin1'))
    return Number.isFinite(value) ? value : 0
  }

  #holds(key: string, token: string, now: number): boolean {
    const record = this.#live(key, now)
    return record?.type === STRING && record.payload.toString('latin1') === token
  }

  #bump(versionKey: string, ttlMs: number, now: number): number {
    const record = this.#live(versionKey, now)
    const next = this.#integer(versionKey, now) + 1
    this.#putString(versionKey, digits(next), Math.max(record?.expiresAt ?? 0, expiry(now, ttlMs)), now)
    return next
  }

  /** Stores a string; false (and nothing stored, any older value removed) when it alone exceeds the budget. */
  #putString(key: string, value: Uint8Array, expiresAt: number, now: number): boolean {
    return this.#putRecord(key, STRING, value, expiresAt, now)
  }

  #putRecord(key: string, type: number, payload: Uint8Array, expiresAt: number, now: number): boolean {
    checkKey(this.address, key)
    const record = Buffer.allocUnsafe(HEADER + payload.length)
    record[0] = MAGIC
    record[1] = type
    record.writeDoubleLE(expiresAt, 2)
    record.set(payload, HEADER)
    const size = entrySize(key, record.length)
    if (size > this.maxBytes) {
      this.#remove(key, now)
      this.#tooLarge++
      return false
    }
    const old = this.#entries.get(key)
    let delta = size
    if (old !== undefined) {
      delta -= entrySize(key, old.length)
      const oldExpiry = old.length >= HEADER ? old.readDoubleLE(2) : 0
      if (oldExpiry > 0) this.#expiry.removeSync([oldExpiry, key])
      // A set turned into a string (or the reverse) loses its members, as a Redis SET over a set does.
      if (old[1] === SET && type !== SET) delta -= this.#dropMembers(key)
    }
    this.#entries.putSync(key, record)
    if (expiresAt > 0) this.#expiry.putSync([expiresAt, key], true)
    this.#addBytes(delta)
    if (delta > 0) this.#enforceBudget(now, key)
    return true
  }

  /** Removes `key` and its members; true when it held a live entry (`expired`: or an expired one). */
  #remove(key: string, now: number, expired = false): boolean {
    const raw = this.#entries.get(key)
    if (raw === undefined) return false
    const record = this.#decode(key, raw)
    let freed = entrySize(key, raw.length)
    if (record?.type === SET) freed += this.#dropMembers(key)
    if (record !== undefined && record.expiresAt > 0) this.#expiry.removeSync([record.expiresAt, key])
    this.#entries.removeSync(key)
    this.#addBytes(-freed)
    if (record === undefined) return false
    return expired || record.expiresAt === 0 || record.expiresAt > now
  }

  #dropMembers(key: string): number {
    let freed = 0
    for (const { key: memberKey } of this.#members.getRange({ start: [key], end: [key, LAST_MEMBER] })) {
      freed += memberSize((memberKey as [string, string])[1])
      this.#members.removeSync(memberKey)
    }
    return freed
  }

  #addMember(key: string, member: string, ttlMs: number, now: number): void {
    const record = this.#live(key, now)
    if (record !== undefined && record.type !== SET) throw wrongType(this.address, key)
    const expiresAt = Math.max(record?.expiresAt ?? 0, expiry(now, ttlMs))
    if (record === undefined) this.#remove(key, now)
    if (record === undefined || record.expiresAt !== expiresAt) {
      this.#putRecord(key, SET, Buffer.alloc(0), expiresAt, now)
    }
    this.#putMember(key, member, 0)
    // Bounded sets: a few members after this one whose entry is gone are first marked, then, seen gone again at
    // least a grace later, removed. Twice, not once: a write registers its tags just before its value lands.
    const grace = Math.min(ttlMs, 60_000)
    for (const { key: memberKey, value: goneSince } of this.#members.getRange({
      start: [key, member],
      end: [key, LAST_MEMBER],
      limit: PRUNE_SAMPLE + 1,
    })) {
      const other = (memberKey as [string, string])[1]
      if (other === member || this.#live(other, now) !== undefined) continue
      if (goneSince === 0) this.#members.putSync(memberKey, now)
      else if (now - goneSince >= grace) {
        this.#members.removeSync(memberKey)
        this.#addBytes(-memberSize(other))
      }
    }
  }

  #putMember(key: string, member: string, goneSince: number): void {
    checkKey(this.address, key, member)
    const existed = this.#members.get([key, member]) !== undefined
    this.#members.putSync([key, member], goneSince)
    if (!existed) {
      this.#addBytes(memberSize(member))
      this.#enforceBudget(this.#clock.now(), key)
    }
  }

  /**
   * Past the budget: deletes expired entries, then the entries closest to expiry, until the bytes fit. Never the
   * entry being written (`keep`), so a value just set is readable at once. Entries without expiry (counters) stay.
   */
  #enforceBudget(now: number, keep: string): void {
    if (this.#metaNumber('bytes') <= this.maxBytes) return
    let evicted = 0
    let expired = 0
    for (const { key } of this.#expiry.getRange({ start: [0] })) {
      if (this.#metaNumber('bytes') <= this.maxBytes) break
      const [expiresAt, name] = key as [number, string]
      if (name === keep) continue
      if (this.#remove(name, now, true)) {
        if (expiresAt <= now) expired++
        else evicted++
      } else this.#expiry.removeSync(key)
    }
    if (evicted > 0) this.#count('evictions', evicted)
    if (expired > 0) this.#count('expired', expired)
  }

  #metaNumber(name: string): number {
    return (this.#meta.get(name) as number | undefined) ?? 0
  }

  #addBytes(delta: number): void {
    if (delta !== 0) this.#meta.putSync('bytes', Math.max(0, this.#metaNumber('bytes') + delta))
  }

  #count(name: string, by: number): void {
    this.#meta.putSync(name, this.#metaNumber(name) + by)
  }

  #group(queue: string, group: string): [number, number] {
    const last = this.#queues.get(['group', queue, group]) as [number, number] | undefined
    if (last === undefined) {
      throw new DiskStoreError('NOGROUP', this.address, `no consumer group "${group}" on queue "${queue}"`)
    }
    return last
  }

  #setStatus(status: L2Status): void {
    this.#status = status
    this.#listener?.({ type: 'status', status })
  }
}

interface PendingRecord {
  readonly consumer: string
  readonly at: number
  readonly deliveries: number
}

function expiry(now: number, ttlMs: number): number {
  return now + Math.max(1, Math.ceil(ttlMs))
}

function digits(value: number): Buffer {
  return Buffer.from(String(value), 'latin1')
}

function entrySize(key: string, recordLength: number): number {
  return Buffer.byteLength(key) + recordLength + ENTRY_OVERHEAD
}

function memberSize(member: string): number {
  return Buffer.byteLength(member) + MEMBER_OVERHEAD
}

/**
 * Refuses a key (or a set and member) LMDB cannot hold, before anything is written. Its keys are at most 1,978
 * bytes; the expiry index adds the expiry (9 bytes) and a separator, a member key the set's name.
 */
function checkKey(path: string, key: string, member?: string): void {
  const bytes = Buffer.byteLength(key) + (member === undefined ? 0 : Buffer.byteLength(member))
  if (bytes > MAX_KEY_BYTES) {
    throw new DiskStoreError(
      'KEY_TOO_LONG',
      path,
      `"${key.slice(0, 60)}…" is ${bytes} bytes (with its member) and the disk store holds at most ` +
        `${MAX_KEY_BYTES}: lower the cache's maxKeyLength, over which keys are hashed`,
    )
  }
}

function wrongType(path: string, key: string): DiskStoreError {
  return new DiskStoreError('WRONGTYPE', path, `"${key}" holds a value of another type (a set, or a string)`)
}

function entryRange(queue: string) {
  return { start: ['entry', queue, 0], end: ['entry', queue, MAX_ID] }
}

function pendingRange(queue: string, group: string) {
  return { start: ['pending', queue, group, 0], end: ['pending', queue, group, MAX_ID] }
}

function parseId(id: string): [number, number] {
  const [ms, seq] = id.split('-').map(Number)
  return [ms ?? 0, seq ?? 0]
}

function asFields(value: unknown): Readonly<Record<string, Uint8Array>> {
  const fields: Record<string, Uint8Array> = {}
  for (const [name, field] of Object.entries(value as Record<string, Uint8Array>)) {
    fields[name] = field instanceof Uint8Array ? field : Buffer.from(String(field))
  }
  return fields
}

/**
 * A Redis glob (`*`, `?`, `[…]`, `\` escapes) as a literal prefix, to start the range scan at, and a test of the
 * whole key; the test is a prefix check when the pattern is the prefix and one `*` (the cache's own patterns).
 */
function compileGlob(pattern: string): { prefix: string; test: (key: string) => boolean } {
  let prefix = ''
  let i = 0
  for (; i < pattern.length; i++) {
    const ch = pattern[i]!
    if (ch === '\\' && i + 1 < pattern.length) prefix += pattern[++i]
    else if (ch === '*' || ch === '?' || ch === '[') break
    else prefix += ch
  }
  if (i === pattern.length - 1 && pattern[i] === '*') return { prefix, test: (key) => key.startsWith(prefix) }
  let source = ''
  for (let j = 0; j < pattern.length; j++) {
    const ch = pattern[j]!
    if (ch === '\\' && j + 1 < pattern.length) source += escapeRegExp(pattern[++j]!)
    else if (ch === '*') source += '[\\s\\S]*'
    else if (ch === '?') source += '[\\s\\S]'
    else if (ch === '[') {
      const end = pattern.indexOf(']', j + 1)
      if (end === -1) source += '\\['
      else {
        const body = pattern.slice(j + 1, end)
        source += `[${body.startsWith('^') ? '^' + escapeClass(body.slice(1)) : escapeClass(body)}]`
        j = end
      }
    } else source += escapeRegExp(ch)
  }
  const regexp = new RegExp(`^${source}$`)
  return { prefix, test: (key) => regexp.test(key) }
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')
}

function escapeClass(body: string): string {
  return body.replace(/[\]\\^]/g, '\\$&')
}

function describeOpenError(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code
  if (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') {
    return 'the `lmdb` package is not installed: run `npm install lmdb`'
  }
  const message = error instanceof Error ? error.message : String(error)
  if (code === 'EACCES' || /permission denied/i.test(message)) return `permission denied (${message})`
  return message
}
