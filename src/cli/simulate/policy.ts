// A cache policy to replay an access log against: TTL, stale window, L1 size and eviction policy.
import { parseDuration } from '../../core/duration.js'
import { InvalidOptionError } from '../../errors.js'

/**
 * A policy file, as JSON:
 * `{ "ttl": "5m", "staleFor": "1m", "l1": { "maxEntries": 10000, "policy": "w-tinylfu" }, "namespace": "product" }`.
 */
export interface PolicyFile {
  /** Freshness after each load, as in a namespace's `ttl`. */
  ttl: string | number
  /** Stale window after `ttl`: reads in it are served stale while one refresh loads. @default 0 */
  staleFor?: string | number
  /** The L1: its size and eviction policy, or `false` for none. @default { maxEntries: 10000, policy: 'w-tinylfu' } */
  l1?: false | { maxEntries: number; policy?: 'w-tinylfu' | 'lru' }
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

const KNOWN = new Set(['ttl', 'staleFor', 'l1', 'namespace'])

/**
 * Validates a parsed policy file.
 * @throws InvalidOptionError naming the file and the field, e.g. `proposed.json: l1.maxEntries`.
 */
export function resolvePolicy(value: unknown, label: string): SimulationPolicy {
  const at = (field: string) => `${label}: ${field}`
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new InvalidOptionError(label, value, 'a JSON object such as { "ttl": "5m" }')
  }
  const policy = value as Record<string, unknown>
  for (const key of Object.keys(policy)) {
    if (!KNOWN.has(key))
      throw new InvalidOptionError(at(key), policy[key], `one of: ${[...KNOWN].join(', ')}`)
  }
  if (policy.ttl === undefined) throw new InvalidOptionError(at('ttl'), undefined, "a duration such as '5m'")
  const ttlMs = parseDuration(policy.ttl, at('ttl'))
  if (ttlMs < 1) throw new InvalidOptionError(at('ttl'), policy.ttl, 'at least 1 ms')
  const staleForMs = policy.staleFor === undefined ? 0 : parseDuration(policy.staleFor, at('staleFor'))
  const namespace = policy.namespace
  if (namespace !== undefined && (typeof namespace !== 'string' || namespace === '')) {
    throw new InvalidOptionError(at('namespace'), namespace, 'a namespace name')
  }
  return Object.freeze({ label, ttlMs, staleForMs, l1: resolveL1(policy.l1, at), namespace })
}

function resolveL1(l1: unknown, at: (field: string) => string): SimulationPolicy['l1'] {
  if (l1 === false) return false
  if (l1 === undefined) return Object.freeze({ maxEntries: 10_000, policy: 'w-tinylfu' })
  if (l1 === null || typeof l1 !== 'object' || Array.isArray(l1)) {
    throw new InvalidOptionError(at('l1'), l1, 'false, or an object such as { "maxEntries": 10000 }')
  }
  const { maxEntries, policy = 'w-tinylfu', ...rest } = l1 as Record<string, unknown>
  for (const key of Object.keys(rest)) {
    throw new InvalidOptionError(at(`l1.${key}`), rest[key], 'one of: maxEntries, policy')
  }
  if (typeof maxEntries !== 'number' || !Number.isSafeInteger(maxEntries) || maxEntries < 1) {
    throw new InvalidOptionError(at('l1.maxEntries'), maxEntries, 'a positive whole number of entries')
  }
  if (policy !== 'w-tinylfu' && policy !== 'lru') {
    throw new InvalidOptionError(at('l1.policy'), policy, '"w-tinylfu" or "lru"')
  }
  return Object.freeze({ maxEntries, policy })
}
