import { availableParallelism } from 'node:os'
import { fileURLToPath } from 'node:url'
import { configDefaults, defineConfig } from 'vitest/config'

/**
 * Files whose tests run several Node processes at once (drill workers, stampede and staleness children) and assert
 * what those processes got done in a fixed time: with two other test files beside them on the 2-core CI machine
 * they were starved (a 3 s drill did 422 reads where it does 6,000 alone). They run after the rest, one at a time.
 */
const MULTI_PROCESS = [
  'test/cli/drill.test.ts',
  'test/cli/drill-recorded.test.ts',
  'test/chaos/staleness.test.ts',
  'test/chaos/stampede.test.ts',
  'test/chaos/restart-under-load.test.ts',
]

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
    // `include` is each project's (below): a project's list would be added to the root's, not put in its place.
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
    projects: [
      {
        extends: true,
        test: {
          name: 'suite',
          include: ['test/**/*.test.ts'],
          exclude: [...configDefaults.exclude, ...MULTI_PROCESS],
          sequence: { groupOrder: 0 },
        },
      },
      {
        extends: true,
        test: {
          name: 'multi-process',
          include: MULTI_PROCESS,
          fileParallelism: false,
          typecheck: { enabled: false },
          sequence: { groupOrder: 1 },
        },
      },
    ],
  },
})
