// Durations in options: milliseconds as a number, or a string such as '250ms', '30s', '5m', '1h', '1d', '1h30m'.
import { InvalidOptionError } from '../errors.js'

type DurationUnit = 'd' | 'h' | 'm' | 's' | 'ms'
/** One `<number><unit>` part of a duration string, or nothing. */
type Part<U extends DurationUnit> = `${number}${U}` | ''

/**
 * A duration: milliseconds as a number, or a string of one or more parts `<number><unit>` with the units `d`, `h`,
 * `m`, `s`, `ms`, from the largest to the smallest, each at most once: `'30s'`, `'1.5h'`, `'1h30m'`, `'1d12h'`.
 */
export type Duration = number | Exclude<`${Part<'d'>}${Part<'h'>}${Part<'m'>}${Part<'s'>}${Part<'ms'>}`, ''>

const unitMs: Record<DurationUnit, number> = { d: 86_400_000, h: 3_600_000, m: 60_000, s: 1_000, ms: 1 }
/** The units from the largest: a part's unit must come after the previous part's in this list. */
const unitOrder: readonly DurationUnit[] = ['d', 'h', 'm', 's', 'ms']
// `ms` before `m` and `s`: in '5ms' the unit is ms. Sticky, so the parts must follow each other with nothing between.
const partPattern = /\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)/y

const EXPECTED =
  "a non-negative number of milliseconds or a string such as '250ms', '30s', '5m', '1h', '1d' or '1h30m'"

/**
 * Parses a duration option into whole milliseconds. A compound string is the sum of its parts, rounded once:
 * `'1h30m'` is 5,400,000.
 * @throws InvalidOptionError naming `option` when the value is not a non-negative duration, or when the units of a
 * compound are out of order or repeated (`'30m1h'`, `'1m1m'`: more likely a mistake than meant).
 */
export function parseDuration(value: unknown, option: string): number {
  if (typeof value === 'number') {
    if (Number.isFinite(value) && value >= 0) return Math.round(value)
  } else if (typeof value === 'string') {
    const parsed = parseText(value.trim())
    if (typeof parsed === 'number') return parsed
    if (parsed === 'out-of-order') {
      throw new InvalidOptionError(
        option,
        value,
        "units from the largest to the smallest (d, h, m, s, ms), each at most once, e.g. '1h30m' or '2m30s'",
      )
    }
  }
  throw new InvalidOptionError(option, value, EXPECTED)
}

function parseText(text: string): number | 'malformed' | 'out-of-order' {
  let total = 0
  let previous = -1
  let outOfOrder = false
  partPattern.lastIndex = 0
  while (partPattern.lastIndex < text.length) {
    const match = partPattern.exec(text)
    if (match === null) return 'malformed'
    const unit = match[2] as DurationUnit
    const rank = unitOrder.indexOf(unit)
    // Read on to the end first: garbage later in the text is reported as garbage, not as an ordering problem.
    if (rank <= previous) outOfOrder = true
    previous = rank
    total += Number(match[1]) * unitMs[unit]
  }
  // No part at all (''), or digits past what a number can hold.
  if (previous === -1 || !Number.isFinite(total)) return 'malformed'
  if (outOfOrder) return 'out-of-order'
  return Math.round(total)
}
