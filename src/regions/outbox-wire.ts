// The region outbox's entry format: the fields of one Redis stream entry. test/unit/region-wire.test.ts pins it.
//
//   v=1  r=<origin region>  t=<sent at, epoch ms>  k=keys  n=<namespace>  x=["<relative key>",…]
//   v=1  r=…  t=…  k=tags  n=<namespace>  x=["<tag>",…]
//   v=1  r=…  t=…  k=clear n=<namespace>            ns.clear(): every entry of the namespace
//   v=1  r=…  t=…  k=all   n=<namespace>            ns.invalidateAll(): a new generation in every region
//   v=1  r=…  t=…  k=hb                              a heartbeat: the relay of region r was alive at t
//
// Keys travel relative (core/keys.ts, `relativeKey`): without the generation and the fence shard, which differ from
// one region to another. `v` is the format version: an entry of an unknown version is skipped and counted, never
// applied half understood.
import type { Invalidation } from '../bus/wire.js'

export const OUTBOX_FORMAT_VERSION = '1'

/** What one outbox entry asks the other regions to do to a namespace. */
export type RelayedInvalidation =
  | { readonly kind: 'keys'; readonly namespace: string; readonly keys: readonly string[] }
  | { readonly kind: 'tags'; readonly namespace: string; readonly tags: readonly string[] }
  | { readonly kind: 'clear'; readonly namespace: string }
  | { readonly kind: 'all'; readonly namespace: string }

/** What one outbox entry says: an invalidation, or that its region's relay is alive. */
export type Relayed = RelayedInvalidation | { readonly kind: 'heartbeat' }

export interface OutboxEntry {
  readonly region: string
  readonly sentAt: number
  readonly relayed: Relayed
}

/** The relayed form of a bus invalidation; keys already made relative. */
export function relayedOf(invalidation: Invalidation, relativeKeys: readonly string[]): RelayedInvalidation {
  if (invalidation.kind === 'keys')
    return { kind: 'keys', namespace: invalidation.namespace, keys: relativeKeys }
  if (invalidation.kind === 'tags') return invalidation
  return { kind: invalidation.generation === undefined ? 'clear' : 'all', namespace: invalidation.namespace }
}

export function encodeOutboxEntry(entry: OutboxEntry): Record<string, string> {
  const { relayed } = entry
  const head = { v: OUTBOX_FORMAT_VERSION, r: entry.region, t: String(entry.sentAt) }
  if (relayed.kind === 'heartbeat') return { ...head, k: 'hb' }
  if (relayed.kind === 'keys')
    return { ...head, k: 'keys', n: relayed.namespace, x: JSON.stringify(relayed.keys) }
  if (relayed.kind === 'tags')
    return { ...head, k: 'tags', n: relayed.namespace, x: JSON.stringify(relayed.tags) }
  return { ...head, k: relayed.kind, n: relayed.namespace }
}

/** Decodes an entry's fields; anything else (another program's entry, another version) gives the reason. */
export function decodeOutboxEntry(
  fields: Readonly<Record<string, Uint8Array>>,
): { ok: true; entry: OutboxEntry } | { ok: false; reason: string } {
  const text = (name: string) => {
    const bytes = fields[name]
    return bytes === undefined ? undefined : Buffer.from(bytes).toString('utf8')
  }
  const version = text('v')
  if (version !== OUTBOX_FORMAT_VERSION)
    return { ok: false, reason: `unknown format version ${String(version)}` }
  const region = text('r')
  const sentAt = Number(text('t'))
  const kind = text('k')
  if (region === undefined || !Number.isFinite(sentAt)) return { ok: false, reason: 'missing region or time' }
  if (kind === 'hb') return { ok: true, entry: { region, sentAt, relayed: { kind: 'heartbeat' } } }
  const namespace = text('n')
  if (namespace === undefined) return { ok: false, reason: 'missing namespace' }
  if (kind === 'clear') return { ok: true, entry: { region, sentAt, relayed: { kind, namespace } } }
  if (kind === 'all') return { ok: true, entry: { region, sentAt, relayed: { kind, namespace } } }
  if (kind !== 'keys' && kind !== 'tags') return { ok: false, reason: `unknown kind ${String(kind)}` }
  let list: unknown
  try {
    list = JSON.parse(text('x') ?? '')
  } catch {
    return { ok: false, reason: 'list is not JSON' }
  }
  if (!Array.isArray(list) || !list.every((item) => typeof item === 'string' && item.length > 0)) {
    return { ok: false, reason: 'list is not an array of non-empty strings' }
  }
  const relayed: Relayed =
    kind === 'keys'
      ? { kind, namespace, keys: list as string[] }
      : { kind, namespace, tags: list as string[] }
  return { ok: true, entry: { region, sentAt, relayed } }
}
