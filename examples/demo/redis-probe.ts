// Finds out, quickly, whether a Redis answers at an address: the demo uses one on 127.0.0.1:6379 when it is there.
import { createConnection } from 'node:net'

/** Resolves true when a PING to `host:port` gets `+PONG` (or a NOAUTH error: a Redis is there) within `timeoutMs`. */
export function redisAnswers(host: string, port: number, timeoutMs = 300): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host, port })
    let reply = ''
    const done = (answer: boolean) => {
      clearTimeout(timer)
      socket.destroy()
      resolve(answer)
    }
    const timer = setTimeout(() => done(false), timeoutMs)
    socket.on('error', () => done(false))
    socket.on('connect', () => socket.write('*1\r\n$4\r\nPING\r\n'))
    socket.on('data', (data) => {
      reply += data.toString('latin1')
      if (reply.includes('\r\n')) done(reply.startsWith('+PONG') || reply.startsWith('-NOAUTH'))
    })
  })
}
