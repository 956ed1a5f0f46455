// Redis health for operators: memory against maxmemory and a budget, the eviction policy and its risks, and per
// namespace an estimate of its keys, sizes and TTLs from a bounded SCAN sample. cache.inspect() and inspectRedis().
import { parseDuration, type Duration } from '../core/duration.js'
import { InvalidOptionError } from '../errors.js'
import { isEntryKey } from '../namespace.js'
import { L2Guard } from '../policies/l2-guard.js'
import type { L2Answer, L2Store } from '../tiers/l2-store.js'
import { scanCoverage } from '../tiers/redis-store.js'

export { scanCoverage }
import { channels } from './channels.js'

/** What `cache.inspect()` lets you tune. Every bound holds whatever the size of the keyspace. */
export interface InspectOptions {
  /** Most keys of each namespace whose size and TTL are read (the sample). @default 1000 */
  sampleKeys?: number
  /**
   * Time for the whole inspection's scans and samples, shared by the namespaces (what one leaves is passed on).
   * A namespace's scan stops after the step that passes its share; every Redis call stays bounded by its timeout.
   * @default '2s'
   */
  maxTime?: Duration
  /** Keys one SCAN step looks at (its COUNT). @default 1000 */
  scanCount?: number
  /** Upper bounds of the TTL histogram's buckets, ascending; a last bucket holds the longer TTLs. @default ['10s', '1m', '10m', '1h', '1d'] */
  ttlBuckets?: readonly Duration[]
}

/** One key family to sample: its name in the report and the prefix all its keys start with (`ns.prefix`). */
export interface InspectTarget {
  readonly name: string
  readonly prefix: string
  /** Whether losing its keys breaks correctness (the namespace option `critical`). @default false */
  readonly critical?: boolean
}

/** What `inspectRedis()` takes: the sampling bounds, plus what a cache would otherwise provide. */
export interface InspectRedisOptions extends InspectOptions {
  /** The key families to sample. @default [] (memory and policy only) */
  namespaces?: readonly InspectTarget[]
  /** A memory budget to report Redis's used memory against, as the cache option `l2Budget`. */
  budget?: { maxBytes: number }
  /** Longest wait for one Redis call; past it the inspection rejects with ERR_STRATA_L2_TIMEOUT. @default '1s' */
  timeout?: Duration
}

/** A value read from Redis, where it came from; or why it could not be read (a refused command). */
export type Reading<T> =
  | { readonly known: true; readonly value: T; readonly source: 'CONFIG GET' | 'INFO memory' | 'INFO stats' }
  | { readonly known: false; readonly reason: string }

export type InspectWarningCode =
  | 'critical-evictable'
  | 'policy-unknown'
  | 'no-memory-limit'
  | 'noeviction'
  | 'near-memory-limit'
  | 'keys-evicted'
  | 'budget-exceeded'

/** One problem found, as a sentence that says what to change. Branch on `code`, not on the text. */
export interface InspectWarning {
  readonly code: InspectWarningCode
  /** The namespace it is about, for `critical-evictable`. */
  readonly namespace?: string
  readonly message: string
}

/** One namespace's keys in Redis. Counts and sizes are estimates from a sample unless `estimated` is false. */
export interface NamespaceReport {
  readonly prefix: string
  readonly critical: boolean
  /** False only when the scan saw the whole keyspace and every key it found was measured. */
  readonly estimated: boolean
  /** Why the scan stopped: it walked the whole keyspace, it had `sampleKeys` keys, or its time share ran out. */
  readonly stoppedBy: 'complete' | 'sample-size' | 'time'
  /**
   * Fraction of Redis's keyspace the scan walked (1 when complete). SCAN visits hash buckets in reverse-binary
   * order, so its cursor tells how far it got; estimated counts are the keys seen divided by this fraction.
   */
  readonly coverage: number
  /** Keys under the prefix the scan returned. */
  readonly seen: number
  /** Estimated keys under the prefix: entries and their bookkeeping keys (version counters, locks, tag sets). */
  readonly keys: number
  /** Estimated entries (cached values, positive or negative) among `keys`. */
  readonly entries: number
  /** Keys whose size and TTL were read (keys deleted meanwhile are left out). */
  readonly sampled: number
  readonly bytes: {
    /** `MEMORY USAGE` (memory the key takes, name and overhead included), or `STRLEN` when MEMORY is refused. */
    readonly source: 'MEMORY USAGE' | 'STRLEN'
    /** Sum over the sampled keys. */
    readonly sampled: number
    /** Mean per sampled key; 0 without samples. */
    readonly average: number
    /** The largest sampled key. */
    readonly largest: number
    /** `average` × `keys`: this namespace's estimated share of Redis's memory. */
    readonly estimatedTotal: number
  }
  readonly ttl: {
    /** Sampled keys by remaining TTL: below `upToMs` (and at or above the previous bound); null for the last. */
    readonly buckets: readonly { readonly upToMs: number | null; readonly keys: number }[]
    /** Sampled keys without a TTL. stratacache gives every key under a prefix one, so these were written by others. */
    readonly noExpiry: number
  }
}

/** A frozen report on the L2 Redis: memory, policy, eviction counters, budget, namespaces, warnings. */
export interface RedisReport {
  /** When the inspection started, in epoch ms (the cache's clock). */
  readonly takenAt: number
  /** How long it took, in ms. */
  readonly durationMs: number
  readonly memory: {
    /** `used_memory` (INFO memory), in bytes. */
    readonly used: Reading<number>
    /** `maxmemory` in bytes (CONFIG GET, or INFO memory when CONFIG is refused); 0 means no limit. */
    readonly maxmemory: Reading<number>
    /** `maxmemory-policy`, e.g. `allkeys-lru` or `noeviction`. */
    readonly policy: Reading<string>
    /** `used / maxmemory` when both are known and maxmemory is set. */
    readonly usedRatio: number | undefined
  }
  readonly stats: {
    /** Keys Redis evicted to stay under maxmemory since it started (INFO stats `evicted_keys`). */
    readonly evictedKeys: Reading<number>
    /** Keys that expired since it started (INFO stats `expired_keys`). */
    readonly expiredKeys: Reading<number>
  }
  /** Used memory against the configured budget; undefined without one. */
  readonly budget:
    | {
        readonly maxBytes: number
        /** undefined when INFO is refused. */
        readonly usedBytes: number | undefined
        readonly ratio: number | undefined
        readonly exceeded: boolean
      }
    | undefined
  readonly namespaces: Readonly<Record<string, NamespaceReport>>
  readonly warnings: readonly InspectWarning[]
}

/** What the caller of the core inspection provides: a cache, or inspectRedis() for a bare store. */
export interface InspectContext {
  readonly service: string | undefined
  readonly budget: { readonly maxBytes: number } | undefined
  /** Epoch ms, for `takenAt`. */
  now(): number
}

/**
 * Inspects a Redis store without a cache, as a command-line tool would: the store is wrapped in its own timeouts
 * (no circuit breaker: one inspection is a handful of calls). Connect the store first, or the first call waits
 * for the connection attempt within `timeout`.
 * @throws L2Error, L2TimeoutError when Redis is down or does not answer in time; InvalidOptionError for bad options.
 * @example
 * const store = redisStore({ url: 'redis://127.0.0.1:6379' })
 * const report = await inspectRedis(store, { namespaces: [{ name: 'product', prefix: 'catalog:product:v2:' }] })
 * await store.close()
 */
export async function inspectRedis(store: L2Store, options: InspectRedisOptions = {}): Promise<RedisReport> {
  if (store === null || typeof store !== 'object' || typeof store.info !== 'function') {
    throw new InvalidOptionError(
      'inspectRedis store',
      store,
      "an L2 store such as redisStore({ url: 'redis://…' })",
    )
  }
  if (options === null || typeof options !== 'object') {
    throw new InvalidOptionError('inspectRedis options', options, 'an object such as { namespaces: [...] }')
  }
  const timeoutMs = parseDuration(options.timeout ?? 1_000, 'inspectRedis.timeout')
  if (timeoutMs < 1) throw new InvalidOptionError('inspectRedis.timeout', options.timeout, 'at least 1 ms')
  const targets = options.namespaces ?? []
  if (
    !Array.isArray(targets) ||
    targets.some((t: InspectTarget) => !isTarget(t)) ||
    new Set(targets.map((t: InspectTarget) => t.name)).size !== targets.length
  ) {
    throw new InvalidOptionError(
      'inspectRedis.namespaces',
      targets,
      "an array of { name, prefix, critical? } with distinct names, e.g. [{ name: 'product', prefix: 'catalog:product:v1:' }]",
    )
  }
  const budget = options.budget
  if (budget !== undefined && (!Number.isSafeInteger(budget?.maxBytes) || budget.maxBytes < 1)) {
    throw new InvalidOptionError(
      'inspectRedis.budget.maxBytes',
      budget?.maxBytes,
      'a positive whole number of bytes',
    )
  }
  const guard = new L2Guard(store, timeoutMs, { failureThreshold: Number.MAX_SAFE_INTEGER, breakMs: 1 })
  // A store nobody connected yet: start now; the first call waits for this attempt (within its timeout).
  if (store.status === 'connecting') store.connect().catch(() => {})
  return inspectL2(guard, targets, options, { service: undefined, budget, now: Date.now })
}

/** The inspection itself, on a guarded store: every call is bounded by the guard's timeout. */
export async function inspectL2(
  l2: L2Guard,
  targets: readonly InspectTarget[],
  options: InspectOptions,
  context: InspectContext,
): Promise<RedisReport> {
  const settings = resolveInspectOptions(options)
  const takenAt = context.now()
  const started = performance.now()
  // Issued together: one round trip. A refusal resolves; Redis down or slow rejects with the guard's typed error.
  const [memoryInfo, statsInfo, config] = await Promise.all([
    l2.info('memory'),
    l2.info('stats'),
    l2.configGet('maxmemory*'),
  ])
  const used = infoNumber(memoryInfo, 'used_memory', 'INFO memory')
  const maxmemory = configReading(config, 'maxmemory', memoryInfo, 'maxmemory', Number)
  const policy = configReading(config, 'maxmemory-policy', memoryInfo, 'maxmemory_policy', String)
  const evictedKeys = infoNumber(statsInfo, 'evicted_keys', 'INFO stats')
  const expiredKeys = infoNumber(statsInfo, 'expired_keys', 'INFO stats')
  const usedRatio =
    used.known && maxmemory.known && maxmemory.value > 0 ? used.value / maxmemory.value : undefined

  const namespaces: Record<string, NamespaceReport> = {}
  const deadline = started + settings.maxTimeMs
  for (let i = 0; i < targets.length; i++) {
    const target = targets[i]!
    // Each namespace gets an equal share of the time left, so a slow one cannot starve those after it.
    const share = Math.max(0, deadline - performance.now()) / (targets.length - i)
    namespaces[target.name] = await sampleNamespace(l2, target, settings, performance.now() + share)
  }

  let budget: RedisReport['budget']
  if (context.budget !== undefined) {
    const { maxBytes } = context.budget
    const usedBytes = used.known ? used.value : undefined
    budget = {
      maxBytes,
      usedBytes,
      ratio: usedBytes === undefined ? undefined : usedBytes / maxBytes,
      exceeded: usedBytes !== undefined && usedBytes > maxBytes,
    }
    if (budget.exceeded && usedBytes !== undefined && channels.l2Budget.hasSubscribers) {
      channels.l2Budget.publish({ service: context.service, usedBytes, maxBytes })
    }
  }
  const report: RedisReport = {
    takenAt,
    durationMs: performance.now() - started,
    memory: { used, maxmemory, policy, usedRatio },
    stats: { evictedKeys, expiredKeys },
    budget,
    namespaces,
    warnings: [],
  }
  return deepFreeze({ ...report, warnings: warningsFor(report) })
}

interface ResolvedInspectOptions {
  readonly sampleKeys: number
  readonly maxTimeMs: number
  readonly scanCount: number
  readonly ttlBoundsMs: readonly number[]
}

function resolveInspectOptions(options: InspectOptions): ResolvedInspectOptions {
  if (options === null || typeof options !== 'object') {
    throw new InvalidOptionError('inspect options', options, 'an object such as { sampleKeys: 1000 }')
  }
  const whole = (name: 'sampleKeys' | 'scanCount', fallback: number): number => {
    const value = options[name] ?? fallback
    if (!Number.isSafeInteger(value) || value < 1) {
      throw new InvalidOptionError(`inspect.${name}`, options[name], 'a positive whole number')
    }
    return value
  }
  const maxTimeMs = parseDuration(options.maxTime ?? 2_000, 'inspect.maxTime')
  if (maxTimeMs < 1) throw new InvalidOptionError('inspect.maxTime', options.maxTime, 'at least 1 ms')
  const buckets = options.ttlBuckets ?? ['10s', '1m', '10m', '1h', '1d']
  if (!Array.isArray(buckets)) {
    throw new InvalidOptionError(
      'inspect.ttlBuckets',
      buckets,
      "an ascending array of durations such as ['1m', '1h']",
    )
  }
  const ttlBoundsMs = buckets.map((b: Duration, i) => parseDuration(b, `inspect.ttlBuckets[${i}]`))
  if (ttlBoundsMs.some((ms, i) => ms < 1 || (i > 0 && ms <= ttlBoundsMs[i - 1]!))) {
    throw new InvalidOptionError(
      'inspect.ttlBuckets',
      buckets,
      'strictly ascending durations of at least 1 ms',
    )
  }
  return {
    sampleKeys: whole('sampleKeys', 1_000),
    maxTimeMs,
    scanCount: whole('scanCount', 1_000),
    ttlBoundsMs,
  }
}

/** Keys measured per round trip (MEMORY USAGE and PTTL for each, pipelined). */
const MEASURE_BATCH = 100

/**
 * Scans the prefix until the keyspace ends, `sampleKeys` keys were seen, or the time share runs out; then reads
 * the size and TTL of up to `sampleKeys` of them. SCAN returns keys in hash order, so the first ones seen are a
 * fair sample; the keyspace walked so far is read off the cursor (see `scanCoverage`).
 */
async function sampleNamespace(
  l2: L2Guard,
  target: InspectTarget,
  settings: ResolvedInspectOptions,
  deadline: number,
): Promise<NamespaceReport> {
  const pattern = target.prefix.replace(/[*?[\]\\]/g, '\\$&') + '*'
  // A Set: SCAN may return a key twice while Redis resizes its table.
  const seen = new Set<string>()
  let cursor = '0'
  let stoppedBy: NamespaceReport['stoppedBy'] = 'complete'
  do {
    const step = await l2.scan(pattern, cursor, settings.scanCount)
    cursor = step.cursor
    for (const key of step.keys) seen.add(key)
    if (cursor === '0') break
    if (seen.size >= settings.sampleKeys) stoppedBy = 'sample-size'
    else if (performance.now() >= deadline) stoppedBy = 'time'
  } while (stoppedBy === 'complete')
  // A cluster store's cursor names the master it is on: the store reads it.
  const coverage = stoppedBy === 'complete' ? 1 : (l2.store.scanCoverage?.(cursor) ?? scanCoverage(cursor))
  const keys = [...seen]
  const entriesSeen = keys.filter((key) => isEntryKey(key, target.prefix)).length
  const sample = keys.slice(0, settings.sampleKeys)

  let source: NamespaceReport['bytes']['source'] = 'MEMORY USAGE'
  const buckets = settings.ttlBoundsMs.map(() => 0)
  buckets.push(0)
  let sampled = 0
  let noExpiry = 0
  let total = 0
  let largest = 0
  // At least one batch even past the deadline (the scan may have used it all), so sizes are never blind.
  for (let i = 0; i < sample.length && (i === 0 || performance.now() < deadline); i += MEASURE_BATCH) {
    const batch = sample.slice(i, i + MEASURE_BATCH)
    const [sizes, ttls] = await Promise.all([measure(l2, batch, source), l2.ttlMany(batch)])
    if (!sizes.ok) {
      // MEMORY refused (an ACL): value lengths instead, for this batch and the rest.
      source = 'STRLEN'
      i -= MEASURE_BATCH
      continue
    }
    for (let k = 0; k < batch.length; k++) {
      const size = sizes.value[k]
      const ttl = ttls[k]!
      // Gone since the scan (expired, evicted, deleted): not part of the sample.
      if (size === null || size === undefined || ttl === -2) continue
      sampled++
      total += size
      largest = Math.max(largest, size)
      if (ttl < 0) noExpiry++
      else buckets[bucketOf(ttl, settings.ttlBoundsMs)]!++
    }
  }
  const estimatedKeys = coverage > 0 ? Math.round(seen.size / coverage) : seen.size
  const average = sampled > 0 ? total / sampled : 0
  return {
    prefix: target.prefix,
    critical: target.critical ?? false,
    estimated: stoppedBy !== 'complete' || sampled < seen.size,
    stoppedBy,
    coverage,
    seen: seen.size,
    keys: estimatedKeys,
    entries: coverage > 0 ? Math.round(entriesSeen / coverage) : entriesSeen,
    sampled,
    bytes: { source, sampled: total, average, largest, estimatedTotal: Math.round(average * estimatedKeys) },
    ttl: {
      buckets: buckets.map((keys, b) => ({ upToMs: settings.ttlBoundsMs[b] ?? null, keys })),
      noExpiry,
    },
  }
}

/** Sizes of `keys` from MEMORY USAGE, or from STRLEN once MEMORY was refused (a set or stream then counts null). */
async function measure(
  l2: L2Guard,
  keys: readonly string[],
  source: NamespaceReport['bytes']['source'],
): Promise<L2Answer<(number | null)[]>> {
  if (source === 'MEMORY USAGE') return l2.memoryUsage(keys)
  // STRLEN answers 0 for a missing key; PTTL (-2) tells those apart. Non-strings (tag sets) count as 0 bytes.
  return { ok: true, value: (await l2.strlen(keys)).map((length) => length ?? 0) }
}

function bucketOf(ttlMs: number, bounds: readonly number[]): number {
  let b = 0
  while (b < bounds.length && ttlMs >= bounds[b]!) b++
  return b
}

function infoNumber(
  info: L2Answer<Readonly<Record<string, string>>>,
  field: string,
  source: 'INFO memory' | 'INFO stats',
): Reading<number> {
  if (!info.ok) return { known: false, reason: `${source} refused: ${info.refused}` }
  const value = Number(info.value[field])
  if (info.value[field] === undefined || !Number.isFinite(value)) {
    return { known: false, reason: `${source} has no numeric ${field} field` }
  }
  return { known: true, value, source }
}

/**
 * A maxmemory setting from CONFIG GET, or from INFO memory when CONFIG is refused: managed services (ElastiCache,
 * Memorystore) and ACLs often refuse CONFIG but still report `maxmemory` and `maxmemory_policy` in INFO.
 */
function configReading<T>(
  config: L2Answer<Readonly<Record<string, string>>>,
  name: string,
  memoryInfo: L2Answer<Readonly<Record<string, string>>>,
  infoField: string,
  parse: (text: string) => T,
): Reading<T> {
  if (config.ok && config.value[name] !== undefined) {
    return { known: true, value: parse(config.value[name]), source: 'CONFIG GET' }
  }
  if (memoryInfo.ok && memoryInfo.value[infoField] !== undefined) {
    return { known: true, value: parse(memoryInfo.value[infoField]), source: 'INFO memory' }
  }
  const configWhy = config.ok ? `CONFIG GET returned no ${name}` : `CONFIG GET refused: ${config.refused}`
  const infoWhy = memoryInfo.ok
    ? `INFO memory has no ${infoField}`
    : `INFO memory refused: ${memoryInfo.refused}`
  return { known: false, reason: `${configWhy}; ${infoWhy}` }
}

/** Every warning the report's readings call for, each a sentence that says what to change. */
function warningsFor(report: RedisReport): InspectWarning[] {
  const warnings: InspectWarning[] = []
  const { maxmemory, policy, used, usedRatio } = report.memory
  const critical = Object.entries(report.namespaces)
    .filter(([, ns]) => ns.critical)
    .map(([name]) => name)
  if (!maxmemory.known || !policy.known) {
    const reason = !policy.known ? policy.reason : !maxmemory.known ? maxmemory.reason : ''
    warnings.push({
      code: 'policy-unknown',
      message:
        `Could not read Redis's maxmemory and maxmemory-policy (${reason}), so eviction risks were not checked` +
        (critical.length > 0
          ? ` for the critical namespaces ${critical.map((n) => `"${n}"`).join(', ')}`
          : '') +
        '. Allow the Redis user CONFIG GET or INFO (ACL: +config|get or +info), or check the policy by hand.',
    })
  }
  const unbounded = maxmemory.known && maxmemory.value === 0
  if (unbounded) {
    warnings.push({
      code: 'no-memory-limit',
      message:
        'Redis has no memory limit (maxmemory 0): it grows until the machine runs out of memory and the process is ' +
        'killed, losing every key. Set maxmemory below the memory available to Redis (CONFIG SET maxmemory 2gb, ' +
        'and in redis.conf).',
    })
  }
  if (policy.known && !unbounded) {
    const limit = maxmemory.known ? ` (${formatBytes(maxmemory.value)})` : ''
    if (policy.value === 'noeviction') {
      warnings.push({
        code: 'noeviction',
        message:
          `Redis refuses writes once it reaches maxmemory${limit} under maxmemory-policy noeviction: values loaded ` +
          'then are not cached, and set(), write() and invalidations fail. Raise maxmemory and alert before used ' +
          'memory reaches it, or move the namespaces that are not critical to a Redis with allkeys-lru.',
      })
    }
    for (const name of critical) {
      const allKeys = policy.value.startsWith('allkeys-')
      if (!allKeys && !policy.value.startsWith('volatile-')) continue
      warnings.push({
        code: 'critical-evictable',
        namespace: name,
        message:
          `Namespace "${name}" is critical, but its Redis ` +
          (allKeys
            ? `evicts any key when memory is full (maxmemory-policy ${policy.value}): its entries, version ` +
              'counters, tag sets and generation counter can vanish silently, '
            : `evicts keys that have a TTL when memory is full (maxmemory-policy ${policy.value}), and its ` +
              'entries, version counters and tag sets all have one: they can vanish silently, ') +
          'so invalidated or older values can be served again. Keep critical namespaces on a Redis with ' +
          'maxmemory-policy noeviction and enough maxmemory, or declare the namespace critical: false if losing ' +
          'its keys is acceptable.',
      })
    }
  }
  if (usedRatio !== undefined && usedRatio >= 0.9 && used.known && maxmemory.known) {
    const then =
      policy.known && policy.value === 'noeviction'
        ? 'refuses writes'
        : `evicts keys${policy.known ? ` (${policy.value})` : ''}`
    warnings.push({
      code: 'near-memory-limit',
      message:
        `Redis uses ${Math.round(usedRatio * 100)}% of its maxmemory (${formatBytes(used.value)} of ` +
        `${formatBytes(maxmemory.value)}); at the limit it ${then}. Raise maxmemory, shorten TTLs, or find the ` +
        'namespaces that grew (bytes.estimatedTotal).',
    })
  }
  const evicted = report.stats.evictedKeys
  if (evicted.known && evicted.value > 0) {
    warnings.push({
      code: 'keys-evicted',
      message:
        `Redis has evicted ${evicted.value} keys since it started (INFO stats evicted_keys): it ran out of memory. ` +
        'Raise maxmemory or shorten TTLs; a critical namespace on this Redis may have lost keys.',
    })
  }
  const budget = report.budget
  if (budget?.exceeded === true && budget.usedBytes !== undefined) {
    warnings.push({
      code: 'budget-exceeded',
      message:
        `Redis uses ${formatBytes(budget.usedBytes)}, over the budget of ${formatBytes(budget.maxBytes)} ` +
        '(l2Budget.maxBytes). Shorten TTLs or find the namespaces that grew (bytes.estimatedTotal), or raise the ' +
        'budget if the growth is expected.',
    })
  }
  return warnings
}

/** `512.0 MiB`. */
export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let value = bytes
  let unit = 0
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024
    unit++
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${units[unit]}`
}

function isTarget(value: unknown): value is InspectTarget {
  if (value === null || typeof value !== 'object') return false
  const t = value as Record<string, unknown>
  return (
    typeof t.name === 'string' &&
    typeof t.prefix === 'string' &&
    t.prefix.length > 0 &&
    (t.critical === undefined || typeof t.critical === 'boolean')
  )
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    for (const child of Object.values(value)) deepFreeze(child)
    Object.freeze(value)
  }
  return value
}
