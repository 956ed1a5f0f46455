// Write-behind: writes queued durably in a Redis stream, flushed to the source in batches by a consumer group.
import { randomBytes, randomUUID } from 'node:crypto'
import { hostname } from 'node:os'
import type { Serializer } from '../codecs/serializer.js'
import type { Clock } from '../core/clock.js'
import { channels } from '../observability/channels.js'
import type { L2Guard } from '../policies/l2-guard.js'
import type { QueueEntry } from '../tiers/l2-store.js'
import type { Logger } from '../options.js'
import { WriteQueueFullError, WriteTimeoutError } from '../errors.js'
import { callWithin, timerDelay, type CallSignal } from '../core/bounded-call.js'
import { PendingOverlay } from './pending-overlay.js'
import { compareStreamIds } from '../core/stream-id.js'
import { QueueBudget } from './queue-budget.js'

/** What the source's write functions receive besides the value. */
export interface WriteContext {
  readonly namespace: string
  /** The full cache key (for `writeMany`, the first key of the batch). */
  readonly key: string
  /**
   * Aborted when the cache closes; for `write()` when the call passes the namespace's `timeouts.write` (`write()`
   * then rejects with ERR_STRATA_WRITE_TIMEOUT); with write-behind when it passes `writeBehind.writeTimeout` (or the
   * flusher's lease runs out): the flusher has stopped waiting, and the write will be delivered again.
   */
  readonly signal: AbortSignal
  /**
   * With write-behind: a unique id of this write, the same on every retry. A flush can be repeated (the flushing
   * process died after the source took the write and before it was acknowledged), so store it with the write and
   * skip ids you have already applied: then every write lands exactly once.
   */
  readonly idempotencyKey?: string
}

/**
 * What a source write function receives, for `write()` and the write-behind flusher alike. Its signal is read through
 * a getter, so that it is made only if the source reads it (see `CallSignal`); the object is never spread here.
 */
export function writeContext(
  namespace: string,
  key: string,
  call: CallSignal,
  idempotencyKey?: string,
): WriteContext {
  const context: { namespace: string; key: string; readonly signal: AbortSignal; idempotencyKey?: string } = {
    namespace,
    key,
    get signal() {
      return call.signal
    },
  }
  if (idempotencyKey !== undefined) context.idempotencyKey = idempotencyKey
  return context
}

/** One queued write, as a write-behind flush hands it to `writeMany`. */
export interface QueuedWrite<P, V> {
  readonly params: P
  readonly value: V
  readonly key: string
  /** Unique per write, stable across retries: see {@link WriteContext.idempotencyKey}. */
  readonly idempotencyKey: string
  /** Epoch ms when `write()` queued it. */
  readonly queuedAt: number
}

export interface ResolvedWriteBehind {
  readonly batchSize: number
  readonly flushIntervalMs: number
  readonly maxAttempts: number
  readonly retryDelayMs: number
  readonly maxRetryDelayMs: number
  readonly claimAfterMs: number
  readonly writeTimeoutMs: number
  readonly maxQueued: number
  readonly flush: boolean
}

/** Counters a namespace reports in its stats. */
export interface WriteBehindCounters {
  writesQueued: number
  writesFlushed: number
  writeRetries: number
  writesDeadLettered: number
  writesClaimed: number
  /**
   * Source calls cut by `writeTimeout` (each also a failed attempt in `writeRetries`). Optional: counted only when
   * the host's counters have the field.
   */
  writeTimeouts?: number
  /** `write()` calls refused because the queue held `maxQueued` writes. Optional, like `writeTimeouts`. */
  writesRefused?: number
}

/** What the queue needs from its namespace. */
export interface WriteBehindHost<P, V> {
  readonly namespace: string
  /** The stream holding queued writes; `${stream}:dead` holds those that failed `maxAttempts` times. */
  readonly stream: string
  readonly l2: L2Guard
  readonly serializer: Serializer
  readonly clock: Clock
  readonly signal: AbortSignal
  readonly config: ResolvedWriteBehind
  readonly counters: WriteBehindCounters
  readonly write: ((params: P, value: V, context: WriteContext) => unknown) | undefined
  readonly writeMany: ((writes: readonly QueuedWrite<P, V>[], context: WriteContext) => unknown) | undefined
  /** Tracks work `close()` must wait for; the promise must not reject. */
  background(work: Promise<unknown>): void
  readonly logger: Logger
  /** The entry's pending-write mark (`KeySchema.pendingMark`), set while a write of it is queued. */
  pendingMark(key: string): string | undefined
}

/**
 * How long an entry's pending-write mark lives (`L2Store.markPending`): while it does, no load stores the source's
 * older value of the entry. A write queued longer (the source down for a day) loses that protection, not itself.
 */
const PENDING_MARK_TTL_MS = 24 * 60 * 60 * 1000

/** The consumer group every process flushes in: each queued write is handed to one of them. */
const GROUP = 'stratacache'

/** A write this process holds: read from the stream (or claimed), not yet acknowledged. */
interface Held<P, V> {
  readonly id: string
  readonly fields: Readonly<Record<string, Uint8Array>>
  /** Undefined when the entry does not decode: it goes to the dead letters at once. */
  readonly write: QueuedWrite<P, V> | undefined
  readonly problem: string | undefined
  attempts: number
  dueAt: number
  /** The source took it; only the acknowledgement is left (retried without calling the source again). */
  written: boolean
  lastError: string | undefined
}

/**
 * The write-behind queue of one namespace. `append` adds a write to a Redis stream (durable once it resolves), unless
 * the queue already holds `maxQueued` writes. One process at a time flushes: the holder of a lease in Redis; the
 * others with `flush` on stand by. The holder reads the stream through a consumer group, calls the source in
 * batches, each call bounded by `writeTimeout`, and acknowledges (then deletes) a write only after the source took
 * it. It renews its lease from this flush loop, never from a timer of its own, and only while its source answers: a
 * source call that times out stops the renewals until a later call settles. So a holder that hangs, like one that
 * died, loses the lease `claimAfter` after its last renewal; the next holder first takes over every write the old
 * one left unacknowledged, oldest first, then goes on with new ones. Delivery is at least once (the idempotency key
 * makes it exactly once in a source that checks it), and a key's writes reach the source in the order they were
 * queued: one flusher, in stream order, and a failing write holds back the later writes of its key.
 */
export class WriteBehindQueue<P, V> {
  readonly #host: WriteBehindHost<P, V>
  readonly #consumer = `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`
  readonly #dead: string
  /** Writes read or claimed by this process and not yet acknowledged, by stream id. */
  readonly #held = new Map<string, Held<P, V>>()
  /** This process's own queued writes by key (the latest one), served to its reads until flushed. */
  readonly #overlay: PendingOverlay<V>
  readonly #budget: QueueBudget
  readonly #lease: string
  #timer: ReturnType<typeof setInterval> | undefined
  #tick: Promise<void> | undefined
  #groupReady = false
  /** performance.now() until which this process may flush: its lease's end, less a margin; 0 without the lease. */
  #leaseValidUntil = 0
  /** performance.now() when this process last took or renewed the lease. */
  #renewedAt = 0
  /** performance.now() of the first source call that timed out with none settling since; undefined otherwise. */
  #stuckSince: number | undefined
  /** performance.now() before which this process does not take the lease again: it gave it up, stuck. */
  #retakeAfter = 0
  #stopped = false

  constructor(host: WriteBehindHost<P, V>) {
    this.#host = host
    this.#dead = `${host.stream}:dead`
    this.#lease = `${host.stream}:lease`
    this.#overlay = new PendingOverlay(async (id) => (await host.l2.queueGet(host.stream, id)) !== undefined)
    const { namespace, stream, config, logger } = host
    this.#budget = new QueueBudget({
      max: config.maxQueued,
      // Counted at least once a second while writes come, however long the flush interval.
      maxAgeMs: Math.min(config.flushIntervalMs, 1_000),
      count: async () => {
        const { queued, deadLetters } = await this.size()
        return queued + deadLetters
      },
      onFull: (queued) =>
        logger.warn(
          { namespace, stream, queued, maxQueued: config.maxQueued },
          'stratacache: the write-behind queue is full (writeBehind.maxQueued); write() refuses new writes until ' +
            'it drains: is the source down, or are dead letters waiting?',
        ),
      onRoom: (queued) =>
        logger.info(
          { namespace, stream, queued, maxQueued: config.maxQueued },
          'stratacache: the write-behind queue has room again; write() accepts new writes',
        ),
    })
  }

  /** The stream of writes that failed `maxAttempts` times (or did not decode). */
  get deadLetterStream(): string {
    return this.#dead
  }

  /** Starts the flush timer (a process that only queues still uses it to forget its flushed writes). */
  start(): void {
    if (this.#timer !== undefined) return
    this.#timer = setInterval(
      () => void this.#runTick(),
      timerDelay(this.#host.config.flushIntervalMs),
    ).unref()
  }

  /**
   * Queues one write durably. Resolves once Redis has it; rejects (nothing queued) when the queue is full or Redis
   * could not take it.
   * @throws WriteQueueFullError when the queue holds `maxQueued` writes; L2 errors (ERR_STRATA_L2_*).
   */
  async append(key: string, params: P, value: V, bytes: Uint8Array): Promise<string> {
    const { l2, stream, serializer, clock, counters, namespace, config } = this.#host
    const full = await this.#budget.admit()
    if (full !== undefined) {
      if (counters.writesRefused !== undefined) counters.writesRefused++
      throw new WriteQueueFullError(namespace, full, config.maxQueued)
    }
    const idempotencyKey = randomUUID()
    const queuedAt = clock.now()
    const mark = this.#host.pendingMark(key)
    let id: string
    try {
      id = await l2.queueAppend(stream, {
        k: key,
        p: JSON.stringify(params),
        v: bytes,
        s: String(serializer.id),
        i: idempotencyKey,
        t: String(queuedAt),
        ...(mark === undefined ? {} : { m: mark }),
      })
    } catch (error) {
      this.#budget.release()
      throw error
    }
    // From now until the source has it, no load stores the source's older value (in any process). The write is
    // queued even if this fails (counted in stats().l2 by the guard): only that protection is missing.
    if (mark !== undefined) await l2.markPending(mark, id, PENDING_MARK_TTL_MS).catch(() => undefined)
    counters.writesQueued++
    this.#overlay.set(key, id, value)
    return id
  }

  /**
   * The latest queued write of `key`, by any process, while the stream still holds it: reads answer with it rather
   * than load the source's older value. The entry's pending mark names it (`markPending` keeps the latest id);
   * this process's own write is answered without reading the stream. Without a mark (none set, or flushed) and when
   * Redis cannot tell, this process's own queued write is the answer, as before the marks.
   */
  async pending(key: string): Promise<{ value: V } | undefined> {
    const mark = this.#host.pendingMark(key)
    const own = this.#overlay.peek(key)
    let latest: string | undefined
    try {
      latest = await this.#markedId(mark)
    } catch {
      return this.#overlay.lookup(key)
    }
    if (latest === undefined) return this.#overlay.lookup(key)
    // Marked and not yet acknowledged (the mark goes after), or acknowledged a moment ago: the value is right either way.
    if (own?.id === latest) return { value: own.value }
    try {
      const entry = await this.#host.l2.queueGet(this.#host.stream, latest)
      if (entry === undefined) {
        // The mark outlived its write: set after a flusher had already taken the write off (the writer was slower
        // to mark than the flusher to flush), or its removal failed. Removed here (unless a later write holds it
        // now), or no load of the entry would be stored in L2 until the mark expired.
        this.#host.background(this.#host.l2.unlock(mark!, latest).catch(() => false))
        return undefined
      }
      const decoded = this.#decode(entry)
      return typeof decoded === 'string' ? undefined : { value: decoded.value }
    } catch {
      return this.#overlay.lookup(key)
    }
  }

  /**
   * Whether the entry's pending mark names a write of `key` queued after `id` (by any process). The cache update of
   * `id`'s write may then have landed after the later write's (last writer wins in L2) and must be dropped. False
   * without a mark, and when Redis cannot tell.
   */
  async superseded(key: string, id: string): Promise<boolean> {
    try {
      const latest = await this.#markedId(this.#host.pendingMark(key))
      return latest !== undefined && compareStreamIds(latest, id) > 0
    } catch {
      return false
    }
  }

  /** The stream id a pending mark names; undefined without a mark (none kept, or none set). @throws L2 errors. */
  async #markedId(mark: string | undefined): Promise<string | undefined> {
    if (mark === undefined) return undefined
    const held = await this.#host.l2.get(mark)
    return held === null ? undefined : Buffer.from(held).toString('utf8')
  }

  /**
   * Flushes now: runs flush steps until nothing this process can flush is left (writes waiting for a retry delay
   * stay). Resolves even when the source or Redis fails; those writes stay queued.
   */
  async flush(): Promise<void> {
    for (let steps = 0; steps < 10_000 && !this.#stopped; steps++) {
      await this.#tick
      const progress = await this.#runTick(true)
      if (!progress) break
    }
    // A process that does not flush by itself took the lease for this call only: hand it back.
    if (!this.#host.config.flush && this.#leaseValidUntil > 0 && this.#held.size === 0) {
      this.#leaseValidUntil = 0
      await this.#host.l2.unlock(this.#lease, this.#consumer).catch(() => {})
    }
  }

  /** Entries in the stream (queued and in flight), in flight (delivered, unacknowledged), and dead letters. */
  async size(): Promise<{ queued: number; inFlight: number; deadLetters: number }> {
    const [main, dead] = await Promise.all([
      this.#host.l2.queueSize(this.#host.stream, GROUP),
      this.#host.l2.queueSize(this.#dead, GROUP),
    ])
    return { queued: main.length, inFlight: main.pending, deadLetters: dead.length }
  }

  /**
   * Stops flushing: starts no further source call, and waits for the step under way, which is bounded (its source
   * call by `writeTimeout`, its signal already aborted by the cache's close; each Redis call by the L2 timeout).
   * Writes held here and not acknowledged stay pending in the stream, and the next holder of the lease takes them
   * over. With none held, this process leaves the group.
   */
  async stop(): Promise<void> {
    this.#stopped = true
    clearInterval(this.#timer)
    this.#timer = undefined
    await this.#tick
    if (this.#leaseValidUntil === 0) return
    this.#leaseValidUntil = 0
    const { l2, stream } = this.#host
    // Left in order: with nothing held, leave the group; then hand the lease over at once rather than after it lapses.
    if (this.#held.size === 0) await l2.queueDeleteConsumer(stream, GROUP, this.#consumer).catch(() => {})
    await l2.unlock(this.#lease, this.#consumer).catch(() => {})
  }

  /** One flush step, unless one is under way. Resolves to whether it did anything (for `flush()`). */
  #runTick(eager = false): Promise<boolean> {
    if (this.#tick !== undefined || this.#stopped) return Promise.resolve(false)
    // A process that only queues uses its timer to forget the writes others have flushed, nothing more.
    if (!eager && !this.#host.config.flush) {
      if (this.#overlay.size === 0) return Promise.resolve(false)
      return this.#track(
        this.#overlay.prune().then(
          () => false,
          () => false,
        ),
      )
    }
    return this.#track(
      this.#step(eager).catch(() => {
        // Redis failed (or the circuit is open): everything held stays held; the next tick retries.
        this.#groupReady = false
        return false
      }),
    )
  }

  /** Registers `work` as the step under way (one at a time), tracked for close(). */
  #track(work: Promise<boolean>): Promise<boolean> {
    this.#tick = work.then(() => {
      this.#tick = undefined
    })
    this.#host.background(this.#tick)
    return work
  }

  async #step(eager: boolean): Promise<boolean> {
    const { l2, stream, config } = this.#host
    await this.#overlay.prune()
    if (!(await this.#holdLease())) return false
    if (!this.#groupReady) {
      await l2.queueCreateGroup(stream, GROUP)
      this.#groupReady = true
    }
    let progress = false
    // Acknowledge first what the source already took (an earlier acknowledgement failed): never write it twice.
    progress = (await this.#acknowledge([...this.#held.values()].filter((h) => h.written))) || progress
    // What earlier holders left unacknowledged comes first, oldest first: nothing new is read until it is all held.
    const claimed = await this.#claim()
    progress = claimed || progress
    const room = config.batchSize - this.#held.size
    let readFull = false
    if (room > 0 && !claimed) {
      const entries = await l2.queueRead(stream, GROUP, this.#consumer, room)
      for (const entry of entries) this.#hold(entry, 0)
      progress = entries.length > 0 || progress
      readFull = entries.length === room
    }
    const batch = this.#runnable(this.#host.clock.now())
    if (batch.length > 0) {
      await this.#flushBatch(batch)
      progress = true
    }
    // A full read means more may be waiting: go on at once rather than after the interval (once this step is over).
    if (!eager && (readFull || claimed)) setImmediate(() => void this.#runTick())
    return progress
  }

  /**
   * Whether this process holds the flush lease, renewing or taking it as needed (SET NX PX, token = this consumer's
   * name). Only the flush loop calls it, before each step and each source call: the lease lives as long as the loop
   * goes on and the source answers. A renewal is due a third of `claimAfter` after the last one. While stuck (a
   * source call timed out, none settled since) none is made, and once the lease runs out by this process's clock,
   * it is given up for another process to take.
   */
  async #holdLease(): Promise<boolean> {
    const { l2, config } = this.#host
    const now = performance.now()
    if (this.#leaseValidUntil > 0) {
      const stuck = this.#stuckSince !== undefined
      if (now < this.#leaseValidUntil && (stuck || now < this.#renewedAt + config.claimAfterMs / 3))
        return true
      if (stuck) {
        await this.#giveUpLease()
        return false
      }
      let ours: boolean
      try {
        ours = await l2.extendLock(this.#lease, this.#consumer, config.claimAfterMs)
      } catch {
        // Redis unreachable: the lease runs out by this process's clock if this goes on.
        return performance.now() < this.#leaseValidUntil
      }
      if (!ours) {
        this.#loseLease()
        return false
      }
      this.#leaseValidUntil = now + config.claimAfterMs * 0.9
      this.#renewedAt = now
      return true
    }
    if (now < this.#retakeAfter) return false
    if (!(await l2.tryLock(this.#lease, this.#consumer, config.claimAfterMs))) return false
    this.#leaseValidUntil = now + config.claimAfterMs * 0.9
    this.#renewedAt = now
    this.#stuckSince = undefined
    return true
  }

  /**
   * The source stopped answering (its calls time out) and the lease ran out: hand it over now rather than when it
   * expires in Redis, and stay away for `claimAfter` so that another process takes it and the writes held here.
   */
  async #giveUpLease(): Promise<void> {
    const { l2, config, logger, namespace, stream } = this.#host
    const now = performance.now()
    const stuckForMs = Math.round(now - (this.#stuckSince ?? now))
    this.#loseLease()
    this.#retakeAfter = now + config.claimAfterMs
    // The stream, not a key: keys may carry personal data.
    logger.warn(
      { namespace, stream, stuckForMs, writeTimeoutMs: config.writeTimeoutMs },
      'stratacache: a write-behind flusher gave up its lease: its source calls time out; another process takes ' +
        'over its writes',
    )
    await l2.unlock(this.#lease, this.#consumer).catch(() => {})
  }

  /**
   * Another process holds the lease, or will: what this one read and did not acknowledge is pending under its name,
   * and the new holder takes it over. Forget it here so this process never writes it too.
   */
  #loseLease(): void {
    this.#leaseValidUntil = 0
    for (const [id, held] of this.#held) if (!held.written) this.#held.delete(id)
  }

  /**
   * Takes over the writes earlier holders left unacknowledged (a flusher that died, hung, or lost the lease), this
   * process's own included when it lost the lease and took it again.
   */
  async #claim(): Promise<boolean> {
    const { l2, stream, config } = this.#host
    const pending = await l2.queuePending(stream, GROUP, 0, config.batchSize + this.#held.size)
    const unheld = pending.filter((p) => !this.#held.has(p.id))
    if (unheld.length === 0) return false
    const deliveries = new Map(unheld.map((p) => [p.id, p.deliveries]))
    const others = new Set(unheld.filter((p) => p.consumer !== this.#consumer).map((p) => p.id))
    const claimed = await l2.queueClaim(
      stream,
      GROUP,
      this.#consumer,
      0,
      unheld.map((p) => p.id),
    )
    // Each earlier delivery counts as a failed attempt: a write that kills its flusher every time ends up a dead
    // letter instead of killing every process in turn.
    for (const entry of claimed) this.#hold(entry, Math.max(0, (deliveries.get(entry.id) ?? 1) - 1))
    this.#host.counters.writesClaimed += claimed.filter((entry) => others.has(entry.id)).length
    return claimed.length > 0
  }

  #hold(entry: QueueEntry, attempts: number): void {
    if (this.#held.has(entry.id)) return
    const decoded = this.#decode(entry)
    this.#held.set(entry.id, {
      id: entry.id,
      fields: entry.fields,
      write: typeof decoded === 'string' ? undefined : decoded,
      problem: typeof decoded === 'string' ? decoded : undefined,
      attempts,
      dueAt: 0,
      written: false,
      lastError: undefined,
    })
  }

  #decode(entry: QueueEntry): QueuedWrite<P, V> | string {
    const text = (name: string) => {
      const bytes = entry.fields[name]
      return bytes === undefined ? undefined : Buffer.from(bytes).toString('utf8')
    }
    const key = text('k')
    const params = text('p')
    const idempotencyKey = text('i')
    const bytes = entry.fields['v']
    if (key === undefined || params === undefined || idempotencyKey === undefined || bytes === undefined) {
      return 'not a stratacache write-behind entry (fields k, p, v, i missing)'
    }
    if (text('s') !== String(this.#host.serializer.id)) {
      return `written with serializer ${text('s')}, this cache uses ${this.#host.serializer.id}`
    }
    try {
      return {
        key,
        params: JSON.parse(params) as P,
        value: this.#host.serializer.deserialize(Buffer.from(bytes)) as V,
        idempotencyKey,
        queuedAt: Number(text('t') ?? 0),
      }
    } catch (error) {
      return `does not decode: ${error instanceof Error ? error.message : String(error)}`
    }
  }

  /**
   * The held writes to flush now, oldest first, at most one batch. A write waiting for its retry delay holds back
   * the later writes of its key, so a key's writes reach the source in order.
   */
  #runnable(now: number): Held<P, V>[] {
    const blocked = new Set<string>()
    const batch: Held<P, V>[] = []
    for (const held of [...this.#held.values()].sort((a, b) => compareStreamIds(a.id, b.id))) {
      if (held.written) continue
      const key = held.write?.key
      if (key !== undefined && blocked.has(key)) continue
      if (held.dueAt > now) {
        if (key !== undefined) blocked.add(key)
        continue
      }
      batch.push(held)
      if (batch.length >= this.#host.config.batchSize) break
    }
    return batch
  }

  async #flushBatch(batch: Held<P, V>[]): Promise<void> {
    const { counters, config, signal } = this.#host
    const undecodable = batch.filter((h) => h.write === undefined)
    const overLimit = batch.filter((h) => h.write !== undefined && h.attempts >= config.maxAttempts)
    const writable = batch.filter((h) => h.write !== undefined && h.attempts < config.maxAttempts)
    for (const held of [...undecodable, ...overLimit]) {
      if (this.#stopped) return
      await this.#deadLetter(held)
    }
    if (writable.length === 0) return
    // An error: a failed attempt. Undefined: held back (behind a failed write of its key, the lease lost, the cache
    // closing), not an attempt of its own.
    const failures = new Map<Held<P, V>, unknown>()
    if (this.#host.writeMany !== undefined) {
      if (this.#stopped || signal.aborted || !(await this.#holdLease())) return
      const writes = writable.map((h) => h.write!)
      const outcome = await this.#callSource('writeMany', (callSignal) =>
        this.#host.writeMany!(writes, writeContext(this.#host.namespace, writes[0]!.key, callSignal)),
      )
      if (outcome === 'closing') return
      for (const held of writable) {
        if (outcome === 'ok') held.written = true
        else failures.set(held, outcome.error)
      }
    } else {
      // One at a time, in queue order; a failed write holds back the later writes of its key in this batch.
      const failedKeys = new Set<string>()
      for (const held of writable) {
        const write = held.write!
        // Checked before each call: the lease may have run out (the source is stuck, Redis unreachable, this
        // process paused) or gone to another process; then the rest waits.
        if (this.#stopped || signal.aborted || failedKeys.has(write.key) || !(await this.#holdLease())) {
          failures.set(held, undefined)
          continue
        }
        const outcome = await this.#callSource('write', (callSignal) =>
          this.#host.write!(
            write.params,
            write.value,
            writeContext(this.#host.namespace, write.key, callSignal, write.idempotencyKey),
          ),
        )
        if (outcome === 'ok') {
          held.written = true
          continue
        }
        failures.set(held, outcome === 'closing' ? undefined : outcome.error)
        failedKeys.add(write.key)
      }
    }
    const now = this.#host.clock.now()
    for (const held of writable) {
      if (held.written) continue
      const error = failures.get(held)
      if (error === undefined) {
        held.dueAt = now
        continue
      }
      held.attempts++
      held.lastError = error instanceof Error ? error.message : JSON.stringify(error)
      counters.writeRetries++
      const delay = Math.min(config.maxRetryDelayMs, config.retryDelayMs * 2 ** (held.attempts - 1))
      held.dueAt = now + delay * (0.8 + Math.random() * 0.2)
      if (channels.writeBehindFailed.hasSubscribers) {
        channels.writeBehindFailed.publish({
          namespace: this.#host.namespace,
          key: held.write!.key,
          attempts: held.attempts,
          error,
        })
      }
    }
    await this.#acknowledge(writable.filter((h) => h.written))
  }

  /**
   * One source call, bounded by `writeTimeout` and by the end of the lease (past it, another process may take the
   * write over): 'ok' when it succeeded, 'closing' when it failed because the cache is closing (not the source's
   * fault), else the error that makes it a failed attempt. A timeout marks this flusher stuck until a call settles.
   */
  async #callSource(
    what: 'write' | 'writeMany',
    call: (callSignal: CallSignal) => unknown,
  ): Promise<'ok' | 'closing' | { error: unknown }> {
    const { namespace, config, signal, counters } = this.#host
    const leaseLeftMs = Math.floor(this.#leaseValidUntil - performance.now())
    const timeoutMs = Math.max(1, Math.min(config.writeTimeoutMs, leaseLeftMs))
    const outcome = await callWithin(
      call,
      signal,
      timeoutMs,
      () => new WriteTimeoutError(namespace, timeoutMs),
    )
    if (outcome.ok) {
      this.#stuckSince = undefined
      return 'ok'
    }
    if (outcome.timedOut) {
      this.#stuckSince ??= performance.now()
      if (counters.writeTimeouts !== undefined) counters.writeTimeouts++
      return { error: outcome.error }
    }
    // It settled: the source answers, even if with an error.
    this.#stuckSince = undefined
    if (signal.aborted) return 'closing'
    return { error: outcome.error ?? new Error(`${what} threw nothing`) }
  }

  /** Acknowledges written entries; on failure they stay held as written, and the next step acknowledges them. */
  async #acknowledge(done: Held<P, V>[]): Promise<boolean> {
    if (done.length === 0) return false
    await this.#host.l2.queueAck(
      this.#host.stream,
      GROUP,
      done.map((h) => h.id),
    )
    for (const held of done) {
      this.#forget(held)
    }
    this.#host.counters.writesFlushed += done.length
    return true
  }

  /** Moves a write to the dead-letter stream, with why and after how many attempts, then acknowledges it. */
  async #deadLetter(held: Held<P, V>): Promise<void> {
    const reason = held.problem ?? held.lastError ?? 'failed'
    await this.#host.l2.queueAppend(this.#dead, {
      ...held.fields,
      origin: held.id,
      error: reason,
      attempts: String(held.attempts),
      failedAt: String(this.#host.clock.now()),
    })
    await this.#host.l2.queueAck(this.#host.stream, GROUP, [held.id])
    this.#forget(held)
    this.#host.counters.writesDeadLettered++
    // The stream id, not the key: keys may carry personal data.
    this.#host.logger.error(
      { namespace: this.#host.namespace, id: held.id, stream: this.#dead, attempts: held.attempts, reason },
      'stratacache: a write-behind write failed for good and moved to the dead letters',
    )
    if (channels.writeBehindDeadLetter.hasSubscribers) {
      channels.writeBehindDeadLetter.publish({
        namespace: this.#host.namespace,
        key: held.write?.key,
        id: held.id,
        attempts: held.attempts,
        reason,
      })
    }
  }

  /** A write is done here (acknowledged or dead-lettered): no longer held, no longer served from the overlay. */
  #forget(held: Held<P, V>): void {
    this.#held.delete(held.id)
    const key = held.write?.key
    if (key !== undefined) this.#overlay.forget(key, held.id)
    // The source has it (or it is dead): loads of the entry may store again, unless a later write is queued.
    const mark = held.fields['m']
    if (mark !== undefined) {
      this.#host.background(
        this.#host.l2.unlock(Buffer.from(mark).toString('utf8'), held.id).catch(() => false),
      )
    }
  }
}
