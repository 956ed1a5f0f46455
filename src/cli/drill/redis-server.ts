// Starts real redis-server processes on free loopback ports, and kills, pauses and restarts them: for
// `stratacache drill` and for the test suite (test/helpers/redis-server.ts re-exports it).
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { createConnection, createServer, type Socket } from 'node:net'
import { connect as tlsConnect } from 'node:tls'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DrillSetupError } from '../../errors.js'

/** PEM files for a TLS-only server: its certificate and key, the CA it trusts for clients, and a client's pair. */
export interface RedisTlsFiles {
  readonly cert: string
  readonly key: string
  readonly ca: string
  /** The certificate and key `command()` presents (the server requires a client certificate by default). */
  readonly clientCert: string
  readonly clientKey: string
}

export interface RedisServerOptions {
  /** Serve TLS only (`--port 0 --tls-port N`): `url` is then `rediss://127.0.0.1:N`. */
  readonly tls?: RedisTlsFiles
}

export interface RedisServer {
  readonly port: number
  /** `redis://127.0.0.1:port`, or `rediss://…` for a TLS server. */
  readonly url: string
  /** Stops the server for good (SIGKILL if it does not exit on SIGTERM). */
  stop(): Promise<void>
  /** Kills the process abruptly (SIGKILL), as a crash would. */
  kill(): Promise<void>
  /** Freezes the process (SIGSTOP): connections stay open but nothing answers. */
  pause(): void
  /** Thaws a paused process (SIGCONT). */
  resume(): void
  /**
   * Starts the server again on the same port (after kill or stop), empty. While another process holds the port
   * (or, for a cluster node, its bus port, +10000), tries again for 2 s, then rejects with
   * ERR_STRATA_DRILL_SETUP saying so.
   */
  restart(): Promise<void>
  /** Sends one command over a fresh connection and returns the raw reply text (for INFO, CONFIG, DEBUG…). */
  command(...args: string[]): Promise<string>
}

/** A free TCP port on 127.0.0.1, found by binding port 0. */
export async function freePort(): Promise<number> {
  return listenOnce(0)
}

/** Binds `port` (0: any) on 127.0.0.1, closes it again and resolves with the port bound. */
function listenOnce(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.unref()
    server.on('error', reject)
    server.listen(port, '127.0.0.1', () => {
      const address = server.address()
      server.close(() =>
        typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port')),
      )
    })
  })
}

/** Redis Cluster's bus listens on the client port + 10000 (`cluster-port` 0). */
const CLUSTER_BUS_OFFSET = 10_000

/**
 * A free port for a redis-server; with `clusterBus`, one whose bus port (+10000) is a valid port and free too.
 * Both are only free when asked: another process may take either before redis-server binds it, which
 * `startRedis` handles by starting again on other ports.
 */
async function serverPort(clusterBus: boolean): Promise<number> {
  for (let attempt = 0; ; attempt++) {
    const port = await freePort()
    if (!clusterBus) return port
    const bus = port + CLUSTER_BUS_OFFSET
    if (
      bus <= 65_535 &&
      (await listenOnce(bus).then(
        () => true,
        () => false,
      ))
    )
      return port
    if (attempt === 50)
      throw new DrillSetupError('found no free port pair (port, port + 10000) for a cluster node')
  }
}

/** How many times `startRedis` starts a server again on other ports when one exits before answering. */
const START_ATTEMPTS = 5

/**
 * Starts a redis-server that keeps nothing on disk, on a free loopback port (TLS only with `options.tls`). A server
 * that exits before answering (its port, or its cluster bus port, taken between the check and its bind, as
 * happens when test files start servers in parallel) is started again on other ports, up to 5 times.
 */
export async function startRedis(
  extraArgs: string[] = [],
  options: RedisServerOptions = {},
): Promise<RedisServer> {
  const clusterBus = extraArgs.includes('--cluster-enabled')
  for (let attempt = 1; ; attempt++) {
    const port = await serverPort(clusterBus)
    try {
      return await startRedisOn(port, extraArgs, options)
    } catch (error) {
      if (!(error instanceof ServerExited) || attempt === START_ATTEMPTS) throw error
    }
  }
}

/** How long `restart()` keeps starting the server on its port while another process holds it, and how often. */
const RESTART_FOR_MS = 2_000
const RESTART_RETRY_MS = 200

/** redis-server exited before answering its first PING; the message ends with the last line it logged. */
class ServerExited extends DrillSetupError {
  constructor(
    port: number,
    /** The end of what it logged. */
    readonly log: string,
  ) {
    const lastLine = log
      .split('\n')
      .map((line) => line.trim())
      .filter((line) => line !== '')
      .at(-1)
    super(`redis-server on port ${port} exited before answering PING (${lastLine ?? 'it logged nothing'})`)
  }
}

/** The port redis-server logged it could not bind because another process had it (its own, or the cluster bus's). */
function portTakenIn(log: string): number | undefined {
  const match = /listening socket \S*?:(\d+): bind: Address already in use/.exec(log)
  return match === null ? undefined : Number(match[1])
}

async function startRedisOn(
  port: number,
  extraArgs: string[],
  options: RedisServerOptions,
): Promise<RedisServer> {
  const dir = mkdtempSync(join(tmpdir(), 'strata-redis-'))
  let child: ChildProcess | undefined
  const { tls } = options
  const portArgs =
    tls === undefined
      ? ['--port', String(port)]
      : [
          ['--port', '0'],
          ['--tls-port', String(port)],
          ['--tls-cert-file', tls.cert],
          ['--tls-key-file', tls.key],
          ['--tls-ca-cert-file', tls.ca],
        ].flat()
  const open: () => Socket =
    tls === undefined
      ? () => createConnection({ host: '127.0.0.1', port })
      : () =>
          tlsConnect({
            host: '127.0.0.1',
            port,
            ca: readFileSync(tls.ca),
            cert: readFileSync(tls.clientCert),
            key: readFileSync(tls.clientKey),
          })

  const launch = async () => {
    const proc = spawn(
      'redis-server',
      [...portArgs, '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, ...extraArgs],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    )
    // redis-server logs to stdout: keep the end, to say why a server exited before answering.
    let log = ''
    const keep = (data: Buffer) => {
      log = (log + data.toString('utf8')).slice(-2_000)
    }
    proc.stdout?.on('data', keep)
    proc.stderr?.on('data', keep)
    // spawn reports a missing executable as an 'error' event, not a throw: race it against the first PING.
    const failed = new Promise<never>((_, reject) => {
      proc.once('error', (error: NodeJS.ErrnoException) => {
        reject(
          new DrillSetupError(
            error.code === 'ENOENT'
              ? 'redis-server is not on PATH; install it (apt-get install redis-server, brew install redis) or ' +
                  'add its directory to PATH'
              : `redis-server could not start (${error.message})`,
            { cause: error },
          ),
        )
      })
    })
    child = proc
    await Promise.race([
      failed,
      waitForPing(
        port,
        open,
        5_000,
        () => proc.pid === undefined || proc.exitCode !== null || proc.signalCode !== null,
        () => log,
      ),
    ])
  }

  const exited = (proc: ChildProcess) =>
    new Promise<void>((resolve) => {
      if (proc.exitCode !== null || proc.signalCode !== null) resolve()
      else proc.once('exit', () => resolve())
    })

  try {
    await launch()
  } catch (error) {
    child?.kill('SIGKILL')
    rmSync(dir, { recursive: true, force: true })
    throw error
  }
  const server: RedisServer = {
    port,
    url: `${tls === undefined ? 'redis' : 'rediss'}://127.0.0.1:${port}`,
    async stop() {
      const proc = child
      if (!proc) return
      child = undefined
      proc.kill('SIGCONT')
      proc.kill('SIGTERM')
      const timer = setTimeout(() => proc.kill('SIGKILL'), 2_000)
      await exited(proc)
      clearTimeout(timer)
      rmSync(dir, { recursive: true, force: true })
    },
    async kill() {
      const proc = child
      if (!proc) return
      child = undefined
      proc.kill('SIGKILL')
      await exited(proc)
    },
    pause() {
      child?.kill('SIGSTOP')
    },
    resume() {
      child?.kill('SIGCONT')
    },
    async restart() {
      await server.kill()
      // Unlike the first start, the port cannot change: clients hold its URL. While the server was down another
      // process may have bound it (a test binding port 0 is given any free port), so wait for it to be let go.
      const started = performance.now()
      for (let attempt = 1; ; attempt++) {
        try {
          await launch()
          return
        } catch (error) {
          await server.kill()
          // Only a taken port is worth waiting for; any other failure would fail the same way again.
          const taken = error instanceof ServerExited ? portTakenIn(error.log) : undefined
          if (taken === undefined) throw error
          if (performance.now() - started >= RESTART_FOR_MS) {
            throw new DrillSetupError(
              `redis-server could not start again on port ${port}: ${
                taken === port + CLUSTER_BUS_OFFSET ? `its cluster bus port ${taken}` : `port ${taken}`
              } was taken by another process, and still was after ${attempt} tries in ` +
                `${Math.round(performance.now() - started)} ms`,
              { cause: error },
            )
          }
          await new Promise((resolve) => setTimeout(resolve, RESTART_RETRY_MS))
        }
      }
    },
    command: (...args) => rawCommand(port, open, args),
  }
  return server
}

/** Sends one RESP command on a fresh socket and resolves with the raw reply once it looks complete. */
function rawCommand(port: number, open: () => Socket, args: string[], timeoutMs = 2_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = open()
    let reply = ''
    const timer = setTimeout(() => {
      socket.destroy()
      reject(new Error(`redis on ${port} did not answer ${args[0]} within ${timeoutMs} ms`))
    }, timeoutMs)
    socket.on('error', (error) => {
      clearTimeout(timer)
      reject(error)
    })
    socket.on('data', (data) => {
      reply += data.toString('utf8')
      if (isComplete(reply)) {
        clearTimeout(timer)
        socket.end()
        resolve(reply)
      }
    })
    socket.write(`*${args.length}\r\n` + args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join(''))
  })
}

function isComplete(reply: string): boolean {
  if (!reply.endsWith('\r\n')) return false
  if (reply[0] !== '$') return true
  const header = reply.indexOf('\r\n')
  const length = Number(reply.slice(1, header))
  return length < 0 || Buffer.byteLength(reply) >= header + 2 + length + 2
}

async function waitForPing(
  port: number,
  open: () => Socket,
  timeoutMs: number,
  exited: () => boolean = () => false,
  log: () => string = () => '',
): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    try {
      // -NOAUTH: a server started with --requirepass is up too.
      if (/^(\+PONG|-NOAUTH)/.test(await rawCommand(port, open, ['PING'], 500))) return
    } catch {
      // not listening yet
    }
    if (exited()) {
      throw new ServerExited(port, log())
    }
    if (Date.now() > deadline)
      throw new Error(`redis-server on port ${port} did not answer PING within ${timeoutMs} ms`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}
