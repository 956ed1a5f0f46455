// The Cache facade users hold: owns the tiers, the namespaces and the lifecycle (connect, close).
import { randomUUID } from 'node:crypto'
import { setMaxListeners } from 'node:events'
import type { AuditRecord } from './audit/audit-sink.js'
import { KEY_RING_OPTION_KEYS, type KeyRing } from './codecs/encryption.js'
import type { Entry } from './codecs/envelope.js'
import { sampledClock } from './core/clock.js'
import { formatDuration } from './core/format-duration.js'
import { rejectUnknown } from './core/known-options.js'
import type { CacheRuntime } from './core/runtime.js'
import type { KeyParams, ParamTypes, TypedKeyParams } from './core/keys.js'
import {
  AuditSinkRequiredError,
  AuditWriteError,
  CacheClosedError,
  DuplicateNamespaceError,
  InvalidArgumentError,
  describeL2Operation,
  InvalidOptionError,
  L2UnavailableError,
  L2UnsupportedError,
  NoL2Error,
} from './errors.js'
import {
  DECLARATION,
  INVALIDATE_TAGS,
  Namespace,
  RELAYED,
  type NamespaceStats,
  type WarmStartResult,
} from './namespace.js'
import { RegionRelay, type RegionStats } from './regions/region-relay.js'
import { channels } from './observability/channels.js'
import { inspectL2, type InspectOptions, type RedisReport } from './observability/inspect.js'
import { L2OutageLog } from './observability/l2-outage-log.js'
import { HostTier } from './storage/host-tier.js'
import {
  resolveCacheOptions,
  resolveNamespaceOptions,
  type CacheOptions,
  type Logger,
  type NamespaceOptions,
  type ResolvedCacheOptions,
} from './options.js'
import type { CircuitState } from './policies/circuit-breaker.js'
import type { HistogramSnapshot } from './observability/histogram.js'
import type { SloReport } from './observability/slo.js'
import { errorReplyAdvice, L2Guard } from './policies/l2-guard.js'
import { InvalidationBus, type BusStats } from './bus/invalidation-bus.js'
import type { Invalidation } from './bus/wire.js'
import type { L2Status, L2Store, L2StoreStats } from './tiers/l2-store.js'
import { WTinyLfu } from './tiers/w-tiny-lfu.js'
import { callWithin } from './core/bounded-call.js'
import { L2ClockSync } from './coherence/clock-sync.js'
import { StartupWindow, type ReadTotals, type StartupStats } from './observability/startup.js'

/** A snapshot of the whole cache: every namespace's counters, L1 occupancy and L2 health. */
export interface CacheStats {
  readonly namespaces: Readonly<Record<string, NamespaceStats>>
  readonly l1: { readonly entries: number; readonly bytes: number; readonly evictions: number } | undefined
  readonly l2:
    | {
        readonly status: L2Status
        readonly circuit: CircuitState
        /**
         * L2 calls made, and of them: answered (`succeeded`), failed, timed out, refused by the open circuit. Each
         * outcome is counted when the call settles, so every counter only grows; a call still in flight is in `calls`
         * only (`calls` >= the sum of the four).
         */
        readonly calls: number
        readonly succeeded: number
        readonly failures: number
        readonly timeouts: number
        readonly refused: number
        /**
         * Of the failures, those Redis answered with an error reply (OOM, WRONGTYPE, NOPERM, BUSY…): Redis is up,
         * so they do not count against the circuit breaker. By kind in `errorRepliesByKind`, e.g. `{ OOM: 12 }`.
         */
        readonly errorReplies: number
        readonly errorRepliesByKind: Readonly<Record<string, number>>
        /** Latency of the calls that settled (answered or failed), in ms. */
        readonly latencyMs: HistogramSnapshot
        /**
         * On a Redis Cluster, reads have a circuit per slot (`circuit` is then the one of every other call): the
         * slots whose read circuit is open now and within its break, e.g. those of a master that died until its
         * replica takes over. 0 on one node.
         */
        readonly slotsOpen: number
        /**
         * Redis's clock minus this process's, in ms, as last measured; 0 while they agree within 250 ms. Entry
         * times are written on Redis's clock (docs/consistency.md, "Clock skew").
         */
        readonly clockOffsetMs: number
        /**
         * The store's own counters, when it keeps them (`L2Store.stats()`: the disk store does, the Redis stores do
         * not): occupancy, evictions, and the records it could not parse (`corruptReads`, each a miss).
         */
        readonly store?: L2StoreStats
      }
    | undefined
  /** The invalidation bus (present with L2). */
  readonly bus: BusStats | undefined
  /**
   * The host tier (`host`): its store's status, its calls that failed (each a host miss), and the store's own
   * counters when it keeps them (`L2Store.stats()`, as the disk store does). Its hits are per namespace (`hostHits`).
   */
  readonly host:
    { readonly status: L2Status; readonly errors: number; readonly store?: L2StoreStats } | undefined
  /** With `regions`: the relay, and each peer region's split state and relay lag as this process sees them. */
  readonly regions: RegionStats | undefined
  /**
   * The reads of this cache's first minute, and whether it started warm (`warmStart()`), to compare restarts with and
   * without warm start (docs/observability.md).
   */
  readonly startup: StartupStats
}

/** How `cache.close()` ends. */
export interface CloseOptions {
  /**
   * Save each namespace's hottest keys in L2 first (`true`: 1000 per namespace, or this many), so the next
   * process can start warm with `cache.warmStart()`.
   */
  saveHotKeys?: boolean | number
}

/** What `cache.purge()` drops, and who asks and why (both recorded in the audit log). */
export interface PurgeRequest {
  /** Purge this namespace: all its entries, or with `tag` only its entries carrying the tag. */
  namespace?: string
  /** Purge the entries carrying this tag (in every namespace, unless `namespace` is given), e.g. `'tenant:t1'`. */
  tag?: string
  /** Why: an incident, a ticket, a data-subject request. Required, recorded. */
  reason: string
  /** Who asks: a person, an operator account, a job. Required, recorded. */
  actor: string
}

export interface PurgeResult {
  /** The audit records' id for this purge. */
  readonly id: string
  /** L2 entries deleted. */
  readonly keysDeleted: number
}

/**
 * Creates a cache for one service.
 * @throws InvalidOptionError for an option that cannot work; UnknownOptionError for a key it does not take (a typo),
 * naming the closest valid one.
 *
 * @example
 * const cache = createCache({ service: 'catalog', l1: { maxEntries: 10_000 }, l2: redisStore({ url }) })
 */
export function createCache(options: CacheOptions): Cache {
  return new Cache(options)
}

export class Cache {
  readonly service: string
  readonly options: ResolvedCacheOptions
  readonly #l1: WTinyLfu<Entry> | undefined
  readonly #l2: L2Guard | undefined
  readonly #host: HostTier | undefined
  readonly #outages: L2OutageLog | undefined
  readonly #namespaces = new Map<string, Namespace<never, unknown>>()
  readonly #abort = new AbortController()
  readonly #background = new Set<Promise<unknown>>()
  readonly #onClose: (() => void)[] = []
  readonly #beforeClose: (() => Promise<void>)[] = []
  readonly #bus: InvalidationBus | undefined
  readonly #clockSync: L2ClockSync | undefined
  /** The first minute's reads (`stats().startup`). */
  readonly #startup: StartupWindow
  /** With `regions`: the outbox and relay, and the stores on the peer regions' L2s (connected and closed here). */
  readonly #relay: RegionRelay | undefined
  /** What each namespace does with an invalidation from another process. */
  readonly #handlers = new Map<
    string,
    (invalidation: Invalidation | 'missed' | 'l2-ready' | 'deaf', lagMs?: number) => void
  >()
  readonly #runtime: { -readonly [K in keyof CacheRuntime]: CacheRuntime[K] }
  #closing: Promise<void> | undefined
  #sloTimer: ReturnType<typeof setInterval> | undefined

  constructor(options: CacheOptions) {
    // One listener per loader call in flight (its hard timeout's controller): hundreds at once are normal.
    setMaxListeners(0, this.#abort.signal)
    this.options = resolveCacheOptions(options)
    const o = this.options
    this.service = o.service
    this.#startup = new StartupWindow(() =>
      readTotals([...this.#namespaces.values()].map((ns) => ns.stats())),
    )
    this.#l1 = o.l1 === false ? undefined : new WTinyLfu<Entry>(o.l1.maxEntries, o.l1.maxBytes ?? Infinity)
    // The user's logger is called from timers and connection events: what it throws must not stop them.
    const log = isolatedLogger(o.logger)
    if (o.l2 !== undefined) {
      const l2 = o.l2
      // Outages are logged once each (unreachable or not answering, then back), never per call or per probe.
      const outages = new L2OutageLog({
        service: o.service,
        store: l2,
        logger: log,
        failureThreshold: o.failureThreshold,
        l2TimeoutMs: o.l2TimeoutMs,
        breakMs: o.breakMs,
      })
      this.#outages = outages
      this.#l2 = new L2Guard(
        l2,
        o.l2TimeoutMs,
        { failureThreshold: o.failureThreshold, breakMs: o.breakMs },
        {
          onCircuit: (circuit) => {
            log.debug?.({ service: o.service, circuit }, `stratacache: L2 circuit ${circuit}`)
            outages.circuit(circuit)
          },
          // Once per kind: the counters and the channel carry the rest. Redis's own text may quote keys: not logged.
          onErrorReply: ({ kind, operation, first }) => {
            if (!first) return
            log.warn(
              { service: o.service, operation, reply: kind },
              `stratacache: Redis refused ${describeL2Operation(operation)} with an error reply (${kind}). It is ` +
                `up, so this does not open the circuit; counted in stats().l2.errorReplies. ${errorReplyAdvice(kind)}`,
            )
          },
        },
      )
      // Messages are stamped and their lag measured on Redis's clock (this process's, shifted by the measured
      // offset): a sender or receiver whose host clock is off would otherwise report the skew as lag.
      const busClock = { now: () => o.clock.now() + (this.#clockSync?.offsetMs ?? 0) }
      this.#bus = new InvalidationBus(this.#l2, o.service, busClock, {
        invalidate: (invalidation, lagMs) =>
          this.#handlers.get(invalidation.namespace)?.(invalidation, lagMs),
        // Messages may have been missed while the subscription was down: every namespace revalidates its L1.
        missedMessages: (first) => {
          // Info: the cache heals by itself, and the outage that caused it was logged as a warning.
          if (!first) {
            log.info(
              { service: o.service },
              'stratacache: invalidation bus reconnected; L1 entries revalidate (invalidations may have been missed)',
            )
          }
          for (const handler of this.#handlers.values()) handler('missed')
          // After an outage (not the first subscription: the host's other processes kept the copies in step), the
          // host tier's copies may have missed invalidations too: dropped, they are copies of L2.
          const host = this.#host
          if (!first && host !== undefined) {
            for (const ns of this.#namespaces.values())
              this.#runtime.background(host.drop(ns.prefix, 'missed'))
          }
        },
      })
      l2.onEvent((event) => {
        if (event.type === 'status') {
          // Info only: whether a lost connection is an outage is for the next attempt to say (L2OutageLog).
          const where = l2.address ? ` (Redis at ${l2.address})` : ''
          if (event.status === 'ready')
            log.info({ service: o.service, status: event.status }, `stratacache: L2 ready${where}`)
          else
            log.info({ service: o.service, status: event.status }, `stratacache: L2 ${event.status}${where}`)
          outages.status(event.status)
          // Connected again: close the circuit now rather than waiting for its next probe.
          if (event.status === 'ready') {
            this.#l2?.connectionRestored()
            // Each connection may reach another server (a failover), with its own clock.
            void this.#clockSync?.measure()
            // Namespaces that lost track of their generation (a bus outage, a failed read) read it again now,
            // rather than on their next reads, each of which would otherwise skip L2 until one succeeds.
            for (const handler of this.#handlers.values()) handler('l2-ready')
          }
          if (channels.l2State.hasSubscribers) channels.l2State.publish({ status: event.status })
        } else if (event.type === 'subscriber-status') {
          this.#bus?.connectionStatus(event.status === 'ready')
          // Deaf until the bus reconnects (then 'missed'): lock waiters read L2 rather than wait for announcements.
          if (event.status !== 'ready') for (const handler of this.#handlers.values()) handler('deaf')
        } else if (event.type === 'warning') {
          log.warn({ service: o.service }, `stratacache: ${event.message}`)
        } else if (event.type === 'unsupported') {
          const { error } = event
          const fields =
            error instanceof L2UnsupportedError
              ? { server: error.server, version: error.version, minimum: error.minimum }
              : {}
          log.error({ service: o.service, ...fields }, `stratacache: ${error.message}`)
          if (channels.l2Error.hasSubscribers) channels.l2Error.publish({ operation: 'connect', error })
        } else {
          outages.connectionError(event.error, event.lost === true)
          if (channels.l2Error.hasSubscribers) {
            channels.l2Error.publish({ operation: 'connection', error: event.error })
          }
        }
      })
      if (o.clockSync !== false) {
        this.#clockSync = new L2ClockSync(this.#l2, o.clock, log, o.service, o.clockSync === 'auto')
      }
      // Connect in the background: reads work before (and without) Redis, falling through to the loader.
      o.l2.connect().catch(() => {})
      this.#bus.start()
      if (o.regions !== undefined) this.#relay = this.#startRelay(o.regions, this.#l2, log)
    }
    if (o.host !== undefined) {
      this.#host = new HostTier(o.host)
      // Like L2, in the background: until it is open, host reads miss and go to L2.
      o.host.connect().catch(() => {})
    }
    const clockSync = this.#clockSync
    this.#runtime = {
      service: o.service,
      l1: this.#l1,
      l2: this.#l2,
      host: this.#host,
      get l2ClockOffsetMs() {
        return clockSync?.offsetMs ?? 0
      },
      serializer: o.serializer,
      clock: o.clock,
      hitClock: sampledClock(o.clock),
      logger: log,
      random: o.random,
      maxKeyLength: o.maxKeyLength,
      signal: this.#abort.signal,
      closed: false,
      bus: this.#bus,
      regions: this.#relay,
      onInvalidation: (namespace, handler) => {
        this.#handlers.set(namespace, handler)
      },
      onClose: (release) => {
        this.#onClose.push(release)
      },
      beforeClose: (work) => {
        this.#beforeClose.push(work)
      },
      background: (work) => {
        this.#background.add(work)
        void work.finally(() => this.#background.delete(work))
      },
    }
  }

  /**
   * The region relay: each peer's store guarded like L2 (timeouts, circuit breaker), connected in the background;
   * the relay applies their entries through the namespaces this process declares.
   */
  #startRelay(
    regions: NonNullable<ResolvedCacheOptions['regions']>,
    local: L2Guard,
    log: Logger,
  ): RegionRelay {
    const o = this.options
    const peers = regions.peers.map((peer) => {
      const guard = new L2Guard(peer.l2, o.l2TimeoutMs, {
        failureThreshold: o.failureThreshold,
        breakMs: o.breakMs,
      })
      // The peer's connection trouble shows as the relay's errors and the peer's split; logged at debug only.
      peer.l2.onEvent((event) => {
        if (event.type === 'status') {
          if (event.status === 'ready') guard.connectionRestored()
          log.debug?.(
            { service: o.service, peer: peer.region, status: event.status },
            'stratacache: peer region L2',
          )
        }
      })
      // A process that never relays never reads a peer's outbox: it does not connect to it.
      if (regions.relay) peer.l2.connect().catch(() => {})
      return { region: peer.region, l2: guard, close: () => guard.close() }
    })
    const relay = new RegionRelay(
      regions,
      o.service,
      local,
      peers,
      o.clock,
      log,
      async (relayed) => {
        const ns = this.#namespaces.get(relayed.namespace)
        if (this.#runtime.closed) throw new CacheClosedError('apply a relayed invalidation')
        if (ns === undefined) return 'unknown'
        try {
          await ns[RELAYED](relayed)
        } catch (error) {
          // An entry this namespace can never apply (a tag it refuses): skipped, or it would block the stream for ever.
          // Anything else (Redis unreachable, closing) is retried, in order.
          if (error instanceof InvalidArgumentError) return 'unknown'
          throw error
        }
        return 'applied'
      },
      // Entries lost from a peer's outbox: whatever they invalidated, every namespace here starts a new generation.
      async () => {
        if (this.#runtime.closed) throw new CacheClosedError('invalidate after lost relayed invalidations')
        const declared = [...this.#namespaces.values()]
        await Promise.all(declared.map((ns) => ns[RELAYED]({ kind: 'all', namespace: ns.name })))
        return declared.map((ns) => ns.name)
      },
    )
    relay.start()
    this.#beforeClose.push(async () => {
      await relay.stop()
      for (const peer of peers) peer.close()
      await Promise.allSettled(regions.peers.map((peer) => peer.l2.close()))
    })
    return relay
  }

  /**
   * Declares a key family. Key parameters are inferred from the template's placeholders plus `dimensions`, each a
   * `Scalar` (`string | number | bigint | boolean`) unless `params` declares its type (`params: { productId:
   * 'number' }`, checked at run time too) or `load`'s parameter is annotated; the value type is inferred from `load`.
   * A `Scalar` parameter passed where a `string` is expected is the usual first type error: declare it in `params`,
   * or convert it (`String(tenantId)`). See the README, "Key parameter types".
   * @throws InvalidOptionError for a bad template, TTL or option (UnknownOptionError for an unknown key, naming the
   * closest valid one); DuplicateNamespaceError for a reused name.
   */
  namespace<
    const K extends string,
    const D extends readonly string[] = readonly [],
    const T extends ParamTypes<K, D> = Record<never, never>,
    P extends KeyParams<K, D> = TypedKeyParams<K, D, T>,
    V = unknown,
  >(name: string, options: NamespaceOptions<K, D, P, V, T>): Namespace<P, V> {
    if (this.#runtime.closed) throw new CacheClosedError('declare a namespace')
    if (typeof name !== 'string') throw new InvalidOptionError('namespace name', name, 'a string')
    if (this.#namespaces.has(name)) throw new DuplicateNamespaceError(name)
    const resolved = resolveNamespaceOptions(name, options, this.options)
    const regions = this.options.regions
    if (
      regions !== undefined &&
      resolved.consistency === 'bounded' &&
      3 * regions.heartbeatMs > resolved.maxStalenessMs
    ) {
      // Not an error: the bound still holds, but news from the peers is often older than it, so reads revalidate.
      this.#runtime.logger.warn(
        {
          service: this.service,
          namespace: name,
          heartbeatMs: regions.heartbeatMs,
          maxStalenessMs: resolved.maxStalenessMs,
        },
        `stratacache: namespace "${name}" has maxStaleness ${resolved.maxStalenessMs} ms, under three regions.heartbeat ` +
          `(${regions.heartbeatMs} ms): reads will often go to the source because news from the other regions is ` +
          'older than the bound. Lower regions.heartbeat or raise maxStaleness.',
      )
    }
    const namespace = new Namespace<P, V>(this.#runtime, resolved, options, (raw) =>
      resolveNamespaceOptions(name, raw, this.options),
    )
    this.#namespaces.set(name, namespace as unknown as Namespace<never, unknown>)
    if (resolved.slo !== undefined) this.#watchObjectives()
    return namespace
  }

  /**
   * The namespaces declared on this cache, in declaration order. For tools that read declarations (the cache
   * contract, inspection); each namespace's `options` are resolved and frozen.
   */
  namespaces(): readonly Namespace<never, unknown>[] {
    return Object.freeze([...this.#namespaces.values()])
  }

  /**
   * Waits until L2 is ready. Optional: the cache connects by itself and serves from L1 and the loader meanwhile.
   * @throws L2UnavailableError after `timeouts.connect`; the cache keeps working and reconnecting.
   * @throws L2UnsupportedError when the server is older than Redis 7.0 (the cache keeps using it for reads).
   */
  async connect(): Promise<void> {
    if (this.#runtime.closed) throw new CacheClosedError('connect')
    const l2 = this.options.l2
    if (l2 === undefined) return
    const timeoutMs = this.options.connectTimeoutMs
    const giveUp = new AbortController()
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        // Say why, when an attempt failed: "cannot reach Redis at 127.0.0.1:6390 (ECONNREFUSED: …)".
        const last = this.#outages?.lastFailure
        reject(new L2UnavailableError(timeoutMs, last && { cause: last.error }, last?.failure))
      }, timeoutMs)
    })
    try {
      await Promise.race([waitReady(l2, giveUp.signal), timeout])
      // And the invalidation bus: until it listens, this process would miss other processes' invalidations.
      // Not a reason to throw: a bus that cannot subscribe (an ACL without the channel) is reported on its own.
      if (this.#bus !== undefined) await Promise.race([this.#bus.settled, timeout.catch(() => undefined)])
      // And, with regions, the coverage the region's relay recorded: until it is read this process does not know how
      // old its news from the other regions is, and could serve a value they changed during a split that began
      // before it started.
      if (this.#relay !== undefined) await Promise.race([this.#relay.ready(), timeout.catch(() => undefined)])
      // And the clock: entries written before it is measured carry this process's own times.
      if (this.#clockSync !== undefined) {
        await Promise.race([this.#clockSync.measure(), timeout.catch(() => undefined)])
      }
    } finally {
      // Stop waiting: the store's own reconnect loop (with its backoff) goes on in the background.
      giveUp.abort()
      clearTimeout(timer)
    }
  }

  /**
   * Drops every entry tagged with one of `tags` in every namespace this cache declares: L1 here and in the other
   * processes (through the bus), and L2. Resolves to the number of L2 entries deleted.
   */
  async invalidateTag(...tags: string[]): Promise<number> {
    if (this.#runtime.closed) throw new CacheClosedError('invalidateTag')
    let deleted = 0
    for (const ns of this.#namespaces.values()) deleted += await ns[INVALIDATE_TAGS](tags)
    return deleted
  }

  /**
   * For a purge by tag: the namespaces it reaches must declare `tags`, or it would record a purge that deleted
   * nothing while the data stays cached. @throws InvalidArgumentError naming the fix.
   */
  #requireTagged(tag: string, only: Namespace<never, unknown> | undefined): void {
    const reached = only === undefined ? [...this.#namespaces.values()] : [only]
    if (reached.some((ns) => ns[DECLARATION].tags !== undefined)) return
    const where =
      only === undefined
        ? `no namespace of this cache (${[...this.#namespaces.keys()].join(', ') || 'none'}) declares \`tags\``
        : `namespace "${only.name}" declares no \`tags\``
    throw new InvalidArgumentError(
      'tag',
      tag,
      `a tag that cached entries carry: ${where}, so a purge by tag would delete nothing. Declare \`tags\` ` +
        '(e.g. tags: ({ tenantId }) => [`tenant:${tenantId}`]), or purge by `namespace`',
    )
  }

  /**
   * An administrative purge, recorded in the cache's `audit` sink: a `requested` record (who, what, when, why) is
   * appended first, and only once it is stored does the purge run (`ns.clear()` for a namespace, `invalidateTag`
   * for a tag: L2, this process's L1 and every other process's L1); then a `completed` record with the number of
   * keys deleted, or a `failed` one. For code that drops entries as part of its normal work, `ns.clear()` and
   * `invalidateTag()` stay available and are not audited.
   * @throws AuditSinkRequiredError when the cache has no `audit` sink (nothing is purged).
   * @throws AuditWriteError when the sink fails: before the purge (nothing purged) or after it (`purged: true`).
   * @throws InvalidArgumentError for a missing `actor` or `reason`, an unknown namespace, or no target.
   * @example await cache.purge({ tag: 'tenant:t42', actor: 'alice@ops', reason: 'INC-1234: tenant data export bug' })
   */
  async purge(request: PurgeRequest): Promise<PurgeResult> {
    if (this.#runtime.closed) throw new CacheClosedError('purge')
    const sink = this.options.audit
    if (sink === undefined) throw new AuditSinkRequiredError()
    if (request === null || typeof request !== 'object') {
      throw new InvalidArgumentError(
        'purge request',
        request,
        'an object such as { namespace, reason, actor }',
      )
    }
    const { namespace, tag, reason, actor } = request
    for (const [name, text] of [
      ['actor', actor],
      ['reason', reason],
    ] as const) {
      if (typeof text !== 'string' || text.trim().length === 0) {
        throw new InvalidArgumentError(name, text, `a non-empty string: every purge records its ${name}`)
      }
    }
    if (namespace === undefined && tag === undefined) {
      throw new InvalidArgumentError('purge request', request, 'a `namespace`, a `tag`, or both')
    }
    const ns = namespace === undefined ? undefined : this.#namespaces.get(namespace)
    if (namespace !== undefined && ns === undefined) {
      throw new InvalidArgumentError(
        'namespace',
        namespace,
        `a namespace declared in this cache (${[...this.#namespaces.keys()].join(', ') || 'none'})`,
      )
    }
    if (tag !== undefined && (typeof tag !== 'string' || tag.length === 0)) {
      throw new InvalidArgumentError('tag', tag, "a non-empty string such as 'tenant:t1'")
    }
    if (tag !== undefined) this.#requireTagged(tag, ns)
    const id = randomUUID()
    const target = {
      ...(namespace === undefined ? {} : { namespace }),
      ...(tag === undefined ? {} : { tag }),
    }
    const record = (phase: AuditRecord['phase'], extra: Partial<AuditRecord> = {}): AuditRecord => ({
      id,
      phase,
      at: new Date(this.options.clock.now()).toISOString(),
      service: this.service,
      action: 'purge',
      actor,
      reason,
      target,
      ...extra,
    })
    // Each record is bounded by `timeouts.audit`: a sink that never answers must not hold the purge, or its caller.
    const timeoutMs = this.options.auditTimeoutMs
    const append = async (entry: AuditRecord): Promise<void> => {
      const outcome = await callWithin(
        // The signal read through a getter: made only for a sink that uses it.
        (call) =>
          sink.append(entry, {
            get signal() {
              return call.signal
            },
          }),
        this.#abort.signal,
        timeoutMs,
        () =>
          new Error(
            `the sink did not answer within ${formatDuration(timeoutMs)} (\`timeouts.audit\`); it may still store the record`,
          ),
      )
      if (!outcome.ok) throw outcome.error
    }
    try {
      await append(record('requested'))
    } catch (cause) {
      throw new AuditWriteError(id, false, { cause })
    }
    const started = performance.now()
    let keysDeleted: number
    try {
      if (ns === undefined) keysDeleted = await this.invalidateTag(tag!)
      else keysDeleted = tag === undefined ? await ns.clear() : await ns.invalidateTag(tag)
    } catch (error) {
      const code =
        typeof error === 'object' && error !== null && 'code' in error ? String(error.code) : undefined
      const failed = record('failed', {
        durationMs: Math.round(performance.now() - started),
        error: code ?? (error instanceof Error ? error.message : String(error)),
      })
      // The purge's own error is what the caller needs; a sink failing as well must not hide it.
      await append(failed).catch(() => {})
      throw error
    }
    try {
      await append(record('completed', { keysDeleted, durationMs: Math.round(performance.now() - started) }))
    } catch (cause) {
      throw new AuditWriteError(id, true, { cause })
    }
    return Object.freeze({ id, keysDeleted })
  }

  /**
   * Replaces the encryption key ring of a running cache, for every namespace at once: rotate without a restart
   * (keys fetched from a KMS, say). Follow the same phases as a rolling rotation (docs/security.md): add the new
   * key, then make it active, then retire the old one once its values have expired.
   * @throws InvalidOptionError when the ring is invalid (the current one stays), or the cache was created without
   * `encryption` (which namespaces encrypt is decided when they are declared).
   * @example cache.setEncryptionKeys({ active: 'k2', keys: { k2: newKey, k1: oldKey } })
   */
  setEncryptionKeys(ring: KeyRing): void {
    if (this.#runtime.closed) throw new CacheClosedError('set encryption keys')
    const current = this.options.keyRing
    if (current === undefined) {
      throw new InvalidOptionError(
        'encryption',
        undefined,
        'a key ring given to createCache() before keys can be replaced at runtime',
      )
    }
    if (ring !== null && typeof ring === 'object') {
      rejectUnknown(ring, KEY_RING_OPTION_KEYS, { where: 'setEncryptionKeys()', at: (path) => path })
    }
    current.replace(ring, 'setEncryptionKeys')
  }

  /** A frozen snapshot of every namespace's counters, L1 occupancy and L2 health. */
  stats(): CacheStats {
    const namespaces: Record<string, NamespaceStats> = {}
    for (const [name, ns] of this.#namespaces) namespaces[name] = ns.stats()
    return Object.freeze({
      namespaces: Object.freeze(namespaces),
      l1:
        this.#l1 === undefined
          ? undefined
          : Object.freeze({ entries: this.#l1.size, bytes: this.#l1.bytes, evictions: this.#l1.evictions }),
      l2:
        this.#l2 === undefined
          ? undefined
          : Object.freeze({
              status: this.#l2.store.status,
              circuit: this.#l2.circuit,
              ...this.#l2.stats(),
              clockOffsetMs: this.#clockSync?.offsetMs ?? 0,
              ...storeStats(this.#l2.store),
            }),
      bus: this.#bus?.stats(),
      host:
        this.#host === undefined
          ? undefined
          : Object.freeze({
              status: this.#host.store.status,
              errors: this.#host.errors,
              ...storeStats(this.#host.store),
            }),
      regions: this.#relay?.stats(),
      startup: this.#startup.stats(readTotals(Object.values(namespaces))),
    })
  }

  /**
   * Compliance of every namespace that declares objectives (`slo`), over each one's window. Evaluating publishes a
   * change of verdict on `stratacache:slo`; the cache also evaluates every second by itself.
   */
  slo(): Readonly<Record<string, SloReport>> {
    const reports: Record<string, SloReport> = {}
    for (const [name, ns] of this.#namespaces) {
      const report = ns.slo()
      if (report !== undefined) reports[name] = report
    }
    return Object.freeze(reports)
  }

  /** Evaluates objectives every second (an unref'd timer, started with the first namespace that has any). */
  #watchObjectives(): void {
    if (this.#sloTimer !== undefined) return
    this.#sloTimer = setInterval(() => {
      if (!this.#runtime.closed) this.slo()
    }, 1_000).unref()
    this.#onClose.push(() => clearInterval(this.#sloTimer))
  }

  /**
   * Inspects L2 for operators: Redis used memory against `maxmemory` and the `l2Budget`, the eviction policy, the
   * eviction counters, and per namespace estimated key counts, sizes and TTLs from a bounded SCAN sample (never
   * KEYS). Warns when a `critical` namespace may be evicted, when memory is unbounded or full writes would fail,
   * and publishes `stratacache:l2:budget` when usage is over the budget. A command Redis refuses (CONFIG under an
   * ACL) leaves its reading unknown, with the reason. See docs/operations.md.
   * @throws NoL2Error without L2; L2Error, L2TimeoutError or L2CircuitOpenError when Redis cannot answer.
   * @example const report = await cache.inspect(); for (const w of report.warnings) log.warn(w.message)
   */
  async inspect(options: InspectOptions = {}): Promise<RedisReport> {
    if (this.#runtime.closed) throw new CacheClosedError('inspect')
    if (this.#l2 === undefined) throw new NoL2Error('inspect')
    const targets = [...this.#namespaces.values()].map((ns) => ({
      name: ns.name,
      prefix: ns.prefix,
      critical: ns.options.critical,
    }))
    return inspectL2(this.#l2, targets, options, {
      service: this.service,
      budget: this.options.l2Budget,
      now: () => this.options.clock.now(),
    })
  }

  /**
   * Stops the cache: aborts loaders' signals, waits for background L2 writes (each bounded by the L2 timeout),
   * closes the connections it opened, and empties L1. Leaves no timer or socket behind. Safe to call twice.
   */
  close(options: CloseOptions = {}): Promise<void> {
    try {
      rejectUnknown(options, { saveHotKeys: true }, { where: 'cache.close()', at: (path) => path })
    } catch (error) {
      return Promise.reject(error instanceof Error ? error : new TypeError('invalid cache.close() options'))
    }
    const { saveHotKeys } = options
    if (
      saveHotKeys !== undefined &&
      typeof saveHotKeys !== 'boolean' &&
      !(Number.isInteger(saveHotKeys) && saveHotKeys > 0)
    ) {
      const expected = 'true, false or a positive integer number of keys'
      return Promise.reject(new InvalidOptionError('saveHotKeys', saveHotKeys, expected))
    }
    this.#closing ??= this.#close(saveHotKeys)
    return this.#closing
  }

  /**
   * Copies into L1, for every namespace, the entries still fresh in L2 of the hot keys the last process saved on
   * `close({ saveHotKeys: true })`, so a new process starts warm instead of cold; the loaders are not called. Call
   * it after declaring the namespaces and before taking traffic. Resolves to what each namespace warmed.
   */
  async warmStart(): Promise<{
    readonly durationMs: number
    readonly namespaces: Record<string, WarmStartResult>
  }> {
    if (this.#runtime.closed) throw new CacheClosedError('warmStart')
    const started = performance.now()
    const namespaces: Record<string, WarmStartResult> = {}
    let warmed = 0
    for (const ns of this.#namespaces.values()) {
      const result = await ns.warmStart()
      namespaces[ns.name] = result
      warmed += result.warmed
    }
    this.#startup.warmed(warmed)
    return Object.freeze({ durationMs: performance.now() - started, namespaces: Object.freeze(namespaces) })
  }

  async #close(saveHotKeys: boolean | number | undefined): Promise<void> {
    if (saveHotKeys !== undefined && saveHotKeys !== false) {
      // First, while everything is open; each namespace's save bounded by the L2 timeout.
      const max = saveHotKeys === true ? undefined : saveHotKeys
      for (const ns of this.#namespaces.values()) await ns.saveHotKeys(max).catch(() => 0)
    }
    this.#runtime.closed = true
    this.#startup.stop()
    this.#abort.abort(new CacheClosedError('load'))
    // Lock keep-alives stop: a loader that never settles must not keep extending its lock after close.
    this.#l2?.close()
    this.#outages?.stop()
    this.#bus?.stop()
    this.#clockSync?.stop()
    // While L2 is still open: flushers finish their step and leave (each L2 call bounded by its timeout).
    await Promise.allSettled(this.#beforeClose.splice(0).map((work) => work()))
    // Background writes and calls in flight stay bounded by the deadline sweep, which stops by itself once no call
    // is pending; stopping it here would leave a call to a frozen Redis without its timeout.
    await Promise.allSettled([...this.#background])
    await this.options.l2?.close()
    await this.options.host?.close()
    for (const release of this.#onClose.splice(0)) release()
  }
}

/** Resolves once the store is ready: one connection attempt at a time, until `signal` says to stop waiting. */
async function waitReady(l2: NonNullable<ResolvedCacheOptions['l2']>, signal: AbortSignal): Promise<void> {
  while (!signal.aborted) {
    try {
      await l2.connect()
      return
    } catch (error) {
      // Connected, to a server too old: waiting longer will not change that.
      if (error instanceof L2UnsupportedError) throw error
      if (l2.status === 'closed') throw new L2UnavailableError(0)
      await new Promise((resolve) => setTimeout(resolve, 100).unref())
    }
  }
}

/** `logger`, with every call made safe: what the user's logger throws is dropped, never thrown into the cache. */
function isolatedLogger(logger: Logger): Logger {
  const safe =
    (level: keyof Logger) =>
    (fields: object, message: string): void => {
      try {
        logger[level]?.(fields, message)
      } catch {
        // Ignored: a logging failure is not the cache's failure.
      }
    }
  return {
    ...(logger.debug === undefined ? {} : { debug: safe('debug') }),
    info: safe('info'),
    warn: safe('warn'),
    error: safe('error'),
  }
}

/** The read counts of `namespaces`, summed (for the first-minute window). */
function readTotals(namespaces: readonly NamespaceStats[]): ReadTotals {
  const totals = { l1Hits: 0, l2Hits: 0, misses: 0 }
  for (const n of namespaces) {
    totals.l1Hits += n.l1Hits
    totals.l2Hits += n.l2Hits
    totals.misses += n.misses
  }
  return totals
}

/**
 * `{ store }` with a store's own counters, frozen; nothing for a store that keeps none (the property stays absent),
 * or whose `stats()` throws (a store of the user's that breaks the contract must not break `cache.stats()`).
 */
function storeStats(store: L2Store): { store?: L2StoreStats } {
  let stats: L2StoreStats | undefined
  try {
    stats = store.stats?.()
  } catch {
    return {}
  }
  return stats === undefined ? {} : { store: Object.freeze({ ...stats }) }
}
