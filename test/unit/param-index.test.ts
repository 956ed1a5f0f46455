// The L1 index walk: compiled once per namespace (constant property names, see core/param-index.ts) or generic where
// the host forbids code generation. Both must find the same nodes and refuse the same parameters the same way.
import { execFileSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { KeySchema, type ScalarTypeName } from '../../src/core/keys.js'
import { ParamIndex, type IndexedNode } from '../../src/core/param-index.js'

function schema(types?: Record<string, ScalarTypeName>): KeySchema {
  return new KeySchema({
    service: 'catalog',
    namespace: 'product',
    schemaVersion: 1,
    template: 'tenant:{tenantId}:product:{productId}',
    dimensions: ['locale', 'currency'],
    maxKeyLength: 256,
    types,
  })
}

function node(key: string): IndexedNode<string> {
  return { key, path: [], texts: [] } as unknown as IndexedNode<string>
}

/** What a `find` call did: the node's key, undefined, or the error's code, problem and parameter. */
function outcome(index: ParamIndex<string>, params: unknown): unknown {
  try {
    return index.find(params)?.key
  } catch (error) {
    const { code, problem, param } = error as Record<string, unknown>
    return { code, problem, param, message: (error as Error).message }
  }
}

// Parameters as callers pass them: mostly valid, from small pools so that probes meet stored nodes (with texts that
// collide across types: 7, '7' and 7n), and sometimes each kind the key refuses: an empty, non-finite or non-scalar
// value, a missing or an extra parameter, or no object at all.
const valid = fc.oneof(
  fc.constantFrom('en', 'de', 't1', '7', 'a:b'),
  fc.integer({ min: 6, max: 8 }),
  fc.constant(7n),
)
const invalid = fc.constantFrom('', Number.NaN, Infinity, null, undefined, {}, ['x'], true)
const value = fc.oneof({ weight: 9, arbitrary: valid }, { weight: 1, arbitrary: invalid })
const record = fc.record({ tenantId: value, productId: value, locale: value, currency: value })
const params = fc.oneof(
  { weight: 8, arbitrary: record },
  { weight: 1, arbitrary: record.map(({ locale: _, ...rest }) => rest) },
  { weight: 1, arbitrary: record.map((r) => ({ ...r, extra: 'x' })) },
  { weight: 1, arbitrary: fc.constantFrom(null, undefined, 'tenant', 42) },
)

describe('the L1 index walk', () => {
  it('compiles a walk where the host allows it', () => {
    expect(new ParamIndex(schema()).compiled).toBe(true)
    expect(new ParamIndex(schema(), { compile: false }).compiled).toBe(false)
  })

  for (const types of [undefined, { productId: 'number' } as const]) {
    it(`finds the same nodes and refuses the same parameters compiled and generic (params: ${JSON.stringify(types)})`, () => {
      const seen = new Set<string>()
      fc.assert(
        fc.property(
          fc.array(params, { maxLength: 12 }),
          fc.array(params, { maxLength: 12 }),
          (stored, probes) => {
            const keys = schema(types)
            const compiled = new ParamIndex<string>(keys)
            const generic = new ParamIndex<string>(keys, { compile: false })
            for (const p of stored) {
              let key: string
              try {
                key = keys.build(p)
              } catch {
                continue // refused parameters never reach the index
              }
              if (compiled.find(p) !== undefined) continue
              compiled.insert(p, node(key))
              generic.insert(p, node(key))
            }
            for (const p of [...stored, ...probes]) {
              const found = outcome(compiled, p)
              expect(found).toEqual(outcome(generic, p))
              seen.add(typeof found === 'string' ? 'hit' : found === undefined ? 'miss' : 'refused')
            }
          },
        ),
        { numRuns: 1_000 },
      )
      // The runs met all three outcomes.
      expect([...seen].sort()).toEqual(['hit', 'miss', 'refused'])
    })
  }

  it('walks generically, with the same results, under node --disallow-code-generation-from-strings', () => {
    const root = fileURLToPath(new URL('../..', import.meta.url))
    const script = `
      import { KeySchema } from './src/core/keys.ts'
      import { ParamIndex } from './src/core/param-index.ts'
      const keys = new KeySchema({ service: 's', namespace: 'n', schemaVersion: 1, template: 'a:{a}:b:{b}',
        dimensions: [], maxKeyLength: 256 })
      const index = new ParamIndex(keys)
      index.insert({ a: 'x', b: 1 }, { key: keys.build({ a: 'x', b: 1 }), path: [], texts: [] })
      let refused = ''
      try { index.find({ a: '', b: 1 }) } catch (error) { refused = error.problem }
      console.log(JSON.stringify({ compiled: index.compiled, hit: index.find({ a: 'x', b: '1' })?.key,
        miss: index.find({ a: 'y', b: 1 }) ?? null, refused }))
    `
    const out = execFileSync(
      process.execPath,
      ['--disallow-code-generation-from-strings', '--import', 'tsx', '--input-type=module', '-e', script],
      { cwd: root, encoding: 'utf8' },
    )
    expect(JSON.parse(out)).toEqual({ compiled: false, hit: 's:n:v1:a:x:b:1', miss: null, refused: 'empty' })
  })
})
