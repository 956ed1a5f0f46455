// A TCP proxy between a client and a real redis-server that can be cut, healed, held and made to lie about a reply:
// the region-split drill's link between regions, and the chaos tests' (test/chaos/tcp-proxy.ts re-exports it).
import { connect, createServer, type AddressInfo, type Socket } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { DrillSetupError } from '../../errors.js'

export interface TcpProxy {
  /** `redis://127.0.0.1:<proxy port>`. */
  readonly url: string
  /** A network partition: open connections are reset, new ones refused (the proxy stops listening). */
  cut(): Promise<void>
  /**
   * Ends a partition: new connections reach Redis again, on the same port (clients keep its URL). Does nothing if
   * the proxy is not cut. Rejects with ERR_STRATA_DRILL_SETUP if another process holds the port for 2 s.
   */
  heal(): Promise<void>
  /** New connections are accepted but nothing passes, either way, until `release()` (a slow handshake). */
  hold(): void
  /** Lets held connections (and new ones) through. */
  release(): void
  /** Connections made through the proxy so far. */
  readonly connections: number
  close(): Promise<void>
}

export interface TcpProxyOptions {
  /** Rewrites what Redis sends back, chunk by chunk (keep lengths unchanged, or RESP framing breaks). */
  rewrite?: (chunk: Buffer) => Buffer
  /** Delays every chunk by this many ms, each way, in order (a distant Redis). */
  latencyMs?: number
}

/** How long `heal()` keeps trying to listen on the proxy's port again while it is taken, and how often. */
const HEAL_FOR_MS = 2_000
const HEAL_RETRY_MS = 50

/** Starts a proxy on a free loopback port to Redis on `targetPort`. */
export async function startProxy(targetPort: number, options: TcpProxyOptions = {}): Promise<TcpProxy> {
  const open = new Set<Socket>()
  const held: (() => void)[] = []
  let cut = false
  let holding = false
  let connections = 0

  const track = (socket: Socket) => {
    open.add(socket)
    socket.on('close', () => open.delete(socket))
    socket.on('error', () => {})
  }

  const latency = options.latencyMs ?? 0
  /** Forwards `from`'s chunks to `to`, rewritten, `latency` ms late (timers of one delay fire in the order set). */
  const forward = (from: Socket, to: Socket, rewrite?: (chunk: Buffer) => Buffer) => {
    if (latency === 0 && rewrite === undefined) return void from.pipe(to)
    from.on('data', (chunk: Buffer) => {
      const out = rewrite === undefined ? chunk : rewrite(chunk)
      if (latency === 0) to.write(out)
      else setTimeout(() => to.destroyed || to.write(out), latency)
    })
  }

  const pipe = (client: Socket) => {
    if (cut || client.destroyed) return void client.destroy()
    const upstream = connect(targetPort, '127.0.0.1')
    track(upstream)
    forward(client, upstream)
    forward(upstream, client, options.rewrite)
    upstream.on('close', () => client.destroy())
    client.on('close', () => upstream.destroy())
  }

  const server = createServer((client) => {
    track(client)
    if (cut) return void client.destroy()
    connections++
    if (holding) {
      client.pause()
      held.push(() => {
        client.resume()
        pipe(client)
      })
    } else {
      pipe(client)
    }
  })
  /** Listens on `port` (0: any free one), or rejects with the listen error, leaving no listener behind. */
  const listen = (port: number) =>
    new Promise<void>((resolve, reject) => {
      const failed = (error: Error) => {
        server.off('listening', listening)
        reject(error)
      }
      const listening = () => {
        server.off('error', failed)
        resolve()
      }
      server.once('error', failed)
      server.once('listening', listening)
      server.listen(port, '127.0.0.1')
    })
  // Port 0 rather than a free port found beforehand: nothing can take it between the check and the bind.
  await listen(0)
  const { port } = server.address() as AddressInfo

  return {
    url: `redis://127.0.0.1:${port}`,
    async cut() {
      cut = true
      const closed = new Promise<void>((resolve) => server.close(() => resolve()))
      for (const socket of open) socket.resetAndDestroy()
      await closed
    },
    async heal() {
      if (server.listening) return
      // The port was free while cut: another process binding port 0 may have been given it meanwhile. Clients hold
      // this port's URL, so wait for it to be released rather than move; a short-lived holder goes within the tries.
      const started = performance.now()
      for (let attempt = 1; ; attempt++) {
        try {
          await listen(port)
          break
        } catch (error) {
          const inUse = (error as NodeJS.ErrnoException).code === 'EADDRINUSE'
          if (!inUse || performance.now() - started >= HEAL_FOR_MS) {
            throw new DrillSetupError(
              inUse
                ? `the TCP proxy could not heal: port ${port} was taken by another process while the proxy was ` +
                    `cut, and was still taken after ${attempt} tries in ${Math.round(performance.now() - started)} ms`
                : `the TCP proxy could not listen on port ${port} again to heal (${(error as Error).message})`,
              { cause: error },
            )
          }
          await sleep(HEAL_RETRY_MS)
        }
      }
      cut = false
    },
    hold() {
      holding = true
    },
    release() {
      holding = false
      for (const let_through of held.splice(0)) let_through()
    },
    get connections() {
      return connections
    },
    async close() {
      for (const socket of open) socket.destroy()
      if (server.listening) await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}
