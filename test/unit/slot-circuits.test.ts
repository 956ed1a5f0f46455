// Reads on a store of several slots (a Redis Cluster) have a circuit per slot: a dead master fails its own slots'
// reads, and the other masters' keys keep being read from Redis. Every other call keeps the store's one circuit.
// A store stand-in here (the failover on a real cluster: test/chaos/cluster-chaos.test.ts).
import { describe, expect, it } from 'vitest'
import { L2Guard } from '../../src/policies/l2-guard.js'
import type { L2Store } from '../../src/tiers/l2-store.js'

const BYTES = new TextEncoder().encode('v')

/** Keys `dead:…` live on a master that is gone (its calls fail at once); the others answer. */
function store(options: { slots: boolean }): L2Store {
  const answer = (key: string) =>
    key.startsWith('dead:') ? Promise.reject(new Error('The client is offline')) : Promise.resolve()
  return {
    name: 'stand-in',
    status: 'ready',
    ...(options.slots && {
      fenceShards: 16,
      coalesceGroupOf: (key: string) => (key.startsWith('dead:') ? 1 : 2),
    }),
    get: (key: string) => answer(key).then(() => BYTES),
    set: (key: string) => answer(key),
  } as unknown as L2Store
}

function guard(options: { slots: boolean }): L2Guard {
  return new L2Guard(store(options), 1_000, { failureThreshold: 3, breakMs: 60_000 })
}

const outcome = (call: Promise<unknown>) =>
  call.then(
    () => 'ok',
    (error: { code?: string }) => error.code,
  )

describe('read circuits per slot', () => {
  it("opens a dead slot's read circuit after its failures, while the other slots' reads go on", async () => {
    const l2 = guard({ slots: true })
    const dead = []
    for (let i = 0; i < 5; i++) dead.push(await outcome(l2.get(`dead:${i}`)))
    expect(dead).toEqual([
      ...Array<string>(3).fill('ERR_STRATA_L2_FAILED'),
      'ERR_STRATA_L2_CIRCUIT_OPEN',
      'ERR_STRATA_L2_CIRCUIT_OPEN',
    ])
    const live = await Promise.all(Array.from({ length: 10 }, (_, i) => outcome(l2.get(`live:${i}`))))
    expect(live).toEqual(Array<string>(10).fill('ok'))
    expect(l2.circuit).toBe('closed')
    expect(l2.stats()).toMatchObject({ slotsOpen: 1, refused: 2, failures: 3, succeeded: 10 })
  })

  it("keeps the store's circuit for every other call: writes to the dead slot open it, reads of live slots go on and do not close it", async () => {
    const l2 = guard({ slots: true })
    for (let i = 0; i < 3; i++) await outcome(l2.set(`dead:${i}`, BYTES, 1_000))
    expect(l2.circuit).toBe('open')
    expect(await outcome(l2.set('live:1', BYTES, 1_000))).toBe('ERR_STRATA_L2_CIRCUIT_OPEN')
    expect(await outcome(l2.get('live:1'))).toBe('ok')
    expect(l2.circuit).toBe('open')
  })

  it("lets a live read reset the store's count of failures in a row, as before slots had circuits", async () => {
    const l2 = guard({ slots: true })
    await outcome(l2.set('dead:1', BYTES, 1_000))
    await outcome(l2.set('dead:2', BYTES, 1_000))
    await outcome(l2.get('live:1'))
    await outcome(l2.set('dead:3', BYTES, 1_000))
    expect(l2.circuit).toBe('closed')
  })

  it('counts a slot as open only within its break, so the count falls back after a failover even if it is not read', async () => {
    const l2 = new L2Guard(store({ slots: true }), 1_000, { failureThreshold: 3, breakMs: 50 })
    for (let i = 0; i < 3; i++) await outcome(l2.get(`dead:${i}`))
    expect(l2.stats().slotsOpen).toBe(1)
    await new Promise((resolve) => setTimeout(resolve, 80))
    expect(l2.stats().slotsOpen).toBe(0)
  })

  it('closes every slot circuit when the store reconnects', async () => {
    const l2 = guard({ slots: true })
    for (let i = 0; i < 3; i++) await outcome(l2.get(`dead:${i}`))
    expect(l2.stats().slotsOpen).toBe(1)
    l2.connectionRestored()
    expect(l2.stats().slotsOpen).toBe(0)
  })

  it('has one circuit for everything on one node: failed reads refuse the reads of every key', async () => {
    const l2 = guard({ slots: false })
    for (let i = 0; i < 3; i++) await outcome(l2.get(`dead:${i}`))
    expect(l2.circuit).toBe('open')
    expect(await outcome(l2.get('live:1'))).toBe('ERR_STRATA_L2_CIRCUIT_OPEN')
    expect(l2.stats().slotsOpen).toBe(0)
  })
})
