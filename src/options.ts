// Options of the cache and of a namespace: documented here, resolved against defaults and frozen once.
import type { Clock } from './core/clock.js'
import { systemClock } from './core/clock.js'
import { parseDuration, type Duration } from './core/duration.js'
import { formatDuration } from './core/format-duration.js'
import { NAME_PATTERN, type KeyParamNames, type ParamTypes, type ScalarTypeName } from './core/keys.js'
import { jsonSerializer, type Serializer } from './codecs/serializer.js'
import {
  COMPRESSION_OPTION_KEYS,
  resolveCodecOptions,
  resolveCompression,
  type CompressionOptions,
  type ResolvedCodecOptions,
} from './codecs/value-codec.js'
import { KEY_RING_OPTION_KEYS, ResolvedKeyRing, type KeyRing } from './codecs/encryption.js'
import { DEFAULT_MAX_VALUE_BYTES } from './codecs/envelope.js'
import type { RedactOption } from './codecs/redaction.js'
import type { AuditSink } from './audit/audit-sink.js'
import { checkClassification, type Classification } from './policies/classification.js'
import { InvalidOptionError } from './errors.js'
import { rejectUnknown, type OptionKeys, type OptionPlace } from './core/known-options.js'
import { consoleLogger } from './observability/console-logger.js'
import type { L2Store } from './tiers/l2-store.js'
import { validateBounds } from './tiers/memory-store.js'
import type { QueuedWrite, ResolvedWriteBehind, WriteContext } from './write/write-behind.js'
import type { ResolvedSlo } from './observability/slo.js'
import type { ReadLabels } from './observability/labels.js'
import { resolveRegions, type RegionsOptions, type ResolvedRegions } from './regions/region-options.js'
import {
  ACCESS_LOG_OPTION_KEYS,
  resolveAccessLog,
  type AccessLogOptions,
  type ResolvedAccessLog,
} from './observability/access-log.js'

export type { Duration }

/** What a loader receives besides the key parameters. */
export interface LoadContext {
  /** The namespace name. */
  readonly namespace: string
  /** The full key (or, for `loadMany`, the first key of the batch). */
  readonly key: string
  /** Aborted when the cache closes; pass it to fetch or your database driver. */
  readonly signal: AbortSignal
  /**
   * Keeps the value this call returns (every value, for `loadMany`) fresh for `ttl` instead of the namespace's
   * `ttl`: a shorter life only (a longer one is capped at the namespace's `ttl`, so its caps and fences hold). The
   * namespace's `staleFor` still follows. `0` returns the value without caching it.
   * @example load: async ({ id }, ctx) => { const page = await fetchPage(id); ctx.setTtl(page.maxAgeSeconds * 1000); return page }
   * @throws InvalidArgumentError for a value that is not a duration (`'5m'`, `'1h30m'`, a number of ms).
   */
  setTtl(ttl: Duration): void
  /**
   * The value this call returns (every value, for `loadMany`) is never served after `time` (a Date, or epoch ms on
   * the cache's clock), not even stale: for tokens and signed URLs that expire at a known time. Combines with the
   * namespace's `ttl` (whichever ends first). A time already past returns the value without caching it.
   * @example load: async () => { const token = await issueToken(); ctx.expireAt(token.expiresAt - 30_000); return token }
   * @throws InvalidArgumentError for a value that is neither a valid Date nor a finite number.
   */
  expireAt(time: Date | number): void
}

/**
 * A logger with pino's interface (`logger.warn({ ...fields }, 'message')`); pino, bunyan-style and console-based
 * loggers fit. The cache logs state changes (L2 connection and circuit, bus outages, SLO breaches, dead-lettered
 * writes) and never logs keys or values.
 */
export interface Logger {
  debug?(fields: object, message: string): void
  info(fields: object, message: string): void
  warn(fields: object, message: string): void
  error(fields: object, message: string): void
}

export interface CacheOptions {
  /**
   * The service's name: the first segment of every key, so services sharing a Redis never collide.
   * @example 'catalog'
   */
  service: string
  /**
   * The in-process tier, holding decoded values. `false` turns it off (every read goes to L2). A partial object
   * keeps the defaults of what it leaves out: `{ maxBytes: 64 * 1024 ** 2 }` is 10,000 entries and 64 MiB.
   * @default { maxEntries: 10_000 }
   */
  l1?: false | L1Options
  /**
   * The shared tier. Without one the cache is L1-only (one process, embedded defaults).
   * @example redisStore({ url: 'redis://127.0.0.1:6379' })
   */
  l2?: L2Store
  /**
   * A tier between L1 and `l2`, shared by the processes of one host: after an L1 miss a read asks it before L2,
   * and what L2 answers (or a load stores) is copied there, so another process of the host finds it at the cost of
   * a local read. Copies live no longer than L1 copies may (`l1.ttl`, a bounded namespace's staleness bound; none
   * in strong namespaces), and every invalidation drops them. Needs `l2`; without Redis, pass the disk store as
   * `l2` itself.
   * @example diskStore({ path: '/var/cache/catalog', maxBytes: 256 * 1024 * 1024 }) // from 'stratacache/disk'
   */
  host?: L2Store
  /**
   * A memory budget for L2, checked by `cache.inspect()`: the report shows Redis `used_memory` against `maxBytes`
   * (bytes), adds a warning, and publishes `stratacache:l2:budget` when usage is over it. Nothing is enforced on
   * writes; Redis's own `maxmemory` is the hard limit. Needs `l2`.
   * @default none
   * @example { maxBytes: 512 * 1024 ** 2 } // 512 MiB
   */
  l2Budget?: { maxBytes: number }
  timeouts?: {
    /**
     * Longest wait for one L2 call (GET, MGET, SET, UNLINK), after which reads fall through to the loader. A block
     * of the event loop longer than half of it (a long synchronous task) does not count: it moves the deadline, by
     * nine timeouts at most. @default '100ms'
     */
    l2?: Duration
    /** Longest wait for `cache.connect()`. @default '2s' */
    connect?: Duration
    /**
     * Longest wait for the `audit` sink to store one record of a `cache.purge()`. Past it the purge rejects with
     * ERR_STRATA_AUDIT_WRITE: before the purge ran (nothing purged) or after it (`purged: true`). @default '10s'
     */
    audit?: Duration
  }
  circuitBreaker?: {
    /**
     * Consecutive L2 failures or timeouts that open the circuit; while open, L2 is skipped. Each L2 command counts
     * once: the gets of one tick sent as one MGET (the Redis stores' `coalesceGets`) are one. @default 5
     */
    failureThreshold?: number
    /** How long the circuit stays open before one probe call is let through. @default '2s' */
    breakFor?: Duration
  }
  /** How values become bytes in L2. @default JSON */
  serializer?: Serializer
  /** Time source for entry timestamps and TTLs. Inject a fake in tests. @default Date.now */
  clock?: Clock
  /**
   * Measure this process's clock against Redis's (`TIME`) and write entry times on Redis's clock, so that hosts whose
   * clocks disagree still expire entries together (docs/consistency.md, "Clock skew"). On by default with the system
   * clock. With an injected `clock` the default is `'auto'`: the clock is measured once, at the first connection,
   * and corrected only if it runs with real time (a skewed host, such as `() => Date.now() + skew`); a test's fake
   * clock that stands still or jumps is then the caches' only time, not corrected by the real time that passes.
   * `true` always measures an injected clock (once), `false` never measures any clock.
   * @default true without `clock`, 'auto' with one
   */
  clockSync?: boolean | 'auto'
  /** Keys longer than this keep their `service:namespace:vN:` prefix and hash the rest (SHA-256). @default 256 */
  maxKeyLength?: number
  /** Random numbers in [0, 1) for TTL jitter. Inject a fixed one in tests. @default Math.random */
  random?: () => number
  /**
   * Where the cache logs what an operator should know: state changes (Redis unreachable and back, circuit, bus
   * outages, SLO breaches, dead-lettered writes), once each, never per call, and never a key or a value. Without
   * this option, warnings and errors go to stderr (`consoleLogger()`: one line each, repeats held back); info
   * lines stay off. Pass your logger (pino…) to route them, `consoleLogger({ level: 'info' })` for more, or
   * `false` to silence the cache.
   * @default consoleLogger(): warnings and errors on stderr
   * @example createCache({ service: 'catalog', l2, logger: pino() }) // or logger: false
   */
  logger?: Logger | false
  /**
   * Compresses L2 values whose serialized size is at least `threshold` bytes (smaller ones are stored as they are),
   * for every namespace that does not set its own `compression`. A flag in the envelope says which values are
   * compressed, so changing this never makes existing values unreadable.
   * @default off
   * @example { threshold: 1024, algorithm: 'brotli' }
   */
  compression?: false | CompressionOptions
  /**
   * AES-256-GCM encryption of L2 values with a key ring. Every namespace encrypts what it writes to L2 unless it
   * declares `encrypt: false`, and then reads only values that open with a key of the ring for their exact cache
   * key. Rotate by adding a key and making it `active`; keep the old one until its values have expired.
   * L1 holds decoded values in process memory and is not encrypted.
   * @default off
   * @example { active: 'k2', keys: { k2: Buffer.from(process.env.CACHE_KEY_K2!, 'base64'), k1: oldKey } }
   */
  encryption?: KeyRing
  /**
   * Largest serialized value (before compression) written to L2, in bytes: a larger one is served and kept in L1
   * but not written to L2 (counted in `stats().oversized`; `set` rejects with ERR_STRATA_VALUE_TOO_LARGE). Reads
   * refuse larger values too, and decompression stops at it, so hostile bytes in Redis cannot make a process
   * allocate more. A namespace may set its own.
   * @default 4 MiB (4_194_304)
   */
  maxValueBytes?: number
  /**
   * Longest an entry of a `'personal'` or `'secret'` namespace may live in the cache: its `ttl` plus `jitter` plus
   * `staleFor` (and its `negativeTtl`) must fit. A namespace over the cap is refused when declared.
   * @default { personal: '15m', secret: '1m' }
   */
  ttlCaps?: { personal?: Duration; secret?: Duration }
  /**
   * Where `cache.purge()` records who purged what, when, why and how many keys. Without one, `purge()` is refused.
   * @example jsonLinesAuditSink('/var/log/catalog/cache-audit.jsonl')
   */
  audit?: AuditSink
  /**
   * This process's region, with `regions`: every region has its own L2, and writes and invalidations are relayed
   * between them (docs/consistency.md, "Regions").
   * @example 'eu-west'
   */
  region?: string
  /**
   * The other regions and the relay's timing, with `region`. See `RegionsOptions`.
   * @example { peers: [{ region: 'us-east', l2: redisStore({ url: usEastUrl }) }] }
   */
  regions?: RegionsOptions
}

export type { RegionsOptions, RegionPeer } from './regions/region-options.js'

/** Compression of L2 values; see `CacheOptions.compression`. */
export type { CompressionOptions }

/**
 * The L1 budget, shared by all namespaces. Past it, an adaptive W-TinyLFU policy decides what stays: new entries
 * always enter (a value just loaded or written is served from L1 at once), and keep their place in the main region
 * only if they are asked for more often than the entry they would replace (see docs/architecture.md).
 */
export interface L1Options {
  /** Most entries in L1 across all namespaces; L1 is never unbounded. @default 10_000 */
  maxEntries?: number
  /** Optional byte budget for L1, over the entries' serialized sizes. */
  maxBytes?: number
}

export interface ResolvedCacheOptions {
  readonly service: string
  readonly l1: false | { readonly maxEntries: number; readonly maxBytes: number | undefined }
  readonly l2: L2Store | undefined
  readonly host: L2Store | undefined
  readonly l2Budget: { readonly maxBytes: number } | undefined
  readonly l2TimeoutMs: number
  readonly connectTimeoutMs: number
  /** `timeouts.audit`: the longest wait for the audit sink to store one record of a purge. */
  readonly auditTimeoutMs: number
  readonly failureThreshold: number
  readonly breakMs: number
  readonly serializer: Serializer
  readonly clock: Clock
  readonly clockSync: boolean | 'auto'
  readonly maxKeyLength: number
  readonly random: () => number
  readonly logger: Logger
  readonly compression: ResolvedCodecOptions['compression']
  readonly keyRing: ResolvedKeyRing | undefined
  readonly maxValueBytes: number
  readonly ttlCaps: { readonly personalMs: number; readonly secretMs: number }
  readonly audit: AuditSink | undefined
  readonly regions: ResolvedRegions | undefined
}

/** The part of an option that is an object: `l1` without `false`, `timeouts` without `undefined`. */
type Group<T> = Exclude<T, false | undefined>

/**
 * Every key `createCache()` takes, and each of its groups'. The compiler checks each list against its type (see
 * `OptionKeys`); the resolver refuses any other key.
 */
export const CACHE_OPTION_KEYS = {
  service: true,
  l1: true,
  l2: true,
  host: true,
  l2Budget: true,
  timeouts: true,
  circuitBreaker: true,
  serializer: true,
  clock: true,
  clockSync: true,
  maxKeyLength: true,
  random: true,
  logger: true,
  compression: true,
  encryption: true,
  maxValueBytes: true,
  ttlCaps: true,
  audit: true,
  region: true,
  regions: true,
} as const satisfies OptionKeys<CacheOptions>

export const CACHE_GROUP_KEYS = {
  l1: { maxEntries: true, maxBytes: true } satisfies OptionKeys<Group<CacheOptions['l1']>>,
  l2Budget: { maxBytes: true } satisfies OptionKeys<Group<CacheOptions['l2Budget']>>,
  timeouts: { l2: true, connect: true, audit: true } satisfies OptionKeys<Group<CacheOptions['timeouts']>>,
  circuitBreaker: { failureThreshold: true, breakFor: true } satisfies OptionKeys<
    Group<CacheOptions['circuitBreaker']>
  >,
  compression: COMPRESSION_OPTION_KEYS,
  encryption: KEY_RING_OPTION_KEYS,
  ttlCaps: { personal: true, secret: true } satisfies OptionKeys<Group<CacheOptions['ttlCaps']>>,
} as const

export function resolveCacheOptions(options: CacheOptions): ResolvedCacheOptions {
  if (options === null || typeof options !== 'object') {
    throw new InvalidOptionError('createCache options', options, "an object such as { service: 'catalog' }")
  }
  const place: OptionPlace = { where: 'createCache()', at: (path) => path }
  // Unknown keys first: a misspelt `service` is better reported as the typo than as a missing service.
  rejectUnknown(options, CACHE_OPTION_KEYS, place)
  if (typeof options.service !== 'string' || !NAME_PATTERN.test(options.service)) {
    throw new InvalidOptionError(
      'service',
      options.service,
      "1 to 64 characters of A-Z, a-z, 0-9, `_`, `.` or `-`, e.g. 'catalog'",
    )
  }
  const { l1 = {}, l2, timeouts = {}, circuitBreaker = {}, serializer = jsonSerializer } = options
  if (l1 !== false && (l1 === null || typeof l1 !== 'object')) {
    throw new InvalidOptionError('l1', l1, '`false` or an object such as { maxEntries: 10_000 }')
  }
  // A partial group keeps the defaults of what it leaves out (`l1: { maxBytes }` is 10,000 entries and those bytes).
  const l1MaxEntries = l1 === false ? 0 : (l1.maxEntries ?? 10_000)
  if (l1 !== false) {
    rejectUnknown(l1, CACHE_GROUP_KEYS.l1, place, 'l1')
    validateBounds(l1MaxEntries, l1.maxBytes, 'l1.')
  }
  rejectUnknown(timeouts, CACHE_GROUP_KEYS.timeouts, place, 'timeouts')
  rejectUnknown(circuitBreaker, CACHE_GROUP_KEYS.circuitBreaker, place, 'circuitBreaker')
  if (l2 !== undefined && (l2 === null || typeof l2 !== 'object' || typeof l2.get !== 'function')) {
    throw new InvalidOptionError(
      'l2',
      l2,
      "an L2 store such as redisStore({ url: 'redis://127.0.0.1:6379' })",
    )
  }
  const host = resolveHost(options.host, l2)
  const l2Budget = resolveL2Budget(options.l2Budget, l2, place)
  const failureThreshold = circuitBreaker.failureThreshold ?? 5
  if (!Number.isSafeInteger(failureThreshold) || failureThreshold < 1) {
    throw new InvalidOptionError(
      'circuitBreaker.failureThreshold',
      failureThreshold,
      'a positive whole number',
    )
  }
  if (
    serializer === null ||
    typeof serializer !== 'object' ||
    typeof serializer.serialize !== 'function' ||
    typeof serializer.deserialize !== 'function' ||
    !Number.isInteger(serializer.id) ||
    serializer.id < 1 ||
    serializer.id > 255
  ) {
    throw new InvalidOptionError(
      'serializer',
      serializer,
      'an object with id (1-255), serialize() and deserialize()',
    )
  }
  const clock = options.clock ?? systemClock
  if (typeof clock?.now !== 'function') {
    throw new InvalidOptionError('clock', clock, 'an object with a now() method returning epoch milliseconds')
  }
  const clockSync = options.clockSync ?? (clock === systemClock ? true : 'auto')
  if (typeof clockSync !== 'boolean' && clockSync !== 'auto') {
    throw new InvalidOptionError('clockSync', clockSync, "true, false or 'auto'")
  }
  const random = options.random ?? Math.random
  if (typeof random !== 'function')
    throw new InvalidOptionError('random', random, 'a function returning [0, 1)')
  const maxKeyLength = options.maxKeyLength ?? 256
  if (!Number.isSafeInteger(maxKeyLength) || maxKeyLength < 64) {
    throw new InvalidOptionError('maxKeyLength', maxKeyLength, 'a whole number of characters, at least 64')
  }
  const logger =
    options.logger === false ? silentLogger : options.logger === undefined ? consoleLogger() : options.logger
  for (const level of ['info', 'warn', 'error'] as const) {
    if (typeof logger?.[level] !== 'function') {
      throw new InvalidOptionError(
        'logger',
        logger,
        "a logger with pino's interface (info, warn, error), e.g. pino(), or false to silence the cache",
      )
    }
  }
  const l2TimeoutMs = parseDuration(timeouts.l2 ?? 100, 'timeouts.l2')
  if (l2TimeoutMs < 1) throw new InvalidOptionError('timeouts.l2', timeouts.l2, 'at least 1 ms')
  const ttlCaps = options.ttlCaps ?? {}
  if (ttlCaps === null || typeof ttlCaps !== 'object') {
    throw new InvalidOptionError('ttlCaps', ttlCaps, "an object such as { personal: '15m', secret: '1m' }")
  }
  rejectUnknown(ttlCaps, CACHE_GROUP_KEYS.ttlCaps, place, 'ttlCaps')
  if (isObject(options.compression)) {
    rejectUnknown(options.compression, CACHE_GROUP_KEYS.compression, place, 'compression')
  }
  if (isObject(options.encryption)) {
    rejectUnknown(options.encryption, CACHE_GROUP_KEYS.encryption, place, 'encryption')
  }
  const audit = options.audit
  if (
    audit !== undefined &&
    (audit === null || typeof audit !== 'object' || typeof audit.append !== 'function')
  ) {
    throw new InvalidOptionError('audit', audit, "an audit sink such as jsonLinesAuditSink('audit.jsonl')")
  }
  const regions = resolveRegions(options.region, options.regions, l2 !== undefined, place, timerDuration)
  return Object.freeze({
    regions,
    compression: resolveCompression(options.compression, 'compression'),
    keyRing:
      options.encryption === undefined ? undefined : new ResolvedKeyRing(options.encryption, 'encryption'),
    maxValueBytes: resolveMaxValueBytes(options.maxValueBytes, 'maxValueBytes', DEFAULT_MAX_VALUE_BYTES),
    ttlCaps: Object.freeze({
      personalMs: positiveDuration(ttlCaps.personal ?? 15 * 60_000, 'ttlCaps.personal'),
      secretMs: positiveDuration(ttlCaps.secret ?? 60_000, 'ttlCaps.secret'),
    }),
    audit,
    service: options.service,
    l1: l1 === false ? false : Object.freeze({ maxEntries: l1MaxEntries, maxBytes: l1.maxBytes }),
    l2,
    host,
    l2Budget,
    l2TimeoutMs,
    connectTimeoutMs: timerDuration(timeouts.connect ?? 2000, 'timeouts.connect'),
    auditTimeoutMs: timerDuration(timeouts.audit ?? 10_000, 'timeouts.audit'),
    failureThreshold,
    breakMs: positiveDuration(circuitBreaker.breakFor ?? 2000, 'circuitBreaker.breakFor'),
    serializer,
    clock,
    clockSync,
    maxKeyLength,
    random,
    logger,
  })
}

const silentLogger: Logger = { info: () => {}, warn: () => {}, error: () => {} }

/** An object (not null), whose keys are worth checking; other values get their own, more specific, message. */
function isObject(value: unknown): value is object {
  return value !== null && typeof value === 'object'
}

function resolveHost(host: unknown, l2: L2Store | undefined): L2Store | undefined {
  if (host === undefined) return undefined
  if (host === null || typeof host !== 'object' || typeof (host as L2Store).getMany !== 'function') {
    throw new InvalidOptionError(
      'host',
      host,
      "a store shared by the host's processes, such as diskStore({ path, maxBytes }) from 'stratacache/disk'",
    )
  }
  if (l2 === undefined) {
    throw new InvalidOptionError(
      'host',
      host,
      'an `l2` to sit in front of: the host tier holds copies of L2 entries. Without Redis, pass the disk store ' +
        'as `l2` itself',
    )
  }
  if (host === l2) {
    throw new InvalidOptionError('host', host, 'a store other than `l2` (it holds copies of what `l2` holds)')
  }
  return host as L2Store
}

function resolveL2Budget(
  budget: CacheOptions['l2Budget'],
  l2: L2Store | undefined,
  place: OptionPlace,
): ResolvedCacheOptions['l2Budget'] {
  if (budget === undefined) return undefined
  if (l2 === undefined) {
    throw new InvalidOptionError(
      'l2Budget',
      budget,
      'nothing without `l2` (the budget is for the Redis tier)',
    )
  }
  if (budget === null || typeof budget !== 'object') {
    throw new InvalidOptionError('l2Budget', budget, 'an object such as { maxBytes: 512 * 1024 ** 2 }')
  }
  rejectUnknown(budget, CACHE_GROUP_KEYS.l2Budget, place, 'l2Budget')
  if (!Number.isSafeInteger(budget.maxBytes) || budget.maxBytes < 1) {
    throw new InvalidOptionError('l2Budget.maxBytes', budget.maxBytes, 'a positive whole number of bytes')
  }
  return Object.freeze({ maxBytes: budget.maxBytes })
}

/**
 * A namespace: one key family with its key schema, freshness and loader.
 * `K` is the key template, `D` the dimensions, `P` the key parameters, `V` the cached value, `T` the declared
 * parameter types (`params`).
 */
export interface NamespaceOptions<
  K extends string,
  D extends readonly string[],
  P,
  V,
  T extends ParamTypes<K, D> = ParamTypes<K, D>,
> {
  /**
   * Key template: `:`-separated segments, each literal text or one `{placeholder}`. The library prefixes
   * `service:namespace:v{schemaVersion}:`.
   * @example 'tenant:{tenantId}:product:{productId}'
   */
  key: K
  /**
   * Parameters that change the value's shape without being part of the template (locale, currency, flag variant).
   * Required on every call like the placeholders; appended to the key sorted by name.
   * @default []
   */
  dimensions?: D
  /**
   * The type of key parameters, for those that are not any `Scalar` (`string | number | bigint | boolean`): the
   * loader, `tags`, `write` and every read then see them with that type (so `productId` can be passed where a
   * `number` is expected without a conversion), and a key built from a value of another type is refused with
   * ERR_STRATA_INVALID_KEY_PARAM (`wrong-type`) before any loader is called. Parameters left out stay `Scalar`.
   * @default {} (every parameter a `Scalar`)
   * @example { tenantId: 'string', productId: 'number' }
   */
  params?: T & { readonly [X in Exclude<keyof T, KeyParamNames<K, D>>]: never }
  /** Version of the cached value's shape; bump it when the value's structure changes. @default 1 */
  schemaVersion?: number
  /** How long a value stays fresh in L2 (and at most in L1). @example '5m' */
  ttl: Duration
  /**
   * Random extra time added to every TTL, uniform in [0, jitter], so entries written together expire apart.
   * @default 10% of `ttl`
   */
  jitter?: Duration
  /** TTL of a negative entry (the loader returned null or undefined). @default the smaller of `ttl` and '30s' */
  negativeTtl?: Duration
  /**
   * L1 for this namespace: `false` to skip it, or a shorter L1 TTL. The L1 copy never outlives the L2 entry.
   * @default the entry's own freshness (ttl plus its jitter)
   */
  l1?: false | { ttl?: Duration }
  /**
   * How long after its freshness a value is kept and may still be served: stale-while-revalidate, and the
   * fail-safe window when the loader fails or times out. Every stale serve is counted.
   * @default 0 (no stale data)
   * @example '1h'
   */
  staleFor?: Duration
  /**
   * With `staleFor`: serve a stale value at once and refresh it in the background, once per key across all
   * processes (`true`), or wait for the loader and fall back to the stale value only if it fails (`false`).
   * @default true
   */
  staleWhileRevalidate?: boolean
  /**
   * Fail-safe throttle: after the loader failed for a key and a stale value answered instead, the loader is not
   * called again for that key for this long (stale data keeps answering). @default '10s'
   */
  failSafeThrottle?: Duration
  /**
   * Refresh-ahead: an entry read after this fraction of its TTL (0 to 1, exclusive) is refreshed in the background
   * before it expires, so a key read steadily never goes cold. @default off
   * @example 0.8
   */
  refreshAhead?: number
  timeouts?: {
    /**
     * After this long, a read that has a stale value answers with it while the load goes on in the background
     * and updates the cache when it lands. @default off
     */
    soft?: Duration
    /**
     * After this long the loader's `signal` is aborted and the read fails with ERR_STRATA_LOADER_TIMEOUT (or answers
     * stale), so a loader that never settles cannot hold a key, its callers or a source slot for ever.
     * @default 30s (or twice `soft`, if that is longer)
     */
    hard?: Duration
    /**
     * After this long the source write of `write()` (the namespace's `write` function) has its `signal` aborted and
     * `write()` rejects with ERR_STRATA_WRITE_TIMEOUT. The write may still reach the source, so the key's cached
     * value is dropped everywhere before the rejection, and again if the write succeeds later. Write-through and
     * cache-aside only: a write-behind namespace bounds its flusher's calls with `writeBehind.writeTimeout`.
     * @default '30s'
     */
    write?: Duration
  }
  /**
   * Cross-process single-flight through a lock in L2: of all processes missing one key, one loads and the others
   * wait for its value (woken by pub/sub), each for at most `wait` before loading itself. `false` turns it off.
   * Without L2 it does nothing. @default { ttl: '5s', wait: '10s' }
   */
  lock?: false | { ttl?: Duration; wait?: Duration }
  /**
   * Hot keys: track the `track` most read keys of this namespace (decaying counts, over its L1 entries), expose them
   * in `ns.hotKeys()`, and refresh them in the background shortly before they expire so they never go cold.
   * @default off
   * @example { track: 20 }
   */
  hotKeys?: { track: number; refresh?: boolean; interval?: Duration; concurrency?: number }
  /**
   * Source protection: at most `maxConcurrent` loads at once and `maxPerSecond` started in any second for this
   * namespace. A load over the limit waits (`overflow: 'wait'`, at most `maxWait`), answers with a stale value
   * when one exists (`'stale'`; otherwise it waits), or fails at once with ERR_STRATA_SOURCE_BUSY (`'error'`).
   * @default no limit
   * @example { maxConcurrent: 10, maxPerSecond: 100, overflow: 'stale' }
   */
  source?: {
    maxConcurrent?: number
    maxPerSecond?: number
    /**
     * Longest wait for room before ERR_STRATA_SOURCE_BUSY. The wait counts against `timeouts.hard`, so it never
     * lasts past it, and what it took is not left to the loader. @default '5s'
     */
    maxWait?: Duration
    /** @default 'wait' */
    overflow?: 'wait' | 'stale' | 'error'
  }
  /**
   * The consistency class, one per namespace, enforced:
   * - `'strong'`: read-after-write across processes. No L1 (every read sees L2), no stale data; once `write()` or
   *   `set()` resolves, every process reads the new value.
   * - `'bounded'`: no process serves a value older than `maxStaleness` after a write was acknowledged: L1 copies
   *   live at most that long, and the invalidation bus drops them sooner.
   * - `'eventual'`: best effort, the longest L1 life.
   * @default 'eventual'
   */
  consistency?: 'strong' | 'bounded' | 'eventual'
  /** With `consistency: 'bounded'` (required there): the longest a process may serve a value after a write. */
  maxStaleness?: Duration
  /**
   * With `consistency: 'bounded'` and `regions`: what a read does with a cached value older than `maxStaleness` once
   * this region has not heard from a peer region for longer than `maxStaleness` (a value the peer may have changed
   * meanwhile). `'revalidate'`: load it from the source, cache it and serve it (values loaded since are served
   * while younger than the bound); `'bypass'`: every read goes to the source until the peer is heard from again.
   * @default 'revalidate'
   */
  onRegionSplit?: 'revalidate' | 'bypass'
  /**
   * How `write()` reaches the source and the cache:
   * - `'write-through'`: writes the source, then stores the new value in L2 and L1 and tells the other processes
   *   to drop theirs;
   * - `'cache-aside'`: writes the source, then deletes the entry from L2 and L1 (the next read loads it);
   * - `'write-behind'`: queues the write durably in a Redis stream and updates the cache as write-through does;
   *   `write()` resolves once Redis has it, and the source gets it later, in batches, from whichever process
   *   flushes (see `writeBehind`). Needs L2.
   * @default 'write-through'
   */
  writeStrategy?: 'write-through' | 'cache-aside' | 'write-behind'
  /**
   * Writes one value to the source of truth, for `write()`. With write-behind it runs later, maybe more than once
   * for one write (a flusher died before acknowledging it): `context.idempotencyKey` is the same every time, so a
   * source that records it can apply each write exactly once.
   */
  write?: (params: P, value: V, context: WriteContext) => unknown
  /**
   * With write-behind: writes a whole batch to the source in one call (all or nothing: if it throws, the whole batch
   * is retried). Without it, `write` is called once per queued write, in queue order.
   */
  writeMany?: (writes: readonly QueuedWrite<P, V>[], context: WriteContext) => unknown
  /**
   * Write-behind tuning. Every process flushes by default; set `flush: false` where a process should only queue
   * (web servers, say, while workers flush).
   * @default { batchSize: 100, flushInterval: '100ms', maxAttempts: 5, retryDelay: '500ms', maxRetryDelay: '30s', claimAfter: '30s', writeTimeout: '10s', maxQueued: 100000, flush: true }
   */
  writeBehind?: {
    /** Most writes handed to the source per flush. */
    batchSize?: number
    /** How often each process looks for queued writes: the longest a write waits before its flush starts. */
    flushInterval?: Duration
    /** Failed attempts after which a write moves to the dead-letter stream (`<service>:<namespace>#wb:dead`). */
    maxAttempts?: number
    /** Delay before the first retry of a failed write; doubles with each attempt, up to `maxRetryDelay`. */
    retryDelay?: Duration
    maxRetryDelay?: Duration
    /**
     * The flush lease's length: the flusher renews it from its flush loop while its source calls settle, so a
     * flusher that died, or whose source call timed out and nothing settled since, loses it this long after its
     * last renewal, and another process takes over the writes it left unacknowledged. Keep it at least twice
     * `writeTimeout`, or a slow but healthy source call may be cut at the lease's end.
     * @default '30s'
     */
    claimAfter?: Duration
    /**
     * Longest a flusher waits for one source call: `write` for one write, `writeMany` for a batch. Past it (or
     * past the end of the flusher's lease, if sooner) `context.signal` is aborted, the flusher stops waiting, and
     * the call counts as a failed attempt (`ERR_STRATA_WRITE_TIMEOUT`: retried with backoff, dead-lettered after
     * `maxAttempts`). A source that ignores the signal may still apply the write later, and it is then delivered
     * again: the idempotency key tells. Also the longest `close()` waits for a source call under way.
     * @default '10s'
     */
    writeTimeout?: Duration
    /**
     * Most writes the queue may hold in Redis, dead letters included: once it holds this many, `write()` rejects
     * with `ERR_STRATA_WRITE_QUEUE_FULL` (nothing queued, the cache unchanged) until flushes or an operator make
     * room, so a dead source cannot fill Redis. Nothing queued is ever dropped. Each writing process counts the queue
     * in Redis at most once per `flushInterval` (at least once a second), so the fleet may overshoot it by what it
     * queues meanwhile.
     * @default 100000
     * @example 20_000 // at about 1 KB a write, about 20 MB of Redis
     */
    maxQueued?: number
    /** Whether this process flushes queued writes. */
    flush?: boolean
  }
  /**
   * Tags for an entry, computed when it is cached (after a load or `set`): `invalidateTag(tag)` later drops every
   * entry carrying the tag, in L2 and in every process's L1, at a cost proportional to those entries. Declare it
   * after `load`, so TypeScript infers `value`'s type from the loader (it types callbacks left to right).
   * @example ({ tenantId }) => [`tenant:${tenantId}`]
   */
  tags?: (params: P, value: V) => readonly string[]
  /**
   * Labels for this namespace's read counters, per read (for example the tenant): `ns.stats().byLabels` and the
   * Prometheus exporter then report hits and misses per label set. At most `maxLabelSets` distinct sets are kept;
   * reads of further sets count under `_other`, so a tenant id cannot explode the series. Runs on every read,
   * L1 hits included: keep it to property reads. Never put key values you would not put in a dashboard.
   * @example ({ tenantId }) => ({ tenant: String(tenantId) })
   */
  labels?: (params: P) => ReadLabels
  /** Most distinct label sets counted (see `labels`). @default 100 */
  maxLabelSets?: number
  /**
   * Records a sampled access log (key hash, time, tier, size) to a file or a Redis stream, bounded in size, for
   * `stratacache simulate` to replay against a proposed policy. Sampled by key, so every read of a sampled key
   * is kept. Off by default.
   * @example { file: '/var/log/catalog/product-access.jsonl', sampleRate: 0.01 }
   */
  accessLog?: AccessLogOptions
  /** Reads one value from the source of truth. Return null or undefined for "does not exist" (cached negatively). */
  load?: (params: P, context: LoadContext) => Promise<V> | V
  /**
   * Reads many values in one call, for `getMany`. Resolves to one result per params, in the same order.
   * Without it, `getMany` calls `load` once per missing key, concurrently.
   */
  loadMany?: (params: readonly P[], context: LoadContext) => Promise<readonly V[]> | readonly V[]
  /**
   * Objectives for this namespace, checked over a sliding `window`: the 99th percentile of `get` latency
   * (`readP99`), and the share of reads served stale (`staleReadsMax`, 0 to 1). `cache.slo()` reports compliance;
   * a breach (and the recovery) is published on the `stratacache:slo` channel and logged.
   * @example { readP99: '120ms', staleReadsMax: 0.001, window: '5m' }
   */
  slo?: { readP99?: Duration; staleReadsMax?: number; window?: Duration }
  /**
   * Policy exceptions: rules of your own cache policy this namespace is knowingly allowed to break for a while.
   * Exceptions are debt with an expiry: each names the rule, says why, and gives the last day it holds (`until`, an
   * ISO date `YYYY-MM-DD`, inclusive). They are printed in the cache contract, and `stratacache contract --check`
   * fails once one has expired, so the debt is paid or consciously renewed.
   * @default []
   * @example [{ rule: 'personal-ttl-cap', reason: 'legacy profile API until the v3 migration', until: '2027-03-31' }]
   */
  exceptions?: readonly PolicyException[]
  /**
   * Losing this namespace's keys in Redis is a correctness problem, not just a miss (its version counters, tag sets
   * and generation counter carry invalidations). `cache.inspect()` then warns when its Redis may evict them
   * (`maxmemory-policy` `allkeys-*` or `volatile-*`, or an unknown policy).
   * @default false
   */
  critical?: boolean
  /**
   * The warm-up jobs that fill this namespace before traffic needs it (a deploy step, a schedule), declared so that
   * the cache contract says who owns each and when it runs. The cache runs none of them by itself: your pipeline or
   * scheduler runs `stratacache warm` (or calls `ns.warm()`) with the same budget.
   * @default []
   * @example [{ name: 'top-products', owner: 'team-catalog', schedule: 'every deploy, before traffic',
   *   from: 'top-products.jsonl', maxPerSecond: 200, timeLimit: '10m' }]
   */
  warmUps?: readonly WarmUpJob[]
  /** Team or person who owns this key family (printed in the cache contract). */
  owner?: string
  /** What the namespace holds (printed in the cache contract). */
  description?: string
  /**
   * The sensitivity of the values, with rules enforced when the namespace is declared:
   * - `'public'`, `'internal'`: no extra rule.
   * - `'personal'`, `'secret'`: the namespace must `redact` fields or encrypt (a cache `encryption` key ring, and
   *   not `encrypt: false`), and its entries may live at most the cache's `ttlCaps` (15 minutes and 1 minute by
   *   default) counting `ttl`, `jitter` and `staleFor`.
   * A declaration breaking a rule throws ERR_STRATA_CLASSIFICATION naming the rule.
   * @default 'internal'
   */
  classification?: Classification
  /**
   * Fields removed (or masked) from every value before it is cached, in L1 and L2 alike; callers get the redacted
   * value on a miss too, so a hit and a miss return the same shape. See {@link RedactOption} for the path syntax.
   * `write()` still hands the full value to the source.
   * @example ['user.ssn', 'cards[].number']
   * @example { paths: ['user.email'], mask: '[redacted]' }
   */
  redact?: RedactOption
  /**
   * Encrypt this namespace's L2 values with the cache's `encryption` key ring. `false` stores them in clear (and
   * reads clear values); not allowed without redaction for `'personal'` and `'secret'` namespaces.
   * @default true when the cache has an `encryption` key ring
   */
  encrypt?: boolean
  /** Compression of this namespace's L2 values, or `false` for none. @default the cache's `compression` */
  compression?: false | CompressionOptions
  /** Largest serialized value written to (and read from) L2 for this namespace, in bytes. @default the cache's `maxValueBytes` */
  maxValueBytes?: number
}

/** One warm-up job of a namespace (see `NamespaceOptions.warmUps`). */
export interface WarmUpJob {
  /** Its name, unique in the namespace, e.g. `'top-products'`. */
  readonly name: string
  /** Team or person who answers for it (and is paged when it fails). */
  readonly owner: string
  /** When it runs, in your scheduler's words: `'every deploy, before traffic'`, `'daily 05:00 UTC'`. */
  readonly schedule: string
  /** Where its keys come from: the `--from` file or module, a query. */
  readonly from?: string
  /** Its budget for the source: keys started per second at most (`--max-per-second`). */
  readonly maxPerSecond?: number
  /** Its time budget (`--time-limit`), e.g. `'10m'`. */
  readonly timeLimit?: Duration
}

/** A warm-up job after validation. */
export interface ResolvedWarmUpJob {
  readonly name: string
  readonly owner: string
  readonly schedule: string
  readonly from: string | undefined
  readonly maxPerSecond: number | undefined
  readonly timeLimitMs: number | undefined
}

/** One policy exception of a namespace (see `NamespaceOptions.exceptions`). */
export interface PolicyException {
  /** The rule excepted, in your policy's words, e.g. `'personal-ttl-cap'`. */
  readonly rule: string
  /** Why, and what pays the debt back. */
  readonly reason: string
  /** Last day the exception holds, as an ISO date (`YYYY-MM-DD`, UTC). */
  readonly until: string
}

export interface ResolvedNamespaceOptions {
  readonly name: string
  readonly key: string
  readonly dimensions: readonly string[]
  /** Declared parameter types (`params`), frozen; undefined when none are declared. */
  readonly params: Readonly<Record<string, ScalarTypeName>> | undefined
  readonly schemaVersion: number
  readonly ttlMs: number
  readonly jitterMs: number
  readonly negativeTtlMs: number
  /** Longest life of an L1 copy: Infinity to follow the entry's freshness, 0 when this namespace skips L1. */
  readonly l1TtlMs: number
  readonly owner: string | undefined
  readonly description: string | undefined
  /** Sorted by `until`, then `rule`. */
  readonly exceptions: readonly PolicyException[]
  /** Sorted by name. */
  readonly warmUps: readonly ResolvedWarmUpJob[]
  readonly slo: ResolvedSlo | undefined
  readonly maxLabelSets: number
  readonly accessLog: ResolvedAccessLog | undefined
  readonly critical: boolean
  readonly consistency: 'strong' | 'bounded' | 'eventual'
  /** Infinity unless bounded. */
  readonly maxStalenessMs: number
  readonly onRegionSplit: 'revalidate' | 'bypass'
  /**
   * What `ns.write()` does once the namespace has a `write` (or `writeMany`); without one (`writer: false`) there is
   * no write path at all, whatever this says: `write()` throws ERR_STRATA_NO_WRITER.
   */
  readonly writeStrategy: 'write-through' | 'cache-aside' | 'write-behind'
  /** Whether the namespace declares `write` or `writeMany`, so that `ns.write()` can write to the source. */
  readonly writer: boolean
  /** Set with write-behind. */
  readonly writeBehind: ResolvedWriteBehind | undefined
  readonly staleForMs: number
  readonly staleWhileRevalidate: boolean
  readonly failSafeThrottleMs: number
  /** Fraction of the TTL after which a read refreshes in the background; 1 when off. */
  readonly refreshAhead: number
  readonly softTimeoutMs: number
  readonly hardTimeoutMs: number
  /** `write()`'s bound on the source write (`timeouts.write`); write-through and cache-aside only. */
  readonly writeTimeoutMs: number
  readonly lock: false | { readonly ttlMs: number; readonly waitMs: number }
  readonly source: {
    readonly maxConcurrent: number
    readonly maxPerSecond: number
    readonly maxWaitMs: number
    readonly overflow: 'wait' | 'stale' | 'error'
  }
  readonly hotKeys:
    | false
    | {
        readonly track: number
        readonly refresh: boolean
        readonly intervalMs: number
        readonly concurrency: number
      }
  /** `'internal'` unless declared. */
  readonly classification: Classification
  /** How values become L2 bytes and back: redaction, compression, encryption, size limit. */
  readonly codec: ResolvedCodecOptions
}

/** The loader's hard timeout when `timeouts.hard` is not declared. */
export const DEFAULT_HARD_TIMEOUT_MS = 30_000

/** `write()`'s bound on the source write when `timeouts.write` is not declared. */
export const DEFAULT_WRITE_TIMEOUT_MS = 30_000

type AnyNamespaceOptions = NamespaceOptions<string, readonly string[], unknown, unknown>

/**
 * Every key `cache.namespace()` takes, functions included, and each of its groups'. The compiler checks each list
 * against its type (see `OptionKeys`); the resolver refuses any other key.
 */
export const NAMESPACE_OPTION_KEYS = {
  key: true,
  dimensions: true,
  params: true,
  schemaVersion: true,
  ttl: true,
  jitter: true,
  negativeTtl: true,
  l1: true,
  staleFor: true,
  staleWhileRevalidate: true,
  failSafeThrottle: true,
  refreshAhead: true,
  timeouts: true,
  lock: true,
  hotKeys: true,
  source: true,
  consistency: true,
  maxStaleness: true,
  onRegionSplit: true,
  writeStrategy: true,
  write: true,
  writeMany: true,
  writeBehind: true,
  tags: true,
  labels: true,
  maxLabelSets: true,
  accessLog: true,
  load: true,
  loadMany: true,
  slo: true,
  exceptions: true,
  warmUps: true,
  critical: true,
  owner: true,
  description: true,
  classification: true,
  redact: true,
  encrypt: true,
  compression: true,
  maxValueBytes: true,
} as const satisfies OptionKeys<AnyNamespaceOptions>

type NamespaceGroup<K extends keyof AnyNamespaceOptions> = Group<AnyNamespaceOptions[K]>

export const NAMESPACE_GROUP_KEYS = {
  l1: { ttl: true } satisfies OptionKeys<NamespaceGroup<'l1'>>,
  timeouts: { soft: true, hard: true, write: true } satisfies OptionKeys<NamespaceGroup<'timeouts'>>,
  lock: { ttl: true, wait: true } satisfies OptionKeys<NamespaceGroup<'lock'>>,
  hotKeys: { track: true, refresh: true, interval: true, concurrency: true } satisfies OptionKeys<
    NamespaceGroup<'hotKeys'>
  >,
  source: { maxConcurrent: true, maxPerSecond: true, maxWait: true, overflow: true } satisfies OptionKeys<
    NamespaceGroup<'source'>
  >,
  writeBehind: {
    batchSize: true,
    flushInterval: true,
    maxAttempts: true,
    retryDelay: true,
    maxRetryDelay: true,
    claimAfter: true,
    writeTimeout: true,
    maxQueued: true,
    flush: true,
  } satisfies OptionKeys<NamespaceGroup<'writeBehind'>>,
  slo: { readP99: true, staleReadsMax: true, window: true } satisfies OptionKeys<NamespaceGroup<'slo'>>,
  accessLog: ACCESS_LOG_OPTION_KEYS,
  compression: COMPRESSION_OPTION_KEYS,
  /** The object form of `redact` (the other is a list of paths). */
  redact: { paths: true, mask: true } satisfies OptionKeys<Exclude<RedactOption, readonly string[]>>,
  /** Each item of `exceptions`. */
  exceptions: { rule: true, reason: true, until: true } satisfies OptionKeys<PolicyException>,
  /** Each item of `warmUps`. */
  warmUps: {
    name: true,
    owner: true,
    schedule: true,
    from: true,
    maxPerSecond: true,
    timeLimit: true,
  } satisfies OptionKeys<WarmUpJob>,
} as const

export function resolveNamespaceOptions<P, V>(
  name: string,
  options: NamespaceOptions<string, readonly string[], P, V>,
  cache?: Pick<ResolvedCacheOptions, 'compression' | 'keyRing' | 'maxValueBytes' | 'ttlCaps'>,
): ResolvedNamespaceOptions {
  if (options === null || typeof options !== 'object') {
    throw new InvalidOptionError(
      `namespace("${name}") options`,
      options,
      'an object with at least `key` and `ttl`',
    )
  }
  const at = (option: string) => `${name}.${option}`
  const place: OptionPlace = { where: `namespace "${name}"`, at }
  // Unknown keys first, in every group: a misspelt option would otherwise be ignored and turn its feature off.
  rejectNamespaceUnknown(options, place)
  if (options.ttl === undefined) {
    throw new InvalidOptionError(
      at('ttl'),
      undefined,
      "a duration such as '5m': every namespace declares its freshness",
    )
  }
  const ttlMs = parseDuration(options.ttl, at('ttl'))
  if (ttlMs < 1) throw new InvalidOptionError(at('ttl'), options.ttl, 'at least 1 ms')
  const jitterMs =
    options.jitter === undefined ? Math.round(ttlMs * 0.1) : parseDuration(options.jitter, at('jitter'))
  const negativeTtlMs =
    options.negativeTtl === undefined
      ? Math.min(ttlMs, 30_000)
      : parseDuration(options.negativeTtl, at('negativeTtl'))
  if (negativeTtlMs < 1) throw new InvalidOptionError(at('negativeTtl'), options.negativeTtl, 'at least 1 ms')
  const l1 = options.l1
  if (l1 !== undefined && l1 !== false && (l1 === null || typeof l1 !== 'object')) {
    throw new InvalidOptionError(at('l1'), l1, "`false` or an object such as { ttl: '30s' }")
  }
  // By default an L1 copy lives as long as the entry is fresh (TTL plus its jitter), so jitter spreads L1 expiry too.
  const l1TtlMs = l1 === false ? 0 : l1?.ttl === undefined ? Infinity : parseDuration(l1.ttl, at('l1.ttl'))
  if (l1 !== false && l1TtlMs < 1)
    throw new InvalidOptionError(at('l1.ttl'), l1?.ttl, 'at least 1 ms, or l1: false')
  for (const fn of ['load', 'loadMany', 'tags', 'write', 'writeMany', 'labels'] as const) {
    if (options[fn] !== undefined && typeof options[fn] !== 'function') {
      throw new InvalidOptionError(at(fn), options[fn], 'a function')
    }
  }
  for (const text of ['owner', 'description'] as const) {
    if (options[text] !== undefined && typeof options[text] !== 'string') {
      throw new InvalidOptionError(at(text), options[text], 'a string')
    }
  }
  const critical = options.critical ?? false
  if (typeof critical !== 'boolean') throw new InvalidOptionError(at('critical'), critical, 'true or false')
  const staleForMs = options.staleFor === undefined ? 0 : parseDuration(options.staleFor, at('staleFor'))
  const consistency = options.consistency ?? 'eventual'
  if (consistency !== 'strong' && consistency !== 'bounded' && consistency !== 'eventual') {
    throw new InvalidOptionError(at('consistency'), consistency, "'strong', 'bounded' or 'eventual'")
  }
  let maxStalenessMs = Infinity
  if (consistency === 'bounded') {
    if (options.maxStaleness === undefined) {
      throw new InvalidOptionError(
        at('maxStaleness'),
        undefined,
        "a duration such as '5s': bounded consistency needs its bound",
      )
    }
    maxStalenessMs = positiveDuration(options.maxStaleness, at('maxStaleness'))
  } else if (options.maxStaleness !== undefined) {
    throw new InvalidOptionError(
      at('maxStaleness'),
      options.maxStaleness,
      `no value with consistency '${consistency}' (a bound belongs to consistency: 'bounded')`,
    )
  }
  if (consistency === 'strong') {
    if (l1 !== undefined && l1 !== false) {
      throw new InvalidOptionError(at('l1'), l1, "nothing, or false: consistency 'strong' keeps no L1 copy")
    }
    if (staleForMs > 0) {
      throw new InvalidOptionError(
        at('staleFor'),
        options.staleFor,
        "nothing: consistency 'strong' never serves stale data",
      )
    }
  }
  const writeStrategy = options.writeStrategy ?? 'write-through'
  if (
    writeStrategy !== 'write-through' &&
    writeStrategy !== 'cache-aside' &&
    writeStrategy !== 'write-behind'
  ) {
    throw new InvalidOptionError(
      at('writeStrategy'),
      writeStrategy,
      "'write-through', 'cache-aside' or 'write-behind'",
    )
  }
  // A strategy says how `write()` reaches the source; without `write` there is no `write()` for it to shape, and a
  // reader of the options would believe writes go through the cache. (Write-behind's own check names `write`.)
  if (
    options.writeStrategy !== undefined &&
    writeStrategy !== 'write-behind' &&
    options.write === undefined &&
    options.writeMany === undefined
  ) {
    throw new InvalidOptionError(
      at('writeStrategy'),
      writeStrategy,
      'no `writeStrategy` in a namespace without `write` (it says how `write()` reaches the source, and there is ' +
        'no `write()` here: declare `write`, the function that writes the source, or drop `writeStrategy`)',
    )
  }
  const writeBehind = resolveWriteBehind(options, writeStrategy, at)
  const swr = options.staleWhileRevalidate ?? true
  if (typeof swr !== 'boolean') throw new InvalidOptionError(at('staleWhileRevalidate'), swr, 'true or false')
  const refreshAhead = options.refreshAhead ?? 1
  if (typeof refreshAhead !== 'number' || !(refreshAhead > 0 && refreshAhead <= 1)) {
    throw new InvalidOptionError(
      at('refreshAhead'),
      options.refreshAhead,
      'a fraction of the TTL between 0 and 1, e.g. 0.8',
    )
  }
  const timeouts = options.timeouts ?? {}
  if (!isObject(timeouts)) {
    throw new InvalidOptionError(at('timeouts'), timeouts, "an object such as { soft: '200ms', hard: '2s' }")
  }
  const softTimeoutMs =
    timeouts.soft === undefined ? Infinity : timerDuration(timeouts.soft, at('timeouts.soft'))
  // Always finite: a hung loader must not pin its key, its callers and its source slot for good.
  const hardTimeoutMs =
    timeouts.hard === undefined
      ? Math.min(
          MAX_TIMER_MS,
          Math.max(DEFAULT_HARD_TIMEOUT_MS, softTimeoutMs === Infinity ? 0 : 2 * softTimeoutMs),
        )
      : timerDuration(timeouts.hard, at('timeouts.hard'))
  if (softTimeoutMs !== Infinity && softTimeoutMs >= hardTimeoutMs) {
    throw new InvalidOptionError(
      at('timeouts.soft'),
      timeouts.soft,
      `a duration shorter than timeouts.hard (${formatDuration(hardTimeoutMs)})`,
    )
  }
  if (timeouts.write !== undefined && writeStrategy === 'write-behind') {
    throw new InvalidOptionError(
      at('timeouts.write'),
      timeouts.write,
      "no value on a write-behind namespace: its source writes are the flusher's, bounded by writeBehind.writeTimeout",
    )
  }
  const writeTimeoutMs = timerDuration(timeouts.write ?? DEFAULT_WRITE_TIMEOUT_MS, at('timeouts.write'))
  const lock = options.lock ?? {}
  if (lock !== false && (lock === null || typeof lock !== 'object')) {
    throw new InvalidOptionError(at('lock'), lock, "`false` or an object such as { ttl: '5s', wait: '10s' }")
  }
  const hotKeys = options.hotKeys
  if (hotKeys !== undefined && (hotKeys === null || typeof hotKeys !== 'object')) {
    throw new InvalidOptionError(at('hotKeys'), hotKeys, 'an object such as { track: 20 }')
  }
  if (hotKeys !== undefined && (!Number.isSafeInteger(hotKeys.track) || hotKeys.track < 1)) {
    throw new InvalidOptionError(at('hotKeys.track'), hotKeys.track, 'a positive whole number of keys')
  }
  const hotConcurrency = hotKeys?.concurrency ?? 4
  if (!Number.isSafeInteger(hotConcurrency) || hotConcurrency < 1) {
    throw new InvalidOptionError(at('hotKeys.concurrency'), hotConcurrency, 'a positive whole number')
  }
  const source = options.source ?? {}
  if (source === null || typeof source !== 'object') {
    throw new InvalidOptionError(at('source'), source, 'an object such as { maxConcurrent: 10 }')
  }
  const overflow = source.overflow ?? 'wait'
  if (overflow !== 'wait' && overflow !== 'stale' && overflow !== 'error') {
    throw new InvalidOptionError(at('source.overflow'), overflow, "'wait', 'stale' or 'error'")
  }
  const codec = resolveCodecOptions(
    {
      redact: options.redact,
      encrypt: options.encrypt,
      compression: options.compression,
      maxValueBytes:
        options.maxValueBytes === undefined
          ? (cache?.maxValueBytes ?? DEFAULT_MAX_VALUE_BYTES)
          : resolveMaxValueBytes(options.maxValueBytes, at('maxValueBytes'), DEFAULT_MAX_VALUE_BYTES),
    },
    { compression: cache?.compression, keyRing: cache?.keyRing },
    at,
  )
  const classification = options.classification ?? 'internal'
  checkClassification(name, classification, {
    lifetimeMs: ttlMs + jitterMs + staleForMs,
    negativeTtlMs,
    redacted: codec.redactor !== undefined,
    encrypted: codec.encrypt,
    caps: cache?.ttlCaps ?? { personalMs: 15 * 60_000, secretMs: 60_000 },
    writeBehind: writeStrategy === 'write-behind',
  })
  return Object.freeze({
    classification,
    codec,
    consistency,
    maxStalenessMs,
    onRegionSplit: resolveOnRegionSplit(options.onRegionSplit, consistency, at('onRegionSplit')),
    writeStrategy,
    writer: typeof options.write === 'function' || typeof options.writeMany === 'function',
    writeBehind,
    source: Object.freeze({
      maxConcurrent: source.maxConcurrent ?? Infinity,
      maxPerSecond: source.maxPerSecond ?? Infinity,
      maxWaitMs: source.maxWait === undefined ? 5_000 : timerDuration(source.maxWait, at('source.maxWait')),
      overflow,
    }),
    staleForMs,
    staleWhileRevalidate: swr,
    failSafeThrottleMs: parseDuration(options.failSafeThrottle ?? 10_000, at('failSafeThrottle')),
    refreshAhead,
    softTimeoutMs,
    hardTimeoutMs,
    writeTimeoutMs,
    lock:
      lock === false
        ? false
        : Object.freeze({
            ttlMs: timerDuration(lock.ttl ?? 5_000, at('lock.ttl')),
            waitMs: parseDuration(lock.wait ?? 10_000, at('lock.wait')),
          }),
    hotKeys:
      hotKeys === undefined
        ? false
        : Object.freeze({
            track: hotKeys.track,
            refresh: hotKeys.refresh ?? true,
            intervalMs: timerDuration(hotKeys.interval ?? 1_000, at('hotKeys.interval')),
            concurrency: hotConcurrency,
          }),
    name,
    key: options.key,
    dimensions: Object.freeze([...(options.dimensions ?? [])]),
    // Its names and type names are checked with the key template (core/keys.ts), which knows the parameters.
    params:
      options.params === undefined
        ? undefined
        : options.params === null || typeof options.params !== 'object' || Array.isArray(options.params)
          ? (options.params as never) // refused by the key schema, with the namespace's name
          : Object.freeze({ ...(options.params as Record<string, ScalarTypeName>) }),
    schemaVersion: options.schemaVersion ?? 1,
    ttlMs,
    jitterMs,
    negativeTtlMs,
    // Strong: no L1. Bounded: no L1 copy outlives the staleness bound.
    l1TtlMs: consistency === 'strong' ? 0 : Math.min(l1TtlMs, maxStalenessMs),
    owner: options.owner,
    description: options.description,
    exceptions: resolveExceptions(options.exceptions, at),
    warmUps: resolveWarmUps(options.warmUps, at),
    slo: resolveSlo(options.slo, at),
    maxLabelSets: resolveMaxLabelSets(options.maxLabelSets, at),
    accessLog: resolveAccessLog(options.accessLog, at),
    critical,
  })
}

/** Refuses unknown keys in a namespace's options and in each of its groups that is an object. */
function rejectNamespaceUnknown(options: object, place: OptionPlace): void {
  rejectUnknown(options, NAMESPACE_OPTION_KEYS, place)
  const o = options as Record<string, unknown>
  for (const [group, keys] of Object.entries(NAMESPACE_GROUP_KEYS)) {
    const value = o[group]
    if (group === 'exceptions' || group === 'warmUps') {
      if (!Array.isArray(value)) continue
      value.forEach((item: unknown, i) => {
        if (isObject(item)) rejectUnknown(item, keys, place, `${group}[${i}]`)
      })
    } else if (group === 'redact') {
      if (isObject(value) && !Array.isArray(value)) rejectUnknown(value, keys, place, group)
    } else if (isObject(value)) {
      rejectUnknown(value, keys, place, group)
    }
  }
}

function resolveWriteBehind<P, V>(
  options: NamespaceOptions<string, readonly string[], P, V>,
  strategy: string,
  at: (option: string) => string,
): ResolvedWriteBehind | undefined {
  const config = options.writeBehind
  if (strategy !== 'write-behind') {
    if (config !== undefined) {
      throw new InvalidOptionError(
        at('writeBehind'),
        config,
        "nothing, or writeStrategy: 'write-behind' (these settings tune the write-behind queue)",
      )
    }
    if (options.writeMany !== undefined) {
      throw new InvalidOptionError(
        at('writeMany'),
        options.writeMany,
        "nothing, or writeStrategy: 'write-behind' (batches are written only by the write-behind flusher)",
      )
    }
    return undefined
  }
  if (options.write === undefined && options.writeMany === undefined) {
    throw new InvalidOptionError(
      at('write'),
      undefined,
      'a function that writes to the source (or `writeMany`): write-behind flushes queued writes with it',
    )
  }
  if (config !== undefined && (config === null || typeof config !== 'object')) {
    throw new InvalidOptionError(
      at('writeBehind'),
      config,
      "an object such as { batchSize: 100, flushInterval: '100ms' }",
    )
  }
  const c = config ?? {}
  const whole = (name: 'batchSize' | 'maxAttempts' | 'maxQueued', fallback: number): number => {
    const value = c[name] ?? fallback
    if (!Number.isSafeInteger(value) || value < 1) {
      throw new InvalidOptionError(at(`writeBehind.${name}`), c[name], 'a positive whole number')
    }
    return value
  }
  if (c.flush !== undefined && typeof c.flush !== 'boolean') {
    throw new InvalidOptionError(at('writeBehind.flush'), c.flush, 'true or false')
  }
  return Object.freeze({
    batchSize: whole('batchSize', 100),
    maxAttempts: whole('maxAttempts', 5),
    flushIntervalMs: timerDuration(c.flushInterval ?? 100, at('writeBehind.flushInterval')),
    retryDelayMs: positiveDuration(c.retryDelay ?? 500, at('writeBehind.retryDelay')),
    maxRetryDelayMs: positiveDuration(c.maxRetryDelay ?? 30_000, at('writeBehind.maxRetryDelay')),
    claimAfterMs: timerDuration(c.claimAfter ?? 30_000, at('writeBehind.claimAfter')),
    writeTimeoutMs: timerDuration(c.writeTimeout ?? 10_000, at('writeBehind.writeTimeout')),
    maxQueued: whole('maxQueued', 100_000),
    flush: c.flush ?? true,
  })
}

const ISO_DATE = /^(\d{4})-(\d{2})-(\d{2})$/

/** Whether `text` is a real calendar date written `YYYY-MM-DD`. */
export function isIsoDate(text: unknown): text is string {
  if (typeof text !== 'string') return false
  const match = ISO_DATE.exec(text)
  if (match === null) return false
  const date = new Date(Date.UTC(Number(match[1]), Number(match[2]) - 1, Number(match[3])))
  return date.toISOString().slice(0, 10) === text
}

function resolveWarmUps(
  jobs: readonly WarmUpJob[] | undefined,
  at: (option: string) => string,
): readonly ResolvedWarmUpJob[] {
  if (jobs === undefined) return Object.freeze([])
  if (!Array.isArray(jobs)) {
    throw new InvalidOptionError(
      at('warmUps'),
      jobs,
      "an array such as [{ name: 'top-products', owner: 'team-catalog', schedule: 'every deploy' }]",
    )
  }
  const seen = new Set<string>()
  const resolved = jobs.map((job: unknown, i): ResolvedWarmUpJob => {
    const where = at(`warmUps[${i}]`)
    if (job === null || typeof job !== 'object') {
      throw new InvalidOptionError(where, job, 'an object with `name`, `owner` and `schedule`')
    }
    const { name, owner, schedule, from, maxPerSecond, timeLimit } = job as Record<string, unknown>
    const text = (value: unknown, field: string, expected: string): string => {
      if (typeof value !== 'string' || value.trim() === '') {
        throw new InvalidOptionError(`${where}.${field}`, value, expected)
      }
      return value
    }
    text(name, 'name', "the job's name, e.g. 'top-products'")
    if (seen.has(name as string)) {
      throw new InvalidOptionError(`${where}.name`, name, 'each job name at most once per namespace')
    }
    seen.add(name as string)
    if (maxPerSecond !== undefined && !(typeof maxPerSecond === 'number' && maxPerSecond > 0)) {
      throw new InvalidOptionError(
        `${where}.maxPerSecond`,
        maxPerSecond,
        'a positive number of keys a second',
      )
    }
    return Object.freeze({
      name: name as string,
      owner: text(owner, 'owner', 'who answers for the job: a team or a person'),
      schedule: text(schedule, 'schedule', "when it runs, e.g. 'every deploy, before traffic'"),
      from: from === undefined ? undefined : text(from, 'from', 'where its keys come from (a file, a query)'),
      maxPerSecond,
      timeLimitMs: timeLimit === undefined ? undefined : positiveDuration(timeLimit, `${where}.timeLimit`),
    })
  })
  resolved.sort((a, b) => compareText(a.name, b.name))
  return Object.freeze(resolved)
}

function resolveExceptions(
  exceptions: readonly PolicyException[] | undefined,
  at: (option: string) => string,
): readonly PolicyException[] {
  if (exceptions === undefined) return Object.freeze([])
  if (!Array.isArray(exceptions)) {
    throw new InvalidOptionError(
      at('exceptions'),
      exceptions,
      "an array such as [{ rule: 'personal-ttl-cap', reason: '…', until: '2027-03-31' }]",
    )
  }
  const seen = new Set<string>()
  const resolved = exceptions.map((exception: unknown, i) => {
    const where = at(`exceptions[${i}]`)
    if (exception === null || typeof exception !== 'object') {
      throw new InvalidOptionError(where, exception, 'an object with `rule`, `reason` and `until`')
    }
    const { rule, reason, until } = exception as Record<string, unknown>
    if (typeof rule !== 'string' || rule.trim() === '') {
      throw new InvalidOptionError(`${where}.rule`, rule, "the rule excepted, e.g. 'personal-ttl-cap'")
    }
    if (seen.has(rule)) {
      throw new InvalidOptionError(`${where}.rule`, rule, 'each rule at most once per namespace')
    }
    seen.add(rule)
    if (typeof reason !== 'string' || reason.trim() === '') {
      throw new InvalidOptionError(`${where}.reason`, reason, 'why the exception exists (a non-empty string)')
    }
    if (!isIsoDate(until)) {
      throw new InvalidOptionError(
        `${where}.until`,
        until,
        "an ISO date 'YYYY-MM-DD': exceptions are debt with an expiry, and every one needs its date",
      )
    }
    return Object.freeze({ rule, reason, until })
  })
  resolved.sort((a, b) => (a.until === b.until ? compareText(a.rule, b.rule) : compareText(a.until, b.until)))
  return Object.freeze(resolved)
}

function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0
}

function resolveMaxLabelSets(value: unknown, at: (option: string) => string): number {
  const max = value ?? 100
  if (!Number.isSafeInteger(max) || (max as number) < 1) {
    throw new InvalidOptionError(at('maxLabelSets'), value, 'a positive whole number, e.g. 100')
  }
  return max as number
}

function resolveSlo(
  slo: { readP99?: Duration; staleReadsMax?: number; window?: Duration } | undefined,
  at: (option: string) => string,
): ResolvedSlo | undefined {
  if (slo === undefined) return undefined
  if (slo === null || typeof slo !== 'object') {
    throw new InvalidOptionError(
      at('slo'),
      slo,
      "an object such as { readP99: '120ms', staleReadsMax: 0.001 }",
    )
  }
  if (slo.readP99 === undefined && slo.staleReadsMax === undefined) {
    throw new InvalidOptionError(at('slo'), slo, 'at least one objective: `readP99` or `staleReadsMax`')
  }
  const stale = slo.staleReadsMax
  if (stale !== undefined && !(typeof stale === 'number' && stale >= 0 && stale <= 1)) {
    throw new InvalidOptionError(at('slo.staleReadsMax'), stale, 'a share between 0 and 1, e.g. 0.001')
  }
  return Object.freeze({
    readP99Ms: slo.readP99 === undefined ? undefined : positiveDuration(slo.readP99, at('slo.readP99')),
    staleReadsMax: stale,
    windowMs: positiveDuration(slo.window ?? 300_000, at('slo.window')),
  })
}

/** A positive whole number of bytes, or `fallback` when undefined. */
function resolveMaxValueBytes(value: unknown, option: string, fallback: number): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) {
    throw new InvalidOptionError(option, value, 'a positive whole number of bytes, e.g. 1_048_576 for 1 MiB')
  }
  return value
}

/** A duration of at least 1 ms. */
/** `onRegionSplit`: a choice of bounded namespaces only. */
function resolveOnRegionSplit(value: unknown, consistency: string, option: string): 'revalidate' | 'bypass' {
  if (value === undefined) return 'revalidate'
  if (consistency !== 'bounded') {
    throw new InvalidOptionError(
      option,
      value,
      `no value with consistency '${consistency}' (strong namespaces read through during a region split, ` +
        'eventual ones keep serving)',
    )
  }
  if (value !== 'revalidate' && value !== 'bypass')
    throw new InvalidOptionError(option, value, "'revalidate' or 'bypass'")
  return value
}

export function positiveDuration(value: unknown, option: string): number {
  const ms = parseDuration(value, option)
  if (ms < 1) throw new InvalidOptionError(option, value, 'a duration of at least 1 ms')
  return ms
}

/**
 * The longest delay a Node timer can hold: 2^31−1 ms, about 24.8 days. Node fires a longer one after 1 ms (with a
 * TimeoutOverflowWarning), so "30 days, effectively never" would become "at once".
 */
export const MAX_TIMER_MS = 2_147_483_647

/**
 * A duration of at least 1 ms and at most `MAX_TIMER_MS`, for options that arm a timer (`setTimeout`,
 * `setInterval`). Durations that only go to Redis (`PX`) or are compared with timestamps (TTLs, caps) use
 * `positiveDuration` or `parseDuration`, and may be longer.
 * @throws InvalidOptionError naming `option`, the maximum, and what to do instead.
 */
export function timerDuration(value: unknown, option: string): number {
  const ms = positiveDuration(value, option)
  if (ms > MAX_TIMER_MS) {
    throw new InvalidOptionError(
      option,
      value,
      `a duration of at most ${MAX_TIMER_MS} ms (about 24.8 days), the longest a Node timer can wait (a longer ` +
        'one fires after 1 ms). Choose a shorter duration, or leave the option out where that means no limit ' +
        '(`timeouts.soft`, `timeouts.hard`)',
    )
  }
  return ms
}
