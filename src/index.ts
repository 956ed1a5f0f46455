// Public entry of 'stratacache': re-exports only.
export {
  createCache,
  Cache,
  type CacheStats,
  type CloseOptions,
  type PurgeRequest,
  type PurgeResult,
} from './cache.js'
export {
  Namespace,
  type NamespaceStats,
  type CheckedParams,
  type PolicyPatch,
  type WarmOptions,
  type WarmProgress,
  type WarmResult,
  type WarmStartResult,
} from './namespace.js'
export type {
  CacheOptions,
  L1Options,
  NamespaceOptions,
  LoadContext,
  Duration,
  Logger,
  PolicyException,
  WarmUpJob,
  CompressionOptions,
  RegionsOptions,
  RegionPeer,
} from './options.js'
export type { RegionStats, RegionPeerStats, RegionSplitReport } from './regions/region-relay.js'
export type { StartupStats } from './observability/startup.js'
export type { WriteContext, QueuedWrite } from './write/write-behind.js'
export type { KeyRing } from './codecs/encryption.js'
export type { CompressionAlgorithm } from './codecs/compression.js'
export type { RedactOption } from './codecs/redaction.js'
export type { Classification } from './policies/classification.js'
export type { AuditAppendContext, AuditRecord, AuditSink } from './audit/audit-sink.js'
export { jsonLinesAuditSink, type JsonLinesAuditSinkOptions } from './audit/json-lines-sink.js'
export {
  MemoryStore,
  estimateSize,
  type MemoryStoreOptions,
  type MemorySetOptions,
} from './tiers/memory-store.js'
export type {
  L2Store,
  L2Status,
  L2StoreEvent,
  L2StoreStats,
  L2Write,
  L2Failure,
  QueueEntry,
  PendingQueueEntry,
} from './tiers/l2-store.js'
export type { Clock } from './core/clock.js'
export type {
  Scalar,
  ScalarTypeName,
  KeyParams,
  KeyParamNames,
  ParamTypes,
  Placeholders,
  TypedKeyParams,
} from './core/keys.js'
export { jsonSerializer, type Serializer } from './codecs/serializer.js'
export type { Entry } from './codecs/envelope.js'
export type { CircuitState } from './policies/circuit-breaker.js'
export { LATENCY_BUCKETS_MS, quantileMs, type HistogramSnapshot } from './observability/histogram.js'
export type { SloReport, SloObjective } from './observability/slo.js'
export { OTHER_LABEL, type ReadLabels, type LabeledReads } from './observability/labels.js'
export type { AccessLogOptions, AccessRecord } from './observability/access-log.js'
export { consoleLogger, type ConsoleLoggerOptions, type LogLevel } from './observability/console-logger.js'
export {
  channelNames,
  tracingChannelNames,
  type GetTraceContext,
  type GetManyTraceContext,
  type LoadTraceContext,
  type HitMessage,
  type MissMessage,
  type LoadMessage,
  type L2ErrorMessage,
  type L2ErrorReplyMessage,
  type L2StateMessage,
  type DecodeErrorMessage,
  type SerializeErrorMessage,
  type L2BudgetMessage,
  type WriteBehindFailedMessage,
  type WriteBehindDeadLetterMessage,
  type SloMessage,
  type SecurityMessage,
  type RegionSplitMessage,
} from './observability/channels.js'
export {
  inspectRedis,
  type InspectOptions,
  type InspectRedisOptions,
  type InspectTarget,
  type InspectWarning,
  type InspectWarningCode,
  type NamespaceReport,
  type Reading,
  type RedisReport,
} from './observability/inspect.js'
export type { L2Answer } from './tiers/l2-store.js'
export * from './errors.js'
