// The outage log's one rule for a connection closed midway: it says a connection ended, not why the next one cannot
// be made, so it is held until the next attempt's reason replaces it, and logged only when no other reason comes.
import { afterEach, describe, expect, it, vi } from 'vitest'
import { closedGraceMs, L2OutageLog } from '../../src/observability/l2-outage-log.js'
import type { Logger } from '../../src/options.js'
import type { L2Status, L2Store } from '../../src/tiers/l2-store.js'
import { describeRedisFailure } from '../../src/tiers/redis-failure.js'

afterEach(() => {
  vi.useRealTimers()
})

/** A Node network error as node-redis hands it on (`code`, and the address for a refusal). */
function netError(code: string): Error {
  return Object.assign(new Error(`${code} 127.0.0.1:6390`), { code, address: '127.0.0.1', port: 6390 })
}

class SocketClosedUnexpectedlyError extends Error {}

const RETRY_MS = 100

/**
 * An outage log over a store that is only a status and node-redis's description of its failures (`described:
 * false`: a store without `describeFailure`, so the log's generic description), writing to `lines`.
 */
function setUp(described = true) {
  const store = {
    status: 'ready' as L2Status,
    address: '127.0.0.1:6390',
    name: 'redis',
    ...(described && {
      describeFailure: (error: unknown) =>
        describeRedisFailure(
          error,
          { address: '127.0.0.1:6390', retryMs: RETRY_MS, tls: false, connectTimeoutMs: 1_000 },
          false,
        ),
    }),
  }
  const lines: { fields: Record<string, unknown>; message: string }[] = []
  const warn = (fields: object, message: string) => void lines.push({ fields: { ...fields }, message })
  const logger: Logger = { debug: () => {}, info: () => {}, warn, error: warn }
  let now = 0
  const log = new L2OutageLog({
    service: 'outages',
    store: store as unknown as L2Store,
    logger,
    failureThreshold: 3,
    l2TimeoutMs: 100,
    breakMs: 100,
    now: () => now,
  })
  /** The store drops its ready connection, then `errors` are its failed attempts, `ms` apart. */
  const drop = (...errors: unknown[]) => {
    store.status = 'reconnecting'
    log.status('reconnecting')
    for (const error of errors) {
      log.connectionError(error, false)
      now += 50
    }
  }
  const ready = () => {
    store.status = 'ready'
    log.status('ready')
  }
  return { store, log, lines, drop, ready, advance: (ms: number) => (now += ms) }
}

describe('a connection closed midway', () => {
  it('is replaced by the next attempt’s reason: a Redis killed during a handshake is one line, ECONNREFUSED', () => {
    vi.useFakeTimers()
    const { lines, drop, ready } = setUp()
    const closed = new SocketClosedUnexpectedlyError('Socket closed unexpectedly')
    drop(netError('ECONNRESET'), netError('ECONNREFUSED'), closed, netError('ECONNREFUSED'))
    vi.advanceTimersByTime(closedGraceMs(RETRY_MS) * 2)
    expect(lines.map((line) => line.fields.reason)).toEqual(['ECONNREFUSED'])
    expect(lines[0]!.message).toMatch(
      /cannot reach Redis at 127\.0\.0\.1:6390 \(ECONNREFUSED: nothing listens/,
    )
    ready()
    // The outage began with the reset: its length counts from there (four attempts, 50 ms apart).
    expect(lines[1]!.fields).toMatchObject({ outage: 'end', downMs: 200 })
  })

  it('logs nothing when the next attempt connects: a blip', () => {
    vi.useFakeTimers()
    const { lines, drop, ready } = setUp()
    drop(netError('ECONNRESET'))
    ready()
    vi.advanceTimersByTime(closedGraceMs(RETRY_MS) * 2)
    expect(lines).toEqual([])
  })

  it('is logged when no other reason follows within the grace: a port that resets every connection', () => {
    vi.useFakeTimers()
    const { lines, drop } = setUp()
    drop(netError('ECONNRESET'), netError('ECONNRESET'))
    vi.advanceTimersByTime(closedGraceMs(RETRY_MS) - 1)
    expect(lines).toEqual([])
    vi.advanceTimersByTime(1)
    expect(lines).toHaveLength(1)
    expect(lines[0]!.fields).toMatchObject({ reason: 'ECONNRESET', outage: 'begin' })
    expect(lines[0]!.message).toMatch(/\(ECONNRESET: the server or the network closed the connection\)/)
    drop(netError('ECONNRESET'))
    vi.advanceTimersByTime(closedGraceMs(RETRY_MS) * 2)
    expect(lines).toHaveLength(1) // a reason already logged in this outage
  })

  it('adds no line to an outage already logged when the next attempts are refused again', () => {
    vi.useFakeTimers()
    const { lines, drop } = setUp()
    drop(netError('ECONNREFUSED'), netError('ECONNRESET'), netError('ECONNREFUSED'))
    vi.advanceTimersByTime(closedGraceMs(RETRY_MS) * 2)
    expect(lines.map((line) => line.fields.reason)).toEqual(['ECONNREFUSED'])
  })

  it('is a new reason in an outage when every attempt after it is closed too (Redis at maxclients)', () => {
    vi.useFakeTimers()
    const { lines, drop } = setUp()
    drop(netError('ECONNREFUSED'), netError('ECONNRESET'))
    vi.advanceTimersByTime(closedGraceMs(RETRY_MS))
    expect(lines.map((line) => line.fields.reason)).toEqual(['ECONNREFUSED', 'ECONNRESET'])
  })

  it('is held by the generic description too (a store without describeFailure)', () => {
    vi.useFakeTimers()
    const { lines, drop } = setUp(false)
    drop(netError('EPIPE'), netError('ECONNREFUSED'))
    vi.advanceTimersByTime(closedGraceMs(undefined) * 2)
    expect(lines.map((line) => line.fields.reason)).toEqual(['ECONNREFUSED'])
  })

  it('is not logged once the cache stops, nor after the store closed', () => {
    vi.useFakeTimers()
    const stopped = setUp()
    stopped.drop(netError('ECONNRESET'))
    stopped.log.stop()
    const closed = setUp()
    closed.drop(netError('ECONNRESET'))
    closed.store.status = 'closed'
    vi.advanceTimersByTime(closedGraceMs(RETRY_MS) * 2)
    expect([...stopped.lines, ...closed.lines]).toEqual([])
  })

  it('waits twice the longest wait between attempts, from 1 s to 30 s (2 s for a client that retries by itself)', () => {
    expect([undefined, 100, 2_000, 60_000].map(closedGraceMs)).toEqual([2_000, 1_000, 4_000, 30_000])
  })
})
