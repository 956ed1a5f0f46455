import { describe, expect, it } from 'vitest'
import { sampledClock, systemClock } from '../../src/core/clock.js'
import { sleep } from '../chaos/support.js'
import { fakeClock } from '../helpers/fake-clock.js'

describe('sampled hit-path clock', () => {
  it('returns an injected clock unchanged, so fake-clock tests see every advance', () => {
    const clock = fakeClock()
    expect(sampledClock(clock)).toBe(clock)
  })

  it('re-reads the real clock at the latest on the 16th call after a reading', () => {
    const clock = sampledClock(systemClock)
    const realNow = Date.now
    let reads = 0
    Date.now = () => ++reads * 1_000
    try {
      const seen = Array.from({ length: 33 }, () => clock.now())
      expect(reads).toBe(3)
      expect(seen.slice(0, 16)).toEqual(Array(16).fill(1_000))
      expect(seen[16]).toBe(2_000)
      expect(seen[32]).toBe(3_000)
    } finally {
      Date.now = realNow
    }
  })

  it('is never older than about a millisecond under light traffic (one read every 20 ms)', async () => {
    const clock = sampledClock(systemClock)
    for (let i = 0; i < 5; i++) {
      await sleep(20)
      // A 1 ms timer may fire a little late on a busy machine; 15 ms is far below any TTL and far above that.
      expect(Date.now() - clock.now()).toBeLessThan(15)
    }
  })

  it('keeps advancing inside a microtask-only loop, where no timer could refresh it', async () => {
    const clock = sampledClock(systemClock)
    const start = clock.now()
    const deadline = Date.now() + 20
    while (Date.now() < deadline) await Promise.resolve()
    for (let i = 0; i < 16; i++) clock.now()
    expect(clock.now()).toBeGreaterThanOrEqual(start + 20)
  })
})
