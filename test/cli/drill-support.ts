// What the drill's CLI tests share: running `stratacache drill` as a user does (dist/cli/main.js), reading its JSON
// report, the source's own counters to check it against, and an access log written by the library's recorder.
import { execFile } from 'node:child_process'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createCache } from 'stratacache'
import { expect } from 'vitest'
import type { DrillReport } from '../../src/cli/drill/report.js'
import type { RawClient } from '../chaos/support.js'

export const root = fileURLToPath(new URL('../..', import.meta.url))
export const bin = join(root, 'dist/cli/main.js')
export const demo = 'examples/demo/stratacache.config.ts'
/** Short runs: 3 s of workload, 2 readers, the fault after 1 s. */
export const SHORT = ['--duration', '3s', '--readers', '2', '--concurrency', '3', '--keys', '100']

export interface Run {
  code: number
  stdout: string
  stderr: string
}

export function run(args: readonly string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [bin, ...args],
      // The demo's config module is TypeScript: the CLI (and its workers) load it through tsx.
      { cwd: root, env: { ...process.env, NODE_OPTIONS: '--import tsx', ...env }, timeout: 40_000 },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === 'number' ? error.code : -1
        resolve({ code, stdout, stderr })
      },
    )
  })
}

export function reportOf(r: Run): DrillReport {
  expect(r.stdout.startsWith('{'), `stdout: ${r.stdout.slice(0, 500)}; stderr: ${r.stderr}`).toBe(true)
  return JSON.parse(r.stdout) as DrillReport
}

/**
 * Per namespace, read raw from the source Redis: the loads it counted, the versions its keys reached (one per
 * write), and the source keys the writer wrote (one per key it changed).
 */
export async function sourceCounts(source: RawClient, report: DrillReport, namespace: string) {
  const loads = Number((await source.get(`drill:loads:${report.service}:${namespace}`))?.toString() ?? 0)
  let versions = 0
  const written: string[] = []
  for await (const keys of source.scanIterator({
    MATCH: `drill:source:${report.service}:${namespace}:*`,
    COUNT: 1_000,
  })) {
    for (const key of keys) {
      written.push(key.toString())
      versions += Number((await source.get(key.toString()))?.toString() ?? 0)
    }
  }
  return { loads, versions, written }
}

/** The reported loads and writes of every namespace are the source's own counts. */
export async function expectSourceAgrees(source: RawClient, report: DrillReport) {
  for (const ns of report.namespaces) {
    const counted = await sourceCounts(source, report, ns.name)
    expect(ns.source.loads, ns.name).toBe(counted.loads)
    expect(ns.source.loadsCountedByWorkers, ns.name).toBe(counted.loads)
    expect(ns.writes + ns.failedWrites, ns.name).toBe(counted.versions)
    expect(ns.reads, ns.name).toBeGreaterThan(500)
  }
}

/** A small deterministic PRNG (mulberry32): the same skewed log on every run. */
export function seeded(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296
  }
}

/**
 * Writes an access log with the library's own recorder: a cache (L1 only) whose namespaces record every read
 * (`accessLog: { file, sampleRate: 1 }`), read `reads` times each, key i drawn with weight 1 / (i + 1)^skew among
 * `keys` keys. Returns what the test expects of the log, counted here from the draws, not from the file.
 */
export async function recordSkewedLog(
  file: string,
  namespaces: readonly { name: string; keys: number; reads: number; skew: number }[],
  seed = 17,
): Promise<Map<string, { reads: number; keys: number; hottestKeyShare: number }>> {
  const random = seeded(seed)
  const cache = createCache({ service: 'drill-log', l1: { maxEntries: 10_000 } })
  const declared = namespaces.map((ns) =>
    cache.namespace(ns.name, {
      key: 'item:{id}',
      ttl: '1h',
      load: ({ id }: { id: string }) => Promise.resolve({ id }),
      accessLog: { file, sampleRate: 1 },
    }),
  )
  const expected = new Map<string, { reads: number; keys: number; hottestKeyShare: number }>()
  for (const [i, ns] of namespaces.entries()) {
    const weights = Array.from({ length: ns.keys }, (_, k) => 1 / (k + 1) ** ns.skew)
    const total = weights.reduce((a, b) => a + b, 0)
    const counts = new Map<number, number>()
    for (let r = 0; r < ns.reads; r++) {
      let x = random() * total
      let k = 0
      while (k < ns.keys - 1 && x >= weights[k]!) x -= weights[k++]!
      counts.set(k, (counts.get(k) ?? 0) + 1)
      await declared[i]!.get({ id: `key-${k}` })
    }
    expected.set(ns.name, {
      reads: ns.reads,
      keys: counts.size,
      hottestKeyShare: Math.max(...counts.values()) / ns.reads,
    })
  }
  // Closing flushes the recorder's buffer to the file.
  await cache.close()
  return expected
}
