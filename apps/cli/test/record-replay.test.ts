/**
 * `picket record` / `picket replay` end to end: the built CLI (bin/picket.js) as tap, recorder and
 * replayer, `picket serve denylist` as the agent, the @picket/transport facade as the proxy.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import * as net from 'node:net';
import { fileURLToPath } from 'node:url';
import type { AgentResponse, Encoding } from '@picket/protocol';
import { V2Transport } from '@picket/transport';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from './helpers.js';

const BIN = fileURLToPath(new URL('../bin/picket.js', import.meta.url));

interface Proc {
  proc: ChildProcess;
  out(): string;
  err(): string;
  exited: Promise<number | null>;
}

const procs: Proc[] = [];

function picket(args: string[]): Proc {
  const proc = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  proc.stdout?.setEncoding('utf8').on('data', (d: string) => (out += d));
  proc.stderr?.setEncoding('utf8').on('data', (d: string) => (err += d));
  const exited = new Promise<number | null>((r) => proc.once('close', (code) => r(code)));
  const p = { proc, out: () => out, err: () => err, exited };
  procs.push(p);
  return p;
}

async function run(args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  const p = picket(args);
  const code = await p.exited;
  return { code, out: p.out(), err: p.err() };
}

async function until(what: string, check: () => boolean, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function ready(p: Proc, re: RegExp): Promise<RegExpMatchArray> {
  await until(`${re} (stdout: ${p.out()} stderr: ${p.err()})`, () => re.test(p.out()));
  return p.out().match(re) as RegExpMatchArray;
}

/** Stops a recorder as an operator would and waits for it to write the footer. */
async function stop(p: Proc): Promise<number | null> {
  p.proc.kill('SIGTERM');
  return p.exited;
}

interface Shown {
  record: string;
  conn?: number;
  id?: number;
  dir?: string;
  type?: number;
  encoding?: string;
  length?: number;
  payload?: string;
  error?: string;
  decoded?: unknown;
  reason?: string;
  redacted?: boolean;
}

async function show(file: string): Promise<Shown[]> {
  const r = await run(['replay', file, '--show', '--json']);
  expect(r.code, r.err).toBe(0);
  // a recording cut short would be reported here
  expect(r.err).toBe('');
  return r.out
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Shown);
}

const dir = tempDir();
const agentSock = dir.path('agent.sock');
const otherSock = dir.path('other.sock');
const tapSock = dir.path('tap.sock');
let grpcEndpoint = '';

/** The requests the proxy sends: path, client ip, body. */
const REQUESTS: Array<{ uri: string; ip: string; body?: string }> = [
  { uri: '/admin/users', ip: '192.0.2.1' },
  { uri: '/public/index.html', ip: '192.0.2.2', body: 'hello' },
  { uri: '/api/items?id=3', ip: '10.9.9.9' },
  { uri: '/api/items', ip: '192.0.2.3', body: 'x'.repeat(70_000) },
];

/** One request's lifecycle as a proxy drives it; returns the decisions (correlation id dropped). */
async function lifecycle(t: V2Transport, n: number): Promise<unknown[]> {
  const req = REQUESTS[n % REQUESTS.length] as (typeof REQUESTS)[number];
  const cid = `req-${n}-${t.encoding}`;
  const answers: AgentResponse[] = [];
  answers.push(
    await t.sendRequestHeaders({
      metadata: {
        correlation_id: cid,
        request_id: cid,
        client_ip: req.ip,
        client_port: 40000 + n,
        server_name: 'example.test',
        protocol: 'HTTP/1.1',
        timestamp: '2026-01-01T00:00:00+00:00',
      },
      method: 'POST',
      uri: req.uri,
      headers: { host: ['example.test'], authorization: ['Bearer top-secret-token'] },
    }),
  );
  if (req.body !== undefined && answers[0]?.decision === 'allow') {
    const data = new TextEncoder().encode(req.body);
    answers.push(
      await t.sendRequestBodyChunk({
        correlation_id: cid,
        data,
        is_last: true,
        total_size: data.length,
        chunk_index: 0,
        bytes_received: data.length,
      }),
    );
  }
  answers.push(
    await t.sendResponseHeaders({ correlation_id: cid, status: 200, headers: { 'x-up': ['1'] } }),
  );
  return answers.map((a) => {
    const { correlation_id: _cid, ...custom } = a.audit.custom;
    return { ...a, audit: { ...a.audit, custom } };
  });
}

async function traffic(endpoint: string, encodings: Encoding[]): Promise<unknown[]> {
  const t = await V2Transport.connect('denylist', endpoint, { encodings, timeoutMs: 10_000 });
  try {
    const out: unknown[] = [];
    for (let n = 0; n < REQUESTS.length; n++) out.push(await lifecycle(t, n));
    return out;
  } finally {
    await t.close();
  }
}

beforeAll(async () => {
  const agent = picket([
    'serve',
    'denylist',
    '--listen',
    `unix:${agentSock}`,
    '--listen',
    'grpc://127.0.0.1:0',
    '--block-path',
    '/admin',
    '--block-ip',
    '10.0.0.0/8',
  ]);
  grpcEndpoint = (await ready(agent, /listening on (grpc:\/\/127\.0\.0\.1:\d+)/))[1] as string;
  await ready(agent, /listening on unix:/);
  const other = picket([
    'serve',
    'denylist',
    '--listen',
    `unix:${otherSock}`,
    '--block-path',
    '/public',
  ]);
  await ready(other, /listening on unix:/);
});

afterAll(async () => {
  for (const p of procs) if (p.proc.exitCode === null) p.proc.kill('SIGKILL');
  await Promise.all(procs.map((p) => p.exited));
  dir.cleanup();
});

describe('picket record + replay', () => {
  const rec = dir.path('traffic.rec');
  const encodings: Encoding[][] = [['msgpack', 'json'], ['json'], ['cbor']];
  let direct: unknown[][] = [];

  it('the proxy sees the same decisions through the tap as without it, in every encoding', async () => {
    const recorder = picket([
      'record',
      '--listen',
      `unix:${tapSock}`,
      '--to',
      `unix:${agentSock}`,
      '--out',
      rec,
      '--no-redact',
    ]);
    await ready(recorder, /^recording /m);
    direct = [];
    const tapped: unknown[][] = [];
    for (const e of encodings) {
      direct.push(await traffic(agentSock, e));
      tapped.push(await traffic(tapSock, e));
    }
    expect(tapped).toEqual(direct);
    // the denylist really decided something: blocked by path and by address, allowed otherwise
    const kinds = JSON.stringify(direct[0]);
    expect(kinds).toContain('PATH_BLOCKED');
    expect(kinds).toContain('IP_BLOCKED');
    expect(await stop(recorder)).toBe(0);
  });

  it('the recording reads back with every frame, decoded in its negotiated encoding', async () => {
    const records = await show(rec);
    expect(records[0]).toMatchObject({ record: 'header', redacted: false });
    expect(records.at(-1)).toMatchObject({ record: 'footer' });
    const starts = records.filter((r) => r.record === 'conn_start');
    expect(starts).toHaveLength(encodings.length);
    for (const [i, s] of starts.entries()) {
      const frames = records.filter((r) => r.record === 'frame' && r.conn === s.id);
      // handshake both ways, then every event and its answer
      const events = frames.filter((f) => f.dir === 'proxy->agent' && f.type !== 1);
      const answers = frames.filter((f) => f.dir === 'agent->proxy' && f.type === 0x20);
      expect(frames[0]).toMatchObject({ type: 0x01, dir: 'proxy->agent', encoding: 'json' });
      expect(frames[1]).toMatchObject({ type: 0x02, dir: 'agent->proxy', encoding: 'json' });
      const sent = (direct[i] as unknown[][]).flat().length;
      expect(events).toHaveLength(sent);
      expect(answers).toHaveLength(sent);
      expect(frames).toHaveLength(2 + 2 * sent);
      const negotiated = (encodings[i] as Encoding[])[0];
      for (const f of [...events, ...answers]) {
        expect(f.encoding).toBe(negotiated);
        expect(f.error).toBeUndefined();
        expect(f.decoded).not.toBeNull();
      }
      const first = events[0]?.decoded as { uri: string; headers: Record<string, string[]> };
      expect(first.uri).toBe('/admin/users');
      // --no-redact: header values as sent
      expect(first.headers.authorization).toEqual(['Bearer top-secret-token']);
      const end = records.find((r) => r.record === 'conn_end' && r.id === s.id);
      expect(end?.reason).toBe('proxy closed');
    }
  });

  it('replay against the same agent finds every answer identical (exit 0)', async () => {
    const r = await run(['replay', rec, '--to', `unix:${agentSock}`]);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/: (\d+) identical, 0 different/);
    const n = Number(/: (\d+) identical/.exec(r.out)?.[1]);
    expect(n).toBe(direct.flat(2).length);
  });

  it('replay over gRPC works too', async () => {
    const r = await run(['replay', rec, '--to', grpcEndpoint]);
    expect(r.code, r.out + r.err).toBe(0);
    expect(r.out).toMatch(/identical, 0 different/);
  });

  it('replay against a differently configured agent exits 1 and prints the differing decisions', async () => {
    const r = await run(['replay', rec, '--to', `unix:${otherSock}`]);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(
      /connection 1 #1 request_headers POST \/admin\/users \(correlation id req-0-msgpack\) differs:\n {2}decision: recorded block 403 "Forbidden path", replayed allow\n/,
    );
    expect(r.out).toMatch(
      /request_headers POST \/public\/index.html .*differs:\n {2}decision: recorded allow, replayed block 403 "Forbidden path"/,
    );
    expect(r.out).toMatch(/audit\.reason_codes: recorded \["PATH_BLOCKED"\], replayed \[\]/);
    // the json form says the same
    const j = await run(['replay', rec, '--to', `unix:${otherSock}`, '--json']);
    expect(j.code).toBe(1);
    expect(JSON.parse(j.out)).toMatchObject({ identical: false });
  });

  it('a redacted recording (the default) hides header values and bodies and is refused by replay', async () => {
    const redacted = dir.path('redacted.rec');
    const tap2 = dir.path('tap2.sock');
    const recorder = picket([
      'record',
      '--listen',
      `unix:${tap2}`,
      '--to',
      `unix:${agentSock}`,
      '--out',
      redacted,
    ]);
    await ready(recorder, /^recording .*\(redacted\)/m);
    await traffic(tap2, ['json']);
    // the tap's socket is born 0660 (owner and group), like picket serve's
    expect(statSync(tap2).mode & 0o777).toBe(0o660);
    // a hostile uri: shown escaped, never as a raw escape sequence
    const t = await V2Transport.connect('x', tap2, { encodings: ['json'] });
    await t.sendRequestHeaders({
      metadata: {
        correlation_id: 'evil',
        request_id: 'evil',
        client_ip: '192.0.2.66',
        client_port: 1,
        protocol: 'HTTP/1.1',
        timestamp: '2026-01-01T00:00:00+00:00',
      },
      method: 'GET',
      uri: '/\x1b[2J\nforged line',
      headers: {},
    });
    await t.close();
    expect(await stop(recorder)).toBe(0);
    expect(statSync(redacted).mode & 0o777).toBe(0o600);
    const text = await run(['replay', redacted, '--show']);
    expect(text.code).toBe(0);
    expect(text.out).not.toContain('\x1b');
    expect(text.out).not.toMatch(/^forged line/m);
    expect(text.out).toContain('\\u001b[2J\\nforged line');
    const bytes = readFileSync(redacted);
    expect(bytes.includes('top-secret-token')).toBe(false);
    expect(bytes.includes('hello')).toBe(false);
    const records = await show(redacted);
    expect(records[0]).toMatchObject({ record: 'header', redacted: true });
    const first = records.find((r) => r.record === 'frame' && r.type === 0x10);
    expect(first).toBeDefined();
    expect(
      (first?.decoded as { headers: Record<string, string[]> })?.headers.authorization,
    ).toEqual(['<redacted>']);
    const r = await run(['replay', redacted, '--to', `unix:${agentSock}`]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(
      /is a redacted recording .*record again with 'picket record --no-redact'/,
    );
  });

  it('another agent id is a difference unless --ignore-agent-id', async () => {
    const renamedSock = dir.path('renamed.sock');
    const renamed = picket([
      'serve',
      'denylist',
      '--agent-id',
      'renamed-agent',
      '--listen',
      `unix:${renamedSock}`,
      '--block-path',
      '/admin',
      '--block-ip',
      '10.0.0.0/8',
    ]);
    await ready(renamed, /listening on unix:/);
    const strict = await run(['replay', rec, '--to', `unix:${renamedSock}`]);
    expect(strict.code).toBe(1);
    expect(strict.out).toContain(
      'connection 1: agent id differs: recorded denylist-agent, replayed renamed-agent (--ignore-agent-id to accept)',
    );
    const lenient = await run(['replay', rec, '--to', `unix:${renamedSock}`, '--ignore-agent-id']);
    expect(lenient.code, lenient.out).toBe(0);
  });

  it('many concurrent connections through the tap: same decisions, each recorded apart', async () => {
    const tap = dir.path('tap-many.sock');
    const out = dir.path('many.rec');
    const recorder = picket([
      'record',
      '--listen',
      tap,
      '--to',
      `unix:${agentSock}`,
      '--out',
      out,
      '--no-redact',
    ]);
    await ready(recorder, /^recording /m);
    const n = 12;
    const all = ['msgpack', 'json', 'cbor'] as const;
    const tapped = await Promise.all(
      Array.from({ length: n }, (_, i) => traffic(tap, [all[i % 3] as Encoding])),
    );
    const expected = await Promise.all(all.map((e) => traffic(agentSock, [e])));
    for (const [i, t] of tapped.entries()) expect(t).toEqual(expected[i % 3]);
    expect(await stop(recorder)).toBe(0);
    const records = await show(out);
    expect(records.filter((r) => r.record === 'conn_start')).toHaveLength(n);
    expect(records.filter((r) => r.record === 'frame' && r.error !== undefined)).toHaveLength(0);
    const r = await run(['replay', out, '--to', `unix:${agentSock}`]);
    expect(r.code, r.out + r.err).toBe(0);
  });

  it('record and replay document their options', async () => {
    const rec = await run(['record', '--help']);
    expect(rec.code).toBe(0);
    for (const f of ['--listen', '--to', '--out', '--no-redact', '--verbose'])
      expect(rec.out).toContain(f);
    const rep = await run(['replay', '--help']);
    expect(rep.code).toBe(0);
    for (const f of [
      '--to',
      '--ignore',
      '--ignore-agent-id',
      '--show',
      '--encoding',
      'Exit codes',
    ]) {
      expect(rep.out).toContain(f);
    }
    expect((await run(['help', 'replay'])).out).toBe(rep.out);
  });

  it('bad usage and unreadable files exit 2', async () => {
    expect((await run(['replay', rec])).code).toBe(2);
    const missing = await run(['replay', dir.path('nope.rec'), '--to', `unix:${agentSock}`]);
    expect(missing.code).toBe(2);
    expect(missing.err).toMatch(/cannot read .*nope\.rec/);
    // a file of another kind is named as such
    const foreign = dir.path('foreign.rec');
    writeFileSync(foreign, 'not a recording');
    const f = await run(['replay', foreign, '--show']);
    expect(f.code).toBe(2);
    expect(f.err).toContain('not a picket-zentinel-tap recording');
    // a recording cut short: what is before the damage, the problem on stderr, exit 1
    const cut = dir.path('cut.rec');
    writeFileSync(cut, readFileSync(rec).subarray(0, 400));
    const c = await run(['replay', cut, '--show']);
    expect(c.code).toBe(1);
    expect(c.out).toMatch(/^header picket-zentinel-tap v1 /);
    expect(c.err).toMatch(/cut\.rec ends early \(invalid CBOR: .*truncated/);
    expect((await run(['record', '--listen', `unix:${tapSock}`])).code).toBe(2);
    expect(
      (await run(['record', '--listen', tapSock, '--to', 'grpc://127.0.0.1:1', '--out', rec])).code,
    ).toBe(2);
  });
});

describe('tap robustness', () => {
  it('agent down: the proxy connection is closed and a clear line is logged', async () => {
    const tap = dir.path('tap-down.sock');
    const missing = dir.path('missing.sock');
    const recorder = picket([
      'record',
      '--listen',
      tap,
      '--to',
      `unix:${missing}`,
      '--out',
      dir.path('down.rec'),
    ]);
    await ready(recorder, /^recording /m);
    const s = net.connect(tap);
    const closed = new Promise<void>((r) => s.once('close', () => r()));
    s.on('error', () => {});
    await closed;
    await until('the log line', () => /cannot reach the agent/.test(recorder.err()));
    expect(recorder.err()).toContain(
      `picket record: connection 1: cannot reach the agent at unix:${missing} (ENOENT); closing the proxy's connection`,
    );
    // the facade sees a failed connect, not a hang
    await expect(V2Transport.connect('x', tap, { connectTimeoutMs: 10_000 })).rejects.toThrow();
    expect(await stop(recorder)).toBe(0);
    const records = await show(dir.path('down.rec'));
    expect(records.find((r) => r.record === 'conn_end')?.reason).toBe('agent unreachable: ENOENT');
  });

  it('relays garbage byte for byte, records it as undecodable, and passes closes both ways', async () => {
    // a fake agent that keeps what it receives
    const fakeSock = dir.path('fake.sock');
    const received: Buffer[] = [];
    const sides: Array<{ socket: net.Socket; closed: boolean }> = [];
    const fake = net.createServer((socket) => {
      const side = { socket, closed: false };
      sides.push(side);
      socket.on('data', (d) => received.push(d));
      socket.on('close', () => {
        side.closed = true;
      });
    });
    await new Promise<void>((r) => fake.listen(fakeSock, () => r()));
    const tap = dir.path('tap-fake.sock');
    const out = dir.path('garbage.rec');
    const recorder = picket([
      'record',
      '--listen',
      tap,
      '--to',
      `unix:${fakeSock}`,
      '--out',
      out,
      '--no-redact',
    ]);
    await ready(recorder, /^recording /m);

    // 1: garbage from the proxy reaches the agent unchanged; the proxy's close reaches it too
    const garbage = Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    const proxy = net.connect(tap);
    await new Promise<void>((r) => proxy.once('connect', () => r()));
    proxy.write(garbage);
    await until('the garbage at the agent', () => Buffer.concat(received).length >= garbage.length);
    expect(Buffer.concat(received)).toEqual(garbage);
    proxy.destroy();
    await until('the agent side to close', () => sides[0]?.closed === true);

    // 2: the agent hanging up closes the proxy's connection
    const proxy2 = net.connect(tap);
    const proxy2Closed = new Promise<void>((r) => proxy2.once('close', () => r()));
    proxy2.on('error', () => {});
    await until('the second agent connection', () => sides.length === 2);
    sides[1]?.socket.destroy();
    await proxy2Closed;

    expect(await stop(recorder)).toBe(0);
    await new Promise<void>((r) => fake.close(() => r()));
    const frames = (await show(out)).filter((r) => r.record === 'frame');
    const bad = frames.filter((f) => f.conn === 1);
    expect(bad.length).toBeGreaterThan(0);
    expect(bad[0]?.error).toMatch(/frame length \d+ exceeds the 16777216-byte limit/);
    // every garbage byte is in the recording, in order
    expect(Buffer.concat(bad.map((f) => Buffer.from(f.payload ?? '', 'base64')))).toEqual(garbage);
  });

  it('passes a half-close through: the agent still answers after the proxy stopped sending', async () => {
    const fakeSock = dir.path('half.sock');
    // an agent that answers once the proxy has finished sending
    const fake = net.createServer({ allowHalfOpen: true }, (socket) => {
      const got: Buffer[] = [];
      socket.on('data', (d) => got.push(d));
      socket.on('end', () => socket.end(Buffer.concat([Buffer.from('got:'), ...got])));
    });
    await new Promise<void>((r) => fake.listen(fakeSock, () => r()));
    const tap = dir.path('tap-half.sock');
    const recorder = picket([
      'record',
      '--listen',
      tap,
      '--to',
      `unix:${fakeSock}`,
      '--out',
      dir.path('half.rec'),
    ]);
    await ready(recorder, /^recording /m);
    const proxy = net.connect({ path: tap, allowHalfOpen: true });
    const answer: Buffer[] = [];
    proxy.on('data', (d) => answer.push(d));
    const ended = new Promise<void>((r) => proxy.once('end', () => r()));
    proxy.end('ping');
    await ended;
    expect(Buffer.concat(answer).toString()).toBe('got:ping');
    proxy.destroy();
    expect(await stop(recorder)).toBe(0);
    await new Promise<void>((r) => fake.close(() => r()));
  });

  it('an oversize frame reaches the real agent, which hangs up, and the proxy is closed', async () => {
    const tap = dir.path('tap-big.sock');
    const out = dir.path('big.rec');
    const recorder = picket([
      'record',
      '--listen',
      tap,
      '--to',
      `unix:${agentSock}`,
      '--out',
      out,
      '--no-redact',
    ]);
    await ready(recorder, /^recording /m);
    const s = net.connect(tap);
    const closed = new Promise<void>((r) => s.once('close', () => r()));
    s.on('error', () => {});
    const header = Buffer.alloc(5);
    header.writeUInt32BE(16 * 1024 * 1024 + 2, 0);
    header[4] = 0x01;
    s.write(header);
    await closed;
    expect(await stop(recorder)).toBe(0);
    const frames = (await show(out)).filter((r) => r.record === 'frame');
    expect(frames[0]?.error).toBe('frame length 16777218 exceeds the 16777216-byte limit');
    expect(frames[0]?.dir).toBe('proxy->agent');
  });

  it('keeps backpressure: a slow agent holds the proxy back instead of the tap buffering', async () => {
    const fakeSock = dir.path('slow.sock');
    let agentSide: net.Socket | undefined;
    let got = 0;
    const fake = net.createServer((socket) => {
      agentSide = socket;
      socket.pause(); // an agent that does not read yet
      socket.on('data', (d) => {
        got += d.length;
      });
    });
    await new Promise<void>((r) => fake.listen(fakeSock, () => r()));
    const tap = dir.path('tap-slow.sock');
    const recorder = picket([
      'record',
      '--listen',
      tap,
      '--to',
      `unix:${fakeSock}`,
      '--out',
      dir.path('slow.rec'),
    ]);
    await ready(recorder, /^recording /m);
    const proxy = net.connect(tap);
    await new Promise<void>((r) => proxy.once('connect', () => r()));
    await until('the agent connection', () => agentSide !== undefined);
    const total = 32 * 1024 * 1024;
    proxy.write(Buffer.alloc(total, 0xff));
    // wait until the proxy's queue stops shrinking: the tap has read all it is going to
    let last = -1;
    await until('a stable queue', () => {
      const now = proxy.writableLength;
      const stable = now === last;
      last = now;
      return stable;
    });
    // kernel socket buffers and the tap's stream buffers hold a little; the rest waits at the proxy
    expect(proxy.writableLength).toBeGreaterThan(total - 8 * 1024 * 1024);
    agentSide?.resume();
    await until('every byte at the agent', () => got === total, 60_000);
    proxy.destroy();
    expect(await stop(recorder)).toBe(0);
    await new Promise<void>((r) => fake.close(() => r()));
  });
});

describe('legacy v1 through the tap', () => {
  it('records v1+unix: traffic and replays it to a v1 agent and to a v2 agent', async () => {
    const v1Sock = dir.path('agent-v1.sock');
    const agent = picket([
      'serve',
      'denylist',
      '--listen',
      `v1+unix:${v1Sock}`,
      '--block-path',
      '/admin',
    ]);
    await ready(agent, /listening on v1\+unix:/);
    const tap = dir.path('tap-v1.sock');
    const out = dir.path('v1.rec');
    const recorder = picket([
      'record',
      '--listen',
      `v1+unix:${tap}`,
      '--to',
      `v1+unix:${v1Sock}`,
      '--out',
      out,
      '--no-redact',
    ]);
    await ready(recorder, /^recording /m);
    const viaTap = await traffic(`v1+unix:${tap}`, ['json']);
    const direct = await traffic(`v1+unix:${v1Sock}`, ['json']);
    expect(viaTap).toEqual(direct);
    expect(await stop(recorder)).toBe(0);
    const records = await show(out);
    expect(records[0]).toMatchObject({ record: 'header', protocol: 'v1' });
    const frames = records.filter((r) => r.record === 'frame');
    expect(frames.length).toBeGreaterThan(0);
    for (const f of frames) expect(f.error).toBeUndefined();
    const same = await run(['replay', out, '--to', `v1+unix:${v1Sock}`]);
    expect(same.code, same.out + same.err).toBe(0);
    const v2 = await run(['replay', out, '--to', `unix:${agentSock}`]);
    // the v2 agent also blocks 10.0.0.0/8: the one request from there differs
    expect(v2.code).toBe(1);
    expect(v2.out).toMatch(
      /POST \/api\/items\?id=3 .*differs:\n {2}decision: recorded allow, replayed block 403 "Forbidden IP"/,
    );
  });
});
