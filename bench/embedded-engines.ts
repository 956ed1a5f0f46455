// Embedded engines for the disk store: lmdb (what `stratacache/disk` uses) against SQLite through `node:sqlite`
// (Node.js 22.5 and later), on the three operations the store's hot paths are made of. This is the measurement
// behind the engine choice in the README ("Dependencies").
//
//   npx tsx bench/embedded-engines.ts                       # lmdb only on Node.js 20; lmdb and node:sqlite on 22+
//   npx tsx bench/embedded-engines.ts --keys 10000 --rounds 7
//
// Each engine gets a fresh directory with 10,000 keys of 1 KiB, then, per round: random reads, one-key write
// transactions, and read-check-write transactions (read a key, write it back only if it is as read, as the store's
// fenced writes do). Settings are the disk store's defaults: lmdb with `noSync`, its transactions awaited (as
// `DiskStore` writes) and synchronous; SQLite in WAL mode with `synchronous=OFF` and synchronous transactions. Prints µs per
// operation, the median of the rounds, as one Markdown table. Every loop is bounded by its count.
import { mkdtempSync, rmSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { open } from 'lmdb'
import { median } from './harness.js'

const { values } = parseArgs({
  options: {
    keys: { type: 'string', default: '10000' },
    rounds: { type: 'string', default: '7' },
    ops: { type: 'string', default: '20000' },
  },
})
const KEYS = Number(values.keys)
const ROUNDS = Number(values.rounds)
const OPS = Number(values.ops)
for (const [name, n] of [
  ['--keys', KEYS],
  ['--rounds', ROUNDS],
  ['--ops', OPS],
] as const) {
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name} must be a positive integer, got ${String(n)}`)
}

const VALUE = Buffer.alloc(1024, 7)
const keyOf = (i: number) => `bench:product:v1:item:${i}`

/** xorshift32, seeded: every engine reads the same sequence of keys. */
function randomKeys(count: number): string[] {
  let state = 0x2545f491
  return Array.from({ length: count }, () => {
    state ^= state << 13
    state ^= state >>> 17
    state ^= state << 5
    return keyOf((state >>> 0) % KEYS)
  })
}

interface Engine {
  name: string
  read(key: string): unknown
  write(key: string, value: Buffer): Promise<void> | void
  /** Writes `value` if the key still holds what was read first (one transaction). */
  readCheckWrite(key: string, value: Buffer): Promise<void> | void
  close(): Promise<void> | void
}

/**
 * lmdb, its transactions either awaited asynchronous ones (`transaction`: run on lmdb's write thread, as `DiskStore`
 * writes; the latency includes that hop) or synchronous ones (`transactionSync`, like SQLite's here).
 */
async function lmdbEngine(dir: string, mode: 'async' | 'sync'): Promise<Engine> {
  const root = open({ path: join(dir, `lmdb-${mode}`), noSync: true, encoding: 'msgpack' })
  const db = root.openDB<Buffer, string>({ name: 'entries', encoding: 'binary' })
  await root.transaction(() => {
    for (let i = 0; i < KEYS; i++) db.putSync(keyOf(i), VALUE)
  })
  const checkAndPut = (key: string, value: Buffer) => {
    const seen = db.getBinary(key)
    if (seen !== undefined && seen.byteLength === value.byteLength) db.putSync(key, value)
  }
  if (mode === 'sync') {
    return {
      name: 'lmdb, transactionSync',
      read: (key) => db.getBinary(key),
      write: (key, value) => root.transactionSync(() => db.putSync(key, value)),
      readCheckWrite: (key, value) => root.transactionSync(() => checkAndPut(key, value)),
      close: () => root.close(),
    }
  }
  return {
    name: 'lmdb, awaited transaction (as the disk store)',
    read: (key) => db.getBinary(key),
    write: async (key, value) => {
      await root.transaction(() => db.putSync(key, value))
    },
    readCheckWrite: async (key, value) => {
      await root.transaction(() => checkAndPut(key, value))
    },
    close: () => root.close(),
  }
}

interface SqliteStatement {
  get(...args: unknown[]): unknown
  run(...args: unknown[]): unknown
}
interface SqliteDatabase {
  exec(sql: string): void
  prepare(sql: string): SqliteStatement
  close(): void
}

/** `node:sqlite`'s DatabaseSync, or undefined on a Node.js without it (before 22.5). */
function sqliteModule(): (new (path: string) => SqliteDatabase) | undefined {
  try {
    const require = createRequire(import.meta.url)
    return (require('node:sqlite') as { DatabaseSync: new (path: string) => SqliteDatabase }).DatabaseSync
  } catch {
    return undefined
  }
}

function sqliteEngine(dir: string, DatabaseSync: new (path: string) => SqliteDatabase): Engine {
  const db = new DatabaseSync(join(dir, 'sqlite.db'))
  db.exec('PRAGMA journal_mode=WAL; PRAGMA synchronous=OFF;')
  db.exec('CREATE TABLE entries (key TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID')
  const insert = db.prepare('INSERT OR REPLACE INTO entries (key, value) VALUES (?, ?)')
  const select = db.prepare('SELECT value FROM entries WHERE key = ?')
  db.exec('BEGIN')
  for (let i = 0; i < KEYS; i++) insert.run(keyOf(i), VALUE)
  db.exec('COMMIT')
  return {
    name: 'node:sqlite',
    read: (key) => select.get(key),
    write: (key, value) => {
      db.exec('BEGIN')
      insert.run(key, value)
      db.exec('COMMIT')
    },
    readCheckWrite: (key, value) => {
      db.exec('BEGIN IMMEDIATE')
      const seen = select.get(key) as { value: Uint8Array } | undefined
      if (seen !== undefined && seen.value.byteLength === value.byteLength) insert.run(key, value)
      db.exec('COMMIT')
    },
    close: () => db.close(),
  }
}

/** µs per operation of `count` sequential calls (awaited when they return a promise). */
async function timed(count: number, keys: string[], op: (key: string) => unknown): Promise<number> {
  const started = performance.now()
  for (let i = 0; i < count; i++) {
    const result = op(keys[i % keys.length]!)
    if (result instanceof Promise) await result
  }
  return ((performance.now() - started) * 1_000) / count
}

const dir = mkdtempSync(join(tmpdir(), 'stratacache-engines-'))
try {
  const DatabaseSync = sqliteModule()
  const engines: Engine[] = [await lmdbEngine(dir, 'async'), await lmdbEngine(dir, 'sync')]
  if (DatabaseSync !== undefined) engines.push(sqliteEngine(dir, DatabaseSync))
  const keys = randomKeys(OPS)
  const samples = engines.map(() => ({ read: [] as number[], write: [] as number[], rcw: [] as number[] }))
  // Round -1 warms every engine up; rounds alternate engines so that both see the same machine.
  for (let round = -1; round < ROUNDS; round++) {
    for (const [i, engine] of engines.entries()) {
      const read = await timed(OPS, keys, (key) => engine.read(key))
      const write = await timed(Math.ceil(OPS / 10), keys, (key) => engine.write(key, VALUE))
      const rcw = await timed(Math.ceil(OPS / 10), keys, (key) => engine.readCheckWrite(key, VALUE))
      if (round < 0) continue
      samples[i]!.read.push(read)
      samples[i]!.write.push(write)
      samples[i]!.rcw.push(rcw)
    }
  }
  for (const engine of engines) await engine.close()
  console.log(
    `Node.js ${process.version}, ${KEYS.toLocaleString('en')} keys of 1 KiB, median of ${ROUNDS} rounds, µs per operation` +
      (DatabaseSync === undefined ? ' (node:sqlite needs Node.js 22.5 or later: not measured)' : '') +
      '\n',
  )
  console.log('| engine | random read | one-key write transaction | read-check-write transaction |')
  console.log('| --- | ---: | ---: | ---: |')
  for (const [i, engine] of engines.entries()) {
    const s = samples[i]!
    const us = (values: number[]) => median(values).toFixed(1)
    console.log(`| ${engine.name} | ${us(s.read)} | ${us(s.write)} | ${us(s.rcw)} |`)
  }
} finally {
  rmSync(dir, { recursive: true, force: true })
}
