/** vitest global setup: compiles the CLI to dist/ (unless it is up to date) so the tests run what users run. */
import { execFileSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

function newest(dir: string): number {
  return Math.max(
    ...readdirSync(dir, { withFileTypes: true }).map((e) =>
      e.isDirectory() ? newest(join(dir, e.name)) : statSync(join(dir, e.name)).mtimeMs,
    ),
  );
}

export default function setup(): void {
  const root = fileURLToPath(new URL('..', import.meta.url));
  let built = 0;
  try {
    built = statSync(join(root, 'dist', 'main.js')).mtimeMs;
  } catch {
    // not built yet
  }
  const inputs = Math.max(
    newest(join(root, 'src')),
    statSync(join(root, 'tsconfig.build.json')).mtimeMs,
  );
  if (built > inputs) return;
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
  execFileSync(process.execPath, [tsc, '-p', 'tsconfig.build.json'], {
    cwd: root,
    stdio: 'inherit',
  });
}
