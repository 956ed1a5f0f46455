// In-process single-flight: the loads (and background refreshes) under way, by full key.
//
// Invariants:
// - A flight leaves the registry before anything else runs after it settles (its bookkeeping, its callers'
//   reactions, the refresh it queued): it settles through its own `resolve`, `follow` or `reject`, which unregister
//   it before any of that, so a throw in bookkeeping can never leave a dead flight that later reads would join.
// - A flight settles once: what comes after its first outcome is ignored.
// - Cancelling a flight only unregisters it: whether its value may still be cached is the fence's answer
//   (coherence/fence.ts), decided from the token it took when it started, never from a flag set here.
// - A flight that answered a stale value at the soft timeout and keeps loading stays joinable only while that
//   stale value is inside its stale window.
// - A foreground flight is one object and one promise, without closures: the L2 hit path starts one per read past
//   L1 (read/reader.ts makes the flight the read's reply too), and its garbage is what the collector's share of an
//   L2-heavy profile comes from (docs/benchmarks.md, "What an L2 hit allocates").

import type { Clock } from '../core/clock.js'

/**
 * `new Promise(capture)` hands its resolving functions to these two, read right after in the same call: a promise
 * settled from outside without an executor closure per promise.
 */
let capturedResolve: ((value: never) => void) | undefined
let capturedReject: ((error: unknown) => void) | undefined
function capture(resolve: (value: never) => void, reject: (error: unknown) => void): void {
  capturedResolve = resolve
  capturedReject = reject
}

/**
 * A load (or batch member) under way for one key, joined by every reader of the key meanwhile. Whoever runs it
 * settles it once, with `resolve`, `follow` or `reject`.
 */
export class Flight<V> {
  /** What its callers await. */
  readonly promise: Promise<V>
  readonly key: string
  /** The local fence's token when the flight started. */
  readonly token: number
  /** Readers waiting on it: the one who started it and those who joined. */
  callers = 1
  /** Neither tier had a usable value: it went to the loader (or a fail-safe fallback). */
  missed = false
  /** performance.now() when it started. */
  readonly started: number
  /** 'l2' while it reads L2; 'load' once it goes to the loader (strong namespaces join only then). */
  phase: 'l2' | 'load'
  /**
   * A load still running after the flight already answered with a stale value (at the soft timeout). The flight
   * stays registered until it settles, so later readers get the stale answer rather than start another load, but
   * only until `answersUntil`.
   */
  continuation: Promise<unknown> | undefined = undefined
  /** With `continuation`: the end of the stale window of the value it answered (clock time). */
  answersUntil: number | undefined = undefined
  readonly #resolve: (value: V) => void
  readonly #reject: (error: unknown) => void
  #done = false
  readonly #registry: FlightRegistry<V>

  constructor(registry: FlightRegistry<V>, key: string, token: number, phase: 'l2' | 'load' = 'l2') {
    this.promise = new Promise<V>(capture)
    this.#resolve = capturedResolve as (value: V) => void
    this.#reject = capturedReject!
    capturedResolve = capturedReject = undefined
    this.#registry = registry
    this.key = key
    this.token = token
    this.started = performance.now()
    this.phase = phase
  }

  /** Answers every caller with `value`. */
  resolve(value: V): void {
    if (this.#done) return
    this.#done = true
    this.#resolve(value)
    this.#leave()
  }

  /** Answers every caller with `error`. */
  reject(error: unknown): void {
    if (this.#done) return
    this.#done = true
    this.#reject(error)
    this.#leave()
  }

  /** Answers with what `work` settles to. */
  follow(work: PromiseLike<V>): void {
    work.then(
      (value) => this.resolve(value),
      (error: unknown) => this.reject(error),
    )
  }

  /** It has left the registry (and its continuation, if any, settled): its bookkeeping. Must not throw. */
  protected settled(): void {}

  /** Out of the registry now, or once the load it answered ahead of (at the soft timeout) settles. */
  #leave(): void {
    const continuation = this.continuation
    if (continuation === undefined) this.#left()
    else {
      const left = () => this.#left()
      continuation.then(left, left)
    }
  }

  #left(): void {
    this.#registry.release(this)
    try {
      this.settled()
    } catch {
      // Bookkeeping (metrics, labels, access log) failed; the read it describes is unaffected.
    }
  }
}

/** A flight whose bookkeeping is a function given at its start. */
class PlainFlight<V> extends Flight<V> {
  readonly #onSettled: ((flight: Flight<V>) => void) | undefined

  constructor(
    registry: FlightRegistry<V>,
    key: string,
    token: number,
    phase: 'l2' | 'load',
    onSettled: ((flight: Flight<V>) => void) | undefined,
  ) {
    super(registry, key, token, phase)
    this.#onSettled = onSettled
  }

  protected override settled(): void {
    this.#onSettled?.(this)
  }
}

export class FlightRegistry<V> {
  /**
   * By key. A null-prototype object, not a Map: a Map whose entries churn this fast (one per read past L1) kept its
   * deleted flights, and their values, alive through minor collections (docs/benchmarks.md, "What an L2 hit
   * allocates").
   */
  #flights: Record<string, Flight<V> | undefined> = Object.create(null) as Record<
    string,
    Flight<V> | undefined
  >
  readonly #refreshing = new Map<string, Flight<V | undefined>>()
  /** Tokens of every flight still running, registered or cancelled (a cancelled one may still try to store). */
  readonly #live = new Map<number, number>()

  /**
   * The foreground flight of `key` to join, unless it may no longer answer now. The clock is read only for a flight
   * that answered a stale value (`answersUntil`): not on the way to every L2 read.
   */
  joinable(key: string, clock: Clock): Flight<V> | undefined {
    const flight = this.#flights[key]
    if (flight === undefined) return undefined
    if (flight.answersUntil !== undefined && clock.now() >= flight.answersUntil) {
      // Its stale answer is past its window: forget it (its load goes on and may still store its value).
      delete this.#flights[key]
      return undefined
    }
    return flight
  }

  has(key: string): boolean {
    return this.#flights[key] !== undefined || this.#refreshing.has(key)
  }

  isRefreshing(key: string): boolean {
    return this.#refreshing.has(key)
  }

  get refreshCount(): number {
    return this.#refreshing.size
  }

  /**
   * Registers a foreground flight made by the caller (a subclass that runs itself: read/reader.ts). It must be
   * new, of this registry, and settle once.
   */
  register(flight: Flight<V>): void {
    this.#flights[flight.key] = flight
    this.#hold(flight.token)
  }

  /**
   * Registers a foreground flight for `key` and runs it: it answers what `run` resolves to. `settled` runs once the
   * flight left the registry (and its continuation, if any, settled); it must not throw, and is isolated if it does.
   */
  start(
    key: string,
    token: number,
    run: (flight: Flight<V>) => Promise<V>,
    settled?: (flight: Flight<V>) => void,
  ): Flight<V> {
    const flight = new PlainFlight<V>(this, key, token, 'l2', settled)
    this.register(flight)
    flight.follow(started(run, flight))
    return flight
  }

  /** Registers a background refresh of `key` (never joined by readers) and runs it; `settled` as for `start`. */
  startRefresh(
    key: string,
    token: number,
    run: (flight: Flight<V | undefined>) => Promise<V | undefined>,
    settled: (failed: boolean) => void,
  ): void {
    const registry = this as unknown as FlightRegistry<V | undefined>
    let failed = false
    const flight = new PlainFlight<V | undefined>(registry, key, token, 'load', () => settled(failed))
    flight.callers = 0
    flight.missed = true
    this.#refreshing.set(key, flight)
    this.#hold(token)
    started(run, flight).then(
      (value) => flight.resolve(value),
      () => {
        failed = true
        flight.resolve(undefined)
      },
    )
  }

  /** Unregisters the flights of `key`: later readers start anew. The fence decides what the old ones may store. */
  cancel(key: string): void {
    delete this.#flights[key]
    this.#refreshing.delete(key)
  }

  cancelAll(): void {
    this.#flights = Object.create(null) as Record<string, Flight<V> | undefined>
    this.#refreshing.clear()
  }

  /** A flight settled (its continuation too): out of the registry if still there, its token released. */
  release(flight: Flight<V> | Flight<V | undefined>): void {
    const key = flight.key
    if (this.#flights[key] === flight) delete this.#flights[key]
    else if (this.#refreshing.get(key) === flight) this.#refreshing.delete(key)
    this.#drop(flight.token)
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

/** `run(flight)`, a synchronous throw turned into a rejection: the flight is registered already, so it must settle. */
function started<F, T>(run: (flight: F) => Promise<T>, flight: F): Promise<T> {
  try {
    return run(flight)
  } catch (error) {
    return Promise.reject(error instanceof Error ? error : new Error(String(error)))
  }
}
