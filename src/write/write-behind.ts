// Write-behind: writes queued durably in a Redis stream, flushed to the source in batches by a consumer group.
import { randomBytes, randomUUID } from 'node:crypto'
import { hostname } from 'node:os'
import type { Serializer } from '../codecs/serializer.js'
import type { Clock } from '../core/clock.js'
import { channels } from '../observability/channels.js'
import type { L2Guard } from '../policies/l2-guard.js'
import type { QueueEntry } from '../tiers/l2-store.js'
import type { Logger } from '../options.js'

/** What the source's write functions receive besides the value. */
export interface WriteContext {
  readonly namespace: string
  /** The full cache key (for `writeMany`, the first key of the batch). */
  readonly key: string
  /** Aborted when the cache closes. */
  readonly signal: AbortSignal
  /**
   * With write-behind: a unique id of this write, the same on every retry. A flush can be repeated (the flushing
   * process died after the source took the write and before it was acknowledged), so store it with the write and
   * skip ids you have already applied: then every write lands exactly once.
   */
  readonly idempotencyKey?: string
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
  readonly flush: boolean
}

/** Counters a namespace reports in its stats. */
export interface WriteBehindCounters {
  writesQueued: number
  writesFlushed: number
  writeRetries: number
  writesDeadLettered: number
  writesClaimed: number
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
}

/** The consumer group every process flushes in: each queued write is handed to one of them. */
const GROUP = 'stratacache'

/** Most entries of the read-your-writes overlay checked against the stream per flush tick. */
const OVERLAY_CHECKS_PER_TICK = 64

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
 * The write-behind queue of one namespace. `append` adds a write to a Redis stream (durable once it resolves). One
 * process at a time flushes: the holder of a lease in Redis, renewed every third of `claimAfter`; the others with
 * `flush` on stand by. The holder reads the stream through a consumer group and calls the source in batches, and
 * acknowledges (then deletes) a write only after the source took it. When a holder dies, its lease lapses after
 * `claimAfter`; the next holder first takes over every write the old one left unacknowledged, oldest first, then
 * goes on with new ones. So delivery is at least once (the idempotency key makes it exactly once in a source that
 * checks it), and a key's writes reach the source in the order they were queued: one flusher, in stream order, and
 * a failing write holds back the later writes of its key.
 */
export class WriteBehindQueue<P, V> {
  readonly #host: WriteBehindHost<P, V>
  readonly #consumer = `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`
  readonly #dead: string
  /** Writes read or claimed by this process and not yet acknowledged, by stream id. */
  readonly #held = new Map<string, Held<P, V>>()
  /** This process's own queued writes by key (the latest one), served to its reads until flushed. */
  readonly #overlay = new Map<string, { id: string; value: V }>()
  readonly #lease: string
  #timer: ReturnType<typeof setInterval> | undefined
  #renewTimer: ReturnType<typeof setInterval> | undefined
  #tick: Promise<void> | undefined
  #groupReady = false
  /** performance.now() until which this process may flush: its lease's end, less a margin; 0 without the lease. */
  #leaseValidUntil = 0
  #stopped = false

  constructor(host: WriteBehindHost<P, V>) {
    this.#host = host
    this.#dead = `${host.stream}:dead`
    this.#lease = `${host.stream}:lease`
  }

  /** The stream of writes that failed `maxAttempts` times (or did not decode). */
  get deadLetterStream(): string {
    return this.#dead
  }

  /** Starts the flush timer (a process that only queues still uses it to forget its flushed writes). */
  start(): void {
    if (this.#timer !== undefined) return
    const { flushIntervalMs, claimAfterMs } = this.#host.config
    this.#timer = setInterval(() => void this.#runTick(), flushIntervalMs).unref()
    this.#renewTimer = setInterval(() => void this.#renewLease(), claimAfterMs / 3).unref()
  }

  /**
   * Queues one write durably. Resolves once Redis has it; rejects with the L2 error (nothing queued) otherwise.
   * @throws L2 errors (ERR_STRATA_L2_*).
   */
  async append(key: string, params: P, value: V, bytes: Uint8Array): Promise<string> {
    const idempotencyKey = randomUUID()
    const queuedAt = this.#host.clock.now()
    const id = await this.#host.l2.queueAppend(this.#host.stream, {
      k: key,
      p: JSON.stringify(params),
      v: bytes,
      s: String(this.#host.serializer.id),
      i: idempotencyKey,
      t: String(queuedAt),
    })
    this.#host.counters.writesQueued++
    // Re-inserted so the overlay stays in queueing order: the oldest entries are checked first.
    this.#overlay.delete(key)
    this.#overlay.set(key, { id, value })
    return id
  }

  /**
   * This process's latest queued write of `key` while it is still in the stream (not yet taken by the source):
   * reads answer with it rather than loading the older value from the source. When Redis cannot tell, the queued
   * value is the better answer too.
   */
  async pending(key: string): Promise<{ value: V } | undefined> {
    const queued = this.#overlay.get(key)
    if (queued === undefined) return undefined
    let stillQueued = true
    try {
      stillQueued = await this.#host.l2.queueHas(this.#host.stream, queued.id)
    } catch {
      // Unknown: keep answering with the queued value.
    }
    if (stillQueued) return { value: queued.value }
    if (this.#overlay.get(key) === queued) this.#overlay.delete(key)
    return undefined
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
   * Stops flushing: waits for the step under way. Writes held here and not acknowledged stay pending in the
   * stream, claimed by another process after `claimAfter`. With none held, this process leaves the group.
   */
  async stop(): Promise<void> {
    this.#stopped = true
    clearInterval(this.#timer)
    clearInterval(this.#renewTimer)
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
        this.#pruneOverlay().then(
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
    await this.#pruneOverlay()
    if (!(await this.#takeLease())) return false
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
   * This process holds the flush lease: it had it and it is still valid, or it just took it (SET NX PX, token =
   * this consumer's name). Renewal runs on its own timer, so a long batch does not lose it.
   */
  async #takeLease(): Promise<boolean> {
    if (performance.now() < this.#leaseValidUntil) return true
    const { l2, config } = this.#host
    const started = performance.now()
    // Ours already (a renewal failed for a while, but no one took it): extend; else try to take it.
    const ours =
      this.#leaseValidUntil > 0 && (await l2.extendLock(this.#lease, this.#consumer, config.claimAfterMs))
    if (ours || (await l2.tryLock(this.#lease, this.#consumer, config.claimAfterMs))) {
      this.#leaseValidUntil = started + config.claimAfterMs * 0.9
      return true
    }
    this.#loseLease()
    return false
  }

  async #renewLease(): Promise<void> {
    if (this.#leaseValidUntil === 0 || this.#stopped) return
    const started = performance.now()
    try {
      if (await this.#host.l2.extendLock(this.#lease, this.#consumer, this.#host.config.claimAfterMs)) {
        this.#leaseValidUntil = started + this.#host.config.claimAfterMs * 0.9
      } else {
        this.#loseLease()
      }
    } catch {
      // Redis unreachable: the lease runs out by its own clock (#leaseValidUntil) if this goes on.
    }
  }

  /**
   * Another process holds the lease: what this one read and did not acknowledge is pending under its name, and the
   * new holder takes it over. Forget it here so this process never writes it too.
   */
  #loseLease(): void {
    this.#leaseValidUntil = 0
    for (const [id, held] of this.#held) if (!held.written) this.#held.delete(id)
  }

  /** Takes over the writes earlier holders left unacknowledged (a flusher that died, hung, or lost the lease). */
  async #claim(): Promise<boolean> {
    const { l2, stream, config } = this.#host
    const pending = await l2.queuePending(stream, GROUP, 0, config.batchSize + this.#held.size)
    const theirs = pending.filter((p) => p.consumer !== this.#consumer && !this.#held.has(p.id))
    if (theirs.length === 0) return false
    const deliveries = new Map(theirs.map((p) => [p.id, p.deliveries]))
    const claimed = await l2.queueClaim(
      stream,
      GROUP,
      this.#consumer,
      0,
      theirs.map((p) => p.id),
    )
    // Each earlier delivery counts as a failed attempt: a write that kills its flusher every time ends up a dead
    // letter instead of killing every process in turn.
    for (const entry of claimed) this.#hold(entry, Math.max(0, (deliveries.get(entry.id) ?? 1) - 1))
    this.#host.counters.writesClaimed += claimed.length
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
    for (const held of [...this.#held.values()].sort((a, b) => compareIds(a.id, b.id))) {
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
    const { counters, config } = this.#host
    const undecodable = batch.filter((h) => h.write === undefined)
    const overLimit = batch.filter((h) => h.write !== undefined && h.attempts >= config.maxAttempts)
    const writable = batch.filter((h) => h.write !== undefined && h.attempts < config.maxAttempts)
    for (const held of [...undecodable, ...overLimit]) await this.#deadLetter(held)
    if (writable.length === 0 || performance.now() >= this.#leaseValidUntil) return
    const failures = new Map<Held<P, V>, unknown>()
    if (this.#host.writeMany !== undefined) {
      const writes = writable.map((h) => h.write!)
      try {
        await this.#host.writeMany(writes, this.#context(writes[0]!.key, undefined))
      } catch (error) {
        for (const held of writable) failures.set(held, error ?? new Error('writeMany threw nothing'))
      }
    } else {
      // One at a time, in queue order; a failed write holds back the later writes of its key in this batch.
      const failedKeys = new Set<string>()
      for (const held of writable) {
        const write = held.write!
        // The lease ran out mid-batch (Redis unreachable, or this process was paused): stop, the rest waits.
        if (performance.now() >= this.#leaseValidUntil) {
          failures.set(held, undefined)
          continue
        }
        if (failedKeys.has(write.key)) {
          failures.set(held, undefined)
          continue
        }
        try {
          await this.#host.write!(write.params, write.value, this.#context(write.key, write.idempotencyKey))
        } catch (error) {
          failures.set(held, error ?? new Error('write threw nothing'))
          failedKeys.add(write.key)
        }
      }
    }
    const now = this.#host.clock.now()
    for (const held of writable) {
      if (!failures.has(held)) {
        held.written = true
        continue
      }
      const error = failures.get(held)
      // Held back behind a failed write of its key: not an attempt of its own.
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
    if (key !== undefined && this.#overlay.get(key)?.id === held.id) this.#overlay.delete(key)
  }

  /** Forgets overlay entries another process has flushed (this one only learns by asking the stream). */
  async #pruneOverlay(): Promise<void> {
    if (this.#overlay.size === 0) return
    const oldest = [...this.#overlay].slice(0, OVERLAY_CHECKS_PER_TICK)
    const present = await Promise.all(oldest.map(([, q]) => this.#host.l2.queueHas(this.#host.stream, q.id)))
    oldest.forEach(([key, queued], i) => {
      if (!present[i] && this.#overlay.get(key) === queued) this.#overlay.delete(key)
    })
  }

  #context(key: string, idempotencyKey: string | undefined): WriteContext {
    const context = { namespace: this.#host.namespace, key, signal: this.#host.signal }
    return idempotencyKey === undefined ? context : { ...context, idempotencyKey }
  }
}

/** Orders stream ids `ms-seq` numerically. */
function compareIds(a: string, b: string): number {
  const [am = '0', as = '0'] = a.split('-')
  const [bm = '0', bs = '0'] = b.split('-')
  return Number(am) - Number(bm) || Number(as) - Number(bs)
}
