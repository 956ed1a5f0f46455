// Loads under a hard timeout leave nothing behind: the heap after 100,000 loads is what it was before (the review
// measured ~57 bytes kept per load, 5.7 MB here, when each load tied its timeout to the cache's signal with
// AbortSignal.any on Node 20). Measured in a child process started with --expose-gc, so a collection can be forced.
import { execFile } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'

const dist = fileURLToPath(new URL('../../dist/index.js', import.meta.url))
const LOADS = 100_000

const child = `
const { createCache } = await import(${JSON.stringify(dist)})
const cache = createCache({ service: 'load-memory', logger: false })
const ns = cache.namespace('item', {
  key: 'i:{id}', ttl: '1m', l1: false, timeouts: { soft: '1s', hard: '2s' },
  load: async ({ id }) => id,
})
const settle = async () => { gc(); await new Promise((r) => setTimeout(r, 50)); gc() }
for (let i = 0; i < 1000; i++) await ns.get({ id: i }) // warm: code compiled, pools filled
await settle()
const before = process.memoryUsage().heapUsed
for (let i = 0; i < ${LOADS}; i++) await ns.get({ id: i })
await settle()
const after = process.memoryUsage().heapUsed
console.log(JSON.stringify({ before, after, loads: ns.stats().loads }))
await cache.close()
`

describe('loads under a hard timeout', () => {
  it('keep no memory once settled: 100,000 loads grow the heap by well under a byte each', async () => {
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ['--expose-gc', '--input-type=module', '-e', child],
      { timeout: 60_000 },
    )
    const { before, after, loads } = JSON.parse(stdout.trim()) as {
      before: number
      after: number
      loads: number
    }
    expect(loads).toBe(1000 + LOADS)
    // A leak of the measured size (57 B a load) would be 5.7 MB; allow 1 MB of noise (10 B a load).
    expect(after - before).toBeLessThan(1_000_000)
  }, 90_000)
})
