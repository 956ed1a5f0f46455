// The L1 eviction policy behind every L1 index: an adaptive W-TinyLFU, bounded by entry count and by bytes.
import { FrequencySketch, hashKey } from './frequency-sketch.js'
import { GhostSet } from './ghost-set.js'

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
  /** The window's current share in entries (ghost hits move it). */
  readonly windowMaxEntries: number
}

/** The window's share of the entries at start, as in Caffeine: 1%. Ghost hits move it. */
const INITIAL_WINDOW_SHARE = 0.01
/** The protected segment's share of the main region. */
const PROTECTED_SHARE = 0.8
/** Each ghost set remembers the hashes of this many of its latest drops, per entry of `maxEntries`. */
const GHOST_SHARE = 0.5
/**
 * Entries the window's share moves by per ghost hit. Chosen on the traces and synthetic workloads of
 * docs/benchmarks.md among 1, 3, 5, 6, 8 and 10: 1 adapts too slowly for the recency shapes, 8 and more overshoot.
 */
const GHOST_STEP = 5
/**
 * A refused candidate's return asks for a larger window only if fewer than this many times the window's size of
 * other candidates were refused since (or `REFUSED_MIN_REACH` x `maxEntries`, for a window still tiny): a window a
 * few steps larger could have held it that long. A loop longer than the cache brings every refused key back, but
 * too late for any window; counting those returns grew the window in a loop and cost it 10 points.
 */
const REFUSED_REACH = 8
const REFUSED_MIN_REACH = 1 / 16
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
 * Admission Policy", 2017), its window's share adapted to the workload as ARC adapts its two lists.
 *
 * - New nodes always enter the **window**, a small LRU: a just-written entry is readable at once, and bursts of
 *   new keys are served by recency.
 * - A node leaving the window is a **candidate** for the main region. While the bounds leave room it goes in; when
 *   they do not, it faces the main region's **victim** (the least recently used of probation, else of protected)
 *   and the one the frequency sketch has seen more often stays. Ties keep the victim, so a scan of one-off keys
 *   cannot wash out the entries that earn hits.
 * - The main region is a segmented LRU: a hit in **probation** promotes to **protected** (80% of main); protected
 *   overflow is demoted back to probation.
 * - Every hit and every added node counts in the sketch. The sketch halves its counters every 10 x `maxEntries`
 *   counts (aging), so a key that was hot long ago does not block newcomers forever.
 * - The window's share adapts to the workload by **ghost feedback**, the idea of ARC's adaptation (Megiddo and
 *   Modha, FAST 2003) applied to W-TinyLFU's two regions. Two ghost sets remember the hashes (only) of recent drops:
 *   candidates that admission refused, and main-region victims. A miss on a refused candidate's key is a hit a
 *   larger window would have had (if it comes back soon enough: see `REFUSED_REACH`): the window grows by
 *   `GHOST_STEP` entries. A miss on a victim's key is a hit a larger main region would have had: the window
 *   shrinks. Both are counted over the same requests, so a workload that changes by itself does not read as the
 *   effect of a move. Hit-rate hill climbing (Caffeine's way) compares samples taken at different times; on OLTP
 *   the swing between samples (44-68%) drowned the window's effect (1-3 points), and the climber wandered.
 *
 * Several indexes share one policy (the cache's namespaces share the L1 budget); each node names its owner so the
 * policy can tell the right index to forget an evicted or rejected node. Every operation is O(1) (a window move, on
 * a miss only, relinks the few nodes past the new share) and allocates nothing: a hit is a sketch increment and a
 * relink.
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
  /** The window's wanted size in entries. */
  #windowTarget: number
  /** Candidates that admission refused, lately: a miss on one of them asks for a larger window. */
  readonly #refused: GhostSet
  /** Main-region victims, lately: a miss on one of them asks for a larger main region. */
  readonly #evicted: GhostSet
  /** Whether the bounds were ever reached: the window stays put until then (nothing was dropped yet). */
  #full = false
  /** xorshift32 state for the rare admission by chance; seeded, so runs are reproducible. */
  #random = 0x9e3779b9

  constructor(maxEntries: number, maxBytes: number) {
    this.maxEntries = maxEntries
    this.maxBytes = maxBytes
    this.#sketch = new FrequencySketch(maxEntries)
    this.#windowTarget = Math.max(1, Math.round(maxEntries * INITIAL_WINDOW_SHARE))
    this.#setWindow(this.#windowTarget)
    this.#refused = new GhostSet(maxEntries * GHOST_SHARE)
    this.#evicted = new GhostSet(maxEntries * GHOST_SHARE)
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
   * owners. A new node is a miss: when its key was dropped lately, the window's share moves (see the class).
   */
  add(node: L1Node<V>): void {
    node.hash = hashKey(node.key)
    // Before the node joins the window: a shrinking window hands its oldest nodes to probation, and that must not
    // include a candidate that has not yet faced admission.
    if (this.#full) {
      const reach = Math.max(this.maxEntries * REFUSED_MIN_REACH, this.#windowMaxEntries * REFUSED_REACH)
      if (this.#refused.take(node.hash, reach)) this.#resizeWindow(GHOST_STEP)
      else if (this.#evicted.take(node.hash)) this.#resizeWindow(-GHOST_STEP)
    }
    node.region = WINDOW
    this.#window.push(node)
    this.#size++
    this.#bytes += node.size
    this.#sketch.increment(node.hash)
    this.#evict(node)
  }

  /** Records a hit on `node`: counts its key and marks it most recently used in its region. */
  touch(node: L1Node<V>): void {
    this.#sketch.increment(node.hash)
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
        this.#refused.add(candidate.hash)
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
      this.#evicted.add(victim.hash)
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
      this.#evicted.add(victim.hash)
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

  /** Moves the window's share by `amount` entries (signed), within 1 and `maxEntries`. */
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
