import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import * as api from 'stratacache'

const source = readFileSync(new URL('../../src/errors.ts', import.meta.url), 'utf8')
const doc = readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8')
// `readonly code = '…'`, or with a declared type when a subclass has a code of its own (InvalidOptionError's).
const codesInSource = [...source.matchAll(/readonly code(?:: [^=]+)? = '(ERR_STRATA_[A-Z0-9_]+)'/g)].map(
  (m) => m[1]!,
)
const codesInDoc = [...doc.matchAll(/^## (ERR_STRATA_[A-Z0-9_]+)$/gm)].map((m) => m[1]!)

describe('error catalogue', () => {
  it('documents every error code in docs/errors.md, and nothing else', () => {
    expect(codesInSource.length).toBeGreaterThan(10)
    expect([...codesInDoc].sort()).toEqual([...codesInSource].sort())
  })

  it('never uses one code for two classes', () => {
    expect(new Set(codesInSource).size).toBe(codesInSource.length)
  })

  it('exports every error class, each a StrataError with its code and class name', () => {
    const classes = Object.values(api).filter(
      (v) => typeof v === 'function' && (v as { prototype: unknown }).prototype instanceof api.StrataError,
    )
    expect(classes.length).toBe(codesInSource.length)
    const error = new api.L2TimeoutError('get', 100)
    expect(error.name).toBe('L2TimeoutError')
    expect(error.code).toBe('ERR_STRATA_L2_TIMEOUT')
    expect(error).toBeInstanceOf(Error)
  })
})
