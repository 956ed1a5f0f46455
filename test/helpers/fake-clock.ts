// A manual clock for TTL tests: time moves only when the test says so.
import type { Clock } from 'stratacache'

export interface FakeClock extends Clock {
  advance(ms: number): void
  set(ms: number): void
}

export function fakeClock(start = 1_700_000_000_000): FakeClock {
  let now = start
  return {
    now: () => now,
    advance: (ms) => {
      now += ms
    },
    set: (ms) => {
      now = ms
    },
  }
}
