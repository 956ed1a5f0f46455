// The command table: one module per command. A new command is one import and one entry here.
import type { Command, Flags } from '../command.js'
import { contractCommand } from './contract.js'
import { drillCommand } from './drill.js'
import { inspectCommand } from './inspect.js'
import { purgeCommand } from './purge.js'
import { relayCommand } from './relay.js'
import { simulateCommand } from './simulate.js'
import { warmCommand } from './warm.js'

export const commands: readonly Command<Flags>[] = [
  contractCommand,
  drillCommand,
  inspectCommand,
  purgeCommand,
  relayCommand,
  simulateCommand,
  warmCommand,
]

/** Commands announced in `--help` that are not in this build yet. */
export const comingCommands: readonly { readonly name: string; readonly summary: string }[] = []
