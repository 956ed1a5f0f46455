// The command line's dispatcher: picks the command, parses its flags, and turns errors into one line and an exit code.
import { readFileSync } from 'node:fs'
import { CliUsageError, StrataError } from '../errors.js'
import { CLI_DOCS_URL, ExitCode, parseFlags, type CliIo } from './command.js'
import { comingCommands, commands } from './commands/index.js'

function globalHelp(): string {
  const width = Math.max(...[...commands, ...comingCommands].map((c) => c.name.length)) + 2
  return `Usage: stratacache <command> [flags]

Commands:
${commands.map((c) => `  ${c.name.padEnd(width)}${c.summary}`).join('\n')}
${comingCommands.map((c) => `  ${c.name.padEnd(width)}${c.summary}`).join('\n')}

Run \`stratacache <command> --help\` for a command's flags. Documentation: ${CLI_DOCS_URL}
Exit codes: 0 ok; 1 a check failed; 2 bad command line; 3 an input could not be used.

Flags:
  -h, --help      this help
  -v, --version   the version of stratacache
`
}

function version(): string {
  // dist/cli/main.js and src/cli/main.ts both sit two levels below the package root.
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
    version: string
  }
  return pkg.version
}

/** Runs one command line (without `node` and the script) and resolves to the exit code. */
export async function main(argv: readonly string[], io: CliIo): Promise<number> {
  const [name, ...rest] = argv
  let command = ''
  try {
    if (name === undefined) {
      io.err(globalHelp())
      return ExitCode.usage
    }
    if (name === '--help' || name === '-h' || name === 'help') {
      io.out(globalHelp())
      return ExitCode.ok
    }
    if (name === '--version' || name === '-v') {
      io.out(`${version()}\n`)
      return ExitCode.ok
    }
    const found = commands.find((c) => c.name === name)
    if (found === undefined) {
      if (comingCommands.some((c) => c.name === name)) {
        throw new CliUsageError('', `"${name}" is not in this version of stratacache yet`)
      }
      throw new CliUsageError(
        '',
        name.startsWith('-')
          ? `Unknown flag ${name} before the command`
          : `Unknown command "${name}"; commands: ${commands.map((c) => c.name).join(', ')}`,
      )
    }
    command = found.name
    const parsed = parseFlags(found, rest, io)
    if (parsed === undefined) return ExitCode.ok
    return await found.run(parsed.values, io, parsed.positionals)
  } catch (error) {
    const prefix = command === '' ? 'stratacache' : `stratacache ${command}`
    if (error instanceof StrataError) {
      io.err(`${prefix}: ${oneLine(error.message)} [${error.code}]\n`)
      return error instanceof CliUsageError ? ExitCode.usage : ExitCode.error
    }
    if (process.env.STRATACACHE_DEBUG) io.err(`${String((error as Error)?.stack ?? error)}\n`)
    const message = error instanceof Error ? error.message : String(error)
    io.err(`${prefix}: ${oneLine(message)} (set STRATACACHE_DEBUG=1 for the stack)\n`)
    return ExitCode.error
  }
}

function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, ' ').trim()
}
