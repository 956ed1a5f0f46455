// Field-level redaction: declared paths removed or masked from a value before it is cached anywhere (L1 and L2).
import { InvalidOptionError } from '../errors.js'

/**
 * Paths to remove or mask before a value is cached, so it is never stored and never served: a caller gets the
 * same redacted shape on a hit and on a miss. A path is `.`-separated property names; `name[]` steps into every
 * element of the array at `name`, and a leading `[]` into every element of a top-level array. Paths that do not
 * exist in a value are skipped.
 *
 * @example ['user.ssn', 'cards[].number', '[].email']
 * @example { paths: ['user.ssn'], mask: '***' } // keep the field, replace its value
 */
export type RedactOption = readonly string[] | { readonly paths: readonly string[]; readonly mask?: unknown }

/** What to do inside a value: properties by name, the elements of an array, and whether this node is itself a target. */
interface PathNode {
  terminal: boolean
  readonly keys: Map<string, PathNode>
  each: PathNode | undefined
}

const NAME = /^[A-Za-z0-9_$-]+$/
const REMOVE: unique symbol = Symbol('remove')

/** A compiled set of redaction paths. `apply` never mutates its input: it copies what it changes, shares the rest. */
export class Redactor {
  readonly paths: readonly string[]
  readonly #root: PathNode = newNode()
  readonly #mask: unknown

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
  }

  /** `value` with every declared path removed (or masked); the same object when no path applied. */
  apply<V>(value: V): V {
    return redactNode(value, this.#root, this.#mask) as V
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
        if (next === undefined) node.keys.set(name, (next = newNode()))
        node = next
      }
      for (let i = 0; i < arrays; i++) node = node.each ??= newNode()
    })
    node.terminal = true
  }
}

function newNode(): PathNode {
  return { terminal: false, keys: new Map(), each: undefined }
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null) return false
  const proto: unknown = Object.getPrototypeOf(value)
  return proto === Object.prototype || proto === null
}

function redactNode(value: unknown, node: PathNode, mask: unknown): unknown {
  if (Array.isArray(value)) {
    const each = node.each
    if (each === undefined) return value
    // `list[]` as a whole path: every element goes (the list becomes empty) or is masked.
    if (each.terminal) return mask === REMOVE ? [] : value.map(() => mask)
    let out: unknown[] | undefined
    for (let i = 0; i < value.length; i++) {
      const next = redactNode(value[i], each, mask)
      if (next !== value[i]) (out ??= value.slice())[i] = next
    }
    return out ?? value
  }
  if (!isPlainObject(value) || node.keys.size === 0) return value
  let out: Record<string, unknown> | undefined
  for (const [name, child] of node.keys) {
    if (!Object.hasOwn(value, name)) continue
    if (child.terminal) {
      out ??= { ...value }
      if (mask === REMOVE) delete out[name]
      else out[name] = mask
      continue
    }
    const next = redactNode(value[name], child, mask)
    if (next !== value[name]) (out ??= { ...value })[name] = next
  }
  return out ?? value
}
