// A loader that never settles, or bookkeeping that fails after a load, never pins a key: every read ends within a
// finite deadline, and a later read calls the loader again.
import { createCache, type Cache, type CacheOptions, type LoadContext } from 'stratacache'
import { afterEach, describe, expect, it } from 'vitest'
import { fakeClock } from '../helpers/fake-clock.js'
import { activeMs, outcome, sleep, timed, within } from '../chaos/support.js'

const caches: Cache[] = []
afterEach(async () => {
  await Promise.all(caches.splice(0).map((c) => c.close()))
})

function newCache(options: Partial<CacheOptions> = {}): Cache {
  const cache = createCache({ service: 'it-deadlines', random: () => 0, ...options })
  caches.push(cache)
  return cache
}

/** Never settles by itself: rejects only when its signal aborts (hard timeout, close()). */
function hang<T>({ signal }: LoadContext): Promise<T> {
  return new Promise<T>((_, reject) => {
    signal.addEventListener('abort', () => reject(signal.reason as Error), { once: true })
  })
}

describe('hard timeouts', () => {
  // Review finding A10 (demo d5): with no timeouts declared, a loader that never settles keeps every caller of its
  // key waiting for ever. The default is expected to be about 30 s; the bounded behaviour is tested below with an
  // explicit, short one.
  it('a namespace declared without timeouts has a finite hard timeout, at most 60 s', () => {
    const ns = newCache().namespace('item', { key: 'i:{id}', ttl: '1m', load: () => 'v' })
    expect(ns.options.hardTimeoutMs).toBeLessThanOrEqual(60_000)
  })

  it('a namespace declared with timeouts.soft and no timeouts.hard has a finite hard timeout, longer than soft', () => {
    const ns = newCache().namespace('item', {
      key: 'i:{id}',
      ttl: '1m',
      staleFor: '1h',
      timeouts: { soft: '200ms' },
      load: () => 'v',
    })
    expect(ns.options.hardTimeoutMs).toBeLessThanOrEqual(60_000)
    expect(ns.options.hardTimeoutMs).toBeGreaterThan(200)
  })

  it('a get whose loader never settles rejects with ERR_STRATA_LOADER_TIMEOUT at timeouts.hard, and the next get calls the loader again', async () => {
    let calls = 0
    const ns = newCache().namespace('item', {
      key: 'i:{id}',
      ttl: '1m',
      timeouts: { hard: '100ms' },
      load: (_: { id: number }, context) => {
        calls++
        return hang<string>(context)
      },
    })
    const first = await timed(() => within(ns.get({ id: 1 }), 1_500, 'get'))
    expect(outcome(first)).toMatchObject({ code: 'ERR_STRATA_LOADER_TIMEOUT' })
    // At timeouts.hard, not at some later deadline (`within` fails a get that waits for ever). A deadline, not a speed
    // claim: the hard timeout is a plain timer, which a stall of this process delays by as much, so the bound is on
    // the time less the time the loop was blocked; the slack absorbs a busy machine's shorter delays.
    expect(activeMs(first)).toBeLessThan(100 + 400)
    const second = await timed(() => within(ns.get({ id: 1 }), 1_500, 'get'))
    expect(outcome(second)).toMatchObject({ code: 'ERR_STRATA_LOADER_TIMEOUT' })
    expect(calls).toBe(2)
  })

  // Review finding A10 (demo d5): after the soft timeout answered stale, the hung load's flight stayed registered,
  // so every later read joined it and answered the stale value, long after its stale window ended.
  it('once the stale window ended, a get no longer answers the stale value of a load stuck past its soft timeout, and loads again', async () => {
    const clock = fakeClock(0)
    let calls = 0
    const ns = newCache({ clock }).namespace('price', {
      key: 'sku:{sku}',
      ttl: '1s',
      jitter: 0,
      staleFor: '2s',
      staleWhileRevalidate: false,
      timeouts: { soft: '50ms' },
      load: (_: { sku: string }, context) => {
        calls++
        return calls === 1 ? Promise.resolve('v1') : hang<string>(context) // from the 2nd call on: never settles
      },
    })
    expect(await ns.get({ sku: 'a' })).toBe('v1')
    clock.set(1_500) // stale: the soft timeout answers v1 while the load goes on
    expect(await ns.get({ sku: 'a' })).toBe('v1')
    expect(calls).toBe(2)

    clock.set(3_001) // the entry's stale window ended at 3 s
    const third = ns.get({ sku: 'a' })
    third.catch(() => {}) // it may wait for the stuck source until close()
    const answered = await Promise.race([
      third.then((value) => ({ value })),
      sleep(100).then(() => 'pending'),
    ])

    expect(answered, 'the get after the stale window').not.toEqual({ value: 'v1' })
    expect(calls, 'loader calls').toBe(3)
  })
})

describe('flight bookkeeping', () => {
  // Review finding A21 (demo d14): #fetch's finally did its bookkeeping (labels, histograms, access log) before it
  // unregistered the flight, so a throw there left a rejected flight that every later read of the key joined.
  // A labels function that throws is caught today (the row passes); one whose label JSON cannot represent is not.
  it.each([
    [
      'throws',
      (): { tenant: string } => {
        throw new Error('labels failed')
      },
    ],
    [
      'returns a label JSON cannot represent (a bigint)',
      ({ tenantId }: { tenantId: unknown }) => ({ tenant: tenantId as string }),
    ],
  ] as const)(
    'when the labels function %s, reads of the key resolve and each calls the loader again (l1: false)',
    async (_, labels) => {
      let loads = 0
      const ns = newCache({ l1: false }).namespace('item', {
        key: 't:{tenantId}:i:{id}',
        ttl: '1m',
        labels,
        load: ({ id }) => {
          loads++
          return `v${String(id)}`
        },
      })
      const results = []
      for (let i = 0; i < 3; i++) {
        results.push(outcome(await timed(() => within(ns.get({ tenantId: 7n, id: 1 }), 1_000, 'get'))))
      }
      expect.soft(results).toEqual([{ resolvedWith: 'v1' }, { resolvedWith: 'v1' }, { resolvedWith: 'v1' }])
      expect(loads, 'loader calls').toBe(3)
    },
  )
})

describe('the wait for room at the source', () => {
  it('counts against the hard timeout: a read waiting for a rate slot gives up at the hard timeout, not maxWait', async () => {
    let loads = 0
    const ns = newCache().namespace('rated', {
      key: 'r:{id}',
      ttl: '1m',
      // One load a second, a patient maxWait, a short hard timeout: the read's deadline is the hard timeout.
      source: { maxPerSecond: 1, maxWait: '10s' },
      timeouts: { hard: '200ms' },
      load: ({ id }: { id: number }) => {
        loads++
        return id
      },
    })
    expect(await ns.get({ id: 1 })).toBe(1) // takes this second's only slot
    // The next slot is a second away, past the hard timeout: the read is refused rather than waiting for it.
    await expect(ns.get({ id: 2 })).rejects.toMatchObject({ code: 'ERR_STRATA_SOURCE_BUSY' })
    expect(loads).toBe(1)
  })
})
