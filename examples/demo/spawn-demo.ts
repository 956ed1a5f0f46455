// Starts the demo in a child process exactly as `npm start` does, for the load script and the example tests.
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('../..', import.meta.url))

export interface RunningDemo {
  /** e.g. http://127.0.0.1:3000 */
  readonly url: string
  /** Everything the demo printed so far. */
  output(): string
  /** SIGTERM, then SIGKILL after 5 s; resolves when the process has exited. */
  stop(): Promise<void>
}

/**
 * Spawns `examples/demo/main.ts` with `env` added, and resolves once it listens (rejects after `timeoutMs`). With
 * `PORT: '0'` the demo binds a free port itself; `url` is the address it printed.
 */
export async function spawnDemo(env: Record<string, string>, timeoutMs = 40_000): Promise<RunningDemo> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'examples/demo/main.ts'], {
    cwd: root,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let output = ''
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM')
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000)
      await exited
      clearTimeout(timer)
    }
  }
  try {
    const url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`the demo did not start within ${timeoutMs} ms:\n${output}`)),
        timeoutMs,
      )
      const onData = (data: Buffer) => {
        output += data.toString()
        const match = /stratacache demo: (http:\/\/\S+)\/dashboard/.exec(output)
        if (match) {
          clearTimeout(timer)
          resolve(match[1]!)
        }
      }
      child.stdout.on('data', onData)
      child.stderr.on('data', onData)
      child.once('exit', (code) => {
        clearTimeout(timer)
        reject(new Error(`the demo exited with code ${code}:\n${output}`))
      })
    })
    return { url, output: () => output, stop }
  } catch (error) {
    await stop()
    throw error
  }
}
