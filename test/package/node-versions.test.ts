// The supported Node.js versions are said once in package.json's `engines` and repeated in the README; CI runs the
// README's test command on the machine's Node.js, then the suite on the other majors. This keeps the three in step.
import diagnosticsChannel from 'node:diagnostics_channel'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'

const root = fileURLToPath(new URL('../..', import.meta.url))
const read = (file: string) => readFileSync(join(root, file), 'utf8')
const pkg = JSON.parse(read('package.json')) as { engines: { node: string }; scripts: { test: string } }

const version = (text: string) => text.replace(/^v/, '').split('.').map(Number) as [number, number, number]
const atLeast = (a: readonly number[], b: readonly number[]) => {
  for (let i = 0; i < 3; i++) if (a[i]! !== b[i]!) return a[i]! > b[i]!
  return true
}

describe('supported Node.js versions', () => {
  it('are >= 20.13.0 in engines, and this Node.js is one of them', () => {
    expect(pkg.engines.node).toBe('>=20.13.0')
    expect(atLeast(version(process.version), [20, 13, 0]), process.version).toBe(true)
  })

  it('have what sets the minimum: tracing channels that report their subscribers (20.13)', () => {
    const channel = diagnosticsChannel.tracingChannel('stratacache:test:engines')
    expect(channel.hasSubscribers).toBe(false)
    const none = () => {}
    const handlers = { start: none, end: none, asyncStart: none, asyncEnd: none, error: none }
    channel.subscribe(handlers)
    expect(channel.hasSubscribers).toBe(true)
    channel.unsubscribe(handlers)
  })

  it('are said in the README, and CI runs its test command, then the suite on 22 and 24', () => {
    const readme = read('README.md')
    expect(readme).toContain('Node.js 20.13 or newer')
    expect(readme).toContain('```sh\nnpm test\n```')
    expect(pkg.scripts.test).toMatch(/vitest run$/)
    const ci = read('.ci/run')
    expect(ci).toMatch(/^npm test$/m)
    expect(ci).toContain('${NODE_VERSIONS-22 24}')
    expect(ci).toMatch(/node node_modules\/vitest\/vitest\.mjs run$/m)
    expect(readme).toMatch(/Node\.js 20, then the suite again on\s+Node\.js 22 and 24/)
  })
})
