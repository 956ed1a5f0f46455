// Serializers turn cached values into bytes for L2 and back. JSON by default; pluggable per cache.

/** Turns values into bytes for L2 and back. `deserialize` may throw: the read becomes a miss, never an error. */
export interface Serializer {
  /**
   * A number from 1 to 255 stored in every envelope, so bytes written by another serializer are read as a miss
   * instead of being misparsed. 1 is the built-in JSON serializer.
   */
  readonly id: number
  serialize(value: unknown): string | Uint8Array
  deserialize(bytes: Buffer): unknown
}

/** JSON, UTF-8. `serialize` throws on values JSON cannot hold (BigInt, cycles). */
export const jsonSerializer: Serializer = {
  id: 1,
  serialize(value: unknown): string {
    const text = JSON.stringify(value) as string | undefined
    if (text === undefined) throw new TypeError(`JSON cannot represent a value of type ${typeof value}`)
    return text
  },
  deserialize(bytes: Buffer): unknown {
    return JSON.parse(bytes.toString('utf8'))
  },
}
