// The disk store's own behaviours, beyond the L2Store contract (store-conformance.test.ts): options, TTL expiry on
// read and by the sweep, the byte budget, foreign bytes, sharing with other processes (entries, locks, the
// invalidation bus), and a writer SIGKILLed mid-write (never a torn read).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { open } from 'lmdb'
import { createCache, DiskStoreError, InvalidOptionError } from 'stratacache'
import { diskStore, type DiskStore } from 'stratacache/disk'
import { afterEach, describe, expect, it } from 'vitest'
import { startChild } from '../chaos/fixtures/start-child.js'

const child = new URL('./fixtures/disk-writer-child.ts', import.meta.url).pathname
const busChild = new URL('./fixtures/disk-bus-child.ts', import.meta.url).pathname
const dirs: string[] = []
const stores: DiskStore[] = []
const freshDir = () => {
  const dir = mkdtempSync(join(tmpdir(), 'strata-disk-'))
  dirs.push(dir)
  return dir
}
const opened = async (options: Parameters<typeof diskStore>[0]) => {
  const store = diskStore(options)
  stores.push(store)
  await store.connect()
  return store
}
const text = (value: Uint8Array | null) => (value === null ? null : Buffer.from(value).toString())

afterEach(async () => {
  await Promise.all(stores.splice(0).map((store) => store.close()))
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true })
})

describe('disk store', () => {
  it('refuses options that cannot work, naming the option and what to pass', () => {
    expect(() => diskStore({ path: '', maxBytes: 1024 })).toThrow(InvalidOptionError)
    expect(() => diskStore({ path: '/tmp/x' } as never)).toThrow(
      /`diskStore\.maxBytes`.*unbounded disk cache/,
    )
    expect(() => diskStore({ path: '/tmp/x', maxBytes: 1024, pollEvery: 0 })).toThrow(
      /`diskStore\.pollEvery`/,
    )
  })

  it('rejects connect() with a typed error when the path cannot hold the files, and the cache still loads', async () => {
    const file = join(freshDir(), 'a-file')
    writeFileSync(file, 'not a directory')
    const store = diskStore({ path: join(file, 'store'), maxBytes: 1024 * 1024 })
    const error = await store.connect().catch((e: unknown) => e)
    expect(error).toBeInstanceOf(DiskStoreError)
    expect(error).toMatchObject({ code: 'ERR_STRATA_DISK_STORE', kind: 'OPEN_FAILED' })
    const cache = createCache({
      service: 'disk-broken',
      l2: diskStore({ path: join(file, 'x'), maxBytes: 1024 }),
    })
    const items = cache.namespace('item', { key: 'item:{id}', ttl: '1m', load: ({ id }) => ({ id }) })
    await expect(items.get({ id: 1 })).resolves.toEqual({ id: 1 })
    await cache.close()
  })

  it('expires entries on read once their TTL passed, and the sweep deletes them and frees their bytes', async () => {
    let now = 1_700_000_000_000
    const store = await opened({ path: freshDir(), maxBytes: 1024 * 1024, clock: { now: () => now } })
    await store.set('ttl:a', Buffer.from('alpha'), 1_000)
    await store.set('ttl:b', Buffer.from('beta'), 5_000)
    expect(store.stats().bytes).toBeGreaterThan(0)
    now += 1_001
    expect(await store.get('ttl:a')).toBeNull()
    expect(await store.ttlMany(['ttl:a', 'ttl:b'])).toEqual([-2, 3_999])
    expect(await store.sweep()).toBe(1)
    expect(store.stats().expired).toBe(1)
    now += 4_000
    expect(await store.sweep()).toBe(1)
    expect(store.stats()).toMatchObject({ bytes: 0, expired: 2 })
  })

  it('stays within maxBytes, evicting the entries closest to expiry first, and refuses an entry larger than the budget', async () => {
    const store = await opened({ path: freshDir(), maxBytes: 20_000 })
    for (let i = 0; i < 40; i++) await store.set(`budget:${i}`, Buffer.alloc(1_000, 1), 60_000 + i * 1_000)
    const { bytes, evictions } = store.stats()
    expect(bytes).toBeLessThanOrEqual(20_000)
    expect(evictions).toBeGreaterThan(20)
    const values = await store.getMany(Array.from({ length: 40 }, (_, i) => `budget:${i}`))
    // The survivors are the latest to expire, the last written among them.
    const kept = values.flatMap((value, i) => (value === null ? [] : [i]))
    expect(kept).toEqual(Array.from({ length: kept.length }, (_, j) => 40 - kept.length + j))
    await store.set('budget:huge', Buffer.alloc(30_000), 60_000)
    expect(await store.get('budget:huge')).toBeNull()
    expect(store.stats().tooLarge).toBe(1)
  })

  it('answers stats() before connect() and after close() with the last counts, never throwing', async () => {
    const store = diskStore({ path: freshDir(), maxBytes: 1024 * 1024 })
    stores.push(store)
    expect(store.stats()).toEqual({
      entries: 0,
      bytes: 0,
      maxBytes: 1024 * 1024,
      evictions: 0,
      expired: 0,
      corruptReads: 0,
      tooLarge: 0,
    })
    await store.connect()
    await store.set('closed:1', Buffer.from('v'), 60_000)
    const open = store.stats()
    expect(open).toMatchObject({ entries: 1 })
    // A closed cache stays exported: every scrape still reads its store's stats().
    await store.close()
    expect(store.stats()).toEqual(open)
  })

  it('refuses a fenced store whole (nothing written) when a tag set is a string or a key is too long', async () => {
    const store = await opened({ path: freshDir(), maxBytes: 1024 * 1024 })
    await store.set('fenced:string', Buffer.from('not a set'), 60_000)
    const bytes = store.stats().bytes
    const fence = {
      versionKey: 'fenced:k#v',
      version: 0,
      epochKey: 'fenced#epoch',
      epoch: (await store.readFence([], 'fenced#seq', 'fenced#epoch')).epoch,
      seq: 0,
      marks: [],
      sets: ['fenced:string'],
    }
    const write = { key: 'fenced:k', value: Buffer.from('v'), ttlMs: 60_000 }
    const wrong = await store.storeFenced(write, fence).catch((e: unknown) => e)
    expect(wrong).toMatchObject({ code: 'ERR_STRATA_DISK_STORE', kind: 'WRONGTYPE' })
    expect(store.errorReplyKind(wrong)).toBe('WRONGTYPE')
    expect(await store.get('fenced:k')).toBeNull()
    expect(store.stats().bytes).toBe(bytes)
    const long = await store
      .storeFenced({ ...write, key: `fenced:${'x'.repeat(2_000)}` }, { ...fence, sets: [] })
      .catch((e: unknown) => e)
    expect(long).toMatchObject({ kind: 'KEY_TOO_LONG' })
    expect((long as Error).message).toMatch(/lower the cache's maxKeyLength/)
    expect(store.stats().bytes).toBe(bytes)
  })

  it('sees a write another store acknowledged, from the very next read (a fresh snapshot per read)', async () => {
    const path = freshDir()
    const writer = await opened({ path, maxBytes: 1024 * 1024 })
    const reader = await opened({ path, maxBytes: 1024 * 1024 })
    let missed = 0
    for (let i = 0; i < 200; i++) {
      await writer.set(`seen:${i}`, Buffer.from('v'), 60_000)
      if ((await reader.get(`seen:${i}`)) === null) missed++
    }
    expect(missed).toBe(0)
  })

  it('serves a record it cannot parse as a miss, counts it, and warns once', async () => {
    const path = freshDir()
    const store = await opened({ path, maxBytes: 1024 * 1024 })
    const events: string[] = []
    store.onEvent((event) => event.type === 'warning' && events.push(event.message))
    // Another program writing into the same files.
    const foreign = open({ path, maxDbs: 8 }).openDB({ name: 'entries', encoding: 'binary' })
    await foreign.put('foreign:1', Buffer.from('not a stratacache record'))
    await foreign.put('foreign:2', Buffer.from([0x53]))
    expect(await store.get('foreign:1')).toBeNull()
    expect(await store.getMany(['foreign:1', 'foreign:2'])).toEqual([null, null])
    expect(store.stats().corruptReads).toBe(3)
    expect(events).toHaveLength(1)
    expect(events[0]).toMatch(/cannot read.*corruptReads/)
    await foreign.close()
  })

  it('tells a subscriber that slept past the retention that it missed messages, as a dropped subscription', async () => {
    const path = freshDir()
    const listener = await opened({ path, maxBytes: 1024 * 1024, pollEvery: 300 })
    let now = Date.now()
    const publisher = await opened({ path, maxBytes: 1024 * 1024, clock: { now: () => now } })
    const statuses: string[] = []
    listener.onEvent((event) => event.type === 'subscriber-status' && statuses.push(event.status))
    const received: string[] = []
    await listener.subscribe('gap#bus', (message) => received.push(message))
    // Both published before the listener's next poll; the second, a minute later, prunes the first.
    await publisher.publish('gap#bus', 'one')
    now += 61_000
    await publisher.publish('gap#bus', 'two')
    await expect.poll(() => received, { timeout: 3_000 }).toEqual(['two'])
    expect(statuses).toEqual(['reconnecting', 'ready'])
  })

  it('shares entries and locks with another process of the host', async () => {
    const path = freshDir()
    const store = await opened({ path, maxBytes: 1024 * 1024 })
    const holder = startChild(child, ['lock', path, 'shared#lock'], 20_000)
    try {
      const line = await holder.waitForLine((l) => l.startsWith('{'))
      expect(JSON.parse(line)).toEqual({ won: true, broke: false })
      const mine = await store.acquireLock('shared#lock', 'B'.repeat(22), 10_000)
      expect(mine.won).toBe(false)
      expect(mine.won ? 0 : mine.remainingMs).toBeGreaterThan(25_000)
      expect(await store.unlock('shared#lock', 'B'.repeat(22))).toBe(false)
    } finally {
      holder.kill()
      await holder.exited
    }
  })

  it("drops this process's L1 copy when another process of the host writes or deletes the key (the bus on disk)", async () => {
    const path = freshDir()
    const cache = createCache({
      service: 'it-disk-bus',
      l2: diskStore({ path, maxBytes: 8 * 1024 * 1024 }),
      logger: false,
      // Generous: on a loaded machine an L2 timeout is a miss, which is not what this test is about.
      timeouts: { l2: '2s' },
    })
    let source = 'v1'
    const items = cache.namespace('item', { key: 'item:{id}', ttl: '10m', load: () => source })
    const other = startChild(busChild, [path], 30_000)
    try {
      await cache.connect()
      await expect.poll(() => cache.stats().bus?.subscribed).toBe(true)
      await other.waitForLine((line) => line === 'ready')
      expect(await items.get({ id: 'a' })).toBe('v1')
      // From L1 now: without the bus, this process would serve 'v1' for the entry's ten minutes.
      expect(await items.get({ id: 'a' })).toBe('v1')
      expect(items.stats().l1Hits).toBe(1)

      // The other process writes: its bus message drops this L1 copy, and the next read finds its value on disk.
      other.send('set a from-the-other-process')
      await other.waitForLine((line) => line === 'done set a from-the-other-process')
      // Within the bus's bound: pollEvery (20 ms) plus the event-loop delay; 2 s leaves room for a loaded machine.
      await expect
        .poll(() => items.get({ id: 'a' }), { timeout: 2_000, interval: 10 })
        .toBe('from-the-other-process')

      // The other process deletes: this L1 copy goes too, and the next read loads from the source again.
      source = 'v2'
      other.send('delete a')
      await other.waitForLine((line) => line === 'done delete a')
      await expect.poll(() => items.get({ id: 'a' }), { timeout: 2_000, interval: 10 }).toBe('v2')
      expect(cache.stats().bus?.subscribed).toBe(true)
    } finally {
      other.kill()
      await other.exited
      await cache.close()
    }
  })

  it('never serves a torn value after a writer is SIGKILLed mid-write: each key reads whole or as a miss', async () => {
    const path = freshDir()
    for (const delayMs of [50, 170, 330]) {
      const writer = startChild(child, ['write', path], 25_000)
      await writer.waitForLine((line) => line === 'writing')
      await new Promise((resolve) => setTimeout(resolve, delayMs))
      writer.kill()
      expect((await writer.exited).signal).toBe('SIGKILL')
    }
    const store = await opened({ path, maxBytes: 8 * 1024 * 1024 })
    const keys = Array.from({ length: 2_000 }, (_, i) => `kill:${i}`)
    const values = (await store.getMany(keys)).map(text)
    let whole = 0
    for (const [i, value] of values.entries()) {
      if (value === null) continue
      const [body, length] = value.split('|')
      expect(body!.length).toBe(Number(length))
      expect(body).toBe(keys[i]!.repeat(body!.length / keys[i]!.length))
      whole++
    }
    expect(whole).toBeGreaterThan(0)
    expect(store.stats().corruptReads).toBe(0)
    // And the store still takes writes where the killed process left off.
    await store.set('kill:after', Buffer.from('ok'), 60_000)
    expect(text(await store.get('kill:after'))).toBe('ok')
  })
})
