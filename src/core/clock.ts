// The time source: wall-clock milliseconds, injectable so TTL tests never sleep.

/** A source of the current time in epoch milliseconds. Inject one in tests to control expiry. */
export interface Clock {
  now(): number
}

/** The real clock: `Date.now()`. Entry times are wall-clock so that processes sharing L2 agree on them. */
export const systemClock: Clock = { now: Date.now }
