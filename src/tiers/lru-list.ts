// The recency list and budgets behind every L1 index: nodes in least-recently-used order, bounded by count and bytes.

/** Whatever index points at nodes: told to forget a node when the list evicts it. */
export interface LruOwner<V> {
  unindex(node: LruNode<V>): void
}

export interface LruNode<V> {
  value: V
  /** Epoch ms after which the entry is gone; Infinity for none. */
  expiresAt: number
  size: number
  /** The owner's key for this node. */
  readonly key: string
  readonly owner: LruOwner<V>
  /** Towards the most recently used end. */
  newer: LruNode<V> | undefined
  /** Towards the least recently used end. */
  older: LruNode<V> | undefined
}

/**
 * A doubly linked list of nodes from most to least recently used, with the bounds that decide eviction. Several
 * indexes may share one list (the cache's namespaces share the L1 budget); each node names its owner so the list
 * can tell the right index to forget an evicted node. Touching a node is four pointer writes: no allocation.
 */
export class LruList<V> {
  readonly maxEntries: number
  readonly maxBytes: number
  #newest: LruNode<V> | undefined
  #oldest: LruNode<V> | undefined
  #size = 0
  #bytes = 0
  #evictions = 0

  constructor(maxEntries: number, maxBytes: number) {
    this.maxEntries = maxEntries
    this.maxBytes = maxBytes
  }

  get size(): number {
    return this.#size
  }

  get bytes(): number {
    return this.#bytes
  }

  get evictions(): number {
    return this.#evictions
  }

  /** Links a new node as the most recently used, then evicts past the bounds (never the new node itself). */
  add(node: LruNode<V>): void {
    node.newer = undefined
    node.older = this.#newest
    if (this.#newest !== undefined) this.#newest.newer = node
    this.#newest = node
    this.#oldest ??= node
    this.#size++
    this.#bytes += node.size
    this.#evictPastBounds()
  }

  /** Marks a node most recently used. */
  touch(node: LruNode<V>): void {
    if (node === this.#newest) return
    const { newer, older } = node
    if (newer !== undefined) newer.older = older
    if (older !== undefined) older.newer = newer
    if (this.#oldest === node) this.#oldest = newer
    node.older = this.#newest
    node.newer = undefined
    if (this.#newest !== undefined) this.#newest.newer = node
    this.#newest = node
  }

  /** Changes a node's size (its value was replaced), marks it used, and evicts past the bounds. */
  resize(node: LruNode<V>, size: number): void {
    this.#bytes += size - node.size
    node.size = size
    this.touch(node)
    this.#evictPastBounds()
  }

  /** Unlinks a node. The caller removes it from its own index. */
  remove(node: LruNode<V>): void {
    const { newer, older } = node
    if (newer !== undefined) newer.older = older
    else if (this.#newest === node) this.#newest = older
    if (older !== undefined) older.newer = newer
    else if (this.#oldest === node) this.#oldest = newer
    node.newer = undefined
    node.older = undefined
    this.#size--
    this.#bytes -= node.size
  }

  /** Nodes from most to least recently used. */
  *nodes(): IterableIterator<LruNode<V>> {
    for (let node = this.#newest; node !== undefined; node = node.older) yield node
  }

  #evictPastBounds(): void {
    while (this.#oldest !== undefined && this.#oldest !== this.#newest) {
      if (this.#size <= this.maxEntries && this.#bytes <= this.maxBytes) return
      const victim = this.#oldest
      this.remove(victim)
      victim.owner.unindex(victim)
      this.#evictions++
    }
  }
}
