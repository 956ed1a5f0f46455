// The suite's redis-server processes: the same helper `stratacache drill` uses, kept in src/ for it.
export * from '../../src/cli/drill/redis-server.js'
