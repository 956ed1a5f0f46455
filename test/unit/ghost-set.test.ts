import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { hashKey } from '../../src/tiers/frequency-sketch.js'
import { GhostSet } from '../../src/tiers/ghost-set.js'

describe('GhostSet', () => {
  it('reports a hash only if it was among the last `span` additions and not taken since, and forgets it once taken', () => {
    const op = fc.oneof(
      fc.record({ kind: fc.constant('add' as const), key: fc.nat(80) }),
      fc.record({ kind: fc.constant('take' as const), key: fc.nat(80) }),
    )
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 40 }), fc.array(op, { maxLength: 500 }), (span, ops) => {
        const ghosts = new GhostSet(span)
        /** The model: every addition in order, and for each key the index of its addition still untaken. */
        let additions = 0
        const live = new Map<number, number>()
        for (const o of ops) {
          const hash = hashKey(`k${o.key}`)
          if (o.kind === 'add') {
            ghosts.add(hash)
            live.set(hash, additions++)
            // The latest addition is always remembered: nothing overwrote it yet.
            expect(ghosts.take(hash)).toBe(true)
            ghosts.add(hash)
            live.set(hash, additions++)
          } else {
            const added = live.get(hash)
            const recent = added !== undefined && additions - added <= span
            const taken = ghosts.take(hash)
            // Direct-mapped, so a recent hash may have been overwritten; an old or unknown one is never reported.
            if (!recent) expect(taken).toBe(false)
            if (taken) live.delete(hash)
            expect(ghosts.take(hash)).toBe(false)
          }
        }
      }),
    )
  })

  it('forgets a hash once `span` newer ones were added, whichever slots they took, and keeps the latest', () => {
    const ghosts = new GhostSet(4)
    const hashes = Array.from({ length: 12 }, (_, i) => hashKey(`ghost:${i}`))
    for (const hash of hashes) ghosts.add(hash)
    // The 8 oldest are past the span whatever their slots.
    for (const hash of hashes.slice(0, 8)) expect(ghosts.take(hash)).toBe(false)
    expect(ghosts.take(hashes[11]!)).toBe(true)
  })

  it('reports a hash only within the reach asked for, never past its span', () => {
    const ghosts = new GhostSet(10)
    ghosts.add(1)
    for (let i = 2; i <= 5; i++) ghosts.add(i * 1_000_003)
    // 4 hashes were added after 1: it is among the last 5 additions, not among the last 4.
    expect(ghosts.take(1, 4)).toBe(false)
    expect(ghosts.take(1, 5)).toBe(true)
    ghosts.add(1)
    for (let i = 0; i < 10; i++) ghosts.add(i * 7_000_003 + 11)
    expect(ghosts.take(1, 1_000)).toBe(false)
  })

  it('forgets everything on clear and keeps a table of a power-of-two size, capped', () => {
    const ghosts = new GhostSet(100)
    ghosts.add(7)
    ghosts.clear()
    expect(ghosts.take(7)).toBe(false)
    expect(ghosts.byteLength).toBe(256 * 8)
    expect(new GhostSet(2 ** 30).byteLength).toBe(2 ** 22 * 8)
  })
})
