// The local fence: whether a loaded value may still fill L1, and how much it remembers to answer that.
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { LocalFence } from '../../src/coherence/fence.js'

describe('the local fence', () => {
  it('refuses a value whose key, tag or namespace was invalidated after its load started, or is being written', () => {
    const fence = new LocalFence()
    const token = fence.open()
    expect(fence.mayFill(token, 'k', ['t'], false)).toBe(true)
    fence.beginWrite('k')
    expect(fence.mayFill(fence.open(), 'k', [], false)).toBe(false) // started during the write
    fence.endWrite('k')
    expect(fence.mayFill(token, 'k', [], false)).toBe(false)
    expect(fence.mayFill(fence.open(), 'k', [], false)).toBe(true)
    const beforeTag = fence.open()
    fence.touchTags(['t'])
    expect(fence.mayFill(beforeTag, 'other', ['t'], false)).toBe(false)
    expect(fence.mayFill(beforeTag, 'other', ['u'], false)).toBe(true)
    expect(fence.mayFill(beforeTag, 'other', [], true)).toBe(false) // a negative entry: any tag reaches it
    const beforeAll = fence.open()
    fence.touchAll()
    expect(fence.mayFill(beforeAll, 'x', [], false)).toBe(false)
  })

  it('stays bounded however many keys are written, while never forgetting what running work needs', () => {
    const live = new Set<number>()
    const fence = new LocalFence((current) => Math.min(current, ...live))
    const old = fence.open()
    live.add(old)
    fence.touchKey('watched')
    for (let i = 0; i < 100_000; i++) fence.touchKey(`key-${i}`)
    expect(fence.size).toBeLessThan(300_000)
    // The work that started before 'watched' was touched is still fenced: its epoch was kept.
    expect(fence.mayFill(old, 'watched', [], false)).toBe(false)
    live.clear()
    for (let i = 0; i < 100_000; i++) fence.touchKey(`again-${i}`)
    expect(fence.size).toBeLessThan(5_000)
  })

  it('never lets a value loaded before an invalidation of its key fill L1, in any order of events (property)', () => {
    type Event = { kind: 'write' | 'touch' | 'tag'; key: number }
    const event = fc.record({
      kind: fc.constantFrom('write', 'touch', 'tag'),
      key: fc.integer({ min: 0, max: 3 }),
    })
    fc.assert(
      fc.property(
        fc.array(event as fc.Arbitrary<Event>, { maxLength: 40 }),
        fc.integer({ min: 0, max: 3 }),
        (events, key) => {
          const fence = new LocalFence()
          const token = fence.open()
          let invalidated = false
          for (const e of events) {
            if (e.kind === 'write') {
              fence.beginWrite(`k${e.key}`)
              fence.endWrite(`k${e.key}`)
            } else if (e.kind === 'touch') fence.touchKey(`k${e.key}`)
            else fence.touchTags([`t${e.key}`])
            if (e.key === key) invalidated = true
          }
          expect(fence.mayFill(token, `k${key}`, [`t${key}`], false)).toBe(!invalidated)
        },
      ),
    )
  })
})
