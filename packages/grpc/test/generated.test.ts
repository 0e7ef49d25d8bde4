/**
 * The generated protobuf code is checked in (src/generated); regenerating it from the
 * .proto with the pinned protobufjs-cli must give identical files.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { expect, test } from 'vitest';

const pkg = fileURLToPath(new URL('..', import.meta.url));

// The generator runs pbjs twice and pbts (JSDoc) as child processes: a minute or more on a
// loaded 2-core machine. Run asynchronously: a synchronous exec blocks this worker, and vitest
// then fails it with "Timeout calling onTaskUpdate". The timeout below is a hang guard.
test('src/generated is what scripts/generate.mjs produces from the .proto', async () => {
  const out = mkdtempSync(join(tmpdir(), 'picket-'));
  try {
    await promisify(execFile)(process.execPath, [
      join(pkg, 'scripts', 'generate.mjs'),
      '--out',
      out,
    ]);
    for (const f of ['agent_v2.js', 'agent_v2.d.ts', 'descriptors.js', 'descriptors.d.ts']) {
      const fresh = readFileSync(join(out, f), 'utf8');
      const committed = readFileSync(join(pkg, 'src', 'generated', f), 'utf8');
      expect(
        fresh === committed,
        `${f} is stale: run \`pnpm --filter @picket/grpc generate\``,
      ).toBe(true);
    }
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
}, 300_000);
