/**
 * Socket file permissions survive the layers on top: the `picket serve` CLI (UDS v2 and
 * v1) and the transport facade's reverse listener (what the gateway uses) create their
 * sockets with mode 0660, whatever the process umask. The servers themselves are tested
 * in packages/uds/test/control.test.ts, packages/v1/test/server.test.ts and
 * packages/reverse/test/listener.test.ts.
 */
import { spawn } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { EchoAgent } from '@picket/agents';
import { silentLogger } from '@picket/protocol';
import { connectReverse } from '@picket/reverse';
import { createPool } from '@picket/transport';
import { afterEach, describe, expect, it } from 'vitest';
import { onCleanup, runCleanups, tempDir, until } from './helpers.js';

afterEach(runCleanups);

const require = createRequire(import.meta.url);
const CLI = join(dirname(require.resolve('@picket/cli/package.json')), 'dist/main.js');

const mode = (path: string): number => statSync(path).mode & 0o777;

describe('socket modes', () => {
  it('picket serve: UDS and v1 sockets are 0660', async () => {
    const dir = tempDir();
    const uds = join(dir, 'echo.sock');
    const v1 = join(dir, 'echo-v1.sock');
    // umask 000: a server that left the mode to the umask would create 0777 sockets
    const child = spawn(
      '/bin/sh',
      [
        '-c',
        'umask 000 && exec "$0" "$@"',
        process.execPath,
        CLI,
        'serve',
        'echo',
        '--listen',
        uds,
        '--listen',
        `v1+unix:${v1}`,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    onCleanup(
      () =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null) resolve();
          else {
            child.once('exit', () => resolve());
            child.kill('SIGTERM');
          }
        }),
    );
    let out = '';
    child.stdout.on('data', (b: Buffer) => {
      out += b.toString();
    });
    child.stderr.on('data', (b: Buffer) => {
      out += b.toString();
    });
    await until(
      () => (out.match(/listening on/g) ?? []).length >= 2,
      15_000,
      `two "listening" lines (got: ${out})`,
    );
    expect(mode(uds)).toBe(0o660);
    expect(mode(v1)).toBe(0o660);
  });

  it('a pool reverse listener (reverse+unix:, as the gateway binds it) is 0660', async () => {
    const dir = tempDir();
    const path = join(dir, 'reverse.sock');
    const previous = process.umask(0); // as above: 0777 unless the listener sets the mode
    onCleanup(() => process.umask(previous));
    const pool = createPool({ logger: silentLogger });
    onCleanup(() => pool.close({ drainTimeoutMs: 0 }));
    const adding = pool.addAgent('edge', `reverse+unix:${path}`, {
      reverse: { tokens: ['t0ken'] },
    });
    adding.catch(() => undefined);
    await until(() => existsSync(path), 10_000, 'the listener socket');
    expect(mode(path)).toBe(0o660);
    // an agent dials in, so the pool entry completes and closes cleanly
    const agent = connectReverse({
      endpoint: `unix:${path}`,
      agentId: 'edge',
      authToken: 't0ken',
      handler: new EchoAgent({ agentId: 'edge' }),
      logger: silentLogger,
    });
    onCleanup(() => agent.stop());
    await agent.ready({ timeoutMs: 10_000 });
    await adding;
  });
});
