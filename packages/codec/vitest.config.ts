import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  // The README example imports the package by name; test it against the sources.
  resolve: {
    alias: { '@picket/codec': fileURLToPath(new URL('./src/index.ts', import.meta.url)) },
  },
  test: {
    // The property tests run hundreds of cases through ~60 decoders each: CPU-bound, so on a
    // loaded 2-core machine one test can take well over vitest's 5 s default. A hang guard.
    testTimeout: 60_000,
  },
});
