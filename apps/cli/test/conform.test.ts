/**
 * `picket conform` as users run it (bin/picket.js): the reference agents pass on every
 * transport; small broken agents fail the rows that catch them; usage errors exit 2.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { type AddressInfo, createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { tempDir } from './helpers.js';

const BIN = fileURLToPath(new URL('../bin/picket.js', import.meta.url));
const BROKEN = fileURLToPath(new URL('./fixtures/broken-agent.mjs', import.meta.url));
const GRPC_ALLOW = fileURLToPath(new URL('./fixtures/grpc-allow-agent.mjs', import.meta.url));

interface Proc {
  proc: ChildProcess;
  out(): string;
  err(): string;
  exited: Promise<number | null>;
}

const procs: Proc[] = [];
const dirs: { cleanup(): void }[] = [];

function spawnNode(args: string[], env: NodeJS.ProcessEnv = process.env): Proc {
  const proc = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env });
  let out = '';
  let err = '';
  proc.stdout?.setEncoding('utf8').on('data', (d: string) => (out += d));
  proc.stderr?.setEncoding('utf8').on('data', (d: string) => (err += d));
  const exited = new Promise<number | null>((resolve) => proc.once('close', resolve));
  const p = { proc, out: () => out, err: () => err, exited };
  procs.push(p);
  return p;
}

const picket = (args: string[], env?: NodeJS.ProcessEnv) => spawnNode([BIN, ...args], env);

async function conform(args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  const p = picket(['conform', ...args]);
  const code = await p.exited;
  return { code, out: p.out(), err: p.err() };
}

async function waitFor(p: Proc, re: RegExp, ms = 20_000): Promise<RegExpMatchArray> {
  const end = Date.now() + ms;
  for (;;) {
    const m = p.out().match(re);
    if (m) return m;
    if (p.proc.exitCode !== null || Date.now() > end) {
      throw new Error(`no line matching ${re}\nstdout:\n${p.out()}\nstderr:\n${p.err()}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** The table's rows: check name → status. */
function rows(out: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const line of out.split('\n')) {
    const r = /^ {2}(PASS|FAIL|SKIP) {2}(\S+)/.exec(line);
    if (r) m.set(r[2] as string, r[1] as string);
  }
  return m;
}

function tmp() {
  const d = tempDir();
  dirs.push(d);
  return d;
}

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const { port } = s.address() as AddressInfo;
  await new Promise((resolve) => s.close(resolve));
  return port;
}

afterEach(async () => {
  for (const p of procs.splice(0)) {
    if (p.proc.exitCode === null && p.proc.signalCode === null) p.proc.kill('SIGKILL');
    await p.exited;
  }
  for (const d of dirs.splice(0)) d.cleanup();
});

const ALL = [
  'handshake',
  'event:request_headers',
  'event:request_body_chunk',
  'event:response_headers',
  'event:response_body_chunk',
  'event:request_complete',
  'event:websocket_frame',
  'event:guardrail_inspect',
  'event:configure',
  'correlation',
  'concurrent',
  'cancel',
  'flow',
  'ping',
  'oversize',
  'malformed:garbage',
  'malformed:bad-payload',
  'malformed:unknown-type',
  'malformed:truncated',
  'version',
];

function expectAllPass(r: { code: number | null; out: string; err: string }, skipped: string[]) {
  const table = rows(r.out);
  expect([...table.keys()], r.out + r.err).toEqual(ALL);
  for (const [name, status] of table) {
    expect(`${name} ${status}`, r.out).toBe(`${name} ${skipped.includes(name) ? 'SKIP' : 'PASS'}`);
  }
  expect(r.out).toMatch(/\b0 failed\b/);
  expect(r.code).toBe(0);
}

describe('picket conform against the reference agents', () => {
  it('echo on unix:, grpc:// and v1+unix: passes every check', async () => {
    const d = tmp();
    const serve = picket([
      'serve',
      'echo',
      '--listen',
      `unix:${d.path('echo.sock')}`,
      '--listen',
      'grpc://127.0.0.1:0',
      '--listen',
      `v1+unix:${d.path('v1.sock')}`,
    ]);
    const grpc = (await waitFor(serve, /listening on (grpc:\/\/127\.0\.0\.1:\d+)/))[1] as string;
    await waitFor(serve, /listening on v1\+unix:/);

    expectAllPass(await conform([`unix:${d.path('echo.sock')}`]), []);
    // gRPC: the wire checks go as raw HTTP/2 ProcessEvent calls
    expectAllPass(await conform([grpc]), []);
    // v1: no correlation ids and no handshake on the wire
    expectAllPass(await conform([`v1+unix:${d.path('v1.sock')}`]), ['correlation', 'version']);
  }, 90_000);

  it('denylist on unix: passes every check it declares', async () => {
    const d = tmp();
    const sock = d.path('deny.sock');
    const serve = picket(['serve', 'denylist', '--listen', sock, '--block-path', '/admin']);
    await waitFor(serve, /listening on/);
    // it declares request headers only: the other event rows are skipped
    expectAllPass(await conform([`unix:${sock}`]), ALL.slice(2, 9));
  }, 60_000);

  it('echo dialing reverse+unix: passes, wire checks included, with a token', async () => {
    const d = tmp();
    const endpoint = `reverse+unix:${d.path('agents.sock')}`;
    const run = picket([
      'conform',
      endpoint,
      '--agent-id',
      'rev-echo',
      '--token',
      'conform-token',
      '--connect-timeout',
      '20000',
    ]);
    await waitFor(run, /picket conform/);
    picket(['serve', 'echo', '--reverse', endpoint, '--agent-id', 'rev-echo'], {
      ...process.env,
      PICKET_REVERSE_TOKEN: 'conform-token',
    });
    const code = await run.exited;
    // a reverse agent registers instead of shaking hands: no version row
    expectAllPass({ code, out: run.out(), err: run.err() }, ['version']);
  }, 90_000);

  it('echo dialing reverse+tcp:// passes too', async () => {
    const endpoint = `reverse+tcp://127.0.0.1:${await freePort()}`;
    const run = picket([
      'conform',
      endpoint,
      '--agent-id',
      'tcp-echo',
      '--connect-timeout',
      '20000',
    ]);
    await waitFor(run, /picket conform/);
    picket(['serve', 'echo', '--reverse', endpoint, '--agent-id', 'tcp-echo']);
    const code = await run.exited;
    expectAllPass({ code, out: run.out(), err: run.err() }, ['version']);
  }, 90_000);

  it('echo as a prox plugin (prox+exec:) passes what it declares', async () => {
    const r = await conform([`prox+exec:${process.execPath} ${BIN} serve echo --prox`]);
    const table = rows(r.out);
    expect(table.get('handshake'), r.out).toBe('PASS');
    expect(table.get('event:request_headers')).toBe('PASS');
    expect(table.get('cancel')).toBe('PASS');
    expect(table.get('flow')).toBe('PASS');
    expect([...table.values()].includes('FAIL')).toBe(false);
    expect(r.code).toBe(0);
  }, 60_000);

  it('--json prints one machine-readable result', async () => {
    const d = tmp();
    const sock = d.path('echo.sock');
    const serve = picket(['serve', 'echo', '--listen', sock]);
    await waitFor(serve, /listening on/);
    const r = await conform([sock, '--json', '--only', 'handshake,event,ping']);
    expect(r.code).toBe(0);
    const result = JSON.parse(r.out) as {
      ok: boolean;
      transport: string;
      passed: number;
      failed: number;
      checks: { name: string; status: string; reason: string; ms: number }[];
    };
    expect(result.ok).toBe(true);
    expect(result.transport).toBe('uds');
    expect(result.checks.map((c) => c.name)).toEqual(ALL.slice(0, 9).concat('ping'));
    expect(result.checks.every((c) => c.status === 'pass' && c.reason !== '')).toBe(true);
    expect(result.passed).toBe(10);
    expect(result.failed).toBe(0);
  }, 60_000);
});

describe('picket conform against broken agents', () => {
  async function broken(mode: string): Promise<string> {
    const sock = tmp().path(`${mode}.sock`);
    const agent = spawnNode([BROKEN, sock, mode]);
    await waitFor(agent, /ready/);
    return `unix:${sock}`;
  }

  it('an agent answering under another correlation id fails correlation and the calls', async () => {
    const ep = await broken('wrong-cid');
    const r = await conform([
      ep,
      '--timeout',
      '2000',
      '--only',
      'handshake,event:request_headers,event:request_body_chunk,correlation,concurrent',
    ]);
    const table = rows(r.out);
    expect(table.get('handshake')).toBe('PASS');
    expect(table.get('event:request_headers')).toBe('FAIL');
    expect(table.get('correlation')).toBe('FAIL');
    expect(table.get('concurrent')).toBe('FAIL');
    // a later event's row names the earlier step that failed
    expect(r.out).toMatch(
      /event:request_body_chunk +request_headers before it: no answer within 2000 ms/,
    );
    expect(r.out).toMatch(
      /correlation +request_headers "conform-[^"]+" answered under correlation id "conform-[^"]+-x"/,
    );
    expect(r.code).toBe(1);
    // the agent's own text (its name holds a terminal escape) is printed escaped
    expect(r.out).not.toContain('\u001b');
    expect(r.out).toContain('Broken \\x1b[31mAgent');
  }, 60_000);

  it('an agent that crashes on garbage fails malformed:garbage, and what follows', async () => {
    const ep = await broken('crash-on-garbage');
    const r = await conform([ep, '--timeout', '2000']);
    const table = rows(r.out);
    for (const name of ALL.slice(0, ALL.indexOf('malformed:garbage'))) {
      expect(`${name} ${table.get(name)}`, r.out).toBe(`${name} PASS`);
    }
    expect(table.get('malformed:garbage')).toBe('FAIL');
    expect(r.out).toMatch(/malformed:garbage +.*afterwards a new connection fails/);
    expect(r.code).toBe(1);
  }, 60_000);

  it('an agent that never answers a body chunk fails event:request_body_chunk only', async () => {
    const ep = await broken('silent-body');
    const r = await conform([ep, '--timeout', '2000', '--only', 'event']);
    const table = rows(r.out);
    expect([...table.keys()]).toEqual(ALL.slice(1, 9));
    for (const [name, status] of table) {
      expect(`${name} ${status}`).toBe(
        `${name} ${name === 'event:request_body_chunk' ? 'FAIL' : 'PASS'}`,
      );
    }
    expect(r.out).toMatch(/event:request_body_chunk +no answer within 2000 ms/);
    expect(r.code).toBe(1);
  }, 60_000);

  it('an agent that answers allow to malformed input fails malformed:bad-payload', async () => {
    const ep = await broken('allow-malformed');
    const r = await conform([ep, '--timeout', '2000', '--only', 'malformed']);
    const table = rows(r.out);
    expect(table.get('malformed:bad-payload')).toBe('FAIL');
    expect(r.out).toMatch(/malformed:bad-payload +bad JSON: the agent answered allow/);
    // the rest it handles: it closes on what it cannot frame
    expect(table.get('malformed:garbage')).toBe('PASS');
    expect(table.get('malformed:unknown-type')).toBe('PASS');
    expect(table.get('malformed:truncated')).toBe('PASS');
    expect(r.code).toBe(1);
  }, 60_000);

  it('an agent without a frame size limit fails oversize', async () => {
    const ep = await broken('no-size-limit');
    const r = await conform([ep, '--timeout', '2000', '--only', 'oversize,version']);
    expect(rows(r.out).get('oversize')).toBe('FAIL');
    expect(r.out).toMatch(/oversize +a frame announcing 16777217 bytes: connection still open/);
    expect(rows(r.out).get('version')).toBe('PASS');
    expect(r.code).toBe(1);
  });

  it('an agent claiming a version it was merely offered fails version', async () => {
    const ep = await broken('echo-version');
    const r = await conform([ep, '--timeout', '2000', '--only', 'version']);
    expect(rows(r.out).get('version')).toBe('FAIL');
    expect(r.out).toMatch(
      /version +offered only version 99: accepted, claiming protocol_version 99/,
    );
    expect(r.code).toBe(1);
  });

  it('a gRPC agent that answers allow to anything fails oversize and every malformed row', async () => {
    const agent = spawnNode([GRPC_ALLOW]);
    const port = (await waitFor(agent, /ready (\d+)/))[1] as string;
    const r = await conform([
      `grpc://127.0.0.1:${port}`,
      '--timeout',
      '2000',
      '--only',
      'oversize,malformed',
    ]);
    const table = rows(r.out);
    expect([...table.keys()]).toEqual(ALL.slice(ALL.indexOf('oversize'), ALL.indexOf('version')));
    expect(
      [...table.values()].every((s) => s === 'FAIL'),
      r.out,
    ).toBe(true);
    expect(r.out).toMatch(
      /malformed:bad-payload +bytes that are no protobuf: the agent answered allow/,
    );
    expect(r.code).toBe(1);
  });

  it('an endpoint nobody listens on fails the handshake and skips the transport checks', async () => {
    const r = await conform([`unix:${tmp().path('nobody.sock')}`, '--only', 'handshake,ping']);
    expect(rows(r.out).get('handshake')).toBe('FAIL');
    expect(rows(r.out).get('ping')).toBe('SKIP');
    expect(r.out).toMatch(/no such socket|ENOENT/);
    expect(r.code).toBe(1);
  });
});

describe('picket conform usage errors exit 2', () => {
  it.each([
    [[], 'missing <endpoint>'],
    [['unix:/tmp/x.sock', '--only', 'nope'], 'unknown check "nope"'],
    [['unix:/tmp/x.sock', '--only', ','], '--only needs at least one check name'],
    [['unix:/tmp/x.sock', '--timeout', '0'], '--timeout must be an integer >= 1'],
    [['unix:/tmp/x.sock', '--bogus'], "unknown option '--bogus'"],
    [['reverse+unix:/tmp/x.sock'], 'needs --agent-id'],
    [['ftp://x'], 'invalid agent endpoint'],
  ])('picket conform %j', async (args, message) => {
    const r = await conform(args);
    expect(r.code, r.err).toBe(2);
    expect(r.err).toContain(message);
    expect(r.out).toBe('');
  });

  it('--help lists every check and the exit codes', async () => {
    const r = await conform(['--help']);
    expect(r.code).toBe(0);
    for (const name of [
      'handshake',
      'event:<type>',
      'oversize',
      'malformed:garbage',
      'version',
      'Exit codes',
    ]) {
      expect(r.out).toContain(name);
    }
  });
});
