// The repair bookkeeping of write/repairs.ts on its own: which failures a pass covers, what a later success ends,
// where a pass stops, and how long close waits. The actions are the test's (each a deferred or a scripted outcome);
// test/chaos/write-repair.test.ts runs the same against a real Redis.
import { describe, expect, it } from 'vitest'
import { L2Error, L2TimeoutError } from '../../src/errors.js'
import type { NamespaceContext } from '../../src/namespace/context.js'
import { newCounters } from '../../src/namespace/recorder.js'
import { CLOSE_PASS_MS, MAX_PENDING_REPAIRS, Repairs, type RepairActions } from '../../src/write/repairs.js'
import { deferred } from '../helpers/deferred.js'

type Params = { id: number }

/** A namespace context with what Repairs uses: counters, a logger, and the close and background hooks. */
function harness(actions: RepairActions<Params>) {
  const counters = newCounters()
  const lines: string[] = []
  const beforeClose: (() => Promise<void>)[] = []
  const background: Promise<unknown>[] = []
  const rt = {
    closed: false,
    service: 'unit-repairs',
    logger: {
      info: (_: object, m: string) => lines.push(`info ${m}`),
      warn: (_: object, m: string) => lines.push(`warn ${m}`),
      error() {},
    },
    beforeClose: (work: () => Promise<void>) => beforeClose.push(work),
    background: (work: Promise<unknown>) => background.push(work),
  }
  const ctx = { name: 'n', counters, rt } as unknown as NamespaceContext<Params, string>
  const repairs = new Repairs<Params, string>(ctx, actions)
  return {
    repairs,
    counters,
    lines,
    close: async () => {
      rt.closed = true
      await Promise.all(beforeClose.map((work) => work()))
      await Promise.all(background)
    },
  }
}

const fail = (key: string, h: ReturnType<typeof harness>) => h.repairs.add(key, { id: Number(key.slice(1)) })

describe('repairs', () => {
  it('a failure during a whole-namespace pass stays pending and is repaired by the next pass', async () => {
    const inFlight = deferred<void>()
    let wholePasses = 0
    const repaired: number[] = []
    const h = harness({
      key: async ({ id }) => void repaired.push(id),
      all: async () => {
        wholePasses++
        if (wholePasses === 1) await inFlight.promise
      },
    })
    for (let i = 0; i <= MAX_PENDING_REPAIRS; i++) fail(`k${i}`, h)
    expect(h.counters.repairsPending).toBe(MAX_PENDING_REPAIRS + 1)
    await expect.poll(() => wholePasses).toBe(1)
    // While the invalidateAll runs: it may have run before this change reached the source. Past the bound, it is
    // counted for a second whole pass, not taken as covered by the first.
    fail('k-late', h)
    inFlight.resolve()
    await expect.poll(() => h.counters.repairsPending).toBe(0)
    expect(wholePasses).toBe(2)
    expect(repaired).toEqual([]) // the keyed ones went with the namespace
    expect(h.counters).toMatchObject({
      repairsQueued: MAX_PENDING_REPAIRS + 2,
      repairsDone: MAX_PENDING_REPAIRS + 2,
    })
    expect(h.lines.some((l) => l.startsWith('info') && l.includes('Redis answers again'))).toBe(true)
    await h.close()
  })

  it('a later successful change of the key ends its repair; a failure after it does not', async () => {
    const repaired: number[] = []
    const h = harness({ key: async ({ id }) => void repaired.push(id), all: async () => {} })
    fail('k1', h)
    fail('k2', h)
    h.repairs.settled('k1', h.repairs.peek('k1'))
    const before = h.repairs.peek('k2')
    fail('k2', h) // failed again after the change that then succeeded had started
    h.repairs.settled('k2', before)
    expect(h.counters.repairsPending).toBe(1)
    await expect.poll(() => h.counters.repairsPending).toBe(0)
    expect(repaired).toEqual([2])
    await h.close()
  })

  it('goes past a key Redis refused with an error reply, and stops at one it did not answer for', async () => {
    const tried: number[] = []
    const h = harness({
      key: async ({ id }) => {
        tried.push(id)
        if (id === 1) throw new L2Error('bumpVersion', { cause: new Error('WRONGTYPE') }, 'WRONGTYPE')
        if (id === 3 && tried.filter((t) => t === 3).length === 1)
          throw new L2TimeoutError('bumpVersion', 100)
      },
      all: async () => {},
    })
    for (const key of ['k1', 'k2', 'k3', 'k4']) fail(key, h)
    // First pass: 1 refused (stays), 2 repaired, 3 not answered: the pass stops before 4.
    await expect.poll(() => tried.length).toBeGreaterThanOrEqual(3)
    await expect.poll(() => h.repairs.has('k2')).toBe(false)
    expect(tried.slice(0, 3)).toEqual([1, 2, 3])
    // Next pass: 1 refused again, 3 and 4 repaired.
    await expect.poll(() => h.counters.repairsPending, { timeout: 3_000 }).toBe(1)
    expect(h.repairs.has('k1')).toBe(true)
    await h.close()
    expect(h.lines.some((l) => l.includes('closed with 1 change'))).toBe(true)
  })

  it(`close waits at most about ${CLOSE_PASS_MS} ms for the last pass, however many keys are left`, async () => {
    let calls = 0
    const h = harness({
      key: () => {
        calls++
        return new Promise((resolve) => setTimeout(resolve, 20))
      },
      all: async () => {},
    })
    for (let i = 0; i < 500; i++) fail(`k${i}`, h) // 10 s of repairs at 20 ms each
    await h.close()
    // Bounded by the pass's deadline, not by 500 x 20 ms: at most the keys that fit in it (and the one under way).
    expect(calls).toBeLessThan(500 * 0.2 + 5)
    expect(h.counters.repairsPending).toBeGreaterThan(0)
    expect(h.lines.some((l) => l.includes('closed with'))).toBe(true)
  })
})
