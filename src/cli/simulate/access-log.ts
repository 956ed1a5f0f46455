// Reads the sampled access log that `stratacache simulate` replays: one JSON record per read (docs/cli.md).
import { AccessLogError } from '../../errors.js'

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
  const records: AccessRecord[] = []
  let sorted = true
  let line = 0
  let start = 0
  while (start <= text.length) {
    let end = text.indexOf('\n', start)
    if (end === -1) end = text.length
    line++
    const raw = text.slice(start, end).trim()
    start = end + 1
    if (raw === '') continue
    const record = parseAccessLine(raw, file, line)
    const last = records[records.length - 1]
    if (last !== undefined && record.t < last.t) sorted = false
    records.push(record)
    if (onProgress !== undefined && (line & 0xffff) === 0) onProgress(line)
  }
  if (!sorted) records.sort((a, b) => a.t - b.t)
  return records
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
