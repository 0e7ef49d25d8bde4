/**
 * Reverse-connection tokens never show up where operators look: the gateway's output,
 * `/healthz` and `/metrics`, and the `picket` CLI's output (as the agent with `serve
 * --reverse --token`, and as the proxy with `probe … --token`), also when a wrong token is
 * presented and refused. The listener and connectReverse themselves are tested in
 * packages/reverse/test/secrets.test.ts.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import * as http from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import { EchoAgent } from '@picket/agents';
import { type AgentProtocolError, silentLogger } from '@picket/protocol';
import { connectReverse, ReverseConnectionListener } from '@picket/reverse';
import { afterEach, describe, expect, it } from 'vitest';
import { onCleanup, runCleanups, tempDir, until } from './helpers.js';

afterEach(runCleanups);

const require = createRequire(import.meta.url);
const CLI = join(dirname(require.resolve('@picket/cli/package.json')), 'dist/main.js');
const GATEWAY_DIR = dirname(require.resolve('@picket/gateway/package.json'));

const RIGHT = 'tok-RIGHT-5c1a9e0f7b';
const WRONG = 'tok-WRONG-88d2c4a61e';

/** Spawns a child and collects everything it prints. */
function run(
  command: string,
  args: string[],
  cwd?: string,
): { child: ChildProcess; output: () => string } {
  const child = spawn(command, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout?.on('data', (b: Buffer) => {
    out += b.toString();
  });
  child.stderr?.on('data', (b: Buffer) => {
    out += b.toString();
  });
  onCleanup(
    () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) resolve();
        else {
          child.once('exit', () => resolve());
          child.kill('SIGTERM');
          setTimeout(() => child.kill('SIGKILL'), 5000).unref();
        }
      }),
  );
  return { child, output: () => out };
}

async function get(url: string): Promise<string> {
  const res = await fetch(url);
  return res.text();
}

describe('tokens are never printed', () => {
  it('by the gateway: not in its output, /healthz or /metrics, for right and wrong tokens', async () => {
    const dir = tempDir();
    const upstream = http.createServer((_req, res) => res.end('ok'));
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
    onCleanup(() => new Promise<void>((r) => upstream.close(() => r())));
    const reverse = join(dir, 'reverse.sock');
    writeFileSync(
      join(dir, 'gw.yaml'),
      [
        'listen: 127.0.0.1:0',
        'upstreams:',
        `  app: http://127.0.0.1:${(upstream.address() as AddressInfo).port}`,
        'agents:',
        '  edge:',
        `    endpoint: reverse+unix:${reverse}`,
        `    auth_token: ${RIGHT}`,
        'routes:',
        '  - path_prefix: /',
        '    upstream: app',
        '    agents: [edge]',
        '',
      ].join('\n'),
    );
    const gw = run(
      process.execPath,
      [
        '--import',
        'tsx',
        join(GATEWAY_DIR, 'src/main.ts'),
        '--config',
        join(dir, 'gw.yaml'),
        '--listen',
        '127.0.0.1:0',
      ],
      GATEWAY_DIR,
    );
    await until(
      () => existsSync(reverse),
      30_000,
      `the reverse listener (gateway said: ${gw.output()})`,
    );

    // an agent with the wrong token is refused (and retries) …
    const intruder = connectReverse({
      endpoint: `unix:${reverse}`,
      agentId: 'edge',
      authToken: WRONG,
      handler: new EchoAgent({ agentId: 'edge' }),
      logger: silentLogger,
      reconnect: { initialDelayMs: 50, maxDelayMs: 100 },
    });
    onCleanup(() => intruder.stop());
    const refusals: AgentProtocolError[] = [];
    intruder.on('registrationFailed', (e) => refusals.push(e));
    // (a dial racing the listener's start may fail with CONNECTION_FAILED first)
    const unauthenticated = (): number =>
      refusals.filter((e) => e.code === 'UNAUTHENTICATED').length;
    await until(() => unauthenticated() >= 2, 15_000, 'refusals of the wrong token');
    await intruder.stop();
    for (const e of refusals) expect(e.message).not.toContain(WRONG);

    // … the right one registers, and traffic flows
    const agent = connectReverse({
      endpoint: `unix:${reverse}`,
      agentId: 'edge',
      authToken: RIGHT,
      handler: new EchoAgent({ agentId: 'edge' }),
      logger: silentLogger,
    });
    onCleanup(() => agent.stop());
    await agent.ready({ timeoutMs: 15_000 });
    await until(
      () => /listening on http:\/\/\S+/.test(gw.output()),
      30_000,
      'the gateway to listen',
    );
    const base = (/http:\/\/127\.0\.0\.1:\d+/.exec(gw.output()) as RegExpExecArray)[0];
    let lastHealth = '';
    for (let i = 0; i < 50 && !/"healthy":\s*true/.test(lastHealth); i++) {
      lastHealth = await get(`${base}/_picket/healthz`);
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(await get(`${base}/some/page`)).toBe('ok');
    const metrics = await get(`${base}/_picket/metrics`);

    for (const text of [gw.output(), lastHealth, metrics]) {
      expect(text).not.toContain(RIGHT);
      expect(text).not.toContain(WRONG);
    }
    expect(gw.output()).toMatch(/refused|invalid token|Authentication failed/i);
  });

  it('by picket serve --reverse --token, when the proxy refuses the token', async () => {
    const path = join(tempDir(), 'proxy.sock');
    const listener = await ReverseConnectionListener.bindUds(path, {
      tokens: ['some-other-token'],
      logger: silentLogger,
    });
    onCleanup(() => listener.close());
    let refused = 0;
    listener.on('rejected', () => refused++);
    const cli = run(process.execPath, [
      CLI,
      'serve',
      'echo',
      '--reverse',
      `reverse+unix:${path}`,
      '--agent-id',
      'edge',
      '--token',
      WRONG,
    ]);
    await until(() => refused >= 2, 15_000, 'two refusals');
    await until(
      () => /token|Authentication/i.test(cli.output()),
      5000,
      'the CLI reporting the refusal',
    );
    expect(cli.output()).not.toContain(WRONG);
  });

  it('by picket probe as the proxy (--token), when an agent presents a wrong one', async () => {
    const path = join(tempDir(), 'cli-proxy.sock');
    const cli = run(process.execPath, [
      CLI,
      'probe',
      `reverse+unix:${path}`,
      '--agent-id',
      'edge',
      '--token',
      RIGHT,
      '--connect-timeout',
      '3000',
      '--verbose',
    ]);
    await until(() => existsSync(path), 15_000, 'the CLI listener');
    const intruder = connectReverse({
      endpoint: `unix:${path}`,
      agentId: 'edge',
      authToken: WRONG,
      handler: new EchoAgent({ agentId: 'edge' }),
      logger: silentLogger,
      reconnect: { initialDelayMs: 50, maxDelayMs: 100 },
    });
    onCleanup(() => intruder.stop());
    await new Promise<void>((resolve) => cli.child.once('exit', () => resolve()));
    expect(cli.child.exitCode).not.toBe(0);
    expect(cli.output()).not.toContain(RIGHT);
    expect(cli.output()).not.toContain(WRONG);
  });
});
