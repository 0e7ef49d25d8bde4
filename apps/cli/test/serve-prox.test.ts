/**
 * `picket serve <agent> --prox`: the built CLI started as prox starts a plugin, driven over its
 * stdin/stdout and its hook socket.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import * as net from 'node:net';
import { dirname } from 'node:path';
import {
  decodeAuthorizeResult,
  decodeConnResult,
  decodePluginLine,
  decodeResponseModResult,
  encodeConfigureLine,
  encodeConnInfo,
  encodeEnvelope,
  encodeProxFrame,
  encodeRequestInfo,
  encodeResponsePair,
  HookType,
  type PluginLine,
  ProxFrameReader,
} from '@picket/prox';
import { afterEach, describe, expect, it } from 'vitest';
import { MAIN, run } from './helpers.js';

interface Plugin {
  proc: ChildProcess;
  lines: PluginLine[];
  raw: string[];
  stderr(): string;
  exited: Promise<number | null>;
}

const children: ChildProcess[] = [];
afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null) c.kill('SIGKILL');
});

function startPlugin(args: string[]): Plugin {
  const proc = spawn(process.execPath, [MAIN, 'serve', ...args, '--prox'], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  children.push(proc);
  const plugin: Plugin = {
    proc,
    lines: [],
    raw: [],
    stderr: () => err,
    exited: new Promise((resolve) => proc.once('close', (code) => resolve(code))),
  };
  let err = '';
  let buf = '';
  proc.stderr?.setEncoding('utf8').on('data', (d: string) => (err += d));
  proc.stdout?.setEncoding('utf8').on('data', (d: string) => {
    buf += d;
    for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
      plugin.raw.push(buf.slice(0, nl));
      plugin.lines.push(decodePluginLine(buf.slice(0, nl)));
      buf = buf.slice(nl + 1);
    }
  });
  return plugin;
}

async function until(check: () => boolean, what: string, p: Plugin): Promise<void> {
  const end = Date.now() + 20_000;
  while (!check()) {
    if (Date.now() > end || p.proc.exitCode !== null) {
      throw new Error(`no ${what}; stdout ${p.raw.join(' | ')}; stderr ${p.stderr()}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function configure(p: Plugin): Promise<string> {
  p.proc.stdin?.write(
    encodeConfigureLine({ routeId: 'gw:0', match: { domain: 'a.example', path: '/' } }),
  );
  await until(() => p.lines.length >= 2, 'ok + ready', p);
  expect(p.raw[0]).toBe('{"result":"ok"}');
  const ready = p.lines[1];
  if (ready?.kind !== 'ready') throw new Error(`expected ready, got ${p.raw[1]}`);
  return ready.socket;
}

/** One call on a fresh hook connection. */
function call(socket: string, hook: number, inner: Uint8Array): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const reader = new ProxFrameReader();
    const s = net.createConnection({ path: socket }, () =>
      s.write(encodeProxFrame(encodeEnvelope(hook, inner))),
    );
    s.on('data', (chunk) => {
      const [frame] = reader.push(chunk);
      if (frame !== undefined) {
        s.destroy();
        resolve(frame);
      }
    });
    s.on('error', reject);
    s.on('close', () => reject(new Error('closed without an answer')));
  });
}

describe('picket serve --prox', () => {
  it('denylist: blocks paths and client IPs on on_request and on_connect; stdin EOF exits 0 and removes the socket', async () => {
    const p = startPlugin([
      'denylist',
      '--block-path',
      '/admin',
      '--block-ip',
      '10.0.0.0/8',
      '--log-events',
    ]);
    const socket = await configure(p);
    expect(p.lines[1]).toMatchObject({ hooks: ['on_request', 'on_connect'] });
    const req = (path: string, remoteAddr: string) =>
      encodeRequestInfo({ routeId: 'gw:0', method: 'GET', path, domain: 'a.example', remoteAddr });
    expect(
      decodeAuthorizeResult(await call(socket, HookType.Request, req('/ok', '192.0.2.1:1'))),
    ).toMatchObject({
      allow: true,
    });
    expect(
      decodeAuthorizeResult(await call(socket, HookType.Request, req('/admin/x', '192.0.2.1:1'))),
    ).toMatchObject({
      allow: false,
      status: 403,
      body: 'Forbidden path',
    });
    expect(
      decodeAuthorizeResult(await call(socket, HookType.Request, req('/ok', '10.1.2.3:4'))),
    ).toMatchObject({
      allow: false,
      status: 403,
      body: 'Forbidden IP',
    });
    const conn = (a: string) =>
      encodeConnInfo({ routeId: 'gw:0', domain: 'a.example', remoteAddr: a });
    expect(decodeConnResult(await call(socket, HookType.Connect, conn('10.9.9.9:1'))).allow).toBe(
      false,
    );
    expect(decodeConnResult(await call(socket, HookType.Connect, conn('192.0.2.7:1'))).allow).toBe(
      true,
    );
    // --log-events went to stderr; stdout kept to the protocol (ack, ready).
    await until(() => /Forbidden|block 403/.test(p.stderr()), 'event log on stderr', p);
    expect(p.raw).toHaveLength(2);
    p.proc.stdin?.end();
    expect(await p.exited).toBe(0);
    await expect(fsp.lstat(dirname(socket))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('echo: header ops become h; on_response gets X-Echo-Response-Status', async () => {
    const p = startPlugin(['echo']);
    const socket = await configure(p);
    expect(p.lines[1]).toMatchObject({
      hooks: ['on_request', 'on_response', 'on_connect', 'on_disconnect'],
    });
    const a = decodeAuthorizeResult(
      await call(
        socket,
        HookType.Request,
        encodeRequestInfo({ method: 'GET', path: '/p', query: 'q=1' }),
      ),
    );
    expect(a.allow).toBe(true);
    expect(a.headers).toMatchObject({ 'X-Echo-Method': 'GET', 'X-Echo-Path': '/p?q=1' });
    const m = decodeResponseModResult(
      await call(
        socket,
        HookType.Response,
        encodeResponsePair({ req: { path: '/p' }, resp: { status: 204 } }),
      ),
    );
    expect(m.headers['X-Echo-Response-Status']).toBe('204');
    p.proc.kill('SIGTERM');
    expect(await p.exited).toBe(0);
    await expect(fsp.lstat(dirname(socket))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('refuses --listen / TLS options next to --prox (usage error, exit 2)', async () => {
    const r = await run(['serve', 'echo', '--prox', '--listen', '/tmp/x.sock']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--listen does not apply to --prox/);
    expect(r.stdout).toBe('');
  });
});
