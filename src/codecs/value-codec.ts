// A namespace's codec chain for L2: redact → serialize → compress over a threshold → encrypt → envelope, and back.
import { DEFAULT_LEVELS, LEVEL_RANGES, zstdAvailable, type CompressionAlgorithm } from './compression.js'
import type { ResolvedKeyRing } from './encryption.js'
import {
  decodeEnvelope,
  encodeEnvelopeSized,
  type DecodeResult,
  type EnvelopeTransforms,
  type Entry,
} from './envelope.js'
import { Redactor, type RedactOption } from './redaction.js'
import type { Serializer } from './serializer.js'
import { InvalidOptionError } from '../errors.js'
import type { OptionKeys } from '../core/known-options.js'

/**
 * Compression of L2 values over a size threshold.
 * @example { threshold: 1024, algorithm: 'brotli' }
 */
export interface CompressionOptions {
  /** Serialized size from which a value is compressed, in bytes; smaller values are stored as they are. @default 1024 */
  threshold?: number
  /**
   * `'brotli'` (smaller output), `'deflate'` (cheapest), or `'zstd'` where this Node's `node:zlib` has it (22.15+,
   * 23.8+; refused at startup otherwise). @default 'brotli'
   */
  algorithm?: CompressionAlgorithm
  /**
   * Compression level: deflate 0-9 (default 6), brotli quality 0-11 (default 4: brotli's own default, 11, costs
   * tens of ms per 100 KB), zstd 1-19 (default 3).
   */
  level?: number
}

/** The keys of `CompressionOptions`, checked against it by the compiler. */
export const COMPRESSION_OPTION_KEYS = {
  threshold: true,
  algorithm: true,
  level: true,
} as const satisfies OptionKeys<CompressionOptions>

export interface ResolvedCompression {
  readonly algorithm: CompressionAlgorithm
  readonly level: number
  readonly threshold: number
}

export interface ResolvedCodecOptions {
  readonly compression: ResolvedCompression | undefined
  /** The cache's key ring: used to encrypt when `encrypt`, and to decrypt whatever carries one of its key ids. */
  readonly keyRing: ResolvedKeyRing | undefined
  readonly encrypt: boolean
  readonly maxValueBytes: number
  readonly redactor: Redactor | undefined
}

export function resolveCompression(
  option: false | CompressionOptions | undefined,
  at: string,
): ResolvedCompression | undefined {
  if (option === undefined || option === false) return undefined
  if (option === null || typeof option !== 'object') {
    throw new InvalidOptionError(
      at,
      option,
      "`false` or an object such as { threshold: 1024, algorithm: 'brotli' }",
    )
  }
  const algorithm = option.algorithm ?? 'brotli'
  if (algorithm !== 'brotli' && algorithm !== 'deflate' && algorithm !== 'zstd') {
    throw new InvalidOptionError(`${at}.algorithm`, algorithm, "'brotli', 'deflate' or 'zstd'")
  }
  if (algorithm === 'zstd' && !zstdAvailable()) {
    throw new InvalidOptionError(
      `${at}.algorithm`,
      algorithm,
      `'brotli' or 'deflate': this Node (${process.version}) has no zstd in node:zlib (it needs 22.15+ or 23.8+)`,
    )
  }
  const threshold = option.threshold ?? 1024
  if (!Number.isSafeInteger(threshold) || threshold < 0) {
    throw new InvalidOptionError(
      `${at}.threshold`,
      threshold,
      'a whole number of bytes, 0 or more, e.g. 1024',
    )
  }
  const [min, max] = LEVEL_RANGES[algorithm]
  const level = option.level ?? DEFAULT_LEVELS[algorithm]
  if (!Number.isInteger(level) || level < min || level > max) {
    throw new InvalidOptionError(
      `${at}.level`,
      level,
      `a whole number from ${min} to ${max} for ${algorithm}`,
    )
  }
  return Object.freeze({ algorithm, level, threshold })
}

/** A namespace's codec options, with the cache's as defaults. */
export function resolveCodecOptions(
  options: {
    redact: RedactOption | undefined
    encrypt: boolean | undefined
    compression: false | CompressionOptions | undefined
    maxValueBytes: number
  },
  cache: { compression: ResolvedCompression | undefined; keyRing: ResolvedKeyRing | undefined },
  at: (option: string) => string,
): ResolvedCodecOptions {
  const { encrypt } = options
  if (encrypt !== undefined && typeof encrypt !== 'boolean') {
    throw new InvalidOptionError(at('encrypt'), encrypt, 'true or false')
  }
  if (encrypt === true && cache.keyRing === undefined) {
    throw new InvalidOptionError(
      at('encrypt'),
      encrypt,
      'nothing, or false: the cache has no `encryption` key ring (createCache({ encryption: { active, keys } }))',
    )
  }
  return Object.freeze({
    compression:
      options.compression === undefined
        ? cache.compression
        : resolveCompression(options.compression, at('compression')),
    keyRing: cache.keyRing,
    encrypt: encrypt ?? cache.keyRing !== undefined,
    maxValueBytes: options.maxValueBytes,
    redactor: options.redact === undefined ? undefined : new Redactor(options.redact, at('redact')),
  })
}

/** The codec chain of one namespace, bound to its serializer, schema version and options. */
export class ValueCodec {
  readonly #serializer: Serializer
  readonly #schemaVersion: number
  readonly #options: ResolvedCodecOptions

  /**
   * The transforms for decoding any key, without a key ring: decoding reads the key only to check what a ciphertext
   * is bound to, so without encryption one object serves every read (one allocation less per L2 hit). Encoding keeps
   * its own, whose key also names the entry in a ValueTooLargeError.
   */
  readonly #keyless: EnvelopeTransforms | undefined

  constructor(serializer: Serializer, schemaVersion: number, options: ResolvedCodecOptions) {
    this.#serializer = serializer
    this.#schemaVersion = schemaVersion
    this.#options = options
    this.#keyless = options.keyRing === undefined ? this.#transformsOf('') : undefined
  }

  /** The value with the namespace's redacted paths removed or masked (the same value when none are declared). */
  redact<V>(value: V): V {
    const redactor = this.#options.redactor
    return redactor === undefined ? value : redactor.apply(value)
  }

  /**
   * The envelope for `entry` under the full cache `key`, and the entry's size before compression and encryption
   * (what its decoded value weighs against the L1 byte budget).
   * @throws ValueTooLargeError over `maxValueBytes`; whatever the serializer throws.
   */
  encode(entry: Entry, key: string): { bytes: Buffer; size: number } {
    return encodeEnvelopeSized(entry, this.#schemaVersion, this.#serializer, this.#transformsOf(key))
  }

  /**
   * The entry in `bytes` read at `key`, or why not. Never throws. Redaction applies again on the way out, so values
   * written before a path was declared do not leak it.
   */
  decode(bytes: Uint8Array, key: string): DecodeResult<unknown> {
    const result = decodeEnvelope(
      bytes,
      this.#schemaVersion,
      this.#serializer,
      this.#keyless ?? this.#transformsOf(key),
    )
    if (!result.ok || this.#options.redactor === undefined) return result
    const value = this.redact(result.entry.value)
    return value === result.entry.value ? result : { ok: true, entry: { ...result.entry, value } }
  }

  #transformsOf(key: string): EnvelopeTransforms {
    const o = this.#options
    return {
      key,
      compression: o.compression,
      keyRing: o.keyRing,
      encrypt: o.encrypt,
      maxValueBytes: o.maxValueBytes,
    }
  }
}
