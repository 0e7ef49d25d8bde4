import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // template/test runs here too: the template itself must pass its own tests
    include: ['test/**/*.test.ts', 'template/test/**/*.test.ts'],
    // The end-to-end test packs tarballs, runs npm scripts and child processes; on a loaded
    // 2-core machine that takes a while. These are hang guards, not time budgets.
    testTimeout: 180_000,
    hookTimeout: 180_000,
  },
});
