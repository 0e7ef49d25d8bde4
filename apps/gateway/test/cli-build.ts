/**
 * vitest global setup: the process tests run the built `picket` CLI
 * (`@picket/cli`'s `dist/main.js`). turbo builds it before `test`; this also
 * recompiles it when run directly and its sources are newer than the build.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { CLI_DIR, PICKET_BIN } from './helpers.js';

function newest(dir: string): number {
  return Math.max(
    ...readdirSync(dir, { withFileTypes: true }).map((e) =>
      e.isDirectory() ? newest(join(dir, e.name)) : statSync(join(dir, e.name)).mtimeMs,
    ),
  );
}

export default function setup(): void {
  let built = 0;
  try {
    built = statSync(PICKET_BIN).mtimeMs;
  } catch {
    // not built yet
  }
  const inputs = Math.max(
    newest(join(CLI_DIR, 'src')),
    statSync(join(CLI_DIR, 'tsconfig.build.json')).mtimeMs,
  );
  if (built > inputs) return;
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
  execFileSync(process.execPath, [tsc, '-p', 'tsconfig.build.json'], {
    cwd: CLI_DIR,
    stdio: 'inherit',
  });
}
