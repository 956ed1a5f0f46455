// Compression of L2 payloads with node:zlib: deflate, brotli, and zstd where the running Node has it.
import zlib from 'node:zlib'

/** A compression algorithm for L2 values. `'zstd'` needs a Node version whose `node:zlib` has zstd (22.15+, 23.8+). */
export type CompressionAlgorithm = 'deflate' | 'brotli' | 'zstd'

/** The algorithm's id in the envelope. Stable: a stored id never changes meaning. */
export const COMPRESSION_IDS: Readonly<Record<CompressionAlgorithm, number>> = Object.freeze({
  deflate: 1,
  brotli: 2,
  zstd: 3,
})

type SyncCodec = (buffer: Buffer, options?: object) => Buffer

/** zstd from node:zlib when this Node has it (added in 22.15 / 23.8); looked up, not imported, so Node 20 loads. */
const zstd = zlib as unknown as { zstdCompressSync?: SyncCodec; zstdDecompressSync?: SyncCodec }

/** Whether this Node's zlib can compress and decompress zstd. */
export function zstdAvailable(): boolean {
  return typeof zstd.zstdCompressSync === 'function' && typeof zstd.zstdDecompressSync === 'function'
}

/**
 * Default levels, picked for a cache (written once, read many times, on the request path): brotli's own default
 * (quality 11) costs tens of ms for 100 KB; quality 4 is within a few percent of its ratio on JSON at a fraction of
 * the time. Deflate's default (6) and zstd's (3) are already fast.
 */
export const DEFAULT_LEVELS: Readonly<Record<CompressionAlgorithm, number>> = Object.freeze({
  deflate: 6,
  brotli: 4,
  zstd: 3,
})

/** The valid level range of each algorithm. */
export const LEVEL_RANGES: Readonly<Record<CompressionAlgorithm, readonly [number, number]>> = Object.freeze({
  deflate: [0, 9],
  brotli: [0, 11],
  zstd: [1, 19],
})

/** Compresses `bytes`. Synchronous: a cache value is small enough that a thread-pool hop costs more than it saves. */
export function compress(algorithm: CompressionAlgorithm, level: number, bytes: Buffer): Buffer {
  switch (algorithm) {
    case 'deflate':
      return zlib.deflateSync(bytes, { level })
    case 'brotli':
      return zlib.brotliCompressSync(bytes, {
        params: {
          [zlib.constants.BROTLI_PARAM_QUALITY]: level,
          [zlib.constants.BROTLI_PARAM_SIZE_HINT]: bytes.byteLength,
          [zlib.constants.BROTLI_PARAM_MODE]: zlib.constants.BROTLI_MODE_TEXT,
        },
      })
    case 'zstd':
      if (zstd.zstdCompressSync === undefined) throw new Error('zstd is not available in this Node version')
      // ZSTD_c_compressionLevel is parameter 100 in zstd's own API, which node:zlib passes through.
      return zstd.zstdCompressSync(bytes, { params: { 100: level } })
  }
}

/**
 * Decompresses `bytes` stored under algorithm `id`, producing at most `maxBytes` (zlib stops and throws past it,
 * so a small planted "zip bomb" cannot allocate more). Throws on an unknown id, corrupt input or too much output.
 */
export function decompress(id: number, bytes: Buffer, maxBytes: number): Buffer {
  const options = { maxOutputLength: Math.max(1, maxBytes) }
  switch (id) {
    case COMPRESSION_IDS.deflate:
      return zlib.inflateSync(bytes, options)
    case COMPRESSION_IDS.brotli:
      return zlib.brotliDecompressSync(bytes, options)
    case COMPRESSION_IDS.zstd:
      if (zstd.zstdDecompressSync === undefined) throw new Error('zstd is not available in this Node version')
      return zstd.zstdDecompressSync(bytes, options)
    default:
      throw new Error(`unknown compression algorithm id ${id}`)
  }
}
