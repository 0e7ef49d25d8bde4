import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterEach, expect, it } from 'vitest';
import { tempDir } from './helpers.js';

const run = promisify(execFile);
const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

it('importing the facade and connecting over UDS loads neither @picket/grpc nor @grpc/grpc-js', async () => {
  const tmp = tempDir();
  cleanups.push(tmp.cleanup);
  const child = fileURLToPath(new URL('./fixtures/uds-only.ts', import.meta.url));
  const { stdout } = await run(process.execPath, ['--import', 'tsx', child, tmp.dir], {
    cwd: fileURLToPath(new URL('..', import.meta.url)),
    timeout: 30_000,
  });
  const report = JSON.parse(stdout.trim().split('\n').pop() as string);
  expect(report.decision).toBe('allow');
  // the hook saw the facade and the UDS transport being loaded at all
  expect(report.resolvedCount).toBeGreaterThan(10);
  expect(report.afterUds).toEqual({ esm: [], cjs: 0 });
  // and it does see gRPC once a gRPC endpoint is used (the detection works)
  expect(report.afterGrpc.esm.length).toBeGreaterThan(0);
  expect(report.afterGrpc.cjs).toBeGreaterThan(0);
}, 40_000);
