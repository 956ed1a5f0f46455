// The L1 policy's memory of keys it recently dropped: hashes only, in a fixed table, for the window's adaptation.

/** Slots per remembered key: the table is half full at most, so two recent keys rarely share a slot. */
const SLOTS_PER_KEY = 2
/** At most 2^22 slots (32 MiB for both tables): a larger L1 keeps a shorter memory, not a larger one. */
const MAX_SLOTS = 2 ** 22
const EMPTY = -1

/**
 * An approximate set of the last `span` key hashes added ("ghost" entries, as ARC keeps for the keys it evicted):
 * `take` tells whether a hash was added recently, and forgets it so that one drop is counted once.
 *
 * Direct-mapped: each hash has one slot, a newer hash in that slot overwrites the older one (the set may forget a
 * key early, never report one it was not given: hashes are compared in full). Age is a stamp per slot: a hash added
 * more than `span` additions ago is gone. Two typed arrays made at construction; nothing allocated after.
 */
export class GhostSet {
  readonly span: number
  readonly #hashes: Int32Array
  readonly #stamps: Uint32Array
  readonly #mask: number
  /** Additions so far, modulo 2^32; ages are differences modulo 2^32 too, so wrapping is harmless. */
  #clock = 0

  /** @param span how many of the latest additions are remembered (at least 1). */
  constructor(span: number) {
    this.span = Math.max(1, Math.floor(span))
    const slots = Math.min(MAX_SLOTS, 2 ** Math.ceil(Math.log2(this.span * SLOTS_PER_KEY)))
    this.#hashes = new Int32Array(slots).fill(EMPTY)
    this.#stamps = new Uint32Array(slots)
    this.#mask = slots - 1
  }

  /** Bytes taken by the table. */
  get byteLength(): number {
    return this.#hashes.byteLength + this.#stamps.byteLength
  }

  /** Remembers `hash` (a non-negative 30-bit key hash, as `hashKey` returns). */
  add(hash: number): void {
    const slot = this.#slot(hash)
    this.#clock = (this.#clock + 1) >>> 0
    this.#hashes[slot] = hash
    this.#stamps[slot] = this.#clock
  }

  /** Whether `hash` is among the last `within` additions (`span` at most); if so, forgets it. */
  take(hash: number, within = this.span): boolean {
    const slot = this.#slot(hash)
    const age = (this.#clock - this.#stamps[slot]!) >>> 0
    if (this.#hashes[slot] !== hash || age >= Math.min(within, this.span)) return false
    this.#hashes[slot] = EMPTY
    return true
  }

  /** Forgets every hash. */
  clear(): void {
    this.#hashes.fill(EMPTY)
  }

  /** The hash's slot: its bits remixed (the sketch uses the low bits of the same hash for its own ends). */
  #slot(hash: number): number {
    return (Math.imul(hash, 0x85ebca6b) >>> 10) & this.#mask
  }
}
