// Public entry of 'stratacache/redis': the Redis L2 stores (need the `redis` package, node-redis 6).
export {
  redisStore,
  RedisStore,
  type RedisStoreOptions,
  type RedisClientLike,
  type RedisTlsOptions,
} from './tiers/redis-store.js'
export {
  redisClusterStore,
  RedisClusterStore,
  type RedisClusterStoreOptions,
  type RedisClusterLike,
  type RedisClusterNodeLike,
} from './tiers/redis-cluster-store.js'
export { redisStreamAuditSink, type RedisStreamAuditSinkOptions } from './audit/redis-stream-sink.js'
