// The Redis Cluster slot of a key: CRC16 (XMODEM) of its hash tag, or of the whole key, modulo 16,384.

/** Slots of a Redis Cluster. */
export const CLUSTER_SLOTS = 16_384

const TABLE = (() => {
  const table = new Uint16Array(256)
  for (let i = 0; i < 256; i++) {
    let crc = i << 8
    for (let bit = 0; bit < 8; bit++) crc = crc & 0x8000 ? (crc << 1) ^ 0x1021 : crc << 1
    table[i] = crc & 0xffff
  }
  return table
})()

/**
 * The slot Redis Cluster assigns `key` (as `CLUSTER KEYSLOT` answers): when the key holds `{…}` with at least one
 * character inside, only the text between the first `{` and the next `}` is hashed (a hash tag).
 */
export function clusterSlot(key: string | Uint8Array): number {
  const bytes = typeof key === 'string' ? Buffer.from(key) : key
  let start = 0
  let end = bytes.length
  const open = bytes.indexOf(0x7b)
  if (open !== -1) {
    const close = bytes.indexOf(0x7d, open + 1)
    if (close > open + 1) {
      start = open + 1
      end = close
    }
  }
  let crc = 0
  for (let i = start; i < end; i++) crc = ((crc << 8) & 0xffff) ^ TABLE[((crc >> 8) ^ bytes[i]!) & 0xff]!
  return crc % CLUSTER_SLOTS
}
