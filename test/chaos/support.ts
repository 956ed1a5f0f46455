// Shared helpers for the integration and chaos tests: channel recorders, timing, raw Redis access, child processes.
import { spawn } from 'node:child_process'
import diagnosticsChannel from 'node:diagnostics_channel'
import { createClient, RESP_TYPES, type RedisClientType } from 'redis'
import { expect } from 'vitest'

/** Records every message published on a diagnostics channel until `stop()`. */
export function recordChannel<T>(name: string): { readonly messages: T[]; stop(): void } {
  const messages: T[] = []
  const listener = (message: unknown) => void messages.push(message as T)
  diagnosticsChannel.subscribe(name, listener)
  return { messages, stop: () => void diagnosticsChannel.unsubscribe(name, listener) }
}

/** A logger that keeps every line it gets, at every level, for assertions. */
export function recordingLogger() {
  const lines: { level: string; fields: Record<string, unknown>; message: string }[] = []
  const at = (level: string) => (fields: object, message: string) =>
    void lines.push({ level, fields: fields as Record<string, unknown>, message })
  return {
    lines,
    logger: { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') },
    /** Warnings and errors: what the default console logger would print. */
    visible: () => lines.filter((line) => line.level === 'warn' || line.level === 'error'),
  }
}

/** Runs `work` and resolves with how it settled and how long it took, never rejecting. */
export async function timed<T>(
  work: () => Promise<T>,
): Promise<{ ok: true; value: T; ms: number } | { ok: false; error: unknown; ms: number }> {
  const started = performance.now()
  try {
    const value = await work()
    return { ok: true, value, ms: performance.now() - started }
  } catch (error) {
    return { ok: false, error, ms: performance.now() - started }
  }
}

/** What a `timed` call settled with, for one assertion that shows the whole error (or value) when it fails. */
export function outcome(result: { ok: true; value: unknown } | { ok: false; error: unknown }): unknown {
  return result.ok ? { resolvedWith: result.value } : result.error
}

/** Matches an error whose `code` is one of the L2 codes (ERR_STRATA_L2_TIMEOUT, _FAILED, _CIRCUIT_OPEN…). */
export const l2ErrorCode = { code: expect.stringMatching(/^ERR_STRATA_L2_/) as unknown }

/**
 * Settles like `promise`, or rejects with a message naming `what` once `ms` have passed, so a hang fails the
 * test with a clear message instead of the test timeout.
 */
export async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not settle within ${ms} ms`)), ms)
  })
  try {
    return await Promise.race([promise, deadline])
  } finally {
    clearTimeout(timer)
  }
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

/** The `code` of an error-like value, or undefined. */
export function codeOf(error: unknown): unknown {
  return typeof error === 'object' && error !== null && 'code' in error ? error.code : undefined
}

type None = Record<never, never>
/**
 * A node-redis client replying with Buffers. Named rather than inferred: the inferred type names @redis/client by a
 * path, which tsc refuses (TS2742) when node_modules is a symlink, as in a git worktree.
 */
export type RawClient = RedisClientType<None, None, None, 3, { [RESP_TYPES.BLOB_STRING]: BufferConstructor }>

/** A node-redis client of the test's own (not the cache's), replying with Buffers, to read and plant raw bytes. */
export async function rawClient(url: string): Promise<RawClient> {
  const client = createClient({ url, socket: { reconnectStrategy: false } })
  client.on('error', () => {})
  await client.connect()
  return client.withTypeMapping({ [RESP_TYPES.BLOB_STRING]: Buffer })
}

/** Reads one counter of `INFO commandstats` (raw reply text), e.g. `calls` of `mget`; 0 when the command never ran. */
export function commandCalls(info: string, command: string): number {
  const match = new RegExp(`^cmdstat_${command}:calls=(\\d+)`, 'm').exec(info)
  return match === null ? 0 : Number(match[1])
}

/** Parses the integer of a raw RESP integer reply such as `:1234\r\n`. */
export function integerReply(reply: string): number {
  if (!reply.startsWith(':')) throw new Error(`expected an integer reply, got ${JSON.stringify(reply)}`)
  return Number(reply.slice(1).trim())
}

/**
 * Runs a TypeScript file in a child `node --import tsx` and resolves with its exit code, output and run time.
 * The child is killed (and `timedOut` set) if it has not exited by itself after `timeoutMs`.
 */
export function runChild(
  file: string,
  args: string[],
  timeoutMs: number,
): Promise<{
  code: number | null
  signal: string | null
  stdout: string
  stderr: string
  timedOut: boolean
  ms: number
}> {
  return new Promise((resolve, reject) => {
    const started = performance.now()
    const child = spawn(process.execPath, ['--import', 'tsx', file, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    let timedOut = false
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')))
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')))
    const timer = setTimeout(() => {
      timedOut = true
      child.kill('SIGKILL')
    }, timeoutMs)
    child.on('error', (error) => {
      clearTimeout(timer)
      reject(error)
    })
    child.on('exit', (code, signal) => {
      clearTimeout(timer)
      resolve({ code, signal, stdout, stderr, timedOut, ms: performance.now() - started })
    })
  })
}
