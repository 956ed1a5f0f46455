// Runs work over a list with a bound on how much runs at once.

/**
 * Calls `run` for each item, at most `limit` at a time, in list order; resolves once every call settled. A call
 * that rejects is ignored here (each handles its own outcome), so one failure never stops the others.
 */
export async function forEachLimited<T>(
  items: readonly T[],
  limit: number,
  run: (item: T) => Promise<unknown>,
): Promise<void> {
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const item = items[next++]!
      try {
        await run(item)
      } catch {
        // The call settled its own outcome; the next item goes on.
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker))
}
