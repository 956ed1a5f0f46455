// storage/: one namespace's entries in and out of its tiers. The only place that decodes L2 bytes, encodes and
// weighs entries, reads the L2 fences, stores loaded values, and fills L1.
//
// Invariants:
// - Foreign, corrupt, untrusted or expired L2 bytes read as a miss (counted, published), never as a throw.
// - Entry times in L2 are on L2's clock (shifted by the measured offset both ways), and clamped to this process's
//   clock and policy when read, so a skewed writer cannot stretch or cut an entry's life elsewhere.
// - Every L1 fill passes the entry's size (its encoded bytes), whichever tier it came from, so `l1.maxBytes` holds.
// - A loaded value fills L1 only if the local fence allows it, and is written to L2 only through the fenced store
//   with a fence read before its load; without that fence it is not written to L2 at all.
// - Before the generation is known, L2 is not used (its keys depend on the generation).
// - With a host tier (`storage/host-tier.ts`), an L2 read asks it first; a fresh copy there answers (decoded as an
//   L2 entry, counted in `hostHits` and `l2Hits`). Entries read from L2 or stored through the fence are copied there
//   under the same local fence as an L1 fill; negative entries are not.
import type { Entry } from '../codecs/envelope.js'
import type { LoadLifetime } from '../load/invoke.js'
import { DecodeError, SerializationError, UntrustedValueError, ValueTooLargeError } from '../errors.js'
import { channelNames, channels } from '../observability/channels.js'
import type { ResolvedNamespaceOptions } from '../options.js'
import type { GetReply, L2Guard } from '../policies/l2-guard.js'
import type { L2Fence } from '../tiers/l2-store.js'
import type { Tags } from '../coherence/tags.js'
import { NO_TAGS, type NamespaceContext } from '../namespace/context.js'
import { refreshAt } from '../refresh/refresher.js'
import { hostTagSet, type HostTier } from './host-tier.js'

/** An entry read from L2, with its size in bytes (what it weighs in L1). */
export interface Stored {
  readonly entry: Entry
  readonly size: number
  /** The encoded bytes, as L2 holds them. */
  readonly bytes: Uint8Array
  /** Read from the host tier rather than from L2 (so not copied back there). */
  readonly fromHost: boolean
}

/** Where a read of L2 answers (`EntryStore.readL2Into`). Neither method may throw. */
export interface StoredReply {
  /** What L2 held, decoded and fresh or stale: undefined for none, for foreign bytes and for a failed read. */
  stored(stored: Stored | undefined): void
  /** Decoding threw: a fault of ours, not of the bytes (bad bytes are a miss). */
  failed(error: Error): void
}

/** One read of L2 under way: the guard's reply, decoding what it answers for `reply`. */
class L2Read<P, V> implements GetReply {
  readonly #store: EntryStore<P, V>
  readonly #key: string
  readonly #reply: StoredReply

  constructor(store: EntryStore<P, V>, key: string, reply: StoredReply) {
    this.#store = store
    this.#key = key
    this.#reply = reply
  }

  resolve(bytes: Uint8Array | null): void {
    let stored: Stored | undefined
    try {
      stored = this.#store.decodeRead(this.#key, bytes)
    } catch (error) {
      this.#reply.failed(error instanceof Error ? error : new Error(String(error)))
      return
    }
    this.#reply.stored(stored)
  }

  reject(): void {
    this.#store.readFailed()
    this.#reply.stored(undefined)
  }
}

/**
 * What became of a loaded value: in L2; refused by a fence (a write or invalidation won); `failed`: meant for the
 * namespace's L2, which did not take it or did not say so within `timeouts.l2` (unreachable, an error, slow);
 * `skipped`: not meant for L2 (no L2, a value it cannot encode, a life the loader ended, tags unknown, closed).
 */
export type StoreOutcome = 'stored' | 'refused' | 'failed' | 'skipped'
const SKIPPED: Promise<StoreOutcome> = Promise.resolve('skipped')
const REFUSED: Promise<StoreOutcome> = Promise.resolve('refused')
const FAILED: Promise<StoreOutcome> = Promise.resolve('failed')

export class EntryStore<P, V> {
  readonly #ctx: NamespaceContext<P, V>
  readonly #tags: Tags<P, V>

  constructor(ctx: NamespaceContext<P, V>, tags: Tags<P, V>) {
    this.#ctx = ctx
    this.#tags = tags
  }

  /** L2, once the generation is known (keys depend on it); undefined before, as when there is no L2. */
  get #l2(): L2Guard | undefined {
    return this.#ctx.generation.known ? this.#ctx.rt.l2 : undefined
  }

  /** The host tier, for a namespace whose entries may have copies outside L2 (not a strong one). */
  get #host(): HostTier | undefined {
    return this.#ctx.options.l1TtlMs > 0 ? this.#ctx.rt.host : undefined
  }

  /**
   * Whether L2's copy of `key` may answer anything here: not while a change of the key this process made did not
   * reach Redis (its repair is pending, write/repairs.ts), since L2 may still hold the value it replaced. Every read
   * of L2 (a get, a lock wait, a refresh, a warm-up, peek, getMany) asks here, and then loads instead.
   */
  #distrusted(key: string): boolean {
    const repairs = this.#ctx.repairs
    return repairs !== undefined && repairs.has(key)
  }

  /** What L2 (or the host tier) holds for `key`; undefined when L2 cannot be read yet (or there is none). */
  readL2(key: string): Promise<Stored | undefined> | undefined {
    if (this.#l2 === undefined || this.#distrusted(key)) return undefined
    return new Promise<Stored | undefined>((resolve, reject) => {
      this.readL2Into(key, { stored: resolve, failed: reject })
    })
  }

  /**
   * Reads `key` and answers `reply` (never before this returns): the read of every flight past L1, without a
   * promise of its own (read/reader.ts). With a host tier, its copy is asked first, then L2 on a miss. A failed
   * read (the guard already published the error) is counted and answers as a miss. False, and `reply` is never
   * called, when L2 cannot be read yet (or there is none).
   */
  readL2Into(key: string, reply: StoredReply): boolean {
    const l2 = this.#l2
    if (l2 === undefined || this.#distrusted(key)) return false
    const host = this.#host
    if (host === undefined) {
      l2.getThen(key, new L2Read(this, key, reply))
      return true
    }
    host.getMany([key]).then(
      (found) => {
        let copy: Stored | undefined
        try {
          copy = this.#fromHost(key, found[0])
          if (copy === undefined) l2.getThen(key, new L2Read(this, key, reply))
        } catch (error) {
          // A host store that answered no array, or a store that throws where it should reject: the read fails
          // (neither throw comes after `reply` was answered).
          reply.failed(error instanceof Error ? error : new Error(String(error)))
          return
        }
        if (copy !== undefined) reply.stored(copy)
      },
      (error: unknown) => reply.failed(error instanceof Error ? error : new Error(String(error))),
    )
    return true
  }

  /** `L2Read`'s: L2's bytes for `key` (null for none) decoded, or a miss. */
  decodeRead(key: string, bytes: Uint8Array | null): Stored | undefined {
    return bytes === null ? undefined : this.#decode(key, bytes)
  }

  /** `L2Read`'s: a read failed (the guard published why); it answers as a miss. */
  readFailed(): void {
    this.#ctx.counters.l2Errors++
  }

  async readL2Fresh(key: string): Promise<Stored | undefined> {
    const stored = await this.readL2(key)
    return stored !== undefined && stored.entry.freshUntil > this.#ctx.clock.now() ? stored : undefined
  }

  async readL2Many(keys: string[]): Promise<(Stored | undefined)[]> {
    const found = await this.#readL2Many(keys)
    return this.#ctx.counters.repairsPending === 0
      ? found
      : found.map((stored, i) => (this.#distrusted(keys[i]!) ? undefined : stored))
  }

  async #readL2Many(keys: string[]): Promise<(Stored | undefined)[]> {
    const l2 = this.#l2
    if (l2 === undefined) return keys.map(() => undefined)
    const host = this.#host
    const found: (Stored | undefined)[] =
      host === undefined
        ? keys.map(() => undefined)
        : (await host.getMany(keys)).map((bytes, i) => this.#fromHost(keys[i]!, bytes))
    const missing = keys.filter((_, i) => found[i] === undefined)
    if (missing.length === 0) return found
    try {
      const values = await l2.getMany(missing)
      let next = 0
      return found.map((stored, i) => {
        if (stored !== undefined) return stored
        const bytes = values[next++]
        return bytes === null || bytes === undefined ? undefined : this.#decode(keys[i]!, bytes)
      })
    } catch {
      this.#ctx.counters.l2Errors++
      return found
    }
  }

  /** A host copy that decodes and is fresh, counted; undefined otherwise (then L2 is asked). */
  #fromHost(key: string, bytes: Uint8Array | null | undefined): Stored | undefined {
    // HostTier.getMany answers bytes or null per key (anything else from a store is a failed host read there).
    if (bytes === null || bytes === undefined) return undefined
    const stored = this.#decode(key, bytes)
    if (stored === undefined || stored.entry.freshUntil <= this.#ctx.clock.now()) return undefined
    this.#ctx.counters.hostHits++
    return { ...stored, fromHost: true }
  }

  /**
   * Copies an entry into the host tier, for as long as an L1 copy of it may live and it is fresh, with its tags'
   * host sets; in the background (close() waits for it). Negative entries stay out.
   */
  #putHost(host: HostTier, key: string, bytes: Uint8Array, entry: Entry, tags: readonly string[]): void {
    if (entry.value === null || entry.value === undefined) return
    const ctx = this.#ctx
    const ttlMs = Math.min(entry.freshUntil - ctx.clock.now(), ctx.options.l1TtlMs)
    if (ttlMs < 1) return
    const sets = tags.map((tag) => hostTagSet(ctx.prefix, tag))
    ctx.rt.background(host.put(key, bytes, ttlMs, sets))
  }

  /**
   * Bytes from L2 to an entry and its size; foreign, corrupt or expired bytes are a miss (counted and published),
   * never a throw. Times written by another process's clock are clamped to this process's policy and clock.
   */
  #decode(key: string, bytes: Uint8Array): Stored | undefined {
    const { name, counters } = this.#ctx
    const result = this.#ctx.codec.decode(bytes, key)
    if (!result.ok && result.security !== undefined) {
      // Never returned, never a throw: a miss, counted, and a security event for whoever watches.
      counters.untrustedValues++
      if (channels.security.hasSubscribers) {
        const { security: problem, keyId } = result
        const error = new UntrustedValueError(name, key, problem, keyId)
        channels.security.publish({
          namespace: name,
          key,
          problem,
          ...(keyId === undefined ? {} : { keyId }),
          error,
        })
      }
      return undefined
    }
    if (!result.ok) {
      counters.decodeErrors++
      if (channels.decodeError.hasSubscribers) {
        const error = new DecodeError(key, result.reason, { cause: result.cause })
        channels.decodeError.publish({ namespace: name, key, error })
      }
      return undefined
    }
    const now = this.#ctx.clock.now()
    const entry = this.#clampTimes(result.entry, this.#ctx.rt.l2ClockOffsetMs, now)
    return entry.staleUntil > now ? { entry, size: bytes.byteLength, bytes, fromHost: false } : undefined
  }

  /**
   * Entry times in L2 are on L2's clock (`coherence/clock-sync.ts`): `offsetMs` brings them back to this process's
   * clock. What is left is skew the offset could not see (a writer that had not measured yet, skew under the
   * tolerance, an older writer): an entry "created" in this process's future is rebased to now, and no entry is
   * fresh or stale for longer than this namespace's policy allows, so a skewed writer cannot make L1 copies live
   * for its skew.
   */
  #clampTimes(entry: Entry, offsetMs: number, now: number): Entry {
    const negative = entry.value === null || entry.value === undefined
    const { ttlMs, jitterMs, negativeTtlMs, staleForMs } = this.#ctx.options
    const ahead = entry.createdAt - offsetMs - now
    const shift = offsetMs + (ahead > 0 ? ahead : 0)
    const createdAt = entry.createdAt - shift
    const freshUntil = Math.min(
      entry.freshUntil - shift,
      createdAt + (negative ? negativeTtlMs : ttlMs + jitterMs),
    )
    const staleUntil = Math.min(entry.staleUntil - shift, freshUntil + (negative ? 0 : staleForMs))
    if (createdAt === entry.createdAt && freshUntil === entry.freshUntil && staleUntil === entry.staleUntil) {
      return entry
    }
    return { ...entry, createdAt, freshUntil, staleUntil }
  }

  /**
   * A new entry for `value`, written now, with the namespace's TTL, jitter and stale window, shortened by what its
   * loader said (`lifetime`): a TTL shorter than the namespace's, an instant after which it is never served.
   */
  newEntry(value: V, lifetime?: LoadLifetime): Entry<V> {
    const now = this.#ctx.clock.now()
    const options = this.#ctx.options
    const { ttlMs, jitterMs, negativeTtlMs } = options
    const negative = value === null || value === undefined
    let ttl = negative ? negativeTtlMs : ttlMs + Math.round(this.#ctx.rt.random() * jitterMs)
    const staleFor = negative ? 0 : options.staleForMs
    if (lifetime === undefined)
      return { value, createdAt: now, freshUntil: now + ttl, staleUntil: now + ttl + staleFor }
    // Shorter only: the namespace's TTL is what its caps, fences and the readers' clamp are sized for.
    if (lifetime.ttlMs !== undefined) ttl = Math.min(ttl, lifetime.ttlMs)
    // `setTtl(0)`: not to be cached at all, not even stale.
    if (ttl <= 0) return { value, createdAt: now, freshUntil: now, staleUntil: now }
    let freshUntil = now + ttl
    let staleUntil = freshUntil + staleFor
    if (lifetime.until !== undefined) {
      const until = Math.max(now, lifetime.until)
      freshUntil = Math.min(freshUntil, until)
      staleUntil = Math.min(staleUntil, until)
    }
    return { value, createdAt: now, freshUntil, staleUntil }
  }

  /**
   * The L2 fences loads of `keys` start under (their versions and the namespace's invalidation sequence), read in
   * one round trip; undefined when L2 cannot say, and then the loaded values are not written to L2.
   */
  readFences(keys: readonly string[]): Promise<(L2Fence | undefined)[] | undefined> {
    const l2 = this.#l2
    if (l2 === undefined) return Promise.resolve(undefined)
    const versionKeys = keys.map((key) => versionKey(key))
    // One read per fence shard (a single one on one Redis node): each reads one slot of a cluster.
    const groups = this.#ctx.marks.group(keys)
    return Promise.all(
      groups.map(({ shard, indexes }) =>
        l2.readFence(
          indexes.map((i) => versionKeys[i]!),
          shard.seq,
          shard.epoch,
        ),
      ),
    ).then(
      (reads) => {
        const fences: L2Fence[] = new Array<L2Fence>(keys.length)
        // Write-behind: no store while a write of the entry is queued (the source is older than the cache).
        const pending = this.#ctx.writeBehind === undefined ? undefined : this.#ctx.keys
        groups.forEach(({ shard, indexes }, g) => {
          const { versions, seq, epoch } = reads[g]!
          indexes.forEach((i, j) => {
            const pendingKey = pending?.pendingMark(keys[i]!)
            fences[i] = {
              versionKey: versionKeys[i]!,
              version: versions[j]!,
              epochKey: shard.epoch,
              epoch,
              ...(pendingKey === undefined ? {} : { pendingKey }),
              seq,
              marks: NO_TAGS,
              sets: NO_TAGS,
            }
          })
        })
        return fences
      },
      () => {
        this.#ctx.counters.l2Errors++
        return undefined
      },
    )
  }

  /**
   * Caches a loaded value: in L1 unless the local fence says an invalidation this process saw came after the load
   * started; in L2 (in the background: the caller has its value) through the store script, which refuses it if
   * its version or an invalidation mark moved since `fence` was read, and adds it to its tag sets atomically.
   * Resolves to whether it landed in L2.
   */
  store(
    params: P,
    key: string,
    value: V,
    token: number,
    fence: L2Fence | undefined,
    lifetime?: LoadLifetime,
  ): Promise<StoreOutcome> {
    const ctx = this.#ctx
    // A load that finished after close() (its loader ignored the signal) must not refill L1 or write to L2.
    if (ctx.rt.closed) return SKIPPED
    const negative = value === null || value === undefined
    const tags = this.#tags.tagsFor(params, key, value)
    // An entry whose tags are unknown could escape a tag invalidation: serve it, cache it nowhere.
    if (tags === undefined) return SKIPPED
    if (!ctx.fence.mayFill(token, key, tags, negative)) {
      ctx.counters.staleLoadsDropped++
      return REFUSED
    }
    const entry = this.newEntry(value, lifetime)
    // A life the loader ended already (`setTtl(0)`, `expireAt` in the past): the caller gets it, no tier keeps it.
    if (entry.staleUntil <= entry.createdAt) {
      // Nor an older copy: this process must not serve that one again while a newer value exists.
      this.l1Delete(params)
      return SKIPPED
    }
    let bytes: Buffer | undefined
    let size: number
    try {
      ;({ bytes, size } = this.encodeIfNeeded(entry, key))
    } catch (cause) {
      const tooLarge = cause instanceof ValueTooLargeError
      // Too large for L2 is not too large for L1: it is weighed against the L1 budget at its real size.
      size = tooLarge ? cause.size : 0
      if (tooLarge) ctx.counters.oversized++
      else ctx.counters.serializeErrors++
      const error = tooLarge ? cause : new SerializationError(ctx.name, key, { cause })
      if (channels.serializeError.hasSubscribers) {
        channels.serializeError.publish({ namespace: ctx.name, key, error })
      }
      // Unserializable and not weighed: too risky for a byte-bounded L1, harmless for an entry-bounded one.
      const skipL1 = !tooLarge && ctx.l1 !== undefined && ctx.l1.maxBytes !== Infinity
      // The loader returns such values every time: said once per namespace, then counted.
      const kept = ctx.l1 !== undefined && !skipL1 ? ' and kept in L1' : ''
      const counter = tooLarge ? 'oversized' : 'serializeErrors'
      ctx.warnOnce(
        error.code,
        { key, code: error.code },
        `stratacache: ${error.message} The loaded value was served${kept}; other processes load it again. Said ` +
          `once for the namespace; counted in stats().${counter} and published on ${channelNames.serializeError}.`,
      )
      if (skipL1) return SKIPPED
    }
    this.fillL1(params, key, entry, size, tags)
    // Not for L2: there is none, or the value cannot be encoded for it (counted above, the same on every load).
    if (ctx.rt.l2 === undefined || bytes === undefined) return SKIPPED
    // For L2, which cannot take it now: its generation unknown (Redis down since the start), or the fence not read.
    const l2 = this.#l2
    if (l2 === undefined || fence === undefined) return FAILED
    const ttlMs = entry.staleUntil - entry.createdAt
    const shard = ctx.marks.shardOf(key)
    const work = l2
      .storeFenced(
        { key, value: bytes, ttlMs },
        {
          ...fence,
          marks: negative
            ? shard.negative
            : [shard.cleared, ...tags.map((t) => this.#tags.tagMark(t, shard))],
          sets: negative ? [shard.negativeSet] : tags.map((t) => this.#tags.tagKey(t, shard)),
        },
      )
      .then(
        (stored): StoreOutcome => {
          if (stored) {
            // Copied for the host's other processes, unless an invalidation this process saw came meanwhile.
            const host = this.#host
            if (host !== undefined && ctx.fence.mayFill(token, key, tags, negative)) {
              this.#putHost(host, key, bytes, entry, tags)
            }
            return 'stored'
          }
          // A write or invalidation won the race: this value is older than what it left; drop it here too.
          ctx.counters.staleLoadsDropped++
          const node = ctx.l1?.byKey(key)
          if (node !== undefined && node.value === entry) ctx.l1!.remove(node)
          return 'refused'
        },
        (): StoreOutcome => {
          ctx.counters.l2Errors++
          return 'failed'
        },
      )
    ctx.rt.background(work)
    return work
  }

  /** Encodes `entry` for L2, or only to weigh it against an L1 byte budget; size 0 when neither needs bytes. */
  encodeIfNeeded(entry: Entry, key: string): { bytes: Buffer | undefined; size: number } {
    if (!this.#needsBytes()) return { bytes: undefined, size: 0 }
    // Written on L2's clock, so that every process reads the same instants (`coherence/clock-sync.ts`).
    const offsetMs = this.#ctx.rt.l2ClockOffsetMs
    const shared =
      offsetMs === 0
        ? entry
        : {
            ...entry,
            createdAt: entry.createdAt + offsetMs,
            freshUntil: entry.freshUntil + offsetMs,
            staleUntil: entry.staleUntil + offsetMs,
          }
    const { bytes, size } = this.#ctx.codec.encode(shared, key)
    return { bytes, size }
  }

  /** An entry read from L2, into L1 at its size, unless the fence says an invalidation came after `token`. */
  fillFromL2(params: unknown, key: string, stored: Stored, token: number): void {
    const host = stored.fromHost ? undefined : this.#host
    if (this.#ctx.l1 === undefined && host === undefined) return
    const { entry } = stored
    const negative = entry.value === null || entry.value === undefined
    const tags = this.#tags.tagsFor(params, key, entry.value)
    if (tags === undefined || !this.#ctx.fence.mayFill(token, key, tags, negative)) return
    if (host !== undefined) this.#putHost(host, key, stored.bytes, entry, tags)
    this.fillL1(params, key, entry, stored.size, tags)
  }

  /**
   * Puts an entry in L1 for no longer than the L2 entry lives, nor than the namespace's L1 TTL, weighed at `size`
   * bytes (its encoded size: every fill passes it, so `l1.maxBytes` holds whichever tier the value came from).
   */
  fillL1(params: unknown, key: string, entry: Entry, size: number, tags: readonly string[]): void {
    const l1 = this.#ctx.l1
    if (l1 === undefined || this.#ctx.rt.closed) return
    const now = this.#ctx.clock.now()
    // An L1 copy lives until its entry's stale window ends (or less, by l1.ttl): never past the L2 entry.
    const ttl = Math.min(this.#ctx.options.l1TtlMs, entry.staleUntil - now)
    if (ttl <= 0 || size > l1.maxBytes) {
      // Expired already, or too large for the whole L1 budget: serve it without keeping it in L1.
      l1.removeParams(params)
      return
    }
    l1.put(params, key, entry, {
      expiresAt: now + ttl,
      refreshAt: refreshAt(entry, this.#ctx.options),
      size,
      tags,
    })
  }

  /** The L1 entry for `params` unless expired (stale ones included), without counting a read. */
  l1Peek(params: unknown): Entry | undefined {
    const node = this.#ctx.l1?.find(params)
    return node === undefined || node.expiresAt <= this.#ctx.clock.now() ? undefined : node.value
  }

  l1Delete(params: unknown): void {
    this.#ctx.l1?.removeParams(params)
  }

  /** Whether values must be encoded: for L2, or to measure them against an L1 byte budget. */
  #needsBytes(): boolean {
    const l1 = this.#ctx.l1
    return this.#ctx.rt.l2 !== undefined || (l1 !== undefined && l1.maxBytes !== Infinity)
  }
}

/** The key of an entry's version counter in L2 (bumped by every write of the entry). */
export function versionKey(key: string): string {
  return key + '#v'
}

/** A version must outlive any load that could still store under it: the entry's whole life, and a margin. */
export function versionTtl(options: ResolvedNamespaceOptions): number {
  return options.ttlMs + options.jitterMs + options.staleForMs + 60_000
}

/**
 * How long an invalidation mark must live: longer than any load that could still try to store under an older
 * fence (the entry's life, the loader's hard timeout and the lock wait, and a margin).
 */
export function fenceTtl(options: ResolvedNamespaceOptions): number {
  const lockWait = options.lock === false ? 0 : options.lock.waitMs
  return versionTtl(options) + options.hardTimeoutMs + lockWait
}

/** Whether an L2 key is an entry, not one of its bookkeeping keys (`#v` version, `#lock`, `#tag{…}` set). */
export function isEntryKey(key: string, prefix: string): boolean {
  let start = prefix.length
  // On a Redis Cluster, a fence shard's hash tag follows the prefix: `{h.k}:` before an entry's text, `{h.k}#` before
  // a shard's bookkeeping key (core/key-layout.ts).
  if (key.charCodeAt(start) === 0x7b) {
    const close = key.indexOf('}', start)
    if (close === -1 || key.charCodeAt(close + 1) !== 0x3a) return false
    start = close + 2
  }
  const mark = key.indexOf('#', start)
  // A plain key has no '#'; a hashed one has one, right after the prefix (and its generation, if any), followed by
  // a SHA-256 digest in base64url. Tag sets (`#tag{…}`), versions (`#v`) and locks (`#lock`) are bookkeeping.
  if (mark === -1) return true
  if (!DIGEST.test(key.slice(mark + 1))) return false
  return mark === start || GENERATION_SEGMENT.test(key.slice(start, mark))
}

/** A SHA-256 digest in base64url, as a hashed key ends. */
const DIGEST = /^[A-Za-z0-9_-]{43}$/

/** The generation segment of a key of generation 1 or more: `g12:`. */
const GENERATION_SEGMENT = /^g[1-9][0-9]*:$/
