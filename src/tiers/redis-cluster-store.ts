// L2 on a Redis Cluster through node-redis's cluster client: RedisStore's commands, routed by slot.
//
// Everything `redisStore` promises holds (the cache's timeouts and breaker, no replay of commands it gave up on,
// TLS and ACL users, error replies told apart from outages), because this is a RedisStore whose link is a cluster
// client. What a cluster needs besides, and only this file does:
// - keys in fence shards (`fenceShards`), so every script reads and writes one slot (core/key-layout.ts);
// - multi-key commands split by slot: `getMany` and fence reads send one MGET per slot, concurrently (node-redis
//   pipelines the commands bound for one node), read one GET per key while the slot is being migrated, and
//   `delete` sends one UNLINK per slot;
// - `scan` walks every master in turn, its cursor naming the master;
// - pub/sub is sharded (SPUBLISH / SSUBSCRIBE): a channel lives on the master of its slot;
// - the version check asks every master.
import { createRequire } from 'node:module'
import type { createCluster as CreateCluster, RedisClusterOptions } from 'redis'
import type { Duration } from '../core/duration.js'
import { CLUSTER_FENCE_SHARDS } from '../core/key-layout.js'
import { rejectUnknown, type OptionKeys, type OptionPlace } from '../core/known-options.js'
import { InvalidOptionError, type L2UnsupportedError } from '../errors.js'
import { timerDuration } from '../options.js'
import { clusterSlot } from './cluster-slot.js'
import type {
  L2Answer,
  L2Call,
  L2Failure,
  L2FenceRead,
  L2Status,
  OriginRead,
  OriginRecord,
} from './l2-store.js'
import {
  addressOfError,
  addressOfUrl,
  describeRedisFailure,
  redactUrl,
  type RedisTarget,
} from './redis-failure.js'
import {
  askServerVersion,
  coalesceGetsOption,
  fenceRead,
  bufferReplies,
  closeWithin,
  endOwnedClient,
  emitterOf,
  ignoreErrorsAfterClose,
  isErrorReply,
  parseInfo,
  parsePairs,
  plainReplies,
  refusable,
  scanCoverage,
  reconnectDelay,
  refuseAbandoned,
  REDIS_TLS_OPTION_KEYS,
  RedisStore,
  type RedisLink,
  type RedisSetup,
  type RedisTlsOptions,
} from './redis-store.js'

/** One master as node-redis's cluster client lists it. */
export interface RedisClusterNodeLike {
  readonly address: string
  /** The node's connection, once made (node-redis), and its sharded pub/sub connection. */
  readonly client?: { destroy(): unknown } | undefined
  readonly pubSub?: { readonly client: { destroy(): unknown } } | undefined
}

/**
 * The slice of a node-redis 6 cluster client (`createCluster()`) the store uses.
 */
export interface RedisClusterLike {
  readonly isOpen: boolean
  readonly isReady: boolean
  readonly masters: readonly RedisClusterNodeLike[]
  connect(): Promise<unknown>
  close(): Promise<unknown>
  destroy(): unknown
  sendCommand(
    firstKey: string | Buffer | undefined,
    isReadonly: boolean | undefined,
    args: ReadonlyArray<string | Buffer>,
    options?: object,
  ): Promise<unknown>
  nodeClient(
    node: never,
  ): Promise<{ sendCommand(args: ReadonlyArray<string | Buffer>, options?: object): Promise<unknown> }>
  sSubscribe(channel: string, listener: (message: string) => void): Promise<unknown>
  on(event: string, listener: (...args: unknown[]) => void): unknown
  off(event: string, listener: (...args: unknown[]) => void): unknown
}

/**
 * What happened to the cluster's nodes, as a driver reports it (`host:port`). `down` and `ready` are about the
 * sharded subscriptions: `down` when a node that may hold some is lost (its connection dropped, or a slot of a
 * subscribed channel moved away from it), `ready` once what it held is subscribed again (the node came back, or
 * its channels were resubscribed on the nodes that serve them now). Each `down` is followed by one `ready`.
 */
export interface ClusterNodeEvents {
  error(error: unknown, address: string | undefined): void
  down(address: string): void
  ready(address: string): void
}

/**
 * What the cluster store needs of a cluster client besides sending commands routed by key (its link): node-redis's
 * (here) or ioredis's (ioredis-store.ts).
 */
export interface ClusterDriver {
  /** Addresses (`host:port`) of the masters now, in a stable order. */
  masters(): string[]
  /** Sends one command to one master (SCAN, INFO). */
  sendToMaster(address: string, args: ReadonlyArray<string | Buffer>, options: object): Promise<unknown>
  /** A sharded subscription (SSUBSCRIBE) to `channel`. */
  sSubscribe(channel: string, listener: (message: string) => void): Promise<void>
  /** Listens to the nodes' connection events; returns what stops listening. */
  watchNodes(events: ClusterNodeEvents): () => void
}

/** How a `RedisClusterStore` reaches the cluster. */
export interface ClusterSetup extends RedisSetup {
  readonly driver: ClusterDriver
}

export interface RedisClusterStoreOptions {
  /**
   * Some nodes of the cluster, to discover the rest from (three is a good number). The store creates, owns and
   * closes the cluster client. All URLs use one scheme: `redis://` or `rediss://` (TLS, with `tls`).
   * @example [{ url: 'redis://10.0.0.1:7000' }, { url: 'redis://10.0.0.2:7000' }]
   */
  rootNodes?: readonly { readonly url: string }[]
  /**
   * A node-redis cluster client (`createCluster()`) to use instead of `rootNodes`. The store connects it if it is
   * not open yet and never closes it. Create it with `defaults: { disableOfflineQueue: true }`, or commands sent
   * while a node is down wait in its queue (the cache stops waiting at its L2 timeout, and drops them).
   */
  cluster?: RedisClusterLike
  /** Extra `createCluster` options for a client made from `rootNodes` (`nodeAddressMap`, `defaults`…). */
  clusterOptions?: Partial<RedisClusterOptions>
  /** TLS for `rediss://` root nodes, for every node's connection; as `redisStore`'s `tls`. */
  tls?: RedisTlsOptions
  /**
   * Redis ACL user of every node. It needs what `redisStore`'s user needs plus `+spublish +ssubscribe
   * +cluster|slots` (docs/security.md).
   */
  username?: string
  /** Password of `username`. */
  password?: string
  /** How long one connection attempt may take, and the longest `close()` waits. @default '1s' */
  connectTimeout?: Duration
  /**
   * Longest wait between attempts to reconnect to the cluster. Each node's own connection retries at most 0.5 s
   * apart (under this bound), so that a closed store leaves no retry timer alive for long. @default '2s'
   */
  maxReconnectDelay?: Duration
  /**
   * Whether the gets of one tick go out as MGETs, one per slot they touch (a namespace's entries sit in at most 16
   * slots, `fenceShards`), instead of one GET each; as `redisStore`'s `coalesceGets`. Off by default on a cluster:
   * spread over 16 slots, a tick's gets make small MGETs, and no gain was measured. An MGET answered `TRYAGAIN` (a
   * slot being migrated) is read one GET per key, so a reshard does not fail them. @default false
   */
  coalesceGets?: boolean
}

const CLUSTER_STORE_OPTION_KEYS = {
  rootNodes: true,
  cluster: true,
  clusterOptions: true,
  tls: true,
  username: true,
  password: true,
  connectTimeout: true,
  maxReconnectDelay: true,
  coalesceGets: true,
} as const satisfies OptionKeys<RedisClusterStoreOptions>
const CLUSTER_STORE_PLACE: OptionPlace = {
  where: 'redisClusterStore()',
  at: (path) => `redisClusterStore.${path}`,
}

/**
 * Creates the Redis Cluster L2 store for `createCache({ l2 })`.
 *
 * @example
 * import { redisClusterStore } from 'stratacache/redis'
 * const l2 = redisClusterStore({ rootNodes: [{ url: 'redis://10.0.0.1:7000' }, { url: 'redis://10.0.0.2:7000' }] })
 * const cache = createCache({ service: 'catalog', l2 })
 */
export function redisClusterStore(options: RedisClusterStoreOptions): RedisClusterStore {
  return new RedisClusterStore(options)
}

/** Attempts at a sharded subscription while its connection is being made (50, 100, … ms apart). */
const SUBSCRIBE_ATTEMPTS = 6

/** The longest wait between two connection attempts to one node of a cluster the store made (see clusterSetup). */
const NODE_RETRY_MAX_MS = 500

/** Times a command answered `TRYAGAIN` (a slot being migrated) is sent again, 10, 20, … ms apart (about 0.5 s). */
const TRYAGAIN_ATTEMPTS = 9
const TRYAGAIN_PAUSE_MS = 10

/** A `TRYAGAIN` error reply: the command's keys are split between the two sides of a slot migration. */
function isTryAgain(error: unknown): boolean {
  return error instanceof Error && error.message.startsWith('TRYAGAIN')
}

/**
 * A multi-key read refused because its slot is being migrated: `TRYAGAIN` (node-redis), or ioredis giving up after
 * retrying it (`Too many Cluster redirections. Last error: …`, whose last error may be the `TRYAGAIN` or a `MOVED` met
 * on the way while the slot map changes). Either way, one GET per key can still be answered.
 */
function isSplitSlot(error: unknown): boolean {
  return (
    isTryAgain(error) || (error instanceof Error && error.message.startsWith('Too many Cluster redirections'))
  )
}

/** `GET` answers `WRONGTYPE` for a key of another type where `MGET` answers nil: the same miss either way. */
function wrongTypeAsNil(error: unknown): null {
  if (isErrorReply(error) && error.message.startsWith('WRONGTYPE')) return null
  throw error
}

/** INFO sections whose integer fields are counters or byte counts: a cluster's is the sum over its masters. */
const SUMMED_INFO_SECTIONS = new Set(['memory', 'stats', 'keyspace'])

/**
 * The masters' answers to one INFO section or CONFIG GET, as one: with `sum`, a field that is an integer on every
 * master is their total (`used_memory`, `evicted_keys`); `maxmemory` is always the total, or 0 (no limit) when a
 * master has none; any other field keeps its value when the masters agree, else the first master's (address order)
 * and, beside it, every master's as `<field>@<host:port>`. `cluster_masters` says how many answered.
 */
export function combineMasters(
  answers: readonly Readonly<Record<string, string>>[],
  sum: boolean,
  addresses: readonly string[] = [],
): Record<string, string> {
  const combined: Record<string, string> = {}
  const fields = new Set(answers.flatMap((answer) => Object.keys(answer)))
  for (const field of fields) {
    const values = answers.map((answer) => answer[field])
    const integers = values.every((value) => value !== undefined && /^-?\d+$/.test(value))
    if (field === 'maxmemory' && integers) {
      combined[field] = values.some((value) => value === '0')
        ? '0'
        : String(values.reduce((total, value) => total + Number(value), 0))
    } else if (sum && integers) {
      combined[field] = String(values.reduce((total, value) => total + Number(value), 0))
    } else {
      combined[field] = values.find((value) => value !== undefined) ?? ''
      if (new Set(values).size > 1) {
        values.forEach((value, i) => {
          if (value !== undefined) combined[`${field}@${addresses[i] ?? i}`] = value
        })
      }
    }
  }
  combined['cluster_masters'] = String(answers.length)
  return combined
}

/**
 * A fence shard's restore check, read only: { what KEYS[1] records ('' for nothing, else `<id>/<ms>`: the server id
 * and when it was recorded, on that server's clock), the id of the server answering now, when that server started
 * (its clock, ms) }. The ids empty when the server will not say (an ACL without INFO, a server that hides run_id).
 */
const SHARD_ORIGIN_SCRIPT = `
local info = redis.pcall('INFO', 'server')
if type(info) ~= 'string' then return { '', '', '' } end
local run = string.match(info, 'run_id:(%x+)')
local up = tonumber(string.match(info, 'uptime_in_seconds:(%d+)'))
if not run or not up then return { '', '', '' } end
local t = redis.call('TIME')
local started = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) - up * 1000
return { redis.call('GET', KEYS[1]) or '', run, tostring(started) }`

/**
 * Raises the generation at KEYS[1] for fence shards whose server changed, once per change across processes. Each
 * change (ARGV[2…], `<id before>><id now>`: a run_id is new at each start of a server) is added to the set of
 * changes raised for, next to the generation (its key built like the generation's id key, in the same slot); the
 * generation is raised past its value and ARGV[1] only when one of them is new. Answers { generation now, 1 when
 * this call raised it }.
 */
const RAISE_FOR_ORIGINS_SCRIPT = `
local seen = KEYS[1] .. '#restores{' .. KEYS[1] .. '}'
local fresh = 0
for i = 2, #ARGV do fresh = fresh + redis.call('SADD', seen, ARGV[i]) end
local generation = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
if fresh == 0 then return { generation, 0 } end
redis.call('PEXPIRE', seen, 604800000)
local raised = math.max(generation, tonumber(ARGV[1])) + 1
redis.call('SET', KEYS[1], raised)
return { raised, 1 }`

/**
 * Records the server id ARGV[2] at KEYS[1], with the time (`<id>/<ms>`, this server's clock), if it still holds
 * ARGV[1] ('' for nothing): another process may be ahead.
 */
const RECORD_ORIGIN_SCRIPT = `
if (redis.call('GET', KEYS[1]) or '') ~= ARGV[1] then return 0 end
local t = redis.call('TIME')
redis.call('SET', KEYS[1], ARGV[2] .. '/' .. (tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)))
return 1`

/** Node events that say a node's connection is down, and up again. */
const NODE_DOWN = ['node-disconnect', 'node-reconnecting'] as const

export class RedisClusterStore extends RedisStore {
  override readonly name: string = 'redis-cluster'
  /** Keys spread over fence shards, so that every script is single-slot. */
  readonly fenceShards = CLUSTER_FENCE_SHARDS
  readonly #driver: ClusterDriver
  readonly #unwatch: () => void
  /** Nodes whose connection is down now (by address): the sharded subscriptions on them hear nothing. */
  readonly #nodesDown = new Set<string>()
  #subscribed = false
  #deaf = false
  readonly #target: RedisTarget
  /** Nodes whose failure was reported (a warning naming the node), until they are back or leave the slot map. */
  readonly #nodesReported = new Set<string>()
  /** The node each connection error came from, as the client said, for `describeFailure`. */
  readonly #errorNodes = new WeakMap<object, string>()

  /**
   * @param setup how to reach the cluster; made from `options` unless given (the ioredis cluster store gives its
   *   own, and `options` is then unused).
   */
  constructor(options: RedisClusterStoreOptions, setup: ClusterSetup = clusterSetup(options)) {
    super({}, setup)
    this.#driver = setup.driver
    this.#target = setup.target
    this.#unwatch = setup.driver.watchNodes({
      error: (error, address) => {
        if (address !== undefined && error !== null && typeof error === 'object')
          this.#errorNodes.set(error, address)
        this.#reportNode(error, address)
        this.emit({ type: 'error', error, lost: address !== undefined && !this.#nodesDown.has(address) })
      },
      down: (address) => {
        this.#nodesDown.add(address)
        // A sharded subscription on that node hears nothing until it is back: the bus is deaf meanwhile.
        if (this.#subscribed && !this.#deaf && this.status !== 'closed') {
          this.#deaf = true
          this.emit({ type: 'subscriber-status', status: 'reconnecting' })
        }
      },
      ready: (address) => {
        this.#nodesDown.delete(address)
        this.#nodesReported.delete(address)
        // Every node back: messages may have been missed meanwhile, so the bus's 'ready' makes L1 entries suspect.
        if (this.#deaf && this.#nodesDown.size === 0) {
          this.#deaf = false
          this.emit({ type: 'subscriber-status', status: 'ready' })
        }
      },
    })
  }

  /**
   * A connection failure in an operator's words, naming the node it came from (the client's node event, or the
   * network error's own address) rather than the first root node.
   */
  override describeFailure(error: unknown): L2Failure {
    const node =
      (error !== null && typeof error === 'object' ? this.#errorNodes.get(error) : undefined) ??
      addressOfError(error)
    return describeRedisFailure(
      error,
      node === undefined ? this.#target : { ...this.#target, address: node },
      isErrorReply(error),
    )
  }

  /**
   * One warning per node outage when a node cannot be reached while the cluster as a whole still answers (the
   * cache's outage log covers a cluster that is down altogether): which node, why, and what follows.
   */
  #reportNode(error: unknown, address: string | undefined): void {
    if (address === undefined || this.status !== 'ready' || isErrorReply(error)) return
    const masters = new Set(this.#driver.masters())
    for (const reported of this.#nodesReported)
      if (!masters.has(reported)) this.#nodesReported.delete(reported)
    if (this.#nodesReported.has(address)) return
    this.#nodesReported.add(address)
    const failure = describeRedisFailure(error, { ...this.#target, address }, false)
    this.emit({
      type: 'warning',
      message:
        `a node of the Redis Cluster failed: ${failure.summary}. Commands for the slots it serves fail (reads fall ` +
        `through to your loaders) until it is back or a replica takes its place. ${failure.advice}.`,
    })
  }

  /** Coalesced gets go one MGET per slot (`L2Store.coalesceGroupOf`): a failed master fails only its slots' gets. */
  coalesceGroupOf(key: string): number {
    return clusterSlot(key)
  }

  override async getMany(keys: readonly string[], call?: L2Call): Promise<(Uint8Array | null)[]> {
    return (await this.#mgetBySlot(keys, bufferReplies, call)) as (Buffer | null)[]
  }

  override async delete(keys: readonly string[], call?: L2Call): Promise<number> {
    if (keys.length === 0) return 0
    const counts = await Promise.all(
      groupBySlot(keys).map((group) =>
        this.send(['UNLINK', ...group.map((i) => keys[i]!)], plainReplies, call),
      ),
    )
    return counts.reduce<number>((sum, count) => sum + Number(count), 0)
  }

  override async readFence(
    versionKeys: readonly string[],
    seqKey: string,
    epochKey: string,
    call?: L2Call,
  ): Promise<L2FenceRead> {
    const keys = [...versionKeys, seqKey, epochKey]
    return fenceRead(
      async () => (await this.#mgetBySlot(keys, plainReplies, call)) as (string | Buffer | null)[],
      (args) => this.send(args, plainReplies, call),
      epochKey,
    )
  }

  /**
   * Each fence shard's recorded and current servers, in parallel: undefined for a shard whose node did not answer,
   * null for one whose server will not say its id.
   */
  async readOrigins(
    originKeys: readonly string[],
    call?: L2Call,
  ): Promise<(OriginRead | null | undefined)[]> {
    const answers = await Promise.allSettled(
      originKeys.map((key) => this.send(['EVAL', SHARD_ORIGIN_SCRIPT, '1', key], plainReplies, call)),
    )
    return answers.map((answer) => {
      if (answer.status !== 'fulfilled') return undefined
      const [recorded, now, started] = (answer.value as (string | Buffer)[]).map(String) as [
        string,
        string,
        string,
      ]
      if (now === '') return null
      const slash = recorded.lastIndexOf('/')
      return {
        recorded,
        from: slash === -1 ? recorded : recorded.slice(0, slash),
        recordedAtMs: slash === -1 ? undefined : Number(recorded.slice(slash + 1)),
        now,
        startedAtMs: Number(started),
      }
    })
  }

  async raiseForRestores(
    generationKey: string,
    atLeast: number,
    changes: readonly string[],
    call?: L2Call,
  ): Promise<{ readonly generation: number; readonly raised: boolean }> {
    const [generation, raised] = (await this.send(
      ['EVAL', RAISE_FOR_ORIGINS_SCRIPT, '1', generationKey, String(atLeast), ...changes],
      plainReplies,
      call,
    )) as [number, number]
    return { generation: Number(generation), raised: Number(raised) === 1 }
  }

  /** The run_ids of the masters now; undefined when one does not answer INFO or will not say its id. */
  async serverIds(call?: L2Call): Promise<readonly string[] | undefined> {
    refuseAbandoned(call)
    const answers = await Promise.allSettled(
      this.#driver
        .masters()
        .map((master) => this.#driver.sendToMaster(master, ['INFO', 'server'], plainReplies)),
    )
    const ids: string[] = []
    for (const answer of answers) {
      const id = answer.status === 'fulfilled' ? /^run_id:(\w+)/m.exec(String(answer.value))?.[1] : undefined
      if (id === undefined) return undefined
      ids.push(id)
    }
    return ids
  }

  async recordOrigins(records: readonly OriginRecord[], call?: L2Call): Promise<void> {
    await Promise.all(
      records.map((record) =>
        this.send(
          ['EVAL', RECORD_ORIGIN_SCRIPT, '1', record.key, record.expected, record.now],
          plainReplies,
          call,
        ),
      ),
    )
  }

  /**
   * One SCAN step on one master. The cursor is `'0'` to start and when every master was walked; in between it is
   * `<master>:<that master's cursor>`, masters taken in address order. A master added by a reshard during a walk
   * may be missed, and one removed ends its part early: clear() and inspect() walk again on their next call.
   */
  override async scan(
    pattern: string,
    cursor: string,
    count: number,
    call?: L2Call,
  ): Promise<{ cursor: string; keys: string[] }> {
    const masters = this.#driver.masters()
    const colon = cursor.indexOf(':')
    const index = cursor === '0' ? 0 : Number(cursor.slice(0, colon))
    const master = masters[index]
    if (master === undefined) return { cursor: '0', keys: [] }
    refuseAbandoned(call)
    const reply = (await this.#driver.sendToMaster(
      master,
      ['SCAN', cursor === '0' ? '0' : cursor.slice(colon + 1), 'MATCH', pattern, 'COUNT', String(count)],
      plainReplies,
    )) as [string | Buffer, (string | Buffer)[]]
    const next = String(reply[0])
    const keys = reply[1].map(String)
    if (next !== '0') return { cursor: `${index}:${next}`, keys }
    return { cursor: index + 1 < masters.length ? `${index + 1}:0` : '0', keys }
  }

  /**
   * The share of the keyspace walked at `cursor`: the masters done, plus the walked part of the current one (its
   * SCAN cursor read as on one node), over the number of masters (each taken to hold an equal share).
   */
  scanCoverage(cursor: string): number {
    if (cursor === '0') return 1
    const colon = cursor.indexOf(':')
    const count = this.#driver.masters().length
    const index = Number(cursor.slice(0, colon))
    if (count === 0 || !Number.isSafeInteger(index)) return 0
    // `<next master>:0`: the masters before it are done, it is not started.
    const inner = cursor.slice(colon + 1)
    return Math.min(1, (index + (inner === '0' ? 0 : scanCoverage(inner))) / count)
  }

  /**
   * One INFO section of the whole cluster: every master asked, their answers combined (`combineMasters`): memory
   * and stats counters are the masters' totals. A master's refusal is the answer's.
   */
  override info(section: string, call?: L2Call): Promise<L2Answer<Readonly<Record<string, string>>>> {
    return this.#askEveryMaster(
      ['INFO', section],
      parseInfo,
      SUMMED_INFO_SECTIONS.has(section.toLowerCase()),
      call,
    )
  }

  /** CONFIG GET on every master, combined: `maxmemory` is the cluster's total (0, no limit, if any master has 0). */
  override configGet(pattern: string, call?: L2Call): Promise<L2Answer<Readonly<Record<string, string>>>> {
    return this.#askEveryMaster(['CONFIG', 'GET', pattern], parsePairs, false, call)
  }

  async #askEveryMaster(
    args: readonly string[],
    parse: (reply: unknown) => Record<string, string>,
    sum: boolean,
    call: L2Call | undefined,
  ): Promise<L2Answer<Readonly<Record<string, string>>>> {
    return refusable(async () => {
      refuseAbandoned(call)
      const masters = this.#driver.masters()
      const answers = await Promise.all(
        masters.map(async (master) => parse(await this.#driver.sendToMaster(master, args, plainReplies))),
      )
      return combineMasters(answers, sum, masters)
    })
  }

  /** Sharded pub/sub: the message goes to the master of the channel's slot and its subscribers. */
  override async publish(channel: string, message: string, call?: L2Call): Promise<void> {
    await this.send(['SPUBLISH', channel, message], plainReplies, call)
  }

  /** A sharded subscription (SSUBSCRIBE), on the connection the client keeps to the channel's master. */
  override async subscribe(channel: string, listener: (message: string) => void): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      if (this.status === 'closed') throw new Error('redis store is closed')
      try {
        await this.#driver.sSubscribe(channel, listener)
        break
      } catch (error) {
        // The client makes the connection to the channel's master on first use, and a subscription sent while it
        // is not ready yet fails at once (no offline queue): try again a few times, within about a second.
        if (isErrorReply(error) || attempt >= SUBSCRIBE_ATTEMPTS) throw error
        await new Promise((resolve) => setTimeout(resolve, 50 * attempt).unref())
      }
    }
    if (!this.#subscribed) {
      this.#subscribed = true
      this.emit({ type: 'subscriber-status', status: 'ready' })
    }
  }

  override async close(): Promise<void> {
    this.#unwatch()
    await super.close()
  }

  /** Every master's version (INFO server, or HELLO when INFO is refused); the first one too old, if any. */
  protected override async readServerVersion(): Promise<L2UnsupportedError | undefined> {
    const answers = await Promise.all(
      this.#driver
        .masters()
        .map((master) =>
          askServerVersion(
            (args) => this.#driver.sendToMaster(master, args, plainReplies),
            this.delays.closeTimeout,
          ),
        ),
    )
    return answers.find((problem) => problem !== undefined)
  }

  /** MGET per slot, concurrently, the replies put back in the order of `keys`. */
  async #mgetBySlot(keys: readonly string[], options: object, call?: L2Call): Promise<unknown[]> {
    if (keys.length === 0) return []
    const groups = groupBySlot(keys)
    const replies = await Promise.all(
      groups.map((group) =>
        this.#mgetOneSlot(
          group.map((i) => keys[i]!),
          options,
          call,
        ),
      ),
    )
    const values = new Array<unknown>(keys.length)
    groups.forEach((group, g) => group.forEach((i, j) => (values[i] = replies[g]![j] ?? null)))
    return values
  }

  /**
   * One MGET of keys that share a slot. While that slot is being migrated, Redis answers `TRYAGAIN` to it when its
   * keys are not all on one side (a key read as a miss is enough). Sending it again (as `send` does) only works once
   * the migration ends, and a slot of many keys takes seconds to move, longer than the L2 timeout: every getMany,
   * fence read and coalesced get of that slot would fail meanwhile, and open the circuit. So the keys are read one
   * `GET` each instead, which node-redis sends to the side that holds the key (it follows `ASK`). The batch stops
   * being one snapshot; no caller needs one (a fence read only needs each version read before its load starts).
   */
  #mgetOneSlot(slotKeys: string[], options: object, call?: L2Call): Promise<unknown[]> {
    // ClusterLink.send does not send an MGET again on TRYAGAIN: it comes here.
    const mget = this.send(['MGET', ...slotKeys], options, call) as Promise<unknown[]>
    if (slotKeys.length === 1) return mget
    return mget.catch((error: unknown) => {
      if (!isSplitSlot(error)) throw error
      refuseAbandoned(call)
      return Promise.all(slotKeys.map((key) => this.send(['GET', key], options, call).catch(wrongTypeAsNil)))
    })
  }
}

/** node-redis's cluster client as a ClusterDriver. */
function nodeRedisDriver(cluster: RedisClusterLike): ClusterDriver {
  const byAddress = (address: string) => {
    const master = cluster.masters.find((m) => m.address === address)
    if (master === undefined) throw new Error(`${address} is no longer a master of the cluster`)
    return cluster.nodeClient(master as never)
  }
  return {
    masters: () => cluster.masters.map((m) => m.address).sort(),
    sendToMaster: async (address, args, options) => (await byAddress(address)).sendCommand(args, options),
    sSubscribe: async (channel, listener) => {
      await cluster.sSubscribe(channel, listener)
    },
    watchNodes(events) {
      const lost = new Set<string>()
      const isMaster = (address: string) => cluster.masters.some((m) => m.address === address)
      const error = (e: unknown, node: unknown) => events.error(e, nodeAddress(node))
      const down = (node: unknown) => {
        const address = nodeAddress(node)
        // A node no longer in the slot map (failed over, resharded away, then dropped) holds no subscription.
        if (address === undefined || lost.has(address) || !isMaster(address)) return
        lost.add(address)
        events.down(address)
      }
      const ready = (node: unknown) => {
        const address = nodeAddress(node)
        // node-redis moves the sharded listeners of a master that is gone to the node serving their slot now, on
        // the connections it then opens: a lost node that is no longer a master is done with.
        for (const gone of [...lost]) {
          if (gone === address || !isMaster(gone)) {
            lost.delete(gone)
            events.ready(gone)
          }
        }
      }
      cluster.on('node-error', error)
      cluster.on('node-ready', ready)
      for (const event of NODE_DOWN) cluster.on(event, down)
      return () => {
        cluster.off('node-error', error)
        cluster.off('node-ready', ready)
        for (const event of NODE_DOWN) cluster.off(event, down)
      }
    },
  }
}

/** `host:port` of the node node-redis names in its node events (`{ host, port }`). */
function nodeAddress(node: unknown): string | undefined {
  if (node === null || typeof node !== 'object') return undefined
  const { host, port } = node as { host?: unknown; port?: unknown }
  return `${String(host)}:${String(port)}`
}

/**
 * node-redis's `createCluster`, loaded when the store makes its own cluster client: the ioredis store shares this
 * module, and its users need not have the `redis` package.
 */
function createCluster(options: RedisClusterOptions): RedisClusterLike {
  const redis = createRequire(import.meta.url)('redis') as { createCluster: typeof CreateCluster }
  return redis.createCluster(options)
}

/** Indexes of `keys` grouped by cluster slot. */
function groupBySlot(keys: readonly string[]): number[][] {
  const groups = new Map<number, number[]>()
  keys.forEach((key, i) => {
    const slot = clusterSlot(key)
    const group = groups.get(slot)
    if (group === undefined) groups.set(slot, [i])
    else group.push(i)
  })
  return [...groups.values()]
}

/**
 * The key node-redis routes a command by: the first key it names (EVAL's first KEYS entry, XREADGROUP's stream,
 * XGROUP's, XINFO's and MEMORY USAGE's key), or none for commands about the server (any node answers).
 */
export function routingKey(args: ReadonlyArray<string | Buffer>): string | Buffer | undefined {
  const name = String(args[0]).toUpperCase()
  switch (name) {
    case 'EVAL':
    case 'EVALSHA':
      return Number(args[2]) > 0 ? args[3] : undefined
    case 'XGROUP':
    case 'XINFO':
    case 'MEMORY':
      return args[2]
    case 'XREADGROUP': {
      const streams = args.findIndex((arg) => String(arg).toUpperCase() === 'STREAMS')
      return streams === -1 ? undefined : args[streams + 1]
    }
    case 'INFO':
    case 'CONFIG':
    case 'HELLO':
    case 'PING':
    case 'SCAN':
      return undefined
    default:
      return args[1]
  }
}

/** `redisClusterStore()`'s options, checked, as the cluster link the store runs on. */
function clusterSetup(options: RedisClusterStoreOptions): ClusterSetup {
  if (options === null || typeof options !== 'object') {
    throw new InvalidOptionError(
      'redisClusterStore options',
      options,
      "an object such as { rootNodes: [{ url: 'redis://10.0.0.1:7000' }] }",
    )
  }
  rejectUnknown(options, CLUSTER_STORE_OPTION_KEYS, CLUSTER_STORE_PLACE)
  const { rootNodes, cluster, clusterOptions, tls, username, password } = options
  if ((rootNodes === undefined) === (cluster === undefined)) {
    throw new InvalidOptionError('redisClusterStore', options, 'exactly one of `rootNodes` or `cluster`')
  }
  const urls: string[] = []
  if (rootNodes !== undefined) {
    if (!Array.isArray(rootNodes) || rootNodes.length === 0) {
      throw new InvalidOptionError(
        'redisClusterStore.rootNodes',
        rootNodes,
        "a non-empty array such as [{ url: 'redis://10.0.0.1:7000' }]",
      )
    }
    for (const node of rootNodes as readonly unknown[]) {
      const url = (node as { url?: unknown } | null)?.url
      if (typeof url !== 'string' || !/^rediss?:\/\//.test(url)) {
        throw new InvalidOptionError(
          'redisClusterStore.rootNodes',
          typeof url === 'string' ? redactUrl(url) : node,
          "entries such as { url: 'redis://10.0.0.1:7000' }",
        )
      }
      urls.push(url)
    }
    if (new Set(urls.map((url) => url.startsWith('rediss://'))).size > 1) {
      throw new InvalidOptionError(
        'redisClusterStore.rootNodes',
        urls.map(redactUrl),
        'URLs of one scheme: all `redis://` or all `rediss://`',
      )
    }
  }
  if (cluster !== undefined && typeof cluster?.sendCommand !== 'function') {
    throw new InvalidOptionError(
      'redisClusterStore.cluster',
      cluster,
      'a node-redis cluster made by createCluster()',
    )
  }
  const secure = urls[0]?.startsWith('rediss://') === true
  if (tls !== undefined) {
    if (tls === null || typeof tls !== 'object') {
      throw new InvalidOptionError('redisClusterStore.tls', tls, 'an object such as { ca, cert, key }')
    }
    if (!secure) {
      throw new InvalidOptionError(
        'redisClusterStore.rootNodes',
        urls.map(redactUrl),
        "'rediss://' URLs with `tls` (or configure TLS on the cluster you pass as `cluster`)",
      )
    }
    rejectUnknown(tls, REDIS_TLS_OPTION_KEYS, CLUSTER_STORE_PLACE, 'tls')
    if ((tls.cert === undefined) !== (tls.key === undefined)) {
      throw new InvalidOptionError(
        'redisClusterStore.tls',
        tls,
        'both `cert` and `key` for a client certificate, or neither',
      )
    }
  }
  for (const [name, value] of Object.entries({ username, password })) {
    if (value === undefined) continue
    if (typeof value !== 'string' || value.length === 0) {
      throw new InvalidOptionError(`redisClusterStore.${name}`, value, 'a non-empty string')
    }
    if (cluster !== undefined) {
      throw new InvalidOptionError(
        `redisClusterStore.${name}`,
        '(hidden)',
        'nothing with `cluster`: configure that client',
      )
    }
    if (urls.some((url) => /^rediss?:\/\/[^/]*@/.test(url))) {
      throw new InvalidOptionError(
        `redisClusterStore.${name}`,
        '(hidden)',
        'nothing when the URLs carry credentials: put them in one place',
      )
    }
  }
  const connectTimeout = timerDuration(options.connectTimeout ?? 1000, 'redisClusterStore.connectTimeout')
  const maxReconnectDelay = timerDuration(
    options.maxReconnectDelay ?? 2000,
    'redisClusterStore.maxReconnectDelay',
  )
  const delays = { maxReconnectDelay, closeTimeout: connectTimeout }
  const owned = cluster === undefined
  const address = owned ? addressOfUrl(urls[0]!) : (cluster.masters[0]?.address ?? '')
  const target: RedisTarget = {
    address,
    tls: owned ? secure : undefined,
    connectTimeoutMs: owned ? connectTimeout : undefined,
    retryMs: owned ? maxReconnectDelay : undefined,
  }
  let closed = false
  const client: RedisClusterLike =
    cluster ??
    createCluster({
      ...clusterOptions,
      rootNodes: urls.map((url) => ({ url })),
      defaults: {
        ...clusterOptions?.defaults,
        ...(username === undefined ? {} : { username }),
        ...(password === undefined ? {} : { password }),
        // While a node is down its commands fail at once: none waits in a queue to be replayed later.
        disableOfflineQueue: true,
        socket: {
          ...clusterOptions?.defaults?.socket,
          ...(tls === undefined ? {} : { ...tls, tls: true }),
          connectTimeout,
          // Node connections are the cluster client's: it reconnects them (capped, jittered) and rediscovers the
          // slots when a node moves. A closed store destroys them, ending their retries; but node-redis sleeps
          // between attempts on a timer nobody can cancel, which would keep a closed process alive for up to
          // `maxReconnectDelay`. So each node waits at most NODE_RETRY_MAX_MS between attempts (a refused
          // connection to a dead node costs nothing), and none starts once the store is closed.
          reconnectStrategy: (retries: number) =>
            closed ? false : reconnectDelay(retries, Math.min(maxReconnectDelay, NODE_RETRY_MAX_MS)),
        },
      },
    })
  return {
    address,
    target,
    delays,
    client: undefined,
    coalesceGets: coalesceGetsOption(options.coalesceGets, 'redisClusterStore', false),
    driver: nodeRedisDriver(client),
    open: (onStatus, onError) =>
      new ClusterLink(client, owned, delays, onStatus, onError, () => {
        closed = true
      }),
  }
}

/** A cluster client as a RedisLink: commands routed by their first key, the cluster's connection lifecycle. */
class ClusterLink implements RedisLink {
  readonly #cluster: RedisClusterLike
  /** Where the store's listeners go (`emitterOf`): the cluster client node-redis emits on, not its wrapper. */
  readonly #events: Pick<RedisClusterLike, 'on' | 'off'>
  readonly #owned: boolean
  readonly #delays: { maxReconnectDelay: number; closeTimeout: number }
  readonly #onStatus: (status: L2Status) => void
  readonly #onError: (error: unknown, lost: boolean) => void
  #status: L2Status
  #attempt: Promise<void> | undefined
  #retryTimer: ReturnType<typeof setTimeout> | undefined
  #failedAttempts = 0
  #lastError: unknown
  #closed = false
  readonly #onClose: () => void

  constructor(
    cluster: RedisClusterLike,
    owned: boolean,
    delays: { maxReconnectDelay: number; closeTimeout: number },
    onStatus: (status: L2Status) => void,
    onError: (error: unknown, lost: boolean) => void,
    onClose: () => void = () => {},
  ) {
    this.#cluster = cluster
    this.#events = emitterOf(cluster)
    this.#onClose = onClose
    this.#owned = owned
    this.#delays = delays
    this.#onStatus = onStatus
    this.#onError = onError
    this.#status = cluster.isReady ? 'ready' : 'connecting'
    this.#events.on('connect', this.#handleConnect)
    this.#events.on('disconnect', this.#handleDisconnect)
    this.#events.on('error', this.#handleError)
  }

  get status(): L2Status {
    return this.#status
  }

  connect(): Promise<void> {
    if (this.#closed) return Promise.reject(new Error('redis store is closed'))
    if (this.#cluster.isReady) return Promise.resolve()
    if (!this.#owned && this.#cluster.isOpen) return this.#whenConnected()
    this.#attempt ??= this.#connectAll().then(
      () => {
        this.#attempt = undefined
        this.#failedAttempts = 0
        this.#setStatus('ready')
      },
      (error: unknown) => {
        this.#attempt = undefined
        this.#lastError = error
        this.#onError(error, false)
        this.#scheduleReconnect()
        throw error
      },
    )
    return this.#attempt
  }

  /**
   * Discovers the slots, then waits for the connection to every master: node-redis's `connect()` resolves once the
   * slots are known, and a command to a node whose connection is still being made would fail at once (no offline
   * queue), so a cache used right after `connect()` would miss a third of its L2.
   */
  async #connectAll(): Promise<void> {
    if (!this.#cluster.isOpen) await this.#cluster.connect()
    await Promise.all(this.#cluster.masters.map((master) => this.#cluster.nodeClient(master as never)))
  }

  /**
   * As `Connection.send`: waits for an attempt under way, never sends a command the cache gave up on. node-redis
   * follows `MOVED` and `ASK` itself; a `TRYAGAIN` (a multi-key command or script whose keys are on both sides of
   * a slot being migrated) is sent again here, a few times with a growing pause, until the migration of that slot
   * ends (ioredis does the same with `retryDelayOnTryAgain`). The cache's L2 timeout still bounds the whole call.
   */
  send(args: ReadonlyArray<string | Buffer>, options: object, call?: L2Call): Promise<unknown> {
    const sent = this.#sendOnce(args, options, call)
    // Except an MGET: the store reads its keys one GET each instead (RedisClusterStore.#mgetOneSlot).
    if (args[0] === 'MGET') return sent
    return sent.catch((error: unknown) => this.#tryAgain(error, args, options, call, 1))
  }

  async #tryAgain(
    error: unknown,
    args: ReadonlyArray<string | Buffer>,
    options: object,
    call: L2Call | undefined,
    attempt: number,
  ): Promise<unknown> {
    if (!isTryAgain(error) || attempt > TRYAGAIN_ATTEMPTS || this.#closed) throw error
    await new Promise((resolve) => setTimeout(resolve, TRYAGAIN_PAUSE_MS * attempt).unref())
    refuseAbandoned(call)
    return this.#sendOnce(args, options, call).catch((next: unknown) =>
      this.#tryAgain(next, args, options, call, attempt + 1),
    )
  }

  #sendOnce(args: ReadonlyArray<string | Buffer>, options: object, call?: L2Call): Promise<unknown> {
    const cluster = this.#cluster
    // The cluster is ready once its slots are known; an attempt may still be connecting to the masters.
    if (cluster.isReady && this.#attempt === undefined) {
      return cluster.sendCommand(routingKey(args), false, args, options)
    }
    if (this.#attempt !== undefined) {
      return this.#attempt.then(
        () => {
          refuseAbandoned(call)
          return cluster.sendCommand(routingKey(args), false, args, options)
        },
        (error: unknown) => {
          throw this.#notConnected(error)
        },
      )
    }
    if (this.#owned || !cluster.isOpen) return Promise.reject(this.#notConnected())
    return cluster.sendCommand(
      routingKey(args),
      false,
      args,
      call === undefined ? options : { ...options, abortSignal: call.signal },
    )
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.#onClose()
    clearTimeout(this.#retryTimer)
    // Before the store's own listener goes: the cluster client is never without one.
    if (this.#owned) ignoreErrorsAfterClose(this.#events)
    this.#events.off('connect', this.#handleConnect)
    this.#events.off('disconnect', this.#handleDisconnect)
    this.#events.off('error', this.#handleError)
    this.#status = 'closed'
    if (!this.#owned) return
    // A discovery under way goes on after destroy() and connects to every master; a frozen master's connection
    // outlives a close that timed out: both are dropped (endOwnedClient), as one node's connection is.
    const attempt = this.#attempt
    if (attempt !== undefined) {
      // Closed while connecting: a destroy() in the middle of node-redis's slot discovery left sockets nothing
      // could reach (2 runs in 12 kept all three masters' sockets open, and the process alive). The attempt ends
      // first, within the close timeout; what it opened is then closed with the rest.
      await closeWithin(() => attempt, this.#delays.closeTimeout)
    }
    await endOwnedClient(this.#cluster, this.#attempt, this.#delays.closeTimeout, () =>
      this.#cluster.masters.flatMap((node) => [node.client, node.pubSub?.client]),
    )
  }

  #scheduleReconnect(): void {
    if (this.#closed || !this.#owned || this.#retryTimer !== undefined || this.#attempt !== undefined) return
    this.#setStatus('reconnecting')
    const delay = reconnectDelay(this.#failedAttempts++, this.#delays.maxReconnectDelay)
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined
      this.connect().catch(() => {})
    }, delay).unref()
  }

  #whenConnected(): Promise<void> {
    return new Promise((resolve, reject) => {
      const done = (error?: unknown) => {
        this.#events.off('connect', connected)
        this.#events.off('error', failed)
        if (error === undefined) resolve()
        else reject(error instanceof Error ? error : new Error('redis cluster error', { cause: error }))
      }
      const connected = () => done()
      const failed = (error: unknown) => done(error ?? new Error('redis cluster error'))
      this.#events.on('connect', connected)
      this.#events.on('error', failed)
    })
  }

  #notConnected(last: unknown = this.#lastError): Error {
    const why = last instanceof Error ? `: ${last.message.replace(/\.+$/, '')}` : ''
    return new Error(
      `not connected to the Redis Cluster${why}${this.#closed ? '' : '; the store reconnects in the background'}`,
      last === undefined ? undefined : { cause: last },
    )
  }

  readonly #handleConnect = (): void => this.#setStatus('ready')
  readonly #handleDisconnect = (): void => {
    this.#setStatus(this.#closed ? 'closed' : 'reconnecting')
    if (this.#owned) this.#scheduleReconnect()
  }
  readonly #handleError = (error: unknown): void => {
    this.#lastError = error
    this.#onError(error, this.#status === 'ready')
  }

  #setStatus(status: L2Status): void {
    // Closed stays closed: an attempt that ends after close() does not make the link ready again.
    if (this.#status === status || this.#closed) return
    this.#status = status
    this.#onStatus(status)
  }
}
