// L2 on Redis through node-redis: GET/MGET/SET PX/UNLINK/SCAN over one connection that reconnects by itself.
import { createClient, RESP_TYPES, type RedisClientOptions } from 'redis'
import { InvalidOptionError } from '../errors.js'
import type { L2Status, L2Store, L2StoreEvent, L2Write } from './l2-store.js'

/**
 * The slice of a node-redis client that the store uses. Any node-redis 6 `createClient()` result fits.
 * Keeping the surface this narrow lets an ioredis or Redis Cluster adapter follow without touching the read path.
 */
export interface RedisClientLike {
  readonly isOpen: boolean
  readonly isReady: boolean
  connect(): Promise<unknown>
  close(): Promise<unknown>
  destroy(): void
  sendCommand(args: ReadonlyArray<string | Buffer>, options?: object): Promise<unknown>
  on(event: string, listener: (...args: unknown[]) => void): unknown
  off(event: string, listener: (...args: unknown[]) => void): unknown
}

export interface RedisStoreOptions {
  /**
   * Redis URL, `redis[s]://[[user][:password]@]host[:port][/db]`. The store creates, owns and closes the client.
   * @example 'redis://127.0.0.1:6379'
   */
  url?: string
  /**
   * An existing node-redis client to use instead of `url`. The store connects it if it is not open yet, and never
   * closes it: its owner does. Attach your own 'error' listener to it.
   */
  client?: RedisClientLike
  /**
   * Extra node-redis options for a client made from `url` (TLS, ACL user, database…). The store sets
   * `disableOfflineQueue` so commands fail fast while disconnected, and reconnects by itself with capped backoff
   * (node-redis's own reconnect loop is switched off: its sleep cannot be cancelled, so `close()` could not end it).
   */
  clientOptions?: RedisClientOptions
  /** How long one connection attempt may take, in ms. @default 1000 */
  connectTimeout?: number
  /** Longest wait between reconnection attempts, in ms. @default 2000 */
  maxReconnectDelay?: number
}

/**
 * Options for every command: Buffer replies for values, and node-redis's own per-command timeout off, because the
 * cache bounds every call itself (node-redis 6 arms an `AbortSignal.timeout` per command by default, which cost
 * about half of an L2 hit's CPU time in the benchmark).
 */
const bufferReplies = { typeMapping: { [RESP_TYPES.BLOB_STRING]: Buffer }, timeout: 0 }
const plainReplies = { timeout: 0 }

/**
 * Creates the Redis L2 store for `createCache({ l2 })`.
 *
 * @example
 * import { redisStore } from 'stratacache/redis'
 * const cache = createCache({ service: 'catalog', l2: redisStore({ url: 'redis://127.0.0.1:6379' }) })
 */
export function redisStore(options: RedisStoreOptions): RedisStore {
  return new RedisStore(options)
}

export class RedisStore implements L2Store {
  readonly name = 'redis'
  readonly #client: RedisClientLike
  readonly #ownsClient: boolean
  readonly #maxReconnectDelay: number
  #status: L2Status = 'connecting'
  #listener: (event: L2StoreEvent) => void = () => {}
  /** The connection attempt under way (owned clients only). */
  #attempt: Promise<void> | undefined
  #retryTimer: ReturnType<typeof setTimeout> | undefined
  #failedAttempts = 0
  #closed = false

  constructor(options: RedisStoreOptions) {
    if (options === null || typeof options !== 'object') {
      throw new InvalidOptionError(
        'redisStore options',
        options,
        "an object such as { url: 'redis://127.0.0.1:6379' }",
      )
    }
    const { url, client, clientOptions, connectTimeout = 1000, maxReconnectDelay = 2000 } = options
    if ((url === undefined) === (client === undefined)) {
      throw new InvalidOptionError('redisStore', options, 'exactly one of `url` or `client`')
    }
    if (url !== undefined && (typeof url !== 'string' || !/^rediss?:\/\//.test(url))) {
      throw new InvalidOptionError(
        'redisStore.url',
        url,
        "a URL such as 'redis://127.0.0.1:6379' or 'rediss://…'",
      )
    }
    if (client !== undefined && typeof client?.sendCommand !== 'function') {
      throw new InvalidOptionError('redisStore.client', client, 'a node-redis client made by createClient()')
    }
    for (const [name, value] of Object.entries({ connectTimeout, maxReconnectDelay })) {
      if (!Number.isSafeInteger(value) || value < 1) {
        throw new InvalidOptionError(`redisStore.${name}`, value, 'a positive whole number of milliseconds')
      }
    }
    this.#maxReconnectDelay = maxReconnectDelay
    if (url === undefined) {
      this.#client = client as RedisClientLike
      this.#ownsClient = false
    } else {
      this.#ownsClient = true
      this.#client = createClient({
        ...clientOptions,
        url,
        disableOfflineQueue: true,
        socket: { ...clientOptions?.socket, connectTimeout, reconnectStrategy: false },
      })
    }
    this.#client.on('error', this.#onError)
    this.#client.on('ready', this.#onReady)
    this.#client.on('reconnecting', this.#onReconnecting)
    this.#client.on('end', this.#onEnd)
    if (this.#client.isReady) this.#status = 'ready'
  }

  get status(): L2Status {
    return this.#status
  }

  onEvent(listener: (event: L2StoreEvent) => void): void {
    this.#listener = listener
  }

  /** Resolves when connected; rejects when this attempt fails (an owned client then retries by itself). */
  connect(): Promise<void> {
    if (this.#closed) return Promise.reject(new Error('redis store is closed'))
    if (this.#client.isReady) return Promise.resolve()
    if (!this.#ownsClient) return this.#whenReadyOrFailed()
    this.#attempt ??= this.#client.connect().then(
      () => {
        this.#attempt = undefined
        this.#failedAttempts = 0
      },
      (error: unknown) => {
        this.#attempt = undefined
        this.#scheduleReconnect()
        throw error
      },
    )
    return this.#attempt
  }

  get(key: string): Promise<Uint8Array | null> {
    return this.#send(['GET', key], bufferReplies) as Promise<Buffer | null>
  }

  getMany(keys: readonly string[]): Promise<(Uint8Array | null)[]> {
    if (keys.length === 0) return Promise.resolve([])
    return this.#send(['MGET', ...keys], bufferReplies) as Promise<(Buffer | null)[]>
  }

  async set(key: string, value: Uint8Array, ttlMs: number): Promise<void> {
    await this.#send(['SET', key, toBuffer(value), 'PX', String(Math.max(1, Math.ceil(ttlMs)))], plainReplies)
  }

  async setMany(writes: readonly L2Write[]): Promise<void> {
    // node-redis writes every command issued in one tick as one batch: this is a pipeline, one round trip.
    await Promise.all(writes.map((w) => this.set(w.key, w.value, w.ttlMs)))
  }

  async delete(keys: readonly string[]): Promise<number> {
    if (keys.length === 0) return 0
    return (await this.#send(['UNLINK', ...keys], plainReplies)) as number
  }

  async scan(pattern: string, cursor: string, count: number): Promise<{ cursor: string; keys: string[] }> {
    const reply = (await this.#send(
      ['SCAN', cursor, 'MATCH', pattern, 'COUNT', String(count)],
      plainReplies,
    )) as [string | Buffer, (string | Buffer)[]]
    return { cursor: String(reply[0]), keys: reply[1].map(String) }
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    clearTimeout(this.#retryTimer)
    this.#client.off('error', this.#onError)
    this.#client.off('ready', this.#onReady)
    this.#client.off('reconnecting', this.#onReconnecting)
    this.#client.off('end', this.#onEnd)
    this.#status = 'closed'
    if (!this.#ownsClient) return
    if (this.#client.isReady) {
      try {
        await this.#client.close()
        return
      } catch {
        // fall through to destroy
      }
    }
    // Not connected, or connecting: destroy drops the socket at once so the process can exit.
    if (this.#client.isOpen) this.#client.destroy()
  }

  /**
   * Sends a command. While a connection attempt is under way (the first one, or a reconnection) it waits for that
   * attempt, which settles on success or failure (the cache's L2 timeout bounds the wait), so a cache used right
   * after createCache() does not miss L2. Otherwise a lost connection makes commands fail at once (no offline
   * queue) instead of piling up.
   */
  #send(args: ReadonlyArray<string | Buffer>, options: object): Promise<unknown> {
    if (this.#attempt !== undefined && !this.#client.isReady) {
      return this.#attempt.then(() => this.#client.sendCommand(args, options))
    }
    return this.#client.sendCommand(args, options)
  }

  /** Reconnection of an owned client: capped exponential backoff with jitter, on an unref'd timer close() clears. */
  #scheduleReconnect(): void {
    if (this.#closed || !this.#ownsClient || this.#retryTimer !== undefined || this.#attempt !== undefined)
      return
    this.#setStatus('reconnecting')
    const delay =
      Math.min(this.#maxReconnectDelay, 50 * 2 ** Math.min(this.#failedAttempts++, 10)) *
      (0.8 + Math.random() * 0.2)
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined
      // A failed attempt schedules the next one itself; nobody else awaits this promise.
      this.connect().catch(() => {})
    }, delay).unref()
  }

  /** For a client owned by the user: resolves on its next 'ready', rejects on its next 'error'. */
  #whenReadyOrFailed(): Promise<void> {
    return new Promise((resolve, reject) => {
      const done = (error?: unknown) => {
        this.#client.off('ready', ready)
        this.#client.off('error', failed)
        if (error === undefined) resolve()
        else reject(error instanceof Error ? error : new Error('redis client error', { cause: error }))
      }
      const ready = () => done()
      const failed = (error: unknown) => done(error ?? new Error('redis client error'))
      this.#client.on('ready', ready)
      this.#client.on('error', failed)
      if (!this.#client.isOpen) this.#client.connect().catch(failed)
    })
  }

  readonly #onError = (error: unknown): void => {
    this.#listener({ type: 'error', error })
    // An owned client closes itself when its connection drops (no reconnect strategy): reconnect it.
    if (this.#ownsClient && !this.#client.isOpen) this.#scheduleReconnect()
  }

  readonly #onReady = (): void => this.#setStatus('ready')
  readonly #onReconnecting = (): void => this.#setStatus('reconnecting')
  readonly #onEnd = (): void => {
    this.#setStatus(this.#closed ? 'closed' : 'reconnecting')
    if (this.#ownsClient) this.#scheduleReconnect()
  }

  #setStatus(status: L2Status): void {
    if (this.#status === status) return
    this.#status = status
    this.#listener({ type: 'status', status })
  }
}

function toBuffer(value: Uint8Array): Buffer {
  return Buffer.isBuffer(value) ? value : Buffer.from(value.buffer, value.byteOffset, value.byteLength)
}
