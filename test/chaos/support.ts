// Shared helpers for the integration and chaos tests: channel recorders, timing, raw Redis access, child processes.
import { spawn } from 'node:child_process'
import diagnosticsChannel from 'node:diagnostics_channel'
import { setInterval } from 'node:timers'
import { createClient, RESP_TYPES, type RedisClientType } from 'redis'
import { createCache, type Cache, type CacheOptions } from 'stratacache'
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

/** How often the stall meter's timer is due, in ms. */
const TICK_MS = 10
/**
 * Lateness of the stall meter's timer above this is a blocked loop, in ms: half the 100 ms L2 timeout of the chaos
 * tests, the library's own line between a busy loop and a blocked one (src/policies/deadline.ts), so that what the
 * meter subtracts is what the library may have added to an L2 deadline. Shorter lateness is left to a bound's slack.
 */
export const BLOCKED_ABOVE_MS = 50
/** How long the meter keeps a stall: a test asks about the last few seconds. */
const KEEP_STALLS_MS = 60_000

let meter: { lastTick: number; stalls: { from: number; to: number }[] } | undefined

/**
 * Starts the stall meter once (later calls do nothing): an unref'd timer due every 10 ms that notes each time it
 * runs more than `BLOCKED_ABOVE_MS` late, as the stretch from when it was due to when it ran. Such a stretch is a
 * blocked event loop (a long GC pause, a long synchronous task, the process not scheduled on a busy machine), during
 * which no timer, socket or promise of the test could run. `timed` starts it; a test that asks `blockedBetween`
 * about instants of its own starts it before the first of them.
 */
export function watchStalls(): void {
  if (meter !== undefined) return
  const state = { lastTick: performance.now(), stalls: [] as { from: number; to: number }[] }
  meter = state
  setInterval(() => {
    const now = performance.now()
    const due = state.lastTick + TICK_MS
    if (now - due > BLOCKED_ABOVE_MS) {
      state.stalls.push({ from: due, to: now })
      while (state.stalls[0]!.to < now - KEEP_STALLS_MS) state.stalls.shift()
    }
    state.lastTick = now
  }, TICK_MS).unref()
}

/**
 * How long this process's event loop was seen blocked between `from` and `to` (`performance.now()` times, after
 * `watchStalls()` started), in ms. Includes a stall that has just ended but that the meter's timer has not run
 * since to note (the code asking runs first). A wait on something outside the process (a Redis that does not
 * answer, a timer that is due later) is not a blocked loop and counts 0, however long it lasts.
 */
export function blockedBetween(from: number, to: number = performance.now()): number {
  if (meter === undefined)
    throw new Error('blockedBetween: call watchStalls() before the instants it is asked about')
  const now = performance.now()
  const due = meter.lastTick + TICK_MS
  const stalls = now - due > BLOCKED_ABOVE_MS ? [...meter.stalls, { from: due, to: now }] : meter.stalls
  let blocked = 0
  for (const stall of stalls) blocked += Math.max(0, Math.min(to, stall.to) - Math.max(from, stall.from))
  return blocked
}

/**
 * Runs `work` and resolves with how it settled and how long it took, never rejecting. `blockedMs` is the part of
 * `ms` during which the event loop was blocked (`blockedBetween`).
 */
export async function timed<T>(
  work: () => Promise<T>,
): Promise<
  | { ok: true; value: T; ms: number; blockedMs: number }
  | { ok: false; error: unknown; ms: number; blockedMs: number }
> {
  watchStalls()
  const started = performance.now()
  const span = () => {
    const ended = performance.now()
    return { ms: ended - started, blockedMs: blockedBetween(started, ended) }
  }
  try {
    const value = await work()
    return { ok: true, value, ...span() }
  } catch (error) {
    return { ok: false, error, ...span() }
  }
}

/**
 * How long a `timed` call took while this process could run: `ms` less the time its event loop was blocked. A
 * stall (GC, CPU starvation) lengthens any call by up to its own length, and the library extends every pending L2
 * deadline by the time it saw the loop blocked (src/policies/deadline.ts), so a latency bound is on this, not `ms`.
 * A call that waits on Redis or on a timer too long still counts in full: only a blocked loop is left out.
 */
export function activeMs(result: { ms: number; blockedMs: number }): number {
  return result.ms - result.blockedMs
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

/**
 * One process of the restore tests (chaos/redis-restore, chaos/cluster-restore): a cache made with `options`
 * (closed through `closers`), connected, and its `product` namespace (`product:{id}`, an hour's TTL) reading
 * `source`, which counts its loads.
 */
export async function productProcess(
  options: CacheOptions,
  source: Map<number, string>,
  closers: (() => Promise<unknown>)[],
) {
  const cache: Cache = createCache(options)
  closers.push(() => cache.close())
  await cache.connect()
  const loads = { count: 0 }
  const product = cache.namespace('product', {
    key: 'product:{id}',
    params: { id: 'number' },
    ttl: '1h',
    load: ({ id }: { id: number }) => {
      loads.count++
      return source.get(id) ?? 'missing'
    },
  })
  return { cache, product, loads }
}
