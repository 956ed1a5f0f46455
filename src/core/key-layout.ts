// Where a namespace's L2 keys live: on one Redis node (no hash tags), or spread over a Redis Cluster in fence shards.
//
// A fenced store touches an entry, its version, the invalidation marks and the tag sets in one script, and a
// Redis Cluster runs a script only when all its keys hash to one slot. On a cluster, a namespace is therefore cut
// into `shards` fence shards, each a hash tag `{h.k}` (h: a digest of the namespace's prefix and the shard count, k
// the shard). An entry belongs to shard k = FNV-1a(its key text after the generation) mod `shards`; its value,
// version, lock and tag-pruning marker carry that hash tag, and so does the shard's own copy of the sequence, the
// marks and the tag sets. Every script then reads and writes one slot, and a namespace spreads over up to `shards`
// slots (hence nodes). `invalidateTag` and `clear` write the marks of every shard.
//
// On one node (`shards` 1) there is no hash tag and the keys are byte for byte those of earlier versions.
//
//   one node:  catalog:product:v2:tenant:t1:product:42           catalog:product:v2#seq
//   cluster:   catalog:product:v2:{6e4lmd.13}:tenant:t1:product:42 catalog:product:v2#seq{6e4lmd.13}

/** Fence shards per namespace on a Redis Cluster: how many slots (at most nodes) one namespace spreads over. */
export const CLUSTER_FENCE_SHARDS = 16

/** One fence shard's bookkeeping keys. On one node there is one shard, whose keys are the namespace's. */
export interface FenceShard {
  readonly index: number
  /** The hash tag (`{h.k}`), or '' on one node. */
  readonly tag: string
  /** The invalidation sequence: a load's fence reads it, every invalidation increments it. Outside the prefix. */
  readonly seq: string
  /**
   * The shard's epoch: a random value set when absent. A load's fence reads it and its store checks it, so that a
   * fence read before Redis lost its data (a restart without persistence, a flush) never passes once versions and
   * sequences count from 0 again. Outside the prefix.
   */
  readonly epoch: string
  /**
   * The id (`run_id`) of the server that last served the shard's slot, for the restore check of a Redis Cluster
   * (`L2Store.readOrigins`); on one node, the generation's own check covers every key. Outside the prefix.
   */
  readonly origin: string
  /** The mark `clear()` sets. Outside the prefix, so `clear()` leaves it. */
  readonly cleared: string
  /** The mark every tag invalidation sets: negative entries carry no tags, so every tag reaches them. */
  readonly anyTag: string
  /** The marks a negative entry's store checks. */
  readonly negative: readonly string[]
  /** The set of this shard's negative entries, emptied by every tag invalidation. */
  readonly negativeSet: string
  /** The set of this shard's entries tagged with `escapedTag` (escaped by `escapeKeyText`). */
  tagSet(escapedTag: string): string
}

/** Fence shards of one namespace; see the file's head. */
export class KeyLayout {
  /** `service:namespace:v{schemaVersion}:`. */
  readonly prefix: string
  readonly shards: readonly FenceShard[]
  /** `shards.length > 1`: keys carry a hash tag after the prefix. */
  readonly sharded: boolean

  constructor(prefix: string, shardCount: number) {
    if (!Number.isSafeInteger(shardCount) || shardCount < 1 || shardCount > 1024) {
      throw new RangeError(`fence shards must be an integer from 1 to 1024, got ${String(shardCount)}`)
    }
    this.prefix = prefix
    this.sharded = shardCount > 1
    const base = prefix.slice(0, -1)
    // The digest keeps namespaces (and layouts with another shard count) on slots of their own.
    const digest = fnv1a(`${base}/${shardCount}`).toString(36)
    const shards: FenceShard[] = []
    for (let k = 0; k < shardCount; k++) {
      const tag = this.sharded ? `{${digest}.${k}}` : ''
      const cleared = `${base}#cleared${tag}`
      const anyTag = `${base}#anytag${tag}`
      shards.push({
        index: k,
        tag,
        seq: `${base}#seq${tag}`,
        epoch: `${base}#epoch${tag}`,
        origin: `${base}#origin${tag}`,
        cleared,
        anyTag,
        negative: [cleared, anyTag],
        negativeSet: `${prefix}${tag}#neg`,
        // The brace around the tag text is a hash tag on one node (a tag's set and its snapshot share a slot); on a
        // cluster the shard's tag comes first, and the first brace pair is the one Redis hashes.
        tagSet: (escapedTag) => `${prefix}${tag}#tag{${escapedTag}}`,
      })
    }
    this.shards = shards
  }

  /** The shard of an entry whose key text after the prefix and the generation is `rest` (0 on one node). */
  shardOfRest(rest: string): FenceShard {
    return this.shards[this.sharded ? fnv1a(rest) % this.shards.length : 0]!
  }

  /** The shard of a built key (an entry's, or one of its `#v`, `#lock` keys). */
  shardOf(key: string): FenceShard {
    if (!this.sharded) return this.shards[0]!
    const open = this.prefix.length
    const close = key.indexOf('}', open)
    const dot = key.lastIndexOf('.', close)
    const shard = this.shards[Number(key.slice(dot + 1, close))]
    if (key.charCodeAt(open) !== 0x7b || close === -1 || shard === undefined) {
      throw new RangeError(`"${key}" is not a key of this namespace's fence shards`)
    }
    return shard
  }

  /** Indexes of `keys` grouped by shard, in shard order; one group on one node. */
  group(keys: readonly string[]): { shard: FenceShard; indexes: number[] }[] {
    if (!this.sharded) return [{ shard: this.shards[0]!, indexes: keys.map((_, i) => i) }]
    const groups = new Map<FenceShard, number[]>()
    keys.forEach((key, i) => {
      const shard = this.shardOf(key)
      const indexes = groups.get(shard)
      if (indexes === undefined) groups.set(shard, [i])
      else indexes.push(i)
    })
    return [...groups].map(([shard, indexes]) => ({ shard, indexes }))
  }
}

/** 32-bit FNV-1a over UTF-16 code units: cheap, stable across processes and versions (it places keys). */
export function fnv1a(text: string): number {
  let hash = 0x811c9dc5
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i)
    hash = Math.imul(hash, 0x01000193)
  }
  return hash >>> 0
}
