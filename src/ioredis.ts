// Public entry of 'stratacache/ioredis': the Redis L2 store on ioredis (needs the `ioredis` package, version 5).
export {
  ioredisStore,
  IoredisStore,
  type IoredisStoreOptions,
  type IoredisClientLike,
} from './tiers/ioredis-store.js'
