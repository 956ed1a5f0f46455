// The audit record of an administrative purge, and the append-only sink interface it is written to.

/** One line of the audit log. A purge writes two records with one `id`: `requested` before it runs, then its outcome. */
export interface AuditRecord {
  /** Shared by the `requested` record of a purge and its outcome record. */
  readonly id: string
  /** `requested` is written (and must succeed) before anything is purged; then `completed` or `failed`. */
  readonly phase: 'requested' | 'completed' | 'failed'
  /** When this record was made, ISO 8601 UTC from the cache's clock. */
  readonly at: string
  readonly service: string
  readonly action: 'purge'
  /** Who asked: a user, an operator, a job. */
  readonly actor: string
  /** Why: an incident, a ticket, a data-subject request. */
  readonly reason: string
  /** What: a whole namespace, a tag in every namespace, or a tag in one namespace. */
  readonly target: { readonly namespace?: string; readonly tag?: string }
  /** How many L2 entries were deleted (`completed` only). */
  readonly keysDeleted?: number
  /** Time the purge took, in ms (outcome records only). */
  readonly durationMs?: number
  /** The error's code or message (`failed` only). */
  readonly error?: string
}

/** What `AuditSink.append` receives besides the record. */
export interface AuditAppendContext {
  /**
   * Aborted when the cache stops waiting for this record (`timeouts.audit`) or closes: a sink that has not written
   * it yet should not (pass it to your HTTP client or driver), since the purge it describes was refused or already
   * reported. Read it only if you use it: the signal is made on first read.
   */
  readonly signal: AbortSignal
}

/**
 * An append-only destination for audit records. `append` resolves once the record is durably stored, and rejects
 * if it could not be: a purge whose request cannot be recorded does not run. Each append is bounded by the cache's
 * `timeouts.audit`, and told through `context.signal` when the cache no longer waits for it.
 */
export interface AuditSink {
  append(record: AuditRecord, context?: AuditAppendContext): Promise<void>
}
