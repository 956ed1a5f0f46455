// A TCP proxy between a client and a real redis-server that can be cut, healed, held and made to lie about a reply:
// the region-split drill's link between regions, and the chaos tests' (test/chaos/tcp-proxy.ts re-exports it).
import { connect, createServer, type Socket } from 'node:net'
import { freePort } from './redis-server.js'

export interface TcpProxy {
  /** `redis://127.0.0.1:<proxy port>`. */
  readonly url: string
  /** A network partition: open connections are reset, new ones refused (the proxy stops listening). */
  cut(): Promise<void>
  /** Ends a partition: new connections reach Redis again. */
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

/** Starts a proxy on a free loopback port to Redis on `targetPort`. */
export async function startProxy(targetPort: number, options: TcpProxyOptions = {}): Promise<TcpProxy> {
  const port = await freePort()
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
  const listen = () => new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve))
  await listen()

  return {
    url: `redis://127.0.0.1:${port}`,
    async cut() {
      cut = true
      const closed = new Promise<void>((resolve) => server.close(() => resolve()))
      for (const socket of open) socket.resetAndDestroy()
      await closed
    },
    async heal() {
      cut = false
      await listen()
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
