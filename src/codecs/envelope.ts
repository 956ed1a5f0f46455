// The L2 envelope: a fixed 33-byte header in front of the serialized value. test/unit/envelope.test.ts pins the bytes.
//
//   offset size field
//   0      2    magic "SC" (0x53 0x43)
//   2      1    format version (1)
//   3      1    flags: bit 0 negative entry (the loader found nothing), bit 1 the negative value is undefined, not null
//   4      1    serializer id (1 = JSON)
//   5      4    schema version, uint32 big-endian
//   9      8    created at, epoch ms, float64 big-endian
//   17     8    fresh until, epoch ms, float64 big-endian
//   25     8    stale until, epoch ms, float64 big-endian (the Redis TTL ends here)
//   33     ...  payload: the serialized value; empty for a negative entry
import type { Serializer } from './serializer.js'

export const ENVELOPE_MAGIC_0 = 0x53
export const ENVELOPE_MAGIC_1 = 0x43
export const ENVELOPE_FORMAT_VERSION = 1
export const ENVELOPE_HEADER_BYTES = 33

const FLAG_NEGATIVE = 0b01
const FLAG_UNDEFINED = 0b10
const KNOWN_FLAGS = FLAG_NEGATIVE | FLAG_UNDEFINED

/** A cached value with its timing, as held in L1 and carried in the L2 envelope. */
export interface Entry<V = unknown> {
  readonly value: V
  /** Epoch ms when the value was loaded or set. */
  readonly createdAt: number
  /** Epoch ms until which the value is fresh. */
  readonly freshUntil: number
  /** Epoch ms until which the value may still be served stale; equal to `freshUntil` when no stale window applies. */
  readonly staleUntil: number
}

/** Encodes an entry. Throws whatever the serializer throws for a value it cannot represent. */
export function encodeEnvelope(entry: Entry, schemaVersion: number, serializer: Serializer): Buffer {
  const { value } = entry
  const negative = value === null || value === undefined
  let payload: string | Uint8Array = ''
  if (!negative) payload = serializer.serialize(value)
  const payloadBytes = typeof payload === 'string' ? Buffer.byteLength(payload) : payload.byteLength
  const out = Buffer.allocUnsafe(ENVELOPE_HEADER_BYTES + payloadBytes)
  out[0] = ENVELOPE_MAGIC_0
  out[1] = ENVELOPE_MAGIC_1
  out[2] = ENVELOPE_FORMAT_VERSION
  out[3] = negative ? FLAG_NEGATIVE | (value === undefined ? FLAG_UNDEFINED : 0) : 0
  out[4] = serializer.id
  out.writeUInt32BE(schemaVersion, 5)
  out.writeDoubleBE(entry.createdAt, 9)
  out.writeDoubleBE(entry.freshUntil, 17)
  out.writeDoubleBE(entry.staleUntil, 25)
  if (typeof payload === 'string') out.write(payload, ENVELOPE_HEADER_BYTES, 'utf8')
  else out.set(payload, ENVELOPE_HEADER_BYTES)
  return out
}

/** The outcome of decoding: an entry, or the reason the bytes are not one this reader accepts. */
export type DecodeResult<V> = { ok: true; entry: Entry<V> } | { ok: false; reason: string; cause?: unknown }

/** Decodes bytes read from L2. Never throws: foreign, truncated or corrupt bytes give `{ ok: false, reason }`. */
export function decodeEnvelope<V>(
  bytes: Uint8Array,
  schemaVersion: number,
  serializer: Serializer,
): DecodeResult<V> {
  if (bytes.byteLength < ENVELOPE_HEADER_BYTES)
    return { ok: false, reason: `truncated: ${bytes.byteLength} bytes` }
  const buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  if (buf[0] !== ENVELOPE_MAGIC_0 || buf[1] !== ENVELOPE_MAGIC_1)
    return { ok: false, reason: 'not a stratacache envelope' }
  if (buf[2] !== ENVELOPE_FORMAT_VERSION) return { ok: false, reason: `unknown format version ${buf[2]}` }
  const flags = buf[3]!
  if ((flags & ~KNOWN_FLAGS) !== 0) return { ok: false, reason: `unknown flags 0x${flags.toString(16)}` }
  if (buf[4] !== serializer.id)
    return { ok: false, reason: `serializer id ${buf[4]}, expected ${serializer.id}` }
  const storedSchema = buf.readUInt32BE(5)
  if (storedSchema !== schemaVersion)
    return { ok: false, reason: `schema version ${storedSchema}, expected ${schemaVersion}` }
  const createdAt = buf.readDoubleBE(9)
  const freshUntil = buf.readDoubleBE(17)
  const staleUntil = buf.readDoubleBE(25)
  if (!(Number.isFinite(createdAt) && Number.isFinite(freshUntil) && Number.isFinite(staleUntil))) {
    return { ok: false, reason: 'non-finite timestamps' }
  }
  if (!(createdAt <= freshUntil && freshUntil <= staleUntil))
    return { ok: false, reason: 'timestamps out of order' }
  let value: unknown
  if ((flags & FLAG_NEGATIVE) !== 0) {
    if (buf.byteLength !== ENVELOPE_HEADER_BYTES)
      return { ok: false, reason: 'negative entry with a payload' }
    value = (flags & FLAG_UNDEFINED) !== 0 ? undefined : null
  } else {
    if ((flags & FLAG_UNDEFINED) !== 0) return { ok: false, reason: 'undefined flag without negative flag' }
    try {
      value = serializer.deserialize(buf.subarray(ENVELOPE_HEADER_BYTES))
    } catch (cause) {
      return { ok: false, reason: 'payload does not deserialize', cause }
    }
  }
  return { ok: true, entry: { value: value as V, createdAt, freshUntil, staleUntil } }
}
