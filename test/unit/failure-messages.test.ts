// What people read when something fails: rounded durations, operations in their words, causes that say what to check.
import { readFileSync } from 'node:fs'
import {
  describeL2Operation,
  L2_OPERATIONS,
  L2CircuitOpenError,
  L2Error,
  L2TimeoutError,
  L2UnavailableError,
  LoaderTimeoutError,
} from 'stratacache'
import { describe, expect, it } from 'vitest'
import { formatDuration } from '../../src/core/format-duration.js'

describe('formatDuration', () => {
  it.each([
    [0, '0 ms'],
    [0.2, 'under 1 ms'],
    [1, '1 ms'],
    [150, '150 ms'],
    [999.4, '999 ms'],
    [999.6, '1 s'],
    [1_500, '1.5 s'],
    [1999.5397160000002, '2 s'],
    [12_345, '12 s'],
    [59_960, '1 min'],
    [90_000, '1.5 min'],
    [3_600_000, '1 h'],
    [5_400_000, '1.5 h'],
    [86_400_000 * 2, '2 d'],
    [2_147_483_647, '25 d'],
    [Infinity, 'forever'],
    [-1_500, '-1.5 s'],
  ])('prints %j ms as %j', (ms, text) => {
    expect(formatDuration(ms)).toBe(text)
  })

  it('is what error messages print: no float, no raw millisecond count above a second', () => {
    expect(new L2CircuitOpenError(1999.5397160000002, 'get').message).toContain('try Redis again in 2 s.')
    expect(new L2TimeoutError('get', 100).message).toContain('did not answer within 100 ms')
    expect(new LoaderTimeoutError('product', 'k', 30_000).message).toContain('did not settle within 30 s')
    expect(new L2UnavailableError(2_000).message).toContain('within 2 s')
  })
})

describe('L2 operations in the words of the user', () => {
  it('has a phrase for every operation the L2 guard runs', () => {
    const guard = readFileSync(new URL('../../src/policies/l2-guard.ts', import.meta.url), 'utf8')
    const operations = [...guard.matchAll(/#run\(\s*'([A-Za-z]+)'/g)].map((m) => m[1]!)
    expect(operations.length).toBeGreaterThan(30)
    expect(operations.filter((operation) => !Object.hasOwn(L2_OPERATIONS, operation))).toEqual([])
  })

  it('names the operation in messages and keeps the internal name in `operation`', () => {
    const error = new L2Error('getVersion', { cause: new Error('The client is closed.') })
    expect(error.operation).toBe('getVersion')
    expect(error.message).toMatch(
      /^Reading the namespace's generation \(its invalidateAll counter\) from Redis failed: The client is closed\. Reads/,
    )
    expect(new L2TimeoutError('set', 100)).toMatchObject({
      operation: 'set',
      message: expect.stringMatching(/^Writing an entry to Redis did not answer within 100 ms/) as unknown,
    })
    expect(new L2CircuitOpenError(500, 'getMany')).toMatchObject({
      operation: 'getMany',
      retryInMs: 500,
      message: expect.stringMatching(
        /^Reading entries from Redis was skipped: the circuit breaker is open/,
      ) as unknown,
    })
    expect(describeL2Operation('somethingNew')).toBe('the Redis call `somethingNew`')
  })
})
