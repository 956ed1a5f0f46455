// What a read may serve from the cache while a peer region is not heard from: the one rule, for every read path.
//
// A cached entry was right when it was created (loaded or written), and every invalidation a peer region sent before
// the peer's coverage time (region-relay.ts) has been applied here. So an entry may miss a peer's change for at most
// now - max(createdAt, coveredAt). Per consistency class:
// - bounded: served while that is at most `maxStaleness`; past it, the read loads from the source ('revalidate': the
//   value it loads is cached and served while younger than the bound; 'bypass': nothing cached is served until
//   the peers are heard from again);
// - strong: nothing cached is served once a peer is split (`regions.splitAfter`): every read goes to the source;
// - eventual: served as usual, and counted while a peer is split.
import type { NamespaceContext } from '../namespace/context.js'

/**
 * Whether a cached entry created at `createdAt` may be served now; counts what it refuses, and what an eventual
 * namespace serves during a split. Always true without regions.
 */
export function regionAllows<P, V>(ctx: NamespaceContext<P, V>, createdAt: number, now: number): boolean {
  const regions = ctx.rt.regions
  if (regions === undefined) return true
  const age = now - regions.coveredAt
  const options = ctx.options
  let floor: number
  if (options.consistency === 'eventual') {
    if (age > regions.splitAfterMs) ctx.counters.regionSplitServes++
    return true
  } else if (options.consistency === 'strong') {
    if (age <= regions.splitAfterMs) return true
    floor = Infinity
  } else {
    if (age <= options.maxStalenessMs) return true
    floor = options.onRegionSplit === 'bypass' ? Infinity : now - options.maxStalenessMs
  }
  if (createdAt >= floor) return true
  ctx.counters.regionRefused++
  return false
}
