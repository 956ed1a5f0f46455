// Scenario stampede: 4 processes x 250 concurrent gets of one cold key, released at the same instant; loader calls
// across all processes (counted in Redis) and the delay from the loader settling to the last caller released.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createClient } from 'redis'
import {
  formatCount,
  formatMs,
  markdownTable,
  runRounds,
  withTimeout,
  type Contestant,
  type Metrics,
  type Scenario,
  type ScenarioContext,
  type ScenarioReport,
} from './harness.js'
import {
  CONTESTANTS,
  monotonicMs,
  type ContestantName,
  type RoundCommand,
  type RoundResult,
} from './fixtures/stampede-protocol.js'

const PROCESSES = 4
const GETS_PER_PROCESS = 250
const LOADER_MS = 50
/** The start time sent with a round lies this far ahead, so every child has the command before it. */
const START_LEAD_MS = 150
/** A child stops waiting for its gets after this long (they count as timed out), and the parent for the child. */
const ROUND_LIMIT_MS = 15_000
/** Children start tsx, import every peer library and connect to Redis: slow on a loaded 2-core machine. */
const READY_LIMIT_MS = 60_000
const REFERENCE = 'stratacache'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const childScript = join(root, 'bench', 'fixtures', 'stampede-child.ts')

export const stampede: Scenario = {
  name: 'stampede',
  title: `${PROCESSES} processes x ${GETS_PER_PROCESS} concurrent gets of one cold key`,
  needsRedis: true,
  run,
}

/** One child process and its stdout, read as JSON lines. */
class Child {
  readonly proc: ChildProcessWithoutNullStreams
  readonly #waiting: ((message: Record<string, unknown>) => void)[] = []
  readonly #received: Record<string, unknown>[] = []
  #stderr = ''
  readonly exited: Promise<void>

  constructor(url: string, maxMs: number) {
    this.proc = spawn(
      process.execPath,
      ['--import', 'tsx', childScript, '--url', url, '--max-ms', String(maxMs)],
      { cwd: root, stdio: ['pipe', 'pipe', 'pipe'] },
    )
    let partial = ''
    this.proc.stdout.on('data', (chunk: Buffer) => {
      partial += chunk.toString('utf8')
      let end: number
      while ((end = partial.indexOf('\n')) >= 0) {
        const line = partial.slice(0, end)
        partial = partial.slice(end + 1)
        let message: Record<string, unknown>
        try {
          message = JSON.parse(line) as Record<string, unknown>
        } catch {
          this.#stderr += `(stdout) ${line}\n`
          continue
        }
        const waiter = this.#waiting.shift()
        if (waiter !== undefined) waiter(message)
        else this.#received.push(message)
      }
    })
    this.proc.stderr.on('data', (chunk: Buffer) => {
      // Keep the tail only: enough to explain a failure.
      this.#stderr = (this.#stderr + chunk.toString('utf8')).slice(-4_000)
    })
    // A child that died before reading its stdin makes writes fail with EPIPE; its exit is reported instead.
    this.proc.stdin.on('error', () => {})
    this.exited = new Promise((resolve) => {
      if (this.proc.exitCode !== null || this.proc.signalCode !== null) resolve()
      else this.proc.once('exit', () => resolve())
    })
  }

  get stderr(): string {
    return this.#stderr
  }

  get running(): boolean {
    return this.proc.exitCode === null && this.proc.signalCode === null
  }

  send(message: object): void {
    this.proc.stdin.write(JSON.stringify(message) + '\n')
  }

  /** The next message from the child; rejects if it exits first. */
  next(): Promise<Record<string, unknown>> {
    const queued = this.#received.shift()
    if (queued !== undefined) return Promise.resolve(queued)
    return new Promise((resolve, reject) => {
      const waiter = (message: Record<string, unknown>) => resolve(message)
      this.#waiting.push(waiter)
      void this.exited.then(() => {
        const index = this.#waiting.indexOf(waiter)
        if (index < 0) return
        this.#waiting.splice(index, 1)
        reject(
          new Error(
            `stampede child ${this.proc.pid} exited (code ${this.proc.exitCode}, signal ` +
              `${this.proc.signalCode}); stderr:\n${this.#stderr}`,
          ),
        )
      })
    })
  }

  kill(): void {
    if (this.running) this.proc.kill('SIGKILL')
  }
}

async function run(context: ScenarioContext): Promise<ScenarioReport> {
  const url = context.redisUrl
  if (url === undefined) throw new Error('stampede needs a redis-server')
  const children: Child[] = []
  const counterClient = createClient({ url })
  counterClient.on('error', (error: unknown) => context.log(`  stampede: node-redis error: ${String(error)}`))
  try {
    await counterClient.connect()
    context.log(`  stampede: starting ${PROCESSES} child processes`)
    for (let i = 0; i < PROCESSES; i++) children.push(new Child(url, 9 * 60_000))
    const ready = await withTimeout(
      Promise.all(children.map((c) => c.next())),
      READY_LIMIT_MS,
      'stampede: children ready',
    )
    for (const [i, message] of ready.entries()) {
      if (message.type !== 'ready')
        throw new Error(`stampede child ${i}: expected "ready", got ${JSON.stringify(message)}`)
    }

    let round = 0
    const measure = async (contestant: ContestantName): Promise<Metrics> => {
      round++
      const counter = `bench:stampede:loader-calls:${round}`
      const command: RoundCommand = {
        type: 'round',
        round,
        contestant,
        // A key no contestant has seen: every round starts cold.
        params: { tenantId: 'stampede', productId: round, locale: 'en', currency: 'EUR' },
        counter,
        startAt: monotonicMs() + START_LEAD_MS,
        gets: GETS_PER_PROCESS,
        loaderMs: LOADER_MS,
        limitMs: ROUND_LIMIT_MS,
      }
      for (const child of children) child.send(command)
      const messages = await withTimeout(
        Promise.all(children.map((c) => c.next())),
        ROUND_LIMIT_MS + 5_000,
        `stampede: ${contestant}, round ${round}`,
      )
      const results = messages.map((m) => {
        if (m.type !== 'result' || m.round !== round)
          throw new Error(`stampede: unexpected ${JSON.stringify(m)}`)
        return m as unknown as RoundResult
      })
      const loaderCalls = Number((await counterClient.get(counter)) ?? 0)
      await counterClient.del(counter)
      const settled = results.flatMap((r) => (r.firstSettledAt === null ? [] : [r.firstSettledAt]))
      const firstCall = Math.min(...results.map((r) => r.firstCallAt))
      const lastRelease = Math.max(...results.map((r) => r.lastReleasedAt))
      const rejected = results.reduce((sum, r) => sum + r.rejected + r.timedOut, 0)
      for (const r of results) {
        if (r.errors.length > 0)
          context.log(`  stampede: ${contestant}, pid ${r.pid}: ${r.errors.join('; ')}`)
      }
      return {
        loaderCalls,
        loadingProcesses: results.filter((r) => r.loaderCalls > 0).length,
        // From the first loader call settling (in whichever process) to the last caller released in any process.
        releaseMs: settled.length === 0 ? NaN : lastRelease - Math.min(...settled),
        totalMs: lastRelease - firstCall,
        startSpreadMs: Math.max(...results.map((r) => r.firstCallAt)) - firstCall,
        rejected,
      }
    }

    const calls: Record<ContestantName, string> = {
      stratacache: '`ns.get(params)`, L1 + Redis, lock on (default)',
      'stratacache, lock: false': '`ns.get(params)`, L1 + Redis, `lock: false`',
      bentocache: '`bento.getOrSet({ key, factory })`, L1 + Redis L2 + Redis bus',
      'cache-manager': '`cache.wrap(key, fn)`, CacheableMemory + @keyv/redis',
      'async-cache-dedupe': '`cache.product(params)`, redis storage (ioredis)',
    }
    const contestants: Contestant[] = CONTESTANTS.map((name) => ({
      name,
      call: calls[name],
      measure: () => measure(name),
    }))

    const result = await runRounds({
      scenario: 'stampede',
      contestants,
      reference: REFERENCE,
      rounds: context.rounds ?? 9,
      warmupRounds: 1,
      log: context.log,
    })

    const strata = result.contestants.find((c) => c.name === REFERENCE)!
    const calls1 = strata.samples.loaderCalls ?? []
    const exact = calls1.length > 0 && calls1.every((n) => n === 1)
    const strataRejected = Math.max(...(strata.samples.rejected ?? [NaN]))
    const total = PROCESSES * GETS_PER_PROCESS
    return {
      sections: [
        {
          title:
            `${PROCESSES} processes x ${GETS_PER_PROCESS} gets of one cold key, released at the same instant, ` +
            `loader resolving after ${LOADER_MS} ms; a new key every round`,
          table: markdownTable(result, [
            { metric: 'loaderCalls', label: 'loader calls', format: formatCount, range: true },
            { metric: 'loadingProcesses', label: 'processes loading', format: formatCount },
            { metric: 'releaseMs', label: 'release ms', format: formatMs, range: true, ratio: true },
            { metric: 'totalMs', label: 'total ms', format: formatMs, range: true },
            { metric: 'startSpreadMs', label: 'start spread ms', format: formatMs },
            { metric: 'rejected', label: 'rejected callers', format: formatCount },
          ]),
          notes: [
            `Each round, ${PROCESSES} child processes (\`node --import tsx bench/fixtures/stampede-child.ts\`, ` +
              'set up once) each start ' +
              `${GETS_PER_PROCESS} gets in the same tick at a start time given by the parent on the shared ` +
              'monotonic clock; "start spread" is the gap between the first and the last process starting.',
            '"loader calls" is the total across processes, counted by the loader with an INCR in Redis; ' +
              '"processes loading" is how many processes ran it at all. Cells are medians over the rounds (p50); ' +
              'the right end of a min–max column is the maximum over the rounds.',
            '"release" runs from the first loader call settling (in any process) to the last of the ' +
              `${total.toLocaleString('en')} callers resolved in any process; "total" from the first get to the last ` +
              `caller resolved (it includes the ${LOADER_MS} ms loader).`,
            'stratacache uses its default lock (`{ ttl: 5s, wait: 10s }`): one process loads, the others wait for ' +
              'its value to be announced over pub/sub and read it from Redis. `lock: false` shows what the lock buys.',
            'bentocache is set up as its multi-tier docs advise for several instances (memory L1, Redis L2, Redis ' +
              'bus); its stampede protection is an in-memory lock, per process by design (docs: "Stampede ' +
              'Protection › Multi-Instance Applications"). cache-manager (`wrap`) and async-cache-dedupe (redis ' +
              'storage) dedupe within a process only; neither has a cross-process lock.',
          ],
        },
      ],
      targets: [
        {
          text: `stratacache makes exactly 1 loader call in total per round across ${PROCESSES} processes`,
          met: exact,
          measured:
            `${calls1.join(', ')} call(s) in the ${calls1.length} rounds` +
            (strataRejected > 0 ? `; ${strataRejected} rejected callers in the worst round` : ''),
        },
      ],
      results: [result],
    }
  } finally {
    // Ask each child to close its clients and exit; kill those that do not within a few seconds.
    for (const child of children) if (child.running) child.send({ type: 'close' })
    await Promise.race([
      Promise.all(children.map((c) => c.exited)),
      new Promise((resolve) => setTimeout(resolve, 8_000).unref()),
    ])
    for (const child of children) {
      if (child.running) context.log(`  stampede: child ${child.proc.pid} did not exit, killing it`)
      child.kill()
    }
    await Promise.all(children.map((c) => c.exited))
    if (counterClient.isOpen) await counterClient.close()
  }
}
