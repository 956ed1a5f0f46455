// The cluster harness itself: a real 3-master Redis Cluster starts, serves every slot, and stops cleanly.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startRedisCluster, type RedisCluster } from '../helpers/redis-cluster.js'

let cluster: RedisCluster
beforeAll(async () => {
  cluster = await startRedisCluster({ masters: 3, replicas: 1 })
}, 30_000)
afterAll(async () => {
  await cluster?.stop()
})

describe('the Redis Cluster harness', () => {
  it('starts 3 masters and 3 replicas that cover all 16,384 slots', async () => {
    const roles = await Promise.all(cluster.nodes.map((node) => cluster.role(node)))
    expect(roles.filter((role) => role === 'master')).toHaveLength(3)
    expect(roles.filter((role) => role === 'slave')).toHaveLength(3)
    const info = await cluster.nodes[0]!.command('CLUSTER', 'INFO')
    expect(info).toContain('cluster_slots_assigned:16384')
    const owner = await cluster.masterOf(0)
    expect(await cluster.role(owner)).toBe('master')
    expect(await cluster.onMasters('DBSIZE')).toHaveLength(3)
  })
})
