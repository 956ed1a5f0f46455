// Model-based test of the consistency classes: fast-check interleaves writes, reads, deletes, tag invalidations,
// reads racing a write, and the passing of time across three caches on one real Redis, and checks every read
// against the class's bound: strong returns the latest acknowledged write; bounded never returns a value superseded
// more than `maxStaleness` ago; eventual never one superseded longer ago than an entry's life (its TTL). Two of the
// three caches never hear the invalidation bus during a run, so the bounds are tested where they matter.
import fc from 'fast-check'
import { createCache, type Cache } from 'stratacache'
import { redisStore } from 'stratacache/redis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { deferred, type Deferred } from '../helpers/deferred.js'
import { fakeClock, type FakeClock } from '../helpers/fake-clock.js'
import { startRedis, type RedisServer } from '../helpers/redis-server.js'
import { delayedPubSub } from '../chaos/fixtures/staleness-shared.js'

let redis: RedisServer
beforeAll(async () => {
  redis = await startRedis()
})
afterAll(async () => {
  await redis.stop()
})

type Consistency = 'strong' | 'bounded' | 'eventual'
const BOUND_MS = 500
const TTL_MS = 2_000
const IDS = [1, 2]
const CACHES = 3

interface Item {
  id: number
  gen: number
}

/** What the model knows: per id, every acknowledged write's generation and when it was acknowledged. */
interface Model {
  readonly consistency: Consistency
  readonly acked: Map<number, { gen: number; at: number }[]>
  nextGen: number
}

/** The system under test: caches standing in for processes, their shared source and clock. */
interface Real {
  readonly caches: Cache[]
  readonly items: ReturnType<typeof declare>[]
  readonly source: Map<number, Item>
  readonly clock: FakeClock
  /** When set, the next load waits for it (to race a write). */
  gate: Deferred<void> | undefined
}

function declare(
  cache: Cache,
  consistency: Consistency,
  real: Pick<Real, 'source'> & { gate(): Deferred<void> | undefined },
) {
  return cache.namespace('item', {
    key: 'item:{id}',
    ttl: consistency === 'eventual' ? `${TTL_MS}ms` : '1m',
    consistency,
    ...(consistency === 'bounded' ? { maxStaleness: `${BOUND_MS}ms` } : {}),
    load: async ({ id }: { id: number }): Promise<Item> => {
      const gate = real.gate()
      // Read the source first, then wait: a load that read before a racing write.
      const value = real.source.get(id) ?? { id, gen: 0 }
      if (gate !== undefined) await gate.promise
      return value
    },
    write: ({ id }, value: Item) => {
      real.source.set(id, value)
    },
    tags: () => ['all'],
  })
}

/** Checks a read that started after every write in `model` was acknowledged. */
function checkRead(model: Model, id: number, gen: number, now: number, what: string): void {
  const writes = model.acked.get(id) ?? []
  const latest = writes.at(-1)?.gen ?? 0
  if (gen === latest) return
  expect(gen, `${what}: a generation never written`).toBeLessThan(latest)
  const superseded = writes.find((w) => w.gen > gen)!
  const staleFor = now - superseded.at
  if (model.consistency === 'strong') {
    expect.fail(`${what}: strong read returned generation ${gen} after ${latest} was acknowledged`)
  }
  const bound = model.consistency === 'bounded' ? BOUND_MS : TTL_MS
  expect(
    staleFor,
    `${what}: generation ${gen} served ${staleFor} ms after it was superseded`,
  ).toBeLessThanOrEqual(bound)
}

class Write implements fc.AsyncCommand<Model, Real> {
  constructor(
    readonly cache: number,
    readonly id: number,
  ) {}
  check = () => true
  async run(model: Model, real: Real): Promise<void> {
    const gen = model.nextGen++
    await real.items[this.cache]!.write({ id: this.id }, { id: this.id, gen })
    model.acked.set(this.id, [...(model.acked.get(this.id) ?? []), { gen, at: real.clock.now() }])
  }
  toString = () => `write(cache ${this.cache}, id ${this.id})`
}

class Read implements fc.AsyncCommand<Model, Real> {
  constructor(
    readonly cache: number,
    readonly id: number,
  ) {}
  check = () => true
  async run(model: Model, real: Real): Promise<void> {
    const value = await real.items[this.cache]!.get({ id: this.id })
    checkRead(model, this.id, value.gen, real.clock.now(), this.toString())
  }
  toString = () => `read(cache ${this.cache}, id ${this.id})`
}

class Delete implements fc.AsyncCommand<Model, Real> {
  constructor(
    readonly cache: number,
    readonly id: number,
  ) {}
  check = () => true
  async run(_: Model, real: Real): Promise<void> {
    await real.items[this.cache]!.delete({ id: this.id })
  }
  toString = () => `delete(cache ${this.cache}, id ${this.id})`
}

class InvalidateTag implements fc.AsyncCommand<Model, Real> {
  constructor(readonly cache: number) {}
  check = () => true
  async run(_: Model, real: Real): Promise<void> {
    await real.items[this.cache]!.invalidateTag('all')
  }
  toString = () => `invalidateTag(cache ${this.cache})`
}

class Advance implements fc.AsyncCommand<Model, Real> {
  constructor(readonly ms: number) {}
  check = () => true
  run(_: Model, real: Real): Promise<void> {
    real.clock.advance(this.ms)
    return Promise.resolve()
  }
  toString = () => `advance(${this.ms} ms)`
}

/** A read whose load reads the source, then waits while another cache writes: the race the versions guard. */
class ReadRacingWrite implements fc.AsyncCommand<Model, Real> {
  constructor(
    readonly reader: number,
    readonly writer: number,
    readonly id: number,
  ) {}
  check = () => true
  async run(model: Model, real: Real): Promise<void> {
    // Nothing cached, so the read loads.
    await real.items[this.writer]!.delete({ id: this.id })
    const gate = deferred<void>()
    real.gate = gate
    const reading = real.items[this.reader]!.get({ id: this.id })
    // Let the read reach its (gated) loader before the write.
    for (let i = 0; i < 20 && real.gate === gate; i++) await new Promise((r) => setImmediate(r))
    real.gate = undefined
    await new Write(this.writer, this.id).run(model, real)
    gate.resolve()
    const value = await reading
    // It started before the write: its own answer may be the older value. What it cached is checked by later reads.
    expect(value.gen).toBeLessThanOrEqual(model.nextGen)
  }
  toString = () => `readRacingWrite(reader ${this.reader}, writer ${this.writer}, id ${this.id})`
}

const cacheIndex = fc.integer({ min: 0, max: CACHES - 1 })
const id = fc.constantFrom(...IDS)
const write = fc.tuple(cacheIndex, id).map(([c, i]) => new Write(c, i))
const read = fc.tuple(cacheIndex, id).map(([c, i]) => new Read(c, i))
/** Small steps: a bound is reached over several of them, with reads between. */
const advance = fc.integer({ min: 1, max: BOUND_MS / 4 }).map((ms) => new Advance(ms))
// Weighted by repetition (fc.commands picks uniformly): a stale value shows only when a cache that read a key
// reads it again after another cache wrote it, so reads, writes and time dominate.
const commands = fc.commands(
  [
    write,
    write,
    read,
    read,
    read,
    read,
    read,
    advance,
    advance,
    fc.tuple(cacheIndex, id).map(([c, i]) => new Delete(c, i)),
    cacheIndex.map((c) => new InvalidateTag(c)),
    fc.tuple(cacheIndex, cacheIndex, id).map(([r, w, i]) => new ReadRacingWrite(r, w, i)),
  ],
  { maxCommands: 40, size: 'max' },
)

let run = 0

describe('consistency classes under interleaved reads, writes and invalidations (model-based)', () => {
  it.each(['strong', 'bounded', 'eventual'] as const)(
    '%s: every read is within the class bound',
    async (consistency) => {
      await fc.assert(
        fc.asyncProperty(commands, async (cmds) => {
          const clock = fakeClock()
          const source = new Map<number, Item>()
          const real: Real = { caches: [], items: [], source, clock, gate: undefined }
          const service = `model-${consistency}-${run++}`
          try {
            for (let i = 0; i < CACHES; i++) {
              // Cache 0 hears the bus at once; caches 1 and 2 only after the run (their invalidations are
              // lost), so there the class bound must hold by L1 lifetimes alone.
              const store = redisStore({ url: redis.url })
              const l2 = i === 0 ? store : delayedPubSub(store, 60_000)
              const cache = createCache({ service, clock, random: () => 0, l2 })
              real.caches.push(cache)
              real.items.push(declare(cache, consistency, { source, gate: () => real.gate }))
            }
            await Promise.all(real.caches.map((c) => c.connect()))
            const model: Model = { consistency, acked: new Map(), nextGen: 1 }
            // Warm caches: every cache holds every key, so a write leaves copies elsewhere to go stale.
            for (const item of real.items) for (const i of IDS) await item.get({ id: i })
            await fc.asyncModelRun(() => ({ model, real }), cmds)
          } finally {
            await Promise.all(real.caches.map((c) => c.close()))
          }
        }),
        { numRuns: 40 },
      )
    },
    60_000,
  )
})
