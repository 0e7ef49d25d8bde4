import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // end-to-end tests spawn the gateway (tsx) and agents; these are hang guards, not budgets
    testTimeout: 30_000,
    hookTimeout: 30_000,
  },
});
