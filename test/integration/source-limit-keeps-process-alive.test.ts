// A caller waiting at the source limit is pending work: the limiter's timer must keep the process alive for it.
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { runChild } from '../chaos/support.js'

const childScript = fileURLToPath(new URL('./fixtures/rate-limited-loop-child.ts', import.meta.url))

describe('a job awaiting room at the source limit', () => {
  it('runs every iteration of a loop of awaited acquires at 2 a second, then exits 0 by itself', async () => {
    const child = await runChild(childScript, [], 30_000)
    expect(child.stderr).toBe('')
    expect([child.code, child.timedOut]).toEqual([0, false])
    expect(child.stdout.trim().split('\n')).toEqual([
      ...[1, 2, 3, 4, 5].map((i) => `acquired ${i}`),
      ...[1, 2, 3, 4, 5].map((i) => `loaded v${i}`),
      'done',
    ])
    // 2 a second: 5 acquires take 2 s, and so do 5 loads.
    expect(child.ms).toBeGreaterThan(3_800)
  }, 40_000)
})
