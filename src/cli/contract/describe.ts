// The cache contract as data: read from a cache's resolved namespace declarations, JSON-safe and sorted.
import type { Cache } from '../../cache.js'
import type { Namespace } from '../../namespace.js'
import type { PolicyException, ResolvedNamespaceOptions, ResolvedWarmUpJob } from '../../options.js'

/** Milliseconds, or null for "none" / "unbounded". */
type Ms = number | null

export interface ContractModel {
  readonly service: string
  readonly cache: {
    /** Null when the cache has no L1. */
    readonly l1: { readonly maxEntries: number; readonly maxBytes: number | null } | null
    readonly l2: boolean
    readonly l2TimeoutMs: number
    readonly circuitBreaker: { readonly failureThreshold: number; readonly breakMs: number }
  }
  /** Sorted by name. */
  readonly namespaces: readonly NamespaceContract[]
}

export interface NamespaceContract {
  readonly name: string
  readonly owner: string | null
  readonly description: string | null
  readonly key: {
    readonly template: string
    readonly dimensions: readonly string[]
    /** In key order: placeholders, then dimensions sorted. */
    readonly params: readonly string[]
    readonly schemaVersion: number
    readonly prefix: string
    /** A key built with each parameter's name as its value. */
    readonly example: string
  }
  readonly freshness: {
    readonly ttlMs: number
    readonly jitterMs: number
    readonly negativeTtlMs: number
    /** 'entry': an L1 copy lives as long as the entry is fresh; 'none': not kept in L1; else its longest life. */
    readonly l1: 'entry' | 'none' | { readonly maxMs: number }
    readonly staleForMs: number
    readonly staleWhileRevalidate: boolean
    readonly failSafeThrottleMs: number
    /** Fraction of the TTL after which a read refreshes in the background; null when off. */
    readonly refreshAhead: number | null
    readonly softTimeoutMs: Ms
    readonly hardTimeoutMs: Ms
  }
  readonly consistency: {
    readonly class: 'strong' | 'bounded' | 'eventual'
    readonly maxStalenessMs: Ms
    /** `'none'` when the namespace has no `write` function: `ns.write()` throws, there is no write path to claim. */
    readonly writeStrategy: string
    readonly writeBehind: {
      readonly batchSize: number
      readonly flushIntervalMs: number
      readonly maxAttempts: number
    } | null
    /**
     * `write()`'s bound on the source write (`timeouts.write`). Null when the namespace has no direct write path (no
     * `write`, or write-behind), or its cache is from a version of the library without the option.
     */
    readonly writeTimeoutMs: Ms
    readonly lock: { readonly ttlMs: number; readonly waitMs: number } | null
  }
  /** Null fields were not declared (or the cache's version of the library has no such option). */
  readonly data: {
    readonly classification: string | null
    readonly critical: boolean | null
    readonly redactedFields: readonly string[] | null
    readonly encrypted: boolean | null
  }
  readonly slo: {
    readonly readP99Ms: Ms
    readonly staleReadsMax: number | null
    readonly windowMs: number
  } | null
  readonly source: {
    readonly maxConcurrent: number | null
    readonly maxPerSecond: number | null
    readonly maxWaitMs: number
    readonly overflow: string
  }
  readonly hotKeys: { readonly track: number; readonly refresh: boolean } | null
  readonly exceptions: readonly PolicyException[]
  /** Declared warm-up jobs, sorted by name; empty when none (or the cache's library has no such option). */
  readonly warmUps: readonly {
    readonly name: string
    readonly owner: string
    readonly schedule: string
    readonly from: string | null
    readonly maxPerSecond: number | null
    readonly timeLimitMs: Ms
  }[]
}

/** What the contract needs of a cache: its service, options and declared namespaces. */
export type ContractSource = Pick<Cache, 'service' | 'options' | 'namespaces'>

/** Reads the contract of `cache` from its resolved options. Never calls a loader or touches L2. */
export function describeCache(cache: ContractSource): ContractModel {
  const o = cache.options
  return {
    service: cache.service,
    cache: {
      l1: o.l1 === false ? null : { maxEntries: o.l1.maxEntries, maxBytes: o.l1.maxBytes ?? null },
      l2: o.l2 !== undefined,
      l2TimeoutMs: o.l2TimeoutMs,
      circuitBreaker: { failureThreshold: o.failureThreshold, breakMs: o.breakMs },
    },
    namespaces: cache
      .namespaces()
      .map((ns) => describeNamespace(ns, o.l1 !== false))
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)),
  }
}

function describeNamespace(ns: Namespace<never, unknown>, cacheHasL1: boolean): NamespaceContract {
  const o = ns.options
  // No `write`: `ns.write()` throws ERR_STRATA_NO_WRITER, so the default 'write-through' would claim a write path
  // the namespace does not have. Options from a library without `writer` are taken at their word.
  const writeStrategy = (o as { writer?: boolean }).writer === false ? 'none' : o.writeStrategy
  return {
    name: ns.name,
    owner: o.owner ?? null,
    description: o.description ?? null,
    key: {
      template: o.key,
      dimensions: [...o.dimensions].sort(),
      params: [...ns.params],
      schemaVersion: o.schemaVersion,
      prefix: ns.prefix,
      example: exampleKey(ns),
    },
    freshness: {
      ttlMs: o.ttlMs,
      jitterMs: o.jitterMs,
      negativeTtlMs: o.negativeTtlMs,
      l1: !cacheHasL1 || o.l1TtlMs === 0 ? 'none' : o.l1TtlMs === Infinity ? 'entry' : { maxMs: o.l1TtlMs },
      staleForMs: o.staleForMs,
      staleWhileRevalidate: o.staleWhileRevalidate,
      failSafeThrottleMs: o.failSafeThrottleMs,
      refreshAhead: o.refreshAhead >= 1 ? null : o.refreshAhead,
      softTimeoutMs: finite(o.softTimeoutMs),
      hardTimeoutMs: finite(o.hardTimeoutMs),
    },
    consistency: {
      class: o.consistency,
      maxStalenessMs: finite(o.maxStalenessMs),
      writeStrategy,
      writeBehind:
        o.writeBehind === undefined
          ? null
          : {
              batchSize: o.writeBehind.batchSize,
              flushIntervalMs: o.writeBehind.flushIntervalMs,
              maxAttempts: o.writeBehind.maxAttempts,
            },
      // Where `write()` writes the source itself; read by shape, as `describeData` reads its options.
      writeTimeoutMs:
        (writeStrategy === 'write-through' || writeStrategy === 'cache-aside') &&
        typeof (o as { writeTimeoutMs?: unknown }).writeTimeoutMs === 'number'
          ? finite(o.writeTimeoutMs)
          : null,
      lock: o.lock === false ? null : { ttlMs: o.lock.ttlMs, waitMs: o.lock.waitMs },
    },
    data: describeData(o),
    slo:
      o.slo === undefined
        ? null
        : {
            readP99Ms: o.slo.readP99Ms ?? null,
            staleReadsMax: o.slo.staleReadsMax ?? null,
            windowMs: o.slo.windowMs,
          },
    source: {
      maxConcurrent: finite(o.source.maxConcurrent),
      maxPerSecond: finite(o.source.maxPerSecond),
      maxWaitMs: o.source.maxWaitMs,
      overflow: o.source.overflow,
    },
    hotKeys: o.hotKeys === false ? null : { track: o.hotKeys.track, refresh: o.hotKeys.refresh },
    // Older resolved options (or a foreign object) may lack the list: read it defensively too.
    exceptions: Array.isArray(o.exceptions) ? o.exceptions.map((e: PolicyException) => ({ ...e })) : [],
    // Options from a library without `warmUps` have none.
    warmUps: ((o as { warmUps?: readonly ResolvedWarmUpJob[] }).warmUps ?? []).map((job) => ({
      name: job.name,
      owner: job.owner,
      schedule: job.schedule,
      from: job.from ?? null,
      maxPerSecond: job.maxPerSecond ?? null,
      timeLimitMs: job.timeLimitMs ?? null,
    })),
  }
}

/**
 * Data protection options (classification, criticality, redaction, encryption), read by shape: the config module's
 * cache may come from another version of the library, where an option is missing or resolved differently.
 */
function describeData(options: ResolvedNamespaceOptions): NamespaceContract['data'] {
  const o = options as unknown as Record<string, unknown>
  const codec = isObject(o.codec) ? o.codec : {}
  const redactor = isObject(codec.redactor) ? codec.redactor : undefined
  const redact = o.redact ?? redactor?.paths
  return {
    classification: typeof o.classification === 'string' ? o.classification : null,
    critical: typeof o.critical === 'boolean' ? o.critical : null,
    redactedFields: Array.isArray(redact) && redact.every((p) => typeof p === 'string') ? [...redact] : null,
    encrypted:
      typeof codec.encrypt === 'boolean' ? codec.encrypt : typeof o.encrypt === 'boolean' ? o.encrypt : null,
  }
}

/** The example key: each parameter's name as its value, without any namespace generation (a runtime detail). */
function exampleKey(ns: Namespace<never, unknown>): string {
  const params = Object.fromEntries(ns.params.map((name) => [name, name]))
  const key = ns.key(params as never)
  const rest = key.slice(ns.prefix.length)
  return key.startsWith(ns.prefix) ? ns.prefix + rest.replace(/^g\d+:/, '') : key
}

function finite(value: number): number | null {
  return Number.isFinite(value) ? value : null
}

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object'
}
