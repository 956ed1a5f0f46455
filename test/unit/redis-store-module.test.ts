// redis-store.ts loads node-redis only when it makes a client (it is shared with stratacache/ioredis): the constant
// it copies from node-redis must stay node-redis's.
import { RESP_TYPES } from 'redis'
import { describe, expect, it } from 'vitest'
import { BLOB_STRING } from '../../src/tiers/redis-store.js'

describe('redis-store module', () => {
  it("pins node-redis's RESP_TYPES.BLOB_STRING", () => {
    expect(BLOB_STRING).toBe(RESP_TYPES.BLOB_STRING)
  })
})
