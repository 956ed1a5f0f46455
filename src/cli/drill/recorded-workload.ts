// The drill's recorded workload: an access log's reads of each drilled namespace as the key numbers the workers use.
import { CliUsageError } from '../../errors.js'
import type { AccessRecord } from '../access-log.js'

/** Most records of a log `drill --workload` reads; the rest of the file is not read, and the report says so. */
export const MAX_WORKLOAD_RECORDS = 1_000_000

/** One namespace of a recorded workload. */
export interface RecordedNamespace {
  readonly name: string
  /**
   * The log's reads of the namespace, in log order, as key numbers: keys ranked by how often the log read them,
   * 0 the most read (ties: the key read first in the log ranks first).
   */
  readonly reads: readonly number[]
  /** Distinct keys the log read: the key numbers are 0 to keys - 1. */
  readonly keys: number
  /** Share of the log's reads of the namespace that went to its most-read key (key 0). */
  readonly hottestKeyShare: number
}

/**
 * Maps the log's records to each of `namespaces`, in that order. `truncatedAt`: the log held more records than
 * that, and `records` are its first ones (a namespace may only appear after them).
 * @throws CliUsageError naming a namespace the log has no read of, and the namespaces it has.
 */
export function mapRecordedWorkload(
  records: readonly AccessRecord[],
  namespaces: readonly string[],
  file: string,
  truncatedAt?: number,
): RecordedNamespace[] {
  // Per namespace, per key hash: its reads. A Map iterates in insertion order, so the keys come in the order the log
  // first read them, which the stable sort below keeps for equal counts.
  const counts = new Map<string, Map<string, number>>()
  for (const r of records) {
    let keys = counts.get(r.ns)
    if (keys === undefined) counts.set(r.ns, (keys = new Map<string, number>()))
    keys.set(r.k, (keys.get(r.k) ?? 0) + 1)
  }
  const missing = namespaces.filter((name) => !counts.has(name))
  if (missing.length > 0) {
    const has = [...counts.keys()].sort()
    throw new CliUsageError(
      'drill',
      `--workload ${file} has no read of namespace ${missing.map((n) => `"${n}"`).join(', ')}` +
        (truncatedAt === undefined
          ? ''
          : ` in its first ${truncatedAt.toLocaleString('en-US')} records (the drill reads no more)`) +
        '; it has ' +
        (has.length === 0
          ? 'no read at all'
          : has
              .slice(0, 20)
              .map((n) => `"${n}"`)
              .join(', ') + (has.length > 20 ? ', …' : '')) +
        ': choose namespaces it has with --namespace, or record a log of every namespace to drill',
    )
  }
  return namespaces.map((name) => {
    const keys = counts.get(name)!
    const ranked = [...keys.entries()].sort((a, b) => b[1] - a[1])
    const numberOf = new Map(ranked.map(([hash], n) => [hash, n]))
    const reads: number[] = []
    for (const r of records) if (r.ns === name) reads.push(numberOf.get(r.k)!)
    return { name, reads, keys: ranked.length, hottestKeyShare: ranked[0]![1] / reads.length }
  })
}

/** Where reader `index` of `readers` starts in a sequence of `length` reads: evenly spread, reader 0 at the start. */
export function readerStart(index: number, readers: number, length: number): number {
  return Math.floor((index * length) / readers)
}

/** The key number of a reader's `op`-th read of a namespace: the log's reads from `start` on, wrapping at the end. */
export function keyAt(reads: readonly number[], start: number, op: number): number {
  return reads[(start + op) % reads.length]!
}

/** The key numbers the writer writes in turn: the hottest `max` (or all, when fewer). */
export function writerKeys(keys: number, max: number): number[] {
  return Array.from({ length: Math.min(keys, max) }, (_, n) => n)
}
