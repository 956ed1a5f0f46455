// Scenario cold-key: 1,000 concurrent gets of one cold key in one process; loader calls and release delay.
import { setTimeout as sleep } from 'node:timers/promises'
import { createCache as createDedupeCache } from 'async-cache-dedupe'
import { BentoCache, bentostore } from 'bentocache'
import { memoryDriver } from 'bentocache/drivers/memory'
import { createCache as createCacheManager } from 'cache-manager'
import { CacheableMemory } from 'cacheable'
import { Keyv } from 'keyv'
import { createCache } from '../dist/index.js'
import { redisStore } from '../dist/redis.js'
import { product, productNamespace, stringKey, TTL_MS, type Product, type ProductParams } from './fixtures.js'
import {
  formatCount,
  formatMs,
  markdownTable,
  runRounds,
  withTimeout,
  type Contestant,
  type Metrics,
  type Scenario,
  type ScenarioContext,
  type ScenarioReport,
} from './harness.js'

const CALLERS = 1_000
const LOADER_MS = 20
/** A round that takes longer than this is a hang: the run stops with an error. */
const ROUND_LIMIT_MS = 10_000
const REFERENCE = 'stratacache'

export const coldKey: Scenario = {
  name: 'cold-key',
  title: `${CALLERS.toLocaleString('en')} concurrent gets of one cold key`,
  needsRedis: true,
  run,
}

/** What one round's loader saw: how often it ran and when it first settled. */
interface LoaderLog {
  calls: number
  firstSettledAt: number | undefined
}

/** A loader that takes LOADER_MS and records its calls; the value is ready just before its promise resolves. */
function loader(log: LoaderLog, p: ProductParams): () => Promise<Product> {
  return async () => {
    log.calls++
    await sleep(LOADER_MS)
    log.firstSettledAt ??= performance.now()
    return product(p)
  }
}

let nextProductId = 1
/** A key no contestant has seen: every round starts cold. */
function coldParams(): ProductParams {
  return { tenantId: 'cold', productId: nextProductId++, locale: 'en', currency: 'EUR' }
}

/**
 * Starts CALLERS calls of `call` in the same tick and waits for all. `releaseMs` runs from the first loader
 * settling to the last caller resolved; `totalMs` from the first call to the last caller resolved.
 */
async function stampede(name: string, call: (log: LoaderLog) => Promise<unknown>): Promise<Metrics> {
  const log: LoaderLog = { calls: 0, firstSettledAt: undefined }
  let lastReleasedAt = 0
  let rejected = 0
  const started = performance.now()
  const waits: Promise<void>[] = []
  for (let i = 0; i < CALLERS; i++) {
    waits.push(
      call(log).then(
        () => void (lastReleasedAt = performance.now()),
        () => {
          lastReleasedAt = performance.now()
          rejected++
        },
      ),
    )
  }
  await withTimeout(Promise.all(waits), ROUND_LIMIT_MS, `${name}: ${CALLERS} concurrent gets`)
  return {
    loaderCalls: log.calls,
    releaseMs: lastReleasedAt - (log.firstSettledAt ?? started),
    totalMs: lastReleasedAt - started,
    rejected,
  }
}

async function run(context: ScenarioContext): Promise<ScenarioReport> {
  const url = context.redisUrl
  if (url === undefined) throw new Error('cold-key needs a redis-server')
  const closers: (() => Promise<unknown>)[] = []
  try {
    const contestants = await setup(url, closers)
    const result = await runRounds({
      scenario: 'cold-key',
      contestants,
      reference: REFERENCE,
      rounds: context.rounds ?? 15,
      warmupRounds: 2,
      log: context.log,
    })
    const stratacache = result.contestants.filter((c) => c.name.startsWith('stratacache'))
    const worst = Math.max(...stratacache.map((c) => c.max.loaderCalls!))
    return {
      sections: [
        {
          title:
            `${CALLERS.toLocaleString('en')} gets of one cold key started in the same tick, ` +
            `loader resolving after ${LOADER_MS} ms; a new key every round`,
          table: markdownTable(result, [
            { metric: 'loaderCalls', label: 'loader calls', format: formatCount, range: true },
            { metric: 'releaseMs', label: 'release ms', format: formatMs, range: true, ratio: true },
            { metric: 'totalMs', label: 'total ms', format: formatMs },
            { metric: 'rejected', label: 'rejected callers', format: formatCount },
          ]),
          notes: [
            'Cells are medians over the rounds (p50); the min–max columns give the spread, so the maximum ' +
              'release over the rounds is the right end of "release ms min–max".',
            '"release" is the time from the first loader call settling to the last of the 1,000 callers ' +
              'being resolved. "total" runs from the first call to the last caller resolved (it includes the ' +
              '20 ms loader).',
            'All in-memory contestants use their L1 only; "stratacache, L1 + L2" also reads Redis ' +
              '(one GET miss) before loading, and writes the value back to Redis in the background.',
          ],
        },
      ],
      targets: [
        {
          text: `stratacache calls the loader once for ${CALLERS.toLocaleString('en')} concurrent callers`,
          met: worst === 1,
          measured: `at most ${worst} call${worst === 1 ? '' : 's'} per round, over ${result.rounds} round${result.rounds === 1 ? '' : 's'}`,
        },
      ],
      results: [result],
    }
  } finally {
    for (const close of closers.reverse()) await close()
  }
}

async function setup(url: string, closers: (() => Promise<unknown>)[]): Promise<Contestant[]> {
  /** The loader log of the round under way, read by loaders that are declared once (stratacache, dedupe). */
  let current: LoaderLog = { calls: 0, firstSettledAt: undefined }

  const l1Only = createCache({ service: 'bench-cold', l1: { maxEntries: 10_000 } })
  closers.push(() => l1Only.close())
  const l1Namespace = l1Only.namespace('product', {
    ...productNamespace,
    ttl: TTL_MS,
    load: (p: ProductParams) => loader(current, p)(),
  })

  const tiered = createCache({ service: 'bench-cold', l1: { maxEntries: 10_000 }, l2: redisStore({ url }) })
  closers.push(() => tiered.close())
  const tieredNamespace = tiered.namespace('product', {
    ...productNamespace,
    ttl: TTL_MS,
    load: (p: ProductParams) => loader(current, p)(),
  })
  await tiered.connect()

  const bento = new BentoCache({
    default: 'cache',
    stores: { cache: bentostore().useL1Layer(memoryDriver({ maxItems: 10_000 })) },
  })
  closers.push(() => bento.disconnectAll())

  const manager = createCacheManager({
    stores: [new Keyv({ store: new CacheableMemory({ lruSize: 10_000 }) })],
  })
  closers.push(() => manager.disconnect())

  const dedupe = createDedupeCache({
    ttl: TTL_MS / 1_000,
    storage: { type: 'memory', options: { size: 10_000 } },
  }).define('product', (p: ProductParams) => loader(current, p)())

  /** Runs one round with a fresh key and a fresh loader log. */
  const round = (name: string, call: (p: ProductParams, key: string, log: LoaderLog) => Promise<unknown>) => {
    return () => {
      const p = coldParams()
      const key = stringKey(p)
      return stampede(name, (log) => {
        current = log
        return call(p, key, log)
      })
    }
  }

  return [
    {
      name: REFERENCE,
      call: '`ns.get(params)`, L1 only',
      measure: round(REFERENCE, (p) => l1Namespace.get({ ...p })),
    },
    {
      name: 'stratacache, L1 + L2',
      call: '`ns.get(params)`, L1 + Redis',
      measure: round('stratacache, L1 + L2', (p) => tieredNamespace.get({ ...p })),
    },
    {
      name: 'bentocache',
      call: '`bento.getOrSet({ key, factory })`, L1 only',
      measure: round('bentocache', (p, key, log) =>
        bento.getOrSet({ key, factory: loader(log, p), ttl: TTL_MS }),
      ),
    },
    {
      name: 'cache-manager',
      call: '`cache.wrap(key, fn)`, Keyv + CacheableMemory',
      measure: round('cache-manager', (p, key, log) => manager.wrap(key, loader(log, p), TTL_MS)),
    },
    {
      name: 'async-cache-dedupe',
      call: '`cache.product(params)`',
      measure: round('async-cache-dedupe', (p) => dedupe.product({ ...p })),
    },
  ]
}
