// Vitest global setup: one shared redis-server for integration tests; fault tests start their own.
import type {} from 'vitest'
import type { TestProject } from 'vitest/node'
import { startRedis } from './helpers/redis-server.js'

declare module 'vitest' {
  export interface ProvidedContext {
    redisUrl: string
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const server = await startRedis()
  project.provide('redisUrl', server.url)
  return () => server.stop()
}
