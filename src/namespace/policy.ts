// The policy in force for one namespace: its resolved options, changed at run time by `updatePolicy()`.
//
// Invariants:
// - Only freshness and resilience options change at run time (POLICY_OPTIONS); the key schema, consistency, tiers
//   and codecs are part of the declaration.
// - A patch is resolved (and checked) in full before anything changes: a refused patch leaves the policy as it was.
// - At most POLICY_HISTORY earlier policies are kept for `rollbackPolicy()`, the oldest dropped first.
import { InvalidArgumentError } from '../errors.js'
import { rejectUnknown, type OptionKeys } from '../core/known-options.js'
import type { CacheRuntime } from '../core/runtime.js'
import { NAMESPACE_OPTION_KEYS, type NamespaceOptions, type ResolvedNamespaceOptions } from '../options.js'

/** A change of freshness and resilience policy, for `ns.updatePolicy()`. */
export type PolicyPatch = Partial<
  Pick<
    NamespaceOptions<string, readonly string[], never, never>,
    | 'ttl'
    | 'jitter'
    | 'negativeTtl'
    | 'staleFor'
    | 'staleWhileRevalidate'
    | 'failSafeThrottle'
    | 'refreshAhead'
    | 'timeouts'
  >
>

/** What `updatePolicy()` may change at run time: every key of `PolicyPatch`, checked by the compiler. */
export const POLICY_OPTION_KEYS = {
  ttl: true,
  jitter: true,
  negativeTtl: true,
  staleFor: true,
  staleWhileRevalidate: true,
  failSafeThrottle: true,
  refreshAhead: true,
  timeouts: true,
} as const satisfies OptionKeys<PolicyPatch>

/** `updatePolicy()` keeps this many earlier policies for `rollbackPolicy()`, dropping the oldest. */
const POLICY_HISTORY = 16

/** A namespace's options as declared, and how to resolve them again. */
type Declared<P, V> = NamespaceOptions<string, readonly string[], P, V>

export class Policy<P, V> {
  #options: ResolvedNamespaceOptions
  /** The options as declared, or as the last `updatePolicy()` patched them. */
  #current: Declared<P, V>
  readonly #resolve: ((raw: Declared<P, V>) => ResolvedNamespaceOptions) | undefined
  /** Earlier policies, for `rollbackPolicy()`: declared options and their resolution. */
  readonly #previous: { declared: Declared<P, V>; resolved: ResolvedNamespaceOptions }[] = []
  readonly #rt: CacheRuntime
  readonly #name: string

  /** The options as declared (or as the last `updatePolicy()` patched them), functions included. */
  get declared(): Declared<P, V> {
    return this.#current
  }

  constructor(
    runtime: CacheRuntime,
    options: ResolvedNamespaceOptions,
    declared: Declared<P, V>,
    resolve: ((raw: Declared<P, V>) => ResolvedNamespaceOptions) | undefined,
  ) {
    this.#rt = runtime
    this.#name = options.name
    this.#options = options
    this.#current = declared
    this.#resolve = resolve
  }

  get options(): ResolvedNamespaceOptions {
    return this.#options
  }

  /** Checks `patch`, resolves the declaration with it, and puts it in force. @throws as `ns.updatePolicy()`. */
  update(patch: PolicyPatch): ResolvedNamespaceOptions {
    if (patch === null || typeof patch !== 'object') {
      throw new InvalidArgumentError('patch', patch, "an object such as { ttl: '10m', staleFor: '1h' }")
    }
    for (const name of Object.keys(patch)) {
      // A namespace option that is not a policy is no typo: say why it cannot change, rather than "unknown".
      if (Object.hasOwn(NAMESPACE_OPTION_KEYS, name) && !Object.hasOwn(POLICY_OPTION_KEYS, name)) {
        throw new InvalidArgumentError(
          `patch.${name}`,
          (patch as Record<string, unknown>)[name],
          `one of ${Object.keys(POLICY_OPTION_KEYS).join(', ')}: the key schema, consistency, tiers and codecs are part of the declaration`,
        )
      }
    }
    rejectUnknown(patch, POLICY_OPTION_KEYS, {
      where: `updatePolicy() of namespace "${this.#name}"`,
      at: (path) => `patch.${path}`,
    })
    const declared = { ...this.#current, ...patch } as Declared<P, V>
    const resolved = this.#resolve === undefined ? this.#options : this.#resolve(declared)
    this.#previous.push({ declared: this.#current, resolved: this.#options })
    if (this.#previous.length > POLICY_HISTORY) this.#previous.shift()
    this.#current = declared
    this.#options = resolved
    this.#rt.logger.info(
      { service: this.#rt.service, namespace: this.#name, changed: Object.keys(patch) },
      'stratacache: namespace policy updated',
    )
    return resolved
  }

  /** Restores the policy in force before the last `update()`; false when there is none. */
  rollback(): boolean {
    const previous = this.#previous.pop()
    if (previous === undefined) return false
    this.#current = previous.declared
    this.#options = previous.resolved
    this.#rt.logger.info(
      { service: this.#rt.service, namespace: this.#name },
      'stratacache: namespace policy rolled back',
    )
    return true
  }
}
