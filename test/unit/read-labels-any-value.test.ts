// Counting reads per label set never throws, whatever value a `labels` function hands back.
import { describe, expect, it } from 'vitest'
import { LabeledCounters, OTHER_LABEL, type ReadLabels } from '../../src/observability/labels.js'
import { cacheFactory } from '../helpers/caches.js'

const newCache = cacheFactory('unit-labels')

function tenantOf(value: unknown): string {
  const counters = new LabeledCounters<unknown>(() => ({ tenant: value }) as unknown as ReadLabels, 10)
  counters.count(undefined, 'misses')
  const [set] = counters.snapshot()
  expect(set!.misses).toBe(1)
  return set!.labels.tenant
}

describe('read labels', () => {
  it('counts a bigint, a symbol or a circular object label value without throwing', () => {
    const circular: Record<string, unknown> = { id: 't1' }
    circular['self'] = circular
    expect(tenantOf(7n)).toBe('7')
    expect(tenantOf(Symbol('t1'))).toBe('Symbol(t1)')
    expect(tenantOf(circular)).toBe('[object Object]')
  })

  it('keeps strings as they are and writes numbers and plain objects as JSON, as before', () => {
    expect(tenantOf('t1')).toBe('t1')
    expect(tenantOf(42)).toBe('42')
    expect(tenantOf({ id: 1 })).toBe('{"id":1}')
    expect(tenantOf(undefined)).toBe('')
    expect(tenantOf(null)).toBe('')
  })

  it('falls back to _other for a value that cannot be written at all, or a labels result whose getter throws', () => {
    const hostile = {
      toJSON() {
        throw new Error('no JSON')
      },
      toString() {
        throw new Error('no text')
      },
    }
    expect(tenantOf(Object.create(null))).toBe('{}')
    expect(tenantOf(hostile)).toBe(OTHER_LABEL)
    const counters = new LabeledCounters<unknown>(
      () => ({
        get tenant(): string {
          throw new Error('getter')
        },
      }),
      10,
    )
    expect(() => counters.count(undefined, 'l1Hits')).not.toThrow()
    expect(counters.overflowed).toBe(1)
  })

  it('lets every read of a key load again when the labels function passes a bigint tenant id through (d14)', async () => {
    let loads = 0
    const ns = newCache({ l1: false }).namespace('item', {
      key: 't:{tenantId}:i:{id}',
      ttl: '1m',
      labels: ({ tenantId }) => ({ tenant: tenantId as unknown as string }),
      load: ({ id }) => {
        loads++
        return `v${id}`
      },
    })
    for (let i = 0; i < 3; i++) expect(await ns.get({ tenantId: 7n, id: 1 })).toBe('v1')
    expect(loads).toBe(3)
    expect(ns.stats().byLabels).toEqual([
      { labels: { tenant: '7', region: '', endpoint: '' }, l1Hits: 0, l2Hits: 0, misses: 3 },
    ])
  })
})
