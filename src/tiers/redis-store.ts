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
   * `disableOfflineQueue` so commands fail fast while disconnected, and a capped backoff reconnect strategy.
   */
  clientOptions?: RedisClientOptions
  /** How long one connection attempt may take, in ms. @default 1000 */
  connectTimeout?: number
  /** Longest wait between reconnection attempts, in ms. @default 2000 */
  maxReconnectDelay?: number
  /** Keys deleted per SCAN step when clearing a namespace. @default 500 */
  scanCount?: number
}

const bufferReplies = { typeMapping: { [RESP_TYPES.BLOB_STRING]: Buffer } }

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
  readonly #scanCount: number
  #status: L2Status = 'connecting'
  #listener: (event: L2StoreEvent) => void = () => {}
  #connecting: Promise<void> | undefined
  #closed = false

  constructor(options: RedisStoreOptions) {
    if (options === null || typeof options !== 'object') {
      throw new InvalidOptionError(
        'redisStore options',
        options,
        "an object such as { url: 'redis://127.0.0.1:6379' }",
      )
    }
    const {
      url,
      client,
      clientOptions,
      connectTimeout = 1000,
      maxReconnectDelay = 2000,
      scanCount = 500,
    } = options
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
    for (const [name, value] of Object.entries({ connectTimeout, maxReconnectDelay, scanCount })) {
      if (!Number.isSafeInteger(value) || value < 1) {
        throw new InvalidOptionError(`redisStore.${name}`, value, 'a positive whole number')
      }
    }
    this.#scanCount = scanCount
    if (client !== undefined) {
      this.#client = client
      this.#ownsClient = false
    } else {
      this.#ownsClient = true
      this.#client = createClient({
        ...clientOptions,
        url: url as string,
        disableOfflineQueue: true,
        socket: {
          ...clientOptions?.socket,
          connectTimeout,
          // Exponential backoff with jitter, capped: a restarted Redis is found again within `maxReconnectDelay`.
          reconnectStrategy: (retries: number) =>
            Math.min(maxReconnectDelay, 50 * 2 ** Math.min(retries, 10)) * (0.8 + Math.random() * 0.2),
        },
      }) as unknown as RedisClientLike
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

  connect(): Promise<void> {
    if (this.#closed) return Promise.reject(new Error('redis store is closed'))
    if (this.#client.isReady) return Promise.resolve()
    if (this.#client.isOpen) {
      // Opened by its owner and still connecting: wait for 'ready'.
      return new Promise((resolve) => {
        const ready = () => {
          this.#client.off('ready', ready)
          resolve()
        }
        this.#client.on('ready', ready)
      })
    }
    this.#connecting ??= this.#client.connect().then(
      () => undefined,
      (error: unknown) => {
        this.#connecting = undefined
        throw error
      },
    )
    return this.#connecting
  }

  async get(key: string): Promise<Uint8Array | null> {
    return (await this.#send(['GET', key], bufferReplies)) as Buffer | null
  }

  async getMany(keys: readonly string[]): Promise<(Uint8Array | null)[]> {
    if (keys.length === 0) return []
    return (await this.#send(['MGET', ...keys], bufferReplies)) as (Buffer | null)[]
  }

  async set(key: string, value: Uint8Array, ttlMs: number): Promise<void> {
    await this.#send(['SET', key, toBuffer(value), 'PX', String(Math.max(1, Math.ceil(ttlMs)))])
  }

  async setMany(writes: readonly L2Write[]): Promise<void> {
    // node-redis writes every command issued in one tick as one batch: this is a pipeline, one round trip.
    await Promise.all(writes.map((w) => this.set(w.key, w.value, w.ttlMs)))
  }

  async delete(keys: readonly string[]): Promise<number> {
    if (keys.length === 0) return 0
    return (await this.#send(['UNLINK', ...keys])) as number
  }

  async deletePrefix(prefix: string): Promise<number> {
    // The prefix holds only [A-Za-z0-9_.:-] and `v`; none of them is a glob character, so it matches literally.
    const pattern = prefix + '*'
    let cursor = '0'
    let deleted = 0
    do {
      const reply = (await this.#send([
        'SCAN',
        cursor,
        'MATCH',
        pattern,
        'COUNT',
        String(this.#scanCount),
      ])) as [string, string[]]
      cursor = String(reply[0])
      const keys = reply[1]
      if (keys.length > 0) deleted += await this.delete(keys)
    } while (cursor !== '0')
    return deleted
  }

  /**
   * Sends a command. During the very first connection attempt it waits for the connection (the cache's L2 timeout
   * bounds that wait) so a cache used right after createCache() does not miss L2; once connected, a lost
   * connection makes commands fail at once (no offline queue) instead of piling up.
   */
  #send(args: ReadonlyArray<string | Buffer>, options?: object): Promise<unknown> {
    if (this.#status === 'connecting' && this.#connecting !== undefined && !this.#client.isReady) {
      return this.#connecting.then(() => this.#client.sendCommand(args, options))
    }
    return this.#client.sendCommand(args, options)
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.#client.off('error', this.#onError)
    this.#client.off('ready', this.#onReady)
    this.#client.off('reconnecting', this.#onReconnecting)
    this.#client.off('end', this.#onEnd)
    this.#status = 'closed'
    if (!this.#ownsClient) return
    if (this.#client.isOpen) {
      try {
        await this.#client.close()
      } catch {
        this.#client.destroy()
      }
    } else {
      // Not connected (Redis down, reconnect loop running): destroy stops the loop so the process can exit.
      this.#client.destroy()
    }
  }

  readonly #onError = (error: unknown): void => {
    this.#listener({ type: 'error', error })
  }

  readonly #onReady = (): void => this.#setStatus('ready')
  readonly #onReconnecting = (): void => this.#setStatus('reconnecting')
  readonly #onEnd = (): void => this.#setStatus(this.#closed ? 'closed' : 'reconnecting')

  #setStatus(status: L2Status): void {
    if (this.#status === status) return
    this.#status = status
    this.#listener({ type: 'status', status })
  }
}

function toBuffer(value: Uint8Array): Buffer {
  return Buffer.isBuffer(value) ? value : Buffer.from(value.buffer, value.byteOffset, value.byteLength)
}
