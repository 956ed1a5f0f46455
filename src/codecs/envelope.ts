// The L2 envelope: a fixed 33-byte header in front of the serialized value. test/unit/envelope.test.ts pins the bytes.
//
//   offset size field
//   0      2    magic "SC" (0x53 0x43)
//   2      1    format version: 1 plain payload, 2 transformed payload (compressed and/or encrypted)
//   3      1    flags: bit 0 negative entry (the loader found nothing), bit 1 the negative value is undefined, not
//               null; version 2 only: bit 2 compressed, bit 3 encrypted (at least one of the two is set)
//   4      1    serializer id (1 = JSON)
//   5      4    schema version, uint32 big-endian
//   9      8    created at, epoch ms, float64 big-endian
//   17     8    fresh until, epoch ms, float64 big-endian
//   25     8    stale until, epoch ms, float64 big-endian (the Redis TTL ends here)
//   33     ...  version 1: the serialized value; empty for a negative entry
//
// Version 2, after the same 33 bytes:
//
//   encrypted:  1 byte key id length n (1-64), n bytes key id (ASCII), 12 bytes IV,
//               then AES-256-GCM(inner) and its 16-byte tag, with associated data
//               uint32 BE byte length of the full cache key ‖ the key (UTF-8) ‖ bytes 0 to the end of the IV
//   otherwise:  inner as it is
//
//   inner, compressed:      1 byte algorithm (1 deflate, 2 brotli, 3 zstd), uint32 BE uncompressed length, data
//   inner, not compressed:  the serialized value (empty for a negative entry)
//
// The associated data binds a ciphertext to its key and its header: copied to another key or tenant, or with a
// changed timestamp or flag, it fails to open. A value below the compression threshold and not encrypted is
// written as version 1, byte for byte as before version 2 existed, so older readers keep reading it.
import { COMPRESSION_IDS, compress, decompress, type CompressionAlgorithm } from './compression.js'
import { IV_BYTES, KEY_ID_PATTERN, newIv, open, seal, TAG_BYTES, type ResolvedKeyRing } from './encryption.js'
import { jsonSerializer, parseJsonFrom, type Serializer } from './serializer.js'
import { ValueTooLargeError } from '../errors.js'

export const ENVELOPE_MAGIC_0 = 0x53
export const ENVELOPE_MAGIC_1 = 0x43
/** The version written for a plain payload; the only version before compression and encryption existed. */
export const ENVELOPE_FORMAT_VERSION = 1
/** The version written when the payload is compressed or encrypted. */
export const ENVELOPE_FORMAT_VERSION_TRANSFORMED = 2
export const ENVELOPE_HEADER_BYTES = 33

const FLAG_NEGATIVE = 0b0001
const FLAG_UNDEFINED = 0b0010
const FLAG_COMPRESSED = 0b0100
const FLAG_ENCRYPTED = 0b1000
const KNOWN_FLAGS_V1 = FLAG_NEGATIVE | FLAG_UNDEFINED
const KNOWN_FLAGS_V2 = KNOWN_FLAGS_V1 | FLAG_COMPRESSED | FLAG_ENCRYPTED
/** Algorithm id and uncompressed length in front of compressed data. */
const COMPRESSION_HEADER_BYTES = 5
/** The most a version 2 envelope adds to a payload: key id, IV, tag, compression header. Bounds a read before decoding. */
const MAX_OVERHEAD_BYTES = 1 + 64 + IV_BYTES + TAG_BYTES + COMPRESSION_HEADER_BYTES
/** The payload limit when the caller sets none. */
export const DEFAULT_MAX_VALUE_BYTES = 4 * 1024 * 1024

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

/** How a namespace transforms its payloads. Without it, envelopes are version 1 with no size limit. */
export interface EnvelopeTransforms {
  /** The full cache key: bound into every ciphertext as associated data. */
  readonly key: string
  /** Compress payloads of at least `threshold` bytes (serialized) with `algorithm` at `level`. */
  readonly compression?:
    | { readonly algorithm: CompressionAlgorithm; readonly level: number; readonly threshold: number }
    | undefined
  /** Encrypt with the active key (when `encrypt`), and decrypt with any key of the ring. */
  readonly keyRing?: ResolvedKeyRing | undefined
  /** Encrypt what is written, and refuse to read anything that is not encrypted (a planted plaintext value). */
  readonly encrypt?: boolean
  /** Largest serialized value written or read (after decompression), in bytes. @default 4 MiB */
  readonly maxValueBytes?: number
}

/**
 * Encodes an entry. Throws whatever the serializer throws for a value it cannot represent, and ValueTooLargeError
 * for a serialized value over `transforms.maxValueBytes`.
 */
export function encodeEnvelope(
  entry: Entry,
  schemaVersion: number,
  serializer: Serializer,
  transforms?: EnvelopeTransforms,
): Buffer {
  return encodeEnvelopeSized(entry, schemaVersion, serializer, transforms).bytes
}

/**
 * `encodeEnvelope`, also returning the size of the entry before compression and encryption (header plus serialized
 * value): what the decoded value costs in memory, for the L1 byte budget.
 */
export function encodeEnvelopeSized(
  entry: Entry,
  schemaVersion: number,
  serializer: Serializer,
  transforms?: EnvelopeTransforms,
): { bytes: Buffer; size: number } {
  const { value } = entry
  const negative = value === null || value === undefined
  let payload: string | Uint8Array = ''
  if (!negative) payload = serializer.serialize(value)
  const payloadBytes = typeof payload === 'string' ? Buffer.byteLength(payload) : payload.byteLength
  let flags = negative ? FLAG_NEGATIVE | (value === undefined ? FLAG_UNDEFINED : 0) : 0
  const size = ENVELOPE_HEADER_BYTES + payloadBytes
  const plain = () => ({
    bytes: plainEnvelope(entry, schemaVersion, serializer, flags, payload, payloadBytes),
    size,
  })
  if (transforms === undefined) return plain()
  const maxValueBytes = transforms.maxValueBytes ?? DEFAULT_MAX_VALUE_BYTES
  if (payloadBytes > maxValueBytes) throw new ValueTooLargeError(transforms.key, payloadBytes, maxValueBytes)
  const compression = transforms.compression
  const keyRing = transforms.encrypt === true ? transforms.keyRing : undefined
  let inner: Buffer | undefined
  if (compression !== undefined && !negative && payloadBytes >= compression.threshold) {
    const raw = toBuffer(payload)
    const packed = compress(compression.algorithm, compression.level, raw)
    // Incompressible data (already compressed, random) is stored as it is rather than grown.
    if (packed.byteLength + COMPRESSION_HEADER_BYTES < payloadBytes) {
      inner = Buffer.allocUnsafe(COMPRESSION_HEADER_BYTES + packed.byteLength)
      inner[0] = COMPRESSION_IDS[compression.algorithm]
      inner.writeUInt32BE(payloadBytes, 1)
      inner.set(packed, COMPRESSION_HEADER_BYTES)
      flags |= FLAG_COMPRESSED
    }
  }
  if (keyRing === undefined) {
    if (inner === undefined) return plain()
    const out = Buffer.allocUnsafe(ENVELOPE_HEADER_BYTES + inner.byteLength)
    writeHeader(out, ENVELOPE_FORMAT_VERSION_TRANSFORMED, flags, entry, schemaVersion, serializer)
    out.set(inner, ENVELOPE_HEADER_BYTES)
    return { bytes: out, size }
  }
  flags |= FLAG_ENCRYPTED
  const id = keyRing.activeIdBytes
  const header = Buffer.allocUnsafe(ENVELOPE_HEADER_BYTES + 1 + id.byteLength + IV_BYTES)
  writeHeader(header, ENVELOPE_FORMAT_VERSION_TRANSFORMED, flags, entry, schemaVersion, serializer)
  header[ENVELOPE_HEADER_BYTES] = id.byteLength
  header.set(id, ENVELOPE_HEADER_BYTES + 1)
  const iv = newIv()
  header.set(iv, ENVELOPE_HEADER_BYTES + 1 + id.byteLength)
  const sealed = seal(
    keyRing.activeKey,
    iv,
    associatedData(transforms.key, header),
    inner ?? toBuffer(payload),
  )
  return { bytes: Buffer.concat([header, sealed], header.byteLength + sealed.byteLength), size }
}

/** Why bytes were refused for security: they may be an attack, not an accident. */
export type SecurityProblem =
  /** Encrypted, but the tag did not verify: changed bytes, or a ciphertext copied from another key. */
  | 'tampered'
  /** Encrypted with a key id this key ring does not hold (retired, or not ours). */
  | 'unknown-key'
  /** Not encrypted, in a namespace that encrypts: a plaintext value planted where only ciphertext belongs. */
  | 'unencrypted'

/** The outcome of decoding: an entry, or the reason the bytes are not one this reader accepts. */
export type DecodeResult<V> =
  | { ok: true; entry: Entry<V> }
  | { ok: false; reason: string; cause?: unknown; security?: SecurityProblem; keyId?: string }

/** Decodes bytes read from L2. Never throws: foreign, truncated, corrupt or tampered bytes give `{ ok: false, reason }`. */
export function decodeEnvelope<V>(
  bytes: Uint8Array,
  schemaVersion: number,
  serializer: Serializer,
  transforms?: EnvelopeTransforms,
): DecodeResult<V> {
  if (bytes.byteLength < ENVELOPE_HEADER_BYTES)
    return { ok: false, reason: `truncated: ${bytes.byteLength} bytes` }
  const buf = toBuffer(bytes)
  if (buf[0] !== ENVELOPE_MAGIC_0 || buf[1] !== ENVELOPE_MAGIC_1)
    return { ok: false, reason: 'not a stratacache envelope' }
  const version = buf[2]
  if (version !== ENVELOPE_FORMAT_VERSION && version !== ENVELOPE_FORMAT_VERSION_TRANSFORMED)
    return { ok: false, reason: `unknown format version ${version}` }
  const flags = buf[3]!
  const known = version === ENVELOPE_FORMAT_VERSION ? KNOWN_FLAGS_V1 : KNOWN_FLAGS_V2
  if ((flags & ~known) !== 0) return { ok: false, reason: `unknown flags 0x${flags.toString(16)}` }
  const compressed = (flags & FLAG_COMPRESSED) !== 0
  const encrypted = (flags & FLAG_ENCRYPTED) !== 0
  if (version === ENVELOPE_FORMAT_VERSION_TRANSFORMED && !compressed && !encrypted)
    return { ok: false, reason: 'format version 2 without a transform flag' }
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
  const negative = (flags & FLAG_NEGATIVE) !== 0
  if (!negative && (flags & FLAG_UNDEFINED) !== 0)
    return { ok: false, reason: 'undefined flag without negative flag' }
  if (negative && compressed) return { ok: false, reason: 'negative entry marked compressed' }
  const maxValueBytes = transforms?.maxValueBytes ?? DEFAULT_MAX_VALUE_BYTES
  if (transforms !== undefined && buf.byteLength > ENVELOPE_HEADER_BYTES + MAX_OVERHEAD_BYTES + maxValueBytes)
    return { ok: false, reason: `oversized: ${buf.byteLength} bytes, over maxValueBytes ${maxValueBytes}` }
  // A namespace that encrypts never wrote plaintext: a plaintext entry under its key was put there by someone else.
  if (!encrypted && transforms?.encrypt === true) {
    return { ok: false, reason: 'not encrypted, in a namespace that encrypts', security: 'unencrypted' }
  }

  // The payload: undefined while it is the plain rest of `buf`, read in place (no view made on the hit path).
  let inner: Buffer | undefined
  if (encrypted) {
    const opened = openPayload(buf, transforms)
    if (!opened.ok) return opened
    inner = opened.inner
  }
  if (negative) {
    const length = inner === undefined ? buf.byteLength - ENVELOPE_HEADER_BYTES : inner.byteLength
    if (length !== 0) return { ok: false, reason: 'negative entry with a payload' }
    return {
      ok: true,
      entry: {
        value: ((flags & FLAG_UNDEFINED) !== 0 ? undefined : null) as V,
        createdAt,
        freshUntil,
        staleUntil,
      },
    }
  }
  if (compressed) {
    inner ??= buf.subarray(ENVELOPE_HEADER_BYTES)
    if (inner.byteLength < COMPRESSION_HEADER_BYTES)
      return { ok: false, reason: 'truncated compression header' }
    const length = inner.readUInt32BE(1)
    if (length > maxValueBytes)
      return {
        ok: false,
        reason: `oversized: decompresses to ${length} bytes, over maxValueBytes ${maxValueBytes}`,
      }
    try {
      // Never more than the stated length: a bomb that claims little and expands to much stops there.
      inner = decompress(inner[0]!, inner.subarray(COMPRESSION_HEADER_BYTES), length)
    } catch (cause) {
      return { ok: false, reason: 'payload does not decompress', cause }
    }
    if (inner.byteLength !== length)
      return { ok: false, reason: `decompressed to ${inner.byteLength} bytes, header says ${length}` }
  }
  let value: unknown
  try {
    // The built-in JSON reads a plain payload in place; any other serializer gets a view of its bytes.
    if (inner !== undefined) value = serializer.deserialize(inner)
    else if (serializer === jsonSerializer) value = parseJsonFrom(buf, ENVELOPE_HEADER_BYTES)
    else value = serializer.deserialize(buf.subarray(ENVELOPE_HEADER_BYTES))
  } catch (cause) {
    return { ok: false, reason: 'payload does not deserialize', cause }
  }
  return { ok: true, entry: { value: value as V, createdAt, freshUntil, staleUntil } }
}

/** Decrypts the encrypted section of a version 2 envelope; any failure to open is reported, never thrown. */
function openPayload(
  buf: Buffer,
  transforms: EnvelopeTransforms | undefined,
): { ok: true; inner: Buffer } | { ok: false; reason: string; security?: SecurityProblem; keyId?: string } {
  const idLength = buf[ENVELOPE_HEADER_BYTES]
  const ivAt = ENVELOPE_HEADER_BYTES + 1 + (idLength ?? 0)
  if (
    idLength === undefined ||
    idLength === 0 ||
    idLength > 64 ||
    buf.byteLength < ivAt + IV_BYTES + TAG_BYTES
  ) {
    return { ok: false, reason: 'truncated or malformed encryption header', security: 'tampered' }
  }
  const keyId = buf.toString('latin1', ENVELOPE_HEADER_BYTES + 1, ivAt)
  if (!KEY_ID_PATTERN.test(keyId)) {
    return { ok: false, reason: 'malformed key id', security: 'tampered' }
  }
  const keyRing = transforms?.keyRing
  if (keyRing === undefined || transforms === undefined)
    return {
      ok: false,
      reason: `encrypted with key "${keyId}", and this cache has no \`encryption\` key ring`,
    }
  const key = keyRing.key(keyId)
  if (key === undefined) {
    return {
      ok: false,
      reason: `encrypted with key "${keyId}", not in the key ring`,
      security: 'unknown-key',
      keyId,
    }
  }
  const headerEnd = ivAt + IV_BYTES
  const inner = open(
    key,
    buf.subarray(ivAt, headerEnd),
    associatedData(transforms.key, buf.subarray(0, headerEnd)),
    buf.subarray(headerEnd),
  )
  if (inner === undefined) {
    return {
      ok: false,
      reason: `does not decrypt with key "${keyId}" for this cache key (tampered, or copied from another key)`,
      security: 'tampered',
      keyId,
    }
  }
  return { ok: true, inner }
}

/** uint32 BE length of the cache key ‖ the cache key ‖ the envelope header through the IV. */
function associatedData(key: string, header: Buffer): Buffer {
  const keyBytes = Buffer.byteLength(key)
  const aad = Buffer.allocUnsafe(4 + keyBytes + header.byteLength)
  aad.writeUInt32BE(keyBytes, 0)
  aad.write(key, 4, 'utf8')
  aad.set(header, 4 + keyBytes)
  return aad
}

function plainEnvelope(
  entry: Entry,
  schemaVersion: number,
  serializer: Serializer,
  flags: number,
  payload: string | Uint8Array,
  payloadBytes: number,
): Buffer {
  const out = Buffer.allocUnsafe(ENVELOPE_HEADER_BYTES + payloadBytes)
  writeHeader(out, ENVELOPE_FORMAT_VERSION, flags, entry, schemaVersion, serializer)
  if (typeof payload === 'string') out.write(payload, ENVELOPE_HEADER_BYTES, 'utf8')
  else out.set(payload, ENVELOPE_HEADER_BYTES)
  return out
}

function writeHeader(
  out: Buffer,
  version: number,
  flags: number,
  entry: Entry,
  schemaVersion: number,
  serializer: Serializer,
): void {
  out[0] = ENVELOPE_MAGIC_0
  out[1] = ENVELOPE_MAGIC_1
  out[2] = version
  out[3] = flags
  out[4] = serializer.id
  out.writeUInt32BE(schemaVersion, 5)
  out.writeDoubleBE(entry.createdAt, 9)
  out.writeDoubleBE(entry.freshUntil, 17)
  out.writeDoubleBE(entry.staleUntil, 25)
}

function toBuffer(bytes: string | Uint8Array): Buffer {
  if (typeof bytes === 'string') return Buffer.from(bytes, 'utf8')
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
}
