// What the drill's parent process and its worker processes say to each other (over the fork IPC channel).

/** How a worker is set up: sent as its first message. */
export interface WorkerSetup {
  readonly role: 'reader' | 'writer'
  /** Absolute path of the config module; the worker imports it as the CLI does. */
  readonly config: string
  readonly cwd: string
  /** The drill's L2 and source Redis (loopback). */
  readonly l2Url: string
  readonly sourceUrl: string
  /** The service name the drill's caches use: fresh per run, so keys of an earlier run are never read. */
  readonly service: string
  /** The namespaces to drill, by name. */
  readonly namespaces: readonly string[]
  /** What the readers read; the writer writes the first `writeKeys` key numbers of each namespace (or all, if fewer). */
  readonly workload: WorkloadSetup
  readonly writeKeys: number
  /** Concurrent read loops in a reader. */
  readonly concurrency: number
  /** How long the workload runs after "go", and the most reads (or writes) a worker makes, whatever the clock. */
  readonly durationMs: number
  readonly maxOps: number
  /** The synthetic source's latency per load. */
  readonly sourceLatencyMs: number
  /** The writer's pause between rounds (one write per namespace per round). */
  readonly writeIntervalMs: number
  /** region-split: the region this process is in (its L2 is `l2Url`) and its one peer, reached through the drill's link. */
  readonly region?: RegionSetup
}

/** A worker's read workload, per drilled namespace (same order as `namespaces`). */
export type WorkloadSetup =
  /** `keys` keys per namespace: half of the reads on the writer's keys, the rest spread over all of them. */
  | { readonly kind: 'synthetic'; readonly keys: number }
  /**
   * An access log's reads (recorded-workload.ts): per namespace, its distinct keys and, for a reader, the log's reads
   * as key numbers in log order and where this reader starts in them (the writer gets no reads: it needs none).
   */
  | {
      readonly kind: 'recorded'
      readonly namespaces: readonly {
        readonly keys: number
        readonly reads: readonly number[]
        readonly start: number
      }[]
    }

/** A process's region in the region-split drill: passed through to `createCache({ region, regions })`. */
export interface RegionSetup {
  readonly name: string
  readonly peer: string
  /** The peer region's L2 as this region's relay reaches it: through the link (TCP proxy) the drill cuts. */
  readonly peerL2Url: string
  readonly heartbeatMs: number
  readonly splitAfterMs: number
}

export type ParentMessage =
  | { readonly type: 'setup'; readonly setup: WorkerSetup }
  | { readonly type: 'go' }
  /** Delay every invalidation-bus message by this much from now on (0: deliver at once). */
  | { readonly type: 'bus-delay'; readonly ms: number }

export type WorkerMessage =
  | { readonly type: 'ready'; readonly skipped: readonly { name: string; reason: string }[] }
  | { readonly type: 'report'; readonly report: WorkerReport }
  | { readonly type: 'failed'; readonly message: string }

/** One read: namespace index, key index, start (epoch ms), duration (ms), version got (-1: the get failed). */
export type ReadRecord = [ns: number, key: number, startAt: number, ms: number, version: number]
/** One acknowledged write: namespace index, key index, the version written, when `delete` resolved (epoch ms). */
export type WriteRecord = [ns: number, key: number, version: number, ackedAt: number]

export interface NamespaceCounts {
  /** Loads the synthetic source served for this namespace in this process. */
  readonly loads: number
  /** Writes whose `delete` rejected (the source changed, the cache said it may still hold the old value). */
  readonly failedWrites: number
  /** Most loads in flight at once, and most started within one second, in this process. */
  readonly peakConcurrent: number
  readonly peakPerSecond: number
  /** Reads the library served stale (stale-while-revalidate, fail-safe, soft timeout, bus outage). */
  readonly staleServed: number
  readonly reads: number
  /** With regions: cached copies the read gate refused (strong, bounded), and copies an eventual read served split. */
  readonly regionRefused: number
  readonly regionSplitServes: number
}

export interface WorkerReport {
  readonly role: 'reader' | 'writer'
  readonly pid: number
  readonly reads: ReadRecord[]
  readonly writes: WriteRecord[]
  /** The first few failures, as `code: message`. */
  readonly errors: string[]
  /** Per drilled namespace (same order as the setup's). */
  readonly namespaces: NamespaceCounts[]
  /** Instants (epoch ms) at which L2 was not healthy here (circuit not closed, or the bus not subscribed), sampled. */
  readonly unhealthyAt: number[]
  /** region-split: what this process saw of its peer region, sampled as `unhealthyAt` is. */
  readonly region?: RegionWorkerReport
}

export interface RegionWorkerReport {
  readonly name: string
  /** Instants (epoch ms) at which this process saw its peer split (`stats().regions.peers[peer].split`), sampled. */
  readonly splitAt: number[]
  /** Whether this process held the region's relay lease at the end, and its report of the last split that ended. */
  readonly relaying: boolean
  readonly lastSplit: { durationMs: number; replayed: number; convergeMs: number } | null
}
