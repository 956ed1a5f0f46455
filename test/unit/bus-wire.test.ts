import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { decodeBusMessage, encodeBusMessage, type BusMessage } from '../../src/bus/wire.js'

describe('invalidation bus wire format', () => {
  it('is pinned byte for byte (a change here is a format version bump)', () => {
    expect(
      encodeBusMessage({
        origin: 'abc',
        sentAt: 1_700_000_000_000,
        invalidation: { kind: 'keys', namespace: 'product', keys: ['catalog:product:v1:item:1'] },
      }),
    ).toBe('{"v":1,"o":"abc","t":1700000000000,"k":"keys","n":"product","x":["catalog:product:v1:item:1"]}')
    expect(
      encodeBusMessage({
        origin: 'abc',
        sentAt: 5,
        invalidation: { kind: 'namespace', namespace: 'product' },
      }),
    ).toBe('{"v":1,"o":"abc","t":5,"k":"namespace","n":"product"}')
    expect(
      encodeBusMessage({
        origin: 'abc',
        sentAt: 5,
        invalidation: { kind: 'namespace', namespace: 'product', generation: 3 },
      }),
    ).toBe('{"v":1,"o":"abc","t":5,"k":"namespace","n":"product","g":3}')
  })

  it('round-trips every message', () => {
    const message = fc.record({
      origin: fc.string(),
      sentAt: fc.integer({ min: 0, max: 2 ** 45 }),
      invalidation: fc.oneof(
        fc.record({
          kind: fc.constant('keys' as const),
          namespace: fc.string(),
          keys: fc.array(fc.string()),
        }),
        fc.record({ kind: fc.constant('namespace' as const), namespace: fc.string() }),
        fc.record({
          kind: fc.constant('namespace' as const),
          namespace: fc.string(),
          generation: fc.nat(),
        }),
      ),
    })
    fc.assert(
      fc.property(message, (m: BusMessage) => {
        expect(decodeBusMessage(encodeBusMessage(m))).toEqual({ ok: true, message: m })
      }),
    )
  })

  it.each([
    ['garbage', 'not json{', /not JSON/],
    ['a number', '42', /not an object/],
    ['another version', '{"v":2,"o":"a","t":1,"k":"keys","n":"p","x":[]}', /format version 2/],
    ['no origin', '{"v":1,"t":1,"k":"keys","n":"p","x":[]}', /missing origin/],
    ['an unknown kind', '{"v":1,"o":"a","t":1,"k":"tags","n":"p"}', /unknown kind tags/],
    ['keys that are not strings', '{"v":1,"o":"a","t":1,"k":"keys","n":"p","x":[1]}', /unknown kind keys/],
    ['a negative generation', '{"v":1,"o":"a","t":1,"k":"namespace","n":"p","g":-1}', /generation/],
    ['a generation that is text', '{"v":1,"o":"a","t":1,"k":"namespace","n":"p","g":"2"}', /generation/],
  ])('refuses %s with a reason instead of throwing', (_, text, reason) => {
    const result = decodeBusMessage(text)
    expect(result.ok).toBe(false)
    if (!result.ok) expect(result.reason).toMatch(reason)
  })

  it('never throws on any string', () => {
    fc.assert(
      fc.property(fc.string(), (text) => {
        expect(typeof decodeBusMessage(text).ok).toBe('boolean')
      }),
    )
  })
})
