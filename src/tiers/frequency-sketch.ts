// The L1's memory of how often keys were seen lately: a count-min sketch of 4-bit counters that halves itself to age.

/** Counters per cache entry: 16 (as in TinyLFU), so collisions stay rare at the sizes the cache holds. */
const COUNTERS_PER_ENTRY = 16
/** A block is 16 words of 8 counters (64 bytes, one CPU cache line): all 4 counters of a key live in one block. */
const WORDS_PER_BLOCK = 16
/** Keeps the low 3 bits of every 4-bit counter after a right shift by one: halves 8 counters at once. */
const HALF_MASK = 0x77777777

/**
 * Approximate counts of key hashes over a recent past, for TinyLFU admission: is the newcomer seen more often than
 * the entry it would replace? Four counters per key (one per row), each a 4-bit nibble saturating at 15; the
 * estimate is their minimum. After `sampleSize` increments every counter is halved, so the counts describe the
 * recent workload and an old favourite loses its weight (aging).
 *
 * Layout: a `Uint32Array` of 64-byte blocks; a key's hash picks one block, and each of its 4 rows one counter in
 * that row's own quarter of the block, so an increment touches one cache line and a key's rows never share a
 * counter. Nothing is allocated after construction.
 */
export class FrequencySketch {
  /** Increments (that changed a counter) between two halvings. */
  readonly sampleSize: number
  readonly #table: Uint32Array
  readonly #blockMask: number
  #additions = 0
  #resets = 0

  /** @param capacity the number of entries the cache holds: sizes the table (16 counters an entry). */
  constructor(capacity: number) {
    const counters = Math.max(1, capacity) * COUNTERS_PER_ENTRY
    // A power-of-two number of blocks, at least one, at most 2^24 (1 GiB would be absurd for an L1).
    const blocks = Math.min(2 ** 24, nextPowerOfTwo(Math.ceil(counters / (WORDS_PER_BLOCK * 8))))
    this.#table = new Uint32Array(blocks * WORDS_PER_BLOCK)
    this.#blockMask = blocks - 1
    this.sampleSize = Math.max(16, 10 * capacity)
  }

  /** Bytes taken by the counters. */
  get byteLength(): number {
    return this.#table.byteLength
  }

  /** How many times the counters were halved. */
  get resets(): number {
    return this.#resets
  }

  /** The estimated count of `hash` in the recent past, 0 to 15. */
  frequency(hash: number): number {
    const table = this.#table
    const base = this.#block(hash)
    // Row r takes byte r of the remixed hash: 2 bits pick one of the row's 4 words, 3 bits one of its 8 nibbles.
    const h0 = spread(hash)
    const h1 = h0 >>> 8
    const h2 = h0 >>> 16
    const h3 = h0 >>> 24
    return Math.min(
      (table[base + (h0 & 3)]! >>> (h0 & 28)) & 15,
      (table[base + 4 + (h1 & 3)]! >>> (h1 & 28)) & 15,
      (table[base + 8 + (h2 & 3)]! >>> (h2 & 28)) & 15,
      (table[base + 12 + (h3 & 3)]! >>> (h3 & 28)) & 15,
    )
  }

  /** Counts one occurrence of `hash`; every `sampleSize` counted occurrences, halves every counter. */
  increment(hash: number): void {
    const table = this.#table
    const base = this.#block(hash)
    const h0 = spread(hash)
    const h1 = h0 >>> 8
    const h2 = h0 >>> 16
    const h3 = h0 >>> 24
    // Unrolled: this runs on every L1 hit. `|` rather than `||`, so every row is counted.
    const added =
      bump(table, base + (h0 & 3), h0 & 28) |
      bump(table, base + 4 + (h1 & 3), h1 & 28) |
      bump(table, base + 8 + (h2 & 3), h2 & 28) |
      bump(table, base + 12 + (h3 & 3), h3 & 28)
    // Saturated keys do not advance the clock: a few very hot keys must not age everyone else faster.
    if (added !== 0 && ++this.#additions >= this.sampleSize) this.#halve()
  }

  /** Forgets every count. */
  clear(): void {
    this.#table.fill(0)
    this.#additions = 0
  }

  /** The first word of the key's block: the hash's bits remixed by a multiplication, so rows and block differ. */
  #block(hash: number): number {
    return ((Math.imul(hash, 0x9e3779b1) >>> 7) & this.#blockMask) << 4
  }

  #halve(): void {
    const table = this.#table
    for (let i = 0; i < table.length; i++) table[i] = (table[i]! >>> 1) & HALF_MASK
    this.#additions = Math.floor(this.#additions / 2)
    this.#resets++
  }
}

/** A second 32-bit mix of `hash` for the rows, so that the rows do not follow the block's bits. */
function spread(hash: number): number {
  let h = Math.imul(hash ^ (hash >>> 15), 0x2c1b3c6d)
  h = Math.imul(h ^ (h >>> 12), 0x297a2d39)
  return (h ^ (h >>> 15)) >>> 0
}

/** Adds one to the 4-bit counter at `shift` in `table[index]` unless it is 15; 1 when it did. */
function bump(table: Uint32Array, index: number, shift: number): number {
  const word = table[index]!
  if (((word >>> shift) & 15) === 15) return 0
  // No carry into the next nibble: this one is below 15.
  table[index] = word + (1 << shift)
  return 1
}

function nextPowerOfTwo(n: number): number {
  return n <= 1 ? 1 : 2 ** Math.ceil(Math.log2(n))
}

/**
 * A 30-bit hash of a key string, computed once when a node is created and kept on it: FNV-1a over the UTF-16 code
 * units, then murmur3's finalizer so that keys differing only at the end still differ in every bit. 30 bits, so
 * that V8 stores it in the node as a small integer, not as a boxed number (about 16 bytes an entry less).
 */
export function hashKey(key: string): number {
  let h = 0x811c9dc5
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193)
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b)
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35)
  return (h ^ (h >>> 16)) & 0x3fffffff
}
