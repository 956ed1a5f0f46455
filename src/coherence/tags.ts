// The tag system of one namespace: tag keys in L2, an entry's tags, and `invalidateTag()` in every tier.
//
// Invariants:
// - An entry's tags are known when it is cached: a value whose tags() call failed is served but cached nowhere, so
//   it cannot escape a tag invalidation.
// - Negative entries carry no user tag (there is no value to compute one from): they carry NEGATIVE_TAG, and every
//   tag invalidation reaches them, in L1 and in L2.
// - A tag invalidation marks L2 first (so loads started before it, in any process, can no longer store a value
//   carrying the tag), then deletes the tagged entries, and drops L1 before and after the L2 step.
import { randomBytes } from 'node:crypto'
import { InvalidArgumentError, SerializationError } from '../errors.js'
import { escapeKeyText } from '../core/keys.js'
import type { FenceShard } from '../core/key-layout.js'
import { channels } from '../observability/channels.js'
import { isArray, NO_TAGS, type NamespaceContext } from '../namespace/context.js'
import { fenceTtl } from '../storage/entry-store.js'
import { broadcast } from './invalidation.js'

/** The L1 tag of negative entries (never a user's tag: tags are non-empty strings escaped into keys). */
export const NEGATIVE_TAG = '\u0000negative'
const NEGATIVE_TAGS: readonly string[] = Object.freeze([NEGATIVE_TAG])

export class Tags<P, V> {
  readonly #ctx: NamespaceContext<P, V>

  constructor(ctx: NamespaceContext<P, V>) {
    this.#ctx = ctx
  }

  /**
   * An `invalidateTag()` asked of this namespace directly, which declares no `tags`: it can reach only negative
   * entries (every tag invalidation drops those), which is rarely what the caller meant. Said once.
   */
  warnIfTagless(tags: readonly string[]): void {
    const ctx = this.#ctx
    if (ctx.tags !== undefined) return
    ctx.warnOnce(
      'tagless-invalidate',
      { tags },
      `stratacache: invalidateTag(${tags.map((tag) => JSON.stringify(tag)).join(', ')}) on namespace ` +
        `"${ctx.name}", which declares no \`tags\`: its entries carry none, so only its negative entries are ` +
        'dropped. Declare `tags` (e.g. tags: ({ tenantId }) => [`tenant:${tenantId}`]), or use delete(), clear() ' +
        'or invalidateAll()',
    )
  }

  /** `ns.invalidateTag(...tags)`, once the cache is known open; `relay` false when another region sent it. */
  async invalidate(tags: string[], relay = true): Promise<number> {
    const ctx = this.#ctx
    for (const tag of tags) this.tagKey(tag)
    this.dropTagged(tags)
    if (ctx.rt.l2 === undefined) return 0
    let deleted = 0
    try {
      // Per fence shard (one on one Redis node; each a slot of its own on a cluster), concurrently: first the marks,
      // so a load that started before this (in any process) can no longer store an entry of that shard carrying one
      // of these tags, nor a negative entry (whose tags are unknown); then the shard's entries already stored.
      const l2 = ctx.rt.l2
      const ttl = fenceTtl(ctx.options)
      const counts = await Promise.all(
        ctx.marks.shards.map(async (shard) => {
          await l2.markInvalidated(
            shard.seq,
            [...tags.map((tag) => this.tagMark(tag, shard)), shard.anyTag],
            ttl,
          )
          let count = 0
          for (const key of [...tags.map((tag) => this.tagKey(tag, shard)), shard.negativeSet]) {
            count += await l2.deleteSetMembers(key, `${key}#${randomBytes(6).toString('base64url')}`)
          }
          return count
        }),
      )
      for (const count of counts) deleted += count
    } catch (error) {
      ctx.counters.l2Errors++
      throw error
    } finally {
      // Loads that read L2 before the unlink may have refilled L1 meanwhile: drop again.
      this.dropTagged(tags)
    }
    await broadcast(
      ctx,
      { kind: 'tags', namespace: ctx.name, tags },
      `the invalidation of ${tags.join(', ')}`,
      relay,
    )
    return deleted
  }

  /** Drops L1 entries tagged with one of `tags`, and negative entries (their tags are unknown); fences loads. */
  dropTagged(tags: readonly string[]): void {
    this.#ctx.fence.touchTags(tags)
    // A load's tags are unknown until its value arrives, so no read starting now may join any load started before
    // (the fence already keeps their values out of the tiers).
    this.#ctx.flights.cancelAll()
    this.#ctx.l1?.removeTagged([...tags, NEGATIVE_TAG], (node) => this.#ctx.throttle.delete(node.key))
  }

  /** The invalidation mark of `tag` in `shard` (its tag set's key plus `#inv`), checked by the store of every load. */
  tagMark(tag: string, shard: FenceShard): string {
    return `${this.tagKey(tag, shard)}#inv`
  }

  /** The L2 set of a tag of the entry at `key`, in its fence shard: negative entries share one set per shard. */
  setKeyOf(tag: string, key: string): string {
    const shard = this.#ctx.marks.shardOf(key)
    return tag === NEGATIVE_TAG ? shard.negativeSet : this.tagKey(tag, shard)
  }

  /**
   * The Redis set holding the keys of this namespace's entries tagged `tag` in `shard` (the only one on one node);
   * the set, its snapshot and its members share a slot. @throws InvalidArgumentError for a tag that is not a
   * non-empty string.
   */
  tagKey(tag: string, shard: FenceShard = this.#ctx.marks.shards[0]!): string {
    const escaped = typeof tag === 'string' && tag.length > 0 ? escapeKeyText(tag) : undefined
    if (escaped === undefined)
      throw new InvalidArgumentError('tag', tag, 'a non-empty string such as "tenant:t1"')
    return shard.tagSet(escaped)
  }

  /** The entry's tags, or undefined when the tags function failed: such a value is served but cached nowhere. */
  tagsFor(params: unknown, key: string, value: unknown): readonly string[] | undefined {
    // A negative entry's tags cannot be computed from a value it does not have: every tag invalidation reaches it.
    if (value === null || value === undefined) return NEGATIVE_TAGS
    const tagsOf = this.#ctx.tags
    if (tagsOf === undefined) return NO_TAGS
    try {
      const tags: unknown = tagsOf(params as P, value as V)
      if (!isArray(tags)) throw new TypeError(`tags() must return an array of strings, got ${typeof tags}`)
      const list = tags as readonly unknown[]
      for (const tag of list) this.tagKey(tag as string)
      return list as readonly string[]
    } catch (cause) {
      this.#ctx.counters.serializeErrors++
      if (channels.serializeError.hasSubscribers) {
        const error = new SerializationError(this.#ctx.name, key, { cause })
        channels.serializeError.publish({ namespace: this.#ctx.name, key, error })
      }
      return undefined
    }
  }
}
