import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { decodeEnvelope, encodeEnvelope, ENVELOPE_HEADER_BYTES } from '../../src/codecs/envelope.js'
import { jsonSerializer, type Serializer } from 'stratacache'

const entry = {
  value: { a: 1 },
  createdAt: 1_700_000_000_000,
  freshUntil: 1_700_000_060_000,
  staleUntil: 1_700_000_060_000,
}

describe('L2 envelope', () => {
  it('has the documented byte layout (pinned: a change here is a format version bump)', () => {
    const bytes = encodeEnvelope(entry, 2, jsonSerializer)
    expect(bytes.toString('hex')).toBe(
      '5343' + // magic "SC"
        '01' + // format version
        '00' + // flags
        '01' + // serializer id: JSON
        '00000002' + // schema version
        '4278bcfe56800000' + // created at 1_700_000_000_000 as float64 BE
        '4278bcfe65260000' + // fresh until
        '4278bcfe65260000' + // stale until
        Buffer.from('{"a":1}').toString('hex'),
    )
    expect(ENVELOPE_HEADER_BYTES).toBe(33)
  })

  it('encodes a negative entry as flags only, keeping null apart from undefined', () => {
    const asNull = encodeEnvelope({ ...entry, value: null }, 1, jsonSerializer)
    const asUndefined = encodeEnvelope({ ...entry, value: undefined }, 1, jsonSerializer)
    expect(asNull.byteLength).toBe(33)
    expect(asNull[3]).toBe(0b01)
    expect(asUndefined[3]).toBe(0b11)
    expect(decodeEnvelope(asNull, 1, jsonSerializer)).toMatchObject({ ok: true, entry: { value: null } })
    const decoded = decodeEnvelope(asUndefined, 1, jsonSerializer)
    expect(decoded.ok && 'value' in decoded.entry && decoded.entry.value === undefined).toBe(true)
  })

  it('round-trips any JSON value with its timestamps', () => {
    fc.assert(
      fc.property(
        fc.jsonValue().filter((v) => v !== null),
        fc.integer({ min: 0, max: 2 ** 40 }),
        fc.integer({ min: 0, max: 2 ** 30 }),
        fc.integer({ min: 0, max: 2 ** 30 }),
        fc.integer({ min: 0, max: 0xffff_ffff }),
        (value, createdAt, fresh, stale, schemaVersion) => {
          const e = { value, createdAt, freshUntil: createdAt + fresh, staleUntil: createdAt + fresh + stale }
          const decoded = decodeEnvelope(
            encodeEnvelope(e, schemaVersion, jsonSerializer),
            schemaVersion,
            jsonSerializer,
          )
          // JSON turns -0 into 0; compare through JSON as a user would observe it.
          expect(decoded.ok).toBe(true)
          if (decoded.ok) {
            expect(JSON.stringify(decoded.entry.value)).toBe(JSON.stringify(value))
            expect(decoded.entry).toMatchObject({
              createdAt: e.createdAt,
              freshUntil: e.freshUntil,
              staleUntil: e.staleUntil,
            })
          }
        },
      ),
    )
  })

  it.each([
    ['empty', Buffer.alloc(0), /truncated/],
    ['short', Buffer.from('SC'), /truncated/],
    [
      'plain JSON from another library',
      Buffer.from(JSON.stringify({ value: 'x'.repeat(40) })),
      /not a stratacache envelope/,
    ],
    ['another format version', patch(encodeEnvelope(entry, 2, jsonSerializer), 2, 9), /format version 9/],
    ['unknown flags', patch(encodeEnvelope(entry, 2, jsonSerializer), 3, 0x80), /unknown flags/],
    ['another serializer', patch(encodeEnvelope(entry, 2, jsonSerializer), 4, 7), /serializer id 7/],
    ['another schema version', encodeEnvelope(entry, 3, jsonSerializer), /schema version 3, expected 2/],
    ['a cut payload', encodeEnvelope(entry, 2, jsonSerializer).subarray(0, 36), /does not deserialize/],
    ['NaN timestamps', patchDouble(encodeEnvelope(entry, 2, jsonSerializer), 9, NaN), /non-finite/],
    ['timestamps out of order', patchDouble(encodeEnvelope(entry, 2, jsonSerializer), 17, 0), /out of order/],
    [
      'negative entry with a payload',
      patch(encodeEnvelope(entry, 2, jsonSerializer), 3, 1),
      /negative entry with a payload/,
    ],
  ])('refuses %s with a reason instead of throwing', (_, bytes, reason) => {
    const result = decodeEnvelope(bytes, 2, jsonSerializer)
    expect(result.ok).toBe(false)
    if (!result.ok) expect(result.reason).toMatch(reason)
  })

  it('never throws on random, truncated or bit-flipped bytes', () => {
    const valid = encodeEnvelope(entry, 2, jsonSerializer)
    const mutated = fc.oneof(
      fc.uint8Array({ maxLength: 200 }).map((a) => Buffer.from(a)),
      fc.nat(valid.byteLength).map((n) => valid.subarray(0, n)),
      fc
        .tuple(fc.nat(valid.byteLength - 1), fc.integer({ min: 0, max: 255 }))
        .map(([i, v]) => patch(valid, i, v)),
      fc.uint8Array({ maxLength: 64 }).map((tail) => Buffer.concat([valid.subarray(0, 33), tail])),
    )
    fc.assert(
      fc.property(mutated, (bytes) => {
        const result = decodeEnvelope(bytes, 2, jsonSerializer)
        expect(typeof result.ok).toBe('boolean')
      }),
      { numRuns: 5_000 },
    )
  })

  it('accepts a plain Uint8Array as well as a Buffer', () => {
    const bytes = new Uint8Array(encodeEnvelope(entry, 2, jsonSerializer))
    expect(decodeEnvelope(bytes, 2, jsonSerializer)).toMatchObject({ ok: true, entry: { value: { a: 1 } } })
  })

  it('writes binary payloads of a custom serializer as they are', () => {
    const raw: Serializer = { id: 9, serialize: () => new Uint8Array([1, 2, 3]), deserialize: (b) => [...b] }
    const bytes = encodeEnvelope(entry, 1, raw)
    expect([...bytes.subarray(33)]).toEqual([1, 2, 3])
    expect(decodeEnvelope(bytes, 1, raw)).toMatchObject({ ok: true, entry: { value: [1, 2, 3] } })
  })
})

function patch(bytes: Buffer, offset: number, value: number): Buffer {
  const copy = Buffer.from(bytes)
  copy[offset] = value
  return copy
}

function patchDouble(bytes: Buffer, offset: number, value: number): Buffer {
  const copy = Buffer.from(bytes)
  copy.writeDoubleBE(value, offset)
  return copy
}
