// Durations in messages and log lines, rounded for people: `150 ms`, `2 s`, `1.5 min`. Every message uses it.

/** Each unit, its size in ms, and how many of it make the next unit (where a rounded value moves up). */
const UNITS: readonly (readonly [unit: string, ms: number, next: number])[] = [
  ['ms', 1, 1_000],
  ['s', 1_000, 60],
  ['min', 60_000, 60],
  ['h', 3_600_000, 24],
  ['d', 86_400_000, Infinity],
]

/**
 * A duration in milliseconds as people read it: the largest unit it reaches, one decimal below 10 of that unit and
 * none above (`150 ms`, `1.5 s`, `2 s` for 1999.54, `12 s`, `1.5 min`, `25 d`). Every error message and log line
 * prints durations through this function, so none shows a float such as `1999.5397160000002 ms`. Exact values
 * stay in the errors' and log fields' numbers (`timeoutMs`, `retryInMs`, `downMs`).
 */
export function formatDuration(ms: number): string {
  if (Number.isNaN(ms)) return 'an unknown time'
  if (ms < 0) return `-${formatDuration(-ms)}`
  if (ms === Infinity) return 'forever'
  if (ms > 0 && ms < 0.5) return 'under 1 ms'
  let text = ''
  for (const [unit, size, next] of UNITS) {
    const value = ms / size
    const rounded = unit === 'ms' || value >= 10 ? Math.round(value) : Math.round(value * 10) / 10
    text = `${rounded} ${unit}`
    // 59.96 s rounds to 60 s: say 1 min instead.
    if (rounded < next) break
  }
  return text
}
