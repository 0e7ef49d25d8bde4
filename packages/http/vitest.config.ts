import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // Tests run over real sockets and child processes; on a loaded 2-core machine a handshake
    // can take seconds. These are hang guards, not time budgets: no test asserts a duration.
    testTimeout: 30_000,
    hookTimeout: 30_000,
  },
});
