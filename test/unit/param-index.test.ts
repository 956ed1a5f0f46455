// The L1 index walk: compiled once per namespace (constant property names, see core/param-index.ts) or generic where
// the host forbids code generation. Both must find the same nodes and refuse the same parameters the same way.
import { execFileSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { KeySchema, type ScalarTypeName } from '../../src/core/keys.js'
import { numberAlias, ParamIndex, type IndexedNode } from '../../src/core/param-index.js'

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

describe('the L1 index against the keys it stands for', () => {
  it('finds the node whose key the parameters build, lists each node once, and forgets removed ones', () => {
    const values = fc.oneof(
      fc.constantFrom('en', 't1', '7', '07', '-0', '0', '1.5', '1e+21', 'Infinity', 'NaN'),
      fc.constantFrom(7, 0, -0, 1.5, 1e21, -3, 2 ** 53),
      fc.constant(7n),
    )
    const record = fc.record({ tenantId: values, productId: values, locale: values, currency: values })
    const op = fc.oneof(
      fc.record({ kind: fc.constant('insert' as const), params: record }),
      fc.record({ kind: fc.constant('remove' as const), params: record }),
      fc.record({ kind: fc.constant('find' as const), params: record }),
    )
    for (const compile of [true, false]) {
      fc.assert(
        fc.property(fc.array(op, { maxLength: 40 }), (ops) => {
          const keys = schema()
          const index = new ParamIndex<string>(keys, { compile })
          // The model: the nodes by the key their parameters build.
          const model = new Map<string, IndexedNode<string>>()
          for (const { kind, params } of ops) {
            const key = keys.build(params)
            if (kind === 'insert') {
              if (model.has(key)) continue // the caller removes an old node first
              const added = node(key)
              index.insert(params, added)
              model.set(key, added)
            } else if (kind === 'remove') {
              const found = model.get(key)
              if (found === undefined) continue
              index.remove(found)
              model.delete(key)
            }
            expect(index.find(params)).toBe(model.get(key))
          }
          const listed = [...index.nodes()]
          expect(listed.length).toBe(model.size)
          expect(new Set(listed)).toEqual(new Set(model.values()))
          for (const n of model.values()) index.remove(n)
          expect([...index.nodes()]).toEqual([])
        }),
        { numRuns: 500 },
      )
    }
  })

  it('leaves no empty level behind once its last node is removed (numbers and their texts alike)', () => {
    const keys = schema()
    const index = new ParamIndex<string>(keys)
    const a = node(keys.build({ tenantId: 1, productId: 2, locale: 'en', currency: 3 }))
    index.insert({ tenantId: 1, productId: 2, locale: 'en', currency: 3 }, a)
    expect(index.find({ tenantId: '1', productId: '2', locale: 'en', currency: '3' })).toBe(a)
    index.remove(a)
    expect(index.find({ tenantId: 1, productId: 2, locale: 'en', currency: 3 })).toBeUndefined()
    expect([...index.nodes()]).toEqual([])
    // The root holds nothing, alias or text: what a level-by-level read of the path shows.
    expect(a.path[0]!.size).toBe(0)
  })

  it('keys a level by a number only when a number was inserted there (a numeric string costs no alias)', () => {
    const keys = schema()
    const index = new ParamIndex<string>(keys)
    const fromUrl = { tenantId: 't1', productId: '7', locale: 'en', currency: 'EUR' }
    const a = node(keys.build(fromUrl))
    index.insert(fromUrl, a)
    expect(a.path[3]!.size).toBe(1)
    // Found by the number all the same, through its text.
    expect(index.find({ ...fromUrl, productId: 7 })).toBe(a)
    const typed = { tenantId: 't1', productId: 8, locale: 'en', currency: 'EUR' }
    const b = node(keys.build(typed))
    index.insert(typed, b)
    expect(b.path[3]).toBe(a.path[3])
    expect(b.path[3]!.size).toBe(3) // '7'; '8' and 8
    expect(index.find({ ...typed, productId: '8' })).toBe(b)
  })

  it('numberAlias: exactly the texts String(n) gives for a finite n', () => {
    fc.assert(
      fc.property(fc.double({ noNaN: true, noDefaultInfinity: true }), (n) => {
        expect(numberAlias(String(n))).toBe(n === 0 ? 0 : n)
      }),
    )
    for (const text of [
      '07',
      '-0',
      'Infinity',
      '-Infinity',
      'NaN',
      ' 7',
      '7 ',
      '0x10',
      '1e3',
      '',
      'x',
      '+1',
    ]) {
      expect(numberAlias(text)).toBeUndefined()
    }
    expect(numberAlias('1e+21')).toBe(1e21)
  })
})
