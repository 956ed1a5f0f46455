// The redis-server harness the suite and `stratacache drill` share: a server that cannot start says why, and a
// cluster node gets a port whose cluster bus port (+10000) exists and was free.
import { createConnection } from 'node:net'
import { describe, expect, it } from 'vitest'
import { DrillSetupError } from '../../src/errors.js'
import { startRedis } from '../helpers/redis-server.js'

const connects = (port: number) =>
  new Promise<boolean>((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port })
    socket.once('connect', () => {
      socket.destroy()
      resolve(true)
    })
    socket.once('error', () => resolve(false))
  })

describe('the redis-server harness', () => {
  it('reports a server that exits at start with the last line it logged', async () => {
    const error: unknown = await startRedis(['--no-such-directive', 'x']).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(DrillSetupError)
    expect((error as DrillSetupError).message).toMatch(
      /redis-server on port \d+ exited before answering PING \(.*Bad directive.*\)/,
    )
  })

  it('starts a cluster node on a port whose bus port (+10000) it listens on', async () => {
    const node = await startRedis(['--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf'])
    try {
      expect(node.port + 10_000).toBeLessThanOrEqual(65_535)
      expect(await connects(node.port + 10_000)).toBe(true)
    } finally {
      await node.stop()
    }
  })
})
