#!/usr/bin/env node
// The `stratacache` executable: runs one command line against the process's stdout, stderr and working directory.
import type { CliIo } from './command.js'
import { main } from './run.js'

const io: CliIo = {
  out: (text) => process.stdout.write(text),
  err: (text) => process.stderr.write(text),
  errIsTty: process.stderr.isTTY === true,
  cwd: process.cwd(),
}

const code = await main(process.argv.slice(2), io)
process.exitCode = code
// A config module may hold handles of its own (a database pool): give it a moment, then leave anyway.
setTimeout(() => process.exit(code), 2_000).unref()
