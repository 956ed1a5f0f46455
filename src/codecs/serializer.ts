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

/**
 * Anything that could spell a dangerous key: `__proto__`, `constructor`, or a `\u` escape (`"__pr\u006fto__"`).
 * A payload without any of these is returned as JSON.parse made it; the rare one with them is walked and cleaned.
 */
const SUSPICIOUS = /__proto__|constructor|\\u/

/**
 * JSON, UTF-8. `serialize` throws on values JSON cannot hold (BigInt, cycles). `deserialize` cannot pollute
 * prototypes: it drops every `__proto__` key, and every `constructor` key whose value is an object with a
 * `prototype` key (the two shapes a later deep merge of the value could turn into `Object.prototype` writes).
 */
export const jsonSerializer: Serializer = {
  id: 1,
  serialize(value: unknown): string {
    const text = JSON.stringify(value) as string | undefined
    if (text === undefined) throw new TypeError(`JSON cannot represent a value of type ${typeof value}`)
    return text
  },
  deserialize(bytes: Buffer): unknown {
    return parseJsonFrom(bytes, 0)
  },
}

/**
 * `jsonSerializer.deserialize` of `bytes` from `start` on, without making a view of the rest first (the envelope
 * decoder reads a payload in place: one Buffer object less per L2 hit).
 */
export function parseJsonFrom(bytes: Buffer, start: number): unknown {
  const text = bytes.toString('utf8', start)
  const value: unknown = JSON.parse(text)
  if (typeof value === 'object' && value !== null && SUSPICIOUS.test(text)) neutralizePrototypeKeys(value)
  return value
}

/**
 * Deletes, in place, every own `__proto__` key and every own `constructor` key holding an object with a
 * `prototype` key, at any depth. Iterative, so a deeply nested payload cannot overflow the stack.
 */
export function neutralizePrototypeKeys(root: object): void {
  const stack: object[] = [root]
  while (stack.length > 0) {
    const node = stack.pop() as Record<string, unknown>
    if (Object.hasOwn(node, '__proto__')) delete node['__proto__']
    if (Object.hasOwn(node, 'constructor')) {
      const ctor = node['constructor']
      if (typeof ctor === 'object' && ctor !== null && Object.hasOwn(ctor, 'prototype'))
        delete node['constructor']
    }
    for (const key of Object.keys(node)) {
      const child = node[key]
      if (typeof child === 'object' && child !== null) stack.push(child)
    }
  }
}
