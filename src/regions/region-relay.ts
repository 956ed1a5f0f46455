// regions/: several regions, one L2 each. This file: the outbox every write appends to, and the relay that reads
// the peers' outboxes into this region, with heartbeats, split detection and replay after a split.
//
// Invariants:
// - A write or invalidation made here is in this region's outbox (one Redis stream per peer, in this region's L2)
//   before it resolves, or it rejects (RegionOutboxError): the relay of each peer finds it there, however long the
//   link between the regions is down, up to `regions.outboxMaxLength` entries per stream (XADD … MAXLEN ~): past it
//   the oldest entries are trimmed. An entry leaves once its peer acknowledged it.
// - A relay that finds entries of a peer's outbox trimmed before it read them (or taken by it and trimmed before it
//   acknowledged them) cannot know what they invalidated: it invalidates every namespace this process declares (a
//   new generation, as invalidateAll, in this region only) before it applies anything after them, counts an
//   overflow and logs a warning. Detection needs Redis 7.0+ on the peer (its count of entries added).
// - One relay per region at a time (a lease in the region's L2). It reads each peer's outbox through a consumer
//   group, applies the entries in stream order (so per key in order), and acknowledges an entry only after it was
//   applied to this region's L2 and announced on its bus: at least once. An entry a relay took and did not
//   acknowledge (it died, or applying failed) is taken again, before anything newer, by the next attempt.
// - Applying twice is harmless: deletes and tag marks are idempotent, versions and generations only move forward.
// - A peer's coverage is the send time of the last entry (or heartbeat) of its outbox applied here: every
//   invalidation it appended before that time has been applied. Every process of the region learns it from a key
//   the relay keeps in the region's L2; reads compare it with their namespace's bound (read-gate.ts).
import { randomBytes } from 'node:crypto'
import type { Clock } from '../core/clock.js'
import type { Logger } from '../options.js'
import type { L2Guard } from '../policies/l2-guard.js'
import { channels } from '../observability/channels.js'
import { decodeOutboxEntry, encodeOutboxEntry, type RelayedInvalidation } from './outbox-wire.js'
import type { ResolvedRegions } from './region-options.js'

/** The last split of a peer that ended: how long it lasted, and what its healing took. */
export interface RegionSplitReport {
  /** From the moment the peer counted as split to the moment the replay caught up, in ms. */
  readonly durationMs: number
  /** Entries (not heartbeats) of the peer's outbox applied after the link came back. Known to the relay only. */
  readonly replayed: number
  /** From the first entry read after the link came back to the replay's end (regions converged), in ms. */
  readonly convergeMs: number
}

/** One peer region as this process sees it. */
export interface RegionPeerStats {
  readonly region: string
  /** Whether the peer has not been heard from for longer than `regions.splitAfter`. */
  readonly split: boolean
  /** Since when it counts as split (epoch ms), or undefined. */
  readonly splitSince: number | undefined
  /** How long ago the last entry applied here was sent in the peer (its coverage age), in ms. */
  readonly heardAgoMs: number
  /** Relay lag, peer's append to this region's apply, of the last entry applied: last and largest seen, in ms. */
  readonly lagMs: { readonly last: number; readonly max: number }
  /** Entries of the peer's outbox (heartbeats included) this process applied as the relay. */
  readonly relayed: number
  /** Entries waiting in the peer's outbox for this region, as last counted by the relay (undefined elsewhere). */
  readonly backlog: number | undefined
  /** Splits seen since the cache started. */
  readonly splits: number
  readonly lastSplit: RegionSplitReport | undefined
  /**
   * Times the peer's outbox was found trimmed past entries this region had not applied (`regions.outboxMaxLength`),
   * each answered by invalidating every namespace this process declares; and how many entries were lost. Known to
   * the relay only.
   */
  readonly overflows: number
  readonly dropped: number
}

export interface RegionStats {
  readonly region: string
  /** Whether this process holds the region's relay lease now. */
  readonly relaying: boolean
  readonly peers: Readonly<Record<string, RegionPeerStats>>
  /** Entries this process appended to its region's outbox (one per peer each), and appends that failed. */
  readonly outbox: { readonly appended: number; readonly errors: number }
  /** Entries skipped: not of this format, or of a namespace this process does not declare. */
  readonly skipped: number
  /** Relay steps that failed (a peer or this region's L2 unreachable); retried at the next heartbeat. */
  readonly errors: number
}

/** How the relay applies a peer's entry to this region: its L2, its bus, this process's L1. */
export type ApplyRelayed = (relayed: RelayedInvalidation) => Promise<'applied' | 'unknown'>

/**
 * What the relay does when entries of a peer's outbox were lost: invalidates every namespace this process declares
 * in this region (L2, bus, L1), as the lost entries may have invalidated anything. Resolves to the namespaces.
 */
export type InvalidateDeclared = () => Promise<readonly string[]>

/** What the read path and the write path of every namespace see of the regions (core/runtime.ts). */
export interface RegionView {
  /** This process's region. */
  readonly region: string
  /** The oldest coverage over all peers (epoch ms): every peer's invalidations sent before it are applied here. */
  readonly coveredAt: number
  readonly splitAfterMs: number
  /** Appends an invalidation to this region's outbox, for every peer. @throws the L2 error of a failed append. */
  append(relayed: RelayedInvalidation): Promise<void>
}

/** The consumer group of every outbox stream (each stream has one reader: its peer's relay). */
const GROUP = 'relay'
/** The heard keys live long: a region whose relay is gone for a day is split from everyone anyway. */
const HEARD_TTL_MS = 86_400_000

/** Keys of a region's relay, all under the region's hash tag (one slot on a Redis Cluster). */
export function regionKeys(service: string, region: string) {
  const tag = `{${service}.regions.${region}}`
  return {
    /** The outbox stream of `region` for `to`. */
    outbox: (to: string) => `${service}#outbox${tag}:${to}`,
    lease: `${service}#relay${tag}:lease`,
    /** What the relay of `region` last applied from `from`: `{"c": coveredAt, "l": lagMs}`. */
    heard: (from: string) => `${service}#relay${tag}:heard:${from}`,
  }
}

interface Peer {
  readonly region: string
  readonly l2: L2Guard
  /** The peer's outbox for this region, in the peer's L2. */
  readonly stream: string
  groupReady: boolean
  coveredAt: number
  lastLag: number
  maxLag: number
  relayed: number
  backlog: number | undefined
  splitSince: number | undefined
  splits: number
  lastSplit: RegionSplitReport | undefined
  /** While catching up after a split: when the first entry came back, and how many were replayed. */
  replay: { startedAt: number; count: number } | undefined
  overflows: number
  dropped: number
  /** Taken entries found gone at a claim, whose invalidation has not succeeded yet. */
  lostPending: number
}

export class RegionRelay implements RegionView {
  readonly #options: ResolvedRegions
  readonly #service: string
  readonly #local: L2Guard
  readonly #clock: Clock
  readonly #logger: Logger
  readonly #apply: ApplyRelayed
  readonly #invalidateDeclared: InvalidateDeclared
  readonly #keys: ReturnType<typeof regionKeys>
  readonly #peers: Peer[]
  readonly #consumer: string
  readonly #token = randomBytes(16).toString('base64url')
  readonly #leaseMs: number
  #leader = false
  #started = false
  /** The first read of the recorded coverage, while under way. */
  #initial: Promise<void> | undefined
  #settle!: () => void
  /** Resolves once this process has read the coverage its region's relay recorded (or the relay stopped). */
  readonly #settled: Promise<void> = new Promise((resolve) => (this.#settle = resolve))
  #timer: ReturnType<typeof setTimeout> | undefined
  #running: Promise<void> | undefined
  #stopped = false
  #appended = 0
  #appendErrors = 0
  #skipped = 0
  #errors = 0
  coveredAt: number

  constructor(
    options: ResolvedRegions,
    service: string,
    local: L2Guard,
    peers: readonly { region: string; l2: L2Guard }[],
    clock: Clock,
    logger: Logger,
    apply: ApplyRelayed,
    invalidateDeclared: InvalidateDeclared,
  ) {
    this.#options = options
    this.#service = service
    this.#local = local
    this.#clock = clock
    this.#logger = logger
    this.#apply = apply
    this.#invalidateDeclared = invalidateDeclared
    this.#keys = regionKeys(service, options.region)
    this.#consumer = `${options.region}.${randomBytes(6).toString('base64url')}`
    this.#leaseMs = Math.max(options.splitAfterMs / 2, 2 * options.heartbeatMs)
    // Until the first relay step says otherwise, a process has heard from everyone now: its L1 is empty, and its
    // first step (one heartbeat away) reads the coverage the region's relay recorded.
    const now = clock.now()
    this.coveredAt = now
    this.#peers = peers.map((peer) => ({
      region: peer.region,
      l2: peer.l2,
      stream: regionKeys(service, peer.region).outbox(options.region),
      groupReady: false,
      coveredAt: now,
      lastLag: 0,
      maxLag: 0,
      relayed: 0,
      backlog: undefined,
      splitSince: undefined,
      splits: 0,
      lastSplit: undefined,
      replay: undefined,
      overflows: 0,
      dropped: 0,
      lostPending: 0,
    }))
  }

  get region(): string {
    return this.#options.region
  }

  get splitAfterMs(): number {
    return this.#options.splitAfterMs
  }

  start(): void {
    this.#schedule(0)
  }

  async append(relayed: RelayedInvalidation): Promise<void> {
    const fields = encodeOutboxEntry({ region: this.#options.region, sentAt: this.#clock.now(), relayed })
    try {
      await Promise.all(
        this.#peers.map((peer) =>
          this.#local.queueAppend(this.#keys.outbox(peer.region), fields, this.#options.outboxMaxLength),
        ),
      )
      this.#appended++
    } catch (error) {
      this.#appendErrors++
      throw error
    }
  }

  stats(): RegionStats {
    const now = this.#clock.now()
    const peers: Record<string, RegionPeerStats> = {}
    for (const peer of this.#peers) {
      peers[peer.region] = Object.freeze({
        region: peer.region,
        split: peer.splitSince !== undefined,
        splitSince: peer.splitSince,
        heardAgoMs: Math.max(0, now - peer.coveredAt),
        lagMs: Object.freeze({ last: peer.lastLag, max: peer.maxLag }),
        relayed: peer.relayed,
        backlog: peer.backlog,
        splits: peer.splits,
        lastSplit: peer.lastSplit,
        overflows: peer.overflows,
        dropped: peer.dropped,
      })
    }
    return Object.freeze({
      region: this.#options.region,
      relaying: this.#leader,
      peers: Object.freeze(peers),
      outbox: Object.freeze({ appended: this.#appended, errors: this.#appendErrors }),
      skipped: this.#skipped,
      errors: this.#errors,
    })
  }

  /** Stops the loop, waits for the step under way, and hands the lease back. */
  async stop(): Promise<void> {
    this.#stopped = true
    this.#settle()
    clearTimeout(this.#timer)
    await this.#running
    if (this.#leader) {
      this.#leader = false
      await this.#local.unlock(this.#keys.lease, this.#token).catch(() => false)
    }
  }

  #schedule(delayMs: number): void {
    if (this.#stopped) return
    this.#timer = setTimeout(() => {
      this.#running = this.#step().then(
        (more) => this.#schedule(more ? 0 : this.#options.heartbeatMs),
        () => this.#schedule(this.#options.heartbeatMs),
      )
    }, delayMs).unref()
  }

  /** One step: the lease, then relay (heartbeats out, peers' entries in) or read what the relay recorded. */
  async #step(): Promise<boolean> {
    let more = false
    try {
      // First, whoever relays: start from the coverage the region's relay recorded, not from this process's start
      // (a process starting during a split must not take its start for news from the peers).
      if (!this.#started) await this.#readInitial()
      if (this.#options.relay) await this.#holdLease()
      if (this.#leader) {
        await Promise.all(this.#peers.map((peer) => this.#heartbeat(peer)))
        const results = await Promise.all(this.#peers.map((peer) => this.#pump(peer)))
        more = results.includes(true)
      } else {
        await this.#readHeard()
      }
    } catch {
      this.#errors++
    }
    this.#observeAll()
    return more && !this.#stopped
  }

  /** Every peer's split state, from its coverage age now (a peer heals here only for a process that does not relay). */
  #observeAll(): void {
    const now = this.#clock.now()
    for (const peer of this.#peers) this.#observe(peer, now, false)
  }

  /**
   * Resolves once this process knows how old its news from every peer is: it read the coverage its region's relay
   * recorded, and a peer split before this process started counts as split. Tries the read at once (the caller
   * knows L2 is ready: the first step may have run before), then waits for a later step's read.
   */
  ready(): Promise<void> {
    if (this.#started || this.#stopped) return Promise.resolve()
    return this.#readInitial().catch(() => this.#settled)
  }

  /** The first read of the recorded coverage, shared by the loop's step and `ready()`; tried again if it failed. */
  #readInitial(): Promise<void> {
    this.#initial ??= this.#readHeard(true).then(
      () => {
        this.#started = true
        this.#observeAll()
        this.#settle()
      },
      (error: unknown) => {
        this.#initial = undefined
        throw error
      },
    )
    return this.#initial
  }

  async #holdLease(): Promise<void> {
    const { lease } = this.#keys
    try {
      this.#leader = this.#leader
        ? await this.#local.extendLock(lease, this.#token, this.#leaseMs)
        : await this.#local.tryLock(lease, this.#token, this.#leaseMs)
    } catch (error) {
      // Cannot tell whether the lease is still ours: stop relaying until it can be renewed.
      this.#leader = false
      throw error
    }
  }

  async #heartbeat(peer: Peer): Promise<void> {
    const fields = encodeOutboxEntry({
      region: this.#options.region,
      sentAt: this.#clock.now(),
      relayed: { kind: 'heartbeat' },
    })
    await this.#local
      .queueAppend(this.#keys.outbox(peer.region), fields, this.#options.outboxMaxLength)
      .catch(() => {
        this.#errors++
      })
  }

  /**
   * Reads a batch of the peer's outbox and applies it in order: first what a relay took and did not acknowledge
   * (this one after a failure, or one that died), then new entries. Resolves to whether a full batch was read.
   */
  async #pump(peer: Peer): Promise<boolean> {
    const { batchSize } = this.#options
    let entries
    try {
      if (!peer.groupReady) {
        await peer.l2.queueCreateGroup(peer.stream, GROUP)
        peer.groupReady = true
      }
      // Before anything is applied: entries after a loss must not move the peer's coverage past the lost ones.
      // Lost: entries never handed to this region's relay and trimmed (the group's count says so)...
      const dropped = (await peer.l2.queueDropped(peer.stream, GROUP)) ?? 0
      const pending = await peer.l2.queuePending(peer.stream, GROUP, 0, batchSize)
      let claimed
      if (pending.length > 0) {
        claimed = await peer.l2.queueClaim(
          peer.stream,
          GROUP,
          this.#consumer,
          0,
          pending.map((p) => p.id),
        )
        // ...and entries taken and not acknowledged that are gone, which a claim no longer finds. Redis 7 drops
        // them from the pending list as it answers, so only this process knows of them from now on: kept until
        // the invalidation succeeds.
        peer.lostPending += pending.length - claimed.length
      }
      if (dropped > 0 || peer.lostPending > 0) {
        await this.#lost(peer, dropped + peer.lostPending)
        peer.lostPending = 0
        if (dropped > 0) await peer.l2.queueSettleDropped(peer.stream, GROUP, dropped)
      }
      entries = claimed ?? (await peer.l2.queueRead(peer.stream, GROUP, this.#consumer, batchSize))
    } catch {
      this.#errors++
      return false
    }
    const done: string[] = []
    let failed = false
    for (const { id, fields } of entries) {
      const decoded = decodeOutboxEntry(fields)
      if (!decoded.ok) {
        this.#skipped++
        done.push(id)
        continue
      }
      const { entry } = decoded
      if (entry.relayed.kind !== 'heartbeat') {
        try {
          const outcome = await this.#apply(entry.relayed)
          if (outcome === 'unknown') this.#skipped++
        } catch {
          // This region's L2 could not take it: stop here, so this entry and the later ones (maybe of the same key)
          // are applied in order at the next attempt.
          this.#errors++
          failed = true
          break
        }
        if (peer.splitSince !== undefined || peer.replay !== undefined) {
          peer.replay ??= { startedAt: this.#clock.now(), count: 0 }
          peer.replay.count++
        }
      }
      done.push(id)
      peer.relayed++
      this.#covered(peer, entry.sentAt)
    }
    if (done.length > 0) {
      await peer.l2.queueAck(peer.stream, GROUP, done).catch(() => {
        // Applied but not acknowledged: delivered again, and applying twice is harmless.
        this.#errors++
      })
      await this.#recordHeard(peer)
    }
    peer.backlog = await peer.l2
      .queueSize(peer.stream, GROUP)
      .then((size) => size.length)
      .catch(() => peer.backlog)
    const drained = !failed && entries.length < batchSize
    this.#observe(peer, this.#clock.now(), drained)
    return !failed && entries.length === batchSize
  }

  /**
   * Entries of the peer's outbox were lost before this relay applied them: what they invalidated is unknown, so
   * every namespace this process declares is invalidated in this region. Rejects (and the step is retried, the loss
   * still reported) when that fails.
   */
  async #lost(peer: Peer, count: number): Promise<void> {
    const namespaces = await this.#invalidateDeclared()
    peer.overflows++
    peer.dropped += count
    const region = this.#options.region
    this.#logger.warn(
      { service: this.#service, region, peer: peer.region, dropped: count, namespaces },
      `stratacache: ${count} entries of region ${peer.region}'s outbox for ${region} were trimmed before this ` +
        `region applied them (${peer.region}'s regions.outboxMaxLength was passed): invalidated every declared ` +
        `namespace (${namespaces.join(', ') || 'none'}) in ${region}. Raise regions.outboxMaxLength in ` +
        `${peer.region} to ride out longer splits.`,
    )
  }

  #covered(peer: Peer, sentAt: number): void {
    if (sentAt > peer.coveredAt) peer.coveredAt = sentAt
    const lag = Math.max(0, this.#clock.now() - sentAt)
    peer.lastLag = lag
    if (lag > peer.maxLag) peer.maxLag = lag
    this.#recompute()
  }

  /** Tells the region's other processes how far this relay has applied the peer's outbox. */
  async #recordHeard(peer: Peer): Promise<void> {
    const text = JSON.stringify({ c: peer.coveredAt, l: peer.lastLag })
    await this.#local.set(this.#keys.heard(peer.region), Buffer.from(text), HEARD_TTL_MS).catch(() => {
      this.#errors++
    })
  }

  /**
   * A process that does not relay (or any, at its first step: `initial`): reads the coverage the relay recorded. At
   * the first step it replaces the provisional coverage (the start time), lower or not; afterwards it only advances.
   */
  async #readHeard(initial = false): Promise<void> {
    const values = await this.#local.getMany(this.#peers.map((peer) => this.#keys.heard(peer.region)))
    this.#peers.forEach((peer, i) => {
      const bytes = values[i]
      if (bytes === null || bytes === undefined) return
      try {
        const heard = JSON.parse(Buffer.from(bytes).toString('utf8')) as { c?: unknown; l?: unknown }
        if (typeof heard.c !== 'number' || typeof heard.l !== 'number') return
        if (initial || heard.c > peer.coveredAt) {
          peer.coveredAt = heard.c
          peer.lastLag = heard.l
          if (heard.l > peer.maxLag) peer.maxLag = heard.l
        }
      } catch {
        // Not ours (written by hand, another version): the coverage stays where it was, and ages.
      }
    })
    this.#recompute()
  }

  #recompute(): void {
    let oldest = Infinity
    for (const peer of this.#peers) if (peer.coveredAt < oldest) oldest = peer.coveredAt
    this.coveredAt = oldest
  }

  /**
   * The split state of a peer, from its coverage age: split past `splitAfter`; healed once its coverage is recent
   * again and (for the relay) its backlog is drained. The one place a split starts or ends.
   */
  #observe(peer: Peer, now: number, drained: boolean): void {
    const age = now - peer.coveredAt
    const region = this.#options.region
    if (peer.splitSince === undefined) {
      if (age <= this.#options.splitAfterMs) return
      peer.splitSince = now
      peer.splits++
      this.#logger.warn(
        { service: this.#service, region, peer: peer.region, heardAgoMs: age },
        `stratacache: region ${peer.region} not heard from for ${age} ms: split (strong namespaces read through, ` +
          'bounded ones revalidate past their bound, eventual ones keep serving)',
      )
      if (channels.regionSplit.hasSubscribers) {
        channels.regionSplit.publish({ region, peer: peer.region, split: true, heardAgoMs: age })
      }
      return
    }
    if (age > this.#options.splitAfterMs || (this.#leader && !drained)) return
    const replay = peer.replay
    const report: RegionSplitReport = Object.freeze({
      durationMs: now - peer.splitSince,
      replayed: replay?.count ?? 0,
      convergeMs: replay === undefined ? 0 : now - replay.startedAt,
    })
    peer.lastSplit = report
    peer.splitSince = undefined
    peer.replay = undefined
    this.#logger.info(
      { service: this.#service, region, peer: peer.region, ...report },
      `stratacache: region ${peer.region} heard from again; ${report.replayed} missed invalidations replayed in ` +
        `${report.convergeMs} ms`,
    )
    if (channels.regionSplit.hasSubscribers) {
      channels.regionSplit.publish({ region, peer: peer.region, split: false, heardAgoMs: age, ...report })
    }
  }
}
