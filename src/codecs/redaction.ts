// Field-level redaction: declared paths removed or masked from a value before it is cached anywhere (L1 and L2).
import { InvalidOptionError, RedactionError } from '../errors.js'

/**
 * Paths to remove or mask before a value is cached, so it is never stored and never served: a caller gets the
 * same redacted shape on a hit and on a miss. A path is `.`-separated property names; `name[]` steps into every
 * element of the array at `name`, and a leading `[]` into every element of a top-level array. Paths that do not
 * exist in a value are skipped.
 *
 * Along a path, a class instance (an ORM entity, a DTO) is replaced by a plain object of its own enumerable
 * properties, what JSON writes for it, and redacted as one; an object with a `toJSON` method by what that method
 * returns (a `Date` is left as it is: JSON writes it as a string). A `Map`, `Set`, typed array or other container
 * whose contents have no property names is refused with `RedactionError`, never passed through.
 *
 * @example ['user.ssn', 'cards[].number', '[].email']
 * @example { paths: ['user.ssn'], mask: '***' } // keep the field, replace its value
 */
export type RedactOption = readonly string[] | { readonly paths: readonly string[]; readonly mask?: unknown }

/** What to do inside a value: properties by name, the elements of an array, and whether this node is itself a target. */
interface PathNode {
  /** Where this node is in a value, in path syntax (`cards[]`, `user.address`; '' for the value itself). */
  readonly at: string
  terminal: boolean
  readonly keys: Map<string, PathNode>
  each: PathNode | undefined
}

const NAME = /^[A-Za-z0-9_$-]+$/
const REMOVE: unique symbol = Symbol('remove')

/** A compiled set of redaction paths. `apply` never mutates its input: it copies what it changes, shares the rest. */
export class Redactor {
  readonly paths: readonly string[]
  readonly #root: PathNode = newNode('')
  readonly #mask: unknown
  readonly #option: string

  constructor(option: RedactOption, at: string) {
    const { paths, mask } = Array.isArray(option)
      ? { paths: option as readonly string[], mask: REMOVE }
      : typeof option === 'object' && option !== null && 'paths' in option
        ? { paths: option.paths, mask: 'mask' in option ? option.mask : REMOVE }
        : { paths: undefined, mask: REMOVE }
    if (!Array.isArray(paths) || paths.length === 0) {
      throw new InvalidOptionError(
        at,
        option,
        "a non-empty list of paths such as ['user.ssn', 'cards[].number'], or { paths, mask }",
      )
    }
    for (const path of paths as readonly unknown[]) this.#add(path, at)
    this.paths = Object.freeze([...(paths as readonly string[])])
    this.#mask = mask
    this.#option = at
  }

  /**
   * `value` with every declared path removed (or masked); the same object when no path applied. Class instances
   * along a path come back as plain objects (see `RedactOption`).
   * @throws RedactionError when a path leads into a value redaction cannot walk (a Map, a Set, a typed array...).
   */
  apply<V>(value: V): V {
    return redactNode(value, this.#root, this.#mask, this.#option, true) as V
  }

  #add(path: unknown, at: string): void {
    const expected =
      "`.`-separated property names, each optionally followed by `[]` (e.g. 'user.ssn', 'cards[].number', '[].email')"
    if (typeof path !== 'string' || path.length === 0) throw new InvalidOptionError(at, path, expected)
    let node = this.#root
    const segments = path.split('.')
    segments.forEach((segment, index) => {
      let name = segment
      let arrays = 0
      while (name.endsWith('[]')) {
        name = name.slice(0, -2)
        arrays++
      }
      // A segment is a name, a name with `[]`, or (first segment only) a bare `[]` for a top-level array.
      if (name === '' ? index !== 0 || arrays === 0 : !NAME.test(name))
        throw new InvalidOptionError(at, path, expected)
      if (name !== '') {
        let next = node.keys.get(name)
        if (next === undefined)
          node.keys.set(name, (next = newNode(node.at === '' ? name : `${node.at}.${name}`)))
        node = next
      }
      for (let i = 0; i < arrays; i++) node = node.each ??= newNode(`${node.at}[]`)
    })
    node.terminal = true
  }
}

function newNode(at: string): PathNode {
  return { at, terminal: false, keys: new Map(), each: undefined }
}

function isPlainObject(value: object): value is Record<string, unknown> {
  const proto: unknown = Object.getPrototypeOf(value)
  return proto === Object.prototype || proto === null
}

/** What a container whose contents have no property names is, for `RedactionError`; undefined for other objects. */
function unwalkable(value: object): string | undefined {
  if (value instanceof Map) return 'a Map'
  if (value instanceof Set) return 'a Set'
  if (value instanceof WeakMap) return 'a WeakMap'
  if (value instanceof WeakSet) return 'a WeakSet'
  if (value instanceof Promise) return 'a Promise'
  if (ArrayBuffer.isView(value)) return `a ${value.constructor.name} (binary data)`
  if (value instanceof ArrayBuffer || value instanceof SharedArrayBuffer)
    return 'an ArrayBuffer (binary data)'
  return undefined
}

/**
 * `value` redacted by `node`. `toJsonAllowed` is false for what a `toJSON` method just returned: JSON.stringify
 * calls `toJSON` once per value, not again on its result.
 */
function redactNode(
  value: unknown,
  node: PathNode,
  mask: unknown,
  option: string,
  toJsonAllowed: boolean,
): unknown {
  // A primitive (or a function) holds no property: the path does not exist in this value.
  if (typeof value !== 'object' || value === null) return value
  if (Array.isArray(value)) {
    const each = node.each
    if (each === undefined) return value
    // `list[]` as a whole path: every element goes (the list becomes empty) or is masked.
    if (each.terminal) return mask === REMOVE ? [] : value.map(() => mask)
    let out: unknown[] | undefined
    for (let i = 0; i < value.length; i++) {
      const next = redactNode(value[i], each, mask, option, true)
      if (next !== value[i]) (out ??= value.slice())[i] = next
    }
    return out ?? value
  }
  if (isPlainObject(value)) {
    let out: Record<string, unknown> | undefined
    for (const [name, child] of node.keys) {
      if (!Object.hasOwn(value, name)) continue
      if (child.terminal) {
        out ??= { ...value }
        if (mask === REMOVE) delete out[name]
        else out[name] = mask
        continue
      }
      const next = redactNode(value[name], child, mask, option, true)
      if (next !== value[name]) (out ??= { ...value })[name] = next
    }
    return out ?? value
  }
  // Passing these through would keep what the path names: refuse rather than cache the field.
  const found = unwalkable(value)
  if (found !== undefined) throw new RedactionError(option, node.at, found)
  if (value instanceof String || value instanceof Number || value instanceof Boolean) return value
  // Only `[]` steps from here, and this is no array: the path does not exist in this value.
  if (node.keys.size === 0) return value
  const toJson: unknown = toJsonAllowed ? (value as { toJSON?: unknown }).toJSON : undefined
  if (typeof toJson === 'function') {
    // What JSON writes for it (a Date: a string, which holds no property). Redact that shape.
    const shape: unknown = toJson.call(value, '')
    return typeof shape === 'object' && shape !== null ? redactNode(shape, node, mask, option, false) : value
  }
  // A class instance: its own enumerable properties, as JSON writes them, in a plain object, always (even when no
  // path matched), so neither a getter on its prototype nor a method can hand a redacted field back.
  const plain: Record<string, unknown> = { ...value }
  return redactNode(plain, node, mask, option, false)
}
