import { availableParallelism } from 'node:os'
import { fileURLToPath } from 'node:url'
import { defineConfig } from 'vitest/config'

export default defineConfig({
  resolve: {
    // Tests import the package by name, as users do; it resolves to the sources.
    alias: {
      'stratacache/redis': fileURLToPath(new URL('./src/redis.ts', import.meta.url)),
      'stratacache/ioredis': fileURLToPath(new URL('./src/ioredis.ts', import.meta.url)),
      'stratacache/disk': fileURLToPath(new URL('./src/disk.ts', import.meta.url)),
      'stratacache/prometheus': fileURLToPath(new URL('./src/prometheus.ts', import.meta.url)),
      'stratacache/opentelemetry': fileURLToPath(new URL('./src/opentelemetry.ts', import.meta.url)),
      stratacache: fileURLToPath(new URL('./src/index.ts', import.meta.url)),
    },
  },
  test: {
    include: ['test/**/*.test.ts'],
    reporters: ['default', './test/summary-reporter.ts'],
    globalSetup: ['test/global-setup.ts'],
    testTimeout: 20_000,
    // Most files spend their time waiting on timers, Redis and child processes, not on the CPU. Vitest's default
    // (one worker per core, but one) ran them one at a time on the 2-core CI machine: 10.5 min of which the CPU was
    // mostly idle. Three workers there: 3.3-3.8 min. The tests wait for what they need (polls, deferreds), not for
    // a fixed sleep, so running them side by side only makes them slower, not wrong.
    maxWorkers: Math.max(3, availableParallelism() - 1),
    // Polls wait for background work (an L2 fill after a load, a bus message, a relay step). On a loaded CI machine
    // with three Node majors in a row, 1 s (vitest's default) was not always enough; a poll that succeeds still
    // returns at once.
    expect: { poll: { timeout: 5_000 } },
    // `--tags-filter='!registry'` leaves out the tests that need the npm registry.
    tags: [
      {
        name: 'registry',
        description:
          'Installs packages from the npm registry (must be reachable: these tests fail without it).',
        timeout: 60_000,
      },
    ],
    hookTimeout: 20_000,
    typecheck: {
      enabled: true,
      include: ['test/types/**/*.test-d.ts'],
      tsconfig: './tsconfig.json',
    },
  },
})
