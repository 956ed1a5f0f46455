// L2 on Redis through node-redis: GET/MGET/SET PX/UNLINK/SCAN over one connection that reconnects by itself.
import { randomBytes } from 'node:crypto'
import { createRequire } from 'node:module'
import type { createClient as CreateClient, RedisClientOptions } from 'redis'
import type { Duration } from '../core/duration.js'
import { InvalidOptionError, L2UnsupportedError } from '../errors.js'
import { rejectUnknown, type OptionKeys, type OptionPlace } from '../core/known-options.js'
import { timerDuration } from '../options.js'
import type {
  L2Failure,
  L2Fence,
  GenerationRead,
  L2FenceRead,
  L2Answer,
  L2Call,
  L2Status,
  L2Store,
  L2StoreEvent,
  L2Write,
  LockAttempt,
  PendingQueueEntry,
  QueueEntry,
} from './l2-store.js'
import {
  addressOfClient,
  addressOfUrl,
  describeRedisFailure,
  redactUrl,
  type RedisTarget,
} from './redis-failure.js'

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
  duplicate(): RedisClientLike
  sendCommand(args: ReadonlyArray<string | Buffer>, options?: object): Promise<unknown>
  subscribe(channel: string, listener: (message: string) => void): Promise<unknown>
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
  /**
   * TLS for a `rediss://` URL: the CA that signed the server's certificate (when it is not a public one), and a
   * client certificate and key when the server requires them (`tls-auth-clients yes`, Redis's default). Values are
   * PEM text or Buffers, as `tls.connect` takes them. The server's certificate is always verified against `ca` (or
   * the system's CAs) and the host name; `servername` overrides the name checked.
   * @example { ca: readFileSync('/etc/redis/ca.pem'), cert: readFileSync('client.pem'), key: readFileSync('client.key') }
   */
  tls?: RedisTlsOptions
  /**
   * Redis ACL user (Redis 6+) and its password, instead of putting them in the URL. The user needs, for the
   * service's keys and channels: `~{service}:*` and `~{service}#*` keys, `&{service}#*` channels, and the commands
   * GET MGET SET UNLINK SCAN INCR PEXPIRE PTTL SADD SSCAN RENAME EVAL PUBLISH SUBSCRIBE PING (docs/security.md).
   */
  username?: string
  /** Password of `username` (or of the `default` user with `requirepass`). */
  password?: string
  /**
   * How long one connection attempt may take; also the longest `close()` waits for Redis to answer its QUIT
   * before dropping the socket. At least 1 ms and at most 2^31−1 ms (about 24.8 days, the longest a Node timer
   * waits); anything else throws ERR_STRATA_INVALID_OPTION. @default '1s'
   */
  connectTimeout?: Duration
  /** Longest wait between reconnection attempts; bounded like `connectTimeout`. @default '2s' */
  maxReconnectDelay?: Duration
  /**
   * Whether the gets of one tick go to Redis as one MGET (at most 64 keys each) instead of one GET each: at 100
   * concurrent readers that is far less work per read for the client, the cache and Redis, for no wait a reader can
   * notice (the command is sent at the end of the tick, when node-redis would send the GETs). A lone get is sent
   * as a GET. Turn it off only to compare, or for a proxy in front of Redis that handles MGET badly. @default true
   */
  coalesceGets?: boolean
}

/** Every key of `RedisStoreOptions` and of its `tls`, checked against the types by the compiler. */
export const REDIS_STORE_OPTION_KEYS = {
  url: true,
  client: true,
  clientOptions: true,
  tls: true,
  username: true,
  password: true,
  connectTimeout: true,
  maxReconnectDelay: true,
  coalesceGets: true,
} as const satisfies OptionKeys<RedisStoreOptions>
export const REDIS_TLS_OPTION_KEYS = {
  ca: true,
  cert: true,
  key: true,
  servername: true,
} as const satisfies OptionKeys<RedisTlsOptions>
const REDIS_STORE_PLACE: OptionPlace = { where: 'redisStore()', at: (path) => `redisStore.${path}` }

/** TLS settings of `redisStore({ url: 'rediss://…', tls })`: the parts of `tls.connect` options a Redis client needs. */
export interface RedisTlsOptions {
  /** CA certificate(s) trusted to sign the server's certificate, PEM. @default the system's CAs */
  ca?: string | Buffer | (string | Buffer)[]
  /** Client certificate chain, PEM, for servers that authenticate clients by certificate. */
  cert?: string | Buffer
  /** Private key of `cert`, PEM. */
  key?: string | Buffer
  /** Host name checked against the server's certificate (SNI). @default the URL's host */
  servername?: string
}

/** node-redis's `RESP_TYPES.BLOB_STRING` (`$`), pinned by test/unit/redis-store-module.test.ts. */
export const BLOB_STRING = 36

/**
 * node-redis's `createClient`, loaded when a store makes its own client: this module is shared with the ioredis
 * store (stratacache/ioredis), whose users need not have the `redis` package.
 */
function createClient(options: RedisClientOptions): RedisClientLike {
  const redis = createRequire(import.meta.url)('redis') as { createClient: typeof CreateClient }
  return redis.createClient(options)
}

/**
 * Options for every command: Buffer replies for values, and node-redis's own per-command timeout off, because the
 * cache bounds every call itself (node-redis 6 arms an `AbortSignal.timeout` per command by default, which cost
 * about half of an L2 hit's CPU time in the benchmark).
 */
export const bufferReplies = { typeMapping: { [BLOB_STRING]: Buffer }, timeout: 0 }
export const plainReplies = { timeout: 0 }

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

/** Deletes the lock only if it still holds our token: a lock that expired and was taken by another is left alone. */
const UNLOCK_SCRIPT =
  "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('UNLINK', KEYS[1]) else return 0 end"
/**
 * Takes a lock (`SET NX PX`); when it is held, answers `{0, pttl}`, unless the holder cannot be a live lock of ours:
 * no expiry (every lock is set with PX, atomically), not a string (GET's WRONGTYPE, caught by pcall), or not a token
 * (ARGV[3] base64url characters). Such a key is replaced by ours: `{1, 1}`. Only commands the documented ACL allows.
 */
const ACQUIRE_LOCK_SCRIPT = `
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return {1, 0} end
local pttl = redis.call('PTTL', KEYS[1])
local held = redis.pcall('GET', KEYS[1])
local live = pttl > 0 and type(held) == 'string' and string.len(held) == tonumber(ARGV[3])
  and string.find(held, '[^A-Za-z0-9_-]') == nil
if live then return {0, pttl} end
redis.call('UNLINK', KEYS[1])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return {1, 1}
`
/** Extends the lock only if it still holds our token. */
const EXTEND_SCRIPT =
  "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end"

/**
 * Lua `add_to_tag(set, member, ttl, sample)`: adds a member to a tag set, makes the set live at least the TTL, and
 * keeps it bounded by checking `sample` members (0 for none); returns how many it removed, or Redis's refusal.
 * Members are entry keys, and nothing else removes the member of an entry that expired, so a long-lived tag on
 * changing keys would grow for ever.
 *
 * Each add checks a few random members. One whose entry is gone gets a marker key (`<member>#gone`, living a day),
 * whose remaining TTL tells when it was first seen gone; seen gone again at least a grace of min(TTL, 1 min) later,
 * it is removed. Twice, and not once, because a load registers its tags just before its value lands: a member whose
 * value is still on its way must not be dropped, or invalidateTag would miss that value. Adding a member clears its
 * marker. Only commands the documented ACL allows, plus SRANDMEMBER and SREM, called with pcall: without them the
 * script returns the refusal (the member is added all the same) and the store stops pruning. Member keys are read
 * without being declared: fine on one Redis node (the only L2 so far), not on a Redis Cluster.
 */
const TAG_ADD_LUA = `
local function add_to_tag(set, member, ttl, sample)
  redis.call('SADD', set, member)
  local left = redis.call('PTTL', set)
  if left == -1 or left < ttl then redis.call('PEXPIRE', set, ttl) end
  if sample == 0 then return 0 end
  local grace, hold = math.min(ttl, 60000), 86400000
  redis.call('UNLINK', member .. '#gone')
  local others = redis.pcall('SRANDMEMBER', set, sample)
  if others.err then return others.err end
  local removed = 0
  for _, other in ipairs(others) do
    if other ~= member and redis.call('PTTL', other) == -2 then
      local mark = other .. '#gone'
      local since = redis.call('PTTL', mark)
      if since < 0 then
        redis.call('SET', mark, '1', 'PX', hold)
      elseif hold - since >= grace then
        local reply = redis.pcall('SREM', set, other)
        if type(reply) == 'table' and reply.err then return reply.err end
        redis.call('UNLINK', mark)
        removed = removed + 1
      end
    end
  end
  return removed
end
`

/** KEYS: the set; ARGV: member, TTL in ms, members to check (0 for none). The removed count, or the refusal. */
const ADD_TO_TAG_SCRIPT = `${TAG_ADD_LUA}
return add_to_tag(KEYS[1], ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]))`

/**
 * Stores a loaded value only if its entry's version and its shard's epoch are unchanged, no write-behind write of
 * the entry is pending (when ARGV[8] is '1') and no invalidation mark is above the sequence number the load started
 * under; then adds the key to its tag sets (extending their TTL to the entry's). KEYS: entry, version, epoch,
 * pending mark (the entry again when none), marks…, sets…; ARGV: value, version, ttl, seq, number of marks, members
 * to check for pruning (0 for none), epoch, whether to check the pending mark. Returns 1 (stored), 0 (refused), or
 * Redis's refusal of a pruning command (stored).
 */
const STORE_FENCED_SCRIPT = `${TAG_ADD_LUA}
if tonumber(redis.call('GET', KEYS[2]) or '0') ~= tonumber(ARGV[2]) then return 0 end
if redis.call('GET', KEYS[3]) ~= ARGV[7] then return 0 end
if ARGV[8] == '1' and redis.call('GET', KEYS[4]) then return 0 end
local marks = tonumber(ARGV[5])
local seq = tonumber(ARGV[4])
for i = 5, 4 + marks do
  local mark = redis.call('GET', KEYS[i])
  if mark and tonumber(mark) > seq then return 0 end
end
local ttl, sample = tonumber(ARGV[3]), tonumber(ARGV[6])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl)
local refused = nil
for i = 5 + marks, #KEYS do
  -- Once Redis refused a pruning command, add without pruning.
  local added = add_to_tag(KEYS[i], KEYS[1], ttl, refused == nil and sample or 0)
  if type(added) ~= 'number' then refused = added end
end
if refused then return refused end
return 1`

/**
 * A fence read: `read()` answers the MGET of the versions…, the sequence and the epoch. A missing epoch (a fresh or
 * emptied Redis, or an evicted epoch) is set to a new random value, unless another process set one meanwhile, and
 * everything read again: every fence read before the loss then fails its store, and this one's versions are from
 * the same read as its epoch (the first read's could be from before a loss that came before the epoch was set). An
 * epoch missing again (another loss) is answered as `NO_EPOCH`, which no store matches.
 */
export async function fenceRead(
  read: () => Promise<readonly (string | Buffer | null)[]>,
  send: (args: string[]) => Promise<unknown>,
  epochKey: string,
): Promise<L2FenceRead> {
  let reply = await read()
  if (reply.at(-1) === null || reply.at(-1) === undefined) {
    await send(['SET', epochKey, randomBytes(12).toString('base64url'), 'NX'])
    reply = await read()
  }
  const versions = reply.slice(0, -2).map((value) => (value === null ? 0 : Number(value)))
  const seq = reply.at(-2)
  const epoch = reply.at(-1)
  return {
    versions,
    seq: seq === null || seq === undefined ? 0 : Number(seq),
    epoch: epoch === null || epoch === undefined ? NO_EPOCH : String(epoch),
  }
}

/** The epoch of a fence read that found none twice: no epoch key holds it (they hold 16 base64url characters). */
const NO_EPOCH = ''

/**
 * A namespace's generation at KEYS[1], with the restore check of `readGeneration`. The server id sits next to it,
 * at KEYS[1] .. '#origin{' .. KEYS[1] .. '}': built here from the key as sent, so that on a cluster it hashes to
 * KEYS[1]'s slot whatever key prefix the client adds (the generation key has no braces, so its slot is that of
 * its whole name, which is the id key's hash tag), and it starts like KEYS[1] for ACL key patterns. Answers
 * { generation, id before, id now }, the ids empty unless this call raised the generation. A user whose ACL refuses
 * INFO (or a server that hides run_id) reads the generation without the check. Each change of server
 * (`<id before>><id now>`) is raised for once, whichever check sees it first: this one or, on a Redis Cluster whose
 * restored node also holds fence shards, theirs (the set of changes raised for, `#restores`, is shared).
 */
const READ_GENERATION_SCRIPT = `
local generation = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
local info = redis.pcall('INFO', 'server')
if type(info) ~= 'string' then return { generation, '', '' } end
local run = string.match(info, 'run_id:(%x+)')
if not run then return { generation, '', '' } end
local originKey = KEYS[1] .. '#origin{' .. KEYS[1] .. '}'
local origin = redis.call('GET', originKey)
if origin == run then return { generation, '', '' } end
redis.call('SET', originKey, run)
if not origin then return { generation, '', '' } end
local seen = KEYS[1] .. '#restores{' .. KEYS[1] .. '}'
if redis.call('SADD', seen, origin .. '>' .. run) == 0 then return { generation, '', '' } end
redis.call('PEXPIRE', seen, 604800000)
local raised = math.max(generation, tonumber(ARGV[1])) + 1
redis.call('SET', KEYS[1], raised)
return { raised, origin, run }`

/** Sets KEYS[1] to the stream id ARGV[1] for ARGV[2] ms, unless it holds a later id (`ms-seq`, compared as numbers). */
const MARK_PENDING_SCRIPT = `
local held = redis.call('GET', KEYS[1])
if held then
  local hm, hs = string.match(held, '^(%d+)%-(%d+)$')
  local nm, ns = string.match(ARGV[1], '^(%d+)%-(%d+)$')
  if hm and nm and (tonumber(hm) > tonumber(nm) or (hm == nm and tonumber(hs) > tonumber(ns))) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1`

/** Increments the sequence (KEYS[1]) and sets every mark (KEYS[2…]) to it for ARGV[1] ms. */
const MARK_INVALIDATED_SCRIPT = `
local seq = redis.call('INCR', KEYS[1])
for i = 2, #KEYS do redis.call('SET', KEYS[i], seq, 'PX', ARGV[1]) end
return seq`

/** Members of a tag set checked per add: a set then holds about 1.5 times its live entries (docs/operations.md). */
const TAG_PRUNE_SAMPLE = 6

/** The oldest Redis the store works with: it sends PEXPIRE … GT/NX (Redis 7.0) and ZADD GT (6.2). */
export const MIN_REDIS_VERSION = '7.0'

/**
 * Decides, from the fields a server describes itself with (`INFO server`: `redis_version`; or `HELLO`: `server`,
 * `version`), whether it is too old for the store: the error to report, or undefined when it is recent enough or does
 * not say (a proxy may hide the version; that is not held against it). Valkey reports a `redis_version` too.
 */
export function checkServerVersion(fields: Readonly<Record<string, string>>): L2UnsupportedError | undefined {
  const version = fields['redis_version'] ?? fields['version']
  const match = /^(\d+)\.(\d+)/.exec(version ?? '')
  if (version === undefined || match === null) return undefined
  const [major, minor] = [Number(match[1]), Number(match[2])]
  const [minMajor, minMinor] = MIN_REDIS_VERSION.split('.').map(Number) as [number, number]
  if (major > minMajor || (major === minMajor && minor >= minMinor)) return undefined
  return new L2UnsupportedError(
    fields['server_name'] ?? fields['server'] ?? 'redis',
    version,
    MIN_REDIS_VERSION,
  )
}

/**
 * The wait before reconnection attempt `attempt` (0 for the first): capped exponential backoff from 50 ms, with
 * jitter so a fleet does not reconnect in step. The one rule for every client the stores make.
 */
export function reconnectDelay(attempt: number, maxDelayMs: number): number {
  return Math.min(maxDelayMs, 50 * 2 ** Math.min(attempt, 10)) * (0.8 + Math.random() * 0.2)
}

/**
 * Keeps a closed, store-owned client from crashing the process: once the store's own 'error' handler is removed, a
 * socket reset during the graceful close (a partition, a Redis killed meanwhile) would be an 'error' event with no
 * listener, which Node throws. After close nothing is waiting for that error, so it is dropped.
 */
export function ignoreErrorsAfterClose(client: {
  on(event: 'error', listener: (error: unknown) => void): unknown
}) {
  client.on('error', () => {})
}

/**
 * The emitter behind a node-redis client, where listeners must go. `createClient()` returns `Object.create(client)`:
 * listeners added on that wrapper land in the client's table only while the wrapper's own listener count is above 0;
 * once removing them brings it to 0, Node gives the wrapper a table of its own, which the client (the one that emits)
 * never reads. A listener added after that (the store's no-op after close) was lost, and a late socket reset crashed
 * the process. node-redis names the client `_self` (on the client itself too); anything else is its own emitter.
 */
export function emitterOf<T extends object>(client: T): T {
  const self = (client as { _self?: unknown })._self
  const emitter = typeof self === 'object' && self !== null ? (self as T) : client
  anchorListeners(emitter as unknown as AnchoredEmitter)
  return emitter
}

/** A private event no one emits: its listener keeps an emitter's listener count above 0 (`emitterOf`). */
const ANCHOR = Symbol('stratacache: keeps the listener table')
interface AnchoredEmitter {
  listenerCount?(event: symbol): number
  on(event: symbol, listener: () => void): unknown
}

/**
 * Once per emitter, a listener on a private event, never removed. The same split happens the other way round: a
 * user adds listeners to the wrapper (counted there, stored in the client's table) and the store adds its own on the
 * client; removing the store's would bring the client's count to 0 and give it a new, empty table, dropping the
 * user's listeners with it. With this one the count never gets there.
 */
function anchorListeners(emitter: AnchoredEmitter): void {
  if (typeof emitter.listenerCount !== 'function' || emitter.listenerCount(ANCHOR) > 0) return
  emitter.on(ANCHOR, () => {})
}

/** `client.destroy()`, which node-redis before 6.3 throws from when the client is already closed. */
function destroyQuietly(client: { destroy(): unknown }): void {
  try {
    client.destroy()
  } catch {
    // Already closed: nothing left to drop.
  }
}

/**
 * Ends a client the store made (one node's, or a cluster's): gracefully when it is ready, within `timeoutMs`, else
 * destroyed, even when node-redis says it is no longer open (after a graceful close that timed out, its socket still
 * is). `attempt`, a connection attempt under way, is not stopped by destroy(): node-redis finishes it, so what it
 * opened is destroyed when it ends. `held()` is read before the graceful close: connections to destroy too if that
 * close gives up (a cluster forgets its nodes as its close starts).
 */
export async function endOwnedClient(
  client: { readonly isReady: boolean; close(): Promise<unknown>; destroy(): unknown },
  attempt: Promise<unknown> | undefined,
  timeoutMs: number,
  held: () => readonly ({ destroy(): unknown } | undefined)[] = () => [],
): Promise<void> {
  void attempt?.then(
    () => destroyQuietly(client),
    () => destroyQuietly(client),
  )
  if (client.isReady) {
    const connections = held()
    // A graceful close waits for every queued reply; a frozen server would make it wait forever. Bound it.
    if ((await closeWithin(() => client.close(), timeoutMs)) === 'closed') return
    for (const connection of connections) if (connection !== undefined) destroyQuietly(connection)
  }
  destroyQuietly(client)
}

/** Closes gracefully with `close`, unless that takes longer than `timeoutMs` (a frozen server): what happened. */
export async function closeWithin(
  close: () => Promise<unknown>,
  timeoutMs: number,
): Promise<'closed' | 'failed' | 'timeout'> {
  let timer: ReturnType<typeof setTimeout> | undefined
  const outcome = await Promise.race([
    close().then(
      () => 'closed' as const,
      () => 'failed' as const,
    ),
    new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), timeoutMs))),
  ])
  clearTimeout(timer)
  return outcome
}

/**
 * Throws when the cache gave up on `call` (its timeout fired) while the command waited for a connection: sent late,
 * it would run after its caller moved on.
 */
export function refuseAbandoned(call: L2Call | undefined): void {
  if (call?.signal.aborted) throw new Error('stratacache gave up on this command before it could be sent')
}

/**
 * The server's version problem, asked through `send`: `INFO server`, or `HELLO` (which no ACL refuses) when INFO is
 * refused or says nothing of the version; each bounded by `timeoutMs`. A server that cannot be asked is given the
 * benefit of the doubt (undefined).
 */
export async function askServerVersion(
  send: (args: readonly string[]) => Promise<unknown>,
  timeoutMs: number,
): Promise<L2UnsupportedError | undefined> {
  const questions = [
    [['INFO', 'server'], parseInfo],
    [['HELLO'], parsePairs],
  ] as const
  for (const [args, parse] of questions) {
    let timer: ReturnType<typeof setTimeout> | undefined
    try {
      const reply = await Promise.race([
        send(args),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error('no answer')), timeoutMs).unref()
        }),
      ])
      const fields = parse(reply)
      if (fields['redis_version'] !== undefined || fields['version'] !== undefined) {
        return checkServerVersion(fields)
      }
    } catch (error) {
      if (!isErrorReply(error)) return undefined
    } finally {
      clearTimeout(timer)
    }
  }
  return undefined
}

/**
 * What `RedisStore` sends its commands through: one connection (`Connection`), or a Redis Cluster client
 * (`redis-cluster-store.ts`), which routes each command by its first key.
 */
export interface RedisLink {
  readonly status: L2Status
  /** Resolves when connected; rejects when this attempt fails (a link the store made then retries by itself). */
  connect(): Promise<void>
  /** Sends one command; see `Connection.send` for the rules every link keeps (no replay of abandoned commands). */
  send(args: ReadonlyArray<string | Buffer>, options: object, call?: L2Call): Promise<unknown>
  /** Closes what the store opened (bounded by the close timeout); a client passed in is only let go. */
  close(): Promise<void>
}

/** How a `RedisStore` reaches Redis: made from `redisStore()`'s options, or by `redisClusterStore()`. */
export interface RedisSetup {
  readonly address: string
  readonly target: RedisTarget
  readonly delays: { maxReconnectDelay: number; closeTimeout: number }
  /** The single-node client (for its pub/sub duplicate); undefined for a cluster. */
  readonly client: RedisClientLike | undefined
  /** `coalesceGets`, checked (`coalesceGetsOption`). */
  readonly coalesceGets: boolean
  open(onStatus: (status: L2Status) => void, onError: (error: unknown, lost: boolean) => void): RedisLink
}

/**
 * One node-redis connection and its lifecycle. For a client the store created, node-redis's reconnect loop is off
 * (its sleep cannot be cancelled, so `close()` could not end it) and this class reconnects with capped backoff on
 * an unref'd timer that `close()` clears. A client passed in by the user keeps its own settings and is not closed.
 */
class Connection implements RedisLink {
  readonly client: RedisClientLike
  /** Where the store's listeners go (`emitterOf`): the client node-redis emits on, not its wrapper. */
  readonly #events: Pick<RedisClientLike, 'on' | 'off'>
  readonly #owned: boolean
  readonly #maxReconnectDelay: number
  readonly #closeTimeout: number
  readonly #onStatus: (status: L2Status) => void
  readonly #onError: (error: unknown, lost: boolean) => void
  #status: L2Status
  /** The connection attempt under way (owned clients only). */
  #attempt: Promise<void> | undefined
  #retryTimer: ReturnType<typeof setTimeout> | undefined
  #failedAttempts = 0
  /** The last connection error, to say why a command cannot be sent. */
  #lastError: unknown
  #closed = false

  constructor(
    client: RedisClientLike,
    owned: boolean,
    delays: { maxReconnectDelay: number; closeTimeout: number },
    onStatus: (status: L2Status) => void,
    onError: (error: unknown, lost: boolean) => void,
  ) {
    this.client = client
    this.#events = emitterOf(client)
    this.#owned = owned
    this.#maxReconnectDelay = delays.maxReconnectDelay
    this.#closeTimeout = delays.closeTimeout
    this.#onStatus = onStatus
    this.#onError = onError
    this.#status = client.isReady ? 'ready' : 'connecting'
    this.#events.on('error', this.#handleError)
    this.#events.on('ready', this.#handleReady)
    this.#events.on('reconnecting', this.#handleReconnecting)
    this.#events.on('end', this.#handleEnd)
  }

  get status(): L2Status {
    return this.#status
  }

  /** Resolves when connected; rejects when this attempt fails (an owned client then retries by itself). */
  connect(): Promise<void> {
    if (this.#closed) return Promise.reject(new Error('redis store is closed'))
    if (this.client.isReady) return Promise.resolve()
    if (!this.#owned) return this.#whenReadyOrFailed()
    this.#attempt ??= this.client.connect().then(
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

  /**
   * Sends a command. While a connection attempt is under way (the first one, or a reconnection) it waits for that
   * attempt, which settles on success or failure (the cache's L2 timeout bounds the wait), so a cache used right
   * after createCache() does not miss L2. Otherwise a lost connection makes commands fail at once (no offline
   * queue) instead of piling up.
   *
   * A command the cache gave up on (`call.signal` aborted: its timeout fired) is never sent afterwards: it would run
   * late, after its caller moved on, e.g. a SET of a value loaded during an outage landing over a newer one.
   */
  send(args: ReadonlyArray<string | Buffer>, options: object, call?: L2Call): Promise<unknown> {
    const client = this.client
    // The common path: connected, so node-redis writes the command on its next tick, with no signal to set up.
    if (client.isReady) return client.sendCommand(args, options)
    if (this.#attempt !== undefined) {
      return this.#attempt.then(
        () => {
          refuseAbandoned(call)
          return client.sendCommand(args, options)
        },
        // The attempt's failure is not this command's answer: a WRONGPASS from the handshake is an outage for the
        // command, not an error reply to it (which would keep the circuit closed).
        (error: unknown) => {
          throw this.#notConnected(error)
        },
      )
    }
    // Not connected. A client the store made refuses the command at once (no offline queue), saying why rather than
    // node-redis's "The client is closed". A client passed in may queue it until it reconnects (its offline queue):
    // with the call's signal, node-redis drops it from that queue when the cache gives up, instead of replaying it.
    if (this.#owned && !client.isOpen) return Promise.reject(this.#notConnected())
    return client.sendCommand(args, call === undefined ? options : { ...options, abortSignal: call.signal })
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    clearTimeout(this.#retryTimer)
    // Before the store's own listener goes: the client is never without one.
    if (this.#owned) ignoreErrorsAfterClose(this.#events)
    this.#events.off('error', this.#handleError)
    this.#events.off('ready', this.#handleReady)
    this.#events.off('reconnecting', this.#handleReconnecting)
    this.#events.off('end', this.#handleEnd)
    this.#status = 'closed'
    if (this.#owned) await endOwnedClient(this.client, this.#attempt, this.#closeTimeout)
  }

  /** Capped exponential backoff with jitter, on an unref'd timer close() clears. */
  #scheduleReconnect(): void {
    if (this.#closed || !this.#owned || this.#retryTimer !== undefined || this.#attempt !== undefined) return
    this.#setStatus('reconnecting')
    const delay = reconnectDelay(this.#failedAttempts++, this.#maxReconnectDelay)
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
        this.#events.off('ready', ready)
        this.#events.off('error', failed)
        if (error === undefined) resolve()
        else reject(error instanceof Error ? error : new Error('redis client error', { cause: error }))
      }
      const ready = () => done()
      const failed = (error: unknown) => done(error ?? new Error('redis client error'))
      this.#events.on('ready', ready)
      this.#events.on('error', failed)
      if (!this.client.isOpen) this.client.connect().catch(failed)
    })
  }

  /** Why a command cannot be sent: not connected, the last attempt's failure, and that it reconnects. */
  #notConnected(last: unknown = this.#lastError): Error {
    const why = last instanceof Error ? `: ${last.message.replace(/\.+$/, '')}` : ''
    return new Error(
      `not connected to Redis${why}${this.#closed ? '' : '; the store reconnects in the background'}`,
      last === undefined ? undefined : { cause: last },
    )
  }

  readonly #handleError = (error: unknown): void => {
    this.#lastError = error
    // Before the status changes: an error on a ready connection ended it (lost), otherwise an attempt failed.
    this.#onError(error, this.#status === 'ready')
    // An owned client closes itself when its connection drops (no reconnect strategy): reconnect it.
    if (this.#owned && !this.client.isOpen) this.#scheduleReconnect()
  }

  readonly #handleReady = (): void => this.#setStatus('ready')
  readonly #handleReconnecting = (): void => this.#setStatus('reconnecting')
  readonly #handleEnd = (): void => {
    this.#setStatus(this.#closed ? 'closed' : 'reconnecting')
    if (this.#owned) this.#scheduleReconnect()
  }

  #setStatus(status: L2Status): void {
    // Closed stays closed: an attempt that ends after close() does not make the link ready again.
    if (this.#status === status || this.#closed) return
    this.#status = status
    this.#onStatus(status)
  }
}

/** Runs an administrative command: a server's error reply (NOPERM, unknown command) becomes a refusal. */
export async function refusable<T>(call: () => Promise<T>): Promise<L2Answer<T>> {
  try {
    return { ok: true, value: await call() }
  } catch (error) {
    if (isErrorReply(error)) return { ok: false, refused: error.message }
    throw error
  }
}

/** Whether Redis answered with an error (it is up), as opposed to a lost connection or a client-side failure. */
export function isErrorReply(error: unknown): error is Error {
  // A client passed in may come from another copy of node-redis, with its own ErrorReply class; ioredis answers
  // error replies with a ReplyError.
  for (let proto: unknown = error; proto !== null && typeof proto === 'object';) {
    const name = (proto as { constructor?: { name?: string } }).constructor?.name
    if (name === 'ErrorReply' || name === 'ReplyError') return true
    proto = Object.getPrototypeOf(proto)
  }
  return false
}

/**
 * The fraction of the keyspace a SCAN has walked when it returns `cursor`. Redis visits hash buckets in
 * reverse-binary order: the cursor is the next bucket, and the buckets visited are exactly those whose reversed
 * index is below the cursor's reversed index. Reversing over 64 bits makes this independent of the table's size.
 * On a Redis Cluster the store walks one master after the other and reads its own cursor (`L2Store.scanCoverage`).
 */
export function scanCoverage(cursor: string): number {
  if (cursor === '0') return 1
  let value = BigInt(cursor)
  let reversed = 0n
  for (let bit = 0; bit < 64; bit++) {
    reversed = (reversed << 1n) | (value & 1n)
    value >>= 1n
  }
  return Number(reversed) / 2 ** 64
}

/** INFO's text, `# Section` headers and `field:value` lines, as a record of fields. */
export function parseInfo(reply: unknown): Record<string, string> {
  const fields: Record<string, string> = {}
  for (const line of String(reply).split(/\r?\n/)) {
    const colon = line.indexOf(':')
    if (colon > 0 && !line.startsWith('#')) fields[line.slice(0, colon)] = line.slice(colon + 1).trim()
  }
  return fields
}

/** CONFIG GET's reply: a flat `[name, value, …]` array (RESP2), or a map (RESP3), as a record of texts. */
export function parsePairs(reply: unknown): Record<string, string> {
  const pairs: Record<string, string> = {}
  for (const [name, value] of Object.entries(rawPairs(reply))) pairs[name] = String(value)
  return pairs
}

/** A `[name, value, …]` reply (RESP2) or a map (RESP3), such as CONFIG GET's or XINFO's, with its values as sent. */
function rawPairs(reply: unknown): Record<string, unknown> {
  const pairs: Record<string, unknown> = {}
  if (Array.isArray(reply)) {
    for (let i = 0; i + 1 < reply.length; i += 2) pairs[String(reply[i])] = reply[i + 1]
  } else if (reply instanceof Map) {
    for (const [name, value] of reply) pairs[String(name)] = value
  } else if (reply !== null && typeof reply === 'object') {
    Object.assign(pairs, reply)
  }
  return pairs
}

/** `redisStore()`'s options, checked, as the connection a `RedisStore` runs on. */
function singleNodeSetup(options: RedisStoreOptions): RedisSetup {
  if (options === null || typeof options !== 'object') {
    throw new InvalidOptionError(
      'redisStore options',
      options,
      "an object such as { url: 'redis://127.0.0.1:6379' }",
    )
  }
  rejectUnknown(options, REDIS_STORE_OPTION_KEYS, REDIS_STORE_PLACE)
  const { url, client, clientOptions } = options
  if ((url === undefined) === (client === undefined)) {
    throw new InvalidOptionError('redisStore', options, 'exactly one of `url` or `client`')
  }
  if (url !== undefined && (typeof url !== 'string' || !/^rediss?:\/\//.test(url))) {
    throw new InvalidOptionError(
      'redisStore.url',
      typeof url === 'string' ? redactUrl(url) : url,
      "a URL such as 'redis://127.0.0.1:6379' or 'rediss://…'",
    )
  }
  if (client !== undefined && typeof client?.sendCommand !== 'function') {
    throw new InvalidOptionError('redisStore.client', client, 'a node-redis client made by createClient()')
  }
  const { tls, username, password } = options
  if (tls !== undefined) {
    if (tls === null || typeof tls !== 'object') {
      throw new InvalidOptionError('redisStore.tls', tls, 'an object such as { ca, cert, key }')
    }
    if (url === undefined || !url.startsWith('rediss://')) {
      throw new InvalidOptionError(
        'redisStore.url',
        url,
        "a 'rediss://' URL with `tls` (or configure TLS on the client you pass as `client`)",
      )
    }
    rejectUnknown(
      tls,
      REDIS_TLS_OPTION_KEYS,
      REDIS_STORE_PLACE,
      'tls',
      'Pass other `tls.connect` options in `clientOptions.socket`.',
    )
    if ((tls.cert === undefined) !== (tls.key === undefined)) {
      throw new InvalidOptionError(
        'redisStore.tls',
        tls,
        'both `cert` and `key` for a client certificate, or neither',
      )
    }
  }
  for (const [name, value] of Object.entries({ username, password })) {
    if (value === undefined) continue
    if (typeof value !== 'string' || value.length === 0) {
      throw new InvalidOptionError(`redisStore.${name}`, value, 'a non-empty string')
    }
    if (url === undefined) {
      throw new InvalidOptionError(
        `redisStore.${name}`,
        '(hidden)',
        'nothing with `client`: configure that client',
      )
    }
    // node-redis lets credentials in the URL win silently; two sources of one secret is a mistake either way.
    if (/^rediss?:\/\/[^/]*@/.test(url)) {
      throw new InvalidOptionError(
        `redisStore.${name}`,
        '(hidden)',
        'nothing when the URL carries credentials: put them in one place',
      )
    }
  }
  // Both arm timers: a value past 2^31−1 ms would fire after 1 ms (every connection attempt timed out at once).
  const connectTimeout = timerDuration(options.connectTimeout ?? 1000, 'redisStore.connectTimeout')
  const maxReconnectDelay = timerDuration(options.maxReconnectDelay ?? 2000, 'redisStore.maxReconnectDelay')
  const delays = { maxReconnectDelay, closeTimeout: connectTimeout }
  const owned = url !== undefined
  const address = url === undefined ? (addressOfClient(client) ?? '') : addressOfUrl(url)
  const target: RedisTarget = {
    address,
    tls: url === undefined ? undefined : url.startsWith('rediss://'),
    connectTimeoutMs: url === undefined ? undefined : connectTimeout,
    retryMs: url === undefined ? undefined : maxReconnectDelay,
  }
  const redis: RedisClientLike =
    url === undefined
      ? (client as RedisClientLike)
      : createClient({
          ...clientOptions,
          ...(username === undefined ? {} : { username }),
          ...(password === undefined ? {} : { password }),
          url,
          disableOfflineQueue: true,
          socket: {
            ...clientOptions?.socket,
            ...(tls === undefined ? {} : { ...tls, tls: true }),
            connectTimeout,
            reconnectStrategy: false,
          } as NonNullable<RedisClientOptions['socket']>,
        })
  return {
    address,
    target,
    delays,
    client: redis,
    coalesceGets: coalesceGetsOption(options.coalesceGets, 'redisStore'),
    open: (onStatus, onError) => new Connection(redis, owned, delays, onStatus, onError),
  }
}

/** A store factory's `coalesceGets`, checked: a boolean, `byDefault` when absent. */
export function coalesceGetsOption(value: unknown, factory: string, byDefault = true): boolean {
  if (value === undefined) return byDefault
  if (typeof value !== 'boolean') {
    throw new InvalidOptionError(`${factory}.coalesceGets`, value, '`true` or `false`')
  }
  return value
}

export class RedisStore implements L2Store {
  readonly name: string = 'redis'
  /** The guard sends the gets of one tick as one getMany (`RedisStoreOptions.coalesceGets`). */
  readonly coalesceGets: boolean
  /** `host:port` the store connects to, never with credentials ('' when a client passed in does not say). */
  readonly address: string
  readonly #target: RedisTarget
  readonly #main: RedisLink
  /** The single-node client, duplicated for pub/sub; undefined on a cluster. */
  readonly #client: RedisClientLike | undefined
  readonly #delays: { maxReconnectDelay: number; closeTimeout: number }
  #subscriber: Promise<Connection> | undefined
  #listener: (event: L2StoreEvent) => void = () => {}
  /** Whether addToSet prunes tag sets; off once Redis refuses its commands (an ACL), until the next connection. */
  #tagPruning = true
  /** The version check of the current connection (undefined until it is ready). */
  #server: Promise<L2UnsupportedError | undefined> | undefined
  #closed = false

  /**
   * @param setup how to reach Redis; made from `options` unless given (`redisClusterStore()` gives its own, and
   *   `options` is then unused).
   */
  constructor(options: RedisStoreOptions, setup: RedisSetup = singleNodeSetup(options)) {
    this.address = setup.address
    this.coalesceGets = setup.coalesceGets
    this.#target = setup.target
    this.#delays = setup.delays
    this.#client = setup.client
    this.#main = setup.open(
      (status) => {
        // Each connection may reach another server (a failover): check its version again once it is ready.
        this.#server = undefined
        if (status === 'ready') {
          this.#tagPruning = true
          void this.#checkServer()
        }
        this.emit({ type: 'status', status })
      },
      (error, lost) => this.emit({ type: 'error', error, lost }),
    )
  }

  get status(): L2Status {
    return this.#closed ? 'closed' : this.#main.status
  }

  onEvent(listener: (event: L2StoreEvent) => void): void {
    this.#listener = listener
  }

  /** Resolves once connected to a server the store supports; rejects with L2UnsupportedError for an older one. */
  async connect(): Promise<void> {
    await this.#main.connect()
    const problem = await this.#checkServer()
    if (problem !== undefined) throw problem
  }

  /** A connection failure in an operator's words: the address (no credentials), the reason, what to check. */
  describeFailure(error: unknown): L2Failure {
    return describeRedisFailure(error, this.#target, isErrorReply(error))
  }

  /** The kind of an error reply (its first word: `OOM`, `WRONGTYPE`…), undefined for a failure to reach Redis. */
  errorReplyKind(error: unknown): string | undefined {
    if (!isErrorReply(error)) return undefined
    return /^([A-Z][A-Z0-9_-]{0,31})(?:\s|$)/.exec(error.message)?.[1] ?? 'ERR'
  }

  get(key: string, call?: L2Call): Promise<Uint8Array | null> {
    return this.#main.send(['GET', key], bufferReplies, call) as Promise<Buffer | null>
  }

  getMany(keys: readonly string[], call?: L2Call): Promise<(Uint8Array | null)[]> {
    if (keys.length === 0) return Promise.resolve([])
    return this.#main.send(['MGET', ...keys], bufferReplies, call) as Promise<(Buffer | null)[]>
  }

  async set(key: string, value: Uint8Array, ttlMs: number, call?: L2Call): Promise<void> {
    await this.#main.send(
      ['SET', key, toBuffer(value), 'PX', String(Math.max(1, Math.ceil(ttlMs)))],
      plainReplies,
      call,
    )
  }

  async setMany(writes: readonly L2Write[], call?: L2Call): Promise<void> {
    // node-redis writes every command issued in one tick as one batch: this is a pipeline, one round trip.
    await Promise.all(writes.map((w) => this.set(w.key, w.value, w.ttlMs, call)))
  }

  async delete(keys: readonly string[], call?: L2Call): Promise<number> {
    if (keys.length === 0) return 0
    return (await this.#main.send(['UNLINK', ...keys], plainReplies, call)) as number
  }

  async scan(
    pattern: string,
    cursor: string,
    count: number,
    call?: L2Call,
  ): Promise<{ cursor: string; keys: string[] }> {
    const reply = (await this.#main.send(
      ['SCAN', cursor, 'MATCH', pattern, 'COUNT', String(count)],
      plainReplies,
      call,
    )) as [string | Buffer, (string | Buffer)[]]
    return { cursor: String(reply[0]), keys: reply[1].map(String) }
  }

  async getVersion(versionKey: string, call?: L2Call): Promise<number> {
    const reply = await this.#main.send(['GET', versionKey], plainReplies, call)
    return reply === null ? 0 : Number(reply)
  }

  async readGeneration(generationKey: string, atLeast: number, call?: L2Call): Promise<GenerationRead> {
    let reply: [number, string | Buffer, string | Buffer]
    try {
      reply = (await this.#main.send(
        ['EVAL', READ_GENERATION_SCRIPT, '1', generationKey, String(atLeast)],
        plainReplies,
        call,
      )) as [number, string | Buffer, string | Buffer]
    } catch (error) {
      // Redis refused the script (its writes: maxmemory reached, an ACL without SET or EVAL, a read-only replica):
      // the generation alone, without the check, rather than no generation (reads would skip L2 until one).
      if (!isErrorReply(error)) throw error
      return { generation: await this.getVersion(generationKey, call) }
    }
    const generation = Number(reply[0])
    const from = String(reply[1])
    return from === '' ? { generation } : { generation, restored: { from, to: String(reply[2]) } }
  }

  async increment(key: string, call?: L2Call): Promise<number> {
    return Number(await this.#main.send(['INCR', key], plainReplies, call))
  }

  async bumpVersion(versionKey: string, ttlMs: number, call?: L2Call): Promise<number> {
    const ttl = String(Math.max(1, Math.ceil(ttlMs)))
    const [version] = await Promise.all([
      this.#main.send(['INCR', versionKey], plainReplies, call),
      this.#main.send(['PEXPIRE', versionKey, ttl, 'GT'], plainReplies, call),
      this.#main.send(['PEXPIRE', versionKey, ttl, 'NX'], plainReplies, call),
    ])
    return Number(version)
  }

  async addToSet(key: string, member: string, ttlMs: number, call?: L2Call): Promise<void> {
    const ttl = String(Math.max(1, Math.ceil(ttlMs)))
    const sample = this.#tagPruning ? String(TAG_PRUNE_SAMPLE) : '0'
    const reply = await this.#main.send(
      ['EVAL', ADD_TO_TAG_SCRIPT, '1', key, member, ttl, sample],
      plainReplies,
      call,
    )
    // Text instead of a count: Redis refused a command of the pruning (an ACL without SRANDMEMBER or SREM).
    if (typeof reply !== 'number') this.#pruningRefused(reply)
  }

  /** Stops pruning tag sets after Redis refused one of its commands, and says so once. */
  #pruningRefused(reply: unknown): void {
    if (this.#tagPruning) {
      this.#tagPruning = false
      this.emit({
        type: 'warning',
        message:
          `tag sets are not pruned of expired entries, so long-lived tags grow: Redis refused (${String(reply)}). ` +
          'Allow the Redis user +srandmember and +srem (docs/operations.md).',
      })
    }
  }

  async renameIfExists(from: string, to: string, call?: L2Call): Promise<boolean> {
    try {
      await this.#main.send(['RENAME', from, to], plainReplies, call)
      return true
    } catch (error) {
      if (error instanceof Error && /no such key/i.test(error.message)) return false
      throw error
    }
  }

  async scanSet(
    key: string,
    cursor: string,
    count: number,
    call?: L2Call,
  ): Promise<{ cursor: string; members: string[] }> {
    const reply = (await this.#main.send(
      ['SSCAN', key, cursor, 'COUNT', String(count)],
      plainReplies,
      call,
    )) as [string | Buffer, (string | Buffer)[]]
    return { cursor: String(reply[0]), members: reply[1].map(String) }
  }

  async tryLock(key: string, token: string, ttlMs: number, call?: L2Call): Promise<boolean> {
    const reply = await this.#main.send(
      ['SET', key, token, 'NX', 'PX', String(Math.max(1, Math.ceil(ttlMs)))],
      plainReplies,
      call,
    )
    return reply !== null
  }

  async acquireLock(key: string, token: string, ttlMs: number, call?: L2Call): Promise<LockAttempt> {
    const ttl = String(Math.max(1, Math.ceil(ttlMs)))
    const [won, detail] = (await this.#main.send(
      ['EVAL', ACQUIRE_LOCK_SCRIPT, '1', key, token, ttl, String(token.length)],
      plainReplies,
      call,
    )) as [number, number]
    return won === 1 ? { won: true, broke: detail === 1 } : { won: false, remainingMs: detail }
  }

  async unlock(key: string, token: string, call?: L2Call): Promise<boolean> {
    return (await this.#main.send(['EVAL', UNLOCK_SCRIPT, '1', key, token], plainReplies, call)) === 1
  }

  async markPending(key: string, id: string, ttlMs: number, call?: L2Call): Promise<void> {
    const ttl = String(Math.max(1, Math.ceil(ttlMs)))
    await this.#main.send(['EVAL', MARK_PENDING_SCRIPT, '1', key, id, ttl], plainReplies, call)
  }

  async extendLock(key: string, token: string, ttlMs: number, call?: L2Call): Promise<boolean> {
    const ttl = String(Math.max(1, Math.ceil(ttlMs)))
    return (await this.#main.send(['EVAL', EXTEND_SCRIPT, '1', key, token, ttl], plainReplies, call)) === 1
  }

  // Inspection. INFO, CONFIG GET and MEMORY USAGE answer a server's refusal (an error reply) instead of rejecting.

  info(section: string, call?: L2Call): Promise<L2Answer<Readonly<Record<string, string>>>> {
    return refusable(async () => parseInfo(await this.#main.send(['INFO', section], plainReplies, call)))
  }

  configGet(pattern: string, call?: L2Call): Promise<L2Answer<Readonly<Record<string, string>>>> {
    return refusable(async () =>
      parsePairs(await this.#main.send(['CONFIG', 'GET', pattern], plainReplies, call)),
    )
  }

  memoryUsage(keys: readonly string[], call?: L2Call): Promise<L2Answer<(number | null)[]>> {
    // Sent in one tick, so node-redis writes them as one batch: one round trip.
    return refusable(() =>
      Promise.all(
        keys.map((key) =>
          this.#main
            .send(['MEMORY', 'USAGE', key], plainReplies, call)
            .then((reply) => (reply === null ? null : Number(reply))),
        ),
      ),
    )
  }

  strlen(keys: readonly string[], call?: L2Call): Promise<(number | null)[]> {
    return Promise.all(
      keys.map((key) =>
        this.#main.send(['STRLEN', key], plainReplies, call).then(Number, (error: unknown) => {
          // WRONGTYPE: a set or a stream has no string length.
          if (isErrorReply(error)) return null
          throw error
        }),
      ),
    )
  }

  async serverTime(call?: L2Call): Promise<number> {
    const reply = (await this.#main.send(['TIME'], plainReplies, call)) as [string, string]
    return Number(reply[0]) * 1000 + Number(reply[1]) / 1000
  }

  ttlMany(keys: readonly string[], call?: L2Call): Promise<number[]> {
    return Promise.all(keys.map((key) => this.#main.send(['PTTL', key], plainReplies, call).then(Number)))
  }

  async queueAppend(
    queue: string,
    fields: Readonly<Record<string, string | Uint8Array>>,
    maxLength?: number,
    call?: L2Call,
  ): Promise<string> {
    const args: (string | Buffer)[] =
      maxLength === undefined ? ['XADD', queue, '*'] : ['XADD', queue, 'MAXLEN', '~', String(maxLength), '*']
    for (const [name, value] of Object.entries(fields)) {
      args.push(name, typeof value === 'string' ? value : toBuffer(value))
    }
    return String(await this.#main.send(args, plainReplies, call))
  }

  async queueCreateGroup(queue: string, group: string, call?: L2Call): Promise<void> {
    try {
      await this.#main.send(['XGROUP', 'CREATE', queue, group, '0', 'MKSTREAM'], plainReplies, call)
    } catch (error) {
      if (!(error instanceof Error && error.message.startsWith('BUSYGROUP'))) throw error
    }
  }

  async queueRead(
    queue: string,
    group: string,
    consumer: string,
    count: number,
    call?: L2Call,
  ): Promise<QueueEntry[]> {
    const reply = await this.#main.send(
      ['XREADGROUP', 'GROUP', group, consumer, 'COUNT', String(count), 'STREAMS', queue, '>'],
      bufferReplies,
      call,
    )
    if (reply === null || reply === undefined) return []
    // RESP3 replies with a map of stream name to entries, RESP2 with a list of [name, entries] pairs.
    const streams = Array.isArray(reply)
      ? (reply as [unknown, unknown][]).map((pair) => pair[1])
      : Object.values(reply)
    return streams.length === 0 ? [] : parseEntries(streams[0])
  }

  async queuePending(
    queue: string,
    group: string,
    minIdleMs: number,
    count: number,
    call?: L2Call,
  ): Promise<PendingQueueEntry[]> {
    const reply = (await this.#main.send(
      ['XPENDING', queue, group, 'IDLE', String(Math.max(0, Math.floor(minIdleMs))), '-', '+', String(count)],
      plainReplies,
      call,
    )) as [unknown, unknown, unknown, unknown][]
    return reply.map(([id, consumer, idleMs, deliveries]) => ({
      id: String(id),
      consumer: String(consumer),
      idleMs: Number(idleMs),
      deliveries: Number(deliveries),
    }))
  }

  async queueClaim(
    queue: string,
    group: string,
    consumer: string,
    minIdleMs: number,
    ids: readonly string[],
    call?: L2Call,
  ): Promise<QueueEntry[]> {
    if (ids.length === 0) return []
    const reply = await this.#main.send(
      ['XCLAIM', queue, group, consumer, String(Math.max(0, Math.floor(minIdleMs))), ...ids],
      bufferReplies,
      call,
    )
    return parseEntries(reply)
  }

  async queueAck(queue: string, group: string, ids: readonly string[], call?: L2Call): Promise<void> {
    if (ids.length === 0) return
    // One round trip (pipelined). Acknowledged first: an entry acknowledged but not deleted is never redelivered.
    await Promise.all([
      this.#main.send(['XACK', queue, group, ...ids], plainReplies, call),
      this.#main.send(['XDEL', queue, ...ids], plainReplies, call),
    ])
  }

  async queueGet(queue: string, id: string, call?: L2Call): Promise<QueueEntry | undefined> {
    return parseEntries(await this.#main.send(['XRANGE', queue, id, id], bufferReplies, call))[0]
  }

  async queueSize(queue: string, group: string, call?: L2Call): Promise<{ length: number; pending: number }> {
    const [length, summary] = await Promise.all([
      this.#main.send(['XLEN', queue], plainReplies, call),
      this.#main.send(['XPENDING', queue, group], plainReplies, call).catch((error: unknown) => {
        // No group yet: nothing delivered.
        if (error instanceof Error && error.message.startsWith('NOGROUP')) return [0]
        throw error
      }),
    ])
    return { length: Number(length), pending: Number((summary as unknown[])[0]) }
  }

  async queueDropped(queue: string, group: string, call?: L2Call): Promise<number | undefined> {
    let replies: [unknown, unknown]
    try {
      replies = await Promise.all([
        this.#main.send(['XINFO', 'STREAM', queue], plainReplies, call),
        this.#main.send(['XINFO', 'GROUPS', queue], plainReplies, call),
      ])
    } catch (error) {
      // No stream: nothing was appended, so nothing was dropped.
      if (isErrorReply(error) && /no such key/i.test(error.message)) return 0
      throw error
    }
    const stream = rawPairs(replies[0])
    const mine = groupOf(replies[1], group)
    const added = Number(stream['entries-added'])
    if (mine === undefined || !Number.isFinite(added)) return undefined
    const lastDelivered = String(mine['last-delivered-id'])
    // Trimming takes the oldest entries first: if one at or before the last handed out is still here (handed and not
    // yet acknowledged), nothing after it was trimmed. Otherwise every entry still here is one never handed out.
    const first = stream['first-entry']
    if (Array.isArray(first) && compareStreamIds(String(first[0]), lastDelivered) <= 0) return 0
    const read = entriesRead(mine)
    if (read === undefined) return undefined
    return Math.max(0, added - read - Number(stream.length))
  }

  async queueSettleDropped(queue: string, group: string, count: number, call?: L2Call): Promise<void> {
    const mine = groupOf(await this.#main.send(['XINFO', 'GROUPS', queue], plainReplies, call), group)
    const read = mine === undefined ? undefined : entriesRead(mine)
    if (mine === undefined || read === undefined) return
    // The group's count of entries read (Redis 7.0+) counts the dropped ones as read: its lag (XINFO GROUPS) is
    // right again, and the next queueDropped no longer reports them. Its last delivered id stays.
    await this.#main.send(
      [
        'XGROUP',
        'SETID',
        queue,
        group,
        String(mine['last-delivered-id']),
        'ENTRIESREAD',
        String(read + count),
      ],
      plainReplies,
      call,
    )
  }

  async queueDeleteConsumer(queue: string, group: string, consumer: string, call?: L2Call): Promise<void> {
    await this.#main.send(['XGROUP', 'DELCONSUMER', queue, group, consumer], plainReplies, call)
  }

  async readFence(
    versionKeys: readonly string[],
    seqKey: string,
    epochKey: string,
    call?: L2Call,
  ): Promise<L2FenceRead> {
    const mget = ['MGET', ...versionKeys, seqKey, epochKey]
    return fenceRead(
      async () => (await this.#main.send(mget, plainReplies, call)) as (string | Buffer | null)[],
      (args) => this.#main.send(args, plainReplies, call),
      epochKey,
    )
  }

  async storeFenced(write: L2Write, fence: L2Fence, call?: L2Call): Promise<boolean> {
    const ttl = String(Math.max(1, Math.ceil(write.ttlMs)))
    const args = [
      'EVAL',
      STORE_FENCED_SCRIPT,
      String(4 + fence.marks.length + fence.sets.length),
      write.key,
      fence.versionKey,
      fence.epochKey,
      fence.pendingKey ?? write.key,
      ...fence.marks,
      ...fence.sets,
      toBuffer(write.value),
      String(fence.version),
      ttl,
      String(fence.seq),
      String(fence.marks.length),
      this.#tagPruning ? String(TAG_PRUNE_SAMPLE) : '0',
      fence.epoch,
      fence.pendingKey === undefined ? '0' : '1',
    ]
    const reply = await this.#main.send(args, plainReplies, call)
    if (typeof reply === 'number') return reply === 1
    // Stored, but Redis refused a command of the pruning (an ACL without SRANDMEMBER or SREM).
    this.#pruningRefused(reply)
    return true
  }

  async markInvalidated(
    seqKey: string,
    marks: readonly string[],
    ttlMs: number,
    call?: L2Call,
  ): Promise<number> {
    const ttl = String(Math.max(1, Math.ceil(ttlMs)))
    const args = ['EVAL', MARK_INVALIDATED_SCRIPT, String(1 + marks.length), seqKey, ...marks, ttl]
    return Number(await this.#main.send(args, plainReplies, call))
  }

  async publish(channel: string, message: string, call?: L2Call): Promise<void> {
    await this.#main.send(['PUBLISH', channel, message], plainReplies, call)
  }

  async subscribe(channel: string, listener: (message: string) => void): Promise<void> {
    if (this.#closed) throw new Error('redis store is closed')
    this.#subscriber ??= this.#openSubscriber()
    const subscriber = await this.#subscriber
    await subscriber.client.subscribe(channel, listener)
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    const subscriber = this.#subscriber
    this.#subscriber = undefined
    await Promise.all([
      this.#main.close(),
      subscriber?.then(
        (s) => s.close(),
        () => undefined,
      ),
    ])
  }

  /** Sends one command through the store's link, with the same rules as every other command of the store. */
  protected send(args: ReadonlyArray<string | Buffer>, options: object, call?: L2Call): Promise<unknown> {
    return this.#main.send(args, options, call)
  }

  /** The connect timeout (which bounds each version question) and the longest wait between reconnections. */
  protected get delays(): { readonly maxReconnectDelay: number; readonly closeTimeout: number } {
    return this.#delays
  }

  /** Tells the cache; a listener that throws (the user's logger) must not break the connection's event handling. */
  protected emit(event: L2StoreEvent): void {
    try {
      this.#listener(event)
    } catch {
      // Ignored: the store carries on.
    }
  }

  /** Checks the connected server's version once per connection, and reports one too old (once). */
  #checkServer(): Promise<L2UnsupportedError | undefined> {
    this.#server ??= this.readServerVersion().then((problem) => {
      if (problem !== undefined) this.emit({ type: 'unsupported', error: problem })
      return problem
    })
    return this.#server
  }

  /** The connected server's version problem, if any (`askServerVersion`). */
  protected readServerVersion(): Promise<L2UnsupportedError | undefined> {
    return askServerVersion((args) => this.#main.send(args, plainReplies), this.#delays.closeTimeout)
  }

  /** A duplicate of the main client for pub/sub (a subscribed connection can run nothing else); always ours. */
  async #openSubscriber(): Promise<Connection> {
    const connection = new Connection(
      this.#client!.duplicate(),
      true,
      this.#delays,
      (status) => this.emit({ type: 'subscriber-status', status }),
      (error, lost) => this.emit({ type: 'error', error, lost }),
    )
    try {
      await connection.connect()
    } catch (error) {
      // Its reconnect loop keeps trying; subscriptions made meanwhile wait for that connection.
      this.#subscriber = undefined
      await connection.close()
      // A handshake's error reply (WRONGPASS) is a failure to connect, not Redis refusing the subscription.
      if (isErrorReply(error)) throw new Error(`not connected to Redis: ${error.message}`, { cause: error })
      throw error
    }
    return connection
  }
}

/** Group `name`'s fields in an XINFO GROUPS reply. */
function groupOf(reply: unknown, name: string): Record<string, unknown> | undefined {
  if (!Array.isArray(reply)) return undefined
  return reply.map(rawPairs).find((fields) => String(fields.name) === name)
}

/**
 * Entries a group has read (Redis 7.0+ `entries-read`). Null when Redis lost count; a group never handed anything
 * (last delivered id `0-0`) has read none.
 */
function entriesRead(group: Record<string, unknown>): number | undefined {
  const read = group['entries-read']
  if (read !== null && read !== undefined) return Number(read)
  return String(group['last-delivered-id']) === '0-0' ? 0 : undefined
}

/** Orders two stream ids (`<ms>-<seq>`). */
function compareStreamIds(a: string, b: string): number {
  const [aMs = 0n, aSeq = 0n] = a.split('-').map((part) => BigInt(part))
  const [bMs = 0n, bSeq = 0n] = b.split('-').map((part) => BigInt(part))
  if (aMs !== bMs) return aMs < bMs ? -1 : 1
  return aSeq === bSeq ? 0 : aSeq < bSeq ? -1 : 1
}

/** Stream entries as Redis sends them, `[[id, [field, value, ...]], ...]`; deleted entries come as `[id, null]`. */
function parseEntries(reply: unknown): QueueEntry[] {
  if (!Array.isArray(reply)) return []
  const entries: QueueEntry[] = []
  for (const item of reply as [unknown, unknown][]) {
    const [id, list] = item
    if (!Array.isArray(list)) continue
    const fields: Record<string, Uint8Array> = {}
    for (let i = 0; i + 1 < list.length; i += 2) {
      const value: unknown = list[i + 1]
      fields[String(list[i])] = Buffer.isBuffer(value) ? value : Buffer.from(String(value))
    }
    entries.push({ id: String(id), fields })
  }
  return entries
}

export function toBuffer(value: Uint8Array): Buffer {
  return Buffer.isBuffer(value) ? value : Buffer.from(value.buffer, value.byteOffset, value.byteLength)
}
