// Duration options: milliseconds, one `<number><unit>` part, or a compound of parts from the largest unit down.
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { parseDuration } from '../../src/core/duration.js'

const units = [
  ['d', 86_400_000],
  ['h', 3_600_000],
  ['m', 60_000],
  ['s', 1_000],
  ['ms', 1],
] as const

describe('parseDuration', () => {
  it.each([
    [250, 250],
    [0.4, 0],
    ['250ms', 250],
    ['30s', 30_000],
    ['5m', 300_000],
    ['1.5h', 5_400_000],
    ['1d', 86_400_000],
    [' 2s ', 2_000],
    ['30 s', 30_000],
    ['0s', 0],
  ])('reads %j as %d ms', (value, ms) => {
    expect(parseDuration(value, 'ttl')).toBe(ms)
  })

  it.each([
    ['1h30m', 5_400_000],
    ['2m30s', 150_000],
    ['1d12h', 129_600_000],
    ['1m30s500ms', 90_500],
    ['1h 30m', 5_400_000],
    ['1.5m30s', 120_000],
    ['1d2h3m4s5ms', 93_784_005],
  ])('reads the compound %j as %d ms', (value, ms) => {
    expect(parseDuration(value, 'ttl')).toBe(ms)
  })

  it.each([
    '',
    ' ',
    '5',
    '5 minutes',
    '1h30',
    '1h30mx',
    'h1',
    '-1s',
    '1e3ms',
    '1,5h',
    '1h-30m',
    '9'.repeat(400) + 'd',
    -1,
    Number.NaN,
    Infinity,
    null,
    undefined,
    {},
  ])('refuses %j with ERR_STRATA_INVALID_OPTION naming the option and the accepted forms', (value) => {
    const attempt = () => parseDuration(value, 'product.ttl')
    expect(attempt).toThrow(
      expect.objectContaining({ code: 'ERR_STRATA_INVALID_OPTION', option: 'product.ttl', value }) as Error,
    )
    expect(attempt).toThrow(/'250ms', '30s', '5m', '1h', '1d' or '1h30m'/)
  })

  it.each(['30m1h', '1m1m', '1ms5s', '1s1d'])(
    'refuses %j: units out of order or repeated are more likely a mistake than meant',
    (value) => {
      expect(() => parseDuration(value, 'ttl')).toThrow(/from the largest to the smallest .*'1h30m'/)
    },
  )

  it('reads a compound as the sum of its parts (property)', () => {
    // Any non-empty subset of the units, largest first, each with a whole count.
    const compound = fc
      .tuple(...units.map(() => fc.option(fc.nat({ max: 100_000 }), { nil: undefined })))
      .filter((counts) => counts.some((c) => c !== undefined))
      .map((counts) => counts.flatMap((count, i) => (count === undefined ? [] : [`${count}${units[i]![0]}`])))
    fc.assert(
      fc.property(compound, fc.constantFrom('', ' '), (parts, gap) => {
        const sum = parts.reduce((total, part) => total + parseDuration(part, 'part'), 0)
        expect(parseDuration(parts.join(gap), 'whole')).toBe(sum)
      }),
    )
  })
})
