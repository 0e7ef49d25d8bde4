import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // the tests run the real binary: compile it first
    globalSetup: ['./test/build.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
  },
});
