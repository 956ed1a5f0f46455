// Key building: a namespace's template and dimensions, validated once, turned into deterministic escaped Redis keys.
import { createHash } from 'node:crypto'
import { InvalidArgumentError, InvalidKeyParamError, InvalidOptionError } from '../errors.js'
import { KeyLayout } from './key-layout.js'

/** A value allowed in a key parameter. Its key text is `String(value)`, so `42` and `'42'` name the same entry. */
export type Scalar = string | number | bigint | boolean

/** What a key parameter may be declared as in a namespace's `params`: the `typeof` of its values. */
export type ScalarTypeName = 'string' | 'number' | 'bigint' | 'boolean'

/** The type a `ScalarTypeName` names: `'number'` → `number`. */
export type ScalarOf<T extends ScalarTypeName> = {
  string: string
  number: number
  bigint: bigint
  boolean: boolean
}[T]

/** The placeholder names of a key template: `'tenant:{tenantId}:product:{productId}'` → `'tenantId' | 'productId'`. */
export type Placeholders<T extends string> = T extends `${string}{${infer Name}}${infer Rest}`
  ? Name | Placeholders<Rest>
  : never

/** Every parameter name of a namespace: the template's placeholders plus the declared dimensions. */
export type KeyParamNames<K extends string, D extends readonly string[]> = Placeholders<K> | D[number]

/**
 * The parameters that identify one entry, each a `Scalar` (`string | number | bigint | boolean`) unless declared
 * otherwise. A namespace without parameters takes `{}`.
 */
export type KeyParams<K extends string, D extends readonly string[]> = [KeyParamNames<K, D>] extends [never]
  ? { readonly [name: string]: never }
  : { readonly [N in KeyParamNames<K, D>]: Scalar }

/** A namespace's `params` declaration: a type name for any of its key parameters. */
export type ParamTypes<K extends string, D extends readonly string[]> = {
  readonly [N in KeyParamNames<K, D>]?: ScalarTypeName
}

/** The key parameters with the types `params` (`T`) declares; the others stay `Scalar`. */
export type TypedKeyParams<K extends string, D extends readonly string[], T> = [KeyParamNames<K, D>] extends [
  never,
]
  ? { readonly [name: string]: never }
  : {
      readonly [N in KeyParamNames<K, D>]: N extends keyof T
        ? T[N] extends ScalarTypeName
          ? ScalarOf<T[N]>
          : Scalar
        : Scalar
    }

const SCALAR_TYPE_NAMES: readonly string[] = ['string', 'number', 'bigint', 'boolean']

/** Names in the key prefix (service, namespace) and literal template segments: no separators, no patterns. */
export const NAME_PATTERN = /^[A-Za-z0-9_.-]{1,64}$/
const LITERAL_SEGMENT = /^[A-Za-z0-9_.-]+$/
const PLACEHOLDER_SEGMENT = /^\{([A-Za-z_][A-Za-z0-9_]*)\}$/
const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/
const RESERVED_BY_URI_ENCODING = /[!'()*~]/g

/** Marks a hashed key. Never produced by escaping nor allowed in a literal segment, so hashed keys cannot collide with plain ones. */
const HASH_MARK = '#'

/**
 * Escapes one parameter's text into `[A-Za-z0-9_.-]` plus `%XX` UTF-8 escapes (uppercase hex).
 * Injective, and the output never holds `:`, `{`, `}`, `*`, `?`, `[`, `]`, `#`, white space or control characters.
 * Returns undefined for a string with a lone surrogate (it has no byte encoding that round-trips).
 */
export function escapeKeyText(text: string): string | undefined {
  if (isSafeText(text)) return text
  let encoded: string
  try {
    encoded = encodeURIComponent(text)
  } catch {
    return undefined
  }
  return encoded.replace(RESERVED_BY_URI_ENCODING, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase())
}

/** Whether `text` is non-empty and all `[A-Za-z0-9_.-]`: a loop, cheaper than a regex test on this path. */
function isSafeText(text: string): boolean {
  if (text.length === 0) return false
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    const safe =
      (c >= 97 && c <= 122) ||
      (c >= 65 && c <= 90) ||
      (c >= 48 && c <= 57) ||
      c === 95 ||
      c === 46 ||
      c === 45
    if (!safe) return false
  }
  return true
}

export interface KeySchemaOptions {
  readonly service: string
  readonly namespace: string
  readonly schemaVersion: number
  readonly template: string
  readonly dimensions: readonly string[]
  /** Keys longer than this (characters, all ASCII after escaping) keep their prefix and hash the rest. */
  readonly maxKeyLength: number
  /** Declared parameter types (`params`): each named parameter must have that `typeof` when a key is built. */
  readonly types?: Readonly<Record<string, ScalarTypeName>> | undefined
  /**
   * Fence shards of the L2 the keys are for (`L2Store.fenceShards`): 1 (one Redis node) builds keys without hash
   * tags; more (a Redis Cluster) puts the entry's shard's hash tag right after the prefix (core/key-layout.ts).
   * @default 1
   */
  readonly fenceShards?: number
}

/**
 * The compiled key schema of one namespace: `service:namespace:v{schemaVersion}:` then the template's segments,
 * then each dimension as `name=value`, sorted by name so the declaration order does not matter.
 */
export class KeySchema {
  /** `service:namespace:v{schemaVersion}:` — every key of the namespace starts with it. */
  readonly prefix: string
  /** Where the namespace's keys and bookkeeping keys live: one node, or fence shards on a Redis Cluster. */
  readonly layout: KeyLayout
  /** Parameter names in key order: placeholders as in the template, then dimensions sorted. */
  readonly params: readonly string[]
  /** Parameter names in L1 index order: dimensions sorted (usually few values), then placeholders in order. */
  readonly levels: readonly string[]
  readonly #namespace: string
  /** Literal text between parameter values: `literals[0] + v0 + literals[1] + ... + literals[n]`. */
  readonly #literals: string[]
  /** `literals[0]` without the prefix, to rebuild it when the generation changes. */
  readonly #firstLiteral: string
  readonly #maxKeyLength: number
  /** Declared types by parameter name, as pairs; undefined when `params` declares none. */
  readonly #types: readonly (readonly [string, ScalarTypeName])[] | undefined
  /** The prefix keys are built with: `prefix`, then `g{generation}:` from generation 1 on. */
  #keyPrefix: string
  #generation = 0

  constructor(options: KeySchemaOptions) {
    const { service, namespace, schemaVersion, template, dimensions } = options
    if (!NAME_PATTERN.test(service)) {
      throw new InvalidOptionError('service', service, '1 to 64 characters of A-Z, a-z, 0-9, `_`, `.` or `-`')
    }
    if (!NAME_PATTERN.test(namespace)) {
      throw new InvalidOptionError(
        'namespace name',
        namespace,
        '1 to 64 characters of A-Z, a-z, 0-9, `_`, `.` or `-`',
      )
    }
    if (!Number.isSafeInteger(schemaVersion) || schemaVersion < 0 || schemaVersion > 0xffff_ffff) {
      throw new InvalidOptionError(`${namespace}.schemaVersion`, schemaVersion, 'a non-negative integer')
    }
    if (typeof template !== 'string' || template.length === 0) {
      throw new InvalidOptionError(
        `${namespace}.key`,
        template,
        "a key template such as 'tenant:{tenantId}:product:{productId}'",
      )
    }
    this.#namespace = namespace
    this.#maxKeyLength = options.maxKeyLength
    this.prefix = `${service}:${namespace}:v${schemaVersion}:`
    this.layout = new KeyLayout(this.prefix, options.fenceShards ?? 1)

    const placeholders: string[] = []
    const literals: string[] = []
    let pending = this.prefix
    const segments: string[] = template.split(':')
    segments.forEach((segment, i) => {
      const separator = i === 0 ? '' : ':'
      const placeholder = PLACEHOLDER_SEGMENT.exec(segment)
      if (placeholder) {
        const name = placeholder[1]!
        if (placeholders.includes(name)) {
          throw new InvalidOptionError(
            `${namespace}.key`,
            template,
            `each placeholder once; \`{${name}}\` appears twice`,
          )
        }
        placeholders.push(name)
        literals.push(pending + separator)
        pending = ''
      } else if (LITERAL_SEGMENT.test(segment)) {
        pending += separator + segment
      } else {
        throw new InvalidOptionError(
          `${namespace}.key`,
          template,
          'segments separated by `:`, each either literal text of A-Z, a-z, 0-9, `_`, `.`, `-` or exactly one ' +
            `placeholder such as \`{productId}\`; the segment "${segment}" is neither`,
        )
      }
    })

    if (!Array.isArray(dimensions)) {
      throw new InvalidOptionError(
        `${namespace}.dimensions`,
        dimensions,
        "an array of names such as ['locale']",
      )
    }
    const sortedDimensions = Array.from(dimensions as readonly unknown[]).sort() as string[]
    sortedDimensions.forEach((name, i) => {
      if (typeof name !== 'string' || !IDENTIFIER.test(name)) {
        throw new InvalidOptionError(`${namespace}.dimensions`, name, 'identifier names such as `locale`')
      }
      if (placeholders.includes(name) || sortedDimensions[i - 1] === name) {
        throw new InvalidOptionError(
          `${namespace}.dimensions`,
          name,
          'names that appear once, in the template or in `dimensions` but not both',
        )
      }
      literals.push(pending + `:${name}=`)
      pending = ''
    })
    literals.push(pending)
    this.#literals = literals
    this.#keyPrefix = this.prefix
    this.#firstLiteral = literals[0]!.slice(this.prefix.length)
    this.params = [...placeholders, ...sortedDimensions]
    this.levels = [...sortedDimensions, ...placeholders]
    this.#types = this.#checkTypes(options.types)
  }

  /** The `params` declaration as pairs, once checked: declared names only, each a scalar type name. */
  #checkTypes(
    types: Readonly<Record<string, ScalarTypeName>> | undefined,
  ): readonly (readonly [string, ScalarTypeName])[] | undefined {
    if (types === undefined) return undefined
    const where = `${this.#namespace}.params`
    if (types === null || typeof types !== 'object' || Array.isArray(types)) {
      throw new InvalidOptionError(where, types, "an object such as { productId: 'number' }")
    }
    const pairs = Object.entries(types)
    for (const [name, type] of pairs) {
      if (!this.params.includes(name)) {
        throw new InvalidOptionError(
          `${where}.${name}`,
          type,
          `a parameter of the key template or \`dimensions\` (${this.params.map((p) => `\`${p}\``).join(', ') || 'none'})`,
        )
      }
      if (typeof type !== 'string' || !SCALAR_TYPE_NAMES.includes(type)) {
        throw new InvalidOptionError(`${where}.${name}`, type, "'string', 'number', 'bigint' or 'boolean'")
      }
    }
    return pairs.length === 0 ? undefined : pairs
  }

  /**
   * The namespace's generation: `ns.invalidateAll()` bumps it, and keys of generation g > 0 read
   * `service:namespace:vN:g{g}:…`, so entries of older generations are never read again and expire by their TTL.
   * Such keys have one `:` segment more than generation-0 keys of the same template, so no two collide.
   */
  get generation(): number {
    return this.#generation
  }

  setGeneration(generation: number): void {
    this.#generation = generation
    this.#keyPrefix = generation === 0 ? this.prefix : `${this.prefix}g${generation}:`
    this.#literals[0] = this.#keyPrefix + this.#firstLiteral
  }

  /**
   * Builds the full key for `params`.
   * @throws InvalidKeyParamError naming the first missing, undeclared, empty or non-scalar parameter.
   */
  build(params: unknown): string {
    const record = this.record(params)
    const names = this.params
    const literals = this.#literals
    let key = literals[0]!
    for (let i = 0; i < names.length; i++) {
      const name = names[i]!
      const value = record[name]
      const escaped = escapeKeyText(this.text(name, value))
      if (escaped === undefined) throw this.#error(name, 'lone-surrogate', value)
      key += escaped + literals[i + 1]!
    }
    this.checkRecord(record)
    if (this.layout.sharded) return this.#placed(key)
    return key.length > this.#maxKeyLength ? this.#hashed(key) : key
  }

  /**
   * On a Redis Cluster: the key with its fence shard's hash tag after the prefix, `prefix{h.k}:[gN:]rest`. The
   * shard comes from the text after the generation, so an entry keeps its shard across generations.
   */
  #placed(key: string): string {
    const rest = key.slice(this.#keyPrefix.length)
    const head =
      this.prefix + this.layout.shardOfRest(rest).tag + ':' + this.#keyPrefix.slice(this.prefix.length)
    const placed = head + rest
    if (placed.length <= this.#maxKeyLength) return placed
    return head + HASH_MARK + createHash('sha256').update(rest).digest('base64url')
  }

  /**
   * The part of a built key that names the entry in every region: the text after the prefix, the fence shard's
   * hash tag and the generation (each region has its own generation and may have another layout). Undefined for a
   * key not built with this process's current generation.
   */
  relativeKey(key: string): string | undefined {
    const generation = this.#keyPrefix.slice(this.prefix.length)
    if (!this.layout.sharded) {
      return key.startsWith(this.#keyPrefix) ? key.slice(this.#keyPrefix.length) : undefined
    }
    if (!key.startsWith(this.prefix) || key.charCodeAt(this.prefix.length) !== 0x7b) return undefined
    const after = key.indexOf('}', this.prefix.length) + 2
    if (after < 2 || !key.startsWith(generation, after)) return undefined
    return key.slice(after + generation.length)
  }

  /**
   * The write-behind pending-write mark of a built key (`L2Store.markPending`): outside the prefix, so `clear()`
   * leaves it; without the generation, so `invalidateAll()` keeps it; in the key's slot on a cluster (its shard's
   * hash tag), so the store script can read it. Undefined for a key not built with the current generation.
   */
  pendingMark(key: string): string | undefined {
    const relative = this.relativeKey(key)
    if (relative === undefined) return undefined
    const base = this.prefix.slice(0, -1)
    if (!this.layout.sharded) return `${base}#wb:${relative}`
    return `${base}#wb${key.slice(this.prefix.length, key.indexOf('}', this.prefix.length) + 1)}:${relative}`
  }

  /**
   * The keys a relative key (`relativeKey`, maybe from another region) names here, with this process's generation
   * and layout. One key, except for a hashed key on a cluster: the shard came from the unhashed text, so every
   * shard's candidate is named.
   */
  keysForRelative(relative: string): string[] {
    if (!relative.startsWith(HASH_MARK)) {
      const key = this.#keyPrefix + relative
      if (this.layout.sharded) return [this.#placed(key)]
      return [key.length > this.#maxKeyLength ? this.#hashed(key) : key]
    }
    if (!this.layout.sharded) return [this.#keyPrefix + relative]
    const generation = this.#keyPrefix.slice(this.prefix.length)
    return this.layout.shards.map((shard) => this.prefix + shard.tag + ':' + generation + relative)
  }

  /** `params` as a record, or an InvalidArgumentError when it is not an object. */
  record(params: unknown): Record<string, unknown> {
    if (params === null || typeof params !== 'object') {
      throw new InvalidArgumentError(
        'params',
        params,
        `an object of key parameters (${this.params.join(', ') || 'none'})`,
      )
    }
    return params as Record<string, unknown>
  }

  /**
   * The checks of a whole parameter record, once each declared value was read and its text validated: no undeclared
   * parameter, and each value of the type `params` declares (after the per-value checks, so a missing or non-scalar
   * value is reported as such). Both the key builder and the L1 index call it: `'41'` and `41` share a text, so an
   * L1 hit must not skip the type check. Counts what `for…in` sees (own and inherited enumerable properties, as
   * property reads do) without a per-key `hasOwn` call: the hot path pays one loop.
   */
  checkRecord(record: Record<string, unknown>): void {
    let count = 0
    for (const _ in record) count++
    if (count !== this.params.length) this.#throwExtra(record)
    // Out of line: this method is on the L1 hit path, and a small body is what V8 inlines.
    if (this.#types !== undefined) this.#checkValueTypes(record, this.#types)
  }

  #checkValueTypes(
    record: Record<string, unknown>,
    types: readonly (readonly [string, ScalarTypeName])[],
  ): void {
    for (const [name, type] of types) {
      if (typeof record[name] !== type) throw this.#error(name, 'wrong-type', record[name], type)
    }
  }

  /** The text of one parameter value, validated; not yet escaped. */
  text(name: string, value: unknown): string {
    switch (typeof value) {
      case 'string':
        if (value.length === 0) throw this.#error(name, 'empty', value)
        return value
      case 'number':
        if (!Number.isFinite(value)) throw this.#error(name, 'not-finite', value)
        return String(value)
      case 'bigint':
      case 'boolean':
        return String(value)
      case 'undefined':
        throw this.#error(name, 'missing', value)
      default:
        throw this.#error(name, 'not-scalar', value)
    }
  }

  #hashed(key: string): string {
    const digest = createHash('sha256').update(key.slice(this.#keyPrefix.length)).digest('base64url')
    return this.#keyPrefix + HASH_MARK + digest
  }

  #throwExtra(record: Record<string, unknown>): void {
    for (const name in record) {
      if (!this.params.includes(name)) throw this.#error(name, 'extra', record[name])
    }
    // Fewer enumerable properties than parameters, all declared: some were read through non-enumerable
    // properties (getters). Every declared value was already read and validated, so the key is sound.
  }

  #error(
    name: string,
    problem: ConstructorParameters<typeof InvalidKeyParamError>[2],
    value: unknown,
    declared?: ScalarTypeName,
  ) {
    return new InvalidKeyParamError(this.#namespace, name, problem, value, this.params, declared)
  }
}
