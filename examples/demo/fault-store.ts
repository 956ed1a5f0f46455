// A fault-injecting wrapper around the demo's L2 store: "simulate a Redis outage" freezes every L2 call, as a
// paused or partitioned Redis would, so the cache's own timeouts and circuit breaker handle it for real.
import type { L2Status, L2Store, L2StoreEvent, L2Write } from 'stratacache'

/**
 * Passes every call through to `inner` until `outage` is switched on. During an outage a call never answers (the
 * worst case for a client: a connection that is open but silent, like `redis-server` under SIGSTOP), pub/sub
 * messages are dropped, and the real Redis is left untouched. The cache then does what it would do in production:
 * each call gives up after `timeouts.l2`, consecutive failures open the circuit breaker, and reads fall through to
 * L1 and the loader. When the outage ends, the frozen calls are released with an error (their callers gave up long
 * ago) and the circuit's next probe finds Redis again.
 */
export class FaultyL2Store implements L2Store {
  readonly name: string
  readonly #inner: L2Store
  readonly #frozen = new Set<(error: Error) => void>()
  #outage = false

  constructor(inner: L2Store) {
    this.#inner = inner
    this.name = inner.name
  }

  get outage(): boolean {
    return this.#outage
  }

  /** Starts or ends the simulated outage. */
  setOutage(on: boolean): void {
    this.#outage = on
    if (!on) this.#release(new Error('connection reset (simulated Redis outage ended)'))
  }

  get status(): L2Status {
    return this.#inner.status
  }

  get(key: string): Promise<Uint8Array | null> {
    return this.#call(() => this.#inner.get(key))
  }
  getMany(keys: readonly string[]): Promise<(Uint8Array | null)[]> {
    return this.#call(() => this.#inner.getMany(keys))
  }
  set(key: string, value: Uint8Array, ttlMs: number): Promise<void> {
    return this.#call(() => this.#inner.set(key, value, ttlMs))
  }
  setMany(writes: readonly L2Write[]): Promise<void> {
    return this.#call(() => this.#inner.setMany(writes))
  }
  delete(keys: readonly string[]): Promise<number> {
    return this.#call(() => this.#inner.delete(keys))
  }
  scan(pattern: string, cursor: string, count: number): Promise<{ cursor: string; keys: string[] }> {
    return this.#call(() => this.#inner.scan(pattern, cursor, count))
  }
  getVersion(versionKey: string): Promise<number> {
    return this.#call(() => this.#inner.getVersion(versionKey))
  }
  bumpVersion(versionKey: string, ttlMs: number): Promise<number> {
    return this.#call(() => this.#inner.bumpVersion(versionKey, ttlMs))
  }
  setIfVersion(
    key: string,
    value: Uint8Array,
    ttlMs: number,
    versionKey: string,
    version: number,
  ): Promise<boolean> {
    return this.#call(() => this.#inner.setIfVersion(key, value, ttlMs, versionKey, version))
  }
  addToSet(key: string, member: string, ttlMs: number): Promise<void> {
    return this.#call(() => this.#inner.addToSet(key, member, ttlMs))
  }
  renameIfExists(from: string, to: string): Promise<boolean> {
    return this.#call(() => this.#inner.renameIfExists(from, to))
  }
  scanSet(key: string, cursor: string, count: number): Promise<{ cursor: string; members: string[] }> {
    return this.#call(() => this.#inner.scanSet(key, cursor, count))
  }
  tryLock(key: string, token: string, ttlMs: number): Promise<boolean> {
    return this.#call(() => this.#inner.tryLock(key, token, ttlMs))
  }
  unlock(key: string, token: string): Promise<boolean> {
    return this.#call(() => this.#inner.unlock(key, token))
  }
  extendLock(key: string, token: string, ttlMs: number): Promise<boolean> {
    return this.#call(() => this.#inner.extendLock(key, token, ttlMs))
  }
  ttl(key: string): Promise<number> {
    return this.#call(() => this.#inner.ttl(key))
  }
  publish(channel: string, message: string): Promise<void> {
    return this.#call(() => this.#inner.publish(channel, message))
  }
  subscribe(channel: string, listener: (message: string) => void): Promise<void> {
    // Messages that arrive during the outage are lost, as they would be on a partitioned connection.
    return this.#inner.subscribe(channel, (message) => {
      if (!this.#outage) listener(message)
    })
  }
  connect(): Promise<void> {
    return this.#inner.connect()
  }
  async close(): Promise<void> {
    this.#release(new Error('store closed'))
    await this.#inner.close()
  }
  onEvent(listener: (event: L2StoreEvent) => void): void {
    this.#inner.onEvent(listener)
  }

  #call<T>(run: () => Promise<T>): Promise<T> {
    if (!this.#outage) return run()
    return new Promise<T>((_, reject) => {
      const release = (error: Error) => {
        this.#frozen.delete(release)
        reject(error)
      }
      this.#frozen.add(release)
    })
  }

  #release(error: Error): void {
    for (const release of [...this.#frozen]) release(error)
  }
}
