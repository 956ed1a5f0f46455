// Which Redis servers the store accepts: the decision behind ERR_STRATA_L2_UNSUPPORTED (one cannot run Redis 6 here).
import { describe, expect, it } from 'vitest'
import { checkServerVersion, MIN_REDIS_VERSION } from '../../src/tiers/redis-store.js'

describe('the Redis version check', () => {
  it('needs Redis 7.0', () => {
    expect(MIN_REDIS_VERSION).toBe('7.0')
  })

  it.each(['7.0.0', '7.0.15', '7.2.4', '7.4.1', '8.0.2', '10.1.0'])('accepts redis_version %s', (version) => {
    expect(checkServerVersion({ redis_version: version })).toBeUndefined()
  })

  it.each(['6.2.14', '6.0.9', '5.0.7', '2.8.24'])(
    'refuses redis_version %s with ERR_STRATA_L2_UNSUPPORTED',
    (version) => {
      const error = checkServerVersion({ redis_version: version, redis_mode: 'standalone' })
      expect(error).toMatchObject({
        code: 'ERR_STRATA_L2_UNSUPPORTED',
        server: 'redis',
        version,
        minimum: '7.0',
      })
      expect(error?.message).toContain(`redis ${version}`)
      expect(error?.message).toMatch(/needs Redis 7\.0 or newer/)
    },
  )

  it("reads HELLO's fields when INFO is refused", () => {
    expect(checkServerVersion({ server: 'redis', version: '6.2.6', proto: '2' })).toMatchObject({
      server: 'redis',
      version: '6.2.6',
    })
    expect(checkServerVersion({ server: 'redis', version: '7.0.15' })).toBeUndefined()
  })

  it('goes by redis_version for servers that report one for compatibility (Valkey)', () => {
    expect(
      checkServerVersion({ redis_version: '7.2.4', server_name: 'valkey', valkey_version: '8.0.1' }),
    ).toBeUndefined()
    expect(checkServerVersion({ redis_version: '6.2.0', server_name: 'keydb' })).toMatchObject({
      server: 'keydb',
    })
  })

  it('gives the benefit of the doubt to a server that does not say (a proxy hiding INFO)', () => {
    expect(checkServerVersion({})).toBeUndefined()
    expect(checkServerVersion({ redis_version: '' })).toBeUndefined()
    expect(checkServerVersion({ redis_version: 'unknown' })).toBeUndefined()
  })
})
