/**
 * Reverse tokens off command lines: the gateway reads `auth_token_file`, the
 * agents `picket serve --token-file` or `PICKET_REVERSE_TOKEN`; the token never
 * shows in any process's argv, stdout or stderr, including a refused agent's.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'undici';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ConfigError, loadConfigFile } from '../src/config.js';
import { type EchoReply, type EchoUpstream, startEchoUpstream } from '../src/echo-upstream.js';
import {
  APP_DIR,
  killAll,
  PICKET_BIN,
  spawnPicket,
  spawnTs,
  startGateway,
  tempDir,
  until,
  writeYaml,
} from './helpers.js';

const TOKEN = 'rev-tok-4b8e1f0a-never-print-me';

let dir: string;
const extra: { proc: ChildProcess; closed: Promise<unknown> }[] = [];

beforeEach(() => {
  dir = tempDir();
});

afterEach(async () => {
  await killAll();
  for (const p of extra.splice(0)) {
    if (p.proc.exitCode === null) p.proc.kill('SIGKILL');
    await p.closed;
  }
  rmSync(dir, { recursive: true, force: true });
});

function configWith(agent: Record<string, unknown>): string {
  return writeYaml(dir, {
    upstreams: { echo: 'http://127.0.0.1:9' },
    agents: { rev: { endpoint: `reverse+unix:${join(dir, 'r.sock')}`, ...agent } },
    routes: [{ name: 'main', upstream: 'echo', agents: ['rev'] }],
  });
}

function configProblems(file: string): readonly string[] {
  try {
    loadConfigFile(file);
  } catch (e) {
    if (e instanceof ConfigError) return e.problems;
    throw e;
  }
  return [];
}

describe('auth_token_file in the gateway config', () => {
  it('resolves against the config file’s folder and drops one trailing newline', () => {
    mkdirSync(join(dir, 'secrets'));
    writeFileSync(join(dir, 'secrets', 'rev.token'), `${TOKEN}\n`);
    const config = loadConfigFile(configWith({ auth_token_file: 'secrets/rev.token' }));
    expect(config.agents.get('rev')?.authToken).toBe(TOKEN);
    writeFileSync(join(dir, 'crlf.token'), `${TOKEN}\r\n`);
    const crlf = loadConfigFile(configWith({ auth_token_file: join(dir, 'crlf.token') }));
    expect(crlf.agents.get('rev')?.authToken).toBe(TOKEN);
  });

  it('a missing or empty file, or both fields, is a problem naming the absolute path', () => {
    expect(configProblems(configWith({ auth_token_file: 'nope.token' }))).toEqual([
      `agents.rev.auth_token_file: cannot read token file ${join(dir, 'nope.token')} (ENOENT)`,
    ]);
    writeFileSync(join(dir, 'empty.token'), '\n');
    expect(configProblems(configWith({ auth_token_file: 'empty.token' }))).toEqual([
      `agents.rev.auth_token_file: token file ${join(dir, 'empty.token')} is empty`,
    ]);
    writeFileSync(join(dir, 'rev.token'), TOKEN);
    const both = configProblems(configWith({ auth_token: 'x', auth_token_file: 'rev.token' }));
    expect(both).toEqual(['agents.rev: give auth_token or auth_token_file, not both']);
    for (const p of both) expect(p).not.toContain(TOKEN);
  });
});

describe('gateway and agents with tokens from files and the environment', () => {
  let upstream: EchoUpstream;
  beforeEach(async () => {
    upstream = await startEchoUpstream('echo');
  });
  afterEach(async () => {
    await upstream.close();
  });

  it('agents register; the token is in no argv and no output', async () => {
    writeFileSync(join(dir, 'rev.token'), `${TOKEN}\n`, { mode: 0o600 });
    writeFileSync(join(dir, 'wrong.token'), `${TOKEN}-but-wrong\n`, { mode: 0o600 });
    const fileSock = join(dir, 'file.sock');
    const envSock = join(dir, 'env.sock');
    const gw = await startGateway([
      '--config',
      writeYaml(dir, {
        listen: '127.0.0.1:0',
        upstreams: { echo: upstream.url },
        agents: {
          // relative: next to the config file, not the gateway's working directory
          'rev-file': { endpoint: `reverse+unix:${fileSock}`, auth_token_file: 'rev.token' },
          'rev-env': { endpoint: `reverse+unix:${envSock}`, auth_token_file: 'rev.token' },
        },
        routes: [{ name: 'main', upstream: 'echo', agents: ['rev-file', 'rev-env'] }],
      }),
    ]);
    const fromFile = spawnPicket([
      'serve',
      'echo',
      '--reverse',
      `reverse+unix:${fileSock}`,
      '--agent-id',
      'rev-file',
      '--token-file',
      join(dir, 'rev.token'),
    ]);
    const fromEnv = spawnWithEnv(
      ['serve', 'echo', '--reverse', `reverse+unix:${envSock}`, '--agent-id', 'rev-env'],
      { PICKET_REVERSE_TOKEN: TOKEN },
    );
    const wrong = spawnPicket([
      'serve',
      'echo',
      '--reverse',
      `reverse+unix:${fileSock}`,
      '--agent-id',
      'rev-file',
      '--token-file',
      join(dir, 'wrong.token'),
    ]);
    await fromFile.waitFor(/rev-file registered with/);
    await until(() => fromEnv.stdout().includes('rev-env registered with'), 20_000);
    await until(() => /refused by the proxy/.test(wrong.stderr()), 20_000);
    await until(() => /refused/.test(gw.stderr()), 20_000);

    // both registered agents serve requests
    const res = await request(`${gw.base}/items`);
    expect(res.statusCode).toBe(200);
    const echoed = (await res.body.json()) as EchoReply;
    expect(echoed.headers['x-echo-agent']).toMatch(/^rev-(file|env)\/1\.0$/);
    expect(echoed.headers['x-echo-request-num']).toBe('1');

    // a gateway whose token file is missing names the file and stops
    const broken = spawnTs('src/main.ts', [
      '--config',
      configWith({ auth_token_file: join(dir, 'missing.token') }),
    ]);
    expect(await broken.exited).not.toBe(0);
    expect(broken.stderr()).toContain(`cannot read token file ${join(dir, 'missing.token')}`);

    const procs = [gw, fromFile, fromEnv, wrong, broken];
    for (const p of procs) {
      expect(p.stdout()).not.toContain(TOKEN);
      expect(p.stderr()).not.toContain(TOKEN);
    }
    // what `ps` shows every local user (the running ones; `broken` has exited)
    for (const p of [gw, fromFile, fromEnv, wrong]) {
      const argv = readFileSync(`/proc/${p.proc.pid}/cmdline`, 'utf8');
      expect(argv.length).toBeGreaterThan(0);
      expect(argv).not.toContain(TOKEN);
    }
  });
});

/** `picket <args>` with extra environment variables (killed after the test). */
function spawnWithEnv(args: string[], env: Record<string, string>) {
  const proc = spawn(process.execPath, [PICKET_BIN, ...args], {
    cwd: APP_DIR,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, NODE_NO_WARNINGS: '1', ...env },
  });
  let out = '';
  let err = '';
  proc.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  proc.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
  extra.push({ proc, closed: new Promise((r) => proc.once('close', r)) });
  return { proc, stdout: () => out, stderr: () => err };
}
