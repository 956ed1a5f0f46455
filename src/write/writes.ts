// write/: how a value changes. This file: set, write (write-through, cache-aside, or queued with write-behind),
// delete and clear. The write-behind queue, its flusher and its bounds are the other files of this folder.
//
// Invariants:
// - A write fences its key from its start to its end: loads already under way, and those starting before it ends,
//   never fill L1 with what it replaces (the local fence), nor L2 (the entry's version, bumped before the value
//   is written or deleted; `clear` sets the namespace's mark first).
// - A write that could not reach L2 leaves no copy of the new value in this process's L1: L2 may still hold the
//   old one for the other processes.
// - A write resolves only once the other processes were told (invalidation.ts), or rejects; a `set` or `delete`
//   (and so a `write`) that rejected for L2 or the bus has its key invalidated again once Redis answers (repairs.ts).
// - A write to L2 waits for the generation (keys depend on it).
import { CacheClosedError, InvalidArgumentError, InvalidOptionError, NoWriterError } from '../errors.js'
import { SerializationError, ValueTooLargeError, WriteError, WriteQueueFullError } from '../errors.js'
import { WriteTimeoutError } from '../errors.js'
import { InvalidationNotSentError, L2CircuitOpenError, L2Error, L2TimeoutError } from '../errors.js'
import { L2UnavailableError, RegionOutboxError } from '../errors.js'
import { broadcast, type Invalidator } from '../coherence/invalidation.js'
import type { Tags } from '../coherence/tags.js'
import type { NamespaceContext, NamespaceFunctions } from '../namespace/context.js'
import { fenceTtl, isEntryKey, versionKey, versionTtl, type EntryStore } from '../storage/entry-store.js'
import type { RelayedInvalidation } from '../regions/outbox-wire.js'
import type { Entry } from '../codecs/envelope.js'
import { callWithin } from '../core/bounded-call.js'
import { Repairs } from './repairs.js'
import { WriteBehindQueue, writeContext } from './write-behind.js'

/** A value `set` can cache: its entry, its tags, its bytes for L2 (none without one) and its size. */
interface Prepared<V> {
  readonly entry: Entry<V>
  readonly tags: readonly string[]
  readonly bytes: Buffer | undefined
  readonly size: number
}

export class Writes<P, V> {
  readonly #ctx: NamespaceContext<P, V>
  readonly #store: EntryStore<P, V>
  readonly #tags: Tags<P, V>
  readonly #invalidator: Invalidator<P, V>
  /** Keys whose change failed in L2 or on the bus, invalidated again once Redis answers (none without L2). */
  readonly #repairs: Repairs<P, V> | undefined

  constructor(
    ctx: NamespaceContext<P, V>,
    store: EntryStore<P, V>,
    tags: Tags<P, V>,
    invalidator: Invalidator<P, V>,
  ) {
    this.#ctx = ctx
    this.#store = store
    this.#tags = tags
    this.#invalidator = invalidator
    this.#repairs =
      ctx.rt.l2 === undefined
        ? undefined
        : new Repairs(ctx, {
            key: (params) => this.#deleteFenced(params, 'the repair of'),
            all: () => invalidator.invalidateAll(),
          })
    ctx.repairs = this.#repairs
  }

  /** The write-behind queue, flushing from this process unless `writeBehind.flush` is false. */
  startWriteBehind(
    functions: Pick<NamespaceFunctions<P, V>, 'write' | 'writeMany'>,
  ): WriteBehindQueue<P, V> | undefined {
    const { name, rt: runtime } = this.#ctx
    const config = this.#ctx.options.writeBehind
    if (config === undefined) return undefined
    if (runtime.l2 === undefined) {
      throw new InvalidOptionError(
        `${name}.writeStrategy`,
        'write-behind',
        "a cache with an L2 store (write-behind queues writes in a Redis stream), or 'write-through'",
      )
    }
    const queue = new WriteBehindQueue<P, V>({
      namespace: name,
      stream: `${runtime.service}:${name}#wb`,
      l2: runtime.l2,
      serializer: runtime.serializer,
      clock: runtime.clock,
      signal: runtime.signal,
      config,
      counters: this.#ctx.counters,
      write: functions.write,
      writeMany: functions.writeMany,
      background: (work) => runtime.background(work),
      logger: runtime.logger,
      pendingMark: (key) => this.#ctx.keys.pendingMark(key),
    })
    queue.start()
    runtime.beforeClose(() => queue.stop())
    return queue
  }

  /**
   * `ns.set(params, value)`. Checks that the cache is open itself: `write()` calls it after the source write, and a
   * cache closed meanwhile must not be written to.
   */
  async set(params: P, value: V): Promise<void> {
    if (this.#ctx.rt.closed) throw new CacheClosedError('set')
    return this.#repairing(params, () => this.#set(params, value))
  }

  async #set(params: P, value: V): Promise<void> {
    const ctx = this.#ctx
    await this.#requireGenerationOrForget(params)
    const key = ctx.keys.build(params)
    // Loads under way, and those starting until the write is done, are fenced: they read what this replaces.
    ctx.fence.beginWrite(key)
    this.#invalidator.cancelFlight(key)
    try {
      await this.#setFenced(params, key, value)
    } finally {
      ctx.fence.endWrite(key)
      this.#invalidator.cancelFlight(key)
    }
  }

  async #setFenced(params: P, key: string, value: V): Promise<void> {
    const ctx = this.#ctx
    let prepared: Prepared<V>
    try {
      prepared = this.#prepare(params, key, value)
    } catch (error) {
      // The caller replaced the value (at the source, for write()): the old one must not stay cached either.
      await this.#drop(params, key, `the entry "${key}", whose new value could not be cached`)
      throw error
    }
    const { entry, tags, bytes, size } = prepared
    this.#store.fillL1(params, key, entry, size, tags)
    if (ctx.rt.l2 !== undefined && bytes !== undefined) {
      try {
        const ttl = entry.staleUntil - entry.createdAt
        // Bump the version first: a load that started before this write can then no longer store its older value.
        await ctx.rt.l2.bumpVersion(versionKey(key), versionTtl(ctx.options))
        await Promise.all([
          ctx.rt.l2.set(key, bytes, ttl),
          ...tags.map((tag) => ctx.rt.l2!.addToSet(this.#tags.setKeyOf(tag, key), key, ttl)),
        ])
      } catch (error) {
        ctx.counters.l2Errors++
        // L2 may still hold the old value for other processes: do not be the one process serving the new one.
        this.#store.l1Delete(params)
        throw error
      }
      // Written through: the other processes drop their L1 copies and read the new value from L2.
      await broadcast(ctx, { kind: 'keys', namespace: ctx.name, keys: [key] }, `the value of "${key}"`)
    }
  }

  /**
   * What `set` caches for `value`: the entry, its tags and its bytes. @throws ValueTooLargeError or
   * SerializationError (counted) when it cannot be cached: too large, not serializable, or `tags()` failed.
   */
  #prepare(params: P, key: string, value: V): Prepared<V> {
    const ctx = this.#ctx
    value = ctx.codec.redact(value)
    const entry = this.#store.newEntry(value)
    const tags = this.#tags.tagsFor(params, key, value)
    if (tags === undefined) {
      throw new SerializationError(ctx.name, key, {
        cause: new Error('the namespace tags() function failed'),
      })
    }
    try {
      return { entry, tags, ...this.#store.encodeIfNeeded(entry, key) }
    } catch (cause) {
      if (cause instanceof ValueTooLargeError) {
        ctx.counters.oversized++
        throw cause
      }
      ctx.counters.serializeErrors++
      throw new SerializationError(ctx.name, key, { cause })
    }
  }

  /** `ns.write(params, value)`, once the cache is known open. */
  async write(params: P, value: V): Promise<void> {
    const ctx = this.#ctx
    if (ctx.writeBehind !== undefined) {
      await this.#requireGeneration()
      return this.#writeBehindOne(params, ctx.keys.build(params), value)
    }
    const key = ctx.keys.build(params)
    const write = ctx.write
    if (write === undefined) throw new NoWriterError(ctx.name)
    const timeoutMs = ctx.options.writeTimeoutMs
    const outcome = await callWithin(
      (call) => write(params, value, writeContext(ctx.name, key, call)),
      ctx.rt.signal,
      timeoutMs,
      () => new WriteTimeoutError(ctx.name, timeoutMs, 'write'),
      // It landed after all: a read between the drop below and now may have cached the value it replaced.
      { late: (late) => (late.ok ? this.#dropUnsure(params) : undefined) },
    )
    if (!outcome.ok) {
      if (!outcome.timedOut) throw new WriteError(ctx.name, key, { cause: outcome.error })
      ctx.counters.writeTimeouts++
      // The source may have the new value, or may take it later: the old one must not be served meanwhile.
      await this.#dropUnsure(params)
      throw outcome.error
    }
    if (ctx.options.writeStrategy !== 'write-through') return this.delete(params)
    try {
      await this.set(params, value)
    } catch (error) {
      if (!(error instanceof ValueTooLargeError || error instanceof SerializationError)) throw error
      // The source has the value and the cache dropped the old one everywhere (set did): the write is done, only
      // not cached. Said once per write, since each is a value the application may not know it cannot cache.
      ctx.rt.logger.warn(
        { service: ctx.rt.service, namespace: ctx.name, key, code: error.code },
        `stratacache: a write reached the source, but its value cannot be cached (${error.message}); the old value was dropped, and reads load the new one`,
      )
    }
  }

  /**
   * Drops the key's cached value after a source write whose outcome is unknown (timed out), or that landed after its
   * timeout. Never rejects: a drop that failed in L2 is counted and queued for repair by `delete`, and one after
   * `close()` has nothing left to protect.
   */
  async #dropUnsure(params: P): Promise<void> {
    try {
      await this.delete(params)
    } catch {
      // See above.
    }
  }

  async #writeBehindOne(params: P, key: string, value: V): Promise<void> {
    const ctx = this.#ctx
    let bytes: Uint8Array
    try {
      const serialized = ctx.rt.serializer.serialize(value)
      bytes = typeof serialized === 'string' ? Buffer.from(serialized, 'utf8') : serialized
    } catch (cause) {
      ctx.counters.serializeErrors++
      throw new SerializationError(ctx.name, key, { cause })
    }
    let id: string
    try {
      id = await ctx.writeBehind!.append(key, params, value, bytes)
    } catch (error) {
      // A full queue is a refusal (counted by the queue), not an L2 failure.
      if (!(error instanceof WriteQueueFullError)) ctx.counters.l2Errors++
      throw error
    }
    try {
      await this.set(params, value)
      // Another process may have queued a later write of the key and updated the cache before this update landed
      // over it: dropped then, and reads answer with the latest queued write (the mark names it). A later write's
      // mark comes before its update, and this check after this update, so one of the two sees the other.
      if (await ctx.writeBehind!.superseded(key, id)) await this.delete(params)
    } catch {
      // The write is queued and will reach the source; only the cache update failed (counted by set). This process
      // answers with the queued value meanwhile; other processes may read the older cached value until it expires.
    }
  }

  /** `ns.flushWrites()`, once the cache is known open. */
  async flushWrites(): Promise<void> {
    await this.#ctx.writeBehind?.flush()
  }

  /** `ns.writeQueue()`, once the cache is known open. */
  async writeQueue(): Promise<{
    queued: number
    inFlight: number
    deadLetters: number
    deadLetterStream: string
  }> {
    const writeBehind = this.#ctx.writeBehind
    if (writeBehind === undefined) {
      throw new InvalidArgumentError(
        'writeQueue()',
        this.#ctx.name,
        "a namespace with writeStrategy: 'write-behind'",
      )
    }
    const size = await writeBehind.size()
    return { ...size, deadLetterStream: writeBehind.deadLetterStream }
  }

  /** `ns.delete(params)`. Checks that the cache is open itself, as `set` does (cache-aside `write()` calls it). */
  async delete(params: P): Promise<void> {
    if (this.#ctx.rt.closed) throw new CacheClosedError('delete')
    return this.#repairing(params, () => this.#deleteFenced(params, 'the deletion of'))
  }

  /** `delete`, and a repair's invalidation. */
  async #deleteFenced(params: P, what: string): Promise<void> {
    const ctx = this.#ctx
    await this.#requireGenerationOrForget(params)
    const key = ctx.keys.build(params)
    // Reads that start before the UNLINK lands may read the old value: fenced until the delete is done.
    ctx.fence.beginWrite(key)
    this.#invalidator.cancelFlight(key)
    try {
      await this.#drop(params, key, `${what} "${key}"`)
    } finally {
      ctx.fence.endWrite(key)
      this.#invalidator.cancelFlight(key)
    }
  }

  /**
   * Runs `change`, a set or delete of `params`, with its repair bookkeeping. When it rejects because L2 or the bus
   * failed, the value it replaced may still be served by other processes (from L2, or their L1), so the key is
   * invalidated again once Redis answers; a refusal that changed nothing (bad parameters, an unserializable value)
   * needs none. When it succeeds, it did all that a repair pending from before it would do (which would only drop
   * its value again), so it ends that repair. The key is built only when a repair is pending or due.
   */
  async #repairing(params: P, change: () => Promise<void>): Promise<void> {
    const repairs = this.#repairs
    if (repairs === undefined) return change()
    const keyOf = (): string | undefined => {
      try {
        return this.#ctx.keys.build(params)
      } catch {
        return undefined
      }
    }
    const key = repairs.pending === 0 ? undefined : keyOf()
    const before = key === undefined ? undefined : repairs.peek(key)
    try {
      await change()
    } catch (error) {
      const failed = mayLeaveOldCopies(error) ? (key ?? keyOf()) : undefined
      if (failed !== undefined) repairs.add(failed, params)
      throw error
    }
    if (before !== undefined) repairs.settled(key!, before)
  }

  /**
   * Drops `key` from this process's L1, from L2 (its version bumped first, so a load under way cannot store it
   * again) and, through the bus, from the other processes' L1. The caller fences the key meanwhile. @throws the L2
   * or announcement error (counted).
   */
  async #drop(params: P, key: string, what: string): Promise<void> {
    const ctx = this.#ctx
    this.#store.l1Delete(params)
    if (ctx.rt.l2 === undefined) return
    try {
      await ctx.rt.l2.bumpVersion(versionKey(key), versionTtl(ctx.options))
      await ctx.rt.l2.delete([key])
    } catch (error) {
      ctx.counters.l2Errors++
      throw error
    }
    await broadcast(ctx, { kind: 'keys', namespace: ctx.name, keys: [key] }, what)
  }

  /** `ns.clear()`, once the cache is known open; `relay` false when another region's clear brought it here. */
  async clear(relay = true): Promise<number> {
    const ctx = this.#ctx
    this.#invalidator.forgetEverything()
    if (ctx.rt.l2 === undefined) return 0
    let deleted: number
    try {
      // Loads in any process that started before this can no longer store (the mark is checked by the store).
      // Every fence shard's mark (one on one Redis node), all before the first entry is deleted.
      const l2 = ctx.rt.l2
      await Promise.all(
        ctx.marks.shards.map((shard) =>
          l2.markInvalidated(shard.seq, [shard.cleared], fenceTtl(ctx.options)),
        ),
      )
      // Versions, locks and tag sets of the namespace go too, but the count is of entries.
      deleted = await ctx.rt.l2.deletePrefix(ctx.prefix, (key) => isEntryKey(key, ctx.prefix))
    } catch (error) {
      ctx.counters.l2Errors++
      throw error
    } finally {
      // A get during the scan may have read a value before its UNLINK and put it in L1, or be reading one now:
      // forget again, so nothing from before the clear survives it in this process.
      this.#invalidator.forgetEverything()
    }
    await broadcast(ctx, { kind: 'namespace', namespace: ctx.name }, 'the clear', relay)
    return deleted
  }

  /**
   * Another region's write or invalidation, relayed here (regions/region-relay.ts): applied to this region's L2,
   * this process's L1 and, through the bus, the other processes' L1, and never appended to the outbox again. Each
   * step is idempotent, so a delivery twice is harmless. Resolves once applied; rejects when L2 could not take it
   * (the relay tries again).
   */
  async applyRelayed(relayed: RelayedInvalidation): Promise<void> {
    if (relayed.kind === 'tags') {
      await this.#tags.invalidate([...relayed.tags], false)
      return
    }
    if (relayed.kind === 'clear') {
      await this.clear(false)
      return
    }
    if (relayed.kind === 'all') {
      await this.#invalidator.invalidateAll(false)
      return
    }
    const ctx = this.#ctx
    const l2 = ctx.rt.l2!
    await this.#requireGeneration()
    // Keys of this region's generation and layout; as `delete` does for each: fenced until the delete is done.
    const keys = relayed.keys.flatMap((relative) => ctx.keys.keysForRelative(relative))
    for (const key of keys) ctx.fence.beginWrite(key)
    this.#invalidator.apply({ kind: 'keys', namespace: ctx.name, keys })
    try {
      try {
        await Promise.all(
          keys.map(async (key) => {
            await l2.bumpVersion(versionKey(key), versionTtl(ctx.options))
            await l2.delete([key])
          }),
        )
      } catch (error) {
        ctx.counters.l2Errors++
        throw error
      }
      await broadcast(ctx, { kind: 'keys', namespace: ctx.name, keys }, 'a relayed invalidation', false)
    } finally {
      for (const key of keys) {
        ctx.fence.endWrite(key)
        this.#invalidator.cancelFlight(key)
      }
    }
  }

  /** For writes to L2: the generation, read now if need be. @throws the L2 error when it cannot be read. */
  #requireGeneration(): Promise<void> {
    return this.#ctx.generation.require()
  }

  /** For set and delete: as `#requireGeneration`, but a failure drops this process's L1 copy first, as an L2 failure later in a write would. */
  async #requireGenerationOrForget(params: P): Promise<void> {
    try {
      await this.#requireGeneration()
    } catch (error) {
      this.#store.l1Delete(params)
      throw error
    }
  }
}

/** Whether `error` says the change did not reach L2, or reached it but not the other processes (or regions). */
function mayLeaveOldCopies(error: unknown): boolean {
  return (
    error instanceof L2Error ||
    error instanceof L2TimeoutError ||
    error instanceof L2CircuitOpenError ||
    error instanceof L2UnavailableError ||
    error instanceof InvalidationNotSentError ||
    error instanceof RegionOutboxError
  )
}
