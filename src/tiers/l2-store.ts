// The narrow interface every shared (L2) store implements. The read path sees only this; Redis details stay behind it.

/** One value to write with its time to live. */
export interface L2Write {
  readonly key: string
  readonly value: Uint8Array
  /** Time to live in ms, at least 1. */
  readonly ttlMs: number
}

/** One entry of a durable queue: its id (ordered by append time) and its fields as bytes. */
export interface QueueEntry {
  readonly id: string
  readonly fields: Readonly<Record<string, Uint8Array>>
}

/** A queue entry delivered to a consumer and not yet acknowledged. */
export interface PendingQueueEntry {
  readonly id: string
  readonly consumer: string
  readonly idleMs: number
  /** How many times it was handed to a consumer (first read, re-reads and claims). */
  readonly deliveries: number
}

/**
 * The answer to a command the server may refuse: its value, or the server's refusal (`NOPERM …`, `ERR unknown
 * command …`) as text. A connection failure or a timeout is not a refusal: the call rejects.
 */
export type L2Answer<T> =
  { readonly ok: true; readonly value: T } | { readonly ok: false; readonly refused: string }

/**
 * The cache's side of one L2 call, given to a store method as its last argument. `signal` aborts once the cache
 * stops waiting for the call (its L2 timeout fired): a command that was not sent yet must then never be sent, since
 * it would run late, after its caller moved on (a SET landing after a newer value). The signal is made when first
 * read, so a store reads it only when a command has to wait (not connected yet) and the common path costs nothing.
 */
export interface L2Call {
  readonly signal: AbortSignal
}

/** Connection state of an L2 store as the store sees it. */
export type L2Status = 'connecting' | 'ready' | 'reconnecting' | 'closed'

/**
 * A shared store of bytes with TTLs. Methods may reject (connection lost, server error); the cache wraps every call
 * in a timeout and a circuit breaker, so an implementation need not add its own.
 */
export interface L2Store {
  /** Short name for events and errors, e.g. `redis`. */
  readonly name: string
  /**
   * How many fence shards a namespace's keys are spread over (core/key-layout.ts). 1, or absent: one Redis node,
   * keys without hash tags. More: a Redis Cluster, where every key one script touches must share a slot, so each
   * entry's keys carry its shard's hash tag. Every process sharing the L2 must use stores that say the same.
   */
  readonly fenceShards?: number
  /**
   * True when one `getMany` of n keys costs less than n `get`s (one command instead of n): the cache then sends the
   * gets issued in one tick as one `getMany` (policies/coalesced-gets.ts). Absent or false: one `get` each.
   */
  readonly coalesceGets?: boolean
  /**
   * With `coalesceGets`: the group of a key (a Redis Cluster: its slot). The gets of one tick are then sent as one
   * `getMany` per group, so each command reaches one node and a node that fails fails only its own keys' gets.
   */
  coalesceGroupOf?(key: string): number
  readonly status: L2Status
  get(key: string, call?: L2Call): Promise<Uint8Array | null>
  /** One round trip for all keys; the result is in the order of `keys`. */
  getMany(keys: readonly string[], call?: L2Call): Promise<(Uint8Array | null)[]>
  set(key: string, value: Uint8Array, ttlMs: number, call?: L2Call): Promise<void>
  /** One round trip for all writes (a pipeline). */
  setMany(writes: readonly L2Write[], call?: L2Call): Promise<void>
  /** Deletes the keys; resolves to how many existed. */
  delete(keys: readonly string[], call?: L2Call): Promise<number>
  /**
   * One step of an incremental scan (never a blocking KEYS) for keys matching a glob `pattern`. Start with cursor
   * `'0'`; the scan is complete when the returned cursor is `'0'` again. The cache bounds each step by its timeout.
   */
  scan(
    pattern: string,
    cursor: string,
    count: number,
    call?: L2Call,
  ): Promise<{ cursor: string; keys: string[] }>
  /**
   * The fraction of the keyspace (0 to 1) a scan stopped at `cursor` has walked, for estimates. Absent: `cursor` is
   * one Redis node's SCAN cursor (`scanCoverage` in observability/inspect.ts reads it).
   */
  scanCoverage?(cursor: string): number
  /** The integer at `versionKey` (0 when absent): the version a load starts under. */
  getVersion(versionKey: string, call?: L2Call): Promise<number>
  /**
   * A namespace's generation (the integer at `generationKey`, 0 when absent), read together with a check that the
   * server still holds the data the namespace last saw, atomically (a script). Next to the generation the store
   * keeps the id of the server that answered last (Redis's `run_id`). When a server with another id answers, Redis
   * was restarted from a snapshot (RDB or AOF) or a replica was promoted: its data may be older than what processes
   * served and invalidated since, so the generation is raised past both its stored value and `atLeast` (the
   * generation the caller uses), and `restored` names both ids. The first caller after such a change raises it;
   * the others read the raised value. A server without the stored id (a first read, data lost) only records its own.
   * Optional: without it, the cache reads the generation with `getVersion` and cannot tell a restore.
   */
  readGeneration?(generationKey: string, atLeast: number, call?: L2Call): Promise<GenerationRead>
  /**
   * The restore check of `readGeneration`, for the nodes that hold a namespace's entries but not its generation (a
   * Redis Cluster: entries spread over fence shards, each on the node serving its slot), in three steps the cache
   * runs (coherence/generation.ts). First this one: for each key of `originKeys` (one per fence shard,
   * `FenceShard.origin`), what is recorded there and the server answering for it now; undefined for a shard whose
   * node did not answer (checked again later), null for one whose server will not say its id (an ACL without INFO:
   * no check). A shard whose node now answers with another id was restarted from a snapshot, replaced by a promoted
   * replica, or moved by a reshard to a server that was already running: only the last brought nothing older back.
   */
  readOrigins?(originKeys: readonly string[], call?: L2Call): Promise<(OriginRead | null | undefined)[]>
  /**
   * Then, when a shard's server changed to one that was already running when the shard was recorded: the ids of the
   * servers serving the cluster's slots now (its masters); undefined when one of them did not say. A change from a
   * server still among them is a slot that moved (a reshard): its keys moved with it, and nothing is raised for it.
   */
  serverIds?(call?: L2Call): Promise<readonly string[] | undefined>
  /**
   * Then, for the other changes: raises the generation at `generationKey` past its value and `atLeast`,
   * once across processes for each change (`changes`, one `<id before>><id now>` each), which the store remembers
   * next to the generation. `raised`: this call raised it.
   */
  raiseForRestores?(
    generationKey: string,
    atLeast: number,
    changes: readonly string[],
    call?: L2Call,
  ): Promise<{ readonly generation: number; readonly raised: boolean }>
  /**
   * Last, after any raise (a process that stops in between leaves the change to be found again): records each
   * shard's new server id, where the key still holds the id that was read.
   */
  recordOrigins?(records: readonly OriginRecord[], call?: L2Call): Promise<void>
  /** Increments the integer at `key` (from 0), with no expiry: resolves to the new value. */
  increment(key: string, call?: L2Call): Promise<number>
  /** Increments `versionKey` and makes it live at least `ttlMs` more: every write of the entry does this first. */
  bumpVersion(versionKey: string, ttlMs: number, call?: L2Call): Promise<number>
  /**
   * Adds `member` to the set at `key` and makes the set live at least `ttlMs` more. The set must stay bounded: a
   * store drops members once the entry they name has expired (the Redis store does so a few at a time per add).
   */
  addToSet(key: string, member: string, ttlMs: number, call?: L2Call): Promise<void>
  /** Atomically renames `from` to `to` (same cluster slot); false when `from` does not exist. */
  renameIfExists(from: string, to: string, call?: L2Call): Promise<boolean>
  /** One step of an incremental scan of a set's members (SSCAN); done when the cursor is `'0'` again. */
  scanSet(
    key: string,
    cursor: string,
    count: number,
    call?: L2Call,
  ): Promise<{ cursor: string; members: string[] }>
  /** Sets `key` to `token` for `ttlMs` only if it does not exist (SET NX PX): true when this caller got the lock. */
  tryLock(key: string, token: string, ttlMs: number, call?: L2Call): Promise<boolean>
  /**
   * Takes the cross-process lock `key` with `token` for `ttlMs` (SET NX PX), atomically (a script). When another
   * lock holds it, resolves to its remaining TTL. When what holds the key cannot be a live lock of ours (no expiry,
   * not a string, not a token of `tokenLength` base64url characters: left by hand, by a crashed tool, by another
   * program), it is broken (replaced by ours) and the lock is taken: such a key would otherwise make every cold miss
   * of its entry wait for nothing, for ever.
   */
  acquireLock(key: string, token: string, ttlMs: number, call?: L2Call): Promise<LockAttempt>
  /** Deletes `key` only if it still holds `token` (a script, atomically): true when it did. */
  unlock(key: string, token: string, call?: L2Call): Promise<boolean>
  /**
   * Marks an entry's write-behind write `id` (a stream id, `ms-seq`) as queued: sets `key` to `id` for `ttlMs`
   * unless it holds a later id (a script, atomically). While the mark exists, `storeFenced` refuses stores whose
   * fence names it (`pendingKey`); the flusher removes it with `unlock(key, id)` once the source has the write.
   */
  markPending(key: string, id: string, ttlMs: number, call?: L2Call): Promise<void>
  /** Resets the TTL of `key` only if it still holds `token`: true when it did. */
  extendLock(key: string, token: string, ttlMs: number, call?: L2Call): Promise<boolean>
  // Inspection (cache.inspect(), inspectRedis()): read-only calls. INFO, CONFIG and MEMORY are administrative
  // commands a server may refuse (an ACL, a managed Redis that renames them): a refusal resolves, it does not reject.
  /** The fields of one INFO section (`memory`, `stats`…), e.g. `{ used_memory: '1048576' }`; or the refusal. */
  info(section: string, call?: L2Call): Promise<L2Answer<Readonly<Record<string, string>>>>
  /** The configuration parameters matching the glob `pattern` (CONFIG GET), e.g. `maxmemory*`; or the refusal. */
  configGet(pattern: string, call?: L2Call): Promise<L2Answer<Readonly<Record<string, string>>>>
  /**
   * Bytes each key takes in the server's memory, its name and overhead included (MEMORY USAGE), in the order of
   * `keys`, null for a key that does not exist; one round trip. Or the refusal.
   */
  memoryUsage(keys: readonly string[], call?: L2Call): Promise<L2Answer<(number | null)[]>>
  /** Length in bytes of each key's value (STRLEN): 0 when it does not exist, null when it is not a string. */
  strlen(keys: readonly string[], call?: L2Call): Promise<(number | null)[]>
  /** Remaining TTL of each key in ms (PTTL): -1 when it has none, -2 when it does not exist. One round trip. */
  ttlMany(keys: readonly string[], call?: L2Call): Promise<number[]>
  /**
   * The server's clock (TIME), in epoch milliseconds with a fractional part. Entry times are written on the
   * server's clock, so that processes whose clocks disagree still agree on when an entry expires
   * (`coherence/clock-sync.ts`). A store without a clock omits it, and entries use each process's own clock.
   */
  serverTime?(call?: L2Call): Promise<number>
  /**
   * Durable queues (Redis streams with a consumer group), for write-behind. Appends one entry; resolves to its id.
   */
  queueAppend(
    queue: string,
    fields: Readonly<Record<string, string | Uint8Array>>,
    /** Trim the queue to about this many entries (`MAXLEN ~`). */
    maxLength?: number,
    call?: L2Call,
  ): Promise<string>
  /** Creates consumer group `group` on `queue` (and the queue), reading from its start; a no-op if it exists. */
  queueCreateGroup(queue: string, group: string, call?: L2Call): Promise<void>
  /** Hands up to `count` entries never delivered to anyone in `group` to `consumer` (non-blocking). */
  queueRead(
    queue: string,
    group: string,
    consumer: string,
    count: number,
    call?: L2Call,
  ): Promise<QueueEntry[]>
  /** Up to `count` delivered, unacknowledged entries idle at least `minIdleMs`, oldest first. */
  queuePending(
    queue: string,
    group: string,
    minIdleMs: number,
    count: number,
    call?: L2Call,
  ): Promise<PendingQueueEntry[]>
  /** Takes over pending entries still idle at least `minIdleMs` for `consumer`; resolves to those it got. */
  queueClaim(
    queue: string,
    group: string,
    consumer: string,
    minIdleMs: number,
    ids: readonly string[],
    call?: L2Call,
  ): Promise<QueueEntry[]>
  /** Acknowledges and deletes entries: they are done and will not be delivered again. */
  queueAck(queue: string, group: string, ids: readonly string[], call?: L2Call): Promise<void>
  /** Entry `id` of `queue` while the queue still holds it (not yet acknowledged and deleted), else undefined. */
  queueGet(queue: string, id: string, call?: L2Call): Promise<QueueEntry | undefined>
  /** Entries in `queue` (delivered or not), and how many of them `group` has delivered and not acknowledged. */
  queueSize(queue: string, group: string, call?: L2Call): Promise<{ length: number; pending: number }>
  /**
   * Entries appended to `queue` after the last one `group` was handed that are gone without ever being handed to it
   * (trimmed by `maxLength`, oldest first): 0 when none. Reported again at every call until `queueSettleDropped`
   * accounts for them. Undefined when the store cannot tell (Redis before 7.0 counts no entries added). A store
   * whose queues are never trimmed under a reader, or that cannot count, omits it (the embedded disk store does).
   */
  queueDropped?(queue: string, group: string, call?: L2Call): Promise<number | undefined>
  /** Accounts for `count` entries `queueDropped` reported, so that they are not reported again. */
  queueSettleDropped?(queue: string, group: string, count: number, call?: L2Call): Promise<void>
  /** Removes consumer `consumer` from `group` (after its pending entries were claimed). */
  queueDeleteConsumer(queue: string, group: string, consumer: string, call?: L2Call): Promise<void>
  /**
   * The fence a load starts under, in one round trip (MGET): the integer at each of `versionKeys` and at `seqKey`
   * (0 when absent), and the text at `epochKey`, which the store sets to a random value when it is absent (one more
   * round trip, after Redis lost its data). Handed back to `storeFenced` when the loaded value is stored.
   */
  readFence(
    versionKeys: readonly string[],
    seqKey: string,
    epochKey: string,
    call?: L2Call,
  ): Promise<L2FenceRead>
  /**
   * Stores a loaded value only if nothing invalidated it since its load started, atomically (a script): the entry's
   * version is still `fence.version`, `fence.epochKey` still holds `fence.epoch` (Redis did not lose its data
   * meanwhile: versions would count from 0 again), `fence.pendingKey` (when given) does not exist (no write-behind
   * write of the entry is queued: the source is older than the cache), and no key of `fence.marks` holds a number
   * above `fence.seq`. In the same
   * step the key is added to each set of `fence.sets` (its tag sets), whose TTL is extended to the entry's.
   * Resolves to whether it stored.
   */
  storeFenced(write: L2Write, fence: L2Fence, call?: L2Call): Promise<boolean>
  /**
   * Increments `seqKey` and sets each key of `marks` to the new number (PX `ttlMs`), atomically: a load whose fence
   * was read before can no longer store under any of those marks. Resolves to the new number.
   */
  markInvalidated(seqKey: string, marks: readonly string[], ttlMs: number, call?: L2Call): Promise<number>
  /** Publishes `message` on `channel` to every subscribed process. */
  publish(channel: string, message: string, call?: L2Call): Promise<void>
  /**
   * Subscribes `listener` to `channel` on a dedicated connection, made on first use and restored after a reconnect.
   * Resolves once the subscription is active.
   */
  subscribe(channel: string, listener: (message: string) => void): Promise<void>
  /** Starts connecting; resolves when ready. Rejections are retried in the background by the store itself. */
  connect(): Promise<void>
  /** Releases connections the store opened itself. A client passed in by the user is left open. */
  close(): Promise<void>
  /** Registers a listener for connection errors and state changes; called once by the cache. */
  onEvent(listener: (event: L2StoreEvent) => void): void
  /**
   * When `error` (a rejection of one of this store's calls) is the server's answer, an error reply such as `OOM`,
   * `WRONGTYPE`, `NOPERM` or `BUSY`, its kind: the server is up, so the cache does not count it against the circuit
   * breaker. Undefined for a failure to reach the server (connection refused, reset or closed, socket error), which
   * does count. A store without this method has every failure counted as an outage.
   */
  errorReplyKind?(error: unknown): string | undefined
  /** Where the store connects, for messages: `host:port`, never with credentials. */
  readonly address?: string
  /**
   * A connection failure (an 'error' event, a rejected `connect()`) in an operator's words: what failed, why, and
   * what to check. The cache logs it once per outage. A store without it gets a generic description.
   */
  describeFailure?(error: unknown): L2Failure
  /**
   * The store's own counters, for stores that keep them (the embedded disk store does; Redis's own are in INFO, read
   * by `cache.inspect()`). Read synchronously by `cache.stats()`, and so by every exporter at each scrape: it must be
   * cheap, and must not throw, not even once the store is closed (a closed cache stays exported).
   */
  stats?(): L2StoreStats
}

/**
 * What a store counts itself (`L2Store.stats()`), as `cache.stats().l2.store` and `.host.store` show it. The
 * occupancy and what the store dropped are the store's, shared by every process using it; the read and write
 * refusals are this process's.
 */
export interface L2StoreStats {
  /** Records held (entries, versions, marks, locks, tag sets), expired ones until swept. */
  readonly entries: number
  /** Bytes held, as accounted against `maxBytes`. */
  readonly bytes: number
  /** The byte budget. */
  readonly maxBytes: number
  /** Entries evicted for room, since the store was made. */
  readonly evictions: number
  /** Expired entries deleted by the sweep, since the store was made. */
  readonly expired: number
  /** Records read by this process that did not parse (foreign or damaged bytes): each was a miss. */
  readonly corruptReads: number
  /** Writes refused by this process because the entry alone is larger than `maxBytes`. */
  readonly tooLarge: number
}

/** A failure to connect to the store's server, described for people; see `L2Store.describeFailure`. */
export interface L2Failure {
  /** Where the store connects, `host:port`, never with credentials. */
  readonly address: string
  /** A short stable reason for programs: `ECONNREFUSED`, `ENOTFOUND`, `ETIMEDOUT`, `WRONGPASS`, a TLS code… */
  readonly reason: string
  /** What happened, e.g. `cannot reach Redis at 127.0.0.1:6390 (ECONNREFUSED: nothing listens there)`. */
  readonly summary: string
  /** What to check or change, e.g. `Check that redis-server runs and that the url's host and port are right`. */
  readonly advice: string
  /** The longest wait between the store's reconnection attempts, in ms; undefined when a client of the user's retries. */
  readonly retryMs: number | undefined
  /**
   * The server or the network closed a connection midway (`ECONNRESET`, `EPIPE`): that says a connection ended, not
   * why the next cannot be made. The cache logs such a failure only if no other reason follows it soon: a Redis
   * killed during a handshake resets that connection, then refuses the next, and the line says ECONNREFUSED.
   */
  readonly connectionClosed?: boolean
}

/** The answer to `L2Store.acquireLock`. */
export type LockAttempt =
  /** The lock is ours; `broke` when a key that could not be a live lock was replaced. */
  | { readonly won: true; readonly broke: boolean }
  /** Another holder has it for `remainingMs` more (until it extends it). */
  | { readonly won: false; readonly remainingMs: number }

/** A fence shard's servers (`L2Store.readOrigins`). */
export interface OriginRead {
  /** What the shard's origin key holds, as stored ('' for nothing yet): handed back to `recordOrigins`. */
  readonly recorded: string
  /** The id of the server recorded for the shard, '' for none yet. */
  readonly from: string
  /** When it was recorded (ms, on the clock of the server that recorded it), if known. */
  readonly recordedAtMs: number | undefined
  /** The id of the server answering for the shard now. */
  readonly now: string
  /** When that server started (ms, on its clock; to the second). */
  readonly startedAtMs: number
}

/** A shard's new server id to record (`L2Store.recordOrigins`), if its key still holds `expected`. */
export interface OriginRecord {
  readonly key: string
  readonly expected: string
  readonly now: string
}

/** What `L2Store.readGeneration` answers. */
export interface GenerationRead {
  readonly generation: number
  /** Set when this read found the data restored and raised the generation: the server ids before and now. */
  readonly restored?: { readonly from: string; readonly to: string }
}

/** What `L2Store.readFence` answers. */
export interface L2FenceRead {
  readonly versions: number[]
  readonly seq: number
  readonly epoch: string
}

/** What a loaded value is stored under: see `L2Store.storeFenced`. */
export interface L2Fence {
  readonly versionKey: string
  readonly version: number
  readonly epochKey: string
  readonly epoch: string
  /** Write-behind: the entry's pending-write mark (see `markPending`), which refuses the store while it exists. */
  readonly pendingKey?: string
  readonly seq: number
  /** Invalidation marks (tags, clear) that refuse the store when above `seq`. */
  readonly marks: readonly string[]
  /** Sets the key joins (its tags), with their TTL extended to the entry's. */
  readonly sets: readonly string[]
}

export type L2StoreEvent =
  /**
   * A connection error. `lost`: it ended a connection that was ready (the next attempt says whether the server is
   * gone); otherwise a connection attempt failed.
   */
  | { type: 'error'; error: unknown; lost?: boolean }
  | { type: 'status'; status: L2Status }
  /** The pub/sub connection's status (subscriptions are restored on reconnect; messages meanwhile are lost). */
  | { type: 'subscriber-status'; status: L2Status }
  /**
   * The server is one the store cannot work with (Redis older than 7.0): reported once per connection. The store
   * stays connected (reads work), but writes, deletes and tags fail with error replies; `connect()` rejects with it.
   */
  | { type: 'unsupported'; error: Error }
  /** Something works less well than it should, and an operator can fix it (the message says how). */
  | { type: 'warning'; message: string }
