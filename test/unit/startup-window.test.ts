// The first-minute window behind `stats().startup`: counts follow the namespaces during the window and are frozen
// after it; a warm start marks it only inside the window and only when it copied something.
import { describe, expect, it } from 'vitest'
import { STARTUP_WINDOW_MS, StartupWindow, type ReadTotals } from '../../src/observability/startup.js'

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

describe('StartupWindow', () => {
  it('follows the read counts during its window, then freezes them for good', async () => {
    const totals: ReadTotals = { l1Hits: 2, l2Hits: 1, misses: 1 }
    const window = new StartupWindow(() => ({ ...totals }), 50)
    expect(window.stats()).toEqual({
      start: 'cold',
      complete: false,
      reads: 4,
      l1Hits: 2,
      l2Hits: 1,
      misses: 1,
    })
    Object.assign(totals, { l1Hits: 10 })
    expect(window.stats()).toMatchObject({ reads: 12, complete: false })
    await sleep(80)
    Object.assign(totals, { l1Hits: 100, misses: 50 })
    expect(window.stats()).toEqual({
      start: 'cold',
      complete: true,
      reads: 12,
      l1Hits: 10,
      l2Hits: 1,
      misses: 1,
    })
  })

  it('is a warm start only for a warmStart() that copied entries, inside the window', async () => {
    const zero = () => ({ l1Hits: 0, l2Hits: 0, misses: 0 })
    const empty = new StartupWindow(zero, 1_000)
    empty.warmed(0)
    expect(empty.stats().start).toBe('cold')
    empty.warmed(3)
    expect(empty.stats().start).toBe('warm')
    empty.stop()

    const late = new StartupWindow(zero, 20)
    await sleep(40)
    late.warmed(3)
    expect(late.stats()).toMatchObject({ start: 'cold', complete: true })
  })

  it('freezes at stop() (the cache closes within its first minute), and the window is a minute by default', () => {
    const totals = { l1Hits: 1, l2Hits: 0, misses: 0 }
    const window = new StartupWindow(() => ({ ...totals }))
    window.stop()
    totals.l1Hits = 5
    expect(window.stats()).toMatchObject({ complete: true, reads: 1 })
    expect(STARTUP_WINDOW_MS).toBe(60_000)
  })
})
