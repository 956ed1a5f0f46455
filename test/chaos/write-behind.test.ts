// Write-behind under a flusher that dies mid-batch: every write reaches the source exactly once (the idempotency
// key lets the source drop the redelivered ones), none is lost, and each key's writes land in order.
import { fileURLToPath } from 'node:url'
import { createCache, type NamespaceStats } from 'stratacache'
import { redisStore } from 'stratacache/redis'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { startRedis, type RedisServer } from '../helpers/redis-server.js'
import { startChild, type Child } from './fixtures/start-child.js'
import { declareLedger, SOURCE } from './fixtures/write-behind-shared.js'
import { rawClient, within } from './support.js'

const flusherScript = fileURLToPath(new URL('./fixtures/write-behind-flusher.ts', import.meta.url))
const ACCOUNTS = 20
const WRITES = 200
/** The first flusher dies right after the source took this many writes (inside its second batch of 25). */
const DIE_AFTER = 40

let redis: RedisServer
const children: Child[] = []
const closers: (() => Promise<void>)[] = []
beforeAll(async () => {
  redis = await startRedis()
})
afterAll(async () => {
  await redis.stop()
})
afterEach(async () => {
  await Promise.all(closers.splice(0).map((close) => close()))
  for (const child of children) child.kill()
  await Promise.all(children.splice(0).map((child) => child.exited))
})

describe('write-behind with a flusher killed mid-batch', () => {
  it('delivers every write to the source exactly once, in order per key, after another process takes over', async () => {
    const cache = createCache({ service: 'chaos-wb', l2: redisStore({ url: redis.url }) })
    closers.push(() => cache.close())
    const ledger = declareLedger(cache, { flush: false })
    await cache.connect()
    const seq = new Map<number, number>()
    const writeSome = async (count: number) => {
      for (let i = 0; i < count; i++) {
        const id = i % ACCOUNTS
        const next = (seq.get(id) ?? -1) + 1
        seq.set(id, next)
        await ledger.write({ id }, { id, seq: next })
      }
    }

    await writeSome(WRITES / 2)
    const doomed = startChild(flusherScript, ['--url', redis.url, '--die-after', String(DIE_AFTER)], 20_000)
    children.push(doomed)
    // More writes while it flushes and dies.
    await writeSome(WRITES / 2)
    const death = await within(doomed.exited, 15_000, 'the first flusher killing itself')
    expect(death.signal, death.stderr).toBe('SIGKILL')

    const survivor = startChild(flusherScript, ['--url', redis.url], 30_000)
    children.push(survivor)
    const exit = await within(survivor.exited, 25_000, 'the second flusher draining the queue')
    expect(exit.code, exit.stderr).toBe(0)
    const stats = JSON.parse(exit.stdout.trim().split('\n').at(-1)!) as NamespaceStats

    const raw = await rawClient(redis.url)
    try {
      const log = (await raw.lRange(SOURCE.log, 0, -1)).map(String)
      const attempts = Number(await raw.get(SOURCE.attempts))
      // Exactly once: every write applied, none twice, none lost.
      expect(log).toHaveLength(WRITES)
      expect(new Set(log).size).toBe(WRITES)
      // The writes the dead flusher applied but never acknowledged were delivered again, and deduplicated.
      expect(attempts).toBeGreaterThan(WRITES)
      expect(stats.writesClaimed).toBeGreaterThan(0)
      // In order per key.
      const perKey = new Map<string, number[]>()
      for (const line of log) {
        const [id, n] = line.split(':')
        perKey.set(id!, [...(perKey.get(id!) ?? []), Number(n)])
      }
      for (const [id, sequence] of perKey) {
        expect(sequence, `account ${id}`).toEqual([...sequence].sort((a, b) => a - b))
      }
      // The source holds each account's last write.
      const data = await raw.hGetAll(SOURCE.data)
      for (const [id, last] of seq) expect(String(data[String(id)]), `account ${id}`).toBe(String(last))
      // Nothing left queued or in flight.
      expect(await ledger.writeQueue()).toMatchObject({ queued: 0, inFlight: 0, deadLetters: 0 })
    } finally {
      await raw.close()
    }
  })
})
