// The invalidation bus: tells every other process sharing L2 to drop L1 entries, over Redis pub/sub.
import { randomBytes } from 'node:crypto'
import type { Clock } from '../core/clock.js'
import { L2TimeoutError } from '../errors.js'
import { channels } from '../observability/channels.js'
import type { L2Guard } from '../policies/l2-guard.js'
import { decodeBusMessage, encodeBusMessage, type Invalidation } from './wire.js'

/** Counters of the bus since the cache was created. */
export interface BusStats {
  readonly sent: number
  readonly received: number
  /** Messages this process sent, seen again on the channel and ignored. */
  readonly ownIgnored: number
  /** Messages that did not decode (garbage, another format version): ignored. */
  readonly malformed: number
  readonly sendErrors: number
  /** Invalidation lag, publish time to this process dropping the entries: last and largest seen, in ms. */
  readonly lagMs: { readonly last: number; readonly max: number }
  /** Times the subscription came back after a loss; each dropped L1 (invalidations may have been missed). */
  readonly reconnects: number
  /** Whether the subscription is active now. */
  readonly subscribed: boolean
}

export interface BusHandlers {
  /** Drop what the message names from L1; `lagMs`: from its publication to now, on Redis's clock. */
  invalidate(invalidation: Invalidation, lagMs: number): void
  /**
   * The subscription was lost and is back, or came up for the first time (`first`) after the process may have
   * filled L1 without it: messages may have been missed, so drop or revalidate what could be stale.
   */
  missedMessages(first: boolean): void
}

/**
 * One per cache with L2. Subscribes to `service#bus` on the store's dedicated pub/sub connection, ignores its own
 * messages (each cache instance has a random origin id), and counts lag. A message that does not decode is
 * counted and ignored, never thrown.
 */
export class InvalidationBus {
  readonly origin = randomBytes(9).toString('base64url')
  readonly #l2: L2Guard
  readonly #service: string
  readonly #channel: string
  readonly #clock: Clock
  readonly #handlers: BusHandlers
  #subscribed = false
  #everSubscribed = false
  #attempts = 0
  #ready!: () => void
  /**
   * Resolves once the bus has subscribed for the first time, or its first attempts failed for a reason other than
   * a timeout (a refusal such as NOPERM: retrying at once will not help), for `cache.connect()`.
   */
  readonly settled: Promise<void> = new Promise((resolve) => (this.#ready = resolve))
  #retry: ReturnType<typeof setTimeout> | undefined
  #stopped = false
  #stats = {
    sent: 0,
    received: 0,
    ownIgnored: 0,
    malformed: 0,
    sendErrors: 0,
    lastLag: 0,
    maxLag: 0,
    reconnects: 0,
  }

  constructor(l2: L2Guard, service: string, clock: Clock, handlers: BusHandlers) {
    this.#l2 = l2
    this.#service = service
    this.#channel = `${service}#bus`
    this.#clock = clock
    this.#handlers = handlers
  }

  /** Subscribes; on failure retries every second until it works or the bus stops. Never rejects. */
  start(): void {
    if (this.#stopped || this.#subscribed) return
    this.#attempts++
    this.#l2.subscribe(this.#channel, this.#onMessage).then(
      () => {
        this.#subscribed = true
        const first = !this.#everSubscribed
        this.#everSubscribed = true
        // Before the first subscription (a start without Redis, or a slow one) the process may have filled L1, and
        // whatever was published meanwhile is lost to it, as during a reconnection.
        if (first) {
          this.#ready()
          this.#handlers.missedMessages(true)
        }
      },
      (error: unknown) => {
        if (this.#stopped) return
        if (!(error instanceof L2TimeoutError)) this.#ready()
        // Soon at first (the pub/sub connection may just be slower to open than the L2 timeout), then every second.
        const delay = Math.min(1_000, 50 * 2 ** this.#attempts)
        this.#retry = setTimeout(() => this.start(), delay).unref()
      },
    )
  }

  /** The subscriber connection's status changed (from the store). */
  connectionStatus(ready: boolean): void {
    if (!ready) {
      this.#subscribed = false
      return
    }
    if (this.#everSubscribed && !this.#subscribed) {
      // node-redis restores the subscription on reconnect, but whatever was published meanwhile is gone.
      this.#subscribed = true
      this.#stats.reconnects++
      this.#handlers.missedMessages(false)
    }
  }

  /**
   * Publishes an invalidation to the other processes. Never rejects: resolves to undefined once sent, or to the
   * error (counted in `sendErrors`); the caller decides whether to retry and how to report it.
   */
  async publish(invalidation: Invalidation): Promise<unknown> {
    const text = encodeBusMessage({ origin: this.origin, sentAt: this.#clock.now(), invalidation })
    try {
      await this.#l2.publish(this.#channel, text)
      this.#stats.sent++
      return undefined
    } catch (error) {
      this.#stats.sendErrors++
      return error ?? new Error('publish failed')
    }
  }

  stats(): BusStats {
    const s = this.#stats
    return Object.freeze({
      sent: s.sent,
      received: s.received,
      ownIgnored: s.ownIgnored,
      malformed: s.malformed,
      sendErrors: s.sendErrors,
      lagMs: Object.freeze({ last: s.lastLag, max: s.maxLag }),
      reconnects: s.reconnects,
      subscribed: this.#subscribed,
    })
  }

  stop(): void {
    this.#stopped = true
    clearTimeout(this.#retry)
  }

  readonly #onMessage = (text: string): void => {
    const decoded = decodeBusMessage(text)
    if (!decoded.ok) {
      this.#stats.malformed++
      return
    }
    const { message } = decoded
    if (message.origin === this.origin) {
      this.#stats.ownIgnored++
      return
    }
    this.#stats.received++
    const lag = Math.max(0, this.#clock.now() - message.sentAt)
    this.#handlers.invalidate(message.invalidation, lag)
    this.#stats.lastLag = lag
    if (lag > this.#stats.maxLag) this.#stats.maxLag = lag
    if (channels.busReceived.hasSubscribers) {
      channels.busReceived.publish({
        service: this.#service,
        ...message.invalidation,
        origin: message.origin,
        lagMs: lag,
      })
    }
  }
}
