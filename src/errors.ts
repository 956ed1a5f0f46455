// Every error stratacache throws or emits, with a stable `code` per class. docs/errors.md lists them all.
import { formatDuration } from './core/format-duration.js'

/** Base class of every stratacache error. Branch on `code`, never on the message text. */
export abstract class StrataError extends Error {
  abstract readonly code: string
  override get name(): string {
    return this.constructor.name
  }
}

function describe(value: unknown): string {
  if (typeof value === 'string') return `"${value}" (string)`
  if (typeof value === 'bigint') return `${value}n (bigint)`
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'an array'
  if (typeof value === 'object') return 'an object'
  if (typeof value === 'function') return 'a function'
  if (typeof value === 'symbol') return `${value.toString()} (symbol)`
  return `${value as number | boolean | undefined} (${typeof value})`
}

/** A configuration option is missing or has a value that cannot work. Thrown at construction. */
export class InvalidOptionError extends StrataError {
  /** `ERR_STRATA_UNKNOWN_OPTION` for its subclass `UnknownOptionError`. */
  readonly code: 'ERR_STRATA_INVALID_OPTION' | 'ERR_STRATA_UNKNOWN_OPTION' = 'ERR_STRATA_INVALID_OPTION'
  constructor(
    readonly option: string,
    readonly value: unknown,
    readonly expected: string,
    options?: ErrorOptions,
  ) {
    super(`Invalid option \`${option}\`: expected ${expected}, got ${describe(value)}.`, options)
  }
}

/**
 * An options object holds a key stratacache does not take, most often a misspelt one: ignored, it would turn a
 * feature off without a word. Thrown at construction (and by `updatePolicy()`), with the closest known key when one
 * is close.
 */
export class UnknownOptionError extends InvalidOptionError {
  override readonly code = 'ERR_STRATA_UNKNOWN_OPTION'
  constructor(
    /** Who was given the object, e.g. `createCache()` or `namespace "products"`. */
    readonly where: string,
    /** The key's path from there, e.g. `timeouts.sfot`. */
    readonly path: string,
    /** The key's path as the other option errors of that place name it (`option`), e.g. `products.timeouts.sfot`. */
    option: string,
    value: unknown,
    /** The keys this object takes. */
    readonly known: readonly string[],
    /** The closest known key's path, e.g. `timeouts.soft`; undefined when none is close. */
    readonly suggestion: string | undefined,
    /**
     * The object's own path (`timeouts`; '' for the top level), a sentence to add (where the setting belongs), and
     * `elsewhere`: a sentence saying where the setting is taken instead, said in place of the list of known keys.
     */
    context: {
      readonly group: string
      readonly hint?: string | undefined
      readonly elsewhere?: string | undefined
    },
  ) {
    const { group, hint, elsewhere } = context
    super(option, value, `one of ${known.join(', ')}`)
    // The list of known keys only when nothing is close and nothing says where the setting lives: next to a
    // suggestion it is noise (37 namespace options).
    this.message =
      `Unknown option \`${path}\` in ${where}. ` +
      (suggestion !== undefined
        ? `Did you mean \`${suggestion}\`?`
        : elsewhere !== undefined
          ? elsewhere
          : `${group === '' ? 'It takes' : `\`${group}\` takes`} ${known.map((k) => `\`${k}\``).join(', ')}.`) +
      (hint === undefined ? '' : ` ${hint}`)
  }
}

/** Two namespaces with one name in one cache would share keys; the second is refused. */
export class DuplicateNamespaceError extends StrataError {
  readonly code = 'ERR_STRATA_DUPLICATE_NAMESPACE'
  constructor(readonly namespace: string) {
    super(
      `Namespace "${namespace}" is already declared in this cache. ` +
        'Declare each namespace once and share the returned object, or pick another name.',
    )
  }
}

/** Why a key parameter was refused. */
export type KeyParamProblem =
  'missing' | 'extra' | 'empty' | 'not-scalar' | 'not-finite' | 'lone-surrogate' | 'wrong-type'

const problemText: Record<KeyParamProblem, string> = {
  missing: 'is missing',
  extra: 'is not declared in the key template or `dimensions`',
  empty: 'is an empty string',
  'not-scalar': 'must be a string, number, bigint or boolean',
  'not-finite': 'must be a finite number',
  'lone-surrogate': 'contains a lone UTF-16 surrogate, which has no stable byte encoding',
  'wrong-type': 'is not of the type the namespace declares in `params`',
}

/** A parameter passed to build a key is missing, undeclared, empty or of the wrong type. */
export class InvalidKeyParamError extends StrataError {
  readonly code = 'ERR_STRATA_INVALID_KEY_PARAM'
  constructor(
    readonly namespace: string,
    readonly param: string,
    readonly problem: KeyParamProblem,
    readonly value: unknown,
    readonly expectedParams: readonly string[],
    /** With `wrong-type`: the type `params` declares for it. */
    readonly declaredType?: string,
  ) {
    super(
      `Key parameter \`${param}\` of namespace "${namespace}" ` +
        (problem === 'wrong-type'
          ? `must be a ${declaredType} (\`params\` declares it so)`
          : problemText[problem]) +
        (problem === 'missing' || problem === 'extra' || problem === 'empty'
          ? ''
          : ` (got ${describe(value)})`) +
        `. The namespace expects exactly: ${expectedParams.map((p) => `\`${p}\``).join(', ') || 'no parameters'}.`,
    )
  }
}

/** A method was called with an argument of the wrong kind (not key parameters). */
export class InvalidArgumentError extends StrataError {
  readonly code = 'ERR_STRATA_INVALID_ARGUMENT'
  constructor(
    readonly argument: string,
    readonly value: unknown,
    readonly expected: string,
  ) {
    super(`Invalid argument \`${argument}\`: expected ${expected}, got ${describe(value)}.`)
  }
}

/** The user's `load` (or `loadMany`) threw or rejected. The original error is `cause`. */
export class LoaderError extends StrataError {
  readonly code = 'ERR_STRATA_LOADER_FAILED'
  constructor(
    readonly namespace: string,
    readonly key: string,
    options: ErrorOptions,
  ) {
    super(
      `Loader of namespace "${namespace}" failed for key "${key}": ${errorMessage(options.cause)}. ` +
        'The original error is `cause`; nothing was cached, and the next get calls the loader again.',
      options,
    )
  }
}

/** The loader did not settle within the namespace's hard timeout; its `signal` was aborted. */
export class LoaderTimeoutError extends StrataError {
  readonly code = 'ERR_STRATA_LOADER_TIMEOUT'
  constructor(
    readonly namespace: string,
    readonly key: string,
    readonly timeoutMs: number,
  ) {
    super(
      `Loader of namespace "${namespace}" did not settle within ${formatDuration(timeoutMs)} for key "${key}"; its signal was ` +
        'aborted. Raise `timeouts.hard` on the namespace, or allow stale data with `staleFor` so a stale value can ' +
        'answer instead.',
    )
  }
}

/** The namespace's source limit (`source.maxConcurrent` / `source.maxPerSecond`) refused or timed out a load. */
export class SourceBusyError extends StrataError {
  readonly code = 'ERR_STRATA_SOURCE_BUSY'
  constructor(
    readonly namespace: string,
    readonly reason: 'concurrency' | 'rate',
    readonly waitedMs: number,
  ) {
    super(
      `The source of namespace "${namespace}" is at its ${reason === 'rate' ? 'loads-per-second' : 'concurrent-load'} ` +
        `limit${waitedMs > 0 ? ` (waited ${formatDuration(waitedMs)})` : ''}. Raise \`source.${reason === 'rate' ? 'maxPerSecond' : 'maxConcurrent'}\`, ` +
        "allow a longer `source.maxWait`, or set `source.overflow: 'stale'` with `staleFor` to answer from stale data.",
    )
  }
}

/** `loadMany` returned something other than one result per requested key. */
export class LoadManyResultError extends StrataError {
  readonly code = 'ERR_STRATA_LOAD_MANY_RESULT'
  constructor(
    readonly namespace: string,
    readonly expectedLength: number,
    readonly actual: unknown,
  ) {
    super(
      `loadMany of namespace "${namespace}" must resolve to an array with one entry per requested key ` +
        `(${expectedLength}, in the same order; use undefined for a key that does not exist), got ${describe(actual)}` +
        (Array.isArray(actual) ? ` of length ${actual.length}` : '') +
        '.',
    )
  }
}

/** The namespace has no `load` and the value was neither in L1 nor in L2. */
export class NoLoaderError extends StrataError {
  readonly code = 'ERR_STRATA_NO_LOADER'
  constructor(
    readonly namespace: string,
    readonly key: string,
  ) {
    super(
      `Namespace "${namespace}" has no \`load\` function and "${key}" is not cached. ` +
        'Declare `load` on the namespace, use `peek` to read without loading, or `set` the value first.',
    )
  }
}

/** `write()` was called on a namespace that declares no `write` function. */
export class NoWriterError extends StrataError {
  readonly code = 'ERR_STRATA_NO_WRITER'
  constructor(readonly namespace: string) {
    super(
      `Namespace "${namespace}" has no \`write\` function, so write() cannot reach the source. Declare ` +
        '`write` on the namespace, or use set() to change only the cache.',
    )
  }
}

/** The namespace's `write` function threw or rejected: the source may not have the value; the cache is unchanged. */
export class WriteError extends StrataError {
  readonly code = 'ERR_STRATA_WRITE_FAILED'
  constructor(
    readonly namespace: string,
    readonly key: string,
    options: ErrorOptions,
  ) {
    super(
      `Write to the source of namespace "${namespace}" failed for key "${key}": ${errorMessage(options.cause)}. ` +
        'The cache was left unchanged; the original error is `cause`.',
      options,
    )
  }
}

/**
 * A write reached the source and L2, but its invalidation could not be announced on the bus (after a retry): other
 * processes may serve their L1 copy of the old value until it expires.
 */
export class InvalidationNotSentError extends StrataError {
  readonly code = 'ERR_STRATA_INVALIDATION_NOT_SENT'
  constructor(
    readonly namespace: string,
    readonly what: string,
    options: ErrorOptions,
  ) {
    super(
      `Namespace "${namespace}": ${what} was stored, but the other processes could not be told to drop their L1 ` +
        `copies (${errorMessage(options.cause)}): they may serve the old value until it expires (at most its TTL, ` +
        'or `l1.ttl`). Check the Redis connection; repeating the write is safe.',
      options,
    )
  }
}

/**
 * Regions: a write or invalidation changed this region (its L2, and the processes through the bus), but could not be
 * appended to the region's outbox, so the other regions will not hear of it.
 */
export class RegionOutboxError extends StrataError {
  readonly code = 'ERR_STRATA_REGION_OUTBOX'
  constructor(
    readonly namespace: string,
    readonly what: string,
    readonly region: string,
    options: ErrorOptions,
  ) {
    super(
      `Namespace "${namespace}": ${what} was applied in region ${region}, but could not be appended to its outbox ` +
        `(${errorMessage(options.cause)}): the other regions may serve the old value until it expires. Check this ` +
        "region's Redis; repeating the operation is safe.",
      options,
    )
  }
}

/**
 * A source write did not settle in time; its signal was aborted. `call` says whose:
 * - `'write-behind'`: a flush's source call (`write`, or `writeMany` for a batch) passed `writeBehind.writeTimeout`
 *   (or the end of the flusher's lease). The attempt counts as failed and the write is retried.
 * - `'write'`: the source write of `ns.write()` passed the namespace's `timeouts.write`. `write()` gave up; the key's
 *   cached value was dropped, since the source may still have taken the write.
 *
 * Carries no key: it ends up in logs and dead letters, and keys may carry personal data.
 */
export class WriteTimeoutError extends StrataError {
  readonly code = 'ERR_STRATA_WRITE_TIMEOUT'
  constructor(
    readonly namespace: string,
    readonly timeoutMs: number,
    readonly call: 'write-behind' | 'write' = 'write-behind',
  ) {
    super(
      call === 'write'
        ? `The source of namespace "${namespace}" did not take a write within ${formatDuration(timeoutMs)}; its signal ` +
            'was aborted and write() gave up. A source that ignored the signal may still apply it, so the cached value ' +
            'was dropped (and is dropped again if the write succeeds later): reads load what the source holds. Raise ' +
            '`timeouts.write` on the namespace if the source is this slow.'
        : `The source of namespace "${namespace}" did not take a write-behind write within ${formatDuration(timeoutMs)}; its signal ` +
            'was aborted and the write will be retried (a source that ignored the signal may still apply it: check the ' +
            'idempotency key). Raise `writeBehind.writeTimeout` if the source is this slow, and `claimAfter` above it.',
    )
  }
}

/**
 * A redaction path leads into a value that redaction cannot walk safely (a `Map`, a `Set`, a typed array, a
 * promise...). The value is not cached: passing it through would keep the field the path names.
 */
export class RedactionError extends StrataError {
  readonly code = 'ERR_STRATA_REDACT'
  constructor(
    /** The `redact` option, e.g. `customer.redact`. */
    readonly option: string,
    /** Where in the value, in path syntax: `cards[]`, `user`, or '' for the value itself. */
    readonly path: string,
    /** What was found there, e.g. `a Map`. */
    readonly found: string,
  ) {
    super(
      `Cannot apply \`${option}\`: ${path === '' ? 'the value' : `the value at "${path}"`} is ${found}, which ` +
        'redaction cannot walk, so the value was not cached. Return plain objects, arrays or class instances ' +
        'along redacted paths (convert Maps and Sets in the loader).',
    )
  }
}

/**
 * Write-behind: `write()` was refused because the namespace's queue in Redis (writes not yet flushed, dead letters
 * included) holds `writeBehind.maxQueued` writes. Nothing was queued and the cache is unchanged.
 */
export class WriteQueueFullError extends StrataError {
  readonly code = 'ERR_STRATA_WRITE_QUEUE_FULL'
  constructor(
    readonly namespace: string,
    readonly queued: number,
    readonly maxQueued: number,
  ) {
    super(
      `The write-behind queue of namespace "${namespace}" holds ${queued} writes (queued and dead letters), at its ` +
        `limit \`writeBehind.maxQueued\` (${maxQueued}): this write was not queued and the cache is unchanged. The ` +
        'source is down or slower than the writes (see `writeQueue()`), or dead letters wait to be replayed or ' +
        'deleted. Retry later, or raise `writeBehind.maxQueued` if Redis has the memory.',
    )
  }
}

/** A value could not be serialized for L2 (for example a BigInt or a cycle with the JSON serializer). */
export class SerializationError extends StrataError {
  readonly code = 'ERR_STRATA_SERIALIZE'
  constructor(
    readonly namespace: string,
    readonly key: string,
    options: ErrorOptions,
  ) {
    super(
      `Value for "${key}" in namespace "${namespace}" could not be serialized: ${errorMessage(options.cause)}. ` +
        'Return plain JSON data from the loader, or configure a `serializer` that handles this type.',
      options,
    )
  }
}

/** Bytes read from L2 are not a stratacache envelope this version can read. Reported as an event; the read is a miss. */
export class DecodeError extends StrataError {
  readonly code = 'ERR_STRATA_DECODE'
  constructor(
    readonly key: string,
    readonly reason: string,
    options?: ErrorOptions,
  ) {
    super(
      `Value at "${key}" in L2 could not be decoded (${reason}); it was treated as a miss and will be overwritten.`,
      options,
    )
  }
}

/**
 * What each L2 operation does, in the words of someone using the cache: error messages and log lines print these,
 * while the errors' `operation` field keeps the internal name (`getVersion`) for programs. The keys are the
 * operation names L2Guard passes to its `#run`, plus `connect` and `connection` (the store's own connection);
 * test/unit/l2-operations.test.ts fails when a guard operation has no phrase here.
 */
export const L2_OPERATIONS: Readonly<Record<string, string>> = Object.freeze({
  get: 'reading an entry from Redis',
  getMany: 'reading entries from Redis',
  set: 'writing an entry to Redis',
  setMany: 'writing entries to Redis',
  delete: 'deleting keys from Redis',
  getVersion: "reading the namespace's generation (its invalidateAll counter) from Redis",
  readGeneration:
    "reading the namespace's generation from Redis, with its check that Redis was not restored from a snapshot",
  readOrigins:
    "reading which servers hold the namespace's entries, to check that no node of the Redis Cluster was restored from a snapshot",
  serverIds: 'reading which servers serve the Redis Cluster now (INFO on each master)',
  raiseForRestores: "advancing the namespace's generation in Redis past entries a restored node brought back",
  recordOrigins: "recording which servers hold the namespace's entries in Redis",
  increment: "advancing the namespace's generation in Redis (invalidateAll)",
  bumpVersion: "advancing the entry's version in Redis before a write",
  readFence: "reading the entry's version before a load from Redis",
  storeFenced: 'storing a loaded value in Redis',
  markInvalidated: 'marking entries invalidated in Redis',
  addToSet: 'adding an entry to its tag sets in Redis',
  rename: "setting a tag's set aside in Redis (invalidateTag)",
  sscan: "listing a tag's entries in Redis (invalidateTag)",
  tryLock: "taking a key's load lock in Redis",
  acquireLock: "taking a key's load lock in Redis",
  unlock: "releasing a key's load lock in Redis (or its write-behind mark)",
  markPending: "marking an entry's write-behind write as queued in Redis",
  extendLock: "extending a key's load lock in Redis",
  info: 'reading INFO from Redis',
  configGet: 'reading the configuration from Redis (CONFIG GET)',
  memoryUsage: "reading keys' memory usage from Redis",
  strlen: "reading values' sizes from Redis",
  ttlMany: "reading keys' time to live from Redis",
  serverTime: "reading Redis's clock (TIME), to agree with other processes on when entries expire",
  scan: 'scanning keys in Redis',
  queueAppend: 'queueing a write-behind write in Redis',
  queueCreateGroup: "creating the write-behind queue's consumer group in Redis",
  queueRead: 'reading queued write-behind writes from Redis',
  queuePending: 'listing unacknowledged write-behind writes in Redis',
  queueClaim: "taking over another process's write-behind writes in Redis",
  queueAck: 'acknowledging flushed write-behind writes in Redis',
  queueGet: 'reading a queued write-behind write from Redis',
  queueSize: 'counting the write-behind queue in Redis',
  queueDeleteConsumer: 'removing a write-behind consumer from Redis',
  queueDropped: "checking a peer region's outbox for entries trimmed before they were relayed, in Redis",
  queueSettleDropped: "marking a peer region's trimmed outbox entries as handled, in Redis",
  publish: 'telling the other processes through Redis (PUBLISH)',
  subscribe: "subscribing to the other processes' invalidations in Redis",
  connect: 'connecting to Redis',
  connection: 'the connection to Redis',
})

/** An L2 operation in the user's words (`L2_OPERATIONS`); an operation without a phrase is named as it is. */
export function describeL2Operation(operation: string): string {
  return Object.hasOwn(L2_OPERATIONS, operation)
    ? L2_OPERATIONS[operation]!
    : `the Redis call \`${operation}\``
}

/** The phrase with a capital first letter, to start a sentence. */
function sentence(operation: string): string {
  const phrase = describeL2Operation(operation)
  return phrase.charAt(0).toUpperCase() + phrase.slice(1)
}

/** An L2 (Redis) operation did not settle within `timeouts.l2`. Reported as an event; reads fall through. */
export class L2TimeoutError extends StrataError {
  readonly code = 'ERR_STRATA_L2_TIMEOUT'
  constructor(
    /** The internal operation name, e.g. `get` or `getVersion` (see `L2_OPERATIONS` for what each does). */
    readonly operation: string,
    readonly timeoutMs: number,
  ) {
    super(
      `${sentence(operation)} did not answer within ${formatDuration(timeoutMs)} (\`timeouts.l2\`). Reads fall ` +
        'through to the loader; writes reject. Raise `timeouts.l2` in createCache() if Redis is far away or busy.',
    )
  }
}

/**
 * An L2 (Redis) call failed: connection lost, server error. The client's error is `cause`. When Redis answered with
 * an error reply (it is up, but refused this call), `reply` is its kind, e.g. `'OOM'`, `'WRONGTYPE'`, `'NOPERM'`.
 */
export class L2Error extends StrataError {
  readonly code = 'ERR_STRATA_L2_FAILED'
  constructor(
    /** The internal operation name, e.g. `get` or `getVersion` (see `L2_OPERATIONS` for what each does). */
    readonly operation: string,
    options: ErrorOptions,
    readonly reply?: string,
  ) {
    super(
      `${sentence(operation)} failed: ${errorMessage(options.cause)}. Reads fall through to the loader; ` +
        'writes (set, delete, clear) reject so the caller knows L2 may still hold the old value.',
      options,
    )
  }
}

/** L2 calls are skipped because the circuit breaker is open after repeated failures. */
export class L2CircuitOpenError extends StrataError {
  readonly code = 'ERR_STRATA_L2_CIRCUIT_OPEN'
  constructor(
    readonly retryInMs: number,
    /** The internal name of the operation skipped, when known (see `L2_OPERATIONS`). */
    readonly operation?: string,
  ) {
    super(
      `${operation === undefined ? 'Redis was skipped' : `${sentence(operation)} was skipped`}: the circuit ` +
        `breaker is open after repeated failures, and lets one call try Redis again in ${formatDuration(retryInMs)}. ` +
        'Reads fall through to the loader; writes reject.',
    )
  }
}

/**
 * The L2 server is older than stratacache supports (Redis 7.0: `PEXPIRE … GT/NX`). Reported by `cache.connect()`
 * and the logger when the store connects; not an outage (the circuit stays closed).
 */
export class L2UnsupportedError extends StrataError {
  readonly code = 'ERR_STRATA_L2_UNSUPPORTED'
  constructor(
    /** The server's name as it reports it, e.g. `redis`. */
    readonly server: string,
    /** Its version, e.g. `6.2.14`. */
    readonly version: string,
    /** The oldest version supported, e.g. `7.0`. */
    readonly minimum: string,
  ) {
    super(
      `L2 server is ${server} ${version}; stratacache needs Redis ${minimum} or newer (it sends PEXPIRE … GT/NX). ` +
        'Reads still use it, but writes, deletes and tags fail with error replies. Upgrade Redis.',
    )
  }
}

/** `cache.connect()` could not reach L2 in time. The cache still works from L1 and the loader, and keeps reconnecting. */
export class L2UnavailableError extends StrataError {
  readonly code = 'ERR_STRATA_L2_UNAVAILABLE'
  /** Why the last connection attempt failed, e.g. `ECONNREFUSED`, `WRONGPASS`; undefined when none failed yet. */
  readonly reason: string | undefined
  constructor(
    readonly timeoutMs: number,
    options?: ErrorOptions,
    /** The last failed attempt, as the store describes it: its reason and a summary naming the address. */
    failure?: { readonly reason: string; readonly summary: string },
  ) {
    super(
      `L2 did not become ready within ${formatDuration(timeoutMs)}` +
        (failure === undefined ? '' : `: ${failure.summary}`) +
        '. The cache keeps serving from L1 and the loader and reconnects in the background; ' +
        (failure === undefined ? 'check the Redis URL, or ' : '') +
        'catch this error to start without Redis.',
      options,
    )
    this.reason = failure?.reason
  }
}

/** `cache.inspect()` was called on a cache created without `l2`: there is no Redis to inspect. */
export class NoL2Error extends StrataError {
  readonly code = 'ERR_STRATA_NO_L2'
  constructor(readonly operation: string) {
    super(
      `Cannot ${operation}: this cache has no L2 store. Pass \`l2: redisStore({ url })\` to createCache(), or call ` +
        'inspectRedis(store) on a store of its own.',
    )
  }
}

/** An operation was called on a cache after `close()`. */
export class CacheClosedError extends StrataError {
  readonly code = 'ERR_STRATA_CLOSED'
  constructor(readonly operation: string) {
    super(`Cannot ${operation}: the cache was closed. Create a new cache with createCache().`)
  }
}

/** A value passed to `MemoryStore.set` (or cached in L1) is larger than the whole byte budget. */
export class EntryTooLargeError extends StrataError {
  readonly code = 'ERR_STRATA_ENTRY_TOO_LARGE'
  constructor(
    readonly key: string,
    readonly size: number,
    readonly maxBytes: number,
  ) {
    super(
      `Entry "${key}" is ${size} bytes, more than the whole L1 budget \`maxBytes\` (${maxBytes}). It was not stored.`,
    )
  }
}

/** A serialized value is larger than `maxValueBytes`: it is not written to L2 (loads still answer with it). */
export class ValueTooLargeError extends StrataError {
  readonly code = 'ERR_STRATA_VALUE_TOO_LARGE'
  constructor(
    readonly key: string,
    readonly size: number,
    readonly maxBytes: number,
  ) {
    super(
      `Value for "${key}" is ${size} bytes serialized, more than \`maxValueBytes\` (${maxBytes}); it was not ` +
        'written to L2. Cache a smaller value (split it, or drop fields), or raise `maxValueBytes`.',
    )
  }
}

/** Why a value read from L2 was refused as untrusted. */
export type UntrustedValueProblem = 'tampered' | 'unknown-key' | 'unencrypted'

const untrustedText: Record<UntrustedValueProblem, string> = {
  tampered: 'its ciphertext does not open for this key (changed bytes, or copied from another key or tenant)',
  'unknown-key': 'it was encrypted with a key id the key ring does not hold (retired, or not ours)',
  unencrypted: 'it is not encrypted, in a namespace that encrypts everything it writes',
}

/**
 * A value in L2 failed its integrity check. Published on the `stratacache:security` channel; the read was a miss
 * and the value was never returned.
 */
export class UntrustedValueError extends StrataError {
  readonly code = 'ERR_STRATA_UNTRUSTED_VALUE'
  constructor(
    readonly namespace: string,
    readonly key: string,
    readonly problem: UntrustedValueProblem,
    readonly keyId: string | undefined,
  ) {
    super(
      `Value at "${key}" in namespace "${namespace}" was refused: ${untrustedText[problem]}. It was treated as a ` +
        'miss and will be overwritten. Repeated events can mean someone writes to Redis directly, or a key was ' +
        'retired from `encryption.keys` while values written with it still live.',
    )
  }
}

/** The rule of a data classification a namespace declaration broke. */
export type ClassificationRule = 'protection-required' | 'ttl-cap' | 'no-write-behind'

/** A namespace's declaration breaks a rule of its `classification`. Thrown by `cache.namespace()`. */
export class ClassificationError extends StrataError {
  readonly code = 'ERR_STRATA_CLASSIFICATION'
  constructor(
    readonly namespace: string,
    readonly classification: string,
    readonly rule: ClassificationRule,
    detail: string,
  ) {
    super(`Namespace "${namespace}" is classified '${classification}' and breaks rule \`${rule}\`: ${detail}`)
  }
}

/** An administrative purge was asked of a cache without an `audit` sink: purges are refused unless recorded. */
export class AuditSinkRequiredError extends StrataError {
  readonly code = 'ERR_STRATA_AUDIT_SINK_REQUIRED'
  constructor() {
    super(
      'cache.purge() needs an audit sink, so every administrative purge is recorded (who, what, when, why, how ' +
        'many keys). Pass `audit: jsonLinesAuditSink(path)` or `audit: redisStreamAuditSink({ client })` to ' +
        'createCache(). Code paths that drop entries as part of normal work use ns.clear() or invalidateTag().',
    )
  }
}

/** The audit sink could not record a purge. Before the purge: nothing was purged. After: see `purged`. */
export class AuditWriteError extends StrataError {
  readonly code = 'ERR_STRATA_AUDIT_WRITE'
  constructor(
    readonly purgeId: string,
    /** Whether the purge itself ran: false when its request could not be recorded (then nothing was purged). */
    readonly purged: boolean,
    options: ErrorOptions,
  ) {
    super(
      `The audit sink failed to record purge ${purgeId}: ${errorMessage(options.cause)}. ` +
        (purged
          ? 'The purge ran and its request is recorded, but its outcome is not.'
          : 'Nothing was purged: a purge runs only once its request is recorded.'),
      options,
    )
  }
}

/** The `stratacache` command line got a flag, argument or value it cannot use. The CLI exits with code 2. */
export class CliUsageError extends StrataError {
  readonly code = 'ERR_STRATA_CLI_USAGE'
  constructor(
    readonly command: string,
    readonly problem: string,
  ) {
    super(
      `${problem}. Run ` +
        (command === ''
          ? '`stratacache --help` for the commands.'
          : `\`stratacache ${command} --help\` for the flags it takes.`),
    )
  }
}

/** A file named on the `stratacache` command line is missing, unreadable or not what the command needs. Exit code 3. */
export class CliInputError extends StrataError {
  readonly code = 'ERR_STRATA_CLI_INPUT'
  constructor(
    readonly file: string,
    readonly problem: string,
    options?: ErrorOptions,
  ) {
    super(`${file}: ${problem}.`, options)
  }
}

/** A config module given to the CLI (`--config`) could not be loaded or does not export a cache. */
export class ConfigModuleError extends StrataError {
  readonly code = 'ERR_STRATA_CONFIG_MODULE'
  constructor(
    readonly path: string,
    readonly problem: string,
    options?: ErrorOptions,
  ) {
    super(`Config module ${path}: ${problem}.`, options)
  }
}

/** A drill could not run: no redis-server to start, a worker process that failed, nothing to drill. */
export class DrillSetupError extends StrataError {
  readonly code = 'ERR_STRATA_DRILL_SETUP'
  constructor(
    readonly problem: string,
    options?: ErrorOptions,
  ) {
    super(`The drill could not run: ${problem}.`, options)
  }
}

/** A line of an access log given to `stratacache simulate` is not a valid record (see docs/cli.md). */
export class AccessLogError extends StrataError {
  readonly code = 'ERR_STRATA_ACCESS_LOG'
  constructor(
    readonly file: string,
    readonly line: number,
    readonly problem: string,
  ) {
    super(
      `Access log ${file}, line ${line}: ${problem}. Each line must be one JSON record such as ` +
        '{"t":1700000000000,"ns":"product","k":"9f2c41d0","o":"l1","s":512} (docs/cli.md, "Access log format").',
    )
  }
}

/** The cause's message, without a final period (messages go on after it: "…failed: the client is closed. Reads…"). */
function errorMessage(cause: unknown): string {
  const text = cause instanceof Error ? cause.message : String(cause)
  return text.replace(/\.+$/, '')
}

/** What went wrong in the disk store (`stratacache/disk`), by `kind`. */
export type DiskStoreErrorKind = 'OPEN_FAILED' | 'CLOSED' | 'WRONGTYPE' | 'NOGROUP' | 'KEY_TOO_LONG'

/**
 * The disk store could not open its files (`OPEN_FAILED`), was used before `connect()` or after `close()`
 * (`CLOSED`), or was asked for a set where a string is, or the reverse (`WRONGTYPE`), for a queue's group that
 * does not exist (`NOGROUP`), or to store a key longer than it holds (`KEY_TOO_LONG`). The cache treats it as any
 * L2 failure: a miss, counted.
 */
export class DiskStoreError extends StrataError {
  readonly code = 'ERR_STRATA_DISK_STORE'
  constructor(
    readonly kind: DiskStoreErrorKind,
    readonly path: string,
    readonly problem: string,
    options?: ErrorOptions,
  ) {
    super(
      `Disk store at ${path}: ${problem}.` +
        (kind === 'OPEN_FAILED'
          ? ' Check that `path` names a writable directory on a local disk and that `lmdb` is installed.'
          : ''),
      options,
    )
  }
}
