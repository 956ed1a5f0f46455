// Durations that arm a Node timer are refused over 2^31−1 ms, where Node would fire them after 1 ms.
import { describe, expect, it } from 'vitest'
import { parseDuration } from '../../src/core/duration.js'
import { MAX_TIMER_MS, positiveDuration, timerDuration } from '../../src/options.js'
import { redisStore } from '../../src/redis.js'

describe('timerDuration', () => {
  it.each([['30d'], ['25d'], [MAX_TIMER_MS + 1], [Number.MAX_SAFE_INTEGER]])(
    'refuses %j with ERR_STRATA_INVALID_OPTION naming the option, the maximum (24.8 days) and what to do',
    (value) => {
      const attempt = () => timerDuration(value, 'report.timeouts.hard')
      expect(attempt).toThrow(
        expect.objectContaining({
          code: 'ERR_STRATA_INVALID_OPTION',
          option: 'report.timeouts.hard',
          value,
        }) as Error,
      )
      expect(attempt).toThrow(/`report\.timeouts\.hard`.*at most 2147483647 ms \(about 24\.8 days\).*shorter/)
    },
  )

  it('accepts every duration from 1 ms up to 2,147,483,647 ms, in any unit', () => {
    expect(timerDuration(1, 'x')).toBe(1)
    expect(timerDuration('24d', 'x')).toBe(24 * 86_400_000)
    expect(timerDuration(MAX_TIMER_MS, 'x')).toBe(2_147_483_647)
    expect(timerDuration('2147483.647s', 'x')).toBe(MAX_TIMER_MS)
  })

  it('refuses what positiveDuration refuses: 0, negative, NaN, an unknown unit', () => {
    for (const bad of [0, '0s', -5, Number.NaN, '5 weeks', undefined]) {
      expect(() => timerDuration(bad, 'ns.hotKeys.interval')).toThrow(
        expect.objectContaining({
          code: 'ERR_STRATA_INVALID_OPTION',
          option: 'ns.hotKeys.interval',
        }) as Error,
      )
    }
  })

  it('leaves durations that arm no timer free to be long: 30 days is still a valid TTL or cap', () => {
    expect(parseDuration('30d', 'ns.ttl')).toBe(2_592_000_000)
    expect(positiveDuration('30d', 'ttlCaps.personal')).toBe(2_592_000_000)
  })
})

describe('redisStore({ connectTimeout, maxReconnectDelay })', () => {
  it.each([
    ['connectTimeout', '30d'],
    ['connectTimeout', MAX_TIMER_MS + 1],
    ['connectTimeout', 0],
    ['connectTimeout', -1],
    ['connectTimeout', Number.NaN],
    ['connectTimeout', 'soon'],
    ['maxReconnectDelay', '25d'],
    ['maxReconnectDelay', 0],
  ])('refuses %s: %j with ERR_STRATA_INVALID_OPTION naming the option', (name, value) => {
    const attempt = () => redisStore({ url: 'redis://127.0.0.1:6379', [name]: value })
    expect(attempt).toThrow(
      expect.objectContaining({
        code: 'ERR_STRATA_INVALID_OPTION',
        option: `redisStore.${name}`,
        value,
      }) as Error,
    )
  })

  it('accepts 1 ms up to 2,147,483,647 ms, and defaults to 1 s (connect) and 2 s (reconnect delay)', async () => {
    for (const value of [1, '500ms', '24d', MAX_TIMER_MS] as const) {
      await redisStore({
        url: 'redis://127.0.0.1:6379',
        connectTimeout: value,
        maxReconnectDelay: value,
      }).close()
    }
    const store = redisStore({ url: 'redis://127.0.0.1:6379' })
    expect(store.describeFailure(new Error('x', { cause: undefined }))).toMatchObject({ retryMs: 2_000 })
    expect(
      store.describeFailure(Object.assign(new Error('connect ETIMEDOUT'), { code: 'ETIMEDOUT' })).summary,
    ).toContain('no answer within the connect timeout, 1 s')
    await store.close()
  })
})
