// In-process single-flight: the loads (and background refreshes) under way, by full key.
//
// Invariants:
// - A flight leaves the registry before anything else runs after it settles (its bookkeeping, the refresh it
//   queued): a throw in bookkeeping can never leave a dead flight that later reads would join.
// - Cancelling a flight only unregisters it: whether its value may still be cached is the fence's answer
//   (coherence/fence.ts), decided from the token it took when it started, never from a flag set here.
// - A flight that answered a stale value at the soft timeout and keeps loading stays joinable only while that
//   stale value is inside its stale window.

import type { Clock } from '../core/clock.js'

/** A load (or batch member) under way for one key. */
export interface Flight<V> {
  promise: Promise<V>
  /** The local fence's token when the flight started. */
  readonly token: number
  /** Readers waiting on it: the one who started it and those who joined. */
  callers: number
  /** Neither tier had a usable value: it went to the loader (or a fail-safe fallback). */
  missed: boolean
  /** performance.now() when it started. */
  readonly started: number
  /** 'l2' while it reads L2; 'load' once it goes to the loader (strong namespaces join only then). */
  phase: 'l2' | 'load'
  /**
   * A load still running after the flight already answered with a stale value (at the soft timeout). The flight
   * stays registered until it settles, so later readers get the stale answer rather than start another load, but
   * only until `answersUntil`.
   */
  continuation?: Promise<unknown>
  /** With `continuation`: the end of the stale window of the value it answered (clock time). */
  answersUntil?: number
}

export class FlightRegistry<V> {
  readonly #flights = new Map<string, Flight<V>>()
  readonly #refreshing = new Map<string, Flight<V | undefined>>()
  /** Tokens of every flight still running, registered or cancelled (a cancelled one may still try to store). */
  readonly #live = new Map<number, number>()

  /**
   * The foreground flight of `key` to join, unless it may no longer answer now. The clock is read only for a flight
   * that answered a stale value (`answersUntil`): not on the way to every L2 read.
   */
  joinable(key: string, clock: Clock): Flight<V> | undefined {
    const flight = this.#flights.get(key)
    if (flight === undefined) return undefined
    if (flight.answersUntil !== undefined && clock.now() >= flight.answersUntil) {
      // Its stale answer is past its window: forget it (its load goes on and may still store its value).
      this.#flights.delete(key)
      return undefined
    }
    return flight
  }

  has(key: string): boolean {
    return this.#flights.has(key) || this.#refreshing.has(key)
  }

  isRefreshing(key: string): boolean {
    return this.#refreshing.has(key)
  }

  get refreshCount(): number {
    return this.#refreshing.size
  }

  /**
   * Registers a foreground flight for `key` and runs it. `settled` runs once the flight left the registry (and its
   * continuation, if any, settled); it must not throw, and is isolated if it does.
   */
  start(
    key: string,
    token: number,
    run: (flight: Flight<V>) => Promise<V>,
    settled?: (flight: Flight<V>) => void,
  ): Flight<V> {
    const flight: Flight<V> = {
      promise: undefined as unknown as Promise<V>,
      token,
      callers: 1,
      missed: false,
      started: performance.now(),
      phase: 'l2',
    }
    this.#flights.set(key, flight)
    this.#hold(token)
    flight.promise = run(flight)
    // Registered before any caller's reaction, so the flight has left the map when its callers resume.
    const leave = () => {
      if (this.#flights.get(key) === flight) this.#flights.delete(key)
      this.#drop(token)
      if (settled !== undefined) isolate(() => settled(flight))
    }
    flight.promise.then(
      () => (flight.continuation === undefined ? leave() : flight.continuation.then(leave, leave)),
      () => leave(),
    )
    return flight
  }

  /** Registers a background refresh of `key` (never joined by readers) and runs it; `settled` as for `start`. */
  startRefresh(
    key: string,
    token: number,
    run: (flight: Flight<V | undefined>) => Promise<V | undefined>,
    settled: (failed: boolean) => void,
  ): void {
    const flight: Flight<V | undefined> = {
      promise: undefined as unknown as Promise<V | undefined>,
      token,
      callers: 0,
      missed: true,
      started: performance.now(),
      phase: 'load',
    }
    this.#refreshing.set(key, flight)
    this.#hold(token)
    const leave = (failed: boolean) => {
      if (this.#refreshing.get(key) === flight) this.#refreshing.delete(key)
      this.#drop(token)
      isolate(() => settled(failed))
    }
    flight.promise = run(flight)
    flight.promise.then(
      () => leave(false),
      () => leave(true),
    )
  }

  /** Unregisters the flights of `key`: later readers start anew. The fence decides what the old ones may store. */
  cancel(key: string): void {
    this.#flights.delete(key)
    this.#refreshing.delete(key)
  }

  cancelAll(): void {
    this.#flights.clear()
    this.#refreshing.clear()
  }

  /**
   * Holds `token` for work that stores outside a flight (a batch member's load): released by the returned function.
   */
  hold(token: number): () => void {
    this.#hold(token)
    let released = false
    return () => {
      if (released) return
      released = true
      this.#drop(token)
    }
  }

  /** The oldest token still running work holds, or `fallback` when none does (for fence pruning). */
  oldestToken(fallback: number): number {
    let oldest = fallback
    for (const token of this.#live.keys()) if (token < oldest) oldest = token
    return oldest
  }

  #hold(token: number): void {
    this.#live.set(token, (this.#live.get(token) ?? 0) + 1)
  }

  #drop(token: number): void {
    const left = (this.#live.get(token) ?? 1) - 1
    if (left === 0) this.#live.delete(token)
    else this.#live.set(token, left)
  }
}

/** Runs bookkeeping that must never break the read path: a throw is swallowed (counted nowhere: it is ours). */
function isolate(work: () => void): void {
  try {
    work()
  } catch {
    // Bookkeeping (metrics, labels, access log) failed; the read it describes is unaffected.
  }
}
