// L2 on Redis through ioredis: RedisStore's commands, sent over an ioredis `Redis` connection.
//
// The same store as `redisStore` (one implementation: timeouts and breaker are the cache's, no offline queue and no
// replay of commands the cache gave up on, TLS and ACL users, error replies told from outages); only the link
// differs. A client the store makes has ioredis's offline queue off and `maxRetriesPerRequest: 0`, so a command
// whose connection dropped is failed, never resent on reconnect.
import { Redis, type RedisOptions } from 'ioredis'
import type { Duration } from '../core/duration.js'
import { rejectUnknown, type OptionKeys, type OptionPlace } from '../core/known-options.js'
import { InvalidOptionError } from '../errors.js'
import { timerDuration } from '../options.js'
import type { L2Call, L2Status } from './l2-store.js'
import { addressOfUrl, redactUrl, type RedisTarget } from './redis-failure.js'
import {
  bufferReplies,
  REDIS_TLS_OPTION_KEYS,
  RedisStore,
  type RedisLink,
  type RedisSetup,
  type RedisTlsOptions,
} from './redis-store.js'

/** The slice of an ioredis `Redis` client the store uses. */
export interface IoredisClientLike {
  readonly status: string
  readonly options?: { readonly host?: string; readonly port?: number }
  readonly isCluster?: boolean
  connect(): Promise<unknown>
  quit(): Promise<unknown>
  disconnect(): void
  duplicate(override?: Partial<RedisOptions>): IoredisClientLike
  call(command: string, ...args: (string | Buffer)[]): Promise<unknown>
  callBuffer(command: string, ...args: (string | Buffer)[]): Promise<unknown>
  subscribe(...channels: string[]): Promise<unknown>
  on(event: string, listener: (...args: unknown[]) => void): unknown
  off(event: string, listener: (...args: unknown[]) => void): unknown
}

export interface IoredisStoreOptions {
  /** Redis URL, `redis[s]://[[user][:password]@]host[:port][/db]`; the store creates, owns and closes the client. */
  url?: string
  /**
   * An ioredis `Redis` client to use instead of `url`: connected if it is not yet, never closed by the cache. Make
   * it with `enableOfflineQueue: false` and `maxRetriesPerRequest: 0`, or commands sent while it is disconnected
   * wait in its queue and are sent when it reconnects (the cache stops waiting at its L2 timeout, but ioredis has
   * no way to take a queued command back). An ioredis `Cluster` is not supported yet.
   */
  client?: IoredisClientLike
  /** Extra ioredis options for a client made from `url`. */
  redisOptions?: RedisOptions
  /** TLS for a `rediss://` URL, as `redisStore`'s `tls`. */
  tls?: RedisTlsOptions
  /** Redis ACL user (docs/security.md lists what it needs). */
  username?: string
  /** Password of `username`. */
  password?: string
  /** How long one connection attempt may take, and the longest `close()` waits. @default '1s' */
  connectTimeout?: Duration
  /** Longest wait between reconnection attempts. @default '2s' */
  maxReconnectDelay?: Duration
}

const IOREDIS_STORE_OPTION_KEYS = {
  url: true,
  client: true,
  redisOptions: true,
  tls: true,
  username: true,
  password: true,
  connectTimeout: true,
  maxReconnectDelay: true,
} as const satisfies OptionKeys<IoredisStoreOptions>
const IOREDIS_STORE_PLACE: OptionPlace = { where: 'ioredisStore()', at: (path) => `ioredisStore.${path}` }

/**
 * Creates the Redis L2 store on ioredis for `createCache({ l2 })`.
 *
 * @example
 * import { ioredisStore } from 'stratacache/ioredis'
 * const cache = createCache({ service: 'catalog', l2: ioredisStore({ url: 'redis://127.0.0.1:6379' }) })
 */
export function ioredisStore(options: IoredisStoreOptions): IoredisStore {
  return new IoredisStore(options)
}

export class IoredisStore extends RedisStore {
  override readonly name: string = 'ioredis'
  readonly #client: IoredisClientLike
  readonly #connectTimeout: number
  #subscriber: Promise<IoredisClientLike> | undefined
  readonly #listeners = new Map<string, Set<(message: string) => void>>()

  constructor(options: IoredisStoreOptions) {
    const setup = ioredisSetup(options)
    super({}, setup)
    this.#client = setup.ioredis
    this.#connectTimeout = setup.delays.closeTimeout
  }

  /** On a duplicate of the client (a subscribed connection runs nothing else), resubscribed by ioredis. */
  override async subscribe(channel: string, listener: (message: string) => void): Promise<void> {
    if (this.status === 'closed') throw new Error('redis store is closed')
    this.#subscriber ??= this.#openSubscriber()
    const subscriber = await this.#subscriber
    let listeners = this.#listeners.get(channel)
    if (listeners === undefined) this.#listeners.set(channel, (listeners = new Set()))
    listeners.add(listener)
    await subscriber.subscribe(channel)
  }

  override async close(): Promise<void> {
    const subscriber = this.#subscriber
    this.#subscriber = undefined
    await Promise.all([
      super.close(),
      subscriber?.then(
        (client) => client.disconnect(),
        () => undefined,
      ),
    ])
  }

  async #openSubscriber(): Promise<IoredisClientLike> {
    const subscriber = this.#client.duplicate({ lazyConnect: true, enableOfflineQueue: false })
    subscriber.on('message', (channel, message) => {
      for (const listener of this.#listeners.get(String(channel)) ?? []) listener(String(message))
    })
    subscriber.on('ready', () => this.emit({ type: 'subscriber-status', status: 'ready' }))
    subscriber.on('close', () => this.emit({ type: 'subscriber-status', status: 'reconnecting' }))
    subscriber.on('error', (error) => this.emit({ type: 'error', error, lost: false }))
    try {
      await withTimeout(subscriber.connect(), this.#connectTimeout)
    } catch (error) {
      this.#subscriber = undefined
      subscriber.disconnect()
      throw error
    }
    return subscriber
  }
}

/** Rejects when `promise` has not settled within `ms`. */
async function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms).unref()
      }),
    ])
  } finally {
    clearTimeout(timer)
  }
}

/** `ioredisStore()`'s options, checked, as the link the store runs on. */
function ioredisSetup(options: IoredisStoreOptions): RedisSetup & { ioredis: IoredisClientLike } {
  if (options === null || typeof options !== 'object') {
    throw new InvalidOptionError(
      'ioredisStore options',
      options,
      "an object such as { url: 'redis://127.0.0.1:6379' }",
    )
  }
  rejectUnknown(options, IOREDIS_STORE_OPTION_KEYS, IOREDIS_STORE_PLACE)
  const { url, client, redisOptions, tls, username, password } = options
  if ((url === undefined) === (client === undefined)) {
    throw new InvalidOptionError('ioredisStore', options, 'exactly one of `url` or `client`')
  }
  if (url !== undefined && (typeof url !== 'string' || !/^rediss?:\/\//.test(url))) {
    throw new InvalidOptionError(
      'ioredisStore.url',
      typeof url === 'string' ? redactUrl(url) : url,
      "a URL such as 'redis://127.0.0.1:6379' or 'rediss://…'",
    )
  }
  if (client !== undefined && typeof client?.callBuffer !== 'function') {
    throw new InvalidOptionError('ioredisStore.client', client, 'an ioredis client made by new Redis()')
  }
  if (client?.isCluster === true) {
    throw new InvalidOptionError(
      'ioredisStore.client',
      'an ioredis Cluster',
      'an ioredis Redis client (a Cluster is not supported yet: use redisClusterStore from stratacache/redis)',
    )
  }
  if (tls !== undefined) {
    if (tls === null || typeof tls !== 'object') {
      throw new InvalidOptionError('ioredisStore.tls', tls, 'an object such as { ca, cert, key }')
    }
    if (url === undefined || !url.startsWith('rediss://')) {
      throw new InvalidOptionError(
        'ioredisStore.url',
        url,
        "a 'rediss://' URL with `tls` (or configure TLS on the client you pass as `client`)",
      )
    }
    rejectUnknown(tls, REDIS_TLS_OPTION_KEYS, IOREDIS_STORE_PLACE, 'tls')
  }
  for (const [name, value] of Object.entries({ username, password })) {
    if (value === undefined) continue
    if (typeof value !== 'string' || value.length === 0) {
      throw new InvalidOptionError(`ioredisStore.${name}`, value, 'a non-empty string')
    }
    if (url === undefined) {
      throw new InvalidOptionError(
        `ioredisStore.${name}`,
        '(hidden)',
        'nothing with `client`: configure that client',
      )
    }
    if (/^rediss?:\/\/[^/]*@/.test(url)) {
      throw new InvalidOptionError(
        `ioredisStore.${name}`,
        '(hidden)',
        'nothing when the URL carries credentials: put them in one place',
      )
    }
  }
  const connectTimeout = timerDuration(options.connectTimeout ?? 1000, 'ioredisStore.connectTimeout')
  const maxReconnectDelay = timerDuration(options.maxReconnectDelay ?? 2000, 'ioredisStore.maxReconnectDelay')
  const delays = { maxReconnectDelay, closeTimeout: connectTimeout }
  const owned = url !== undefined
  const address =
    url !== undefined
      ? addressOfUrl(url)
      : `${client!.options?.host ?? 'localhost'}:${client!.options?.port ?? 6379}`
  const target: RedisTarget = {
    address,
    tls: url === undefined ? undefined : url.startsWith('rediss://'),
    connectTimeoutMs: owned ? connectTimeout : undefined,
    retryMs: owned ? maxReconnectDelay : undefined,
  }
  const redis: IoredisClientLike =
    client ??
    (new Redis(url!, {
      ...redisOptions,
      ...(username === undefined ? {} : { username }),
      ...(password === undefined ? {} : { password }),
      ...(tls === undefined ? {} : { tls: { ...redisOptions?.tls, ...tls } }),
      lazyConnect: true,
      connectTimeout,
      // Fail fast while disconnected, and never resend a command whose connection dropped.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      retryStrategy: (times: number) =>
        Math.min(maxReconnectDelay, 50 * 2 ** Math.min(times, 10)) * (0.8 + Math.random() * 0.2),
    }) as unknown as IoredisClientLike)
  return {
    address,
    target,
    delays,
    client: undefined,
    ioredis: redis,
    open: (onStatus, onError) => new IoredisLink(redis, owned, delays, onStatus, onError),
  }
}

/** An ioredis connection as a RedisLink. */
class IoredisLink implements RedisLink {
  readonly #client: IoredisClientLike
  readonly #owned: boolean
  readonly #closeTimeout: number
  readonly #onStatus: (status: L2Status) => void
  readonly #onError: (error: unknown, lost: boolean) => void
  #status: L2Status
  #attempt: Promise<void> | undefined
  #lastError: unknown
  #closed = false

  constructor(
    client: IoredisClientLike,
    owned: boolean,
    delays: { closeTimeout: number },
    onStatus: (status: L2Status) => void,
    onError: (error: unknown, lost: boolean) => void,
  ) {
    this.#client = client
    this.#owned = owned
    this.#closeTimeout = delays.closeTimeout
    this.#onStatus = onStatus
    this.#onError = onError
    this.#status = client.status === 'ready' ? 'ready' : 'connecting'
    client.on('ready', this.#handleReady)
    client.on('error', this.#handleError)
    client.on('close', this.#handleClose)
    client.on('reconnecting', this.#handleClose)
    client.on('end', this.#handleClose)
  }

  get status(): L2Status {
    return this.#status
  }

  connect(): Promise<void> {
    if (this.#closed) return Promise.reject(new Error('redis store is closed'))
    if (this.#client.status === 'ready') return Promise.resolve()
    this.#attempt ??= (
      this.#client.status === 'wait'
        ? this.#client.connect().then(() => undefined)
        : this.#whenReadyOrFailed()
    ).then(
      () => {
        this.#attempt = undefined
      },
      (error: unknown) => {
        this.#attempt = undefined
        throw error
      },
    )
    return this.#attempt
  }

  /** As `Connection.send`: waits for the attempt under way, never sends a command the cache gave up on. */
  send(args: ReadonlyArray<string | Buffer>, options: object, call?: L2Call): Promise<unknown> {
    if (this.#client.status === 'ready') return this.#call(args, options)
    if (this.#attempt !== undefined) {
      return this.#attempt.then(
        () => {
          if (call?.signal.aborted)
            throw new Error('stratacache gave up on this command before it could be sent')
          return this.#call(args, options)
        },
        (error: unknown) => {
          throw this.#notConnected(error)
        },
      )
    }
    if (this.#owned) return Promise.reject(this.#notConnected())
    return this.#call(args, options)
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.#client.off('ready', this.#handleReady)
    this.#client.off('error', this.#handleError)
    this.#client.off('close', this.#handleClose)
    this.#client.off('reconnecting', this.#handleClose)
    this.#client.off('end', this.#handleClose)
    this.#status = 'closed'
    if (!this.#owned) return
    if (this.#client.status === 'ready') {
      let timer: ReturnType<typeof setTimeout> | undefined
      const outcome = await Promise.race([
        this.#client.quit().then(
          () => 'closed' as const,
          () => 'failed' as const,
        ),
        new Promise<'timeout'>(
          (resolve) => (timer = setTimeout(() => resolve('timeout'), this.#closeTimeout)),
        ),
      ])
      clearTimeout(timer)
      if (outcome === 'closed') return
    }
    // Also ends ioredis's reconnection timer, so a closed cache leaves nothing behind.
    this.#client.disconnect()
  }

  #call(args: ReadonlyArray<string | Buffer>, options: object): Promise<unknown> {
    const [name, ...rest] = args
    return options === bufferReplies
      ? this.#client.callBuffer(String(name), ...rest)
      : this.#client.call(String(name), ...rest)
  }

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
    })
  }

  #notConnected(last: unknown = this.#lastError): Error {
    const why = last instanceof Error ? `: ${last.message.replace(/\.+$/, '')}` : ''
    return new Error(
      `not connected to Redis${why}${this.#closed ? '' : '; the store reconnects in the background'}`,
      last === undefined ? undefined : { cause: last },
    )
  }

  readonly #handleReady = (): void => this.#setStatus('ready')
  readonly #handleError = (error: unknown): void => {
    this.#lastError = error
    this.#onError(error, this.#status === 'ready')
  }
  readonly #handleClose = (): void => {
    if (!this.#closed && this.#status !== 'connecting') this.#setStatus('reconnecting')
  }

  #setStatus(status: L2Status): void {
    if (this.#status === status) return
    this.#status = status
    this.#onStatus(status)
  }
}
