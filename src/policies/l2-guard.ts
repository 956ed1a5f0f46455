// Wraps the L2 store: every call bounded by the L2 timeout, skipped while the circuit is open, failures reported.
import { setMaxListeners } from 'node:events'
import { L2CircuitOpenError, L2Error, L2TimeoutError } from '../errors.js'
import { channels } from '../observability/channels.js'
import { Histogram, type HistogramSnapshot } from '../observability/histogram.js'
import type { L2Answer, L2Store, L2Write, PendingQueueEntry, QueueEntry } from '../tiers/l2-store.js'
import { CircuitBreaker, type CircuitBreakerOptions, type CircuitState } from './circuit-breaker.js'
import { Deadlines } from './deadline.js'

/**
 * The read and write paths call L2 only through this guard. A call either settles within the timeout or rejects
 * with a typed error (L2TimeoutError, L2CircuitOpenError, L2Error); it never hangs on a dead or paused Redis.
 */
export class L2Guard {
  readonly store: L2Store
  readonly #breaker: CircuitBreaker
  readonly #deadlines: Deadlines
  /** Latency of calls that settled (answered or failed), not of those that timed out or the circuit refused. */
  readonly #latency = new Histogram()
  readonly #outcomes = { calls: 0, failures: 0, timeouts: 0, refused: 0 }
  readonly #closing = new AbortController()

  constructor(
    store: L2Store,
    timeoutMs: number,
    breaker: CircuitBreakerOptions,
    onCircuit: (circuit: CircuitState) => void = () => {},
  ) {
    this.store = store
    const now = performance.now.bind(performance)
    this.#breaker = new CircuitBreaker(breaker, now, (circuit: CircuitState) => {
      onCircuit(circuit)
      if (channels.l2State.hasSubscribers) channels.l2State.publish({ circuit })
    })
    this.#deadlines = new Deadlines(timeoutMs, now)
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
    this.#closing.abort()
  }

  /** Calls, failures, timeouts and calls the open circuit refused, with the latency of calls that settled. */
  stats(): {
    calls: number
    failures: number
    timeouts: number
    refused: number
    latencyMs: HistogramSnapshot
  } {
    return { ...this.#outcomes, latencyMs: this.#latency.snapshot() }
  }

  /** The store reconnected: a better signal than the next probe, so the circuit closes at once. */
  connectionRestored(): void {
    if (this.#breaker.state !== 'closed') this.#breaker.success()
  }

  get(key: string): Promise<Uint8Array | null> {
    return this.#run('get', () => this.store.get(key))
  }

  getMany(keys: readonly string[]): Promise<(Uint8Array | null)[]> {
    return this.#run('getMany', () => this.store.getMany(keys))
  }

  set(key: string, value: Uint8Array, ttlMs: number): Promise<void> {
    return this.#run('set', () => this.store.set(key, value, ttlMs))
  }

  setMany(writes: readonly L2Write[]): Promise<void> {
    return this.#run('setMany', () => this.store.setMany(writes))
  }

  delete(keys: readonly string[]): Promise<number> {
    return this.#run('delete', () => this.store.delete(keys))
  }

  getVersion(versionKey: string): Promise<number> {
    return this.#run('getVersion', () => this.store.getVersion(versionKey))
  }

  increment(key: string): Promise<number> {
    return this.#run('increment', () => this.store.increment(key))
  }

  bumpVersion(versionKey: string, ttlMs: number): Promise<number> {
    return this.#run('bumpVersion', () => this.store.bumpVersion(versionKey, ttlMs))
  }

  setIfVersion(
    key: string,
    value: Uint8Array,
    ttlMs: number,
    versionKey: string,
    version: number,
  ): Promise<boolean> {
    return this.#run('setIfVersion', () => this.store.setIfVersion(key, value, ttlMs, versionKey, version))
  }

  addToSet(key: string, member: string, ttlMs: number): Promise<void> {
    return this.#run('addToSet', () => this.store.addToSet(key, member, ttlMs))
  }

  /**
   * Deletes every member of the set at `key`, and the set: renamed first (atomically) so members added meanwhile go
   * to a new set and are not lost, then scanned and unlinked in steps, each bounded by the L2 timeout.
   * Resolves to the number of members deleted.
   */
  async deleteSetMembers(key: string, snapshot: string, count = 500): Promise<number> {
    if (!(await this.#run('rename', () => this.store.renameIfExists(key, snapshot)))) return 0
    let cursor = '0'
    let deleted = 0
    do {
      const step = await this.#run('sscan', () => this.store.scanSet(snapshot, cursor, count))
      cursor = step.cursor
      if (step.members.length > 0) deleted += await this.delete(step.members)
    } while (cursor !== '0')
    await this.delete([snapshot])
    return deleted
  }

  tryLock(key: string, token: string, ttlMs: number): Promise<boolean> {
    return this.#run('tryLock', () => this.store.tryLock(key, token, ttlMs))
  }

  unlock(key: string, token: string): Promise<boolean> {
    return this.#run('unlock', () => this.store.unlock(key, token))
  }

  extendLock(key: string, token: string, ttlMs: number): Promise<boolean> {
    return this.#run('extendLock', () => this.store.extendLock(key, token, ttlMs))
  }

  ttl(key: string): Promise<number> {
    return this.#run('ttl', () => this.store.ttl(key))
  }

  // Inspection (cache.inspect()): a refusal is an answer, so it counts as a success for the breaker.

  info(section: string): Promise<L2Answer<Readonly<Record<string, string>>>> {
    return this.#run('info', () => this.store.info(section))
  }

  configGet(pattern: string): Promise<L2Answer<Readonly<Record<string, string>>>> {
    return this.#run('configGet', () => this.store.configGet(pattern))
  }

  memoryUsage(keys: readonly string[]): Promise<L2Answer<(number | null)[]>> {
    return this.#run('memoryUsage', () => this.store.memoryUsage(keys))
  }

  strlen(keys: readonly string[]): Promise<(number | null)[]> {
    return this.#run('strlen', () => this.store.strlen(keys))
  }

  ttlMany(keys: readonly string[]): Promise<number[]> {
    return this.#run('ttlMany', () => this.store.ttlMany(keys))
  }

  scan(pattern: string, cursor: string, count: number): Promise<{ cursor: string; keys: string[] }> {
    return this.#run('scan', () => this.store.scan(pattern, cursor, count))
  }

  queueAppend(
    queue: string,
    fields: Readonly<Record<string, string | Uint8Array>>,
    maxLength?: number,
  ): Promise<string> {
    return this.#run('queueAppend', () => this.store.queueAppend(queue, fields, maxLength))
  }

  queueCreateGroup(queue: string, group: string): Promise<void> {
    return this.#run('queueCreateGroup', () => this.store.queueCreateGroup(queue, group))
  }

  queueRead(queue: string, group: string, consumer: string, count: number): Promise<QueueEntry[]> {
    return this.#run('queueRead', () => this.store.queueRead(queue, group, consumer, count))
  }

  queuePending(queue: string, group: string, minIdleMs: number, count: number): Promise<PendingQueueEntry[]> {
    return this.#run('queuePending', () => this.store.queuePending(queue, group, minIdleMs, count))
  }

  queueClaim(
    queue: string,
    group: string,
    consumer: string,
    minIdleMs: number,
    ids: readonly string[],
  ): Promise<QueueEntry[]> {
    return this.#run('queueClaim', () => this.store.queueClaim(queue, group, consumer, minIdleMs, ids))
  }

  queueAck(queue: string, group: string, ids: readonly string[]): Promise<void> {
    return this.#run('queueAck', () => this.store.queueAck(queue, group, ids))
  }

  queueHas(queue: string, id: string): Promise<boolean> {
    return this.#run('queueHas', () => this.store.queueHas(queue, id))
  }

  queueSize(queue: string, group: string): Promise<{ length: number; pending: number }> {
    return this.#run('queueSize', () => this.store.queueSize(queue, group))
  }

  queueDeleteConsumer(queue: string, group: string, consumer: string): Promise<void> {
    return this.#run('queueDeleteConsumer', () => this.store.queueDeleteConsumer(queue, group, consumer))
  }

  publish(channel: string, message: string): Promise<void> {
    return this.#run('publish', () => this.store.publish(channel, message))
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
      const step = await this.#run('scan', () => this.store.scan(prefix + '*', cursor, count))
      cursor = step.cursor
      if (step.keys.length > 0) {
        await this.delete(step.keys)
        deleted += step.keys.filter(counts).length
      }
    } while (cursor !== '0')
    return deleted
  }

  /**
   * Runs one L2 call under the breaker and the deadline. One promise per call: the breaker's verdict and the
   * timeout are settled in the same handlers (this path carries every L2 hit, so layers of async functions show).
   * Each handler settles the call before it does its bookkeeping, whose callbacks reach user code.
   */
  #run<T>(operation: string, call: () => Promise<T>): Promise<T> {
    this.#outcomes.calls++
    if (!this.#breaker.allow()) {
      this.#outcomes.refused++
      return Promise.reject(this.#report(operation, new L2CircuitOpenError(this.#breaker.retryInMs())))
    }
    const started = performance.now()
    return new Promise<T>((resolve, reject) => {
      const pending = this.#deadlines.track(() => {
        this.#outcomes.timeouts++
        reject(this.#report(operation, new L2TimeoutError(operation, this.#deadlines.timeoutMs)))
        this.#breaker.failure()
      })
      let promise: Promise<T>
      try {
        promise = call()
      } catch (error) {
        // A store that throws instead of rejecting: same handling as a rejection.
        promise = Promise.reject(error instanceof Error ? error : new Error(String(error)))
      }
      promise.then(
        (result) => {
          if (pending.done) return
          pending.done = true
          this.#latency.observe(performance.now() - started)
          resolve(result)
          this.#breaker.success()
        },
        (error: unknown) => {
          if (pending.done) return
          pending.done = true
          this.#outcomes.failures++
          this.#latency.observe(performance.now() - started)
          reject(this.#report(operation, new L2Error(operation, { cause: error })))
          this.#breaker.failure()
        },
      )
    })
  }

  #report(operation: string, error: Error): Error {
    if (channels.l2Error.hasSubscribers) channels.l2Error.publish({ operation, error })
    return error
  }
}
