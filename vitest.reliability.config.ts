import { defineConfig } from 'vitest/config';

// `npm run test:reliability`: long runs with many processes each, so one file at a time.
export default defineConfig({
  test: {
    include: ['tests/reliability/**/*.test.ts'],
    pool: 'forks',
    maxWorkers: 1,
    fileParallelism: false,
    testTimeout: 900_000,
    hookTimeout: 120_000,
    reporters: ['default'],
  },
});
