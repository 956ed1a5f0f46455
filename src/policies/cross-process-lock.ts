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
  /** Announces that the value landed in L2 (when it did), then releases the lock. Never rejects. */
  release(landed: boolean): Promise<void>
}

/** What `acquire` found: the lock is ours, another process holds it, or L2 could not say (load without a lock). */
export type Acquired = LockHolder | 'held' | 'unavailable'

/**
 * The lock protocol, shared by all namespaces of a cache:
 *
 * - `SET key#lock token NX PX ttl`: one process wins; it extends the lock (only while it still holds its token, by
 *   script) every ttl/3 while its loader runs, so a long load keeps it and a dead holder loses it within one ttl.
 * - The winner writes the value to L2, then PUBLISHes the key on the service's channel, then deletes the lock (only
 *   if the token is still its own, by script).
 * - A loser subscribes (once per process), checks L2 again (the value may have landed meanwhile), and sleeps until
 *   the key is announced or the holder's lock would have expired; then it reads L2 or tries the lock again. After
 *   `waitMs` in all it loads by itself: a lost message or a stuck holder costs latency, never an error.
 */
export class CrossProcessLock {
  readonly #l2: L2Guard
  readonly #channel: string
  readonly options: CrossProcessLockOptions
  readonly #waiters = new Map<string, Set<() => void>>()
  #subscribed: Promise<void> | undefined

  constructor(l2: L2Guard, service: string, options: CrossProcessLockOptions) {
    this.#l2 = l2
    this.#channel = `${service}#landed`
    this.options = options
  }

  /** Tries to take the lock of `key` at once. */
  async acquire(key: string): Promise<Acquired> {
    const token = randomBytes(12).toString('base64url')
    const lockKey = key + '#lock'
    let won: boolean
    try {
      won = await this.#l2.tryLock(lockKey, token, this.options.ttlMs)
    } catch {
      return 'unavailable'
    }
    if (!won) return 'held'
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
      release: async (landed) => {
        stop()
        closing.removeEventListener('abort', stop)
        // Announce before unlocking: a waiter woken by the lock's expiry instead would try to load again.
        if (landed) await this.#l2.publish(this.#channel, key).catch(() => {})
        await this.#l2.unlock(lockKey, token).catch(() => {})
      },
    }
  }

  /**
   * Registers interest in `key` landing; `wait()` then resolves on the announcement or after `timeoutMs`, whichever
   * comes first. Register before re-reading L2, so an announcement between the read and the wait is not missed.
   */
  async watch(
    key: string,
  ): Promise<{ wait(timeoutMs: number): Promise<boolean>; cancel(): void } | undefined> {
    try {
      this.#subscribed ??= this.#l2.subscribe(this.#channel, this.#onLanded).catch((error: unknown) => {
        this.#subscribed = undefined
        throw error
      })
      await this.#subscribed
    } catch {
      return undefined
    }
    let wake!: () => void
    let landed = false
    const woken = new Promise<void>((resolve) => (wake = resolve))
    const listener = () => {
      landed = true
      wake()
    }
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
        return landed
      },
      cancel,
    }
  }

  /** Remaining lifetime of another process's lock on `key`, in ms (0 when none). */
  async lockTtl(key: string): Promise<number> {
    try {
      return Math.max(0, await this.#l2.ttl(key + '#lock'))
    } catch {
      return 0
    }
  }

  readonly #onLanded = (key: string): void => {
    const set = this.#waiters.get(key)
    if (set === undefined) return
    for (const listener of [...set]) listener()
  }
}
