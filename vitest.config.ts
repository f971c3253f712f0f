import { defineConfig } from 'vitest/config';

// forks pool: the native addons (better-sqlite3, onnxruntime-node, dawn) are not worker-thread safe.
export default defineConfig({
  test: {
    pool: 'forks',
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
  },
});
