import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { FrequencySketch, hashKey } from '../../src/tiers/frequency-sketch.js'

describe('FrequencySketch', () => {
  it('counts each key exactly while the table is sparse, and never under-counts', () => {
    const sketch = new FrequencySketch(1_000)
    const keys = Array.from({ length: 50 }, (_, i) => hashKey(`key:${i}`))
    keys.forEach((hash, i) => {
      for (let n = 0; n < i % 12; n++) sketch.increment(hash)
    })
    keys.forEach((hash, i) => expect(sketch.frequency(hash)).toBe(i % 12))
  })

  it('estimates at least the true count (capped at 15) for any keys and counts, collisions included', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 64 }),
        fc.array(fc.nat(300), { maxLength: 400 }),
        (capacity, requests) => {
          const sketch = new FrequencySketch(capacity)
          // Fewer increments than the aging period: counts only grow.
          const counts = new Map<number, number>()
          for (const k of requests.slice(0, sketch.sampleSize - 1)) {
            sketch.increment(hashKey(String(k)))
            counts.set(k, (counts.get(k) ?? 0) + 1)
          }
          for (const [k, n] of counts)
            expect(sketch.frequency(hashKey(String(k)))).toBeGreaterThanOrEqual(Math.min(15, n))
        },
      ),
    )
  })

  it('saturates at 15 without spilling into neighbouring counters', () => {
    const sketch = new FrequencySketch(10_000)
    const hot = hashKey('hot')
    for (let i = 0; i < 100; i++) sketch.increment(hot)
    expect(sketch.frequency(hot)).toBe(15)
    expect(sketch.resets).toBe(0)
    // Neighbours share words with the hot key's counters; none of them was touched.
    let nonZero = 0
    for (let i = 0; i < 2_000; i++) if (sketch.frequency(hashKey(`cold:${i}`)) > 0) nonZero++
    expect(nonZero).toBe(0)
  })

  it('halves every count after sampleSize increments (aging), so old favourites lose their weight', () => {
    const sketch = new FrequencySketch(16)
    const old = hashKey('old')
    for (let i = 0; i < 12; i++) sketch.increment(old)
    expect(sketch.frequency(old)).toBe(12)
    let i = 0
    while (sketch.resets === 0) sketch.increment(hashKey(`other:${i++ % 20}`))
    expect(sketch.frequency(old)).toBe(6)
    while (sketch.resets < 3) sketch.increment(hashKey(`other:${i++ % 40}`))
    expect(sketch.frequency(old)).toBeLessThanOrEqual(1)
  })

  it('does not advance the aging clock with increments of saturated keys', () => {
    const sketch = new FrequencySketch(16)
    const hot = hashKey('hot')
    for (let i = 0; i < sketch.sampleSize * 3; i++) sketch.increment(hot)
    expect(sketch.resets).toBe(0)
  })

  it('forgets everything on clear', () => {
    const sketch = new FrequencySketch(100)
    const hash = hashKey('a')
    sketch.increment(hash)
    sketch.clear()
    expect(sketch.frequency(hash)).toBe(0)
  })
})

describe('hashKey', () => {
  it('is a deterministic 30-bit hash (a small integer for V8) that separates keys differing in one character', () => {
    expect(hashKey('catalog:product:v1:42')).toBe(hashKey('catalog:product:v1:42'))
    const hashes = new Set<number>()
    for (let i = 0; i < 10_000; i++) {
      const h = hashKey(`catalog:product:v1:${i}`)
      expect(Number.isInteger(h) && h >= 0 && h < 2 ** 30).toBe(true)
      hashes.add(h)
    }
    expect(hashes.size).toBe(10_000)
  })
})
