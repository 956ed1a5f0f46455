import { describe, expect, it } from 'vitest'
import { InvalidArgumentError, InvalidOptionError } from 'stratacache'
import { cacheFactory } from '../helpers/caches.js'
import { fakeClock } from '../helpers/fake-clock.js'

const newCache = cacheFactory('policy-switch')

describe('changing a namespace policy at run time', () => {
  it('new entries follow the new TTL; rollback restores the previous policy', async () => {
    const clock = fakeClock()
    let loads = 0
    const ns = newCache({ clock }).namespace('price', {
      key: 'price:{id}',
      ttl: '10s',
      load: ({ id }) => ({ id, n: ++loads }),
    })
    await ns.get({ id: 1 })
    const updated = ns.updatePolicy({ ttl: '1m', staleFor: '5m' })
    expect(updated).toMatchObject({ ttlMs: 60_000, staleForMs: 300_000 })
    expect(ns.options).toBe(updated)
    // The entry cached before the change keeps its 10 s.
    clock.advance(11_000)
    expect(await ns.get({ id: 1 })).toEqual({ id: 1, n: 2 })
    // The one cached after follows the minute.
    clock.advance(30_000)
    expect(await ns.get({ id: 1 })).toEqual({ id: 1, n: 2 })
    expect(ns.rollbackPolicy()).toBe(true)
    expect(ns.options).toMatchObject({ ttlMs: 10_000, staleForMs: 0 })
    expect(ns.rollbackPolicy()).toBe(false)
  })

  it('refuses a policy its consistency class forbids, and leaves the current one', () => {
    const ns = newCache().namespace('balance', { key: 'balance:{id}', ttl: '1m', consistency: 'strong' })
    const before = ns.options
    expect(() => ns.updatePolicy({ staleFor: '1m' })).toThrow(InvalidOptionError)
    expect(() => ns.updatePolicy({ staleFor: '1m' })).toThrow(/never serves stale/)
    expect(ns.options).toBe(before)
    expect(() => ns.updatePolicy({ ttl: '0s' })).toThrow(/`balance.ttl`/)
    expect(ns.rollbackPolicy()).toBe(false)
  })

  it('refuses to change what is part of the declaration', () => {
    const ns = newCache().namespace('user', { key: 'user:{id}', ttl: '1m' })
    expect(() => ns.updatePolicy({ key: 'other:{id}' } as never)).toThrow(InvalidArgumentError)
    expect(() => ns.updatePolicy({ consistency: 'strong' } as never)).toThrow(/`patch.consistency`/)
  })
})
