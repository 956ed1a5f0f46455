// Scenario redis-kill: steady reads over 200 keys while Redis is killed and restarted; latency, throughput, failed
// gets and loader calls per phase, for stratacache (staleFor) and the peers with a Redis tier.
import { setImmediate as yieldToEventLoop, setTimeout as sleep } from 'node:timers/promises'
import KeyvRedis, { createKeyvNonBlocking } from '@keyv/redis'
import { BentoCache, bentostore } from 'bentocache'
import { memoryDriver } from 'bentocache/drivers/memory'
import { redisDriver } from 'bentocache/drivers/redis'
import { createCache as createCacheManager } from 'cache-manager'
import { CacheableMemory } from 'cacheable'
import { Redis } from 'ioredis'
import { Keyv } from 'keyv'
import { createCache } from '../dist/index.js'
import { redisStore } from '../dist/redis.js'
import { startRedis, type RedisServer } from '../test/helpers/redis-server.js'
import {
  product,
  productNamespace,
  productParams,
  stringKey,
  type Product,
  type ProductParams,
} from './fixtures.js'
import {
  formatCount,
  formatMs,
  formatOps,
  markdownTable,
  runRounds,
  withTimeout,
  type Column,
  type Contestant,
  type Metrics,
  type Scenario,
  type ScenarioContext,
  type ScenarioReport,
} from './harness.js'

const CALLERS = 50
const KEYS = 200
const LOADER_MS = 2
const TTL_MS = 2_000
const STALE_FOR_MS = 60_000
/** Keys are first loaded one every WARM_STEP_MS, so their expiries spread over one TTL instead of coming at once. */
const WARM_STEP_MS = TTL_MS / KEYS
/** Our own bound on one get: a get that takes longer counts as failed (and its caller moves on). */
const CALL_TIMEOUT_MS = 1_000
/** Bound on setting up, warming or closing one contestant. */
const SETUP_LIMIT_MS = 15_000
const REFERENCE = 'stratacache'

const PHASES = [
  { name: 'before', title: 'Before: Redis up, 2 s', ms: 2_000 },
  {
    name: 'during',
    title: 'During: Redis killed (SIGKILL) for 2 s, then restarting until it answers PING',
    ms: 2_000,
  },
  {
    name: 'after',
    title: 'After: Redis restarted on the same port (empty), 3 s from its first PONG',
    ms: 3_000,
  },
] as const
type PhaseName = (typeof PHASES)[number]['name']

export const redisKill: Scenario = {
  name: 'redis-kill',
  title: 'Reads while Redis is killed and restarted',
  // It starts, kills and restarts a redis-server of its own: the run's shared one must not be killed.
  needsRedis: false,
  run,
}

/** A contestant built fresh for one round: reads key `index`, then closes every client it opened. */
interface Subject {
  get(index: number): Promise<unknown>
  close(): Promise<unknown>
}

type Loader = (p: ProductParams) => Promise<Product>

/** Log-scale latency histogram, 2% wide buckets from 1 µs: bounded memory however many gets a phase sees. */
class Histogram {
  static readonly #base = 0.001
  static readonly #step = Math.log(1.02)
  readonly #counts = new Float64Array(1_000)
  count = 0
  max = 0

  record(ms: number): void {
    const index = ms <= Histogram.#base ? 0 : Math.floor(Math.log(ms / Histogram.#base) / Histogram.#step)
    this.#counts[Math.min(index, this.#counts.length - 1)]!++
    this.count++
    if (ms > this.max) this.max = ms
  }

  /** The `q` quantile, as the middle of its bucket (within 1%), never above the maximum. */
  quantile(q: number): number {
    if (this.count === 0) return NaN
    const rank = q * (this.count - 1)
    let seen = 0
    for (let i = 0; i < this.#counts.length; i++) {
      seen += this.#counts[i]!
      if (seen > rank) return Math.min(this.max, Histogram.#base * Math.exp((i + 0.5) * Histogram.#step))
    }
    return this.max
  }
}

interface PhaseStats {
  readonly latency: Histogram
  ok: number
  failed: number
  /** Failed gets that were our own timeout rather than an error from the library. */
  timeouts: number
  loads: number
  /** Loader calls per 100 ms slice of the phase, to show bursts on the source. */
  readonly loadSlices: number[]
  startedAt: number
  endedAt: number
  errors: Map<string, number>
}

const newPhase = (): PhaseStats => ({
  latency: new Histogram(),
  ok: 0,
  failed: 0,
  timeouts: 0,
  loads: 0,
  loadSlices: [],
  startedAt: 0,
  endedAt: 0,
  errors: new Map(),
})

class CallTimeout extends Error {
  constructor() {
    super(`get did not settle within ${CALL_TIMEOUT_MS} ms`)
  }
}

/**
 * Runs one round for one contestant: builds it, warms its KEYS keys (staggered), runs CALLERS callers through the
 * phases while Redis is killed and restarted, closes it. Redis is up (and empty) again when it returns.
 */
async function measureRound(
  redis: RedisServer,
  create: (load: Loader) => Subject | Promise<Subject>,
  log: (line: string) => void,
  name: string,
): Promise<Metrics> {
  const phases = Object.fromEntries(PHASES.map((p) => [p.name, newPhase()])) as Record<PhaseName, PhaseStats>
  let phase: PhaseStats | undefined
  const load: Loader = async (p) => {
    if (phase !== undefined) {
      phase.loads++
      const slice = Math.floor((performance.now() - phase.startedAt) / 100)
      phase.loadSlices[slice] = (phase.loadSlices[slice] ?? 0) + 1
    }
    await sleep(LOADER_MS)
    return product(p)
  }
  const subject = await withTimeout(Promise.resolve(create(load)), SETUP_LIMIT_MS, `${name}: setup`)
  let unhandled = 0
  const onUnhandled = (reason: unknown) => {
    unhandled++
    if (unhandled <= 3) log(`  redis-kill: ${name}: unhandled rejection: ${String(reason)}`)
  }
  process.on('unhandledRejection', onUnhandled)
  try {
    // Warm: one key every WARM_STEP_MS, each get bounded like the measured ones.
    const warmStart = performance.now()
    let warmFailures = 0
    for (let i = 0; i < KEYS; i++) {
      await bounded(subject.get(i)).catch(() => warmFailures++)
      const wait = warmStart + (i + 1) * WARM_STEP_MS - performance.now()
      if (wait > 0) await sleep(wait)
    }
    if (warmFailures > 0) log(`  redis-kill: ${name}: ${warmFailures} gets failed while warming`)

    let stop = false
    const caller = async (id: number) => {
      let cursor = (id * KEYS) / CALLERS
      while (!stop) {
        const issuedIn = phase!
        const index = cursor
        cursor = (cursor + 1) % KEYS
        const started = performance.now()
        let failure: unknown
        let failed = false
        try {
          await bounded(subject.get(index))
        } catch (error) {
          failed = true
          failure = error
        }
        // A get counts in the phase it was issued in, except one still pending when Redis was killed: it counts
        // in "during", so "before" only has gets that ran entirely with Redis up.
        const current = issuedIn === phases.before && phase !== phases.before ? phases.during : issuedIn
        if (!failed) {
          current.ok++
        } else {
          const error = failure
          current.failed++
          if (error instanceof CallTimeout) current.timeouts++
          const text = error instanceof Error ? `${error.constructor.name}: ${error.message}` : String(error)
          current.errors.set(text, (current.errors.get(text) ?? 0) + 1)
        }
        current.latency.record(performance.now() - started)
        // Every request of a real server goes through the event loop: let timers, sockets and refreshes run.
        await yieldToEventLoop()
      }
    }
    const enter = (next: PhaseName) => {
      const now = performance.now()
      if (phase !== undefined) phase.endedAt = now
      phase = phases[next]
      phase.startedAt = now
    }

    enter('before')
    const callers = Array.from({ length: CALLERS }, (_, id) => caller(id))
    await sleep(PHASES[0].ms)
    enter('during')
    await redis.kill()
    await sleep(PHASES[1].ms)
    const restartStarted = performance.now()
    await redis.restart()
    const restartMs = performance.now() - restartStarted
    enter('after')
    await sleep(PHASES[2].ms)
    phase!.endedAt = performance.now()
    stop = true
    // Each caller finishes its get under way, itself bounded by CALL_TIMEOUT_MS.
    await Promise.all(callers)

    for (const p of PHASES) {
      for (const [text, count] of phases[p.name].errors) {
        log(`  redis-kill: ${name}, ${p.name}: ${count} x ${text}`)
      }
    }
    const metrics: Metrics = { unhandled, restartMs }
    for (const p of PHASES) {
      const s = phases[p.name]
      const seconds = (s.endedAt - s.startedAt) / 1_000
      metrics[`${p.name}.p50Ms`] = s.latency.quantile(0.5)
      metrics[`${p.name}.p99Ms`] = s.latency.quantile(0.99)
      metrics[`${p.name}.maxMs`] = s.latency.max
      metrics[`${p.name}.opsPerSec`] = s.ok / seconds
      metrics[`${p.name}.failed`] = s.failed
      metrics[`${p.name}.timeouts`] = s.timeouts
      metrics[`${p.name}.loadsPerSec`] = s.loads / seconds
      metrics[`${p.name}.peakLoads100ms`] = Math.max(0, ...Array.from(s.loadSlices, (n) => n ?? 0))
      metrics[`${p.name}.seconds`] = seconds
    }
    return metrics
  } finally {
    await withTimeout(subject.close(), SETUP_LIMIT_MS, `${name}: close`).catch((error: unknown) =>
      log(`  redis-kill: ${name}: ${String(error)}`),
    )
    // Rejections of calls that outlived their timeout may land a little after close; give them a moment.
    await sleep(50)
    process.off('unhandledRejection', onUnhandled)
  }
}

/** `promise`, or a CallTimeout rejection after CALL_TIMEOUT_MS (the late outcome of `promise` is ignored). */
function bounded<T>(promise: Promise<T>): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new CallTimeout()), CALL_TIMEOUT_MS)
    promise.then(
      (value) => {
        clearTimeout(timer)
        resolve(value)
      },
      (error: unknown) => {
        clearTimeout(timer)
        reject(error instanceof Error ? error : new Error(String(error)))
      },
    )
  })
}

async function run(context: ScenarioContext): Promise<ScenarioReport> {
  const redis = await startRedis()
  try {
    const url = redis.url
    const port = redis.port
    const params = productParams(KEYS)
    const keys = params.map(stringKey)
    const log = context.log

    const subjects: { name: string; call: string; create: (load: Loader) => Subject | Promise<Subject> }[] = [
      {
        name: REFERENCE,
        call: "`ns.get(params)`, L1 + Redis, `staleFor: '1m'`",
        async create(load) {
          const cache = createCache({ service: 'bench-kill', l2: redisStore({ url }) })
          const ns = cache.namespace('product', {
            ...productNamespace,
            ttl: TTL_MS,
            staleFor: STALE_FOR_MS,
            load: (p: ProductParams) => load(p),
          })
          await cache.connect()
          return { get: (i) => ns.get(params[i]!), close: () => cache.close() }
        },
      },
      {
        name: 'bentocache',
        call: "`bento.getOrSet({ key, factory })`, L1 + Redis L2 (ioredis), `grace: '1m'`",
        create(load) {
          // Its Redis driver would create this ioredis client itself, without an 'error' listener (ioredis then
          // prints every failed reconnection); the driver disconnects it on disconnectAll().
          const connection = new Redis({ host: '127.0.0.1', port })
          connection.on('error', () => {})
          const bento = new BentoCache({
            default: 'cache',
            prefix: 'bench-kill-bento',
            ttl: TTL_MS,
            grace: '1m',
            l2CircuitBreakerDuration: '2s',
            stores: {
              cache: bentostore()
                .useL1Layer(memoryDriver({ maxItems: 10_000 }))
                .useL2Layer(redisDriver({ connection })),
            },
          })
          return {
            get: (i) => bento.getOrSet({ key: keys[i]!, factory: () => load(params[i]!) }),
            close: () => bento.disconnectAll(),
          }
        },
      },
      {
        name: 'cache-manager',
        call: '`cache.wrap(key, fn)`, CacheableMemory + `new KeyvRedis(url)`',
        create(load) {
          const redisKeyv = new Keyv({ store: new KeyvRedis(url), namespace: 'bench-kill-cm' })
          redisKeyv.on('error', () => {})
          const manager = createCacheManager({
            stores: [new Keyv({ store: new CacheableMemory({ lruSize: 10_000 }) }), redisKeyv],
          })
          return {
            get: (i) => manager.wrap(keys[i]!, () => load(params[i]!), TTL_MS),
            close: () => manager.disconnect(),
          }
        },
      },
      {
        name: 'cache-manager, non-blocking',
        call: '`cache.wrap(key, fn)`, CacheableMemory + `createKeyvNonBlocking(url)`, `nonBlocking: true`',
        create(load) {
          const redisKeyv = createKeyvNonBlocking(url, { namespace: 'bench-kill-cmnb' })
          redisKeyv.on('error', () => {})
          const manager = createCacheManager({
            stores: [new Keyv({ store: new CacheableMemory({ lruSize: 10_000 }) }), redisKeyv],
            nonBlocking: true,
          })
          return {
            get: (i) => manager.wrap(keys[i]!, () => load(params[i]!), TTL_MS),
            close: () => manager.disconnect(),
          }
        },
      },
    ]

    const contestants: Contestant[] = subjects.map((s) => ({
      name: s.name,
      call: s.call,
      measure: () => measureRound(redis, s.create, log, s.name),
    }))
    const result = await runRounds({
      scenario: 'redis-kill',
      contestants,
      reference: REFERENCE,
      rounds: context.rounds ?? 3,
      // Every round builds its contestants afresh and warms them: a thrown-away round would only add time.
      warmupRounds: 0,
      log,
    })

    const ms = (value: number) => (Number.isNaN(value) ? '–' : formatMs(value))
    const columns = (p: PhaseName): Column[] => [
      { metric: `${p}.p50Ms`, label: 'p50 ms', format: ms },
      { metric: `${p}.p99Ms`, label: 'p99 ms', format: ms },
      { metric: `${p}.maxMs`, label: 'max ms', format: ms, range: true },
      { metric: `${p}.opsPerSec`, label: 'gets/s', format: formatOps, ratio: true },
      { metric: `${p}.failed`, label: 'failed gets', format: formatCount, range: true },
      { metric: `${p}.timeouts`, label: 'of which timeouts', format: formatCount },
      { metric: `${p}.loadsPerSec`, label: 'loader calls/s', format: formatCount },
      {
        metric: `${p}.peakLoads100ms`,
        label: 'peak loader calls / 100 ms',
        format: formatCount,
        range: true,
      },
    ]
    const restartMs = result.contestants.flatMap((c) => c.samples.restartMs ?? [])
    const strata = result.contestants.find((c) => c.name === REFERENCE)!
    const strataFailed = PHASES.map((p) => Math.max(...(strata.samples[`${p.name}.failed`] ?? [NaN])))
    const worstFailed = Math.max(...strataFailed)
    const unhandled = result.contestants
      .filter((c) => (c.max.unhandled ?? 0) > 0)
      .map((c) => `${c.name} (up to ${c.max.unhandled} per round)`)

    return {
      sections: PHASES.map((p, i) => ({
        title: p.title,
        table: markdownTable(result, columns(p.name)),
        notes:
          i === 0
            ? [
                `${CALLERS} concurrent callers each read the ${KEYS} keys in turn in a loop (yielding to the event ` +
                  `loop after every get), TTL ${TTL_MS / 1_000} s, loader ~${LOADER_MS} ms that never fails ` +
                  '(the database stays up; only Redis goes away). Every round builds each contestant afresh, ' +
                  `loads its keys one every ${WARM_STEP_MS} ms (so expiries spread over a TTL), then runs the phases ` +
                  'against a redis-server of its own, killed with SIGKILL and restarted empty on the same port.',
                `Every get is bounded by our own ${CALL_TIMEOUT_MS} ms timeout: one that takes longer counts as ` +
                  'failed (column "of which timeouts") and its caller moves on. Latencies include failed gets. A ' +
                  'get counts in the phase it was issued in, except one still pending at the kill, which counts in ' +
                  '"during", which also holds the restart until Redis answers PING (' +
                  `${Math.round(Math.min(...restartMs))}–${Math.round(Math.max(...restartMs))} ms). ` +
                  'Steady state is ~100 loader calls/s (200 keys, 2 s TTL), ~10 per 100 ms. ' +
                  'Cells are medians over the rounds; the right end of a min–max column is the worst round. ' +
                  'Percentiles come from a 2%-bucket histogram.',
                "stratacache: default L1, `redisStore({ url })`, `staleFor: '1m'`, default L2 timeout (100 ms) and " +
                  "circuit breaker (5 failures, 2 s). bentocache: `grace: '1m'` (its stale window), " +
                  "`l2CircuitBreakerDuration: '2s'`, ioredis defaults. cache-manager has no stale window; it is " +
                  'shown with @keyv/redis defaults, and with the non-blocking setup its docs advise for Redis as a ' +
                  'secondary store (`createKeyvNonBlocking`: no offline queue, no reconnection).',
                ...(unhandled.length > 0
                  ? [
                      `Unhandled promise rejections during the rounds (caught, not counted as gets): ${unhandled.join(', ')}.`,
                    ]
                  : []),
              ]
            : [],
      })),
      targets: [
        {
          text: 'stratacache: 0 failed gets before, during and after the Redis outage',
          met: worstFailed === 0,
          measured:
            PHASES.map((p, i) => `${strataFailed[i]} ${p.name}`).join(', ') +
            ` (worst round of ${result.rounds})`,
        },
      ],
      results: [result],
    }
  } finally {
    await redis.stop()
  }
}
