// How a cluster store combines its masters' INFO and CONFIG GET answers into one (combineMasters), and which key
// routes a command (routingKey).
import { describe, expect, it } from 'vitest'
import { combineMasters, routingKey } from '../../src/tiers/redis-cluster-store.js'

describe('combineMasters', () => {
  it('adds up integer fields of summed sections, and keeps agreeing text fields', () => {
    const combined = combineMasters(
      [
        { used_memory: '100', maxmemory_policy: 'allkeys-lru' },
        { used_memory: '250', maxmemory_policy: 'allkeys-lru' },
      ],
      true,
      ['10.0.0.1:7000', '10.0.0.2:7000'],
    )
    expect(combined).toEqual({ used_memory: '350', maxmemory_policy: 'allkeys-lru', cluster_masters: '2' })
  })

  it('totals maxmemory, or says no limit (0) when one master has none', () => {
    expect(combineMasters([{ maxmemory: '100' }, { maxmemory: '200' }], false)['maxmemory']).toBe('300')
    expect(combineMasters([{ maxmemory: '100' }, { maxmemory: '0' }], false)['maxmemory']).toBe('0')
  })

  it("keeps the first master's value of a field the masters disagree on, and lists each master's beside it", () => {
    const combined = combineMasters(
      [
        { redis_version: '7.2.4', tcp_port: '7000' },
        { redis_version: '7.0.15', tcp_port: '7001' },
      ],
      false,
      ['a:1', 'b:2'],
    )
    expect(combined).toMatchObject({
      redis_version: '7.2.4',
      'redis_version@a:1': '7.2.4',
      'redis_version@b:2': '7.0.15',
      tcp_port: '7000',
    })
  })
})

describe('routingKey', () => {
  it("routes XINFO and XGROUP by their stream (the third word), so they reach the node owning the stream's slot", () => {
    expect(routingKey(['XINFO', 'STREAM', 'svc#outbox{svc.regions.eu}:us'])).toBe(
      'svc#outbox{svc.regions.eu}:us',
    )
    expect(routingKey(['XINFO', 'GROUPS', 's'])).toBe('s')
    expect(routingKey(['XGROUP', 'SETID', 's', 'relay', '0-0', 'ENTRIESREAD', '3'])).toBe('s')
    expect(routingKey(['XADD', 's', 'MAXLEN', '~', '5', '*', 'v', '1'])).toBe('s')
  })
})
