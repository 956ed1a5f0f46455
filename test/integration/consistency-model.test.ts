// Model-based test of the consistency classes: fast-check interleaves writes, reads (get and getMany), deletes, tag
// invalidations, invalidateAll, cache-aside writes racing a read, loads racing writes and invalidations (their
// interleaving chosen by fast-check's scheduler), and the passing of time across three caches on one real Redis, and
// checks every read against the class's bound:
// - in every class, a cache never returns a value older than what it acknowledged itself: its own write, or the
//   latest write when its own delete, tag invalidation or invalidateAll resolved (read-your-writes in a process);
// - strong returns the latest acknowledged write;
// - bounded never returns a value superseded more than `maxStaleness` ago;
// - eventual never one superseded by another cache's write longer ago than an entry's life (its TTL).
// Two of the three caches never hear the invalidation bus during a run, so the bounds are tested where they matter;
// cache 0 hears it at once.
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

interface Ack {
  gen: number
  /** When the write was acknowledged (fake clock). */
  at: number
  /** The cache that acknowledged it. */
  cache: number
}

/** What the model knows. */
interface Model {
  readonly consistency: Consistency
  /** Per id, every acknowledged write, in order. */
  readonly acked: Map<number, Ack[]>
  /**
   * Per cache and id (`cache:id`): the oldest generation that cache may still return, from what it acknowledged
   * itself (its writes; the latest write when its delete or invalidation resolved).
   */
  readonly floors: Map<string, number>
  nextGen: number
}

/** What a single load waits for (to race a write): taken by the first load that reads the source meanwhile. */
interface Gate {
  readonly taken: Deferred<void>
  /** Resolves when the load may land. */
  landing(value: Item): Promise<void>
}

/** The system under test: caches standing in for processes, their shared source and clock. */
interface Real {
  readonly caches: Cache[]
  readonly items: ReturnType<typeof declare>[]
  readonly source: Map<number, Item>
  readonly clock: FakeClock
  /** When set, the next load takes it and waits for it, after reading the source. */
  gate: Gate | undefined
}

function declare(cache: Cache, consistency: Consistency, real: Pick<Real, 'source' | 'gate'>) {
  return cache.namespace('item', {
    key: 'item:{id}',
    ttl: consistency === 'eventual' ? `${TTL_MS}ms` : '1m',
    consistency,
    ...(consistency === 'bounded' ? { maxStaleness: `${BOUND_MS}ms` } : {}),
    // Caches 1 and 2 hear the bus a minute late, so a lock waiter there is never woken by the announcement and
    // sleeps until the holder's lock would expire: a short lock keeps that sleep (real time) short.
    lock: { ttl: '200ms', wait: '10s' },
    load: async ({ id }: { id: number }): Promise<Item> => {
      // Read the source first, then wait: a load that read before a racing write.
      const value = real.source.get(id) ?? { id, gen: 0 }
      const gate = real.gate
      if (gate !== undefined) {
        real.gate = undefined
        gate.taken.resolve()
        await gate.landing(value)
      }
      return value
    },
    write: ({ id }, value: Item) => {
      real.source.set(id, value)
    },
    tags: () => ['all'],
  })
}

const latestGen = (model: Model, id: number) => model.acked.get(id)?.at(-1)?.gen ?? 0

function raiseFloor(model: Model, cache: number, id: number, gen: number): void {
  const key = `${cache}:${id}`
  model.floors.set(key, Math.max(model.floors.get(key) ?? 0, gen))
}

/** A write of `gen` acknowledged now by `cache`. */
function ack(model: Model, real: Real, cache: number, id: number, gen: number): void {
  model.acked.set(id, [...(model.acked.get(id) ?? []), { gen, at: real.clock.now(), cache }])
  raiseFloor(model, cache, id, gen)
}

/** `cache`'s delete or invalidation of `ids` resolved: from now on it reads at least the latest acknowledged write. */
function fence(model: Model, cache: number, ids: readonly number[]): void {
  for (const id of ids) raiseFloor(model, cache, id, latestGen(model, id))
}

/** The model as a read that starts now sees it (for reads that start while other commands are still running). */
function snapshot(model: Model): Model {
  return {
    consistency: model.consistency,
    acked: new Map([...model.acked].map(([id, acks]) => [id, [...acks]])),
    floors: new Map(model.floors),
    nextGen: model.nextGen,
  }
}

/**
 * Checks a read by `cache` that started when the model was `model`; `nextGen` is the model's when it returned (a
 * read that ran beside a write may return that write's value).
 */
function checkRead(
  model: Model,
  cache: number,
  id: number,
  gen: number,
  now: number,
  what: string,
  nextGen = model.nextGen,
): void {
  expect(gen, `${what}: a generation never written`).toBeLessThan(nextGen)
  const writes = model.acked.get(id) ?? []
  const latest = writes.at(-1)?.gen ?? 0
  // Newer than the latest acknowledged write: one being written while this read ran.
  if (gen >= latest) return
  const floor = model.floors.get(`${cache}:${id}`) ?? 0
  expect(
    gen,
    `${what}: generation ${gen} after this cache acknowledged generation ${floor} (its own write, delete or invalidation)`,
  ).toBeGreaterThanOrEqual(floor)
  if (model.consistency === 'strong') {
    expect.fail(`${what}: strong read returned generation ${gen} after ${latest} was acknowledged`)
  }
  const superseded = writes.find((w) => w.gen > gen)!
  const staleFor = now - superseded.at
  const bound = model.consistency === 'bounded' ? BOUND_MS : TTL_MS
  expect(
    staleFor,
    `${what}: generation ${gen} served ${staleFor} ms after it was superseded`,
  ).toBeLessThanOrEqual(bound)
}

const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve))

/** Waits until the gate is taken by a load, or a few turns of the event loop (the read may not load at all). */
async function gateTaken(gate: Gate): Promise<void> {
  let taken = false
  void gate.taken.promise.then(() => (taken = true))
  for (let i = 0; i < 50 && !taken; i++) await nextTurn()
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
    ack(model, real, this.cache, this.id, gen)
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
    checkRead(model, this.cache, this.id, value.gen, real.clock.now(), this.toString())
  }
  toString = () => `read(cache ${this.cache}, id ${this.id})`
}

class ReadMany implements fc.AsyncCommand<Model, Real> {
  constructor(
    readonly cache: number,
    readonly ids: readonly number[],
  ) {}
  check = () => true
  async run(model: Model, real: Real): Promise<void> {
    const values = await real.items[this.cache]!.getMany(this.ids.map((id) => ({ id })))
    values.forEach((value, i) => {
      expect(value.id).toBe(this.ids[i])
      checkRead(model, this.cache, value.id, value.gen, real.clock.now(), this.toString())
    })
  }
  toString = () => `getMany(cache ${this.cache}, ids [${this.ids.join(', ')}])`
}

class Delete implements fc.AsyncCommand<Model, Real> {
  constructor(
    readonly cache: number,
    readonly id: number,
  ) {}
  check = () => true
  async run(model: Model, real: Real): Promise<void> {
    await real.items[this.cache]!.delete({ id: this.id })
    fence(model, this.cache, [this.id])
  }
  toString = () => `delete(cache ${this.cache}, id ${this.id})`
}

class InvalidateTag implements fc.AsyncCommand<Model, Real> {
  constructor(readonly cache: number) {}
  check = () => true
  async run(model: Model, real: Real): Promise<void> {
    await real.items[this.cache]!.invalidateTag('all')
    fence(model, this.cache, IDS)
  }
  toString = () => `invalidateTag(cache ${this.cache})`
}

/**
 * Eventual runs only. Caches 1 and 2 never hear the announcement during a run, so they keep the previous
 * generation's keys (reading and writing them): strong and bounded hold there only once the announcement arrives,
 * which a run that keeps them deaf cannot bound.
 */
class InvalidateAll implements fc.AsyncCommand<Model, Real> {
  constructor(readonly cache: number) {}
  check = () => true
  async run(model: Model, real: Real): Promise<void> {
    await real.items[this.cache]!.invalidateAll()
    fence(model, this.cache, IDS)
  }
  toString = () => `invalidateAll(cache ${this.cache})`
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
    fence(model, this.writer, [this.id])
    const release = deferred<void>()
    const gate: Gate = { taken: deferred(), landing: () => release.promise }
    real.gate = gate
    const reading = real.items[this.reader]!.get({ id: this.id })
    await gateTaken(gate)
    real.gate = undefined
    await new Write(this.writer, this.id).run(model, real)
    release.resolve()
    const value = await reading
    // It started before the write: its own answer may be the older value. What it cached is checked by later reads.
    expect(value.gen).toBeLessThan(model.nextGen)
  }
  toString = () => `readRacingWrite(reader ${this.reader}, writer ${this.writer}, id ${this.id})`
}

/**
 * A cache-aside write (the source, then `delete()`) while the same cache reads the key: the read starts once the
 * delete is on its way to Redis.
 */
class CacheAsideWriteRacingRead implements fc.AsyncCommand<Model, Real> {
  constructor(
    readonly cache: number,
    readonly id: number,
  ) {}
  check = () => true
  async run(model: Model, real: Real): Promise<void> {
    const gen = model.nextGen++
    real.source.set(this.id, { id: this.id, gen })
    const items = real.items[this.cache]!
    const deleting = items.delete({ id: this.id })
    await nextTurn()
    const during = items.get({ id: this.id })
    await deleting
    ack(model, real, this.cache, this.id, gen)
    expect((await during).gen).toBeLessThan(model.nextGen)
  }
  toString = () => `cacheAsideWriteRacingRead(cache ${this.cache}, id ${this.id})`
}

type RaceAction = 'write' | 'cache-aside write' | 'source write, then invalidateTag' | 'delete'

/**
 * A cold read in `reader` whose load (it read the source first) lands when fast-check's scheduler releases it,
 * against `action` in `actor` and a later read in `laterReader`, each started when the scheduler releases it. With
 * `atomic`, the scheduler releases nothing else while the action runs, so the load lands before or after it;
 * otherwise it may land during it. The later read may start before, during or after the action: it is checked
 * against what was acknowledged when it started.
 */
class Race implements fc.AsyncCommand<Model, Real> {
  #report = ''
  constructor(
    readonly scheduler: fc.Scheduler,
    readonly reader: number,
    readonly many: boolean,
    readonly actor: number,
    readonly action: RaceAction,
    readonly atomic: boolean,
    readonly laterReader: number,
    readonly id: number,
  ) {}
  check = () => true
  async run(model: Model, real: Real): Promise<void> {
    // A fresh copy on every run (fast-check replays commands while shrinking).
    const s = fc.hasCloneMethod(this.scheduler) ? this.scheduler[fc.cloneMethod]() : this.scheduler
    const { id } = this
    // Nothing cached in the reader, so its read loads.
    await real.items[this.reader]!.delete({ id })
    fence(model, this.reader, [id])
    // Should an atomic action wait for the gated load (it would wait for ever), the load lands after 500 ms.
    const stuck = deferred<void>()
    const gate: Gate = {
      taken: deferred(),
      landing: (value) =>
        Promise.race([
          s.schedule(Promise.resolve(), `the load (it read gen ${value.gen}) lands`),
          stuck.promise,
        ]),
    }
    real.gate = gate
    try {
      const reader = real.items[this.reader]!
      const reading = this.many ? reader.getMany([{ id }]).then(([v]) => v!) : reader.get({ id })
      await gateTaken(gate)
      real.gate = undefined // only the reader's load is gated
      const label = `${this.action} in cache ${this.actor}`
      const acting = this.atomic
        ? s.scheduleSequence([
            {
              label: `${label} (atomic)`,
              builder: () => {
                const timer = setTimeout(() => stuck.resolve(), 500)
                return this.#act(model, real).finally(() => clearTimeout(timer))
              },
            },
          ]).task
        : s.schedule(Promise.resolve(), `${label} starts`).then(() => this.#act(model, real))
      const later = s
        .schedule(Promise.resolve(), `a read in cache ${this.laterReader} starts`)
        .then(async () => {
          const seen = snapshot(model)
          const value = await real.items[this.laterReader]!.get({ id })
          const what = `${this.toString()}, its later read`
          checkRead(seen, this.laterReader, id, value.gen, real.clock.now(), what, model.nextGen)
        })
      const [value, acted] = await s.waitFor(Promise.all([reading, acting, later]))
      if (acted !== undefined) expect(acted, `${label} failed`).toMatchObject({ faulty: false })
      expect(value.gen).toBeLessThan(model.nextGen)
    } finally {
      real.gate = undefined
      this.#report = s
        .report()
        .map((task) => `${task.label ?? '?'} (${task.status})`)
        .join(' → ')
    }
  }
  async #act(model: Model, real: Real): Promise<void> {
    const { actor, id } = this
    const items = real.items[actor]!
    if (this.action === 'write') {
      await new Write(actor, id).run(model, real)
    } else if (this.action === 'delete') {
      await items.delete({ id })
      fence(model, actor, [id])
    } else {
      const gen = model.nextGen++
      real.source.set(id, { id, gen })
      if (this.action === 'cache-aside write') await items.delete({ id })
      else await items.invalidateTag('all')
      ack(model, real, actor, id, gen)
      if (this.action !== 'cache-aside write') fence(model, actor, IDS)
    }
  }
  toString = () =>
    `race(${this.many ? 'getMany' : 'get'} in cache ${this.reader} loading id ${this.id}; ` +
    `${this.action} in cache ${this.actor}${this.atomic ? ' (atomic)' : ''}; later read in cache ${this.laterReader}` +
    (this.#report === '' ? ')' : `; order: ${this.#report})`)
}

const cacheIndex = fc.integer({ min: 0, max: CACHES - 1 })
const id = fc.constantFrom(...IDS)
const write = fc.tuple(cacheIndex, id).map(([c, i]) => new Write(c, i))
const read = fc.tuple(cacheIndex, id).map(([c, i]) => new Read(c, i))
const readMany = fc
  .tuple(cacheIndex, fc.array(id, { minLength: 1, maxLength: 3 }))
  .map(([c, ids]) => new ReadMany(c, ids))
/** Small steps: a bound is reached over several of them, with reads between. */
const advance = fc.integer({ min: 1, max: BOUND_MS / 4 }).map((ms) => new Advance(ms))
const race = fc
  .tuple(
    cacheIndex,
    fc.boolean(),
    cacheIndex,
    fc.constantFrom<RaceAction>('write', 'cache-aside write', 'source write, then invalidateTag', 'delete'),
    fc.boolean(),
    cacheIndex,
    id,
    // Last: fast-check 4.10 clones a tuple only up to its last cloneable item, dropping the items after it.
    fc.scheduler(),
  )
  .map(
    ([reader, many, actor, action, atomic, later, i, s]) =>
      new Race(s, reader, many, actor, action, atomic, later, i),
  )

function commands(consistency: Consistency) {
  // Weighted by repetition (fc.commands picks uniformly): a stale value shows only when a cache that read a key
  // reads it again after another cache wrote it, so reads, writes and time dominate.
  return fc.commands(
    [
      write,
      write,
      read,
      read,
      read,
      read,
      readMany,
      readMany,
      advance,
      advance,
      fc.tuple(cacheIndex, id).map(([c, i]) => new Delete(c, i)),
      cacheIndex.map((c) => new InvalidateTag(c)),
      fc.tuple(cacheIndex, cacheIndex, id).map(([r, w, i]) => new ReadRacingWrite(r, w, i)),
      fc.tuple(cacheIndex, id).map(([c, i]) => new CacheAsideWriteRacingRead(c, i)),
      race,
      race,
      ...(consistency === 'eventual' ? [cacheIndex.map((c) => new InvalidateAll(c))] : []),
    ],
    { maxCommands: 40, size: 'max' },
  )
}

let run = 0

describe('consistency classes under interleaved reads, writes and invalidations (model-based)', () => {
  it.each(['strong', 'bounded', 'eventual'] as const)(
    '%s: every read is within the class bound',
    async (consistency) => {
      await fc.assert(
        fc.asyncProperty(commands(consistency), async (cmds) => {
          // Started at the real time: each cache measures its clock's offset to Redis's once, at connect, and
          // the caches connect a few ms apart; from a far-off start those offsets would differ by those ms.
          const clock = fakeClock(Date.now())
          const source = new Map<number, Item>()
          const real: Real = {
            caches: [],
            items: [],
            source,
            clock,
            gate: undefined,
          }
          const service = `model-${consistency}-${run++}`
          try {
            for (let i = 0; i < CACHES; i++) {
              // Cache 0 hears the bus at once; caches 1 and 2 only after the run (their invalidations are
              // lost), so there the class bound must hold by L1 lifetimes alone.
              const store = redisStore({ url: redis.url })
              const l2 = i === 0 ? store : delayedPubSub(store, 60_000)
              // A generous L2 timeout: a run on a busy machine must not turn into a test of L2 timeouts.
              const cache = createCache({ service, clock, random: () => 0, l2, timeouts: { l2: '2s' } })
              real.caches.push(cache)
              real.items.push(declare(cache, consistency, real))
            }
            await Promise.all(real.caches.map((c) => c.connect()))
            const model: Model = { consistency, acked: new Map(), floors: new Map(), nextGen: 1 }
            // Warm caches: every cache holds every key, so a write leaves copies elsewhere to go stale.
            for (const item of real.items) for (const i of IDS) await item.get({ id: i })
            await fc.asyncModelRun(() => ({ model, real }), cmds)
          } finally {
            await Promise.all(real.caches.map((c) => c.close()))
          }
        }),
        { numRuns: 100 },
      )
    },
    60_000,
  )
})
