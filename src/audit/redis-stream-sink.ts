// An audit sink appending each record to a Redis stream (XADD), readable with XRANGE / XREAD by other tools.
import { InvalidOptionError } from '../errors.js'
import type { RedisClientLike } from '../tiers/redis-store.js'
import type { RedisClusterLike } from '../tiers/redis-cluster-store.js'
import type { AuditAppendContext, AuditRecord, AuditSink } from './audit-sink.js'

export interface RedisStreamAuditSinkOptions {
  /**
   * A connected node-redis client, or cluster client (`createCluster()`), whose owner connects and closes it. It may
   * be the one the cache's store uses.
   */
  client: Pick<RedisClientLike, 'sendCommand'> | Pick<RedisClusterLike, 'sendCommand' | 'masters'>
  /** The stream's key. @default 'stratacache:audit' */
  stream?: string
  /** Trim the stream to about this many entries on each append (`MAXLEN ~`). @default no trimming */
  maxLength?: number
}

/**
 * Appends each record to a Redis stream: one entry per record, fields `id`, `phase`, `at`, `service`, `action`,
 * `actor`, `reason`, `namespace` and `tag` (when set), `keysDeleted`, `durationMs`, `error` (when set).
 * Keep the stream on a Redis with persistence (AOF) if the log must survive a restart.
 *
 * @example
 * const client = createClient({ url }); await client.connect()
 * createCache({ service: 'catalog', l2, audit: redisStreamAuditSink({ client }) })
 */
export function redisStreamAuditSink(options: RedisStreamAuditSinkOptions): AuditSink {
  if (options === null || typeof options !== 'object' || typeof options.client?.sendCommand !== 'function') {
    throw new InvalidOptionError('redisStreamAuditSink.client', options?.client, 'a node-redis client')
  }
  const stream = options.stream ?? 'stratacache:audit'
  if (typeof stream !== 'string' || stream.length === 0) {
    throw new InvalidOptionError('redisStreamAuditSink.stream', stream, 'a non-empty key name')
  }
  const { maxLength } = options
  if (maxLength !== undefined && (!Number.isSafeInteger(maxLength) || maxLength < 1)) {
    throw new InvalidOptionError(
      'redisStreamAuditSink.maxLength',
      maxLength,
      'a positive whole number of entries',
    )
  }
  const client = options.client
  // A cluster client routes by the key it is given: the stream's (one key, so any slot will do).
  // With the append's signal, node-redis drops the command from its offline queue when the cache gives up on it:
  // a record of a refused purge is not written once the client reconnects.
  const send =
    'masters' in client
      ? (args: string[], signal?: AbortSignal) =>
          client.sendCommand(stream, false, args, signal === undefined ? undefined : { abortSignal: signal })
      : (args: string[], signal?: AbortSignal) =>
          client.sendCommand(args, signal === undefined ? undefined : { abortSignal: signal })
  return {
    async append(record: AuditRecord, context?: AuditAppendContext): Promise<void> {
      const fields: string[] = [
        'id',
        record.id,
        'phase',
        record.phase,
        'at',
        record.at,
        'service',
        record.service,
        'action',
        record.action,
        'actor',
        record.actor,
        'reason',
        record.reason,
      ]
      if (record.target.namespace !== undefined) fields.push('namespace', record.target.namespace)
      if (record.target.tag !== undefined) fields.push('tag', record.target.tag)
      if (record.keysDeleted !== undefined) fields.push('keysDeleted', String(record.keysDeleted))
      if (record.durationMs !== undefined) fields.push('durationMs', String(record.durationMs))
      if (record.error !== undefined) fields.push('error', record.error)
      const trim = maxLength === undefined ? [] : ['MAXLEN', '~', String(maxLength)]
      await send(['XADD', stream, ...trim, '*', ...fields], context?.signal)
    },
  }
}
