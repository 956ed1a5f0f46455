// The L1 eviction policy behind every L1 index: an adaptive W-TinyLFU, bounded by entry count and by bytes.
import { FrequencySketch, hashKey } from './frequency-sketch.js'

/** Whatever index points at nodes: told to forget a node when the policy evicts it. */
export interface L1Owner<V> {
  unindex(node: L1Node<V>): void
}

/**
 * Where a node is: 0 in no region (new, removed or evicted), 1 in the admission window, 2 in the main region's
 * probation segment, 3 in its protected segment.
 */
export type Region = 0 | 1 | 2 | 3
const NONE = 0
const WINDOW = 1
const PROBATION = 2
const PROTECTED = 3

export interface L1Node<V> {
  value: V
  /** Epoch ms after which the entry is gone; Infinity for none. Honoured by the owner, not by the policy. */
  expiresAt: number
  size: number
  /** The owner's key for this node. */
  readonly key: string
  readonly owner: L1Owner<V>
  /** The key's hash for the frequency sketch: set by `add`, once per node (create it as 0). */
  hash: number
  /** The region holding the node: set by the policy (create it as 0). */
  region: Region
  /** Towards the most recently used end of the node's region. */
  newer: L1Node<V> | undefined
  /** Towards the least recently used end of the node's region. */
  older: L1Node<V> | undefined
}

/** Sizes of the policy's regions, for stats and tests. */
export interface L1Regions {
  readonly window: number
  readonly probation: number
  readonly protected: number
  /** The window's current share in entries (the hill climber moves it). */
  readonly windowMaxEntries: number
}

/** The window's share of the entries at start, as in Caffeine: 1%. The climber moves it. */
const INITIAL_WINDOW_SHARE = 0.01
/** The protected segment's share of the main region. */
const PROTECTED_SHARE = 0.8
/** Requests per hill-climbing sample, per entry of `maxEntries` (as Caffeine's sketch sample). */
const SAMPLE_PER_ENTRY = 10
/** The climber's full step, as a share of `maxEntries`; each step after is 0.98 of the one before. */
const STEP_SHARE = 0.1
const STEP_DECAY = 0.98
/** A hit-rate change this large (5 points) that our own last step does not explain: steps restart at full size. */
const RESTART_THRESHOLD = 0.05
/**
 * From this estimated count up, a candidate must beat the victim by 2, not 1: halving all counters at once leaves
 * keys requested at the same rate one apart, depending on whether their last request came before or after the
 * halving. Below it, one more request is a real difference (seen once against never).
 */
const MARGIN_FROM = 4
/** A candidate this frequent may beat an equal or hotter victim 1 time in 128: defeats hash-collision attacks. */
const ADMIT_ANYWAY_FREQUENCY = 6

/** One region: a doubly linked list, most recently used first, with its entry count and bytes. */
class Queue<V> {
  newest: L1Node<V> | undefined
  oldest: L1Node<V> | undefined
  count = 0
  bytes = 0

  push(node: L1Node<V>): void {
    node.newer = undefined
    node.older = this.newest
    if (this.newest !== undefined) this.newest.newer = node
    else this.oldest = node
    this.newest = node
    this.count++
    this.bytes += node.size
  }

  unlink(node: L1Node<V>): void {
    const { newer, older } = node
    if (newer !== undefined) newer.older = older
    else this.newest = older
    if (older !== undefined) older.newer = newer
    else this.oldest = newer
    node.newer = undefined
    node.older = undefined
    this.count--
    this.bytes -= node.size
  }

  /** Marks `node` (in this queue) most recently used: at most six pointer writes. */
  toNewest(node: L1Node<V>): void {
    const newer = node.newer
    if (newer === undefined) return
    const older = node.older
    newer.older = older
    if (older !== undefined) older.newer = newer
    else this.oldest = newer
    node.newer = undefined
    node.older = this.newest
    this.newest!.newer = node
    this.newest = node
  }
}

/**
 * Decides which L1 entries stay: W-TinyLFU (Einziger, Friedman and Manes, "TinyLFU: A Highly Efficient Cache
 * Admission Policy", 2017) with the window adapted by hill climbing, as in Caffeine.
 *
 * - New nodes always enter the **window**, a small LRU: a just-written entry is readable at once, and bursts of
 *   new keys are served by recency.
 * - A node leaving the window is a **candidate** for the main region. While the bounds leave room it goes in; when
 *   they do not, it faces the main region's **victim** (the least recently used of probation, else of protected)
 *   and the one the frequency sketch has seen more often stays. Ties keep the victim, so a scan of one-off keys
 *   cannot wash out the entries that earn hits.
 * - The main region is a segmented LRU: a hit in **probation** promotes to **protected** (80% of main); protected
 *   overflow is demoted back to probation.
 * - Every hit and every added node counts in the sketch and in the current sample. After each sample of
 *   10 x `maxEntries` requests, the window's share moves one step in the direction that raised the hit rate, and
 *   turns back when the hit rate fell (hill climbing; steps decay, and restart after a 5-point change).
 *
 * Several indexes share one policy (the cache's namespaces share the L1 budget); each node names its owner so the
 * policy can tell the right index to forget an evicted or rejected node. Every operation is O(1) (the climber's
 * moves are bounded by one step per sample) and allocates nothing: a hit is a sketch increment and a relink.
 */
export class WTinyLfu<V> {
  readonly maxEntries: number
  readonly maxBytes: number
  readonly #sketch: FrequencySketch
  readonly #window = new Queue<V>()
  readonly #probation = new Queue<V>()
  readonly #protected = new Queue<V>()
  #size = 0
  #bytes = 0
  #evictions = 0
  #windowMaxEntries = 1
  #windowMaxBytes = Infinity
  #protectedMaxEntries = 0
  #protectedMaxBytes = Infinity
  // Hill climbing.
  /** The window's wanted size in entries, fractional: steps shrink below one entry. */
  #windowTarget: number
  /** Signed: the direction of the next move, and its size in entries. */
  #step: number
  readonly #fullStep: number
  /** How far the last step actually moved the window (bounds may have cut it short). */
  #lastMove = 0
  #previousHitRate = -1
  #sampleHits = 0
  #sampleRequests = 0
  readonly #samplePeriod: number
  /** Whether the bounds were ever reached: the climber waits for it (a filling cache's hit rate says nothing). */
  #full = false
  /** xorshift32 state for the rare admission by chance; seeded, so runs are reproducible. */
  #random = 0x9e3779b9

  constructor(maxEntries: number, maxBytes: number) {
    this.maxEntries = maxEntries
    this.maxBytes = maxBytes
    this.#sketch = new FrequencySketch(maxEntries)
    this.#samplePeriod = Math.max(64, SAMPLE_PER_ENTRY * maxEntries)
    this.#windowTarget = maxEntries * INITIAL_WINDOW_SHARE
    this.#fullStep = Math.max(1, maxEntries * STEP_SHARE)
    this.#step = this.#fullStep
    this.#setWindow(this.#windowTarget)
  }

  get size(): number {
    return this.#size
  }

  get bytes(): number {
    return this.#bytes
  }

  /** Nodes evicted for room, including candidates refused by admission. */
  get evictions(): number {
    return this.#evictions
  }

  /** Current region sizes and the window's share. */
  regions(): L1Regions {
    return {
      window: this.#window.count,
      probation: this.#probation.count,
      protected: this.#protected.count,
      windowMaxEntries: this.#windowMaxEntries,
    }
  }

  /** The frequency sketch (for tests and diagnostics). */
  get sketch(): FrequencySketch {
    return this.#sketch
  }

  /**
   * Adds a new node to the window, counts its key, then evicts past the bounds. The new node itself is never
   * evicted by this call, so it is readable right away; older nodes evicted or refused are unindexed through their
   * owners.
   */
  add(node: L1Node<V>): void {
    node.hash = hashKey(node.key)
    node.region = WINDOW
    this.#window.push(node)
    this.#size++
    this.#bytes += node.size
    this.#sketch.increment(node.hash)
    this.#evict(node)
    if (++this.#sampleRequests >= this.#samplePeriod) this.#climb()
  }

  /** Records a hit on `node`: counts its key and marks it most recently used in its region. */
  touch(node: L1Node<V>): void {
    this.#sketch.increment(node.hash)
    this.#sampleHits++
    if (++this.#sampleRequests >= this.#samplePeriod) this.#climb()
    switch (node.region) {
      case WINDOW:
        this.#window.toNewest(node)
        break
      case PROBATION:
        this.#probation.unlink(node)
        node.region = PROTECTED
        this.#protected.push(node)
        this.#demoteProtectedOverflow()
        break
      case PROTECTED:
        this.#protected.toNewest(node)
        break
    }
  }

  /** Changes a node's size (its value was replaced), records a use, and evicts past the bounds (never this node). */
  resize(node: L1Node<V>, size: number): void {
    const delta = size - node.size
    node.size = size
    this.#bytes += delta
    this.#queue(node.region)!.bytes += delta
    this.touch(node)
    this.#evict(node)
  }

  /** Unlinks a node. The caller removes it from its own index. */
  remove(node: L1Node<V>): void {
    const queue = this.#queue(node.region)
    if (queue === undefined) return
    queue.unlink(node)
    node.region = NONE
    this.#size--
    this.#bytes -= node.size
  }

  /** Every node, in retention order: the window newest first, then protected, then probation (evicted first). */
  *nodes(): IterableIterator<L1Node<V>> {
    for (const queue of [this.#window, this.#protected, this.#probation]) {
      for (let node = queue.newest; node !== undefined; node = node.older) yield node
    }
  }

  #queue(region: Region): Queue<V> | undefined {
    return region === WINDOW
      ? this.#window
      : region === PROBATION
        ? this.#probation
        : region === PROTECTED
          ? this.#protected
          : undefined
  }

  #overBounds(): boolean {
    return this.#size > this.maxEntries || this.#bytes > this.maxBytes
  }

  /** Brings the window within its share, then everything within the bounds, never evicting `keep`. */
  #evict(keep: L1Node<V>): void {
    const window = this.#window
    for (;;) {
      const candidate = window.oldest
      if (candidate === undefined || candidate === keep) break
      if (window.count <= this.#windowMaxEntries && window.bytes <= this.#windowMaxBytes) break
      window.unlink(candidate)
      if (this.#overBounds() && !this.#makeRoom(candidate, keep)) {
        candidate.region = NONE
        this.#drop(candidate)
        continue
      }
      candidate.region = PROBATION
      this.#probation.push(candidate)
    }
    // Still over: the window may have room to grow (the main region then shrinks), or a node grew.
    while (this.#overBounds()) {
      const victim = this.#victim(keep) ?? (window.oldest === keep ? keep.newer : window.oldest)
      if (victim === undefined) return
      this.remove(victim)
      this.#drop(victim)
    }
  }

  /**
   * Evicts main-region victims for `candidate` (just unlinked from the window, still counted) while it is the more
   * frequent; false when it loses, or no victim is left, and must go itself.
   */
  #makeRoom(candidate: L1Node<V>, keep: L1Node<V>): boolean {
    while (this.#overBounds()) {
      const victim = this.#victim(keep)
      if (victim === undefined || !this.#admits(candidate, victim)) {
        this.#size--
        this.#bytes -= candidate.size
        return false
      }
      this.remove(victim)
      this.#drop(victim)
    }
    return true
  }

  /** The main region's next victim: the least recently used of probation, else of protected; never `keep`. */
  #victim(keep: L1Node<V>): L1Node<V> | undefined {
    let victim = this.#probation.oldest
    if (victim === keep) victim = keep.newer
    if (victim !== undefined) return victim
    victim = this.#protected.oldest
    return victim === keep ? keep.newer : victim
  }

  /** TinyLFU admission: the candidate replaces the victim only if it was seen more often lately. */
  #admits(candidate: L1Node<V>, victim: L1Node<V>): boolean {
    const candidateCount = this.#sketch.frequency(candidate.hash)
    const victimCount = this.#sketch.frequency(victim.hash)
    if (candidateCount > victimCount + (victimCount >= MARGIN_FROM ? 1 : 0)) return true
    if (candidateCount < ADMIT_ANYWAY_FREQUENCY) return false
    // Hot, yet not hotter than the victim: an attacker may be colliding hashes with the victim. Admit now and then.
    let x = this.#random
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    this.#random = x
    return (x & 127) === 0
  }

  /** Counts an eviction and tells the node's owner (the node is already unlinked). */
  #drop(node: L1Node<V>): void {
    this.#evictions++
    this.#full = true
    node.owner.unindex(node)
  }

  #demoteProtectedOverflow(): void {
    const protectedQueue = this.#protected
    while (
      protectedQueue.count > this.#protectedMaxEntries ||
      protectedQueue.bytes > this.#protectedMaxBytes
    ) {
      const demoted = protectedQueue.oldest!
      if (demoted === protectedQueue.newest) return
      protectedQueue.unlink(demoted)
      demoted.region = PROBATION
      this.#probation.push(demoted)
    }
  }

  /**
   * End of a sample: move the window's share one step towards a higher hit rate (hill climbing, as in Caffeine).
   * One change of ours: a large hit-rate change right after a large move of our own is that move's effect, not a
   * new workload, so it does not restart the steps at full size (without this, a window pinned at its smallest
   * share by a loop-like workload kept being thrown back out by a full step on every bit of noise).
   */
  #climb(): void {
    const hitRate = this.#sampleHits / this.#sampleRequests
    this.#sampleHits = 0
    this.#sampleRequests = 0
    // A filling cache's hit rate says nothing about the window; nor does a sample without a hit (a scan of new
    // keys): moving on would grow the window and evict the main region's entries for nothing.
    if (!this.#full || hitRate === 0) return
    let amount = this.#step
    if (this.#previousHitRate >= 0) {
      const change = hitRate - this.#previousHitRate
      // Same direction while the hit rate does not fall; turn back when it does.
      if (change < 0) amount = -amount
      const ownDoing = Math.abs(this.#lastMove) >= this.#fullStep / 2
      this.#step =
        Math.abs(change) >= RESTART_THRESHOLD && !ownDoing
          ? Math.sign(amount) * this.#fullStep
          : amount * STEP_DECAY
    }
    const first = this.#previousHitRate < 0
    this.#previousHitRate = hitRate
    const before = this.#windowTarget
    // The first full sample only grows the window (it starts at its smallest useful share). That first probe is
    // not taken as explaining the next change: the cache has only just filled, and its hit rate is still moving.
    this.#resizeWindow(amount)
    this.#lastMove = first ? 0 : this.#windowTarget - before
  }

  #resizeWindow(amount: number): void {
    this.#windowTarget = Math.min(this.maxEntries, Math.max(1, this.#windowTarget + amount))
    this.#setWindow(this.#windowTarget)
    // A smaller window hands its oldest nodes to probation as they are (no admission: nothing is evicted here). A
    // larger one fills as new nodes arrive and the main region's victims make room.
    const window = this.#window
    while (window.count > this.#windowMaxEntries || window.bytes > this.#windowMaxBytes) {
      const node = window.oldest!
      window.unlink(node)
      node.region = PROBATION
      this.#probation.push(node)
    }
    this.#demoteProtectedOverflow()
  }

  #setWindow(target: number): void {
    const entries = Math.min(this.maxEntries, Math.max(1, Math.round(target)))
    const share = entries / this.maxEntries
    this.#windowMaxEntries = entries
    this.#protectedMaxEntries = Math.floor((this.maxEntries - entries) * PROTECTED_SHARE)
    if (this.maxBytes !== Infinity) {
      this.#windowMaxBytes = this.maxBytes * share
      this.#protectedMaxBytes = (this.maxBytes - this.#windowMaxBytes) * PROTECTED_SHARE
    }
  }
}
