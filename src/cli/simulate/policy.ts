// A cache policy to replay an access log against: TTL, stale window, L1 size and eviction policy.
import { parseDuration } from '../../core/duration.js'
import { InvalidOptionError } from '../../errors.js'
import { rejectUnknown, type OptionKeys, type OptionPlace } from '../../core/known-options.js'

/**
 * A policy file, as JSON:
 * `{ "ttl": "5m", "staleFor": "1m", "l1": { "maxEntries": 10000, "policy": "w-tinylfu" }, "namespace": "product" }`.
 */
export interface PolicyFile {
  /** Freshness after each load, as in a namespace's `ttl`. */
  ttl: string | number
  /** Stale window after `ttl`: reads in it are served stale while one refresh loads. @default 0 */
  staleFor?: string | number
  /**
   * The L1: its size and eviction policy, or `false` for none; a field left out keeps its default.
   * @default { maxEntries: 10000, policy: 'w-tinylfu' }
   */
  l1?: false | { maxEntries?: number; policy?: 'w-tinylfu' | 'lru' }
  /** Replay only this namespace's reads. @default every read of the log */
  namespace?: string
}

export interface SimulationPolicy {
  /** Where the policy came from (its file name), for reports. */
  readonly label: string
  readonly ttlMs: number
  readonly staleForMs: number
  readonly l1: false | { readonly maxEntries: number; readonly policy: 'w-tinylfu' | 'lru' }
  readonly namespace: string | undefined
}

/** The fields of a policy file and of its `l1`, checked against `PolicyFile` by the compiler. */
export const POLICY_FILE_KEYS = {
  ttl: true,
  staleFor: true,
  l1: true,
  namespace: true,
} as const satisfies OptionKeys<PolicyFile>
export const POLICY_FILE_L1_KEYS = { maxEntries: true, policy: true } as const satisfies OptionKeys<
  Exclude<PolicyFile['l1'], false | undefined>
>

/**
 * Validates a parsed policy file.
 * @throws InvalidOptionError naming the file and the field, e.g. `proposed.json: l1.maxEntries`; its subclass
 * UnknownOptionError for a field a policy file does not have, with the closest one.
 */
export function resolvePolicy(value: unknown, label: string): SimulationPolicy {
  const at = (field: string) => `${label}: ${field}`
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new InvalidOptionError(label, value, 'a JSON object such as { "ttl": "5m" }')
  }
  const place: OptionPlace = { where: label, at }
  rejectUnknown(value, POLICY_FILE_KEYS, place)
  const policy = value as Record<string, unknown>
  if (policy.ttl === undefined) throw new InvalidOptionError(at('ttl'), undefined, "a duration such as '5m'")
  const ttlMs = parseDuration(policy.ttl, at('ttl'))
  if (ttlMs < 1) throw new InvalidOptionError(at('ttl'), policy.ttl, 'at least 1 ms')
  const staleForMs = policy.staleFor === undefined ? 0 : parseDuration(policy.staleFor, at('staleFor'))
  const namespace = policy.namespace
  if (namespace !== undefined && (typeof namespace !== 'string' || namespace === '')) {
    throw new InvalidOptionError(at('namespace'), namespace, 'a namespace name')
  }
  return Object.freeze({ label, ttlMs, staleForMs, l1: resolveL1(policy.l1, place), namespace })
}

function resolveL1(l1: unknown, place: OptionPlace): SimulationPolicy['l1'] {
  const { at } = place
  if (l1 === false) return false
  if (l1 === undefined) return Object.freeze({ maxEntries: 10_000, policy: 'w-tinylfu' })
  if (l1 === null || typeof l1 !== 'object' || Array.isArray(l1)) {
    throw new InvalidOptionError(at('l1'), l1, 'false, or an object such as { "maxEntries": 10000 }')
  }
  rejectUnknown(l1, POLICY_FILE_L1_KEYS, place, 'l1')
  const { maxEntries = 10_000, policy = 'w-tinylfu' } = l1 as Record<string, unknown>
  if (typeof maxEntries !== 'number' || !Number.isSafeInteger(maxEntries) || maxEntries < 1) {
    throw new InvalidOptionError(at('l1.maxEntries'), maxEntries, 'a positive whole number of entries')
  }
  if (policy !== 'w-tinylfu' && policy !== 'lru') {
    throw new InvalidOptionError(at('l1.policy'), policy, '"w-tinylfu" or "lru"')
  }
  return Object.freeze({ maxEntries, policy })
}
