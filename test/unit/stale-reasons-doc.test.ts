// docs/observability.md lists every reason the cache serves stale data, with its meaning: a test keeps the list and
// `stats().staleServed` (and the exporters' `reason` label) in step, as errors-doc.test.ts does for error codes.
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createCache } from 'stratacache'
import { describe, expect, it } from 'vitest'

const root = fileURLToPath(new URL('../..', import.meta.url))

/** The rows of the table under "### Stale serves": `reason` label, `staleServed.` field, meaning. */
function documentedReasons(): { reason: string; field: string; when: string }[] {
  const doc = readFileSync(join(root, 'docs/observability.md'), 'utf8')
  const section = doc.slice(doc.indexOf('### Stale serves'))
  const table = section.slice(0, section.indexOf('\n\n', section.indexOf('| `reason`')))
  return [...table.matchAll(/^\| `(\w+)` +\| `(\w+)` +\| (.+?) +\|$/gm)]
    .map((m) => ({ reason: m[1]!, field: m[2]!, when: m[3]! }))
    .filter((row) => row.reason !== 'reason')
}

const snake = (name: string) => name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)

describe('docs/observability.md, stale serves', () => {
  it('lists every field of staleServed, with its label and meaning, and nothing else', async () => {
    const cache = createCache({ service: 'doc' })
    const ns = cache.namespace('n', { key: 'k:{id}', ttl: '1m', load: () => 1 })
    const fields = Object.keys(ns.stats().staleServed).sort()
    await cache.close()
    const rows = documentedReasons()
    expect(rows.map((r) => r.field).sort()).toEqual(fields)
    for (const row of rows) {
      expect(row.reason, `the label of staleServed.${row.field}`).toBe(snake(row.field))
      expect(row.when.length, `the meaning of ${row.reason}`).toBeGreaterThan(40)
    }
  })

  it('names the same reasons as the Prometheus and OpenTelemetry exporters', () => {
    const rows = documentedReasons()
    for (const file of ['src/observability/prometheus.ts', 'src/observability/opentelemetry.ts']) {
      const source = readFileSync(join(root, file), 'utf8')
      const labels = [...source.matchAll(/reason'?: '(\w+)'/g)].map((m) => m[1]!)
      expect(new Set(labels), file).toEqual(new Set(rows.map((r) => r.reason)))
    }
  })
})
