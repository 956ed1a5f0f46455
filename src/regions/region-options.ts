// The `region` and `regions` options of createCache(): which region this process is in, and its peer regions' L2s.
import type { Duration } from '../core/duration.js'
import { rejectUnknown, type OptionKeys, type OptionPlace } from '../core/known-options.js'
import { InvalidOptionError } from '../errors.js'
import type { L2Store } from '../tiers/l2-store.js'

/** One other region: its name and a store connected to its L2 (the relay reads that region's outbox from it). */
export interface RegionPeer {
  /** The peer region's name, as its own processes give it in `region`. @example 'us-east' */
  region: string
  /** A store on the peer region's L2 (a Redis or Redis Cluster), e.g. `redisStore({ url: 'rediss://us-east…' })`. */
  l2: L2Store
}

/**
 * Several regions, one L2 each: every write and invalidation made here is appended to this region's outbox (a Redis
 * stream per peer, in this region's L2) and relayed to every peer's L2 and processes; the peers' are relayed here.
 * See docs/consistency.md, "Regions".
 * @example { peers: [{ region: 'us-east', l2: redisStore({ url: usEastUrl }) }], heartbeat: '1s', splitAfter: '5s' }
 */
export interface RegionsOptions {
  /** The other regions. Every region lists all the others. */
  peers: RegionPeer[]
  /**
   * How often the relay of this region sends a heartbeat through its outbox and reads the peers' outboxes. Keep it
   * well under the smallest `maxStaleness` of a bounded namespace (a third of it or less).
   * @default '1s'
   */
  heartbeat?: Duration
  /**
   * A peer not heard from (no entry, no heartbeat) for this long is split from this region: strong namespaces read
   * through, eventual ones count what they serve. At least twice `heartbeat`.
   * @default '5s'
   */
  splitAfter?: Duration
  /**
   * Whether this process may relay (it competes for the region's relay lease). `false` for processes that should
   * only read the split state, e.g. when a `stratacache relay` process or a few chosen processes relay.
   * @default true
   */
  relay?: boolean
  /** Outbox entries read and applied per batch. @default 100 */
  batchSize?: number
  /**
   * The most entries each outbox stream keeps (`XADD … MAXLEN ~`: Redis trims whole nodes, so a stream may hold a
   * few more). A peer away long enough for its outbox to pass it loses the oldest entries it has not read; its relay
   * notices when it is back and invalidates every namespace it declares (docs/consistency.md, "Outbox bound").
   * @default 100_000
   * @example { peers, outboxMaxLength: 1_000_000 } // about a day of writes at 10 a second, per peer
   */
  outboxMaxLength?: number
}

export interface ResolvedRegions {
  readonly region: string
  readonly peers: readonly { readonly region: string; readonly l2: L2Store }[]
  readonly heartbeatMs: number
  readonly splitAfterMs: number
  readonly relay: boolean
  readonly batchSize: number
  readonly outboxMaxLength: number
}

export const REGIONS_OPTION_KEYS = {
  peers: true,
  heartbeat: true,
  splitAfter: true,
  relay: true,
  batchSize: true,
  outboxMaxLength: true,
} as const satisfies OptionKeys<RegionsOptions>

const PEER_OPTION_KEYS = { region: true, l2: true } as const satisfies OptionKeys<RegionPeer>

/** Region names go into Redis keys (inside a hash tag) and metric labels. */
const REGION_PATTERN = /^[A-Za-z0-9_.-]{1,64}$/

/**
 * Resolves `region` and `regions`. Both or neither: a region without peers relays nothing, and peers without a
 * region name cannot be told apart from this one.
 */
export function resolveRegions(
  region: unknown,
  regions: RegionsOptions | undefined,
  hasL2: boolean,
  place: OptionPlace,
  duration: (value: unknown, option: string) => number,
): ResolvedRegions | undefined {
  if (region === undefined && regions === undefined) return undefined
  const nameExpected = "1 to 64 characters of A-Z, a-z, 0-9, `_`, `.` or `-`, e.g. 'eu-west'"
  if (typeof region !== 'string' || !REGION_PATTERN.test(region)) {
    throw new InvalidOptionError('region', region, `${nameExpected} (with \`regions\`, this region's name)`)
  }
  if (regions === null || typeof regions !== 'object') {
    throw new InvalidOptionError(
      'regions',
      regions,
      "an object such as { peers: [{ region: 'us-east', l2: redisStore({ url }) }] } (with `region`)",
    )
  }
  rejectUnknown(regions, REGIONS_OPTION_KEYS, place, 'regions')
  if (!hasL2) {
    throw new InvalidOptionError(
      'l2',
      undefined,
      'an L2 store: each region relays through its own L2 (`regions`)',
    )
  }
  const { peers } = regions
  if (!Array.isArray(peers) || peers.length === 0) {
    throw new InvalidOptionError(
      'regions.peers',
      peers,
      "a non-empty array of { region: 'us-east', l2: store }",
    )
  }
  const seen = new Set<string>([region])
  const resolvedPeers = peers.map((peer: unknown, i) => {
    const at = `regions.peers[${i}]`
    if (peer === null || typeof peer !== 'object') {
      throw new InvalidOptionError(
        at,
        peer,
        "an object such as { region: 'us-east', l2: redisStore({ url }) }",
      )
    }
    rejectUnknown(peer, PEER_OPTION_KEYS, place, at)
    const { region: name, l2 } = peer as Partial<RegionPeer>
    if (typeof name !== 'string' || !REGION_PATTERN.test(name)) {
      throw new InvalidOptionError(`${at}.region`, name, nameExpected)
    }
    if (seen.has(name)) {
      throw new InvalidOptionError(
        `${at}.region`,
        name,
        name === region ? 'a region other than this one (`region`)' : 'a region listed once',
      )
    }
    seen.add(name)
    if (l2 === null || typeof l2 !== 'object' || typeof l2.queueRead !== 'function') {
      throw new InvalidOptionError(`${at}.l2`, l2, "a store on that region's L2, e.g. redisStore({ url })")
    }
    return Object.freeze({ region: name, l2 })
  })
  const heartbeatMs = duration(regions.heartbeat ?? 1_000, 'regions.heartbeat')
  const splitAfterMs = duration(regions.splitAfter ?? 5_000, 'regions.splitAfter')
  if (splitAfterMs < 2 * heartbeatMs) {
    throw new InvalidOptionError(
      'regions.splitAfter',
      regions.splitAfter,
      `at least twice regions.heartbeat (${heartbeatMs} ms): one late heartbeat must not count as a split`,
    )
  }
  const relay = regions.relay ?? true
  if (typeof relay !== 'boolean') throw new InvalidOptionError('regions.relay', relay, 'true or false')
  const batchSize = regions.batchSize ?? 100
  if (!Number.isSafeInteger(batchSize) || batchSize < 1 || batchSize > 10_000) {
    throw new InvalidOptionError('regions.batchSize', batchSize, 'a whole number from 1 to 10,000')
  }
  const outboxMaxLength = regions.outboxMaxLength ?? 100_000
  if (!Number.isSafeInteger(outboxMaxLength) || outboxMaxLength < 1 || outboxMaxLength > 1_000_000_000) {
    throw new InvalidOptionError(
      'regions.outboxMaxLength',
      outboxMaxLength,
      'a whole number of entries from 1 to 1,000,000,000 (the most each outbox stream keeps)',
    )
  }
  return Object.freeze({
    region,
    peers: Object.freeze(resolvedPeers),
    heartbeatMs,
    splitAfterMs,
    relay,
    batchSize,
    outboxMaxLength,
  })
}
