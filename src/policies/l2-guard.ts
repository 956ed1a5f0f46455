// Wraps the L2 store: every call bounded by the L2 timeout, skipped while the circuit is open, failures reported.
import { setMaxListeners } from 'node:events'
import { L2CircuitOpenError, L2Error, L2TimeoutError } from '../errors.js'
import { channels } from '../observability/channels.js'
import { Histogram, type HistogramSnapshot } from '../observability/histogram.js'
import type {
  GenerationRead,
  OriginRead,
  OriginRecord,
  L2Answer,
  L2Call,
  L2Fence,
  L2FenceRead,
  L2Store,
  L2Write,
  LockAttempt,
  PendingQueueEntry,
  QueueEntry,
} from '../tiers/l2-store.js'
import { CircuitBreaker, type CircuitBreakerOptions, type CircuitState } from './circuit-breaker.js'
import { CoalescedGets, MAX_COALESCED_GETS, type GetReply } from './coalesced-gets.js'
export type { GetReply } from './coalesced-gets.js'
import { Deadlines, type Timed } from './deadline.js'

/** Who an L2 call answers: a promise's resolving functions, a get's reply, a coalesced batch. Neither may throw. */
interface Settler<T> {
  resolve(value: T): void
  reject(error: Error): void
}

/** An error reply the guard saw: Redis is up but refused a call. */
export interface ErrorReply {
  /** The reply's kind, its first word: `OOM`, `WRONGTYPE`, `NOPERM`, `BUSY`, `ERR`… */
  readonly kind: string
  readonly operation: string
  readonly error: L2Error
  /** The first reply of this kind since the cache started: the one to log. */
  readonly first: boolean
}

/** What the cache hears from the guard. Both run user code (the logger): the guard isolates what they throw. */
export interface L2GuardHooks {
  /** The circuit changed state. */
  onCircuit?(circuit: CircuitState): void
  /** Redis answered a call with an error reply. */
  onErrorReply?(reply: ErrorReply): void
}

/** Distinct reply kinds counted by name; further kinds count under `OTHER`, so a stream of odd replies stays small. */
const MAX_REPLY_KINDS = 16

/**
 * One L2 call: the store's handle (its abort signal is made only if the store asks for it: a command that waits)
 * and the deadline queue's record. Settled once, by the answer or by the timeout; settling drops the promise's
 * resolvers, so the record the queue keeps until its deadline passes holds nothing else alive.
 */
class Call<T = unknown> implements L2Call, Timed {
  deadline = 0
  done = false
  slot: Set<Timed> | undefined = undefined
  /** Who is answered: cleared once the call settled. */
  reply: Settler<T> | undefined
  /** The key of a single-key GET (`getThen`), which `#sendGet` reads; undefined for other calls. */
  readonly key: string | undefined
  readonly operation: string
  readonly started: number
  /** The circuit breaker's epoch when the call was sent: its outcome counts only if the circuit is still in it. */
  readonly epoch: number
  /** The breaker that let the call through, and hears its outcome: the store's, or its slot's (`L2Guard`). */
  readonly breaker: CircuitBreaker
  /** The store breaker's epoch when the call was sent (a slot's read resets its count only in that epoch). */
  readonly storeEpoch: number
  readonly #timedOut: (call: Call<never>) => void
  #controller: AbortController | undefined
  #abandoned = false

  constructor(
    operation: string,
    started: number,
    breaker: CircuitBreaker,
    storeEpoch: number,
    timedOut: (call: Call<never>) => void,
    reply: Settler<T>,
    key: string | undefined,
  ) {
    this.operation = operation
    this.reply = reply
    this.key = key
    this.started = started
    this.breaker = breaker
    this.epoch = breaker.epoch
    this.storeEpoch = storeEpoch
    this.#timedOut = timedOut
  }

  get signal(): AbortSignal {
    if (this.#controller === undefined) {
      this.#controller = new AbortController()
      if (this.#abandoned) this.#controller.abort()
    }
    return this.#controller.signal
  }

  /** The cache stopped waiting: a command of this call still queued in the client must not be sent. */
  abandon(): void {
    this.#abandoned = true
    this.#controller?.abort()
  }

  onTimeout(): void {
    this.#timedOut(this)
  }
}

/** What to tell an operator about an error reply: what it means and what to change. */
export function errorReplyAdvice(kind: string): string {
  switch (kind) {
    case 'OOM':
      return (
        'Redis is full (used memory > maxmemory) and its maxmemory-policy does not evict, so it refuses writes. ' +
        'Raise maxmemory, or set an evicting maxmemory-policy such as allkeys-lru or volatile-lru ' +
        '(docs/operations.md explains which namespaces must not be evicted). Reads of cached keys still use Redis.'
      )
    case 'WRONGTYPE':
      return (
        "A key in the service's prefix holds another type of value: something else writes under this service's " +
        'keys. Give it its own prefix (another `service`).'
      )
    case 'NOPERM':
      return 'The Redis user lacks a command or a key pattern the cache needs: see docs/security.md for its ACL.'
    case 'BUSY':
      return 'A Lua script or function has been running too long and blocks Redis: end it (SCRIPT KILL, FUNCTION KILL).'
    case 'NOSCRIPT':
      return 'A script was called by SHA that Redis does not hold (SCRIPT FLUSH, a restart, a failover).'
    case 'READONLY':
      return 'The cache is connected to a replica, which refuses writes: point it at the primary.'
    case 'LOADING':
      return 'Redis is loading its dataset after a restart; it answers again once loaded.'
    case 'MISCONF':
      return 'Redis cannot persist (RDB save failed) and refuses writes: check its disk and logs.'
    default:
      return 'Check that Redis is 7.0 or newer and accepts the commands listed in docs/security.md.'
  }
}

/**
 * The read and write paths call L2 only through this guard. A call either settles within the timeout or rejects
 * with a typed error (L2TimeoutError, L2CircuitOpenError, L2Error); it never hangs on a dead or paused Redis.
 *
 * Only failures to reach Redis (transport failures, timeouts) count against the circuit breaker. An error reply
 * (OOM, WRONGTYPE, NOPERM…) proves Redis up and answering at once: it fails that call only, and is counted apart.
 */
export class L2Guard {
  readonly store: L2Store
  readonly #breaker: CircuitBreaker
  /** A slot's read breaker: the store's options and clock, telling no one of its changes (`slotsOpen` counts them). */
  readonly #newSlotBreaker: () => CircuitBreaker
  /**
   * On a store whose keys live on several nodes (a Redis Cluster: `fenceShards` > 1 and `coalesceGroupOf`), reads
   * get a breaker per slot: a master that dies fails only its own slots' reads, and the other masters' keys keep
   * being read from Redis. Without it, five failures on the dead master opened the one circuit and sent every read
   * to the loaders for the whole failover (4-6 s in bench/cluster-failover.ts). Undefined on one node.
   */
  readonly #slots: Map<number, CircuitBreaker> | undefined
  readonly #deadlines: Deadlines
  readonly #hooks: L2GuardHooks
  /** Latency of calls that settled (answered or failed), not of those that timed out or the circuit refused. */
  readonly #latency = new Histogram()
  /**
   * Each counted once its outcome is known, so each only grows: `succeeded` when the answer arrives (not
   * `calls - failures - …`, which counts a call in flight as a success until it fails and then goes back down).
   */
  readonly #outcomes = { calls: 0, succeeded: 0, failures: 0, timeouts: 0, refused: 0, errorReplies: 0 }
  readonly #replyKinds = new Map<string, number>()
  readonly #closing = new AbortController()
  /** The gets of one tick as one getMany, for a store that says it gains from that (`L2Store.coalesceGets`). */
  readonly #gets: CoalescedGets | undefined

  constructor(store: L2Store, timeoutMs: number, breaker: CircuitBreakerOptions, hooks: L2GuardHooks = {}) {
    this.store = store
    this.#hooks = hooks
    this.#slots = (store.fenceShards ?? 1) > 1 && store.coalesceGroupOf !== undefined ? new Map() : undefined
    const now = performance.now.bind(performance)
    this.#newSlotBreaker = () => new CircuitBreaker(breaker, now, () => undefined)
    this.#breaker = new CircuitBreaker(breaker, now, (circuit: CircuitState) => {
      this.#notify(() => hooks.onCircuit?.(circuit))
      if (channels.l2State.hasSubscribers) channels.l2State.publish({ circuit })
    })
    this.#deadlines = new Deadlines(timeoutMs, now)
    this.#gets =
      store.coalesceGets === true
        ? new CoalescedGets(
            {
              one: (key, reply) => this.#getAlone(key, reply),
              many: (keys, batch) =>
                this.#start('get', (call) => store.getMany(keys, call), batch, undefined, keys[0]),
            },
            MAX_COALESCED_GETS,
            store.coalesceGroupOf?.bind(store),
          )
        : undefined
    // One listener per lock held at once (lock keep-alives): many is normal, not a leak.
    setMaxListeners(0, this.#closing.signal)
  }

  get circuit(): CircuitState {
    return this.#breaker.state
  }

  /** Aborted once the cache closes: timers that call L2 on their own (lock keep-alives) stop on it. */
  get closing(): AbortSignal {
    return this.#closing.signal
  }

  /** The cache is closing. Calls still pass (flushers finish their step); timers of its own kind stop. */
  close(): void {
    // Gets still waiting for their tick's end go now, while the store is open: the cache closes it next.
    this.#gets?.flush()
    this.#closing.abort()
  }

  /**
   * Calls, successes, failures (error replies included), timeouts and calls the open circuit refused, with the latency
   * of calls that settled; and the error replies among the failures, in all and by kind. Calls still in flight are
   * in `calls` only.
   */
  stats(): {
    calls: number
    succeeded: number
    failures: number
    timeouts: number
    refused: number
    errorReplies: number
    errorRepliesByKind: Readonly<Record<string, number>>
    latencyMs: HistogramSnapshot
    slotsOpen: number
  } {
    return {
      ...this.#outcomes,
      errorRepliesByKind: Object.freeze(Object.fromEntries(this.#replyKinds)),
      latencyMs: this.#latency.snapshot(),
      slotsOpen: this.slotsOpen,
    }
  }

  /** The store reconnected: a better signal than the next probe, so the circuit closes at once (each slot's too). */
  connectionRestored(): void {
    if (this.#breaker.state !== 'closed') this.#breaker.success()
    for (const slot of this.#slots?.values() ?? []) if (slot.state !== 'closed') slot.success()
  }

  /**
   * On a cluster store: the slots whose read circuit is open and within its break. A slot whose break is over is not
   * counted (its next read is let through as a probe), so the count falls back once a failover is over, even for a
   * slot that is not read again.
   */
  get slotsOpen(): number {
    let open = 0
    for (const slot of this.#slots?.values() ?? []) if (slot.retryInMs() > 0) open++
    return open
  }

  /** One key's bytes; with `coalesceGets`, sent with the other gets of its tick (`policies/coalesced-gets.ts`). */
  get(key: string): Promise<Uint8Array | null> {
    return new Promise((resolve, reject) => this.getThen(key, { resolve, reject }))
  }

  /**
   * `get`, answering through `reply` (whose methods may not throw) instead of a promise of its own: the L2 hit
   * path's read (storage/entry-store.ts), one promise and one microtask less per read. The reply is never called
   * before `getThen` returns (a refusal by the open circuit is deferred to a microtask, as a reply would be).
   */
  getThen(key: string, reply: GetReply): void {
    if (this.#gets !== undefined) this.#gets.read(key, reply)
    else this.#getAlone(key, reply)
  }

  /** One key's GET, not coalesced (no coalescing, or a tick's only get): the reply is the call's own settler. */
  #getAlone(key: string, reply: GetReply): void {
    this.#start('get', this.#sendGet, reply, key, key)
  }

  /** Sends a single-key GET call: one function for every such call, which carries its key (no closure per get). */
  readonly #sendGet = (call: L2Call): Promise<Uint8Array | null> => this.store.get((call as Call).key!, call)

  getMany(keys: readonly string[]): Promise<(Uint8Array | null)[]> {
    return this.#run('getMany', (call) => this.store.getMany(keys, call))
  }

  set(key: string, value: Uint8Array, ttlMs: number): Promise<void> {
    return this.#run('set', (call) => this.store.set(key, value, ttlMs, call))
  }

  setMany(writes: readonly L2Write[]): Promise<void> {
    return this.#run('setMany', (call) => this.store.setMany(writes, call))
  }

  delete(keys: readonly string[]): Promise<number> {
    return this.#run('delete', (call) => this.store.delete(keys, call))
  }

  getVersion(versionKey: string): Promise<number> {
    return this.#run('getVersion', (call) => this.store.getVersion(versionKey, call))
  }

  /** The namespace's generation, with the store's restore check when it has one (`L2Store.readGeneration`). */
  readGeneration(generationKey: string, atLeast: number): Promise<GenerationRead> {
    const store = this.store
    if (store.readGeneration === undefined) {
      return this.getVersion(generationKey).then((generation) => ({ generation }))
    }
    return this.#run('readGeneration', (call) => store.readGeneration!(generationKey, atLeast, call))
  }

  /**
   * Whether the store has the restore check of a Redis Cluster's fence shards, whole: `readOrigins`,
   * `raiseForRestores` and `recordOrigins`. Namespaces check their shards only then (`GenerationHost.originKeys`).
   */
  get checksOrigins(): boolean {
    const store = this.store
    return (
      store.readOrigins !== undefined &&
      store.raiseForRestores !== undefined &&
      store.recordOrigins !== undefined
    )
  }

  /** The fence shards' servers (`L2Store.readOrigins`); only for a store that `checksOrigins`. */
  readOrigins(originKeys: readonly string[]): Promise<(OriginRead | null | undefined)[]> {
    return this.#run('readOrigins', (call) => this.store.readOrigins!(originKeys, call))
  }

  /** `L2Store.serverIds`; none for a store without it (every change then counts as a restore). */
  serverIds(): Promise<readonly string[] | undefined> {
    const store = this.store
    if (store.serverIds === undefined) return Promise.resolve([])
    return this.#run('serverIds', (call) => store.serverIds!(call))
  }

  /** `L2Store.raiseForRestores`; only for a store that `checksOrigins`. */
  raiseForRestores(
    generationKey: string,
    atLeast: number,
    changes: readonly string[],
  ): Promise<{ readonly generation: number; readonly raised: boolean }> {
    return this.#run('raiseForRestores', (call) =>
      this.store.raiseForRestores!(generationKey, atLeast, changes, call),
    )
  }

  /** `L2Store.recordOrigins`; only for a store that `checksOrigins`, and nothing for no record. */
  recordOrigins(records: readonly OriginRecord[]): Promise<void> {
    if (records.length === 0) return Promise.resolve()
    return this.#run('recordOrigins', (call) => this.store.recordOrigins!(records, call))
  }

  increment(key: string): Promise<number> {
    return this.#run('increment', (call) => this.store.increment(key, call))
  }

  bumpVersion(versionKey: string, ttlMs: number): Promise<number> {
    return this.#run('bumpVersion', (call) => this.store.bumpVersion(versionKey, ttlMs, call))
  }

  readFence(versionKeys: readonly string[], seqKey: string, epochKey: string): Promise<L2FenceRead> {
    return this.#run('readFence', (call) => this.store.readFence(versionKeys, seqKey, epochKey, call))
  }

  storeFenced(write: L2Write, fence: L2Fence): Promise<boolean> {
    return this.#run('storeFenced', (call) => this.store.storeFenced(write, fence, call))
  }

  markInvalidated(seqKey: string, marks: readonly string[], ttlMs: number): Promise<number> {
    return this.#run('markInvalidated', (call) => this.store.markInvalidated(seqKey, marks, ttlMs, call))
  }

  addToSet(key: string, member: string, ttlMs: number): Promise<void> {
    return this.#run('addToSet', (call) => this.store.addToSet(key, member, ttlMs, call))
  }

  /**
   * Deletes every member of the set at `key`, and the set: renamed first (atomically) so members added meanwhile go
   * to a new set and are not lost, then scanned and unlinked in steps, each bounded by the L2 timeout.
   * Resolves to the number of members deleted.
   */
  async deleteSetMembers(key: string, snapshot: string, count = 500): Promise<number> {
    if (!(await this.#run('rename', (call) => this.store.renameIfExists(key, snapshot, call)))) return 0
    let cursor = '0'
    let deleted = 0
    do {
      const step = await this.#run('sscan', (call) => this.store.scanSet(snapshot, cursor, count, call))
      cursor = step.cursor
      if (step.members.length > 0) deleted += await this.delete(step.members)
    } while (cursor !== '0')
    await this.delete([snapshot])
    return deleted
  }

  tryLock(key: string, token: string, ttlMs: number): Promise<boolean> {
    return this.#run('tryLock', (call) => this.store.tryLock(key, token, ttlMs, call))
  }

  acquireLock(key: string, token: string, ttlMs: number): Promise<LockAttempt> {
    return this.#run('acquireLock', (call) => this.store.acquireLock(key, token, ttlMs, call))
  }

  markPending(key: string, id: string, ttlMs: number): Promise<void> {
    return this.#run('markPending', (call) => this.store.markPending(key, id, ttlMs, call))
  }

  unlock(key: string, token: string): Promise<boolean> {
    return this.#run('unlock', (call) => this.store.unlock(key, token, call))
  }

  extendLock(key: string, token: string, ttlMs: number): Promise<boolean> {
    return this.#run('extendLock', (call) => this.store.extendLock(key, token, ttlMs, call))
  }

  // Inspection (cache.inspect()): a refusal is an answer, so it counts as a success for the breaker.

  info(section: string): Promise<L2Answer<Readonly<Record<string, string>>>> {
    return this.#run('info', (call) => this.store.info(section, call))
  }

  configGet(pattern: string): Promise<L2Answer<Readonly<Record<string, string>>>> {
    return this.#run('configGet', (call) => this.store.configGet(pattern, call))
  }

  memoryUsage(keys: readonly string[]): Promise<L2Answer<(number | null)[]>> {
    return this.#run('memoryUsage', (call) => this.store.memoryUsage(keys, call))
  }

  strlen(keys: readonly string[]): Promise<(number | null)[]> {
    return this.#run('strlen', (call) => this.store.strlen(keys, call))
  }

  /** The server's clock in epoch ms; rejects when the store has none (`L2Store.serverTime`). */
  serverTime(): Promise<number> {
    const store = this.store
    if (store.serverTime === undefined) return Promise.reject(new Error('this L2 store has no clock'))
    return this.#run('serverTime', (call) => store.serverTime!(call))
  }

  ttlMany(keys: readonly string[]): Promise<number[]> {
    return this.#run('ttlMany', (call) => this.store.ttlMany(keys, call))
  }

  scan(pattern: string, cursor: string, count: number): Promise<{ cursor: string; keys: string[] }> {
    return this.#run('scan', (call) => this.store.scan(pattern, cursor, count, call))
  }

  queueAppend(
    queue: string,
    fields: Readonly<Record<string, string | Uint8Array>>,
    maxLength?: number,
  ): Promise<string> {
    return this.#run('queueAppend', (call) => this.store.queueAppend(queue, fields, maxLength, call))
  }

  queueCreateGroup(queue: string, group: string): Promise<void> {
    return this.#run('queueCreateGroup', (call) => this.store.queueCreateGroup(queue, group, call))
  }

  queueRead(queue: string, group: string, consumer: string, count: number): Promise<QueueEntry[]> {
    return this.#run('queueRead', (call) => this.store.queueRead(queue, group, consumer, count, call))
  }

  queuePending(queue: string, group: string, minIdleMs: number, count: number): Promise<PendingQueueEntry[]> {
    return this.#run('queuePending', (call) => this.store.queuePending(queue, group, minIdleMs, count, call))
  }

  queueClaim(
    queue: string,
    group: string,
    consumer: string,
    minIdleMs: number,
    ids: readonly string[],
  ): Promise<QueueEntry[]> {
    return this.#run('queueClaim', (call) =>
      this.store.queueClaim(queue, group, consumer, minIdleMs, ids, call),
    )
  }

  queueAck(queue: string, group: string, ids: readonly string[]): Promise<void> {
    return this.#run('queueAck', (call) => this.store.queueAck(queue, group, ids, call))
  }

  queueGet(queue: string, id: string): Promise<QueueEntry | undefined> {
    return this.#run('queueGet', (call) => this.store.queueGet(queue, id, call))
  }

  queueSize(queue: string, group: string): Promise<{ length: number; pending: number }> {
    return this.#run('queueSize', (call) => this.store.queueSize(queue, group, call))
  }

  /** `L2Store.queueDropped`; undefined when the store has no such count. */
  queueDropped(queue: string, group: string): Promise<number | undefined> {
    const store = this.store
    if (store.queueDropped === undefined) return Promise.resolve(undefined)
    return this.#run('queueDropped', (call) => store.queueDropped!(queue, group, call))
  }

  queueSettleDropped(queue: string, group: string, count: number): Promise<void> {
    const store = this.store
    if (store.queueSettleDropped === undefined) return Promise.resolve()
    return this.#run('queueSettleDropped', (call) => store.queueSettleDropped!(queue, group, count, call))
  }

  queueDeleteConsumer(queue: string, group: string, consumer: string): Promise<void> {
    return this.#run('queueDeleteConsumer', (call) =>
      this.store.queueDeleteConsumer(queue, group, consumer, call),
    )
  }

  publish(channel: string, message: string): Promise<void> {
    return this.#run('publish', (call) => this.store.publish(channel, message, call))
  }

  subscribe(channel: string, listener: (message: string) => void): Promise<void> {
    return this.#run('subscribe', () => this.store.subscribe(channel, listener))
  }

  /**
   * Deletes every key starting with `prefix`: SCAN steps and UNLINK batches, each bounded by the L2 timeout, so a
   * paused or unreachable Redis makes it reject instead of hang. The prefix holds no glob character. Resolves to the
   * number of deleted keys for which `counts` is true (the caller's entries, not its bookkeeping keys).
   */
  async deletePrefix(
    prefix: string,
    counts: (key: string) => boolean = () => true,
    count = 500,
  ): Promise<number> {
    let cursor = '0'
    let deleted = 0
    do {
      const step = await this.#run('scan', (call) => this.store.scan(prefix + '*', cursor, count, call))
      cursor = step.cursor
      if (step.keys.length > 0) {
        await this.delete(step.keys)
        deleted += step.keys.filter(counts).length
      }
    } while (cursor !== '0')
    return deleted
  }

  /**
   * Runs one L2 call under the breaker and the deadline. One promise and one record per call: the breaker's verdict
   * and the timeout are settled in the same handlers (this path carries every L2 hit, so layers of async functions
   * and per-call closures show in its CPU and GC profile). A failure or timeout settles the call before its
   * bookkeeping, whose callbacks reach user code; a success is told to the breaker first (see `#answered`).
   */
  #run<T>(operation: string, run: (call: L2Call) => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => this.#start(operation, run, { resolve, reject }))
  }

  /**
   * `#run`, settling `reply` (a get's reply, a coalesced batch: no promise of its own). `key`: a single-key GET's,
   * which its `run` reads from the call. `read`: a key of a read (one slot), whose slot's breaker then decides.
   */
  #start<T>(
    operation: string,
    run: (call: L2Call) => Promise<T>,
    reply: Settler<T>,
    key?: string,
    read?: string,
  ): void {
    this.#outcomes.calls++
    const breaker = read === undefined || this.#slots === undefined ? this.#breaker : this.#slotBreaker(read)
    if (!breaker.allow()) {
      this.#outcomes.refused++
      const refusal = this.#report(operation, new L2CircuitOpenError(breaker.retryInMs(), operation))
      // Never from inside the caller's own call: a get's callbacks (getThen) run after it returned, as a reply's do.
      queueMicrotask(() => reply.reject(refusal))
      return
    }
    // The epoch is read right after allow(): a probe let through in the half-open state carries that state's epoch.
    const call = new Call<T>(
      operation,
      performance.now(),
      breaker,
      this.#breaker.epoch,
      this.#timedOut,
      reply,
      key,
    )
    this.#deadlines.track(call)
    let sent: Promise<T>
    try {
      // Promise.resolve: a custom store that answers a plain value must not throw here (this may run from
      // process.nextTick, where a throw would end the process).
      sent = Promise.resolve(run(call))
    } catch (error) {
      // A store that throws instead of rejecting: same handling as a rejection.
      sent = Promise.reject(error instanceof Error ? error : new Error(String(error)))
    }
    sent.then(
      (result) => this.#answered(call, result),
      (error: unknown) => this.#failed(call, error),
    )
  }

  #answered<T>(call: Call<T>, result: T): void {
    if (call.done) return
    call.done = true
    this.#deadlines.untrack(call)
    const reply = call.reply!
    call.reply = undefined
    this.#outcomes.succeeded++
    this.#latency.observe(performance.now() - call.started)
    // The breaker hears of the success before the caller does: work the answer starts at once (a refresh's lock
    // attempt, a load's lock subscription) must find the circuit that a half-open probe just closed, not be refused
    // by it. The breaker isolates its onChange, so this cannot keep the call from settling.
    this.#succeeded(call)
    reply.resolve(result)
  }

  #failed<T>(call: Call<T>, error: unknown): void {
    if (call.done) return
    call.done = true
    this.#deadlines.untrack(call)
    const reply = call.reply!
    call.reply = undefined
    this.#outcomes.failures++
    this.#latency.observe(performance.now() - call.started)
    const kind = this.#replyKind(error)
    const failure = new L2Error(call.operation, { cause: error }, kind)
    reply.reject(this.#report(call.operation, failure))
    if (kind === undefined) {
      call.breaker.failure(call.epoch)
      return
    }
    // Redis answered: it is up. The reply fails this call only, and says nothing against the next ones.
    this.#succeeded(call)
    this.#errorReply(kind, call.operation, failure)
  }

  /** The deadline passed first (the queue set `done`): a command still queued in the client is never sent late. */
  readonly #timedOut = (call: Call<never>): void => {
    call.abandon()
    const reply = call.reply!
    call.reply = undefined
    this.#outcomes.timeouts++
    reply.reject(this.#report(call.operation, new L2TimeoutError(call.operation, this.#deadlines.timeoutMs)))
    call.breaker.failure(call.epoch)
  }

  /**
   * A call reached Redis. Its own breaker hears it. A slot's read also resets the store's count of failures in a
   * row, as every success did before slots had breakers, but never closes the store's open circuit: that one is
   * for the calls that are not reads (locks, fences, stores, the bus), which a dead master's loads keep failing.
   */
  #succeeded(call: Call): void {
    call.breaker.success(call.epoch)
    // In the epoch it was sent in only: a read sent before the store's circuit opened, answered after a probe closed
    // it, says nothing of the new closed state.
    if (call.breaker !== this.#breaker && this.#breaker.state === 'closed')
      this.#breaker.success(call.storeEpoch)
  }

  /** The read breaker of `key`'s slot, made on first use (at most one per slot the namespaces' keys hash to). */
  #slotBreaker(key: string): CircuitBreaker {
    const slot = this.store.coalesceGroupOf!(key)
    let breaker = this.#slots!.get(slot)
    if (breaker === undefined) {
      breaker = this.#newSlotBreaker()
      this.#slots!.set(slot, breaker)
    }
    return breaker
  }

  /** The error reply's kind, or undefined for a failure to reach Redis (or a store that cannot tell). */
  #replyKind(error: unknown): string | undefined {
    try {
      return this.store.errorReplyKind?.(error)
    } catch {
      return undefined
    }
  }

  #errorReply(kind: string, operation: string, error: L2Error): void {
    this.#outcomes.errorReplies++
    const counted = this.#replyKinds.has(kind) || this.#replyKinds.size < MAX_REPLY_KINDS ? kind : 'OTHER'
    const seen = this.#replyKinds.get(counted) ?? 0
    this.#replyKinds.set(counted, seen + 1)
    if (channels.l2ErrorReply.hasSubscribers) channels.l2ErrorReply.publish({ operation, kind, error })
    const reply: ErrorReply = { kind, operation, error, first: seen === 0 }
    this.#notify(() => this.#hooks.onErrorReply?.(reply))
  }

  /** Runs a hook that reaches user code (the logger): what it throws must not keep a call from settling. */
  #notify(hook: () => void): void {
    try {
      hook()
    } catch {
      // Ignored: a logging failure is not the cache's failure.
    }
  }

  #report(operation: string, error: Error): Error {
    if (channels.l2Error.hasSubscribers) channels.l2Error.publish({ operation, error })
    return error
  }
}
