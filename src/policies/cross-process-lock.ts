// Cross-process single-flight: one process loads a cold key while the others wait for the value to land in L2.
import { randomBytes } from 'node:crypto'
import type { L2Guard } from './l2-guard.js'

export interface CrossProcessLockOptions {
  /** Lock lifetime in ms; the holder extends it every third of it while its loader runs. */
  readonly ttlMs: number
  /** Longest a process waits for another's load before loading itself, in ms. */
  readonly waitMs: number
}

/** A lock this process holds on one key until `release`. */
export interface LockHolder {
  /** Releases the lock, then announces the key to the waiters (the value landed or not). Never rejects. */
  release(): Promise<void>
}

/**
 * What `acquire` found: the lock is ours, another process holds it for `remainingMs` more, or L2 could not say
 * (load without a lock).
 */
export type Acquired = LockHolder | { readonly heldMs: number } | 'unavailable'

/** Whether another process holds the lock (and `acquire` waits for it). */
export function isHeld(acquired: Acquired): acquired is { readonly heldMs: number } {
  return typeof acquired === 'object' && 'heldMs' in acquired
}

/** While our pub/sub connection is down, how often a lock waiter reads L2 again (no announcement can wake it). */
const DEAF_RECHECK_MS = 250

/** Token length in characters (12 random bytes in base64url): how a key holding a live lock of ours looks. */
const TOKEN_BYTES = 12

/**
 * The lock protocol, shared by all namespaces of a cache:
 *
 * - `SET key#lock token NX PX ttl`: one process wins; it extends the lock (only while it still holds its token, by
 *   script) every ttl/3 while its loader runs, so a long load keeps it and a dead holder loses it within one ttl.
 * - The winner writes the value to L2, deletes the lock (only if the token is still its own, by script), then
 *   PUBLISHes the key on the service's channel: whether the value landed or not, waiters wake to adopt it or to
 *   take the lock.
 * - Before each attempt a process registers for the key's announcement (subscribing once per process), so a release
 *   after a failed attempt is always heard. A loser checks L2 again (the value may have landed meanwhile), sleeps until
 *   the key is announced, the holder's lock would have expired, or the pub/sub connection was lost or came back
 *   (`hearing`); then it reads L2 or tries the lock again. It does not poll while the connection is up: one wait
 *   costs three commands per lock TTL. While it is down, it reads L2 every 250 ms. After `waitMs` in all it loads
 *   by itself: a lost message or a stuck holder costs latency, never an error. A waiter that wins the lock after a
 *   wait reads L2 once more before loading (load/pipeline.ts): the value may have landed just before its attempt.
 * - A `#lock` key that cannot be a live lock (no expiry, not a string, not a token) is broken by the next process
 *   that tries the lock (`onBroken` is told), so a stray key costs one miss nothing, not every miss a full wait.
 */
export class CrossProcessLock {
  readonly #l2: L2Guard
  readonly #channel: string
  readonly options: CrossProcessLockOptions
  readonly #waiters = new Map<string, Set<() => void>>()
  #subscribed: Promise<void> | undefined
  #deaf = false

  readonly #onBroken: (lockKey: string) => void

  constructor(
    l2: L2Guard,
    service: string,
    options: CrossProcessLockOptions,
    onBroken: (lockKey: string) => void = () => {},
  ) {
    this.#l2 = l2
    this.#channel = `${service}#landed`
    this.options = options
    this.#onBroken = onBroken
  }

  /** Tries to take the lock of `key` at once. */
  async acquire(key: string): Promise<Acquired> {
    const token = randomBytes(TOKEN_BYTES).toString('base64url')
    const lockKey = key + '#lock'
    try {
      const attempt = await this.#l2.acquireLock(lockKey, token, this.options.ttlMs)
      if (!attempt.won) return { heldMs: attempt.remainingMs }
      if (attempt.broke) this.#onBroken(lockKey)
    } catch {
      return 'unavailable'
    }
    // Extend the lock while the loader runs, until release or until the cache closes: a loader that ignores its
    // signal and never settles must not hold the lock for ever, nor leave a timer behind close().
    const closing = this.#l2.closing
    let keepAlive: ReturnType<typeof setInterval> | undefined
    const stop = () => clearInterval(keepAlive)
    if (!closing.aborted) {
      keepAlive = setInterval(
        () => void this.#l2.extendLock(lockKey, token, this.options.ttlMs).catch(() => {}),
        Math.max(1, Math.floor(this.options.ttlMs / 3)),
      ).unref()
      closing.addEventListener('abort', stop, { once: true })
    }
    return {
      release: async () => {
        stop()
        closing.removeEventListener('abort', stop)
        // Unlock, then wake the waiters, whether the value landed or not. Woken, a waiter reads L2 and adopts the
        // value, or takes the lock (now free) and loads. In the other order, a waiter whose attempt came between
        // the announcement and the unlock would sleep until the lock's TTL; and without an announcement when the
        // store was refused (a write won the race) or failed, every waiter would.
        await this.#l2.unlock(lockKey, token).catch(() => {})
        await this.#l2.publish(this.#channel, key).catch(() => {})
      },
    }
  }

  /**
   * Registers interest in `key` landing; `wait()` then resolves on the announcement or after `timeoutMs`, whichever
   * comes first. Register before trying the lock (and before re-reading L2), so that a release announced after the
   * attempt, or a value announced after the read, is not missed.
   */
  async watch(key: string): Promise<{ wait(timeoutMs: number): Promise<void>; cancel(): void } | undefined> {
    try {
      this.#subscribed ??= this.#l2.subscribe(this.#channel, this.#onLanded).catch((error: unknown) => {
        this.#subscribed = undefined
        throw error
      })
      await this.#subscribed
    } catch {
      return undefined
    }
    let listener!: () => void
    const woken = new Promise<void>((resolve) => (listener = resolve))
    let set = this.#waiters.get(key)
    if (set === undefined) this.#waiters.set(key, (set = new Set()))
    set.add(listener)
    const cancel = () => {
      set.delete(listener)
      if (set.size === 0 && this.#waiters.get(key) === set) this.#waiters.delete(key)
    }
    return {
      wait: async (timeoutMs) => {
        let timer: ReturnType<typeof setTimeout> | undefined
        await Promise.race([woken, new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)))])
        clearTimeout(timer)
        cancel()
      },
      cancel,
    }
  }

  /**
   * The pub/sub connection's state: lost (`false`) or back (`true`). Either way every waiter wakes to read L2 again,
   * since an announcement may have been missed; while it is lost, waiters read L2 every `DEAF_RECHECK_MS` instead
   * of sleeping until the lock expires, as no announcement can reach them.
   */
  hearing(connected: boolean): void {
    this.#deaf = !connected
    for (const set of [...this.#waiters.values()]) for (const listener of [...set]) listener()
  }

  /**
   * How long a waiter sleeps (unless woken) when another holder has the lock for `heldMs` more and the waiter's own
   * deadline is `remainingMs` away: until the lock would expire (a dead holder), or a short slice when deaf.
   */
  sleepFor(heldMs: number, remainingMs: number): number {
    return Math.min(remainingMs, heldMs + 25, this.#deaf ? DEAF_RECHECK_MS : Infinity)
  }

  readonly #onLanded = (key: string): void => {
    const set = this.#waiters.get(key)
    if (set === undefined) return
    for (const listener of [...set]) listener()
  }
}
