// A namespace's source rate limit across a backward step of the cache clock (NTP correction, VM resumed).
import { describe, expect, it } from 'vitest'
import { cacheFactory } from '../helpers/caches.js'
import { fakeClock } from '../helpers/fake-clock.js'

const newCache = cacheFactory('unit-limit-clock')

describe('the source rate limit and the clock', () => {
  it('lets loads start again one second after the last ones when the wall clock steps back 1 h (d9)', async () => {
    const clock = fakeClock(1_750_000_000_000)
    const ns = newCache({ clock }).namespace('item', {
      key: 'item:{id}',
      ttl: '1s',
      source: { maxPerSecond: 2, overflow: 'error' },
      load: ({ id }) => `v${id}`,
    })
    await ns.get({ id: 1 })
    await ns.get({ id: 2 })
    clock.advance(-3_600_000)
    await expect(ns.get({ id: 3 })).rejects.toMatchObject({ code: 'ERR_STRATA_SOURCE_BUSY', reason: 'rate' })
    clock.advance(1_000)
    expect(await ns.get({ id: 3 })).toBe('v3')
    expect(await ns.get({ id: 4 })).toBe('v4')
    await expect(ns.get({ id: 5 })).rejects.toMatchObject({ code: 'ERR_STRATA_SOURCE_BUSY' })
  })
})
