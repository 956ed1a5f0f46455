import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { Histogram, LATENCY_BUCKETS_MS, quantileMs } from '../../src/observability/histogram.js'

describe('latency histogram', () => {
  it('puts an observation in the first bucket whose bound it does not exceed', () => {
    const h = new Histogram()
    h.observe(0)
    h.observe(0.05)
    h.observe(0.051)
    h.observe(99.9)
    h.observe(100)
    h.observe(1e9)
    const { counts, count, sumMs } = h.snapshot()
    const at = (bound: number) => counts[LATENCY_BUCKETS_MS.indexOf(bound)]
    expect(at(0.05)).toBe(2)
    expect(at(0.1)).toBe(1)
    expect(at(100)).toBe(2)
    expect(at(Infinity)).toBe(1)
    expect(count).toBe(6)
    expect(sumMs).toBeCloseTo(0.05 + 0.051 + 99.9 + 100 + 1e9)
  })

  it('quantiles never under-estimate and over-estimate by at most one bucket', () => {
    fc.assert(
      fc.property(
        fc.array(fc.double({ min: 0, max: 20_000, noNaN: true }), { minLength: 1, maxLength: 300 }),
        fc.double({ min: 0.01, max: 1, noNaN: true }),
        (samples, q) => {
          const h = new Histogram()
          for (const s of samples) h.observe(s)
          const exact = [...samples].sort((a, b) => a - b)[Math.ceil(q * samples.length) - 1]!
          const estimate = quantileMs(h.snapshot(), q)
          expect(estimate).toBeGreaterThanOrEqual(exact)
          const bucket = LATENCY_BUCKETS_MS.findIndex((b) => exact <= b)
          expect(estimate).toBe(LATENCY_BUCKETS_MS[bucket])
        },
      ),
    )
  })

  it('adds snapshots (a sliding window of slices) and resets', () => {
    const a = new Histogram()
    const b = new Histogram()
    a.observe(1, 3)
    b.observe(1_000)
    a.add(b.snapshot())
    expect(a.snapshot()).toMatchObject({ count: 4, sumMs: 1_003 })
    expect(quantileMs(a.snapshot(), 0.75)).toBe(1)
    expect(quantileMs(a.snapshot(), 1)).toBe(1_000)
    a.reset()
    expect(a.snapshot()).toMatchObject({ count: 0, sumMs: 0 })
    expect(quantileMs(a.snapshot(), 0.99)).toBe(0)
  })
})
