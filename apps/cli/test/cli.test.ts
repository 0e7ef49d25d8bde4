import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { type AddressInfo, createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import type { RequestHeadersEvent } from '@picket/protocol';
import { V2Transport } from '@picket/transport';
import { afterEach, describe, expect, it } from 'vitest';
import {
  certFiles,
  hasScript,
  jsonLines,
  killAll,
  MAIN,
  run,
  runInTerminal,
  start,
  tempDir,
  waitForLine,
} from './helpers.js';

const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
  version: string;
};
const dirs: { cleanup(): void }[] = [];
afterEach(async () => {
  await killAll();
  for (const d of dirs.splice(0)) d.cleanup();
});

function tmp() {
  const d = tempDir();
  dirs.push(d);
  return d;
}

describe('picket --help', () => {
  it('prints the commands, the endpoint grammar and the exit codes', async () => {
    const r = await run(['--help']);
    expect(r.code).toBe(0);
    for (const word of [
      'serve',
      'probe',
      'send',
      'bench',
      'reverse+tcp://host:port',
      'v1+unix:/path',
      'Exit codes',
    ]) {
      expect(r.stdout).toContain(word);
    }
  });

  it.each([
    ['serve', ['--listen', '--reverse', '--block-path', '--block-ip', '--token', '--log-events']],
    ['probe', ['--count', '--json', '--tls-ca', '(default msgpack,json)']],
    ['send', ['--method', '--uri', '--header', '--body', '--client-ip']],
    ['bench', ['--concurrency', '--duration', '--requests', '--json']],
  ])('picket %s --help documents its options', async (cmd, flags) => {
    const r = await run([cmd, '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`Usage: picket ${cmd}`);
    for (const f of flags) expect(r.stdout).toContain(f);
    expect((await run(['help', cmd])).stdout).toBe(r.stdout);
  });

  it('an unknown command or option is a usage error (exit 2)', async () => {
    const a = await run(['frobnicate']);
    expect(a.code).toBe(2);
    expect(a.stderr).toContain('unknown command "frobnicate"');
    const b = await run(['probe', '/x.sock', '--frob']);
    expect(b.code).toBe(2);
    // one line, quotes balanced (Node's own text ends in a stray quote)
    expect(b.stderr).toBe(
      "picket probe: unknown option '--frob' (a value starting with '-' goes after '--')\n" +
        "Run 'picket probe --help' for usage.\n",
    );
    expect((await run([])).code).toBe(2);
  });
});

describe('the installed command (bin/picket.js)', () => {
  const shim = fileURLToPath(new URL('../bin/picket.js', import.meta.url));

  it('runs the compiled CLI', async () => {
    const r = spawnSync(process.execPath, [shim, '--version'], { encoding: 'utf8' });
    expect(r.stdout).toBe(`picket ${pkg.version}\n`);
    expect(r.status).toBe(0);
  });

  it('says to build first when dist/ is missing', () => {
    const d = tmp();
    mkdirSync(d.path('bin'));
    copyFileSync(shim, d.path('bin/picket.js'));
    const r = spawnSync(process.execPath, [d.path('bin/picket.js'), '--help'], {
      encoding: 'utf8',
    });
    expect(r.status).toBe(1);
    expect(r.stderr).toBe(
      'picket: the CLI is not built (dist/main.js is missing): run `pnpm build` in the picket checkout first\n',
    );
  });
});

describe('errors', () => {
  it('a bad endpoint prints the grammar and exits 2', async () => {
    const r = await run(['probe', 'ftp://agent']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('unknown scheme "ftp://"');
    expect(r.stderr).toContain('accepted endpoint forms');
    expect(r.stderr).toContain('reverse+unix:/path');
    expect(r.stdout).toBe('');
  });

  it('probing a dead socket fails with a clear message naming it, exit 1', async () => {
    const d = tmp();
    const sock = d.path('dead.sock');
    const r = await run(['probe', sock]);
    expect(r.code).toBe(1);
    // one line naming the socket: no errno twice, no internal connection id
    expect(r.stderr).toBe(
      `picket probe: cannot connect to unix:${sock}: no such socket (is an agent listening at that endpoint?)\n`,
    );
    expect(r.stdout).toBe('');
    // a socket in a folder that does not exist says so
    const gone = d.path('no-such-dir/agent.sock');
    const g = await run(['send', gone]);
    expect(g.code).toBe(1);
    expect(g.stderr).toBe(
      `picket send: cannot connect to unix:${gone}: directory ${d.path('no-such-dir')} does not exist\n`,
    );
  });

  it('serve names a missing socket directory, not EACCES', async () => {
    const d = tmp();
    const sock = d.path('missing/agent.sock');
    const r = await run(['serve', 'echo', '--listen', sock]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      `picket serve: cannot listen on unix:${sock}: directory ${d.path('missing')} does not exist\n`,
    );
  });

  it('serve on a gRPC port in use prints one line and names the cure', async () => {
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const port = (taken.address() as AddressInfo).port;
    try {
      const r = await run(['serve', 'echo', '--listen', `grpc://127.0.0.1:${port}`]);
      expect(r.code).toBe(1);
      // no grpc-js log line, no "serve:" twice, no client-side hint
      expect(r.stderr).toBe(
        `picket serve: cannot listen on grpc://127.0.0.1:${port}: address in use — pick another port\n`,
      );
      expect(r.stdout).toBe('');
    } finally {
      await new Promise((resolve) => taken.close(resolve));
    }
  });

  it('sending to a refused TCP port fails naming the endpoint, exit 1', async () => {
    const r = await run(['send', '127.0.0.1:1', '--connect-timeout', '3000']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('127.0.0.1:1');
  });

  it('serve refuses a reverse endpoint as --listen, and bad denylist addresses', async () => {
    const a = await run(['serve', 'echo', '--listen', 'reverse+unix:/tmp/x.sock']);
    expect(a.code).toBe(2);
    expect(a.stderr).toContain('--reverse');
    const b = await run(['serve', 'denylist', '--listen', '/tmp/x.sock', '--block-ip', 'nope']);
    expect(b.code).toBe(2);
    expect(b.stderr).toContain('nope');
    const c = await run(['serve', 'echo']);
    expect(c.code).toBe(2);
    expect(c.stderr).toContain('--listen');
  });
});

describe('serve + probe / send / bench over UDS', () => {
  it('serves echo on a socket; probe, send (with a body) and bench talk to it', async () => {
    const d = tmp();
    const sock = d.path('echo.sock');
    const server = start(['serve', 'echo', '--listen', sock, '--agent-id', 'cli-echo']);
    await waitForLine(server, /listening on unix:\S+ \(uds\)/);

    const probe = await run(['probe', sock, '--json', '--encoding', 'msgpack,json']);
    expect(probe.code).toBe(0);
    const p = JSON.parse(probe.stdout);
    expect(p).toMatchObject({ ok: true, transport: 'uds', encoding: 'msgpack' });
    expect(p.capabilities.agent_id).toBe('cli-echo');
    expect(p.ping.count).toBe(3);

    // without --encoding the CLI offers msgpack first, as its help says
    const dflt = await run(['probe', sock, '--json', '--count', '0']);
    expect(JSON.parse(dflt.stdout).encoding).toBe('msgpack');

    const human = await run(['probe', `unix:${sock}`]);
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(/agent\s+cli-echo "Echo Agent"/);
    expect(human.stdout).toMatch(/ping\s+[\d.]+ ms avg of 3/);

    writeFileSync(d.path('body.bin'), Buffer.alloc(10_000, 7));
    const send = await run([
      'send',
      sock,
      '--method',
      'post',
      '--uri',
      '/api?x=1',
      '-H',
      'content-type: text/plain',
      '--body',
      `@${d.path('body.bin')}`,
      '--chunk-size',
      '4096',
      '--json',
    ]);
    expect(send.code).toBe(0);
    const s = JSON.parse(send.stdout);
    expect(s.decision).toBe('allow');
    expect(s.steps.map((x: { event: string }) => x.event)).toEqual([
      'request_headers',
      'request_body_chunk',
      'request_body_chunk',
      'request_body_chunk',
      'response_headers',
      'request_complete',
    ]);
    const ops = s.steps[0].response.request_headers.map(
      (o: { set: { name: string; value: string } }) => o.set,
    );
    expect(ops).toContainEqual({ name: 'X-Echo-Method', value: 'POST' });
    expect(ops).toContainEqual({ name: 'X-Echo-Path', value: '/api?x=1' });

    // header names that are also Object.prototype members are plain headers
    const text = await run([
      'send',
      sock,
      '--uri',
      '/hello',
      '--body',
      'hi',
      '-H',
      'constructor: a',
      '-H',
      'Constructor: b',
      '-H',
      '__proto__: c',
    ]);
    expect(text.stderr).toBe('');
    expect(text.code).toBe(0);
    expect(text.stdout).toContain('GET /hello');
    expect(text.stdout).toContain('set X-Echo-Path: /hello');
    expect(text.stdout).toMatch(/decision: allow/);

    const bench = await run(['bench', sock, '--requests', '300', '--concurrency', '8', '--json']);
    expect(bench.code).toBe(0);
    const b = JSON.parse(bench.stdout);
    expect(b).toMatchObject({ requests: 300, errors: 0, transport: 'uds', concurrency: 8 });
    expect(b.requestsPerSecond).toBeGreaterThan(0);
    expect(b.latencyMs.p50).toBeLessThanOrEqual(b.latencyMs.p95);
    expect(b.latencyMs.p95).toBeLessThanOrEqual(b.latencyMs.p99);
    expect(bench.stderr).toBe(''); // no progress line without a terminal

    if (hasScript()) {
      // under a pseudo-terminal the progress line appears on stderr, then is cleared
      const tty = await runInTerminal(['bench', sock, '--requests', '200']);
      expect(tty).toMatch(/\r {2}\d+ requests {2}\d+ req\/s {2}0 errors/);
      expect(tty).toContain('\r\x1b[K');
      expect(tty).toMatch(/rate\s+\d+ req\/s/);
    }

    const human2 = await run(['bench', sock, '--duration', '0.3', '--connections', '2']);
    expect(human2.code).toBe(0);
    expect(human2.stdout).toMatch(/rate\s+\d+ req\/s/);
    expect(human2.stdout).toMatch(/latency\s+p50 [\d.]+ ms\s+p95 [\d.]+ ms\s+p99/);

    server.proc.kill('SIGTERM');
    expect(await server.exited).toBe(0);
    expect(server.stdout()).toContain('stopping');
  });

  it('send into a closed pipe (`| head -1`) exits quietly instead of crashing on EPIPE', async () => {
    const d = tmp();
    const sock = d.path('echo.sock');
    const server = start(['serve', 'echo', '--listen', sock]);
    await waitForLine(server, /listening on/);
    const proc = spawn(process.execPath, [MAIN, 'send', sock, '--body', 'x'.repeat(64)], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    // the reader goes away before the command writes its first line (it connects first)
    proc.stdout.destroy();
    let stderr = '';
    proc.stderr.setEncoding('utf8').on('data', (x: string) => (stderr += x));
    const code = await new Promise((resolve) => proc.once('close', resolve));
    expect(stderr).toBe('');
    expect(code).toBe(0);
  });
});

describe('serve + probe / send / bench over gRPC and v1', () => {
  it('serves denylist on gRPC (port 0) and v1; send reports the block', async () => {
    const d = tmp();
    const server = start([
      'serve',
      'denylist',
      '--listen',
      '127.0.0.1:0',
      '--listen',
      `v1+unix:${d.path('v1.sock')}`,
      '--block-path',
      '/admin',
      '--block-ip',
      '10.0.0.0/8',
      '--json',
    ]);
    await waitForLine(server, /"transport":"v1"/);
    const events = jsonLines(server.stdout());
    const grpc = events.find((e) => e.transport === 'grpc')?.endpoint as string;
    expect(grpc).toMatch(/^grpc:\/\/127\.0\.0\.1:\d+$/);

    const probe = await run(['probe', grpc, '--json']);
    expect(probe.code).toBe(0);
    expect(JSON.parse(probe.stdout)).toMatchObject({ transport: 'grpc', agentId: 'agent' });

    const blocked = await run(['send', grpc, '--uri', '/admin/users', '--json']);
    expect(blocked.code).toBe(0);
    const b = JSON.parse(blocked.stdout);
    expect(b.decision).toBe('block');
    expect(b.response.decision.block.status).toBe(403);
    expect(b.response.audit.reason_codes).toEqual(['PATH_BLOCKED']);
    // a blocked request skips the body and the response
    expect(b.steps.map((x: { event: string }) => x.event)).toEqual([
      'request_headers',
      'request_complete',
    ]);

    const ip = await run(['send', `v1+unix:${d.path('v1.sock')}`, '--client-ip', '10.1.2.3']);
    expect(ip.code).toBe(0);
    expect(ip.stdout).toContain('decision: block 403 "Forbidden IP"');

    const ok = await run([
      'send',
      grpc.replace('grpc://', 'http://'),
      '--uri',
      '/public',
      '--client-ip',
      '192.0.2.1',
    ]);
    expect(ok.stdout).toContain('decision: allow');

    const bench = await run(['bench', grpc, '--requests', '200', '--json']);
    expect(bench.code).toBe(0);
    expect(JSON.parse(bench.stdout)).toMatchObject({ requests: 200, errors: 0, transport: 'grpc' });
  });

  it('serves over gRPC TLS; probe verifies the certificate with --tls-ca', async () => {
    const d = tmp();
    const c = certFiles(d.dir);
    const server = start([
      'serve',
      'echo',
      '--listen',
      'grpcs://127.0.0.1:0',
      '--tls-cert',
      c.cert,
      '--tls-key',
      c.key,
      '--json',
    ]);
    const m = await waitForLine(server, /"endpoint":"(grpcs:\/\/127\.0\.0\.1:\d+)"/);
    const endpoint = m[1] as string;
    const probe = await run(['probe', endpoint, '--tls-ca', c.ca, '--json']);
    expect(probe.code).toBe(0);
    expect(JSON.parse(probe.stdout).capabilities.agent_id).toBe('echo-agent');
    // without the CA the agent's certificate is not trusted
    const untrusted = await run(['probe', endpoint, '--connect-timeout', '3000']);
    expect(untrusted.code).toBe(1);
    expect(untrusted.stderr).toContain(endpoint);
  });
});

describe('serve --log-events', () => {
  it('prints one line per event with its decision, and one per cancel', async () => {
    const d = tmp();
    const sock = d.path('deny.sock');
    const server = start([
      'serve',
      'denylist',
      '--listen',
      sock,
      '--agent-id',
      'deny',
      '--block-path',
      '/admin',
      '--log-events',
    ]);
    await waitForLine(server, /listening on/);
    const blocked = await run(['send', sock, '--uri', '/admin/users', '--client-ip', '192.0.2.9']);
    expect(blocked.stdout).toContain('decision: block 403');
    // the denylist has no body hook: the event is still logged, answered with allow
    expect((await run(['send', sock, '--uri', '/ok', '--body', 'hello'])).code).toBe(0);
    await waitForLine(server, /deny request_complete \S+ status 200 => allow/);
    const lines = server
      .stdout()
      .split('\n')
      .filter((l) => / deny (request|response)_/.test(l));
    expect(lines).toHaveLength(6); // headers + complete (blocked); headers, body, response, complete
    expect(lines[0]).toMatch(
      /^picket serve: deny request_headers [0-9a-f-]{36} GET \/admin\/users from 192\.0\.2\.9 => block 403$/,
    );
    expect(lines).toContainEqual(
      expect.stringMatching(/deny request_body_chunk \S+ chunk 0 \(5 bytes, last\) => allow$/),
    );
    expect(lines).toContainEqual(expect.stringMatching(/deny response_headers \S+ status 200/));

    // --json, and a cancel the proxy sends
    const jsonSock = d.path('echo.sock');
    const echo = start(['serve', 'echo', '--listen', jsonSock, '--log-events', '--json']);
    await waitForLine(echo, /"event":"listening"/);
    const t = await V2Transport.connect('echo-agent', jsonSock);
    try {
      const cid = 'log-events-cid-1';
      const event: RequestHeadersEvent = {
        metadata: {
          correlation_id: cid,
          request_id: 'r1',
          client_ip: '127.0.0.1',
          client_port: 40000,
          protocol: 'HTTP/1.1',
          timestamp: new Date().toISOString(),
        },
        method: 'PUT',
        uri: '/things/1',
        headers: {},
      };
      await t.sendRequestHeaders(event);
      await t.cancel(cid, 'client_disconnect');
      await waitForLine(echo, /"event":"cancel"/);
    } finally {
      await t.close();
    }
    const entries = jsonLines(echo.stdout());
    expect(entries).toContainEqual({
      event: 'agent_event',
      agentId: 'echo-agent',
      type: 'request_headers',
      correlationId: 'log-events-cid-1',
      transport: 'uds',
      method: 'PUT',
      uri: '/things/1',
      clientIp: '127.0.0.1',
      decision: 'allow',
    });
    expect(entries).toContainEqual({
      event: 'cancel',
      agentId: 'echo-agent',
      correlationId: 'log-events-cid-1',
      reason: 'client_disconnect',
    });
  });
});

describe('reverse connections between two picket processes', () => {
  it('probe listens on reverse+unix:, serve --reverse dials it and registers', async () => {
    const d = tmp();
    const endpoint = `reverse+unix:${d.path('agents.sock')}`;
    const probe = start([
      'probe',
      endpoint,
      '--agent-id',
      'rev-echo',
      '--connect-timeout',
      '20000',
      '--json',
    ]);
    const server = start(['serve', 'echo', '--reverse', endpoint, '--agent-id', 'rev-echo']);
    expect(await probe.exited).toBe(0);
    const p = JSON.parse(probe.stdout());
    expect(p).toMatchObject({ ok: true, transport: 'reverse', agentId: 'rev-echo' });
    await waitForLine(server, /rev-echo registered with reverse\+unix:/);
  });

  it('a reverse endpoint without --agent-id is a usage error', async () => {
    const r = await run(['probe', 'reverse+tcp://127.0.0.1:0']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--agent-id');
  });
});
