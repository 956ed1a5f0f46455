// The one rule for keys of options objects: a key stratacache does not take is refused, naming the closest known one.
import { InvalidOptionError, UnknownOptionError } from '../errors.js'

/**
 * Every key of an options type, as an object literal the compiler checks against the type in both directions:
 * `{ ttl: true, … } as const satisfies OptionKeys<NamespaceOptions>` fails to compile when the interface gains a key
 * the list lacks, or the list names a key the interface does not have.
 */
export type OptionKeys<T> = { readonly [K in keyof Required<T>]: true }

/** Where an options object was given, for `rejectUnknown`'s error. */
export interface OptionPlace {
  /** Who was given the object, for people: `createCache()`, `namespace "products"`, `redisStore()`. */
  readonly where: string
  /** The path the place's other option errors use for a key (`timeouts.soft` → `products.timeouts.soft`). */
  readonly at: (path: string) => string
}

/**
 * Refuses `object` unless it is a plain object whose own keys are all in `known`. `group` is the object's path
 * inside the place (`'timeouts'`), or `''` for the top-level options; `hint`, a sentence added to the message.
 * @throws UnknownOptionError naming the first unknown key, with the closest known one when it is close.
 * @throws InvalidOptionError when `object` is not an object (null, an array, a string…).
 */
export function rejectUnknown(
  object: unknown,
  known: Readonly<Record<string, true>>,
  place: OptionPlace,
  group = '',
  hint?: string,
): void {
  const path = (key: string) => (group === '' ? key : `${group}.${key}`)
  if (object === null || typeof object !== 'object' || Array.isArray(object)) {
    throw new InvalidOptionError(place.at(group), object, `an object (in ${place.where})`)
  }
  const names = Object.keys(known)
  for (const key of Object.keys(object)) {
    if (Object.hasOwn(known, key)) continue
    const closest = closestName(key, names)
    throw new UnknownOptionError(
      place.where,
      path(key),
      place.at(path(key)),
      (object as Record<string, unknown>)[key],
      names,
      closest === undefined ? undefined : path(closest),
      { group, hint },
    )
  }
}

/**
 * The name in `names` closest to `typo` by edit distance (case-insensitive; a swap of two neighbouring letters counts
 * as one edit), or undefined when even the closest needs more edits than a third of the longer name's letters (one
 * edit is always allowed, but never as many edits as the typo has letters). The first of equally close names wins.
 * @example closestName('sfot', ['soft', 'hard']) // 'soft'
 */
export function closestName(typo: string, names: readonly string[]): string | undefined {
  let best: string | undefined
  let bestDistance = Infinity
  for (const name of names) {
    const distance = editDistance(typo.toLowerCase(), name.toLowerCase())
    const allowed = Math.max(1, Math.floor(Math.max(typo.length, name.length) / 3))
    // `distance < typo.length`: a name that shares nothing with the typo is a guess, not a suggestion.
    if (distance <= allowed && distance < typo.length && distance < bestDistance) {
      best = name
      bestDistance = distance
    }
  }
  return best
}

/** Optimal string alignment distance: insertions, deletions, substitutions and adjacent swaps, each one edit. */
function editDistance(a: string, b: string): number {
  // Three rows of the dynamic programming table: the swap looks two rows back.
  let before = new Array<number>(b.length + 1).fill(0)
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j)
  let current = new Array<number>(b.length + 1).fill(0)
  for (let i = 1; i <= a.length; i++) {
    current[0] = i
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1
      let d = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + cost)
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        d = Math.min(d, before[j - 2]! + 1)
      current[j] = d
    }
    const reused = before
    before = previous
    previous = current
    current = reused
  }
  return previous[b.length]!
}
