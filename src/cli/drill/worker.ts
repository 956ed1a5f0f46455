// A worker process of `stratacache drill`: declares the config module's namespaces on a cache of its own (the drill's
// L2 on loopback, a synthetic versioned source instead of the loaders), then reads (or writes) until told to stop,
// and sends back every read and write it made. Started by drill.ts with fork(); speaks protocol.ts.
import { setTimeout as sleep } from 'node:timers/promises'
import { createClient } from 'redis'
import { createCache } from '../../cache.js'
import { DECLARATION, type Namespace } from '../../namespace.js'
import type { NamespaceOptions } from '../../options.js'
import { redisStore } from '../../tiers/redis-store.js'
import { loadConfigModule } from '../config-module.js'
import { delayedPubSub } from './delayed-pub-sub.js'
import type {
  NamespaceCounts,
  ParentMessage,
  ReadRecord,
  WorkerMessage,
  WorkerReport,
  WorkerSetup,
  WriteRecord,
} from './protocol.js'
import { keyAt, writerKeys } from './recorded-workload.js'
import { paramsFor, sourceKey, sourceLoadsKey } from './workload.js'

type AnyOptions = NamespaceOptions<string, readonly string[], Record<string, unknown>, unknown>
type AnyNamespace = Namespace<Record<string, unknown>, unknown>

/** What the synthetic source returns: the version of the key the writer last wrote (0 before any write). */
interface SourceValue {
  readonly drillVersion: number
}

const send = (message: WorkerMessage) => process.send?.(message)
const silent = { debug() {}, info() {}, warn() {}, error() {} }

let busDelayMs = 0
let go: () => void = () => {}
const started = new Promise<void>((resolve) => (go = resolve))

process.on('message', (message: ParentMessage) => {
  if (message.type === 'setup') void run(message.setup)
  else if (message.type === 'go') go()
  else if (message.type === 'bus-delay') busDelayMs = message.ms
})
// The parent gone (killed, crashed): nothing to report to.
process.on('disconnect', () => process.exit(0))

async function run(setup: WorkerSetup): Promise<void> {
  try {
    await drill(setup)
  } catch (error) {
    send({ type: 'failed', message: error instanceof Error ? error.message : String(error) })
    process.exitCode = 1
  }
}

async function drill(setup: WorkerSetup): Promise<void> {
  // The app's own cache is only read for its declarations: closed before it serves anything.
  const { cache: app } = await loadConfigModule('drill', setup.config, setup.cwd)
  const declared = new Map(
    app.namespaces().map((ns) => [ns.name, (ns as unknown as Record<symbol, AnyOptions>)[DECLARATION]]),
  )
  const o = app.options
  await app.close()

  const source = createClient({ url: setup.sourceUrl })
  source.on('error', () => {})
  await source.connect()

  const cache = createCache({
    service: setup.service,
    l1:
      o.l1 === false
        ? false
        : {
            maxEntries: o.l1.maxEntries,
            ...(o.l1.maxBytes === undefined ? {} : { maxBytes: o.l1.maxBytes }),
          },
    l2: delayedPubSub(redisStore({ url: setup.l2Url }), () => busDelayMs),
    // region-split: this region's name and its peer's L2 through the drill's link (the relay's only way there).
    ...(setup.region === undefined
      ? {}
      : {
          region: setup.region.name,
          regions: {
            peers: [
              {
                region: setup.region.peer,
                l2: redisStore({ url: setup.region.peerL2Url, maxReconnectDelay: setup.region.heartbeatMs }),
              },
            ],
            heartbeat: setup.region.heartbeatMs,
            splitAfter: setup.region.splitAfterMs,
          },
        }),
    timeouts: { l2: o.l2TimeoutMs, connect: o.connectTimeoutMs },
    circuitBreaker: { failureThreshold: o.failureThreshold, breakFor: o.breakMs },
    maxKeyLength: o.maxKeyLength,
    maxValueBytes: o.maxValueBytes,
    // The drill counts outages itself; the workers' logs would only bury its report.
    logger: silent,
  })
  await cache.connect()

  const counts = setup.namespaces.map(() => ({
    loads: 0,
    inFlight: 0,
    peakConcurrent: 0,
    second: 0,
    inSecond: 0,
    peakPerSecond: 0,
  }))
  const namespaces: AnyNamespace[] = []
  const skipped: { name: string; reason: string }[] = []
  setup.namespaces.forEach((name, i) => {
    const options = declared.get(name)
    if (options === undefined) throw new Error(`the config module declares no namespace "${name}"`)
    const count = counts[i]!
    // Every load is one read of the source Redis, counted there too (the test's independent measure).
    const load = async (params: Record<string, unknown>): Promise<SourceValue> => {
      count.loads++
      count.inFlight++
      count.peakConcurrent = Math.max(count.peakConcurrent, count.inFlight)
      const second = Math.floor(Date.now() / 1_000)
      if (second !== count.second) {
        count.second = second
        count.inSecond = 0
      }
      count.peakPerSecond = Math.max(count.peakPerSecond, ++count.inSecond)
      try {
        const key = namespaces[i]!.key(params as never)
        const [, version] = await source
          .multi()
          .incr(sourceLoadsKey(setup.service, name))
          .get(sourceKey(key))
          .exec()
        // The query's time, after the snapshot it read: a load that started before a write returns the old version.
        if (setup.sourceLatencyMs > 0) await sleep(setup.sourceLatencyMs)
        return { drillVersion: Number(version ?? 0) }
      } finally {
        count.inFlight--
      }
    }
    const { load: _load, loadMany: _loadMany, write, writeMany, accessLog: _log, tags, ...rest } = options
    const redeclared: AnyOptions = {
      ...rest,
      load,
      ...(write !== undefined || writeMany !== undefined ? { write: async () => {} } : {}),
      // The app's tag function sees the synthetic value: a failure there tags nothing rather than failing loads.
      ...(tags === undefined ? {} : { tags: (params, value) => safeTags(() => tags(params, value)) }),
    }
    try {
      namespaces[i] = cache.namespace(name, redeclared as never) as unknown as AnyNamespace
    } catch (error) {
      skipped.push({ name, reason: error instanceof Error ? error.message : String(error) })
    }
  })
  if (skipped.length > 0) {
    send({ type: 'ready', skipped })
    await cache.close()
    await source.close()
    return
  }

  send({ type: 'ready', skipped })
  await started

  const reads: ReadRecord[] = []
  const writes: WriteRecord[] = []
  const errors: string[] = []
  const unhealthyAt: number[] = []
  const splitAt: number[] = []
  const failedWrites = setup.namespaces.map(() => 0)
  const note = (error: unknown, operation: 'get' | 'delete') => {
    if (errors.length < 5) {
      const code = (error as { code?: unknown }).code
      errors.push(
        `${setup.role} ${operation}, ${typeof code === 'string' ? code : 'Error'}: ${error instanceof Error ? error.message : String(error)}`,
      )
    }
  }
  const end = performance.now() + setup.durationMs
  const health = setInterval(() => {
    const stats = cache.stats()
    if (stats.l2?.circuit !== 'closed' || stats.l2.status !== 'ready' || stats.bus?.subscribed !== true) {
      unhealthyAt.push(Date.now())
    }
    if (setup.region !== undefined && stats.regions?.peers[setup.region.peer]?.split === true) {
      splitAt.push(Date.now())
    }
  }, 25)

  const workload = setup.workload
  // Per namespace, the key numbers the writer writes in turn: the first writeKeys (with a recorded workload, the
  // log's hottest keys), or all of a namespace's when it has fewer.
  const written = setup.namespaces.map((_, ns) =>
    writerKeys(
      workload.kind === 'synthetic' ? workload.keys : workload.namespaces[ns]!.keys,
      setup.writeKeys,
    ),
  )
  // Recorded: the next read of each namespace in the log, shared by this reader's loops so that together they
  // replay it in order.
  const cursors = setup.namespaces.map(() => 0)
  const nextKey = (ns: number): number => {
    if (workload.kind === 'recorded') {
      const recorded = workload.namespaces[ns]!
      return keyAt(recorded.reads, recorded.start, cursors[ns]!++)
    }
    // Half the reads go to the keys the writer changes (the first writeKeys), where staleness can show.
    return Math.floor(Math.random() * (Math.random() < 0.5 ? written[ns]!.length : workload.keys))
  }

  if (setup.role === 'reader') {
    let op = 0
    await Promise.all(
      Array.from({ length: setup.concurrency }, async () => {
        while (op < setup.maxOps && performance.now() < end) {
          const n = op++
          const ns = n % namespaces.length
          const key = nextKey(ns)
          const startAt = Date.now()
          const begun = performance.now()
          try {
            const value = (await namespaces[ns]!.get(paramsFor(namespaces[ns]!, key) as never)) as SourceValue
            reads.push([ns, key, startAt, round(performance.now() - begun), value.drillVersion])
          } catch (error) {
            reads.push([ns, key, startAt, round(performance.now() - begun), -1])
            note(error, 'get')
          }
          await sleep(1)
        }
      }),
    )
  } else {
    for (let turn = 0; turn < setup.maxOps && performance.now() < end; turn++) {
      await Promise.all(
        namespaces.map(async (namespace, ns) => {
          const keys = written[ns]!
          const key = keys[turn % keys.length]!
          const params = paramsFor(namespace, key)
          // Cache-aside, as an app's write path: the source first, then the cache entry is dropped everywhere.
          const version = await source.incr(sourceKey(namespace.key(params as never)))
          try {
            await namespace.delete(params as never)
            writes.push([ns, key, version, Date.now()])
          } catch (error) {
            failedWrites[ns]!++
            note(error, 'delete')
          }
        }),
      )
      await sleep(setup.writeIntervalMs)
    }
  }
  clearInterval(health)

  const regionStats = cache.stats().regions
  const lastSplit = setup.region === undefined ? undefined : regionStats?.peers[setup.region.peer]?.lastSplit
  // Closing waits for the loads still under way (a lock waiter that woke, a background refresh): the namespaces'
  // counts are taken after, so the loads they report are every one the source counted from this worker.
  await cache.close()
  const report: WorkerReport = {
    role: setup.role,
    pid: process.pid,
    reads,
    writes,
    errors,
    unhealthyAt,
    namespaces: namespaces.map((namespace, i): NamespaceCounts => {
      const stats = namespace.stats()
      const stale = stats.staleServed
      return {
        loads: counts[i]!.loads,
        failedWrites: failedWrites[i]!,
        peakConcurrent: counts[i]!.peakConcurrent,
        peakPerSecond: counts[i]!.peakPerSecond,
        staleServed: stale.swr + stale.failSafe + stale.softTimeout + stale.busOutage,
        reads: stats.l1Hits + stats.l2Hits + stats.misses,
        regionRefused: stats.regionRefused,
        regionSplitServes: stats.regionSplitServes,
      }
    }),
    ...(setup.region === undefined
      ? {}
      : {
          region: {
            name: setup.region.name,
            splitAt,
            relaying: regionStats?.relaying ?? false,
            lastSplit: lastSplit === undefined ? null : { ...lastSplit },
          },
        }),
  }
  await source.close().catch(() => {})
  send({ type: 'report', report })
}

function safeTags(tags: () => readonly string[]): readonly string[] {
  try {
    const result = tags()
    return Array.isArray(result) && result.every((t) => typeof t === 'string') ? result : []
  } catch {
    return []
  }
}

function round(ms: number): number {
  return Math.round(ms * 100) / 100
}
