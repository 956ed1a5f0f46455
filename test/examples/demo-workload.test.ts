// The demo's traffic shape and the load button's pacing: pure functions, checked without a server or a clock.
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { dueBy } from '../../examples/demo/load-generator.js'
import { workload, zipf } from '../../examples/demo/workload.js'

describe('demo load pacing', () => {
  it('never sends more than the target rate allows, ramps up, then holds the rate', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 60_000 }),
        fc.integer({ min: 0, max: 60_000 }),
        fc.integer({ min: 1, max: 5_000 }),
        fc.integer({ min: 1, max: 5_000 }),
        (a, b, rate, ramp) => {
          const [early, late] = a <= b ? [a, b] : [b, a]
          expect(dueBy(early, rate, ramp)).toBeLessThanOrEqual(dueBy(late, rate, ramp))
          expect(dueBy(late, rate, ramp)).toBeLessThanOrEqual((rate * late) / 1000)
        },
      ),
    )
    expect(dueBy(0, 500, 3_000)).toBe(0)
    expect(dueBy(3_000, 500, 3_000)).toBe(750) // half the rate, on average, over the ramp
    expect(dueBy(13_000, 500, 3_000) - dueBy(3_000, 500, 3_000)).toBe(5_000) // then the full rate
  })
})

describe('demo workload', () => {
  it('draws Zipf ranks within 1..n, the first rank most often', () => {
    let seed = 1
    const random = () => ((seed = (seed * 16_807) % 2_147_483_647) - 1) / 2_147_483_646
    const draw = zipf(1_000, 1.2, random)
    const counts = new Map<number, number>()
    for (let i = 0; i < 20_000; i++) {
      const rank = draw()
      counts.set(rank, (counts.get(rank) ?? 0) + 1)
    }
    expect(Math.min(...counts.keys())).toBe(1)
    expect(Math.max(...counts.keys())).toBeLessThanOrEqual(1_000)
    expect([...counts.keys()].every(Number.isInteger)).toBe(true)
    const [first] = [...counts.entries()].sort((x, y) => y[1] - x[1])
    expect(first![0]).toBe(1)
    expect(counts.get(1)! / 20_000).toBeGreaterThan(0.1)
  })

  it('asks for product reads and some pages, always with a known tenant, locale and currency', () => {
    const next = workload()
    const paths = Array.from({ length: 2_000 }, next)
    const product =
      /^\/api\/tenants\/(acme|globex|initech)\/products\/\d+\?locale=(en|de|fr)&currency=(EUR|USD|GBP)$/
    const page =
      /^\/api\/tenants\/(acme|globex|initech)\/products\?page=\d+&locale=(en|de|fr)&currency=(EUR|USD|GBP)$/
    expect(paths.every((p) => product.test(p) || page.test(p))).toBe(true)
    expect(paths.filter((p) => page.test(p)).length).toBeGreaterThan(0)
  })
})
