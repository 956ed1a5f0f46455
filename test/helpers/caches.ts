// Makes caches for a test file and closes them after each test, so no test leaves timers or sockets behind.
import { createCache, type Cache, type CacheOptions } from 'stratacache'
import { afterEach } from 'vitest'

/** Returns `newCache(options)`: a cache for `service` (random fixed at 0: no jitter) closed after each test. */
export function cacheFactory(service: string): (options?: Partial<CacheOptions>) => Cache {
  const caches: Cache[] = []
  afterEach(async () => {
    await Promise.all(caches.splice(0).map((c) => c.close()))
  })
  return (options = {}) => {
    const cache = createCache({ service, random: () => 0, ...options })
    caches.push(cache)
    return cache
  }
}
