/** readyWhenConnectable: a Zentinel-style agent is ready once its socket accepts connections. */
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { connectTarget, readyWhenConnectable, Supervisor } from '../src/index.js';
import { collectLogs, fastOptions, UDS_SERVER, until } from './helpers.js';

const running: Supervisor[] = [];
const dirs: string[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((s) => s.stop()));
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function socketPath(): string {
  const dir = mkdtempSync(join(tmpdir(), 'sup-'));
  dirs.push(dir);
  return join(dir, 'agent.sock');
}

/** The first line the server at `path` sends. */
function greet(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let got = '';
    const s = connect(path);
    s.on('data', (d) => {
      got += d.toString();
    });
    s.on('end', () => resolve(got));
    s.on('error', reject);
  });
}

describe('readyWhenConnectable', () => {
  it('is ready once the child listens on its Unix socket, not before', async () => {
    const path = socketPath();
    const s = new Supervisor(
      fastOptions({
        name: 'uds-agent',
        command: [process.execPath, UDS_SERVER, path, '400'],
        ready: readyWhenConnectable(`unix:${path}`, { intervalMs: 20 }),
        logger: collectLogs(),
      }),
    );
    running.push(s);
    let spawned = false;
    s.on('spawn', () => {
      spawned = true;
    });
    void s.start();
    await until(() => spawned);
    expect(s.state).toBe('starting');
    await s.whenReady();
    // ready means connectable: the agent answers
    expect(await greet(path)).toBe('hello\n');
    expect(s.stats()).toMatchObject({ state: 'ready', generation: 1, restarts: 0 });
    expect(s.stats().readySince).toBeTypeOf('number');
  });

  it('an agent that never listens is not ready: timeout, restart', async () => {
    const path = socketPath();
    const logger = collectLogs();
    const s = new Supervisor(
      fastOptions({
        name: 'no-socket',
        command: [process.execPath, UDS_SERVER, path, '600000'],
        ready: readyWhenConnectable(path, { intervalMs: 20 }),
        readyTimeoutMs: 300,
        logger,
      }),
    );
    running.push(s);
    void s.start().catch(() => {});
    await until(() => s.restarts >= 2);
    expect(s.state).not.toBe('ready');
    expect(logger.text('error')).toContain('not ready within readyTimeoutMs (300 ms)');
  });

  it('works over TCP (host:port, tcp://, grpc://)', async () => {
    const server = createServer((c) => c.end());
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port } = server.address() as { port: number };
    try {
      for (const endpoint of [
        `127.0.0.1:${port}`,
        `tcp://127.0.0.1:${port}`,
        `grpc://localhost:${port}/`,
      ]) {
        const check = readyWhenConnectable(endpoint);
        await check({} as never, new AbortController().signal);
      }
    } finally {
      await new Promise((r) => server.close(r));
    }
  });

  it('stops polling when its signal aborts, with the reason', async () => {
    const check = readyWhenConnectable(`unix:${socketPath()}`, { intervalMs: 20 });
    const ac = new AbortController();
    const p = check({} as never, ac.signal);
    setTimeout(() => ac.abort(new Error('enough')), 100);
    await expect(p).rejects.toThrow('enough');
  });

  it('reads every endpoint form', () => {
    expect(connectTarget('unix:/run/a.sock')).toEqual({ path: '/run/a.sock' });
    expect(connectTarget('grpc+unix:/run/a.sock')).toEqual({ path: '/run/a.sock' });
    expect(connectTarget('v1+unix:/run/a')).toEqual({ path: '/run/a' });
    expect(connectTarget('/run/a')).toEqual({ path: '/run/a' });
    expect(connectTarget('./a')).toEqual({ path: './a' });
    expect(connectTarget('agent.sock')).toEqual({ path: 'agent.sock' });
    expect(connectTarget('localhost:50051')).toEqual({ host: 'localhost', port: 50051 });
    expect(connectTarget('[::1]:9')).toEqual({ host: '::1', port: 9 });
    expect(connectTarget('tcp://10.0.0.1:80')).toEqual({ host: '10.0.0.1', port: 80 });
    expect(connectTarget('GRPCS://h:443/')).toEqual({ host: 'h', port: 443 });
  });

  it('refuses a bad endpoint when called, naming it', () => {
    for (const [endpoint, why] of [
      ['unix:', 'the socket path is empty'],
      ['localhost', 'expected unix:/path, a socket path or host:port'],
      ['h:0', 'port 0 is not 1…65535'],
      ['h:70000', 'port 70000 is not 1…65535'],
      ['ftp://h:21', 'unknown scheme "ftp://"'],
      ['tcp://h:1/path', 'expected unix:/path, a socket path or host:port'],
    ] as const) {
      expect(() => readyWhenConnectable(endpoint), endpoint).toThrow(
        `readyWhenConnectable: endpoint ${JSON.stringify(endpoint)}: ${why}`,
      );
    }
    expect(() => readyWhenConnectable('/a', { intervalMs: 0 })).toThrow('intervalMs');
  });
});
