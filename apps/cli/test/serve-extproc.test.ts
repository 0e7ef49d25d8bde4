/**
 * `picket serve … --listen extproc://host:port`: the real binary answering Envoy's ext_proc
 * (driven by @picket/extproc's Envoy stand-in), plaintext and TLS, and its usage errors.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { EnvoyStream, extProcClient, headerMap } from '@picket/extproc/internal';
import { afterEach, describe, expect, it } from 'vitest';
import { certFiles, jsonLines, killAll, run, start, tempDir, waitForLine } from './helpers.js';

afterEach(killAll);

const headers = (path: string) => ({
  request_headers: {
    headers: headerMap([
      [':method', 'GET'],
      [':path', path],
      [':authority', 'app.example'],
    ]),
    end_of_stream: true,
  },
});

/** The port of the extproc endpoint the CLI printed (--json). */
function extProcPort(stdout: string, scheme = 'extproc'): number {
  const line = jsonLines(stdout).find((l) => l.transport === 'extproc');
  expect(line?.endpoint).toMatch(new RegExp(`^${scheme}://127\\.0\\.0\\.1:\\d+$`));
  return Number(new URL(String(line?.endpoint)).port);
}

async function ask(client: ReturnType<typeof extProcClient>, path: string) {
  const s = new EnvoyStream(client);
  const r = await s.exchange(headers(path));
  await s.finish();
  return r;
}

describe('picket serve --listen extproc://', () => {
  it('serves the denylist agent to Envoy: block as an ImmediateResponse, allow as CONTINUE', async () => {
    const cli = start([
      'serve',
      'denylist',
      '--listen',
      'extproc://127.0.0.1:0',
      '--block-path',
      '/admin',
      '--json',
    ]);
    await waitForLine(cli, /"transport":"extproc"/);
    const client = extProcClient(`127.0.0.1:${extProcPort(cli.stdout())}`);
    try {
      const blocked = await ask(client, '/admin/panel');
      expect(blocked.immediate_response?.status?.code).toBe(403);
      expect(Buffer.from(blocked.immediate_response?.body ?? []).toString()).toBe('Forbidden path');
      const allowed = await ask(client, '/');
      expect(allowed.response).toBe('request_headers');
    } finally {
      client.close();
    }
    cli.proc.kill('SIGTERM');
    expect(await cli.exited).toBe(0);
    expect(cli.stdout()).toMatch(/"event":"stopping"/);
  });

  it('prints a plain listening line without --json', async () => {
    const cli = start(['serve', 'echo', '--listen', 'extproc://127.0.0.1:0']);
    const [line] = await waitForLine(
      cli,
      /listening on extproc:\/\/127\.0\.0\.1:\d+ \(Envoy ext_proc\)/,
    );
    expect(line).toBeDefined();
  });

  it('serves extproc+unix:/path', async () => {
    const tmp = tempDir();
    try {
      const path = tmp.path('extproc.sock');
      const cli = start([
        'serve',
        'denylist',
        '--listen',
        `extproc+unix:${path}`,
        '--block-path',
        '/x',
      ]);
      await waitForLine(cli, /listening on extproc\+unix:\S+ \(Envoy ext_proc\)/);
      const client = extProcClient(`unix:${path}`);
      try {
        expect((await ask(client, '/x')).immediate_response?.status?.code).toBe(403);
      } finally {
        client.close();
      }
      cli.proc.kill('SIGTERM');
      expect(await cli.exited).toBe(0);
    } finally {
      tmp.cleanup();
    }
  });

  it.skipIf(!hasOpenssl())('serves extprocs:// with --tls-cert / --tls-key', async () => {
    const tmp = tempDir();
    try {
      const c = certFiles(tmp.dir);
      const cli = start([
        'serve',
        'denylist',
        '--listen',
        'extprocs://127.0.0.1:0',
        '--block-path',
        '/admin',
        '--tls-cert',
        c.cert,
        '--tls-key',
        c.key,
        '--json',
      ]);
      await waitForLine(cli, /"transport":"extproc"/);
      const port = extProcPort(cli.stdout(), 'extprocs');
      const client = extProcClient(
        `127.0.0.1:${port}`,
        { ca: readFileSync(c.ca) },
        { 'grpc.ssl_target_name_override': 'localhost' },
      );
      try {
        expect((await ask(client, '/admin')).immediate_response?.status?.code).toBe(403);
      } finally {
        client.close();
      }
    } finally {
      tmp.cleanup();
    }
  });

  it('refuses what it cannot serve with a usage error', async () => {
    const bad = await run(['serve', 'echo', '--listen', 'extproc://nowhere']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(
      /expected extproc:\/\/host:port, extprocs:\/\/host:port or extproc\+unix:\/path/,
    );
    const noCert = await run(['serve', 'echo', '--listen', 'extprocs://127.0.0.1:0']);
    expect(noCert.code).toBe(2);
    expect(noCert.stderr).toMatch(
      /extprocs:\/\/127\.0\.0\.1:0: TLS needs --tls-cert and --tls-key/,
    );
  });
});

function hasOpenssl(): boolean {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
