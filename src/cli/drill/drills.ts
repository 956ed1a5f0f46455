// The drills `stratacache drill` knows, with what one this version cannot run needs (no heavy imports: --help reads it).
import { DrillUnsupportedError } from '../../errors.js'

export const DRILLS = [
  { name: 'redis-restart', summary: 'L2 Redis killed mid-load (SIGKILL), restarted empty on the same port' },
  { name: 'delayed-invalidation', summary: 'every invalidation-bus message delivered late for a while' },
  {
    name: 'mass-expiry',
    summary: 'every L2 entry of the namespaces expired in the same instant (PEXPIRE 1 ms)',
  },
  {
    name: 'region-split',
    summary: 'regions cut from each other, then healed: not in this version (refused)',
    needs:
      'its own workers, fault and report for regions (the regions themselves exist: `createCache({ region, regions })`, ' +
      '`stratacache relay`)',
  },
] as const

export type DrillName = Exclude<(typeof DRILLS)[number]['name'], 'region-split'>

/**
 * The drill named `name`, or undefined for an unknown name.
 * @throws DrillUnsupportedError for a drill this version lists but cannot run.
 */
export function drillNamed(name: string): DrillName | undefined {
  const spec = DRILLS.find((d) => d.name === name)
  if (spec === undefined) return undefined
  if ('needs' in spec) throw new DrillUnsupportedError(spec.name, spec.needs)
  return spec.name
}
