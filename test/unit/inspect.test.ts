import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { formatBytes, scanCoverage } from '../../src/observability/inspect.js'

/** Redis's SCAN cursor step over a table of 2^bits buckets: increment the bit-reversed cursor (dict.c, dictScan). */
function nextCursor(cursor: bigint, bits: number): bigint {
  const reverse = (v: bigint) => {
    let r = 0n
    for (let i = 0; i < bits; i++) r = (r << 1n) | ((v >> BigInt(i)) & 1n)
    return r
  }
  return reverse((reverse(cursor) + 1n) & ((1n << BigInt(bits)) - 1n))
}

describe('scanCoverage: the share of the keyspace a SCAN walked, read off its cursor', () => {
  it('is k / 2^bits after k steps of one bucket each, whatever the table size', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 20 }), fc.integer({ min: 1, max: 300 }), (bits, k) => {
        const steps = Math.min(k, 2 ** bits - 1)
        let cursor = 0n
        for (let i = 0; i < steps; i++) cursor = nextCursor(cursor, bits)
        expect(scanCoverage(cursor.toString())).toBe(steps / 2 ** bits)
      }),
    )
  })

  it('walks every bucket once over a whole scan, increasing step by step, and ends at 1 with cursor 0', () => {
    const bits = 10
    let cursor = 0n
    let previous = 0
    for (let step = 1; step < 2 ** bits; step++) {
      cursor = nextCursor(cursor, bits)
      const coverage = scanCoverage(cursor.toString())
      expect(coverage).toBe(step / 2 ** bits)
      expect(coverage).toBeGreaterThan(previous)
      previous = coverage
    }
    expect(nextCursor(cursor, bits)).toBe(0n)
    expect(scanCoverage('0')).toBe(1)
  })

  it('reads a 64-bit cursor beyond Number precision', () => {
    expect(scanCoverage('1')).toBe(0.5)
    expect(scanCoverage('9223372036854775808')).toBe(2 ** -64)
  })
})

describe('formatBytes', () => {
  it('prints bytes in binary units with one decimal', () => {
    expect(formatBytes(512)).toBe('512 B')
    expect(formatBytes(64 * 1024 * 1024)).toBe('64.0 MiB')
    expect(formatBytes(1536)).toBe('1.5 KiB')
  })
})
