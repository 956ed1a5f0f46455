// How the ioredis cluster driver reads what ioredis tells of its sharded subscriptions. The integration test
// (test/chaos/cluster-chaos.test.ts, reshard) moves a real channel's slot; this one pins the signal it relies on:
// ioredis reports a server-sent SUNSUBSCRIBE only as a `nodeError` whose text quotes the reply.
import { EventEmitter } from 'node:events'
import { describe, expect, it } from 'vitest'
import { ioredisDriver, type IoredisClientLike } from '../../src/tiers/ioredis-store.js'

/** An ioredis `Cluster` stand-in: events, a slot map, and the two commands the driver sends. */
function fakeCluster() {
  const emitter = new EventEmitter()
  const sent: string[][] = []
  let ssubscribeFails = false
  const cluster = {
    status: 'ready',
    isCluster: true,
    slots: [] as string[][],
    on: (event: string, listener: (...args: unknown[]) => void) => emitter.on(event, listener),
    off: (event: string, listener: (...args: unknown[]) => void) => emitter.off(event, listener),
    sendCommand: (command: { name: string; args: string[]; resolve(reply: unknown): void }) => {
      sent.push([command.name, ...command.args])
      command.resolve(0)
    },
    ssubscribe: (...channels: string[]) => {
      sent.push(['SSUBSCRIBE', ...channels])
      return ssubscribeFails ? Promise.reject(new Error('MOVED')) : Promise.resolve(1)
    },
    nodes: () => [],
  }
  return {
    cluster: cluster as unknown as IoredisClientLike,
    emitter,
    sent,
    failSsubscribe: (fails: boolean) => (ssubscribeFails = fails),
  }
}

const settle = () => new Promise((resolve) => setTimeout(resolve, 10))

describe('ioredis cluster driver', () => {
  it('reports the node down as soon as it ends a subscription, and ready once the channel is subscribed again', async () => {
    const { cluster, emitter, sent } = fakeCluster()
    const driver = ioredisDriver(cluster)
    const events: string[] = []
    const stop = driver.watchNodes({
      error: () => undefined,
      down: (address) => events.push(`down ${address}`),
      ready: (address) => events.push(`ready ${address}`),
    })
    await driver.sSubscribe('svc#bus', () => undefined)
    sent.length = 0

    const ended = new Error(
      'Command queue state error. If you can reproduce this, please report it. Last reply: sunsubscribe,svc#bus,0',
    )
    emitter.emit('nodeError', ended, '10.0.0.1:7000')
    expect(events).toEqual(['down 10.0.0.1:7000'])
    await settle()
    expect(sent).toEqual([
      ['EXISTS', 'svc#bus'],
      ['SSUBSCRIBE', 'svc#bus'],
    ])
    expect(events).toEqual(['down 10.0.0.1:7000', 'ready 10.0.0.1:7000'])
    stop()
  })

  it('keeps the node down while the new subscription fails, and ignores errors about channels it does not hold', async () => {
    const { cluster, emitter, sent, failSsubscribe } = fakeCluster()
    const driver = ioredisDriver(cluster)
    const events: string[] = []
    const stop = driver.watchNodes({
      error: () => undefined,
      down: (address) => events.push(`down ${address}`),
      ready: (address) => events.push(`ready ${address}`),
    })
    await driver.sSubscribe('svc#bus', () => undefined)
    emitter.emit('nodeError', new Error('… Last reply: sunsubscribe,other#bus,0'), '10.0.0.1:7000')
    expect(events).toEqual([])

    failSsubscribe(true)
    emitter.emit('nodeError', new Error('… Last reply: sunsubscribe,svc#bus,0'), '10.0.0.1:7000')
    // The same signal again while the first attempt runs starts no second one.
    emitter.emit('nodeError', new Error('… Last reply: sunsubscribe,svc#bus,0'), '10.0.0.1:7000')
    await settle()
    expect(events).toEqual(['down 10.0.0.1:7000'])
    expect(sent.filter(([name]) => name === 'SSUBSCRIBE')).toHaveLength(2) // sSubscribe's own, and one retry

    // ioredis's own resubscription after it refreshed its map also ends the outage.
    emitter.emit('subscribersReady')
    expect(events).toEqual(['down 10.0.0.1:7000', 'ready 10.0.0.1:7000'])
    stop()
  })
})
