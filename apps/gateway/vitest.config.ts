import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // test/processes.test.ts runs the built picket CLI: the CLI's own setup compiles it when stale
    globalSetup: ['../cli/test/build.ts'],
    // end-to-end tests spawn the gateway (tsx) and agents; these are hang guards, not budgets
    testTimeout: 30_000,
    hookTimeout: 30_000,
  },
});
