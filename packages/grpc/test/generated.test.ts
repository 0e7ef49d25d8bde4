/**
 * The generated protobuf code is checked in (src/generated); regenerating it from the
 * .proto with the pinned protobufjs-cli must give identical files.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, test } from 'vitest';

const pkg = fileURLToPath(new URL('..', import.meta.url));

test('src/generated is what scripts/generate.mjs produces from the .proto', () => {
  const out = mkdtempSync(join(tmpdir(), 'picket-'));
  try {
    execFileSync(process.execPath, [join(pkg, 'scripts', 'generate.mjs'), '--out', out], {
      stdio: 'pipe',
    });
    for (const f of ['agent_v2.js', 'agent_v2.d.ts']) {
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
}, 60_000);
