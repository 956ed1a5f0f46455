// A namespace's source limiter under many waiters: one listener on the cache's signal, and close() rejects them all.
import { afterEach, describe, expect, it } from 'vitest'
import { cacheFactory } from '../helpers/caches.js'

const newCache = cacheFactory('unit-limit-close')

describe('waiting for the source limit', () => {
  const warnings: Error[] = []
  const onWarning = (warning: Error) => void warnings.push(warning)
  afterEach(() => {
    process.off('warning', onWarning)
    warnings.length = 0
  })

  it('holds 50 waiters without a MaxListenersExceededWarning, and close() rejects all 50 with ERR_STRATA_CLOSED', async () => {
    process.on('warning', onWarning)
    const cache = newCache()
    let calls = 0
    let open!: () => void
    const gate = new Promise<void>((resolve) => (open = resolve))
    const ns = cache.namespace('item', {
      key: 'item:{id}',
      ttl: '1m',
      source: { maxConcurrent: 1, maxWait: '1m' },
      load: async ({ id }) => {
        calls++
        await gate
        return id
      },
    })
    const reads = Array.from({ length: 51 }, (_, id) =>
      ns.get({ id }).then(
        () => 'loaded',
        (error: unknown) => (error as { code?: string }).code,
      ),
    )
    // Let every read reach the limiter, and any warning be emitted (warnings go out on a later tick).
    await new Promise((resolve) => setTimeout(resolve, 20))
    // One load holds the only slot; the 50 others wait in the limiter.
    expect(calls).toBe(1)
    await cache.close()
    open()
    const outcomes = await Promise.all(reads)
    expect(outcomes.filter((o) => o === 'ERR_STRATA_CLOSED')).toHaveLength(50)
    expect(outcomes.filter((o) => o === 'loaded')).toHaveLength(1)
    await new Promise((resolve) => setImmediate(resolve))
    expect(warnings.map((w) => w.name)).not.toContain('MaxListenersExceededWarning')
  })
})
