// Reads a sampled access log, one JSON record per read (docs/cli.md): what `simulate` and `drill --workload` replay.
import { closeSync, existsSync, openSync, readFileSync, readSync, statSync } from 'node:fs'
import { resolve } from 'node:path'
import { StringDecoder } from 'node:string_decoder'
import { AccessLogError, CliInputError } from '../errors.js'

/** Where a read was answered in production. */
export type Outcome = 'l1' | 'l2' | 'miss'

/**
 * One read, as a line of the access log:
 * `{"t":1700000000000,"ns":"product","k":"9f2c41d07a3be511","o":"l1","s":512}`.
 * Unknown fields are ignored, so the recorder may add some without breaking older simulators.
 */
export interface AccessRecord {
  /** When the read happened, epoch milliseconds. */
  readonly t: number
  /** The namespace read. */
  readonly ns: string
  /** A hash of the full key, in hex: never the key itself (it may hold personal data). */
  readonly k: string
  /** Where production answered it. */
  readonly o: Outcome
  /** The value's size in bytes (serialized), 0 when unknown. */
  readonly s: number
}

/** Longest line accepted: the recorder writes well under it (docs/cli.md). */
export const MAX_LINE_LENGTH = 1024
const HEX = /^[0-9a-f]{1,64}$/i

/** Largest log read: V8 strings stop short of 512 MiB, and a recorder's log is far smaller (docs/cli.md). */
export const MAX_LOG_BYTES = 256 * 1024 * 1024

/** A log as read from its file. */
export interface AccessLogFile {
  /** Sorted by time (stable). */
  readonly records: AccessRecord[]
  /** The file held more records than `maxRecords`: only the first that many (in file order) were read. */
  readonly truncated: boolean
}

export interface ReadAccessLogOptions {
  /**
   * Reads at most this many records, in file order; the rest of the file is not read (the byte limit then applies to
   * what is read, not to the file). @default Infinity
   */
  readonly maxRecords?: number
  /** Called every 65,536 lines with the lines read and the file's line count (counted only when given). */
  readonly onProgress?: ((linesRead: number, lines: number) => void) | undefined
}

/**
 * The absolute path of the input file `file` (relative to `cwd`), a `what` (`'access log'`, `'policy file'`).
 * @throws CliInputError when it is missing or not a file.
 */
export function inputFile(file: string, cwd: string, what: string): string {
  const absolute = resolve(cwd, file)
  if (!existsSync(absolute) || !statSync(absolute).isFile()) throw new CliInputError(file, `no such ${what}`)
  return absolute
}

/** The error for an input file the system would not let us read (permissions, an I/O error). */
export function unreadable(file: string, what: string, error: unknown): CliInputError {
  return new CliInputError(file, `the ${what} cannot be read (${(error as Error).message})`, { cause: error })
}

/**
 * Reads and parses the access log `file` (relative to `cwd`): every command that replays a log reads it here, so
 * they refuse the same files with the same errors.
 * @throws CliInputError when the file is missing, not a file, or larger than MAX_LOG_BYTES; AccessLogError naming
 *   the file and line of the first bad record.
 */
export function readAccessLog(file: string, cwd: string, options: ReadAccessLogOptions = {}): AccessLogFile {
  const absolute = inputFile(file, cwd, 'access log')
  // With a cap, only what it keeps is read, so a long log is no reason to refuse it.
  if (options.maxRecords !== undefined && Number.isFinite(options.maxRecords)) {
    return readCapped(absolute, file, options.maxRecords)
  }
  const size = statSync(absolute).size
  if (size > MAX_LOG_BYTES) {
    throw new CliInputError(
      file,
      `the access log is ${Math.round(size / 1024 / 1024)} MiB, more than the ${MAX_LOG_BYTES / 1024 / 1024} MiB ` +
        'a log may be; replay a shorter window, or record a sparser sample of keys',
    )
  }
  let text: string
  try {
    text = readFileSync(absolute, 'utf8')
  } catch (error) {
    throw unreadable(file, 'access log', error)
  }
  const { onProgress } = options
  const lines = onProgress === undefined ? 0 : countLines(text)
  onProgress?.(0, lines)
  return parseLines(
    text,
    file,
    options.maxRecords ?? Infinity,
    onProgress === undefined ? undefined : (n) => onProgress(n, lines),
  )
}

/**
 * Reads the first `maxRecords` records of the log at `absolute`, in chunks: the rest of the file is never read, so a
 * long log costs only what the cap keeps. The byte limit applies to what is read.
 */
function readCapped(absolute: string, file: string, maxRecords: number): AccessLogFile {
  const log = new RecordCollector(file, maxRecords)
  let bytesRead = 0
  let pending = ''
  const chunk = Buffer.allocUnsafe(1024 * 1024)
  const decoder = new StringDecoder('utf8')
  let fd: number
  try {
    fd = openSync(absolute, 'r')
  } catch (error) {
    throw unreadable(file, 'access log', error)
  }
  try {
    reading: for (;;) {
      let n: number
      try {
        n = readSync(fd, chunk, 0, chunk.length, null)
      } catch (error) {
        throw unreadable(file, 'access log', error)
      }
      if (n === 0) break
      bytesRead += n
      if (bytesRead > MAX_LOG_BYTES) {
        throw new CliInputError(
          file,
          `the first ${MAX_LOG_BYTES / 1024 / 1024} MiB of the access log hold fewer than ${maxRecords} records; ` +
            'replay a shorter window, or record a sparser sample of keys',
        )
      }
      pending += decoder.write(chunk.subarray(0, n))
      let start = 0
      for (let end = pending.indexOf('\n'); end !== -1; end = pending.indexOf('\n', start)) {
        if (!log.take(pending.slice(start, end))) break reading
        start = end + 1
      }
      pending = pending.slice(start)
      // A line longer than any record: parsed now for its error, rather than buffering the rest of the file.
      if (pending.length > MAX_LINE_LENGTH && pending.trim().length > MAX_LINE_LENGTH) log.take(pending)
    }
    if (!log.truncated) {
      pending += decoder.end()
      if (pending !== '') log.take(pending)
    }
  } finally {
    closeSync(fd)
  }
  return log.done()
}

/**
 * Parses the log's text. Blank lines are skipped; records come back sorted by time (stable: a log merged from several
 * processes may be slightly out of order).
 * @throws AccessLogError naming the file and the 1-based line of the first bad record.
 */
export function parseAccessLog(
  text: string,
  file: string,
  onProgress?: (linesRead: number) => void,
): AccessRecord[] {
  return parseLines(text, file, Infinity, onProgress).records
}

function parseLines(
  text: string,
  file: string,
  maxRecords: number,
  onProgress: ((linesRead: number) => void) | undefined,
): AccessLogFile {
  const log = new RecordCollector(file, maxRecords)
  let start = 0
  while (start <= text.length) {
    let end = text.indexOf('\n', start)
    if (end === -1) end = text.length
    if (!log.take(text.slice(start, end))) break
    start = end + 1
    if (onProgress !== undefined && (log.lines & 0xffff) === 0) onProgress(log.lines)
  }
  return log.done()
}

/**
 * The records of a log, fed one line at a time by either reader (whole text or chunks), so both number lines, skip
 * blanks, cap and sort alike.
 */
class RecordCollector {
  readonly #file: string
  readonly #maxRecords: number
  readonly #records: AccessRecord[] = []
  #sorted = true
  /** Lines taken so far: the 1-based number of the last one. */
  lines = 0
  truncated = false

  constructor(file: string, maxRecords: number) {
    this.#file = file
    this.#maxRecords = maxRecords
  }

  /**
   * Takes the next line. False once the cap is reached (the line is not kept). The cap counts records, not lines:
   * a blank line after the last record kept does not make the log truncated.
   * @throws AccessLogError for a bad record.
   */
  take(raw: string): boolean {
    this.lines++
    const text = raw.trim()
    if (text === '') return true
    if (this.#records.length >= this.#maxRecords) {
      this.truncated = true
      return false
    }
    const record = parseAccessLine(text, this.#file, this.lines)
    const last = this.#records[this.#records.length - 1]
    if (last !== undefined && record.t < last.t) this.#sorted = false
    this.#records.push(record)
    return true
  }

  /** The records, sorted by time (stable: a log merged from several processes may be slightly out of order). */
  done(): AccessLogFile {
    if (!this.#sorted) this.#records.sort((a, b) => a.t - b.t)
    return { records: this.#records, truncated: this.truncated }
  }
}

function countLines(text: string): number {
  let n = 1
  for (let i = text.indexOf('\n'); i !== -1; i = text.indexOf('\n', i + 1)) n++
  return n
}

/** Parses one non-blank line. */
export function parseAccessLine(raw: string, file: string, line: number): AccessRecord {
  if (raw.length > MAX_LINE_LENGTH) {
    throw new AccessLogError(file, line, `the line is longer than ${MAX_LINE_LENGTH} characters`)
  }
  let value: unknown
  try {
    value = JSON.parse(raw)
  } catch {
    throw new AccessLogError(file, line, 'not JSON')
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new AccessLogError(file, line, 'not a JSON object')
  }
  const { t, ns, k, o, s } = value as Record<string, unknown>
  if (typeof t !== 'number' || !Number.isSafeInteger(t) || t < 0) {
    throw new AccessLogError(file, line, '`t` must be the time in epoch milliseconds (a whole number)')
  }
  if (typeof ns !== 'string' || ns === '') {
    throw new AccessLogError(file, line, '`ns` must be the namespace name (a non-empty string)')
  }
  if (typeof k !== 'string' || !HEX.test(k)) {
    throw new AccessLogError(file, line, '`k` must be the key hash in hex (1 to 64 hex digits)')
  }
  if (o !== 'l1' && o !== 'l2' && o !== 'miss') {
    throw new AccessLogError(file, line, '`o` must be "l1", "l2" or "miss"')
  }
  if (typeof s !== 'number' || !Number.isSafeInteger(s) || s < 0) {
    throw new AccessLogError(file, line, '`s` must be the value size in bytes (a whole number, 0 if unknown)')
  }
  return { t, ns, k: k.toLowerCase(), o, s }
}
