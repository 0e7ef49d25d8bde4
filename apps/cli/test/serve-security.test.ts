/**
 * `picket serve` in front of hostile peers and on a shared machine: what a
 * peer sent is printed escaped, the reverse token stays off the command line,
 * and TLS for gRPC is only ever asked for explicitly (grpcs://).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { silentLogger } from '@picket/protocol';
import { ReverseConnectionListener } from '@picket/reverse';
import { afterEach, describe, expect, it } from 'vitest';
import {
  certFiles,
  jsonLines,
  killAll,
  MAIN,
  run,
  start,
  tempDir,
  waitForLine,
} from './helpers.js';

/** Raw characters a peer must never get into a line we print: C0 (but \n), DEL, C1, separators, bidi. */
const RAW_UNSAFE =
  // biome-ignore lint/suspicious/noControlCharactersInRegex: looking for them is the point
  /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  await killAll();
  for (const c of cleanups.splice(0).reverse()) await c();
});

function tmp() {
  const d = tempDir();
  cleanups.push(() => d.cleanup());
  return d;
}

/** No raw control character, and no line a peer started. */
function expectClean(text: string): void {
  for (const line of text.split('\n')) expect(line).not.toMatch(RAW_UNSAFE);
  expect(text).not.toMatch(/^\[FAKE\]/m);
}

/** `picket <args>` with extra environment variables; output collected, killed after the test. */
function startWithEnv(args: string[], env: Record<string, string>) {
  const proc: ChildProcess = spawn(process.execPath, [MAIN, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  });
  let out = '';
  let err = '';
  proc.stdout?.setEncoding('utf8').on('data', (d: string) => (out += d));
  proc.stderr?.setEncoding('utf8').on('data', (d: string) => (err += d));
  const closed = new Promise((r) => proc.once('close', r));
  cleanups.push(() => {
    if (proc.exitCode === null) proc.kill('SIGKILL');
    return closed;
  });
  return { proc, stdout: () => out, stderr: () => err };
}

async function until(fn: () => boolean, what: string, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!fn()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A reverse listener on a Unix socket in this process, counting registrations per agent id. */
async function reverseListener(path: string, token: string) {
  const registered: string[] = [];
  const listener = await ReverseConnectionListener.bindUds(path, {
    tokens: [token],
    logger: silentLogger,
    handshakeTimeout: 5_000,
  });
  listener.on('connection', (c) => registered.push(c.registration.agent_id));
  cleanups.push(() => listener.close());
  return { listener, registered };
}

describe('serve prints what peers sent escaped', () => {
  const uri = '/x\n[FAKE] ok\u001b[31m\u009b1m\u2028\u202eevil';
  const clientIp = '192.0.2.1\n[FAKE] from';

  it('--log-events, as text and as --json', async () => {
    const d = tmp();
    const text = start(['serve', 'echo', '--listen', d.path('t.sock'), '--log-events']);
    const json = start(['serve', 'echo', '--listen', d.path('j.sock'), '--log-events', '--json']);
    await waitForLine(text, /listening on/);
    await waitForLine(json, /"event":"listening"/);
    for (const sock of ['t.sock', 'j.sock']) {
      const r = await run(['send', d.path(sock), '--uri', uri, '--client-ip', clientIp]);
      expect(r.stderr).toBe('');
    }
    await waitForLine(text, /request_complete/);
    await waitForLine(json, /request_complete/);
    expectClean(text.stdout());
    expect(text.stdout()).toContain(
      'GET /x\\n[FAKE] ok\\x1b[31m\\x9b1m\\u2028\\u202eevil from 192.0.2.1\\n[FAKE] from => allow',
    );
    expectClean(json.stdout());
    // the JSON lines still parse back to exactly what the peer sent
    const seen = jsonLines(json.stdout()).find((l) => l.type === 'request_headers');
    expect(seen).toMatchObject({ uri, clientIp });
  });

  it('send and probe print what the agent answered escaped', async () => {
    const d = tmp();
    const sock = d.path('e.sock');
    const id = 'evil\n[FAKE] agent\u001b[31m';
    const agent = start(['serve', 'echo', '--listen', sock, '--agent-id', id]);
    await waitForLine(agent, /listening on/);
    // the echo agent copies the uri into X-Echo-Path: the agent's answer carries it back
    const sent = await run(['send', sock, '--uri', uri]);
    expect(sent.code).toBe(0);
    expectClean(sent.stdout);
    expect(sent.stdout).toContain('set X-Echo-Path: /x\\n[FAKE] ok\\x1b[31m');
    const sentJson = await run(['send', sock, '--uri', uri, '--json']);
    expectClean(sentJson.stdout);
    expect(JSON.parse(sentJson.stdout).agentId).toBe(id);
    const probe = await run(['probe', sock]);
    expect(probe.code).toBe(0);
    expectClean(probe.stdout);
    expect(probe.stdout).toContain('evil\\n[FAKE] agent\\x1b[31m');
  });

  it('a refused reverse registration: the agent id and the proxy’s reason', async () => {
    const d = tmp();
    const sock = d.path('rev.sock');
    await reverseListener(sock, 'right-token');
    const agent = startWithEnv(
      [
        'serve',
        'echo',
        '--reverse',
        `reverse+unix:${sock}`,
        '--agent-id',
        'evil\n[FAKE] registered ok\u001b[31m',
      ],
      { PICKET_REVERSE_TOKEN: 'wrong-token' },
    );
    await until(() => agent.stderr().includes('refused by the proxy'), 'a refusal');
    expectClean(agent.stderr());
    expectClean(agent.stdout());
    expect(agent.stderr()).toContain('evil\\n[FAKE] registered ok\\x1b[31m could not register');
  });
});

describe('reverse tokens stay off the command line', () => {
  const TOKEN = 'tok-7f3a9c1e-never-print-me';

  it('--token-file and PICKET_REVERSE_TOKEN register; neither argv nor output holds the token', async () => {
    const d = tmp();
    const sock = d.path('rev.sock');
    const { registered } = await reverseListener(sock, TOKEN);
    const file = d.path('token');
    writeFileSync(file, `${TOKEN}\n`, { mode: 0o600 });
    const reverse = `reverse+unix:${sock}`;
    const fromFile = start([
      'serve',
      'echo',
      '--reverse',
      reverse,
      '--agent-id',
      'from-file',
      '--token-file',
      file,
    ]);
    const fromEnv = startWithEnv(
      ['serve', 'echo', '--reverse', reverse, '--agent-id', 'from-env'],
      {
        PICKET_REVERSE_TOKEN: TOKEN,
      },
    );
    // and one whose file holds a wrong token: refused, and its output must not leak either
    const wrongFile = d.path('wrong');
    writeFileSync(wrongFile, `${TOKEN}-but-wrong\n`);
    const wrong = start([
      'serve',
      'echo',
      '--reverse',
      reverse,
      '--agent-id',
      'wrong',
      '--token-file',
      wrongFile,
    ]);
    await waitForLine(fromFile, /from-file registered with/);
    await until(() => fromEnv.stdout().includes('from-env registered with'), 'from-env');
    await until(() => wrong.stderr().includes('refused by the proxy'), 'the refusal');
    expect(registered).toEqual(expect.arrayContaining(['from-file', 'from-env']));
    expect(registered).not.toContain('wrong');
    for (const p of [fromFile.proc, fromEnv.proc, wrong.proc]) {
      // what `ps` shows every local user
      const argv = readFileSync(`/proc/${p.pid}/cmdline`, 'utf8');
      expect(argv).toContain('--reverse');
      expect(argv).not.toContain(TOKEN);
    }
    for (const text of [
      fromFile.stdout(),
      fromFile.stderr(),
      fromEnv.stdout(),
      fromEnv.stderr(),
      wrong.stdout(),
      wrong.stderr(),
    ]) {
      expect(text).not.toContain(TOKEN);
    }
  });

  it('serve --help shows --token-file and the variable', async () => {
    const help = await run(['serve', '--help']);
    expect(help.stdout).toContain('--token-file <file>');
    expect(help.stdout).toContain('PICKET_REVERSE_TOKEN');
  });

  it('refuses a missing or empty token file, both --token and --token-file, an empty variable', async () => {
    const d = tmp();
    const base = ['serve', 'echo', '--reverse', `reverse+unix:${d.path('r.sock')}`];
    const missing = await run([...base, '--token-file', d.path('nope')]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain(
      `--token-file: cannot read token file ${d.path('nope')} (ENOENT)`,
    );
    writeFileSync(d.path('empty'), '\n');
    const empty = await run([...base, '--token-file', d.path('empty')]);
    expect(empty.code).toBe(2);
    expect(empty.stderr).toContain(`token file ${d.path('empty')} is empty`);
    const both = await run([...base, '--token', 'a', '--token-file', d.path('empty')]);
    expect(both.code).toBe(2);
    expect(both.stderr).toContain('give --token or --token-file, not both');
    const noReverse = await run(['serve', 'echo', '--listen', d.path('u.sock'), '--token', 'a']);
    expect(noReverse.code).toBe(2);
    expect(noReverse.stderr).toContain('--token / --token-file are for --reverse');
    const env = startWithEnv(base, { PICKET_REVERSE_TOKEN: '' });
    await until(() => env.proc.exitCode !== null, 'exit');
    expect(env.proc.exitCode).toBe(2);
    expect(env.stderr()).toContain('PICKET_REVERSE_TOKEN is set but empty');
  });
});

describe('gRPC TLS is explicit', () => {
  it('refuses --tls-cert with a plain host:port, grpc:// or grpc+unix: listener, naming the fix', async () => {
    const d = tmp();
    const c = certFiles(d.dir);
    const tls = ['--tls-cert', c.cert, '--tls-key', c.key];
    const bare = await run(['serve', 'echo', '--listen', '127.0.0.1:0', ...tls]);
    expect(bare.code).toBe(2);
    expect(bare.stderr).toContain(
      '--listen 127.0.0.1:0 is plain gRPC but --tls-cert was given: to serve TLS, listen on grpcs://127.0.0.1:0',
    );
    const grpc = await run(['serve', 'echo', '--listen', 'grpc://127.0.0.1:0', ...tls]);
    expect(grpc.code).toBe(2);
    expect(grpc.stderr).toContain('listen on grpcs://127.0.0.1:0');
    const unix = await run(['serve', 'echo', '--listen', `grpc+unix:${d.path('g.sock')}`, ...tls]);
    expect(unix.code).toBe(2);
    expect(unix.stderr).toContain('gRPC over a Unix socket has no TLS');
    // a certificate nothing uses is a mistake too
    const uds = await run(['serve', 'echo', '--listen', d.path('u.sock'), ...tls]);
    expect(uds.code).toBe(2);
    expect(uds.stderr).toContain('--tls-cert is used by grpcs:// listeners and reverse+tls://');
  });

  it('next to a grpcs:// listener a plain one stays plain', async () => {
    const d = tmp();
    const c = certFiles(d.dir);
    const both = start([
      'serve',
      'echo',
      '--listen',
      'grpcs://127.0.0.1:0',
      '--listen',
      '127.0.0.1:0',
      '--tls-cert',
      c.cert,
      '--tls-key',
      c.key,
      '--json',
    ]);
    await waitForLine(both, /"event":"listening"[^\n]*\n[^\n]*"event":"listening"/);
    const listening = jsonLines(both.stdout()).filter((l) => l.event === 'listening');
    expect(listening).toEqual([
      expect.objectContaining({ tls: true, endpoint: expect.stringMatching(/^grpcs:\/\//) }),
      expect.objectContaining({ tls: false, endpoint: expect.stringMatching(/^grpc:\/\//) }),
    ]);
    // the plain one answers without TLS
    const plain = listening[1]?.endpoint as string;
    const probe = await run(['probe', plain, '--json']);
    expect(probe.code).toBe(0);
  });
});
