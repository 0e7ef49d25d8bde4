import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  // The README example imports the package by name; test it against the sources.
  resolve: {
    alias: { '@picket/codec': fileURLToPath(new URL('./src/index.ts', import.meta.url)) },
  },
});
