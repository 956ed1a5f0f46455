// L2 on Redis through ioredis: RedisStore's commands, sent over an ioredis `Redis` connection.
//
// The same store as `redisStore` (one implementation: timeouts and breaker are the cache's, no offline queue and no
// replay of commands the cache gave up on, TLS and ACL users, error replies told from outages); only the link
// differs. A client the store makes has ioredis's offline queue off and `maxRetriesPerRequest: 0`, so a command
// whose connection dropped is failed, never resent on reconnect.
import { Command, Redis, type RedisOptions } from 'ioredis'
import type { Duration } from '../core/duration.js'
import { rejectUnknown, type OptionKeys, type OptionPlace } from '../core/known-options.js'
import { InvalidOptionError } from '../errors.js'
import { timerDuration } from '../options.js'
import type { L2Call, L2Status } from './l2-store.js'
import { clusterSlot } from './cluster-slot.js'
import { RedisClusterStore, type ClusterDriver, type ClusterSetup } from './redis-cluster-store.js'
import { addressOfUrl, redactUrl, type RedisTarget } from './redis-failure.js'
import {
  bufferReplies,
  closeWithin,
  coalesceGetsOption,
  ignoreErrorsAfterClose,
  reconnectDelay,
  refuseAbandoned,
  REDIS_TLS_OPTION_KEYS,
  RedisStore,
  type RedisLink,
  type RedisSetup,
  type RedisTlsOptions,
} from './redis-store.js'

/** The slice of an ioredis `Redis` client (or `Cluster`) the store uses. */
export interface IoredisClientLike {
  readonly status: string
  /** Its options: a `Redis` client's carry `host` and `port`. */
  readonly options?: object
  readonly isCluster?: boolean
  connect(): Promise<unknown>
  quit(): Promise<unknown>
  disconnect(): void
  /** A new connection with the same options (`Redis`: overrides first; `Cluster`: startup nodes first). */
  duplicate(...args: never[]): IoredisClientLike
  /** Sends a command as it is (the store sends every command this way: see `send`). */
  sendCommand(command: Command): unknown
  subscribe(...channels: string[]): Promise<unknown>
  on(event: string, listener: (...args: unknown[]) => void): unknown
  off(event: string, listener: (...args: unknown[]) => void): unknown
  /** A Cluster's nodes (ioredis `Cluster` only). */
  nodes?(role: 'master'): IoredisClientLike[]
  /** A sharded subscription (ioredis `Cluster` only). */
  ssubscribe?(...channels: string[]): Promise<unknown>
}

export interface IoredisStoreOptions {
  /** Redis URL, `redis[s]://[[user][:password]@]host[:port][/db]`; the store creates, owns and closes the client. */
  url?: string
  /**
   * An ioredis `Redis` client to use instead of `url`: connected if it is not yet, never closed by the cache. Make
   * it with `enableOfflineQueue: false` and `maxRetriesPerRequest: 0`, or commands sent while it is disconnected
   * wait in its queue and are sent when it reconnects (the cache stops waiting at its L2 timeout, but ioredis has
   * no way to take a queued command back). An ioredis `Cluster` (ioredis 5.6 or newer) works too, made with
   * `shardedSubscribers: true` for the bus (a Cluster without it is refused), the same two options in
   * `redisOptions`, and a short `retryDelayOnTryAgain`, 1-5 ms, so that a split MGET during a reshard fails within
   * the L2 timeout and is read per key. The store is then a cluster store (fence shards, per-slot batches, every
   * master walked, sharded pub/sub), as `redisClusterStore`. The client may share
   * the app's other traffic, auto-pipelined or not: the store's own commands bypass `enableAutoPipelining` (it
   * batches its GETs itself: `coalesceGets`).
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
  /**
   * Whether the gets of one tick go out as one MGET (one per slot on a Cluster); as `redisStore`'s. @default true
   * for a `Redis` client, false for a `Cluster`: during a reshard, ioredis retries an MGET answered `TRYAGAIN` (every
   * MGET: getMany and the fence read too, coalesced or not; give the Cluster a short `retryDelayOnTryAgain`) for
   * up to `retryDelayOnTryAgain` x `maxRedirections` (1.6 s by default), past the L2 timeout
   */
  coalesceGets?: boolean
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
  coalesceGets: true,
} as const satisfies OptionKeys<IoredisStoreOptions>
const IOREDIS_STORE_PLACE: OptionPlace = { where: 'ioredisStore()', at: (path) => `ioredisStore.${path}` }

/**
 * Creates the Redis L2 store on ioredis for `createCache({ l2 })`.
 *
 * @example
 * import { ioredisStore } from 'stratacache/ioredis'
 * const cache = createCache({ service: 'catalog', l2: ioredisStore({ url: 'redis://127.0.0.1:6379' }) })
 */
export function ioredisStore(options: IoredisStoreOptions): IoredisStore | IoredisClusterStore {
  return options?.client?.isCluster === true ? new IoredisClusterStore(options) : new IoredisStore(options)
}

/** The cluster store (redis-cluster-store.ts) on an ioredis `Cluster` passed as `client`. */
export class IoredisClusterStore extends RedisClusterStore {
  override readonly name: string = 'ioredis-cluster'

  constructor(options: IoredisStoreOptions) {
    super({}, ioredisClusterSetup(options))
  }
}

function ioredisClusterSetup(options: IoredisStoreOptions): ClusterSetup {
  rejectUnknown(options, IOREDIS_STORE_OPTION_KEYS, IOREDIS_STORE_PLACE)
  const cluster = options.client!
  for (const name of ['url', 'redisOptions', 'tls', 'username', 'password'] as const) {
    if (options[name] !== undefined) {
      throw new InvalidOptionError(
        `ioredisStore.${name}`,
        '(given)',
        'nothing with a Cluster `client`: configure it',
      )
    }
  }
  // ioredis serves SSUBSCRIBE only on a Cluster made for it; without, every subscription (the bus, each load's
  // wait for another process's lock) would wait out the L2 timeout, and the bus would never hear other processes.
  const sharded = (cluster.options as { shardedSubscribers?: unknown } | undefined)?.shardedSubscribers
  // Tested as ioredis tests it (any truthy value turns its sharded subscribers on).
  if (!sharded) {
    throw new InvalidOptionError(
      'ioredisStore.client.options.shardedSubscribers',
      sharded,
      'true: make the Cluster with `new Cluster(nodes, { shardedSubscribers: true, … })` (ioredis 5.6 or ' +
        'newer), since the invalidation bus and the load locks use sharded pub/sub, which ioredis serves only then',
    )
  }
  const connectTimeout = timerDuration(options.connectTimeout ?? 1000, 'ioredisStore.connectTimeout')
  const delays = {
    maxReconnectDelay: timerDuration(options.maxReconnectDelay ?? 2000, 'ioredisStore.maxReconnectDelay'),
    closeTimeout: connectTimeout,
  }
  const address = cluster.nodes?.('master')[0] === undefined ? '' : nodeAddress(cluster.nodes('master')[0]!)
  return {
    address,
    target: { address, tls: undefined, connectTimeoutMs: undefined, retryMs: undefined },
    delays,
    client: undefined,
    coalesceGets: coalesceGetsOption(options.coalesceGets, 'ioredisStore', false),
    driver: ioredisDriver(cluster),
    open: (onStatus, onError) => new IoredisLink(cluster, false, delays, onStatus, onError),
  }
}

/** `host:port` of an ioredis `Redis` client, from its options. */
function nodeAddress(node: IoredisClientLike): string {
  const options = node.options as { host?: unknown; port?: unknown } | undefined
  const host = typeof options?.host === 'string' ? options.host : 'localhost'
  const port = typeof options?.port === 'number' ? options.port : 6379
  return `${host}:${port}`
}

/** How often the ioredis cluster store checks that the slots of its subscribed channels have not moved. */
const SLOT_PROBE_MS = 1_000

/**
 * An ioredis `Cluster` as the cluster store's driver.
 *
 * ioredis keeps its sharded subscriptions on one connection per master and resubscribes them whenever its slot map
 * changes, but two events pass it by, and this driver covers them: (1) when the slot of a subscribed channel is
 * migrated, the old master ends the subscription (a server-sent SUNSUBSCRIBE), and ioredis learns of the move only
 * from a MOVED on a later command. ioredis reports that SUNSUBSCRIBE only as a `nodeError` ("Command queue state
 * error … Last reply: sunsubscribe,<channel>,0"); the driver takes it as the signal: the node is `down` at once, and
 * the channel is subscribed again where its slot now lives (`resubscribe`). As a safety net for a signal missed, it
 * also sends one cheap command routed by each subscribed channel (`EXISTS <channel>`) every second, whose MOVED
 * makes ioredis refresh its map and resubscribe. (2) ioredis says nothing of a subscription being lost: the driver
 * reports a node `down` when one holding a subscription drops (`-node`), when a subscribed channel's slot moves
 * away from it (`refresh`) or when it ends a subscription (above), and `ready` once the channels are subscribed
 * again (`subscribersReady`, or the driver's own SSUBSCRIBE answered), so the bus treats its L1 as suspect meanwhile.
 */
export function ioredisDriver(cluster: IoredisClientLike): ClusterDriver {
  const masters = () => cluster.nodes!('master')
  const listeners = new Map<string, Set<(message: string) => void>>()
  /** The slot of each subscribed channel, and the node that served it when last looked at. */
  const owners = new Map<number, string | undefined>()
  const ownerOf = (slot: number) => (cluster as { slots?: (string[] | undefined)[] }).slots?.[slot]?.[0]
  let hooked = false
  let probe: ReturnType<typeof setInterval> | undefined
  /** Subscribes again the channels a node ended and that are not subscribed yet (set by `watchNodes`). */
  let retryDropped = (): void => undefined
  const startProbe = () => {
    probe ??= setInterval(() => {
      if (cluster.status !== 'ready') return
      for (const channel of listeners.keys()) send(cluster, ['EXISTS', channel], false).catch(() => undefined)
      retryDropped()
    }, SLOT_PROBE_MS).unref()
  }
  return {
    masters: () => masters().map(nodeAddress).sort(),
    sendToMaster(address, args, options) {
      const node = masters().find((n) => nodeAddress(n) === address)
      if (node === undefined)
        return Promise.reject(new Error(`${address} is no longer a master of the cluster`))
      return send(node, args, options === bufferReplies)
    },
    async sSubscribe(channel, listener) {
      if (!hooked) {
        hooked = true
        cluster.on('smessage', (ch, message) => {
          for (const l of listeners.get(String(ch)) ?? []) l(String(message))
        })
      }
      let set = listeners.get(channel)
      if (set === undefined) listeners.set(channel, (set = new Set()))
      set.add(listener)
      await cluster.ssubscribe!(channel)
      const slot = clusterSlot(channel)
      owners.set(slot, ownerOf(slot))
      startProbe()
    },
    watchNodes(events) {
      const lost = new Set<string>()
      const lose = (address: string | undefined) => {
        if (address === undefined || lost.has(address)) return
        lost.add(address)
        events.down(address)
      }
      const error = (e: unknown, address: unknown) =>
        events.error(e, typeof address === 'string' ? address : undefined)
      // From the connection pool (`redis`) or from a sharded subscriber (`redis, "host:port"`).
      const nodeGone = (redis: unknown, key: unknown) => {
        const address =
          typeof key === 'string'
            ? key
            : redis === null || typeof redis !== 'object'
              ? undefined
              : nodeAddress(redis as IoredisClientLike)
        if (address !== undefined && [...owners.values()].includes(address)) lose(address)
      }
      const refreshed = () => {
        for (const [slot, owner] of owners) {
          const now = ownerOf(slot)
          if (now === owner) continue
          owners.set(slot, now)
          lose(owner)
        }
      }
      const resubscribed = () => {
        dropped.clear()
        for (const address of [...lost]) {
          lost.delete(address)
          events.ready(address)
        }
      }
      /** Channels a node ended (SUNSUBSCRIBE) or refused (MOVED), by that node, until subscribed again. */
      const dropped = new Map<string, Set<string>>()
      // Subscribes `channel` again where ioredis now routes its slot: first a command routed by the channel, whose
      // MOVED (if ioredis had the old owner) refreshes ioredis's map, then SSUBSCRIBE. A failure (map still stale)
      // is retried by the probe; when the node has no dropped channel left, it is `ready` again. (ioredis lists the
      // channel once more for its own resubscriptions: one duplicate name per migration, harmless to Redis.)
      const resubscribe = (channel: string, address: string) => {
        send(cluster, ['EXISTS', channel], false)
          .then(() => cluster.ssubscribe!(channel))
          .then(() => {
            const channels = dropped.get(address)
            if (channels === undefined || !channels.delete(channel) || channels.size > 0) return
            dropped.delete(address)
            if (lost.delete(address)) events.ready(address)
          })
          .catch(() => undefined)
      }
      const subscriptionEnded = (e: unknown, key: unknown) => {
        if (typeof key !== 'string') return
        const text = String((e as { message?: unknown } | null)?.message ?? e)
        const ended = /Last reply: sunsubscribe,([^,]*),/.exec(text)
        const moved = /Last error: MOVED (\d+) /.exec(text)
        const channels = ended
          ? [ended[1]!].filter((channel) => listeners.has(channel))
          : moved
            ? [...listeners.keys()].filter((channel) => clusterSlot(channel) === Number(moved[1]))
            : []
        if (channels.length === 0) return
        let set = dropped.get(key)
        if (set === undefined) dropped.set(key, (set = new Set()))
        // A channel already being resubscribed is left to the probe: a node answering MOVED again must not start a
        // loop of attempts while ioredis's map catches up.
        const fresh = channels.filter((channel) => !set.has(channel))
        for (const channel of fresh) set.add(channel)
        lose(key)
        for (const channel of fresh) resubscribe(channel, key)
      }
      retryDropped = () => {
        for (const [address, channels] of dropped)
          for (const channel of channels) resubscribe(channel, address)
      }
      cluster.on('node error', error)
      cluster.on('nodeError', subscriptionEnded)
      cluster.on('-node', nodeGone)
      cluster.on('refresh', refreshed)
      cluster.on('subscribersReady', resubscribed)
      return () => {
        clearInterval(probe)
        retryDropped = () => undefined
        cluster.off('node error', error)
        cluster.off('nodeError', subscriptionEnded)
        cluster.off('-node', nodeGone)
        cluster.off('refresh', refreshed)
        cluster.off('subscribersReady', resubscribed)
      }
    },
  }
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
    // A `Redis` client (a Cluster gets the cluster store): its duplicate takes option overrides.
    const duplicate = this.#client.duplicate.bind(this.#client) as (
      override: Partial<RedisOptions>,
    ) => IoredisClientLike
    const subscriber = duplicate({ lazyConnect: true, enableOfflineQueue: false })
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
  if (client !== undefined && typeof client?.sendCommand !== 'function') {
    throw new InvalidOptionError('ioredisStore.client', client, 'an ioredis client made by new Redis()')
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
  const address = url !== undefined ? addressOfUrl(url) : nodeAddress(client!)
  const target: RedisTarget = {
    address,
    tls: url === undefined ? undefined : url.startsWith('rediss://'),
    connectTimeoutMs: owned ? connectTimeout : undefined,
    retryMs: owned ? maxReconnectDelay : undefined,
  }
  const redis: IoredisClientLike =
    client ??
    new Redis(url!, {
      ...redisOptions,
      ...(username === undefined ? {} : { username }),
      ...(password === undefined ? {} : { password }),
      ...(tls === undefined ? {} : { tls: { ...redisOptions?.tls, ...tls } }),
      lazyConnect: true,
      connectTimeout,
      // Fail fast while disconnected, and never resend a command whose connection dropped.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      retryStrategy: (times: number) => reconnectDelay(times, maxReconnectDelay),
    })
  return {
    address,
    target,
    delays,
    client: undefined,
    coalesceGets: coalesceGetsOption(options.coalesceGets, 'ioredisStore'),
    ioredis: redis,
    open: (onStatus, onError) => new IoredisLink(redis, owned, delays, onStatus, onError),
  }
}

/**
 * Sends one command over an ioredis client, a Cluster or one of its nodes, replies as bytes or as text: what
 * `callBuffer` and `call` do, minus auto-pipelining. With `enableAutoPipelining` on, ioredis (5.11) queues a
 * `callBuffer` without its command name: the server refuses it (ERR unknown command), and when the first argument
 * is bytes, ioredis throws from a timer and the process dies. The store batches GETs itself (`coalesceGets`). The
 * client's `keyPrefix` still applies, as it does to `callBuffer`.
 */
function send(
  client: IoredisClientLike,
  args: ReadonlyArray<string | Buffer>,
  bytes: boolean,
): Promise<unknown> {
  const keyPrefix = (client.options as { keyPrefix?: unknown } | undefined)?.keyPrefix
  const replyEncoding = bytes ? null : 'utf8'
  const command = new Command(
    String(args[0]),
    args.slice(1),
    typeof keyPrefix === 'string' ? { replyEncoding, keyPrefix } : { replyEncoding },
  )
  client.sendCommand(command)
  return command.promise
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
          refuseAbandoned(call)
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
    // Before the store's own listener goes: the client is never without one.
    if (this.#owned) ignoreErrorsAfterClose(this.#client)
    this.#client.off('ready', this.#handleReady)
    this.#client.off('error', this.#handleError)
    this.#client.off('close', this.#handleClose)
    this.#client.off('reconnecting', this.#handleClose)
    this.#client.off('end', this.#handleClose)
    this.#status = 'closed'
    if (!this.#owned) return
    if (this.#client.status === 'ready') {
      if ((await closeWithin(() => this.#client.quit(), this.#closeTimeout)) === 'closed') return
    }
    // Also ends ioredis's reconnection timer, so a closed cache leaves nothing behind.
    this.#client.disconnect()
  }

  #call(args: ReadonlyArray<string | Buffer>, options: object): Promise<unknown> {
    return send(this.#client, args, options === bufferReplies)
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
