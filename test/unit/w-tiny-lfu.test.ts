import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { WTinyLfu, type L1Node, type L1Owner } from '../../src/tiers/w-tiny-lfu.js'

/** An index as the namespaces and MemoryStore keep one: told about each node the policy evicts or refuses. */
class Index implements L1Owner<number> {
  readonly nodes = new Map<string, L1Node<number>>()
  readonly unindexed: L1Node<number>[] = []

  node(key: string, size = 0): L1Node<number> {
    const node: L1Node<number> = {
      key,
      value: 0,
      expiresAt: Infinity,
      size,
      owner: this,
      hash: 0,
      region: 0,
      newer: undefined,
      older: undefined,
    }
    this.nodes.set(key, node)
    return node
  }

  unindex(node: L1Node<number>): void {
    this.unindexed.push(node)
    expect(this.nodes.get(node.key)).toBe(node)
    this.nodes.delete(node.key)
  }
}

describe('WTinyLfu', () => {
  it('keeps its bounds, unindexes every evicted or refused node exactly once, and lists exactly what it holds', () => {
    const op = fc.oneof(
      {
        weight: 4,
        arbitrary: fc.record({ kind: fc.constant('add' as const), key: fc.nat(60), size: fc.nat(50) }),
      },
      { weight: 6, arbitrary: fc.record({ kind: fc.constant('touch' as const), pick: fc.nat() }) },
      {
        weight: 1,
        arbitrary: fc.record({ kind: fc.constant('resize' as const), pick: fc.nat(), size: fc.nat(50) }),
      },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant('remove' as const), pick: fc.nat() }) },
    )
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 12 }),
        fc.option(fc.integer({ min: 50, max: 300 }), { nil: undefined }),
        fc.array(op, { maxLength: 600 }),
        (maxEntries, maxBytes, ops) => {
          const policy = new WTinyLfu<number>(maxEntries, maxBytes ?? Infinity)
          const index = new Index()
          let removed = 0
          let added = 0
          const present = () => [...index.nodes.values()]
          for (const o of ops) {
            const held = present()
            const picked = 'pick' in o && held.length > 0 ? held[o.pick % held.length]! : undefined
            if (o.kind === 'add') {
              if (index.nodes.has(String(o.key))) continue
              const node = index.node(String(o.key), o.size)
              policy.add(node)
              added++
              // Admitted into the window first: a new node is never the one evicted.
              expect(index.nodes.get(node.key)).toBe(node)
            } else if (picked === undefined) {
              continue
            } else if (o.kind === 'touch') {
              policy.touch(picked)
            } else if (o.kind === 'resize') {
              policy.resize(picked, o.size)
              expect(index.nodes.get(picked.key)).toBe(picked)
            } else {
              policy.remove(picked)
              index.nodes.delete(picked.key)
              removed++
            }
            expect(policy.size).toBeLessThanOrEqual(maxEntries)
            if (maxBytes !== undefined) expect(policy.bytes).toBeLessThanOrEqual(maxBytes)
            const listed = [...policy.nodes()]
            expect(new Set(listed)).toEqual(new Set(present()))
            expect(listed).toHaveLength(policy.size)
            expect(policy.bytes).toBe(listed.reduce((sum, n) => sum + n.size, 0))
            const regions = policy.regions()
            expect(regions.window + regions.probation + regions.protected).toBe(policy.size)
            // The adaptive window moves, but never out of its bounds, and holds no more than its share.
            expect(regions.windowMaxEntries).toBeGreaterThanOrEqual(1)
            expect(regions.windowMaxEntries).toBeLessThanOrEqual(maxEntries)
            expect(regions.window).toBeLessThanOrEqual(Math.max(1, regions.windowMaxEntries))
            expect(new Set(index.unindexed).size).toBe(index.unindexed.length)
            expect(index.unindexed).toHaveLength(policy.evictions)
            for (const node of index.unindexed) expect(node.region).toBe(0)
          }
          // Every node added is held, was removed by its owner, or was evicted: none lost, none counted twice.
          expect(added).toBe(policy.size + removed + policy.evictions)
        },
      ),
    )
  })

  it('lets a frequent entry survive a long scan of keys seen once, where an LRU would lose it', () => {
    const policy = new WTinyLfu<number>(100, Infinity)
    const index = new Index()
    const hot = Array.from({ length: 20 }, (_, i) => index.node(`hot${i}`))
    for (const node of hot) policy.add(node)
    for (let round = 0; round < 3; round++) for (const node of hot) policy.touch(node)
    for (let i = 0; i < 900; i++) policy.add(index.node(`scan${i}`))
    for (const node of hot) expect(index.nodes.get(node.key)).toBe(node)
  })

  it('refuses a newcomer seen less often than the entry it would replace, and admits one seen more often', () => {
    const policy = new WTinyLfu<number>(2, Infinity) // window 1, main 1
    const index = new Index()
    const resident = index.node('resident')
    policy.add(resident)
    policy.touch(resident)
    policy.touch(resident)
    policy.add(index.node('once')) // resident moves to main
    policy.add(index.node('next')) // 'once' leaves the window: 1 request against 3
    expect(index.nodes.has('once')).toBe(false)
    expect(index.nodes.has('resident')).toBe(true)
    // 'next' is seen four more times while in the window: it beats the resident when it leaves.
    const next = index.nodes.get('next')!
    for (let i = 0; i < 4; i++) policy.touch(next)
    policy.add(index.node('last'))
    expect(index.nodes.has('next')).toBe(true)
    expect(index.nodes.has('resident')).toBe(false)
  })

  it('grows its window under a recency-friendly workload and keeps it small under a loop', () => {
    const recency = new WTinyLfu<number>(1_000, Infinity)
    const index = new Index()
    // Each new key is asked again a few times soon after: only recency helps.
    let next = 0
    const recent: string[] = []
    for (let i = 0; i < 200_000; i++) {
      if (i % 3 === 0 || recent.length === 0) {
        const key = `r${next++}`
        recency.add(index.node(key))
        recent.push(key)
        if (recent.length > 400) recent.shift()
      } else {
        const key = recent[(i * 7919) % recent.length]!
        const node = index.nodes.get(key)
        if (node !== undefined) recency.touch(node)
        else recency.add(index.node(key))
      }
    }
    expect(recency.regions().windowMaxEntries).toBeGreaterThan(100)

    const loop = new WTinyLfu<number>(1_000, Infinity)
    const loopIndex = new Index()
    for (let i = 0; i < 200_000; i++) {
      const key = String(i % 1_100)
      const node = loopIndex.nodes.get(key)
      if (node !== undefined) loop.touch(node)
      else loop.add(loopIndex.node(key))
    }
    expect(loop.regions().windowMaxEntries).toBeLessThan(100)
  })

  it('moves its window both ways as the workload changes: grows it for recency, shrinks it back for a loop', () => {
    const policy = new WTinyLfu<number>(1_000, Infinity)
    const index = new Index()
    let hits = 0
    const request = (key: string) => {
      const node = index.nodes.get(key)
      if (node === undefined) return policy.add(index.node(key))
      hits++
      policy.touch(node)
    }
    // A loop a little longer than the cache: the frequency filter keeps a fixed part of it; the window stays small.
    for (let i = 0; i < 100_000; i++) request(`loop${i % 1_200}`)
    expect(policy.regions().windowMaxEntries).toBeLessThan(100)
    // Recency only: each new key is read again within the next 400 new keys. Refused candidates come back, the
    // window grows (from 10 to a few hundred entries), and the hit ratio reaches LRU's (2 requests in 3).
    let newest = 0
    for (let i = 0; i < 100_000; i++) {
      if (i === 80_000) hits = 0
      if (i % 3 === 0) request(`new${++newest}`)
      else request(`new${Math.max(1, newest - ((i * 7919) % 400))}`)
    }
    expect(policy.regions().windowMaxEntries).toBeGreaterThan(200)
    expect(hits / 20_000).toBeGreaterThan(0.66)
    // The loop again: entries evicted from the main region come back, the window shrinks, the loop hits again.
    for (let i = 0; i < 200_000; i++) {
      if (i === 180_000) hits = 0
      request(`loop${i % 1_200}`)
    }
    expect(policy.regions().windowMaxEntries).toBeLessThan(100)
    expect(hits / 20_000).toBeGreaterThan(0.6)
  })
})
