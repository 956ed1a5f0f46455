// `stratacache purge`: an audited purge of a namespace, a tag or a tenant, through the cache's own `purge()`.
import { userInfo } from 'node:os'
import { CliUsageError, ConfigModuleError } from '../../errors.js'
import { defineCommand, ExitCode } from '../command.js'
import { loadConfigModule } from '../config-module.js'

export const purgeCommand = defineCommand({
  name: 'purge',
  summary: 'purge a namespace, tag or tenant with a required reason, recorded in the audit log',
  help: `Usage: stratacache purge --config FILE (--namespace NAME | --tag TAG | --tenant ID) --reason TEXT [--actor WHO] [--json]

Purges through the cache's own purge(): an audit record (who, what, when, why) is written to the cache's audit sink
first, and only then are the entries deleted, in Redis and in every process's L1 (through the invalidation bus);
a second record gives the number of keys. A cache without an audit sink refuses to purge.

--tenant ID purges the tag "tenant:ID" (the convention for tenant tags; declare it in your namespaces' tags()).

Flags:
  -c, --config FILE     the module that creates your cache (with its audit sink)
  -n, --namespace NAME  purge this namespace (with --tag: only its entries carrying the tag)
  -t, --tag TAG         purge the entries carrying this tag
      --tenant ID       purge the entries tagged tenant:ID
  -r, --reason TEXT     why: an incident, a ticket, a data-subject request (required, recorded)
      --actor WHO       who asks (default: the OS user, as "<user>@cli")
      --json            print the result as JSON
  -h, --help            this help

Exit codes: 0 purged; 2 bad command line; 3 the config module, Redis or the audit sink could not be used.

Examples:
  npx stratacache purge --config stratacache.config.mjs --namespace product --reason "INC-1234: bad prices"
  npx stratacache purge --config stratacache.config.mjs --tenant t42 --reason "DSR-77: tenant offboarding"`,
  flags: {
    config: { type: 'string', short: 'c' },
    namespace: { type: 'string', short: 'n' },
    tag: { type: 'string', short: 't' },
    tenant: { type: 'string' },
    reason: { type: 'string', short: 'r' },
    actor: { type: 'string' },
    json: { type: 'boolean' },
  },
  async run(flags, io) {
    if (flags.reason === undefined || flags.reason.trim() === '') {
      throw new CliUsageError(
        'purge',
        'Missing --reason: every purge records why (an incident, a ticket, a request)',
      )
    }
    if (flags.tag !== undefined && flags.tenant !== undefined) {
      throw new CliUsageError(
        'purge',
        '--tag and --tenant do not go together: --tenant ID is --tag tenant:ID',
      )
    }
    const tag = flags.tenant !== undefined ? `tenant:${flags.tenant}` : flags.tag
    if (flags.namespace === undefined && tag === undefined) {
      throw new CliUsageError('purge', 'Say what to purge: --namespace NAME, --tag TAG or --tenant ID')
    }
    const actor = flags.actor ?? `${userInfo().username}@cli`
    const { cache, path } = await loadConfigModule('purge', flags.config, io.cwd)
    try {
      if (typeof cache.purge !== 'function' || typeof cache.connect !== 'function') {
        throw new ConfigModuleError(path, 'its cache has no purge()')
      }
      if (io.errIsTty) io.err('connecting…\n')
      await cache.connect()
      const result = await cache.purge({
        ...(flags.namespace === undefined ? {} : { namespace: flags.namespace }),
        ...(tag === undefined ? {} : { tag }),
        reason: flags.reason,
        actor,
      })
      io.out(
        flags.json === true
          ? `${JSON.stringify(result, null, 2)}\n`
          : `purged ${result.keysDeleted} keys (${[
              flags.namespace && `namespace ${flags.namespace}`,
              tag && `tag ${tag}`,
            ]
              .filter(Boolean)
              .join(', ')}); audit record ${result.id}\n`,
      )
      return ExitCode.ok
    } finally {
      await cache.close()
    }
  },
})
