// Redis stream ids (`ms-seq`): the write-behind queue orders its writes by them, and an entry's pending-write mark
// keeps the latest. (The Redis store's mark script compares them the same way, in Lua.)

/** Orders stream ids `ms-seq` numerically: negative when `a` comes first. */
export function compareStreamIds(a: string, b: string): number {
  const [am = '0', as = '0'] = a.split('-')
  const [bm = '0', bs = '0'] = b.split('-')
  return Number(am) - Number(bm) || Number(as) - Number(bs)
}
