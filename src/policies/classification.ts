// Data classification of a namespace and the rules each class enforces when the namespace is declared.
import { ClassificationError, InvalidOptionError } from '../errors.js'
import { formatDuration } from '../core/format-duration.js'

/**
 * How sensitive a namespace's values are. `'personal'` (data about a person) and `'secret'` (credentials, tokens,
 * anything whose leak is an incident) must be redacted or encrypted, and live in the cache only briefly.
 */
export type Classification = 'public' | 'internal' | 'personal' | 'secret'

const CLASSES: readonly Classification[] = ['public', 'internal', 'personal', 'secret']

/** What the rules look at, from the namespace's resolved options. */
export interface ClassificationFacts {
  /** ttl + jitter + staleFor: the longest an entry lives in L2. */
  readonly lifetimeMs: number
  readonly negativeTtlMs: number
  readonly redacted: boolean
  readonly encrypted: boolean
  readonly caps: { readonly personalMs: number; readonly secretMs: number }
  /** The namespace queues its writes in a Redis stream (write-behind). */
  readonly writeBehind: boolean
}

/**
 * Throws ClassificationError naming the first rule `classification` breaks for this namespace, or
 * InvalidOptionError for an unknown class.
 */
export function checkClassification(
  namespace: string,
  classification: unknown,
  facts: ClassificationFacts,
): void {
  if (!CLASSES.includes(classification as Classification)) {
    throw new InvalidOptionError(
      `${namespace}.classification`,
      classification,
      "'public', 'internal', 'personal' or 'secret'",
    )
  }
  if (classification !== 'personal' && classification !== 'secret') return
  if (!facts.redacted && !facts.encrypted) {
    throw new ClassificationError(
      namespace,
      classification,
      'protection-required',
      'its values must be redacted or encrypted before they are cached. Declare `redact` with the sensitive ' +
        'fields, or give the cache an `encryption` key ring (and do not set `encrypt: false`).',
    )
  }
  if (facts.writeBehind) {
    throw new ClassificationError(
      namespace,
      classification,
      'no-write-behind',
      'write-behind keeps each queued write in a Redis stream as the source will receive it, neither redacted nor ' +
        "encrypted. Use writeStrategy 'write-through' or 'cache-aside' for this namespace.",
    )
  }
  const capMs = classification === 'personal' ? facts.caps.personalMs : facts.caps.secretMs
  const longest = Math.max(facts.lifetimeMs, facts.negativeTtlMs)
  if (longest > capMs) {
    throw new ClassificationError(
      namespace,
      classification,
      'ttl-cap',
      `its entries may live ${formatDuration(longest)} (ttl + jitter + staleFor, or negativeTtl), over the ` +
        `${classification} cap of ${formatDuration(capMs)}. Shorten \`ttl\`, \`jitter\` or \`staleFor\`, or raise \`ttlCaps.${classification}\` ` +
        'in createCache() if your policy allows it.',
    )
  }
}
