// `stratacache relay`: runs a region's relay outside the app (a process that only relays), printing its state.
import { parseDuration } from '../../core/duration.js'
import { CliUsageError, ConfigModuleError } from '../../errors.js'
import type { RegionStats } from '../../regions/region-relay.js'
import { defineCommand, ExitCode } from '../command.js'
import { loadConfigModule } from '../config-module.js'

export const relayCommand = defineCommand({
  name: 'relay',
  summary: "relays the other regions' invalidations into this region (a process that only relays)",
  help: `Usage: stratacache relay --config FILE [--for DURATION] [--every DURATION] [--json]

Runs the region relay of the config module's cache (its \`region\` and \`regions\`) until SIGINT or SIGTERM, or for
--for: it competes for the region's relay lease like the app's processes, and while it holds it, reads every peer
region's outbox into this region's L2 and bus. Every --every it prints each peer's state: split or not, how old
the last news is, the relay lag and the backlog. Give the app's processes \`regions: { relay: false }\` to leave
the relaying to such processes. The config module must declare every namespace the regions write to.

Flags:
  -c, --config FILE      the module that creates your cache (with region and regions)
      --for DURATION     stop after this long (e.g. 30s); default: until SIGINT or SIGTERM
      --every DURATION   how often to print the state (default 10s)
      --json             one JSON object per line (cache.stats().regions) instead of text
  -h, --help             this help

Exit codes: 0 stopped; 2 bad command line; 3 the config module could not be used or its cache has no regions.

Examples:
  npx stratacache relay --config stratacache.config.mjs
  npx stratacache relay --config stratacache.config.mjs --every 1s --json`,
  flags: {
    config: { type: 'string', short: 'c' },
    for: { type: 'string' },
    every: { type: 'string' },
    json: { type: 'boolean' },
  },
  async run(flags, io) {
    if (flags.config === undefined) throw new CliUsageError('relay', 'Missing --config FILE')
    const forMs = flags.for === undefined ? undefined : duration(flags.for, '--for')
    const everyMs = duration(flags.every ?? '10s', '--every')
    const { cache, path } = await loadConfigModule('relay', flags.config, io.cwd)
    try {
      const regions = cache.options.regions
      const stats = cache.stats
      if (regions === undefined || stats === undefined) {
        throw new ConfigModuleError(
          path,
          'its cache has no `region` and `regions`: there is nothing to relay',
        )
      }
      if (!regions.relay) {
        throw new ConfigModuleError(
          path,
          'its cache has `regions.relay: false`: this process would never relay',
        )
      }
      await cache.connect?.call(cache).catch(() => {
        // Reported by the state lines (the relay retries): a region whose Redis is down is what a relay waits out.
      })
      const print = () => {
        const state = stats.call(cache).regions
        if (state === undefined) return
        io.out(flags.json === true ? `${JSON.stringify(state)}\n` : renderState(state))
      }
      print()
      await new Promise<void>((resolve) => {
        const timer = setInterval(print, everyMs)
        const stop = () => {
          clearInterval(timer)
          clearTimeout(limit)
          process.off('SIGINT', stop)
          process.off('SIGTERM', stop)
          resolve()
        }
        const limit = forMs === undefined ? undefined : setTimeout(stop, forMs)
        process.once('SIGINT', stop)
        process.once('SIGTERM', stop)
      })
      print()
    } finally {
      await cache.close()
    }
    return ExitCode.ok
  },
})

function duration(value: string, flag: string): number {
  try {
    const ms = parseDuration(/^\d+$/.test(value) ? Number(value) : value, flag)
    if (ms >= 1) return ms
  } catch {
    // Reported below, as a usage error.
  }
  throw new CliUsageError('relay', `${flag} must be a duration such as 30s or 500ms, got "${value}"`)
}

/** One line per peer: `us-east ← eu-west  ok  heard 120 ms ago  lag 12 ms  backlog 0  relaying`. */
export function renderState(stats: RegionStats): string {
  const lines = Object.values(stats.peers).map((peer) =>
    [
      `${stats.region} <- ${peer.region}`,
      peer.split ? 'SPLIT' : 'ok',
      `heard ${Math.round(peer.heardAgoMs)} ms ago`,
      `lag ${Math.round(peer.lagMs.last)} ms`,
      `backlog ${peer.backlog ?? '?'}`,
      `relayed ${peer.relayed}`,
      stats.relaying ? 'relaying' : 'standby',
      ...(peer.lastSplit === undefined
        ? []
        : [
            `last split ${peer.lastSplit.durationMs} ms, ${peer.lastSplit.replayed} replayed in ${peer.lastSplit.convergeMs} ms`,
          ]),
    ].join('  '),
  )
  return `${lines.join('\n')}\n`
}
