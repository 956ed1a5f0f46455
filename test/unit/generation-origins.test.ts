// The restore check of a Redis Cluster's fence shards, as the generation tracker runs it after each generation read:
// which changes of server raise the generation, which are a reshard, and when the check is made again.
// test/chaos/cluster-restore.test.ts runs it end to end on a real cluster.
import { afterEach, describe, expect, it, vi } from 'vitest'
import { GenerationTracker } from '../../src/coherence/generation.js'
import type { L2Guard } from '../../src/policies/l2-guard.js'
import type { OriginRead, OriginRecord } from '../../src/tiers/l2-store.js'

afterEach(() => {
  vi.useRealTimers()
})

const KEYS = ['s:n:v1#origin{a.0}', 's:n:v1#origin{a.1}', 's:n:v1#origin{a.2}']
const RECORDED_AT = 1_000_000

/** A shard recorded on server `from` at RECORDED_AT, answered now by `now`, started `startedAtMs`. */
function read(from: string, now: string, startedAtMs = RECORDED_AT + 60_000): OriginRead {
  return { recorded: `${from}/${RECORDED_AT}`, from, recordedAtMs: RECORDED_AT, now, startedAtMs }
}

/** A tracker over a fake L2 whose origin answers are `answers` (one array per check), and what it was asked. */
function setUp(options: {
  answers: (OriginRead | null | undefined)[][]
  serving?: readonly string[] | undefined
  readFails?: boolean
}) {
  let generation = 0
  const raises: string[][] = []
  const records: OriginRecord[][] = []
  const restored: { generation: number; from: string; to: string }[] = []
  let checks = 0
  const work: Promise<unknown>[] = []
  const l2 = {
    readGeneration: async () => {
      if (options.readFails === true) throw new Error('CLUSTERDOWN The cluster is down')
      return { generation }
    },
    readOrigins: async () => options.answers[Math.min(checks++, options.answers.length - 1)]!,
    serverIds: async () => options.serving,
    raiseForRestores: async (_key: string, atLeast: number, changes: readonly string[]) => {
      raises.push([...changes])
      generation = Math.max(generation, atLeast) + 1
      return { generation, raised: true }
    },
    recordOrigins: async (batch: readonly OriginRecord[]) => void records.push([...batch]),
  }
  let current = 0
  const tracker = new GenerationTracker('s:n:v1#gen', {
    l2: l2 as unknown as L2Guard,
    closed: false,
    current: () => current,
    change: (next) => (current = next),
    failed: () => {},
    background: (promise) => void work.push(promise),
    originKeys: KEYS,
  })
  tracker.onRestored = (generation, { from, to }) => restored.push({ generation, from, to })
  /** Lets the background work run (the check after a read, its retries). */
  const settle = async () => {
    for (let i = 0; i < 10; i++) await Promise.all(work.splice(0))
  }
  return { tracker, raises, records, restored, settle, checks: () => checks, current: () => current }
}

describe('the restore check of the fence shards', () => {
  it('raises once for one restarted server, whichever shards saw it, then records every new id', async () => {
    const { tracker, raises, records, restored, settle, current } = setUp({
      answers: [[read('A', 'B'), read('A', 'B'), read('C', 'C')]],
    })
    await tracker.read()
    await settle()
    expect(raises).toEqual([['A>B']])
    expect(restored).toEqual([{ generation: 1, from: 'A', to: 'B' }])
    expect(current()).toBe(1)
    expect(records).toEqual([
      [
        { key: KEYS[0], expected: `A/${RECORDED_AT}`, now: 'B' },
        { key: KEYS[1], expected: `A/${RECORDED_AT}`, now: 'B' },
      ],
    ])
  })

  it('records a first id, and raises nothing for it', async () => {
    const { tracker, raises, records, settle } = setUp({
      answers: [[{ recorded: '', from: '', recordedAtMs: undefined, now: 'B', startedAtMs: 0 }, null, null]],
    })
    await tracker.read()
    await settle()
    expect(raises).toEqual([])
    expect(records).toEqual([[{ key: KEYS[0], expected: '', now: 'B' }]])
  })

  it('a slot moved to a server running before the record, from one that still serves slots: a reshard', async () => {
    const { tracker, raises, records, settle } = setUp({
      answers: [[read('A', 'B', RECORDED_AT - 60_000), null, null]],
      serving: ['A', 'B', 'C'],
    })
    await tracker.read()
    await settle()
    expect(raises).toEqual([])
    expect(records).toEqual([[{ key: KEYS[0], expected: `A/${RECORDED_AT}`, now: 'B' }]])
  })

  it('raises when the server the slot moved to started after the record (restarted from its snapshot since)', async () => {
    const { tracker, raises, settle } = setUp({
      answers: [[read('A', 'B', RECORDED_AT + 5_000), null, null]],
      serving: ['A', 'B', 'C'],
    })
    await tracker.read()
    await settle()
    expect(raises).toEqual([['A>B']])
  })

  it('raises when the recorded server no longer serves slots (its replica took over)', async () => {
    const { tracker, raises, settle } = setUp({
      answers: [[read('A', 'B', RECORDED_AT - 60_000), null, null]],
      serving: ['B', 'C'],
    })
    await tracker.read()
    await settle()
    expect(raises).toEqual([['A>B']])
  })

  it('neither raises nor records when the servers serving slots are unknown, and checks again', async () => {
    vi.useFakeTimers()
    const { tracker, raises, records, settle, checks } = setUp({
      answers: [[read('A', 'B', RECORDED_AT - 60_000), null, null]],
      serving: undefined,
    })
    await tracker.read()
    await settle()
    expect(raises).toEqual([])
    expect(records).toEqual([[]])
    expect(checks()).toBe(1)
    await vi.advanceTimersByTimeAsync(250)
    await settle()
    expect(checks()).toBe(2)
  })

  it('checks again, 250 ms then 500 ms later, while a shard’s node does not answer; not once every shard did', async () => {
    vi.useFakeTimers()
    const { tracker, settle, checks } = setUp({
      answers: [
        [undefined, null, null],
        [undefined, null, null],
        [null, null, null],
      ],
    })
    await tracker.read()
    await settle()
    expect(checks()).toBe(1)
    await vi.advanceTimersByTimeAsync(249)
    expect(checks()).toBe(1)
    await vi.advanceTimersByTimeAsync(1)
    await settle()
    expect(checks()).toBe(2)
    await vi.advanceTimersByTimeAsync(500)
    await settle()
    expect(checks()).toBe(3)
    await vi.advanceTimersByTimeAsync(60_000)
    await settle()
    expect(checks()).toBe(3)
  })

  it('makes no check again for a server that will not say its id (an ACL without INFO)', async () => {
    vi.useFakeTimers()
    const { tracker, settle, checks, records } = setUp({ answers: [[null, null, null]] })
    await tracker.read()
    await settle()
    await vi.advanceTimersByTimeAsync(60_000)
    await settle()
    expect(checks()).toBe(1)
    expect(records).toEqual([[]])
  })

  it('checks the shards even when the generation read fails (a cluster back before it is ready)', async () => {
    const { tracker, raises, settle } = setUp({ answers: [[read('A', 'B'), null, null]], readFails: true })
    expect(await tracker.read()).toMatchObject({ message: /CLUSTERDOWN/ })
    await settle()
    expect(raises).toEqual([['A>B']])
  })
})
