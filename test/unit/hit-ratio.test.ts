import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { MemoryStore } from 'stratacache'
import { lruHitRatio, optHitRatio, readTrace, replay } from '../../bench/traces.js'
import { WORKLOADS } from '../../bench/workloads.js'

/** glimpse and loop, copied from ../shared/traces so the test runs in any clone (see its README). */
const traces = fileURLToPath(new URL('../fixtures/traces/', import.meta.url))

/** LRU and OPT from ../shared/traces/README.md (%). */
const PUBLISHED = {
  'gli.trace.gz': { 250: [0.91, 17.64], 500: [0.95, 34.26], 1000: [11.21, 53.13], 2000: [57.41, 57.96] },
  'loop.trace.gz': { 250: [0, 24.63], 500: [0, 49.36], 1000: [0, 98.71] },
} as const

describe('L1 hit ratio on the glimpse and loop traces (issue #16 targets)', () => {
  for (const [file, capacities] of Object.entries(PUBLISHED)) {
    let trace: ReturnType<typeof readTrace> | undefined
    for (const [capacity, [lru, opt]] of Object.entries(capacities)) {
      it(`${file} at ${capacity} entries: within 3 points of OPT and at least LRU`, () => {
        trace ??= readTrace(traces + file)
        const hitRatio = replay(trace.keys, new MemoryStore<boolean>({ maxEntries: Number(capacity) }))
        expect(hitRatio).toBeGreaterThanOrEqual(opt - 3)
        expect(hitRatio).toBeGreaterThanOrEqual(lru)
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

/**
 * Recency-biased synthetic workloads (bench/workloads.ts), standing in for the sprite and P3 traces: the adaptive
 * window must bring W-TinyLFU to LRU's level where only recency helps. The state measured when this was written:
 * between 0.03 and 0.43 points under LRU on five of these rows (docs/benchmarks.md); the test holds that line.
 */
describe('L1 hit ratio on recency-biased synthetic workloads', () => {
  for (const name of ['recency', 'shifting-set', 'drifting-zipf', 'stack-mix']) {
    const workload = WORKLOADS.find((w) => w.name === name)!
    for (const capacity of workload.capacities) {
      it(`${name} at ${capacity} entries: no more than half a point under LRU`, () => {
        const keys = workload.keys(capacity)
        const hitRatio = replay(keys, new MemoryStore<boolean>({ maxEntries: capacity }))
        expect(hitRatio).toBeGreaterThanOrEqual(lruHitRatio(keys, capacity) - 0.5)
      })
    }
  }

  it('follows a changing workload (a loop, recency, the loop again) within 5 points of OPT, where LRU gets ~20%', () => {
    const workload = WORKLOADS.find((w) => w.name === 'phases')!
    for (const capacity of workload.capacities) {
      const keys = workload.keys(capacity)
      const hitRatio = replay(keys, new MemoryStore<boolean>({ maxEntries: capacity }))
      expect(hitRatio).toBeGreaterThanOrEqual(optHitRatio(keys, capacity) - 5)
      expect(hitRatio).toBeGreaterThanOrEqual(lruHitRatio(keys, capacity) + 30)
    }
  })
})
