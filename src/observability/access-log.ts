// A sampled access log of one namespace, for shadow evaluation (`stratacache simulate`): which keys were read, when,
// and which tier answered. Keys are recorded as hashes, sampled by key so every read of a sampled key is kept.
import { createHash } from 'node:crypto'
import { appendFile } from 'node:fs/promises'
import { InvalidOptionError } from '../errors.js'
import type { OptionKeys } from '../core/known-options.js'
import type { L2Guard } from '../policies/l2-guard.js'
import { hashKey } from '../tiers/frequency-sketch.js'

export interface AccessLogOptions {
  /** Appends JSON lines to this file. */
  file?: string
  /** Appends to the Redis stream `<service>:<namespace>#access`, trimmed to about `maxRecords` entries. */
  redisStream?: boolean
  /**
   * Share of keys recorded, chosen by key hash: every read of a sampled key is recorded, so the simulation sees
   * real reuse. @default 0.01
   */
  sampleRate?: number
  /** A file stops growing after this many records; a Redis stream keeps about the newest this many. @default 1_000_000 */
  maxRecords?: number
}

/** The keys of `AccessLogOptions`, checked against it by the compiler. */
export const ACCESS_LOG_OPTION_KEYS = {
  file: true,
  redisStream: true,
  sampleRate: true,
  maxRecords: true,
} as const satisfies OptionKeys<AccessLogOptions>

export interface ResolvedAccessLog {
  readonly file: string | undefined
  readonly redisStream: boolean
  readonly sampleRate: number
  readonly maxRecords: number
}

/** One read, as written: `{"t":…,"ns":…,"k":…,"o":…,"s":…}` (see docs/cli.md, `simulate`). */
export interface AccessRecord {
  /** Epoch ms. */
  readonly t: number
  readonly ns: string
  /** 64 bits of the SHA-256 of the full key, hex: the key itself is never written. */
  readonly k: string
  readonly o: 'l1' | 'l2' | 'miss'
  /** The value's size in bytes, when known (0 otherwise). */
  readonly s: number
}

/** Hashes below this threshold (of 2^30) are sampled. */
const HASH_RANGE = 0x40000000
/** Records buffered before a write; the rest go on a timer. */
const BATCH = 500

export function resolveAccessLog(
  value: unknown,
  at: (option: string) => string,
): ResolvedAccessLog | undefined {
  if (value === undefined) return undefined
  if (value === null || typeof value !== 'object') {
    throw new InvalidOptionError(
      at('accessLog'),
      value,
      "an object such as { file: 'access.jsonl', sampleRate: 0.01 }",
    )
  }
  const o = value as AccessLogOptions
  if (o.file !== undefined && (typeof o.file !== 'string' || o.file.length === 0)) {
    throw new InvalidOptionError(at('accessLog.file'), o.file, 'a file path')
  }
  if (o.redisStream !== undefined && typeof o.redisStream !== 'boolean') {
    throw new InvalidOptionError(at('accessLog.redisStream'), o.redisStream, 'true or false')
  }
  if (o.file === undefined && o.redisStream !== true) {
    throw new InvalidOptionError(at('accessLog'), value, 'a destination: `file` or `redisStream: true`')
  }
  const rate = o.sampleRate ?? 0.01
  if (typeof rate !== 'number' || !(rate > 0 && rate <= 1)) {
    throw new InvalidOptionError(
      at('accessLog.sampleRate'),
      o.sampleRate,
      'a share of keys in (0, 1], e.g. 0.01',
    )
  }
  const max = o.maxRecords ?? 1_000_000
  if (!Number.isSafeInteger(max) || max < 1) {
    throw new InvalidOptionError(at('accessLog.maxRecords'), o.maxRecords, 'a positive whole number')
  }
  return Object.freeze({
    file: o.file,
    redisStream: o.redisStream === true,
    sampleRate: rate,
    maxRecords: max,
  })
}

/** Records sampled reads and writes them in batches, off the read path. */
export class AccessLog {
  readonly #namespace: string
  readonly #config: ResolvedAccessLog
  readonly #stream: string
  readonly #l2: L2Guard | undefined
  readonly #threshold: number
  readonly #now: () => number
  #buffer: AccessRecord[] = []
  #written = 0
  #timer: ReturnType<typeof setInterval> | undefined
  #flushing: Promise<void> = Promise.resolve()
  /** Records dropped: the file reached `maxRecords`, or a write failed. */
  dropped = 0

  constructor(
    namespace: string,
    stream: string,
    config: ResolvedAccessLog,
    l2: L2Guard | undefined,
    now: () => number,
  ) {
    this.#namespace = namespace
    this.#stream = stream
    this.#config = config
    this.#l2 = l2
    this.#now = now
    this.#threshold = Math.round(config.sampleRate * HASH_RANGE)
    this.#timer = setInterval(() => void this.flush(), 1_000).unref()
  }

  /** Whether reads of a key with this 30-bit hash (`hashKey`) are recorded. */
  samples(hash: number): boolean {
    return hash < this.#threshold
  }

  /** Records `times` reads of `key` answered by `tier`, if the key is sampled (`hash` when already known). */
  record(key: string, tier: 'l1' | 'l2' | 'miss', size: number, times = 1, hash = hashKey(key)): void {
    if (hash >= this.#threshold) return
    const k = createHash('sha256').update(key).digest('hex').slice(0, 16)
    const t = this.#now()
    for (let i = 0; i < times; i++) this.#buffer.push({ t, ns: this.#namespace, k, o: tier, s: size })
    if (this.#buffer.length >= BATCH) void this.flush()
  }

  /** Writes what is buffered (one write at a time, in order). Never rejects. */
  flush(): Promise<void> {
    const batch = this.#buffer
    if (batch.length === 0) return this.#flushing
    this.#buffer = []
    this.#flushing = this.#flushing.then(() => this.#write(batch))
    return this.#flushing
  }

  async close(): Promise<void> {
    clearInterval(this.#timer)
    this.#timer = undefined
    await this.flush()
  }

  async #write(batch: AccessRecord[]): Promise<void> {
    const { file, redisStream, maxRecords } = this.#config
    try {
      if (file !== undefined) {
        const room = Math.max(0, maxRecords - this.#written)
        const kept = batch.slice(0, room)
        this.dropped += batch.length - kept.length
        if (kept.length > 0) {
          await appendFile(file, kept.map((r) => JSON.stringify(r) + '\n').join(''), { mode: 0o600 })
          this.#written += kept.length
        }
      }
      if (redisStream && this.#l2 !== undefined) {
        const l2 = this.#l2
        await Promise.all(
          batch.map((r) =>
            l2.queueAppend(
              this.#stream,
              { t: String(r.t), k: r.k, o: r.o, s: String(r.s) },
              this.#config.maxRecords,
            ),
          ),
        )
      }
    } catch {
      this.dropped += batch.length
    }
  }
}
