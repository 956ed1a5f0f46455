// The region-split drill's two regions: a Redis each, the links (TCP proxies) through which each region's relay
// reaches the other's Redis and which the drill cuts, and the drill's own raw reads of both regions (outbox backlog,
// the versions their L2 entries hold against the source's), which its verdict rests on.
import { createClient, RESP_TYPES } from 'redis'
import { jsonSerializer } from '../../codecs/serializer.js'
import { decodeEnvelope } from '../../codecs/envelope.js'
import { regionKeys } from '../../regions/region-relay.js'
import type { RedisServer } from './redis-server.js'
import { startProxy, type TcpProxy } from './tcp-proxy.js'
import { sourceKey } from './workload.js'

/** The two regions: the writer runs in the first, readers in both. */
export const REGION_NAMES = ['a', 'b'] as const

export interface DrillRegions {
  /** Each region's own L2, in REGION_NAMES order. */
  readonly l2Urls: readonly [string, string]
  /** What each region's relay dials to reach the other region's Redis: `peerUrls[i]` is the link to region 1 − i. */
  readonly peerUrls: readonly [string, string]
  /** Resets every open connection between the regions and refuses new ones (both directions). */
  cut(): Promise<void>
  heal(): Promise<void>
  close(): Promise<void>
}

/**
 * Starts region b's Redis (region a's is `a`) and one link in front of each: a region's own processes use their
 * Redis directly, only the other region's relay goes through the link.
 */
export async function startRegions(a: RedisServer, own: () => Promise<RedisServer>): Promise<DrillRegions> {
  const b = await own()
  const links: TcpProxy[] = []
  try {
    links.push(await startProxy(a.port), await startProxy(b.port))
  } catch (error) {
    await Promise.all(links.map((link) => link.close()))
    throw error
  }
  const [toA, toB] = links as [TcpProxy, TcpProxy]
  return {
    l2Urls: [a.url, b.url],
    peerUrls: [toB.url, toA.url],
    cut: async () => void (await Promise.all(links.map((link) => link.cut()))),
    heal: async () => void (await Promise.all(links.map((link) => link.heal()))),
    close: async () => void (await Promise.all(links.map((link) => link.close()))),
  }
}

/** A drilled namespace as the raw reads see it: its L2 key prefix (under the drill's service) and schema version. */
export interface RawNamespace {
  readonly name: string
  readonly prefix: string
  readonly schemaVersion: number
}

/** What the drill read itself the instant before it healed the link. */
export interface HealSnapshot {
  readonly at: number
  /** Invalidations (not heartbeats) waiting in the outboxes, per namespace, both directions summed. */
  readonly backlog: number[]
  /** Per outbox stream (`[region index, stream key]`), the id of its last entry at the heal ('' when empty). */
  readonly lastIds: readonly (readonly [number, string, string])[]
  /** Per namespace, the source's version of every key written so far, by cache key (= its L2 key). */
  readonly versions: Map<string, number>[]
}

/** When the regions converged after the heal, by the drill's own reads. */
export interface RawConvergence {
  /** When the backlog counted at the heal had left both outboxes (relayed, acknowledged and deleted); null: not in time. */
  readonly backlogDrainedAt: number | null
  /** Per namespace: L2 entries (both regions) older than the source's version at the heal, at the first probe. */
  readonly staleEntriesAtHeal: number[]
  /** Per namespace: entries the probes found and decoded (0 would mean the check looked at nothing). */
  readonly entriesChecked: number[]
  /** Per namespace: the first probe at which no entry in either region was older than the heal's version. */
  readonly l2AgreedAt: (number | null)[]
  readonly probes: number
}

function textClient(url: string) {
  return createClient({ url, socket: { reconnectStrategy: false } })
}
type TextClient = ReturnType<typeof textClient>

async function connect(url: string): Promise<TextClient> {
  const client = textClient(url)
  client.on('error', () => {})
  await client.connect()
  return client
}

/** Raw connections to both regions' Redis and to the source, for the snapshot and the convergence probes. */
export class RawRegions {
  readonly #regions: TextClient[]
  readonly #source: TextClient
  readonly #service: string
  readonly #namespaces: readonly RawNamespace[]

  private constructor(
    regions: TextClient[],
    source: TextClient,
    service: string,
    ns: readonly RawNamespace[],
  ) {
    this.#regions = regions
    this.#source = source
    this.#service = service
    this.#namespaces = ns
  }

  static async open(
    l2Urls: readonly string[],
    sourceUrl: string,
    service: string,
    namespaces: readonly RawNamespace[],
  ): Promise<RawRegions> {
    const clients: TextClient[] = []
    try {
      for (const url of [...l2Urls, sourceUrl]) clients.push(await connect(url))
    } catch (error) {
      for (const client of clients) client.destroy()
      throw error
    }
    const source = clients.pop()!
    return new RawRegions(clients, source, service, namespaces)
  }

  close(): void {
    for (const client of [...this.#regions, this.#source]) client.destroy()
  }

  #namespaceOf(key: string): number {
    return this.#namespaces.findIndex((ns) => key.startsWith(ns.prefix))
  }

  /** The outbox backlog and the source's versions, read just before the heal. */
  async snapshot(): Promise<HealSnapshot> {
    const at = Date.now()
    const backlog = this.#namespaces.map(() => 0)
    const lastIds: [number, string, string][] = []
    for (const [i, client] of this.#regions.entries()) {
      const from = REGION_NAMES[i]!
      const to = REGION_NAMES[1 - i]!
      const stream = regionKeys(this.#service, from).outbox(to)
      const entries = (await client.xRange(stream, '-', '+')) ?? []
      for (const entry of entries) {
        const fields = entry.message as Record<string, string>
        if (fields.k === 'hb') continue
        const ns = this.#namespaces.findIndex((n) => n.name === fields.n)
        if (ns >= 0) backlog[ns]!++
      }
      lastIds.push([i, stream, entries.at(-1)?.id ?? ''])
    }
    const versions = this.#namespaces.map(() => new Map<string, number>())
    const prefix = sourceKey('')
    for await (const batch of this.#source.scanIterator({
      MATCH: `${prefix}${this.#service}:*`,
      COUNT: 1_000,
    })) {
      for (const key of batch) {
        const cacheKey = key.slice(prefix.length)
        const ns = this.#namespaceOf(cacheKey)
        if (ns < 0) continue
        versions[ns]!.set(cacheKey, Number((await this.#source.get(key)) ?? 0))
      }
    }
    return { at, backlog, lastIds, versions }
  }

  /**
   * Probes both regions every `everyMs` until the backlog counted at the heal is drained and no L2 entry of a written
   * key is older than the source's version at the heal, or until `deadline` (epoch ms). At most `maxProbes` probes.
   */
  async watch(
    snapshot: HealSnapshot,
    deadline: number,
    everyMs = 25,
    maxProbes = 2_000,
  ): Promise<RawConvergence> {
    const n = this.#namespaces.length
    const staleEntriesAtHeal = Array.from({ length: n }, () => 0)
    const entriesChecked = Array.from({ length: n }, () => 0)
    const l2AgreedAt: (number | null)[] = Array.from({ length: n }, () => null)
    let backlogDrainedAt: number | null = null
    let probes = 0
    while (probes < maxProbes && Date.now() < deadline) {
      const at = Date.now()
      if (backlogDrainedAt === null && (await this.#drained(snapshot))) backlogDrainedAt = at
      for (let ns = 0; ns < n; ns++) {
        if (l2AgreedAt[ns] !== null) continue
        const behind = await this.#behind(ns, snapshot.versions[ns]!, entriesChecked)
        if (probes === 0) staleEntriesAtHeal[ns] = behind
        if (behind === 0) l2AgreedAt[ns] = at
      }
      probes++
      if (backlogDrainedAt !== null && l2AgreedAt.every((t) => t !== null)) break
      await new Promise((resolve) => setTimeout(resolve, everyMs))
    }
    return { backlogDrainedAt, staleEntriesAtHeal, entriesChecked, l2AgreedAt, probes }
  }

  /** Whether every entry the outboxes held at the heal has left them (the relay deletes what it acknowledged). */
  async #drained(snapshot: HealSnapshot): Promise<boolean> {
    for (const [i, stream, lastId] of snapshot.lastIds) {
      if (lastId === '') continue
      const left = await this.#regions[i]!.xRange(stream, '-', lastId, { COUNT: 1 })
      if (left !== null && left.length > 0) return false
    }
    return true
  }

  /** Entries of the namespace, in either region's L2, older than the source's version at the heal. */
  async #behind(ns: number, versions: Map<string, number>, checked: number[]): Promise<number> {
    const { schemaVersion } = this.#namespaces[ns]!
    let behind = 0
    for (const client of this.#regions) {
      const bytes = client.withTypeMapping({ [RESP_TYPES.BLOB_STRING]: Buffer })
      for (const [key, version] of versions) {
        const raw = await bytes.get(key)
        if (raw === null) continue
        const decoded = decodeEnvelope<{ drillVersion?: unknown }>(raw, schemaVersion, jsonSerializer)
        if (!decoded.ok) continue
        checked[ns]!++
        const got = decoded.entry.value.drillVersion
        if (typeof got !== 'number' || got < version) behind++
      }
    }
    return behind
  }
}
