// What every CLI command is: a name, its help, its flags (for util.parseArgs) and a run function returning the exit code.
import { parseArgs, type ParseArgsConfig } from 'node:util'
import { CliUsageError } from '../errors.js'

/** Where the command line is documented: a URL, since an installed package has no docs/ folder. */
export const CLI_DOCS_URL = 'https://github.com/stratacache/stratacache/blob/main/docs/cli.md'

/** Exit codes shared by every command (docs/cli.md lists them). */
export const ExitCode = Object.freeze({
  /** Done; for a check, everything passed. */
  ok: 0,
  /** A check failed (contract drift, an expired policy exception). */
  checkFailed: 1,
  /** The command line was wrong: unknown command or flag, missing or bad value. */
  usage: 2,
  /** Something the command needed failed: a file, the config module, the access log. */
  error: 3,
})

/** Where a command writes: data on `out`, progress and diagnostics on `err`. */
export interface CliIo {
  out(text: string): void
  err(text: string): void
  /** Whether `err` is a terminal: progress is drawn only there. */
  readonly errIsTty: boolean
  /** The directory relative paths are resolved against. */
  readonly cwd: string
}

export type Flags = NonNullable<ParseArgsConfig['options']>

export interface Command<F extends Flags = Flags> {
  readonly name: string
  /** One line for the command list in `stratacache --help`. */
  readonly summary: string
  /** The full `--help` text, from its usage line on. */
  readonly help: string
  /** The flags, as `util.parseArgs` options; `--help` is added to every command. */
  readonly flags: F
  /** How many positional arguments the command takes (`stratacache drill mass-expiry`). @default 0 */
  readonly positionals?: number
  run(values: FlagValues<F>, io: CliIo, positionals: readonly string[]): Promise<number>
}

/** The parsed values of a command's flags. */
export type FlagValues<F extends Flags> = {
  [K in keyof F]?: F[K]['type'] extends 'boolean' ? boolean : string
}

/** Declares a command with its flag types inferred. */
export function defineCommand<const F extends Flags>(command: Command<F>): Command<F> {
  return command
}

/**
 * Parses `args` against the command's flags. Returns undefined when `--help` was asked (the help was printed).
 * @throws CliUsageError for an unknown flag, a missing value, or a positional argument.
 */
export function parseFlags<F extends Flags>(
  command: Command<F>,
  args: readonly string[],
  io: CliIo,
): { values: FlagValues<F>; positionals: readonly string[] } | undefined {
  let values: Record<string, unknown>
  let positionals: string[]
  try {
    ;({ values, positionals } = parseArgs({
      args: [...args],
      options: { ...command.flags, help: { type: 'boolean', short: 'h' } },
      strict: true,
      allowPositionals: (command.positionals ?? 0) > 0,
    }))
  } catch (error) {
    throw usageError(command.name, error)
  }
  if (values.help === true) {
    io.out(command.help.endsWith('\n') ? command.help : `${command.help}\n`)
    return undefined
  }
  if (positionals.length > (command.positionals ?? 0)) {
    throw new CliUsageError(command.name, `Unexpected argument "${positionals.at(-1)}"`)
  }
  return { values: values as FlagValues<F>, positionals }
}

/** util.parseArgs' messages, shortened to one line that names the flag. */
function usageError(command: string, error: unknown): CliUsageError {
  const code = (error as { code?: unknown }).code
  const message = error instanceof Error ? error.message : String(error)
  const quoted = /'([^']+)'/.exec(message)?.[1] ?? ''
  switch (code) {
    case 'ERR_PARSE_ARGS_UNKNOWN_OPTION':
      return new CliUsageError(command, `Unknown flag ${quoted}`)
    case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE': {
      // "Option '-c, --config <value>' argument missing": name the long form.
      const flag = /--[\w-]+/.exec(quoted)?.[0] ?? quoted
      return new CliUsageError(
        command,
        message.includes('does not take') ? `Flag ${flag} takes no value` : `Flag ${flag} needs a value`,
      )
    }
    case 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL':
      return new CliUsageError(command, `Unexpected argument "${quoted}" (every input is given by a flag)`)
    default:
      return new CliUsageError(command, message.split('\n')[0] ?? 'Bad command line')
  }
}

/** A required string flag, or a usage error naming it. */
export function required(
  command: string,
  values: Record<string, unknown>,
  flag: string,
  what: string,
): string {
  const value = values[flag]
  if (typeof value !== 'string' || value === '') {
    throw new CliUsageError(command, `Missing --${flag} ${what}`)
  }
  return value
}

/**
 * Progress of a long step on stderr, redrawn in place: `progress(what, done, total)`, then `progress.done()` to clear
 * it. Drawn only when stderr is a terminal, so logs and pipes get no carriage returns.
 */
export function progressLine(
  io: CliIo,
): ((what: string, done: number, total: number) => void) & { done(): void } {
  let shown = false
  const step = (what: string, done: number, total: number) => {
    if (!io.errIsTty) return
    shown = true
    const percent = total > 0 ? Math.min(100, Math.floor((done / total) * 100)) : 0
    io.err(`\r\u001b[K${what}: ${percent}%`)
  }
  return Object.assign(step, {
    done() {
      if (shown) io.err('\r\u001b[K')
    },
  })
}
