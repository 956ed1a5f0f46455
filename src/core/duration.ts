// Durations in options: milliseconds as a number, or a string such as '250ms', '30s', '5m', '1h', '1d'.
import { InvalidOptionError } from '../errors.js'

/** A duration: milliseconds as a number, or a string with a unit (`ms`, `s`, `m`, `h`, `d`), e.g. `'30s'`. */
export type Duration = number | `${number}${DurationUnit}`
type DurationUnit = 'ms' | 's' | 'm' | 'h' | 'd'

const unitMs: Record<DurationUnit, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 }
const pattern = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)$/

/**
 * Parses a duration option into whole milliseconds.
 * @throws InvalidOptionError naming `option` when the value is not a non-negative duration.
 */
export function parseDuration(value: unknown, option: string): number {
  if (typeof value === 'number') {
    if (Number.isFinite(value) && value >= 0) return Math.round(value)
  } else if (typeof value === 'string') {
    const match = pattern.exec(value.trim())
    if (match) return Math.round(Number(match[1]) * unitMs[match[2] as DurationUnit])
  }
  throw new InvalidOptionError(
    option,
    value,
    "a non-negative number of milliseconds or a string such as '250ms', '30s', '5m', '1h' or '1d'",
  )
}
