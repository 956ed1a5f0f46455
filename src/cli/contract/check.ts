// `contract --check`: compares a committed contract with the one the code produces, and finds expired exceptions.
import type { ContractModel } from './describe.js'
import { NAMESPACE_HEADING } from './render.js'

/** How one section of the contract (the header, or a namespace) differs. */
export interface SectionDrift {
  /** `'header'` for the text before the first namespace, else the namespace name. */
  readonly section: string
  readonly kind: 'added' | 'removed' | 'changed'
  /** Changed lines, in document order: `-` in the file only, `+` in the code only. */
  readonly lines: readonly { readonly op: '-' | '+'; readonly text: string }[]
}

export interface ExpiredException {
  readonly namespace: string
  readonly rule: string
  readonly reason: string
  readonly until: string
}

export interface CheckResult {
  readonly ok: boolean
  readonly drift: readonly SectionDrift[]
  readonly expired: readonly ExpiredException[]
  /** Exceptions still valid that expire within `soonDays`. */
  readonly expiringSoon: readonly (ExpiredException & { readonly daysLeft: number })[]
}

/**
 * Checks `committed` (the file's text) against `generated` (the code's contract) and the model's exceptions against
 * `today` (`YYYY-MM-DD`, UTC). An exception holds through its `until` day and has expired the day after.
 */
export function checkContract(
  committed: string,
  generated: string,
  model: ContractModel,
  today: string,
  soonDays = 14,
): CheckResult {
  const drift = diffSections(normalize(committed), normalize(generated))
  const expired: ExpiredException[] = []
  const expiringSoon: (ExpiredException & { daysLeft: number })[] = []
  for (const ns of model.namespaces) {
    for (const e of ns.exceptions) {
      const item = { namespace: ns.name, rule: e.rule, reason: e.reason, until: e.until }
      const daysLeft = daysBetween(today, e.until)
      if (daysLeft < 0) expired.push(item)
      else if (daysLeft <= soonDays) expiringSoon.push({ ...item, daysLeft })
    }
  }
  return { ok: drift.length === 0 && expired.length === 0, drift, expired, expiringSoon }
}

function normalize(text: string): string[] {
  const lines = text.replace(/\r\n?/g, '\n').split('\n')
  while (lines.length > 0 && lines[lines.length - 1]!.trim() === '') lines.pop()
  return lines.map((line) => line.trimEnd())
}

function daysBetween(from: string, to: string): number {
  return Math.round((Date.parse(`${to}T00:00:00Z`) - Date.parse(`${from}T00:00:00Z`)) / 86_400_000)
}

interface Section {
  readonly name: string
  readonly lines: readonly string[]
}

/** Splits a contract at its namespace headings. */
function sections(lines: readonly string[]): Map<string, Section> {
  const result = new Map<string, { name: string; lines: string[] }>()
  let current: { name: string; lines: string[] } = { name: 'header', lines: [] }
  result.set(current.name, current)
  for (const line of lines) {
    if (line.startsWith(NAMESPACE_HEADING)) {
      const name = line.slice(NAMESPACE_HEADING.length).replace(/^`|`$/g, '')
      current = { name, lines: [] }
      result.set(name, current)
    }
    current.lines.push(line)
  }
  // A section's trailing blank lines depend only on what follows it: not a difference.
  for (const section of result.values()) {
    while (section.lines.length > 0 && section.lines[section.lines.length - 1] === '') section.lines.pop()
  }
  return result
}

function diffSections(committed: readonly string[], generated: readonly string[]): SectionDrift[] {
  const before = sections(committed)
  const after = sections(generated)
  const drift: SectionDrift[] = []
  const names = [...new Set([...before.keys(), ...after.keys()])].sort((a, b) =>
    a === 'header' ? -1 : b === 'header' ? 1 : a < b ? -1 : a > b ? 1 : 0,
  )
  for (const name of names) {
    const a = before.get(name)
    const b = after.get(name)
    if (a === undefined) drift.push({ section: name, kind: 'added', lines: [] })
    else if (b === undefined) drift.push({ section: name, kind: 'removed', lines: [] })
    else {
      const lines = diffLines(a.lines, b.lines)
      if (lines.length > 0) drift.push({ section: name, kind: 'changed', lines })
    }
  }
  return drift
}

/** The changed lines between `a` and `b` by longest common subsequence (sections are short: O(n·m) is fine). */
function diffLines(a: readonly string[], b: readonly string[]): { op: '-' | '+'; text: string }[] {
  const n = a.length
  const m = b.length
  // lcs[i][j]: length of the LCS of a[i..] and b[j..], in one flat array.
  const lcs = new Uint32Array((n + 1) * (m + 1))
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      lcs[i * (m + 1) + j] =
        a[i] === b[j]
          ? lcs[(i + 1) * (m + 1) + j + 1]! + 1
          : Math.max(lcs[(i + 1) * (m + 1) + j]!, lcs[i * (m + 1) + j + 1]!)
    }
  }
  const out: { op: '-' | '+'; text: string }[] = []
  let i = 0
  let j = 0
  while (i < n || j < m) {
    if (i < n && j < m && a[i] === b[j]) {
      i++
      j++
    } else if (i < n && (j === m || lcs[(i + 1) * (m + 1) + j]! >= lcs[i * (m + 1) + j + 1]!)) {
      // Removals first, so a changed line reads "- old" then "+ new".
      out.push({ op: '-', text: a[i++]! })
    } else {
      out.push({ op: '+', text: b[j++]! })
    }
  }
  return out
}
