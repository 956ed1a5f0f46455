// A namespace's L1 index: one Map level per key parameter, so an L1 hit builds no key string at all.
import type { L1Node } from '../tiers/w-tiny-lfu.js'
import type { KeySchema } from './keys.js'

/** An L1 node of a namespace, remembering where it hangs in the index so it can be unhooked. */
export interface IndexedNode<V> extends L1Node<V> {
  /** The Maps from the root to the level holding this node. */
  path: Map<string | number, unknown>[]
  /** The parameter texts along `path`, one per level. */
  texts: string[]
  /** Epoch ms after which a read takes the slower path: stale, or due for refresh-ahead. */
  refreshAt: number
  /** Reads since the last hot-keys sweep (halved at each sweep). */
  hits: number
  /** A copy of the parameters, for refreshing the entry in the background. */
  params: unknown
  /** The entry's tags (from the namespace's `tags` function), for tag invalidation. */
  tags: readonly string[]
  /** Invalidations may have been missed for it (the bus was down): read as stale until refreshed. */
  suspect: boolean
}

/** One level of the index: child levels (or, at the last level, nodes) by parameter text, and by number alias. */
type Level = Map<string | number, unknown>

/** `ParamIndex.find` after `record`, for one fixed list of levels: the node at the end of the walk, or undefined. */
type Walk = (record: Record<string, unknown>, root: Level, schema: KeySchema) => unknown

/**
 * The number a level's text may also be keyed by: the finite number whose text it is ("7", "-1.5", "1e+21");
 * undefined for any other text ("07", "-0", "Infinity", "x"). For every finite number `v`,
 * `numberAlias(String(v)) === v`. A node inserted with a number value is keyed by that number too, so that the same
 * number finds it without `String(value)` (a number-string cache lookup, then a Map lookup by a string: measured
 * 16.4 ns against 5.5 ns by the number itself). One inserted with a numeric string is not (an id read from a URL
 * would pay the alias's memory for nothing): a number then finds it by its text, one lookup later.
 */
export function numberAlias(text: string): number | undefined {
  const n = Number(text)
  return Number.isFinite(n) && String(n) === text ? n : undefined
}

/**
 * The generic walk of `find`, written out for one list of levels, so that each parameter is read with a constant
 * property name. In the generic loop one `record[name]` site sees every name and V8 treats it as megamorphic (a
 * hash lookup per read): measured on 4 levels, 27.6 ns against 6.6 ns for the reads alone, about 8% of an awaited
 * L1 hit. The text is built only from JSON string literals of the names (any string is safe there) and the steps of
 * the generic loop, in its order: read a level's value, look it up (a finite number by itself, then by its text),
 * stop at the first miss, then check the whole record. Undefined where the host forbids code generation from
 * strings (`node --disallow-code-generation-from-strings`): `find` then walks generically, with the same results.
 */
function compileWalk(levels: readonly string[]): Walk | undefined {
  const steps = levels.map((name) => {
    const literal = JSON.stringify(name)
    return (
      `v = record[${literal}]; ` +
      `if (typeof v === 'string' && v.length > 0) n = n.get(v); ` +
      `else if (typeof v === 'number' && v - v === 0) n = n.get(v) ?? n.get(String(v)); ` +
      `else n = n.get(schema.text(${literal}, v)); ` +
      `if (n === undefined) return undefined;`
    )
  })
  const body = `'use strict'; let v, n = root; ${steps.join(' ')} schema.checkRecord(record); return n`
  try {
    // eslint-disable-next-line @typescript-eslint/no-implied-eval -- see above: names enter only as JSON literals
    return new Function('record', 'root', 'schema', body) as Walk
  } catch {
    return undefined
  }
}

/**
 * Nodes by parameter texts: level i is keyed by the text of parameter `schema.levels[i]`. Looking up a freshly
 * concatenated key string costs a hash of the whole string on every call (measured: ~0.7 µs for a 60-character
 * key); walking Maps keyed by the parameters' own strings, whose hashes V8 caches in the strings themselves, costs
 * a few tens of nanoseconds. A level inserted with a number value is keyed by that number too (`numberAlias`).
 */
export class ParamIndex<V> {
  readonly #schema: KeySchema
  readonly #levels: readonly string[]
  readonly #root: Level = new Map()
  /** The only node of a namespace without parameters. */
  #single: IndexedNode<V> | undefined

  /** The walk compiled for this schema's levels (see `compileWalk`); undefined: `find` walks generically. */
  readonly #walk: Walk | undefined

  /** @param options.compile false walks generically (for tests that compare both walks). */
  constructor(schema: KeySchema, options: { readonly compile?: boolean } = {}) {
    this.#schema = schema
    this.#levels = schema.levels
    this.#walk =
      options.compile === false || this.#levels.length === 0 ? undefined : compileWalk(this.#levels)
  }

  /** Whether `find` uses a compiled walk (false where the host forbids code generation from strings). */
  get compiled(): boolean {
    return this.#walk !== undefined
  }

  /**
   * The node for `params`, validating each parameter on the way. Undefined as soon as a level misses: the caller
   * then takes the slow path, which validates all parameters and builds the keys.
   * @throws InvalidKeyParamError for an invalid parameter met on the way, or an undeclared one once all matched.
   */
  find(params: unknown): IndexedNode<V> | undefined {
    const record = this.#schema.record(params)
    if (this.#walk !== undefined)
      return this.#walk(record, this.#root, this.#schema) as IndexedNode<V> | undefined
    const levels = this.#levels
    if (levels.length === 0) {
      this.#schema.checkRecord(record)
      return this.#single
    }
    let level: Level = this.#root
    const last = levels.length - 1
    for (let i = 0; ; i++) {
      const name = levels[i]!
      const value = record[name]
      // Non-empty strings are the common case and their own text, finite numbers looked up by themselves first:
      // skip the general check.
      const next =
        typeof value === 'string' && value.length > 0
          ? level.get(value)
          : typeof value === 'number' && value - value === 0
            ? (level.get(value) ?? level.get(String(value)))
            : level.get(this.#schema.text(name, value))
      if (next === undefined) return undefined
      if (i === last) {
        this.#schema.checkRecord(record)
        return next as IndexedNode<V>
      }
      level = next as Level
    }
  }

  /** Hangs `node` at the place of `params` (already validated), replacing nothing: the caller removed any old one. */
  insert(params: unknown, node: IndexedNode<V>): void {
    const record = params as Record<string, unknown>
    const levels = this.#levels
    if (levels.length === 0) {
      this.#single = node
      return
    }
    let level = this.#root
    const last = levels.length - 1
    for (let i = 0; i < levels.length; i++) {
      const value = record[levels[i]!]
      const text = this.#schema.text(levels[i]!, value)
      node.path.push(level)
      node.texts.push(text)
      let child: unknown = node
      if (i < last) {
        child = level.get(text)
        if (child === undefined) {
          child = new Map()
          level.set(text, child)
        }
      } else {
        level.set(text, node)
      }
      // A number value: its own key too, to the same child (`numberAlias`).
      if (typeof value === 'number') level.set(value, child)
      if (i < last) level = child as Level
    }
  }

  /** Unhooks `node`, and every Map left empty above it. */
  remove(node: IndexedNode<V>): void {
    if (this.#levels.length === 0) {
      if (this.#single === node) this.#single = undefined
      return
    }
    const { path, texts } = node
    let i = path.length - 1
    if (path[i]?.get(texts[i]!) !== node) return
    deleteText(path[i]!, texts[i]!)
    while (i > 0 && path[i]!.size === 0) {
      i--
      deleteText(path[i]!, texts[i]!)
    }
  }

  /** Every node, for clearing the namespace. */
  *nodes(): IterableIterator<IndexedNode<V>> {
    if (this.#single !== undefined) yield this.#single
    const depth = this.#levels.length
    function* walk(level: Level, d: number): IterableIterator<IndexedNode<V>> {
      for (const [text, child] of level) {
        // Each child once: under its text, not again under its number alias.
        if (typeof text !== 'string') continue
        if (d === depth - 1) yield child as IndexedNode<V>
        else yield* walk(child as Level, d + 1)
      }
    }
    if (depth > 0) yield* walk(this.#root, 0)
  }

  clear(): void {
    this.#root.clear()
    this.#single = undefined
  }
}

/** Unhooks what hangs in `level` under `text`, and under its number alias if it has one. */
function deleteText(level: Level, text: string): void {
  level.delete(text)
  const alias = numberAlias(text)
  if (alias !== undefined) level.delete(alias)
}
