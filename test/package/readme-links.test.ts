// The README is also the package's page on npmjs.com, where a relative link (`docs/x.md`) leads nowhere: every link
// must be absolute, and every link into this repository must name a file that exists.
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'

const root = fileURLToPath(new URL('../..', import.meta.url))
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
  repository?: { type: string; url: string }
  homepage?: string
  bugs?: { url: string }
}
const repo = 'https://github.com/stratacache/stratacache'
const blob = `${repo}/blob/main/`
const raw = 'https://raw.githubusercontent.com/stratacache/stratacache/main/'

/** Every link target of a Markdown text: `[x](target)`, `![x](target)`, `<https://…>`, `href="…"`, `src="…"`. */
function links(markdown: string): string[] {
  // Code blocks and inline code hold examples, not links.
  const text = markdown.replace(/```[\s\S]*?```/g, '').replace(/`[^`\n]*`/g, '')
  return [
    ...[...text.matchAll(/!?\[[^\]]*\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)].map((m) => m[1]!),
    ...[...text.matchAll(/<((?:https?|mailto):[^>\s]+)>/g)].map((m) => m[1]!),
    ...[...text.matchAll(/\b(?:href|src)="([^"]+)"/g)].map((m) => m[1]!),
    // Reference-style definitions: `[name]: target`.
    ...[...text.matchAll(/^\s*\[[^\]]+\]:\s*(\S+)/gm)].map((m) => m[1]!),
  ]
}

describe('the package page', () => {
  it('names the repository, the home page and where to report bugs', () => {
    expect(pkg.repository).toEqual({ type: 'git', url: `git+${repo}.git` })
    expect(pkg.homepage).toBe(`${repo}#readme`)
    expect(pkg.bugs).toEqual({ url: `${repo}/issues` })
  })

  it('finds the links of a README, in every form (a check of the scanner itself)', () => {
    expect(
      links(
        '[a](docs/a.md) ![b](b.png) <https://c.example> <a href="d.md">d</a> <img src="e.png">\n[f]: f.md\n',
      ),
    ).toEqual(['docs/a.md', 'b.png', 'https://c.example', 'd.md', 'e.png', 'f.md'])
    expect(links('`[not](a.md)` and\n```md\n[nor](b.md)\n```\n')).toEqual([])
  })

  it('has only absolute links in the README (relative ones break on npmjs.com)', () => {
    const readme = readFileSync(join(root, 'README.md'), 'utf8')
    const found = links(readme)
    expect(found.length).toBeGreaterThan(10)
    const relative = found.filter((link) => !/^(?:https?:|mailto:)/.test(link) && !link.startsWith('#'))
    expect(relative, 'relative links in README.md').toEqual([])
  })

  it('points every README link into this repository at a file that exists', () => {
    const readme = readFileSync(join(root, 'README.md'), 'utf8')
    const ours = links(readme).filter((link) => link.startsWith(blob) || link.startsWith(raw))
    expect(ours.length).toBeGreaterThan(10)
    for (const link of ours) {
      const path = link.slice(link.startsWith(blob) ? blob.length : raw.length).replace(/#.*$/, '')
      expect(existsSync(join(root, path)), `${link}: ${path} is not in the repository`).toBe(true)
    }
    // Images come from raw.githubusercontent.com: a blob URL is an HTML page, not an image.
    for (const [, target] of readme.matchAll(/!\[[^\]]*\]\(([^)\s]+)\)/g))
      expect(target).toMatch(/^https:\/\//)
  })
})
