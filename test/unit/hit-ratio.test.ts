import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { MemoryStore } from 'stratacache'
import { lruHitRatio, optHitRatio, readTrace, replay } from '../../bench/traces.js'

/** glimpse and loop, copied from ../shared/traces so the test runs in any clone (see its README). */
const traces = fileURLToPath(new URL('../fixtures/traces/', import.meta.url))

/** LRU and OPT from ../shared/traces/README.md (%). */
const PUBLISHED = {
  'gli.trace.gz': { 250: [0.91, 17.64], 500: [0.95, 34.26], 1000: [11.21, 53.13], 2000: [57.41, 57.96] },
  'loop.trace.gz': { 250: [0, 24.63], 500: [0, 49.36], 1000: [0, 98.71] },
} as const

describe('L1 hit ratio on the glimpse and loop traces (issue #8 targets)', () => {
  for (const [file, capacities] of Object.entries(PUBLISHED)) {
    let trace: ReturnType<typeof readTrace> | undefined
    for (const [capacity, [lru, opt]] of Object.entries(capacities)) {
      it(`${file} at ${capacity} entries: within 3 points of OPT and never 1 point below LRU`, () => {
        trace ??= readTrace(traces + file)
        const hitRatio = replay(trace.keys, new MemoryStore<boolean>({ maxEntries: Number(capacity) }))
        expect(hitRatio).toBeGreaterThanOrEqual(opt - 3)
        expect(hitRatio).toBeGreaterThanOrEqual(lru - 1)
      })
    }
  }

  it('reproduces the published LRU and OPT on glimpse (the trace reader and the OPT replay are right)', () => {
    const trace = readTrace(traces + 'gli.trace.gz')
    for (const [capacity, [lru, opt]] of Object.entries(PUBLISHED['gli.trace.gz'])) {
      expect(lruHitRatio(trace.keys, Number(capacity)).toFixed(2)).toBe(lru.toFixed(2))
      expect(optHitRatio(trace.keys, Number(capacity)).toFixed(2)).toBe(opt.toFixed(2))
    }
  })
})
