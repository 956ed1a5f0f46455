// Regressions found in review of the core: each test pins a fixed defect.
import diagnosticsChannel from 'node:diagnostics_channel'
import { afterEach, describe, expect, it } from 'vitest'
import { channelNames, createCache, type Cache, type L2ErrorMessage, type L2Store } from 'stratacache'

const caches: Cache[] = []
afterEach(async () => {
  await Promise.all(caches.splice(0).map((c) => c.close()))
})

describe('review regressions', () => {
  it('getMany with an invalid item leaves no flight behind for the valid ones', async () => {
    const cache = createCache({ service: 'regress' })
    caches.push(cache)
    const ns = cache.namespace('item', { key: 'item:{id}', ttl: '1m', load: ({ id }) => `v${id}` })
    const invalid: string = '\uD800'
    await expect(ns.getMany([{ id: 'a' }, { id: invalid }])).rejects.toMatchObject({
      problem: 'lone-surrogate',
    })
    expect(await ns.get({ id: 'a' })).toBe('va')
  })

  it('a load that finishes after close() neither refills L1 nor writes anywhere', async () => {
    const cache = createCache({ service: 'regress' })
    let release!: (value: string) => void
    const ns = cache.namespace('item', {
      key: 'item:{id}',
      ttl: '1m',
      // A loader that ignores its abort signal.
      load: () => new Promise<string>((resolve) => (release = resolve)),
    })
    const pending = ns.get({ id: 1 })
    await new Promise((resolve) => setTimeout(resolve, 0))
    await cache.close()
    release('late')
    expect(await pending).toBe('late')
    expect(cache.stats().l1?.entries).toBe(0)
  })

  it('treats an L2 store that throws instead of rejecting as an L2 failure, reported at once', async () => {
    const throwing = {
      name: 'throwing',
      status: 'ready',
      get: () => {
        throw new Error('sync boom')
      },
      getMany: () => Promise.resolve([]),
      set: () => Promise.resolve(),
      setMany: () => Promise.resolve(),
      delete: () => Promise.resolve(0),
      scan: () => Promise.resolve({ cursor: '0', keys: [] }),
      addToSet: () => Promise.resolve(),
      getVersion: () => Promise.resolve(0),
      bumpVersion: () => Promise.resolve(1),
      renameIfExists: () => Promise.resolve(false),
      scanSet: () => Promise.resolve({ cursor: '0', members: [] }),
      tryLock: () => Promise.resolve(true),
      unlock: () => Promise.resolve(true),
      extendLock: () => Promise.resolve(true),
      publish: () => Promise.resolve(),
      subscribe: () => Promise.resolve(),
      connect: () => Promise.resolve(),
      close: () => Promise.resolve(),
      onEvent: () => {},
    } as unknown as L2Store
    const errors: L2ErrorMessage[] = []
    const listener = (m: unknown) => errors.push(m as L2ErrorMessage)
    diagnosticsChannel.subscribe(channelNames.l2Error, listener)
    try {
      const cache = createCache({ service: 'regress', l2: throwing, l1: false })
      caches.push(cache)
      const ns = cache.namespace('item', { key: 'item:{id}', ttl: '1m', load: () => 'from loader' })
      expect(await ns.get({ id: 1 })).toBe('from loader')
      await new Promise((resolve) => setTimeout(resolve, 150)) // past the 100 ms L2 timeout
      const codes = errors.filter((e) => e.operation === 'get').map((e) => (e.error as { code: string }).code)
      expect(codes).toEqual(['ERR_STRATA_L2_FAILED'])
    } finally {
      diagnosticsChannel.unsubscribe(channelNames.l2Error, listener)
    }
  })
})
