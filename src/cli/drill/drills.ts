// The drills `stratacache drill` knows (no heavy imports: --help reads it).

export const DRILLS = [
  { name: 'redis-restart', summary: 'L2 Redis killed mid-load (SIGKILL), restarted empty on the same port' },
  { name: 'delayed-invalidation', summary: 'every invalidation-bus message delivered late for a while' },
  {
    name: 'mass-expiry',
    summary: 'every L2 entry of the namespaces expired in the same instant (PEXPIRE 1 ms)',
  },
  {
    name: 'region-split',
    summary: 'two regions cut from each other (their relay links reset), then healed',
  },
] as const

export type DrillName = (typeof DRILLS)[number]['name']

/** The drill named `name`, or undefined for an unknown name. */
export function drillNamed(name: string): DrillName | undefined {
  return DRILLS.find((d) => d.name === name)?.name
}
