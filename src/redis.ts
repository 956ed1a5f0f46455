// Public entry of 'stratacache/redis': the Redis L2 store (needs the `redis` package, node-redis 6).
export {
  redisStore,
  RedisStore,
  type RedisStoreOptions,
  type RedisClientLike,
  type RedisTlsOptions,
} from './tiers/redis-store.js'
export { redisStreamAuditSink, type RedisStreamAuditSinkOptions } from './audit/redis-stream-sink.js'
