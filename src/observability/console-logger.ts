// The logger a cache uses when given none: warnings and errors on stderr, one line each, repeats held back.
import type { Logger } from '../options.js'
import { formatDuration } from '../core/format-duration.js'

/** A level of `Logger`, lowest first. */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error'

const LEVELS: readonly LogLevel[] = ['debug', 'info', 'warn', 'error']

export interface ConsoleLoggerOptions {
  /** The lowest level written: `'info'` adds state changes that need no action (L2 ready, policy updates). @default 'warn' */
  level?: LogLevel
  /**
   * Where lines go: anything with `write(text)`. Read at each line, so a test can spy on `process.stderr.write`.
   * @default process.stderr
   */
  stream?: { write(text: string): unknown }
  /**
   * A line identical to one written less than this long ago (in ms) is held back; the next one written says how
   * many were. The cache itself logs state changes, not calls, so this only guards against a flood. An outage's
   * lines are never held back as repeats of an earlier outage: the line saying Redis is back (field `outage: 'end'`)
   * makes the logger forget the lines that began outages of that service, and the next outage's line the last end.
   * @default 60_000
   */
  repeatWindowMs?: number
}

const PREFIX = 'stratacache: '

/** The `outage` field of the lines that begin and end an L2 outage (src/observability/l2-outage-log.ts). */
type OutageEdge = 'begin' | 'end'

/** Lines remembered for the repeat window; past this, the oldest is forgotten. */
const MAX_REMEMBERED = 256

/**
 * A logger that writes warnings and errors (or from `level` up) to stderr, one line each, errors marked:
 * `stratacache: cannot reach Redis at 127.0.0.1:6390 (…). … [service=catalog]`, `stratacache: error: …`. The cache's default when
 * `createCache` gets no `logger`; pass `logger: false` to silence it, or your own logger (pino…) instead.
 * @example createCache({ service: 'catalog', logger: consoleLogger({ level: 'info' }) })
 */
export function consoleLogger(options: ConsoleLoggerOptions = {}): Logger {
  const level = options.level ?? 'warn'
  if (!LEVELS.includes(level)) throw new TypeError(`consoleLogger: level must be one of ${LEVELS.join(', ')}`)
  const lowest = LEVELS.indexOf(level)
  const windowMs = options.repeatWindowMs ?? 60_000
  /** Lines written lately; `outage` marks a line that began (or ended) an outage of `service`. */
  const recent = new Map<string, { at: number; held: number; outage?: OutageEdge; service?: unknown }>()
  const write = (at: LogLevel) => (fields: object, message: string) => {
    if (LEVELS.indexOf(at) < lowest) return
    const text = message.startsWith(PREFIX) ? message.slice(PREFIX.length) : message
    const line = `${PREFIX}${at === 'error' ? 'error: ' : ''}${text}${context(fields)}`
    const key = `${at} ${line}`
    const now = performance.now()
    const { outage, service } = fields as { outage?: unknown; service?: unknown }
    const edge = outage === 'begin' || outage === 'end' ? outage : undefined
    if (edge !== undefined) {
      // A recovery ends the outage its lines were about: the next outage, even for the same reason within the
      // window, is news and must be printed (and so must the recovery after it).
      for (const [k, r] of recent)
        if (r.outage !== undefined && r.outage !== edge && r.service === service) recent.delete(k)
    }
    const seen = recent.get(key)
    if (seen !== undefined && now - seen.at < windowMs) {
      seen.held++
      return
    }
    recent.delete(key)
    if (recent.size >= MAX_REMEMBERED) recent.delete(recent.keys().next().value!)
    recent.set(key, edge === undefined ? { at: now, held: 0 } : { at: now, held: 0, outage: edge, service })
    const held =
      seen !== undefined && seen.held > 0
        ? ` (${seen.held} more like it held back in the ${formatDuration(now - seen.at)} before)`
        : ''
    const stream = options.stream ?? process.stderr
    stream.write(`${line}${held}\n`)
  }
  return { debug: write('debug'), info: write('info'), warn: write('warn'), error: write('error') }
}

/** The fields that say which cache and namespace a line is about, as ` [service=catalog namespace=order]`. */
function context(fields: object): string {
  const parts: string[] = []
  for (const name of ['service', 'namespace'] as const) {
    const value = (fields as Record<string, unknown>)[name]
    if (typeof value === 'string') parts.push(`${name}=${value}`)
  }
  return parts.length === 0 ? '' : ` [${parts.join(' ')}]`
}
