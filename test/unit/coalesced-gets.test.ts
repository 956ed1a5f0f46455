// The gets of one tick as one command (policies/coalesced-gets.ts), against a sender that records what it is
// asked to send. The same rules against a real Redis are in test/integration/coalesced-gets.test.ts.
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { CoalescedGets, MAX_COALESCED_GETS, type GetSender } from '../../src/policies/coalesced-gets.js'

/** A sender answering from `values` (null for a key it lacks), recording each command; `fail` rejects them all. */
function recordingSender(values: ReadonlyMap<string, string>, fail?: Error) {
  const sent: { kind: 'one' | 'many'; keys: string[] }[] = []
  const bytes = (key: string) => (values.has(key) ? Buffer.from(values.get(key)!) : null)
  const sender: GetSender = {
    one(key, reply) {
      sent.push({ kind: 'one', keys: [key] })
      queueMicrotask(() => (fail === undefined ? reply.resolve(bytes(key)) : reply.reject(fail)))
    },
    many(keys, batch) {
      sent.push({ kind: 'many', keys: [...keys] })
      queueMicrotask(() => (fail === undefined ? batch.resolveAll(keys.map(bytes)) : batch.rejectAll(fail)))
    },
  }
  return { sender, sent }
}

const text = (bytes: Uint8Array | null) => (bytes === null ? null : Buffer.from(bytes).toString())

describe('CoalescedGets', () => {
  it('sends the gets of one tick as one getMany, each get answered with its own key', async () => {
    const { sender, sent } = recordingSender(
      new Map([
        ['a', '1'],
        ['b', '2'],
        ['c', '3'],
      ]),
    )
    const gets = new CoalescedGets(sender)
    const answers = await Promise.all(['a', 'b', 'missing', 'c'].map((key) => gets.get(key)))
    expect(answers.map(text)).toEqual(['1', '2', null, '3'])
    expect(sent).toEqual([{ kind: 'many', keys: ['a', 'b', 'missing', 'c'] }])
  })

  it('sends a lone get as a get, and nothing before the tick ends', async () => {
    const { sender, sent } = recordingSender(new Map([['a', '1']]))
    const gets = new CoalescedGets(sender)
    const answer = gets.get('a')
    expect(sent).toEqual([])
    await Promise.resolve()
    // Still the same tick's microtasks: a get issued now would join the batch.
    expect(sent).toEqual([])
    expect(text(await answer)).toBe('1')
    expect(sent).toEqual([{ kind: 'one', keys: ['a'] }])
  })

  it('sends gets issued in the microtasks of the same tick together', async () => {
    const { sender, sent } = recordingSender(
      new Map([
        ['a', '1'],
        ['b', '2'],
      ]),
    )
    const gets = new CoalescedGets(sender)
    const first = gets.get('a')
    const second = Promise.resolve().then(() => gets.get('b'))
    expect([text(await first), text(await second)]).toEqual(['1', '2'])
    expect(sent).toEqual([{ kind: 'many', keys: ['a', 'b'] }])
  })

  it('sends gets of different ticks apart', async () => {
    const { sender, sent } = recordingSender(
      new Map([
        ['a', '1'],
        ['b', '2'],
      ]),
    )
    const gets = new CoalescedGets(sender)
    expect(text(await gets.get('a'))).toBe('1')
    expect(text(await gets.get('b'))).toBe('2')
    expect(sent).toEqual([
      { kind: 'one', keys: ['a'] },
      { kind: 'one', keys: ['b'] },
    ])
  })

  it(`splits a burst into commands of at most ${MAX_COALESCED_GETS} keys, the first sent when it fills`, async () => {
    const keys = Array.from({ length: 2 * MAX_COALESCED_GETS + 1 }, (_, i) => `k${i}`)
    const { sender, sent } = recordingSender(new Map(keys.map((key) => [key, key.toUpperCase()])))
    const gets = new CoalescedGets(sender)
    const answers = keys.slice(0, MAX_COALESCED_GETS).map((key) => gets.get(key))
    expect(sent.map((s) => s.keys.length)).toEqual([MAX_COALESCED_GETS])
    answers.push(...keys.slice(MAX_COALESCED_GETS).map((key) => gets.get(key)))
    expect((await Promise.all(answers)).map(text)).toEqual(keys.map((key) => key.toUpperCase()))
    expect(sent.map((s) => [s.kind, s.keys.length])).toEqual([
      ['many', MAX_COALESCED_GETS],
      ['many', MAX_COALESCED_GETS],
      ['one', 1],
    ])
  })

  it('rejects every get of a command that fails, with its error', async () => {
    const failure = new Error('L2 get timed out')
    const { sender } = recordingSender(new Map(), failure)
    const gets = new CoalescedGets(sender)
    const results = await Promise.allSettled(['a', 'b', 'c'].map((key) => gets.get(key)))
    expect(results).toEqual(['a', 'b', 'c'].map(() => ({ status: 'rejected', reason: failure })))
  })

  it('read() answers through its reply, in the same command as the gets of its tick', async () => {
    const { sender, sent } = recordingSender(
      new Map([
        ['a', '1'],
        ['b', '2'],
      ]),
    )
    const gets = new CoalescedGets(sender)
    const answered = new Promise<string | null>((resolve, reject) =>
      gets.read('a', { resolve: (bytes) => resolve(text(bytes)), reject }),
    )
    expect(text(await gets.get('b'))).toBe('2')
    expect(await answered).toBe('1')
    expect(sent).toEqual([{ kind: 'many', keys: ['a', 'b'] }])
  })

  it('answers a key asked twice in one tick at both places', async () => {
    const { sender, sent } = recordingSender(new Map([['a', '1']]))
    const gets = new CoalescedGets(sender)
    expect((await Promise.all([gets.get('a'), gets.get('a')])).map(text)).toEqual(['1', '1'])
    expect(sent).toEqual([{ kind: 'many', keys: ['a', 'a'] }])
  })

  it('reads a short reply as misses for the keys it leaves out, never as another key’s value', async () => {
    const gets = new CoalescedGets({
      one: () => expect.unreachable(),
      many: (_keys, batch) => batch.resolveAll([Buffer.from('1')]),
    })
    expect((await Promise.all([gets.get('a'), gets.get('b')])).map(text)).toEqual(['1', null])
  })

  it('with groups (cluster slots), sends one command per group, so a failing group fails only its own gets', async () => {
    const sent: string[][] = []
    const gets = new CoalescedGets(
      {
        one(key, reply) {
          sent.push([key])
          if (key.startsWith('dead')) reply.reject(new Error('node down'))
          else reply.resolve(Buffer.from(key))
        },
        many(keys, batch) {
          sent.push([...keys])
          if (keys[0]!.startsWith('dead')) batch.rejectAll(new Error('node down'))
          else batch.resolveAll(keys.map((key) => Buffer.from(key)))
        },
      },
      MAX_COALESCED_GETS,
      (key) => (key.startsWith('dead') ? 1 : 2),
    )
    const results = await Promise.allSettled(['a', 'dead1', 'b', 'dead2', 'c'].map((key) => gets.get(key)))
    expect(results.map((r) => (r.status === 'fulfilled' ? text(r.value) : 'failed'))).toEqual([
      'a',
      'failed',
      'b',
      'failed',
      'c',
    ])
    expect(sent).toEqual([
      ['a', 'b', 'c'],
      ['dead1', 'dead2'],
    ])
  })

  it('property: whatever the keys and ticks, each get gets its own key, in ceil(n / max) commands per tick', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.array(fc.constantFrom('a', 'b', 'c', 'd', 'e', 'x'), { maxLength: 150 }), {
          minLength: 1,
          maxLength: 4,
        }),
        fc.integer({ min: 1, max: 70 }),
        async (ticks, max) => {
          const values = new Map([
            ['a', '1'],
            ['b', '2'],
            ['c', '3'],
            ['d', '4'],
            ['e', '5'],
          ])
          const { sender, sent } = recordingSender(values)
          const gets = new CoalescedGets(sender, max)
          let commands = 0
          for (const keys of ticks) {
            const answers = await Promise.all(keys.map((key) => gets.get(key)))
            expect(answers.map(text)).toEqual(keys.map((key) => values.get(key) ?? null))
            commands += Math.ceil(keys.length / max)
          }
          expect(sent).toHaveLength(commands)
          expect(
            sent.every((s) => s.keys.length <= max && (s.kind === 'one') === (s.keys.length === 1)),
          ).toBe(true)
        },
      ),
      { numRuns: 200 },
    )
  })
})
