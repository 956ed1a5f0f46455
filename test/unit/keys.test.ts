import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { escapeKeyText, KeySchema } from '../../src/core/keys.js'
import { InvalidArgumentError, InvalidKeyParamError, InvalidOptionError } from 'stratacache'

const schema = (template: string, dimensions: string[] = [], maxKeyLength = 256) =>
  new KeySchema({
    service: 'catalog',
    namespace: 'product',
    schemaVersion: 2,
    template,
    dimensions,
    maxKeyLength,
  })

const product = schema('tenant:{tenantId}:product:{productId}', ['locale', 'currency'])

describe('key building', () => {
  it('prefixes service, namespace and schema version and appends dimensions sorted by name', () => {
    expect(product.build({ tenantId: 't1', productId: 42, locale: 'en', currency: 'EUR' })).toBe(
      'catalog:product:v2:tenant:t1:product:42:currency=EUR:locale=en',
    )
    expect(product.prefix).toBe('catalog:product:v2:')
    expect(product.params).toEqual(['tenantId', 'productId', 'currency', 'locale'])
  })

  it('gives the same key whatever the order of the parameters and of the declared dimensions', () => {
    const other = schema('tenant:{tenantId}:product:{productId}', ['currency', 'locale'])
    const a = product.build({ tenantId: 't1', productId: 42, locale: 'en', currency: 'EUR' })
    const b = other.build({ currency: 'EUR', locale: 'en', productId: 42, tenantId: 't1' })
    expect(b).toBe(a)
  })

  it("names the same entry for 42 and '42', for true and 'true', for 7n and '7'", () => {
    const s = schema('item:{id}')
    expect(s.build({ id: 42 })).toBe(s.build({ id: '42' }))
    expect(s.build({ id: true })).toBe(s.build({ id: 'true' }))
    expect(s.build({ id: 7n })).toBe(s.build({ id: '7' }))
  })

  it('escapes separators, glob characters, braces, spaces and newlines', () => {
    const key = schema('item:{id}').build({ id: 'a:b*c?[d]{e} f\ng%' })
    expect(key).toBe('catalog:product:v2:item:a%3Ab%2Ac%3F%5Bd%5D%7Be%7D%20f%0Ag%25')
  })

  it('accepts a template without placeholders: a namespace with one entry', () => {
    expect(schema('settings').build({})).toBe('catalog:product:v2:settings')
  })

  it('hashes keys over the length limit, keeping the prefix', () => {
    const s = schema('item:{id}', [], 64)
    const key = s.build({ id: 'x'.repeat(100) })
    expect(key).toMatch(/^catalog:product:v2:#[A-Za-z0-9_-]{43}$/)
    expect(s.build({ id: 'x'.repeat(100) })).toBe(key)
    expect(s.build({ id: 'x'.repeat(101) })).not.toBe(key)
    expect(s.build({ id: 'short' })).toBe('catalog:product:v2:item:short')
  })

  describe('refuses bad parameters with a typed error naming the parameter', () => {
    const cases: [string, object, string, string][] = [
      ['missing', { tenantId: 't1', locale: 'en', currency: 'EUR' }, 'productId', 'missing'],
      [
        'undefined',
        { tenantId: 't1', productId: undefined, locale: 'en', currency: 'EUR' },
        'productId',
        'missing',
      ],
      [
        'extra',
        { tenantId: 't1', productId: 1, locale: 'en', currency: 'EUR', region: 'eu' },
        'region',
        'extra',
      ],
      ['empty', { tenantId: '', productId: 1, locale: 'en', currency: 'EUR' }, 'tenantId', 'empty'],
      [
        'object',
        { tenantId: 't1', productId: { id: 1 }, locale: 'en', currency: 'EUR' },
        'productId',
        'not-scalar',
      ],
      ['null', { tenantId: 't1', productId: null, locale: 'en', currency: 'EUR' }, 'productId', 'not-scalar'],
      ['array', { tenantId: 't1', productId: [1], locale: 'en', currency: 'EUR' }, 'productId', 'not-scalar'],
      ['NaN', { tenantId: 't1', productId: NaN, locale: 'en', currency: 'EUR' }, 'productId', 'not-finite'],
      [
        'Infinity',
        { tenantId: 't1', productId: Infinity, locale: 'en', currency: 'EUR' },
        'productId',
        'not-finite',
      ],
      [
        'lone surrogate',
        { tenantId: '\uD800', productId: 1, locale: 'en', currency: 'EUR' },
        'tenantId',
        'lone-surrogate',
      ],
      ['missing dimension', { tenantId: 't1', productId: 1, locale: 'en' }, 'currency', 'missing'],
    ]
    it.each(cases)('%s', (_, params, param, problem) => {
      let caught: unknown
      try {
        product.build(params)
      } catch (error) {
        caught = error
      }
      expect(caught).toBeInstanceOf(InvalidKeyParamError)
      expect(caught).toMatchObject({
        code: 'ERR_STRATA_INVALID_KEY_PARAM',
        param,
        problem,
        namespace: 'product',
      })
      expect((caught as Error).message).toContain(`\`${param}\``)
    })

    it('refuses parameters that are not an object', () => {
      expect(() => product.build('t1')).toThrow(InvalidArgumentError)
      expect(() => product.build(null)).toThrow(
        /an object of key parameters \(tenantId, productId, currency, locale\)/,
      )
    })

    it('reads parameters as property access does (through the prototype), and refuses inherited extras', () => {
      const s = schema('item:{id}')
      expect(s.build(Object.create({ id: 1 }) as object)).toBe('catalog:product:v2:item:1')
      const withExtra = Object.assign(Object.create({ region: 'eu' }) as object, { id: 1 })
      expect(() => s.build(withExtra)).toThrow(/`region` of namespace "product" is not declared/)
    })
  })

  describe('refuses bad templates at construction', () => {
    it.each([
      ['', /key template/],
      ['tenant::product', /segment "" is neither/],
      ['tenant:{a}{b}', /segment "\{a\}\{b\}" is neither/],
      ['tenant-{id}', /segment "tenant-\{id\}" is neither/],
      ['a b:{id}', /segment "a b" is neither/],
      ['item:{id}:again:{id}', /`\{id\}` appears twice/],
      ['item:{1id}', /neither/],
    ])('%j', (template, message) => {
      expect(() => schema(template)).toThrow(InvalidOptionError)
      expect(() => schema(template)).toThrow(message)
    })

    it('refuses a dimension that repeats a placeholder or another dimension, or is not an identifier', () => {
      expect(() => schema('item:{id}', ['id'])).toThrow(/in the template or in `dimensions` but not both/)
      expect(() => schema('item:{id}', ['locale', 'locale'])).toThrow(/not both/)
      expect(() => schema('item:{id}', ['lo cale'])).toThrow(/identifier names/)
    })

    it('refuses service and namespace names that could break the prefix', () => {
      expect(
        () =>
          new KeySchema({
            service: 'a:b',
            namespace: 'n',
            schemaVersion: 1,
            template: 'x',
            dimensions: [],
            maxKeyLength: 256,
          }),
      ).toThrow(/Invalid option `service`/)
      expect(
        () =>
          new KeySchema({
            service: 'a',
            namespace: 'n*',
            schemaVersion: 1,
            template: 'x',
            dimensions: [],
            maxKeyLength: 256,
          }),
      ).toThrow(/namespace name/)
      expect(
        () =>
          new KeySchema({
            service: 'a',
            namespace: 'n',
            schemaVersion: -1,
            template: 'x',
            dimensions: [],
            maxKeyLength: 256,
          }),
      ).toThrow(/schemaVersion/)
    })
  })
})

// Values as they reach the key: any non-empty string (including astral characters), numbers, bigints, booleans.
const scalar = fc.oneof(
  fc.string({ minLength: 1, unit: 'grapheme' }),
  fc.string({ minLength: 1, unit: 'binary-ascii' }),
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.bigInt(),
  fc.boolean(),
)
const paramsArb = fc.record({ tenantId: scalar, productId: scalar, locale: scalar, currency: scalar })
const asText = (p: Record<string, unknown>) =>
  JSON.stringify(
    Object.entries(p)
      .map(([k, v]) => [k, String(v)])
      .sort(),
  )

describe('key building properties', () => {
  it('is injective: parameters whose texts differ never share a key', () => {
    fc.assert(
      fc.property(paramsArb, paramsArb, (a, b) => {
        fc.pre(asText(a) !== asText(b))
        expect(product.build(a)).not.toBe(product.build(b))
      }),
      { numRuns: 2_000 },
    )
  })

  it('is injective across generations: keys of different generations never collide, hashed or not', () => {
    const long = fc.string({ minLength: 0, maxLength: 300 })
    const schemas = [0, 1, 2, 10].map((generation) => {
      const schema = new KeySchema({
        service: 'svc',
        namespace: 'gen',
        schemaVersion: 1,
        template: 'g1:{a}',
        dimensions: ['b'],
        maxKeyLength: 120,
      })
      schema.setGeneration(generation)
      return schema
    })
    fc.assert(
      fc.property(
        fc.nat({ max: 3 }),
        fc.nat({ max: 3 }),
        fc.record({ a: long.filter((t) => t.length > 0), b: scalar }),
        fc.record({ a: long.filter((t) => t.length > 0), b: scalar }),
        (g, h, p, q) => {
          fc.pre(g !== h || asText(p) !== asText(q))
          expect(schemas[g]!.build(p)).not.toBe(schemas[h]!.build(q))
        },
      ),
      { numRuns: 2_000 },
    )
    expect(schemas[2]!.build({ a: 'x', b: 1 })).toBe('svc:gen:v1:g2:g1:x:b=1')
    expect(schemas[0]!.build({ a: 'x', b: 1 })).toBe('svc:gen:v1:g1:x:b=1')
  })

  it('is injective on near-collisions: values that differ only by separators or escapes', () => {
    const tricky = fc.constantFrom(
      'a',
      'a:b',
      'a%3Ab',
      'a%',
      ':',
      '%25',
      '=',
      'a=b',
      '*',
      '%2A',
      ' ',
      '+',
      '%20',
      '#',
      '~',
    )
    const trickyParams = fc.record({ tenantId: tricky, productId: tricky, locale: tricky, currency: tricky })
    fc.assert(
      fc.property(trickyParams, trickyParams, (a, b) => {
        fc.pre(asText(a) !== asText(b))
        expect(product.build(a)).not.toBe(product.build(b))
      }),
      { numRuns: 2_000 },
    )
  })

  it('is stable: the same parameters in any order give the same key', () => {
    fc.assert(
      fc.property(paramsArb, fc.func(fc.integer()), (params, order) => {
        const shuffled = Object.fromEntries(
          Object.entries(params)
            .map((entry, i) => [order(i), entry] as const)
            .sort((x, y) => x[0] - y[0])
            .map(([, entry]) => entry),
        )
        expect(product.build(shuffled)).toBe(product.build(params))
      }),
    )
  })

  it('never emits a Redis glob character, brace, hash mark, white space or control character in a value', () => {
    fc.assert(
      fc.property(paramsArb, (params) => {
        const key = product.build(params)
        // Either escaped segments, or (past the length limit) the hash mark and a base64url SHA-256.
        expect(key.slice(product.prefix.length)).toMatch(/^(?:[A-Za-z0-9_.%:=-]+|#[A-Za-z0-9_-]{43})$/)
      }),
    )
  })

  it('escapes injectively: distinct texts escape to distinct strings, and decode back', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme' }), fc.string({ unit: 'grapheme' }), (a, b) => {
        fc.pre(a !== b)
        expect(escapeKeyText(a)).not.toBe(escapeKeyText(b))
        expect(decodeURIComponent(escapeKeyText(a)!)).toBe(a)
      }),
    )
  })

  it('hashes deterministically and keeps hashed keys apart from plain ones', () => {
    const short = schema('item:{id}', [], 64)
    fc.assert(
      fc.property(fc.string({ minLength: 1, maxLength: 120 }), (id) => {
        fc.pre(escapeKeyText(id) !== undefined)
        const key = short.build({ id })
        expect(key.length).toBeLessThanOrEqual(64)
        expect(short.build({ id })).toBe(key)
        if (key.includes('#')) expect(key).toMatch(/^catalog:product:v2:#/)
      }),
    )
  })
})
