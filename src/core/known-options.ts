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
    // The top level has no path of its own (`at('')` is '' or `redisStore.`): it is named by its place.
    if (group === '') throw new InvalidOptionError(`${place.where} options`, object, 'an object')
    throw new InvalidOptionError(place.at(group), object, `an object (in ${place.where})`)
  }
  const names = Object.keys(known)
  for (const key of Object.keys(object)) {
    if (Object.hasOwn(known, key)) continue
    // A name from another library first (`redis`, `store`, `stdTTL`…): edit distance cannot map it to ours. Then a
    // typo of one of ours; then a typo of such a name (`meterProvder`), taken as that name.
    let alias = aliasFor(key, known)
    let closest = alias === undefined ? closestName(key, names) : alias.to
    if (alias === undefined && closest === undefined) {
      const near = closestName(key, ALIAS_NAMES)
      alias = near === undefined ? undefined : aliasFor(near, known)
      closest = alias?.to
    }
    const hints = [alias?.hint, hint].filter((h) => h !== undefined)
    throw new UnknownOptionError(
      place.where,
      path(key),
      place.at(path(key)),
      (object as Record<string, unknown>)[key],
      names,
      closest === undefined ? undefined : path(closest),
      { group, hint: hints.length === 0 ? undefined : hints.join(' '), elsewhere: alias?.elsewhere },
    )
  }
}

/** How a store is given, for the hints of names that mean it. */
const L2_HINT =
  "It takes a store: `l2: redisStore({ url: 'redis://127.0.0.1:6379' })` from `stratacache/redis` (or " +
  '`ioredisStore({ client })` from `stratacache/ioredis`).'
const TTL_HINT =
  "Entry lifetimes are set per namespace: `cache.namespace('products', { key: 'product:{id}', ttl: '5m', load })`."
const METER_HINT =
  "It takes a meter: `meter: meterProvider.getMeter('stratacache')` (by default, the global meter provider's)."
const TRACER_HINT =
  "It takes a tracer: `tracer: tracerProvider.getTracer('stratacache')` (by default, the global tracer provider's)."

/**
 * Names users of other caches, Redis clients and OpenTelemetry instrumentations (ioredis, node-redis, cache-manager,
 * keyv, bentocache, lru-cache, node-cache, `registerInstrumentations`) write for one of ours. Each maps to candidates
 * tried in order: the first whose first segment this object takes is suggested (`redis` is `l2` in `createCache()`,
 * `url` in `redisStore()`). `requires`: a key the object must also take for the candidates to fit (a group of the
 * same name elsewhere may lack the setting: namespaces have `timeouts` too, without `l2`). `elsewhere` is said when
 * none fits: the setting exists, but not in this object. `hint` is said with the suggestion.
 */
const ALIASES: Readonly<
  Record<
    string,
    {
      readonly to: readonly string[]
      readonly requires?: string
      readonly elsewhere?: string
      readonly hint?: string
    }
  >
> = {
  // The Redis connection: `l2` in createCache(), `url` in a store.
  redis: { to: ['l2', 'url'] },
  redisurl: { to: ['l2', 'url'] },
  url: { to: ['l2'] },
  uri: { to: ['url', 'l2'] },
  connection: { to: ['l2', 'url'] },
  connectionstring: { to: ['url', 'l2'] },
  port: { to: ['url', 'l2'] },
  db: { to: ['url', 'l2'] },
  database: { to: ['url', 'l2'] },
  client: { to: ['l2'] },
  redisclient: { to: ['client', 'l2'] },
  ioredis: { to: ['client', 'l2'] },
  store: { to: ['l2'] },
  stores: { to: ['l2'] },
  driver: { to: ['l2'] },
  l2driver: { to: ['l2'] },
  remote: { to: ['l2'] },
  secondary: { to: ['l2'] },
  // The key prefix: the cache's `service`.
  prefix: { to: ['service'], elsewhere: 'The key prefix is `createCache({ service })`.' },
  keyprefix: { to: ['service'], elsewhere: 'The key prefix is `createCache({ service })`.' },
  name: { to: ['service'] },
  // The in-process tier.
  memory: { to: ['l1'] },
  l1driver: { to: ['l1'] },
  lru: { to: ['l1'] },
  max: { to: ['l1.maxEntries', 'maxEntries'] },
  maxsize: { to: ['l1.maxBytes', 'maxBytes'] },
  maxitems: { to: ['l1.maxEntries', 'maxEntries'] },
  maxkeys: { to: ['l1.maxEntries', 'maxEntries'] },
  // Lifetimes: namespace options.
  ttl: { to: [], elsewhere: TTL_HINT },
  defaultttl: { to: ['ttl'], elsewhere: TTL_HINT },
  stdttl: { to: ['ttl'], elsewhere: TTL_HINT },
  expire: { to: ['ttl'], elsewhere: TTL_HINT },
  expires: { to: ['ttl'], elsewhere: TTL_HINT },
  expiresin: { to: ['ttl'], elsewhere: TTL_HINT },
  expiration: { to: ['ttl'], elsewhere: TTL_HINT },
  maxage: { to: ['ttl'], elsewhere: TTL_HINT },
  grace: { to: ['staleFor'], elsewhere: 'Serving stale values is `staleFor`, a namespace option.' },
  graceperiod: { to: ['staleFor'], elsewhere: 'Serving stale values is `staleFor`, a namespace option.' },
  stalettl: { to: ['staleFor'], elsewhere: 'Serving stale values is `staleFor`, a namespace option.' },
  allowstale: { to: ['staleFor'], elsewhere: 'Serving stale values is `staleFor`, a namespace option.' },
  // The loader.
  factory: { to: ['load'] },
  fetch: { to: ['load'] },
  fetcher: { to: ['load'] },
  fetchmethod: { to: ['load'] },
  loader: { to: ['load'] },
  getter: { to: ['load'] },
  resolver: { to: ['load'] },
  // Timeouts.
  timeout: { to: ['timeouts'] },
  commandtimeout: {
    to: ['timeouts.l2'],
    requires: 'service',
    elsewhere: "Redis calls are bounded by a cache option: `createCache({ timeouts: { l2: '100ms' } })`.",
  },
  hardtimeout: { to: ['timeouts.hard'] },
  softtimeout: { to: ['timeouts.soft'] },
  locktimeout: { to: ['lock.wait'] },
  writetimeout: {
    to: ['timeouts.write'],
    hint: "With writeStrategy 'write-behind' the flusher's source calls are bounded by `writeBehind.writeTimeout`.",
  },
  breaker: { to: ['circuitBreaker'] },
  // OpenTelemetry: `openTelemetry(cache, { meter, tracer })` takes what a provider makes, not the provider.
  meterprovider: { to: ['meter'], hint: METER_HINT },
  tracerprovider: { to: ['tracer'], hint: TRACER_HINT },
}
const ALIAS_NAMES = Object.keys(ALIASES)

/** The alias of `key` (case-insensitive) that fits `known`: the suggestion, and a sentence about it. */
function aliasFor(
  key: string,
  known: Readonly<Record<string, true>>,
): { to: string | undefined; hint: string | undefined; elsewhere: string | undefined } | undefined {
  const alias = ALIASES[key.toLowerCase()]
  if (alias === undefined || !Object.hasOwn(ALIASES, key.toLowerCase())) return undefined
  const fits = alias.requires === undefined || Object.hasOwn(known, alias.requires)
  const to = fits ? alias.to.find((name) => Object.hasOwn(known, name.split('.')[0]!)) : undefined
  if (to !== undefined) {
    return { to, hint: alias.hint ?? (to === 'l2' ? L2_HINT : undefined), elsewhere: undefined }
  }
  return alias.elsewhere === undefined
    ? undefined
    : { to: undefined, hint: undefined, elsewhere: alias.elsewhere }
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
