// An audit sink appending one JSON object per line to a local file, synced to disk before a purge proceeds.
import { open } from 'node:fs/promises'
import { InvalidOptionError } from '../errors.js'
import type { AuditAppendContext, AuditRecord, AuditSink } from './audit-sink.js'

export interface JsonLinesAuditSinkOptions {
  /** File mode when the sink creates the file. @default 0o600 (owner read/write only) */
  mode?: number
}

/**
 * Appends each record as one line of JSON to `path` (created if missing, never truncated), and syncs it to disk
 * before `append` resolves. Appends are serialized, so lines never interleave within one process; across processes
 * each line is one `write` to a file opened in append mode.
 *
 * @example createCache({ service: 'catalog', audit: jsonLinesAuditSink('/var/log/catalog/cache-audit.jsonl') })
 */
export function jsonLinesAuditSink(path: string, options: JsonLinesAuditSinkOptions = {}): AuditSink {
  if (typeof path !== 'string' || path.length === 0) {
    throw new InvalidOptionError(
      'jsonLinesAuditSink path',
      path,
      "a file path such as '/var/log/cache-audit.jsonl'",
    )
  }
  const mode = options.mode ?? 0o600
  let tail: Promise<unknown> = Promise.resolve()
  return {
    append(record: AuditRecord, context?: AuditAppendContext): Promise<void> {
      const line = Buffer.from(JSON.stringify(record) + '\n', 'utf8')
      const write = tail.then(async () => {
        // Queued behind an append that took too long, and given up on meanwhile: not written at all.
        context?.signal.throwIfAborted()
        const file = await open(path, 'a', mode)
        try {
          await file.write(line)
          await file.datasync()
        } finally {
          await file.close()
        }
      })
      // The next append waits for this one whether it failed or not.
      tail = write.catch(() => {})
      return write
    },
  }
}
