import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['tests/**/*.test.ts'],
    // The reliability suite runs on its own (npm run test:reliability): minutes long, one file at a time.
    exclude: ['tests/reliability/**', '**/node_modules/**'],
    // Each file starts its own redis-server and servers on free ports, so files run in parallel safely.
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 60_000,
    hookTimeout: 60_000,
    reporters: ['default'],
  },
});
