// The invalidation bus wire format: one JSON object per message. test/unit/bus-wire.test.ts pins it byte for byte.
//
//   {"v":1,"o":"<origin>","t":<sent at, epoch ms>,"k":"keys","n":"<namespace>","x":["<full key>",…]}
//   {"v":1,"o":"<origin>","t":<sent at>,"k":"namespace","n":"<namespace>"}     drop every entry of a namespace
//   {"v":1,"o":"<origin>","t":<sent at>,"k":"namespace","n":"<namespace>","g":<generation>}   and use this
//                                                                  generation of its keys from now on
//   {"v":1,"o":"<origin>","t":<sent at>,"k":"tags","n":"<namespace>","x":["<tag>",…]}   every entry with a tag
//
// `v` is the format version: a receiver ignores (and counts) a message of a version it does not know, so a newer
// sender never makes an older process act on a misread message. `o` is the sending cache instance, so a process
// ignores its own messages. `t` lets receivers measure invalidation lag.

export const BUS_FORMAT_VERSION = 1

/** What a message asks every other process to drop from its L1. */
export type Invalidation =
  | { readonly kind: 'keys'; readonly namespace: string; readonly keys: readonly string[] }
  | { readonly kind: 'namespace'; readonly namespace: string; readonly generation?: number }
  | { readonly kind: 'tags'; readonly namespace: string; readonly tags: readonly string[] }

export interface BusMessage {
  readonly origin: string
  /** Epoch ms when the message was published. */
  readonly sentAt: number
  readonly invalidation: Invalidation
}

export function encodeBusMessage(message: BusMessage): string {
  const { origin, sentAt, invalidation } = message
  const head = {
    v: BUS_FORMAT_VERSION,
    o: origin,
    t: sentAt,
    k: invalidation.kind,
    n: invalidation.namespace,
  }
  if (invalidation.kind === 'keys') return JSON.stringify({ ...head, x: invalidation.keys })
  if (invalidation.kind === 'tags') return JSON.stringify({ ...head, x: invalidation.tags })
  if (invalidation.generation !== undefined) return JSON.stringify({ ...head, g: invalidation.generation })
  return JSON.stringify(head)
}

/** Decodes a message; anything that is not a well-formed message of this version gives the reason instead. */
export function decodeBusMessage(
  text: string,
): { ok: true; message: BusMessage } | { ok: false; reason: string } {
  let raw: unknown
  try {
    raw = JSON.parse(text)
  } catch {
    return { ok: false, reason: 'not JSON' }
  }
  if (raw === null || typeof raw !== 'object') return { ok: false, reason: 'not an object' }
  const m = raw as Record<string, unknown>
  if (m.v !== BUS_FORMAT_VERSION) return { ok: false, reason: `unknown format version ${String(m.v)}` }
  if (
    typeof m.o !== 'string' ||
    typeof m.t !== 'number' ||
    !Number.isFinite(m.t) ||
    typeof m.n !== 'string'
  ) {
    return { ok: false, reason: 'missing origin, time or namespace' }
  }
  if (m.k === 'namespace') {
    if (m.g !== undefined && !(Number.isSafeInteger(m.g) && (m.g as number) >= 0)) {
      return { ok: false, reason: 'generation is not a non-negative integer' }
    }
    const invalidation: Invalidation =
      m.g === undefined
        ? { kind: 'namespace', namespace: m.n }
        : { kind: 'namespace', namespace: m.n, generation: m.g as number }
    return { ok: true, message: { origin: m.o, sentAt: m.t, invalidation } }
  }
  if (
    (m.k === 'keys' || m.k === 'tags') &&
    Array.isArray(m.x) &&
    m.x.every((key) => typeof key === 'string')
  ) {
    const invalidation: Invalidation =
      m.k === 'keys'
        ? { kind: 'keys', namespace: m.n, keys: m.x }
        : { kind: 'tags', namespace: m.n, tags: m.x }
    return { ok: true, message: { origin: m.o, sentAt: m.t, invalidation } }
  }
  return { ok: false, reason: `unknown kind ${String(m.k)}` }
}
