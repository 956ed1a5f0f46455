// Deterministic text for durations, shares and counts in CLI output (no locale or clock dependence).

const units: readonly (readonly [string, number])[] = [
  ['d', 86_400_000],
  ['h', 3_600_000],
  ['m', 60_000],
  ['s', 1_000],
  ['ms', 1],
]

/** `300000` → `'5m'`, `90500` → `'1m 30s 500ms'`, `0` → `'0ms'`. */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms)) return 'unbounded'
  let rest = Math.round(ms)
  if (rest === 0) return '0ms'
  const parts: string[] = []
  for (const [unit, size] of units) {
    const whole = Math.floor(rest / size)
    if (whole > 0) {
      parts.push(`${whole}${unit}`)
      rest -= whole * size
    }
  }
  return parts.join(' ')
}

/** `0.001` → `'0.1%'`, `0.61234` → `'61.23%'` (at most `digits` decimals, trailing zeros dropped). */
export function formatShare(share: number, digits = 2): string {
  if (!Number.isFinite(share)) return 'n/a'
  const percent = share * 100
  // Shares below 1% keep enough digits to stay visible (an SLO of 0.001% must not print as 0%).
  const decimals = percent !== 0 && Math.abs(percent) < 1 ? Math.max(digits, 4) : digits
  return `${Number(percent.toFixed(decimals))}%`
}

/** `12345` → `'12,345'`; non-integers keep up to two decimals. */
export function formatCount(n: number): string {
  if (!Number.isFinite(n)) return 'unlimited'
  const [whole = '0', fraction] = (Math.round(n * 100) / 100).toString().split('.')
  const sign = whole.startsWith('-') ? '-' : ''
  const digits = sign === '' ? whole : whole.slice(1)
  const grouped = digits.replace(/\B(?=(\d{3})+(?!\d))/g, ',')
  return sign + grouped + (fraction === undefined ? '' : `.${fraction}`)
}
