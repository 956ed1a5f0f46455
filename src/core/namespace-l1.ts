// A namespace's share of the L1: its entries indexed by parameters, by full key and by tag, on the shared L1 policy.
import type { Entry } from '../codecs/envelope.js'
import type { WTinyLfu, L1Owner } from '../tiers/w-tiny-lfu.js'
import type { KeySchema } from './keys.js'
import { ParamIndex, type IndexedNode } from './param-index.js'

/** What an entry's node needs besides its value when it is put in L1. */
export interface L1Placement {
  /** Epoch ms when the copy is gone. */
  readonly expiresAt: number
  /** Epoch ms after which a read takes the slower path (stale, or due for refresh-ahead). */
  readonly refreshAt: number
  /** Bytes counted against the L1 budget. */
  readonly size: number
  readonly tags: readonly string[]
}

/**
 * The L1 entries of one namespace. The eviction policy and the entry and byte budget are the cache's, shared by every
 * namespace; the indexes are this namespace's own: by parameters (the hit path: no key string built), by full key
 * (invalidations name keys) and by tag. Every node is in all its indexes and in the list, or in none of them.
 */
export class NamespaceL1 {
  readonly #policy: WTinyLfu<Entry>
  readonly #index: ParamIndex<Entry>
  readonly #byKey = new Map<string, IndexedNode<Entry>>()
  readonly #byTag = new Map<string, Set<IndexedNode<Entry>>>()
  /** Told by the shared policy when it evicts one of this namespace's nodes. */
  readonly #owner: L1Owner<Entry> = { unindex: (node) => this.#unhook(node as IndexedNode<Entry>) }

  constructor(list: WTinyLfu<Entry>, keys: KeySchema) {
    this.#policy = list
    this.#index = new ParamIndex<Entry>(keys)
  }

  /** The L1 byte budget (Infinity without one). */
  get maxBytes(): number {
    return this.#policy.maxBytes
  }

  /**
   * The node for `params`, expired or not; validates the parameters on the way.
   * @throws InvalidKeyParamError for an invalid parameter.
   */
  find(params: unknown): IndexedNode<Entry> | undefined {
    return this.#index.find(params)
  }

  byKey(key: string): IndexedNode<Entry> | undefined {
    return this.#byKey.get(key)
  }

  /** Records a use of a node (an L1 hit). */
  touch(node: IndexedNode<Entry>): void {
    this.#policy.touch(node)
  }

  /** Puts `entry` at the place of `params` (already validated), replacing what was there. */
  put(params: unknown, key: string, entry: Entry, placement: L1Placement): void {
    const existing = this.#index.find(params)
    if (existing !== undefined) {
      this.#untag(existing)
      existing.value = entry
      existing.expiresAt = placement.expiresAt
      existing.refreshAt = placement.refreshAt
      existing.suspect = false
      existing.tags = placement.tags
      this.#tag(existing)
      this.#policy.resize(existing, placement.size)
      return
    }
    const node: IndexedNode<Entry> = {
      key,
      value: entry,
      expiresAt: placement.expiresAt,
      size: placement.size,
      owner: this.#owner,
      hash: 0,
      region: 0,
      newer: undefined,
      older: undefined,
      path: [],
      texts: [],
      refreshAt: placement.refreshAt,
      hits: 0,
      params: { ...(params as object) },
      tags: placement.tags,
      suspect: false,
    }
    this.#index.insert(params, node)
    this.#byKey.set(key, node)
    this.#tag(node)
    this.#policy.add(node)
  }

  remove(node: IndexedNode<Entry>): void {
    this.#unhook(node)
    this.#policy.remove(node)
  }

  /** Removes the entry of `params`, if any. */
  removeParams(params: unknown): void {
    const node = this.#index.find(params)
    if (node !== undefined) this.remove(node)
  }

  /** Removes every entry carrying one of `tags`, calling `each` for each removed node first. */
  removeTagged(tags: readonly string[], each: (node: IndexedNode<Entry>) => void): void {
    for (const tag of tags) {
      const nodes = this.#byTag.get(tag)
      if (nodes === undefined) continue
      for (const node of [...nodes]) {
        each(node)
        this.remove(node)
      }
    }
  }

  nodes(): IterableIterator<IndexedNode<Entry>> {
    return this.#index.nodes()
  }

  /** Removes every entry of the namespace. */
  clear(): void {
    for (const node of this.#index.nodes()) this.#policy.remove(node)
    this.#index.clear()
    this.#byKey.clear()
    this.#byTag.clear()
  }

  /** Removes a node from this namespace's indexes (not from the shared policy). */
  #unhook(node: IndexedNode<Entry>): void {
    this.#index.remove(node)
    if (this.#byKey.get(node.key) === node) this.#byKey.delete(node.key)
    this.#untag(node)
  }

  #tag(node: IndexedNode<Entry>): void {
    for (const tag of node.tags) {
      let nodes = this.#byTag.get(tag)
      if (nodes === undefined) this.#byTag.set(tag, (nodes = new Set()))
      nodes.add(node)
    }
  }

  #untag(node: IndexedNode<Entry>): void {
    for (const tag of node.tags) {
      const nodes = this.#byTag.get(tag)
      if (nodes === undefined) continue
      nodes.delete(node)
      if (nodes.size === 0) this.#byTag.delete(tag)
    }
  }
}
