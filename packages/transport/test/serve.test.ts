/** serve(): every server kind from an endpoint string, over real sockets. */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { goldenRequestHeaders } from '@picket/compliance/testkit';
import { AgentProtocolError, ErrorCode } from '@picket/protocol';
import type { ReverseAgent } from '@picket/reverse';
import { silentLogger } from '@picket/uds';
import { afterEach, describe, expect, it } from 'vitest';
import { createPool, ServeError, serve, V2Transport } from '../src/index.js';
import { Closer, echo, roundTrip, setHeader, tempDir, testCerts } from './helpers.js';

const closer = new Closer();
afterEach(() => closer.closeAll());

const quiet = { logger: silentLogger };

/** A TCP port that is taken for the test's lifetime. */
async function busyPort(): Promise<number> {
  const s: Server = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  closer.add(s, (x) => new Promise((r) => x.close(r)));
  return (s.address() as { port: number }).port;
}

/** Connects to `endpoint` and checks the echo agent `id` answers there. */
async function answers(endpoint: string, id: string, tls?: { ca: string }): Promise<void> {
  const t = await V2Transport.connect(`probe-${id}`, endpoint, {
    connectTimeoutMs: 10_000,
    logger: silentLogger,
    ...(tls && { tls: { ca: tls.ca, servername: 'localhost' } }),
  });
  try {
    expect(setHeader(await roundTrip(t), 'x-echo-agent')).toMatch(new RegExp(`^${id}/`));
  } finally {
    await t.close();
  }
}

describe('serve()', () => {
  it('serves one handler on UDS, gRPC (port 0), gRPC over TLS, grpc+unix: and v1 at once', async () => {
    const tmp = closer.add(tempDir(), (d) => d.cleanup());
    const c = testCerts();
    const served = await serve(
      [
        `unix:${tmp.path('a.sock')}`,
        'grpc://127.0.0.1:0',
        'grpcs://127.0.0.1:0',
        `grpc+unix:${tmp.path('g.sock')}`,
        `v1+unix:${tmp.path('v1.sock')}`,
      ],
      echo('multi'),
      { ...quiet, tls: { cert: c.serverCert, key: c.serverKey } },
    );
    closer.add(served, (s) => s.close());
    const [uds, grpc, grpcs, grpcUnix, v1] = served.endpoints;
    expect(served.endpoints).toHaveLength(5);
    expect(served.servers).toHaveLength(5);
    expect(uds).toBe(`unix:${tmp.path('a.sock')}`);
    expect(grpc).toMatch(/^grpc:\/\/127\.0\.0\.1:\d+$/);
    expect(grpcs).toMatch(/^grpcs:\/\/127\.0\.0\.1:\d+$/);
    // port 0 comes back as the port really bound, different for each listener
    expect(grpc).not.toMatch(/:0$/);
    expect(grpcs).not.toMatch(/:0$/);
    expect(grpc?.split(':').pop()).not.toBe(grpcs?.split(':').pop());
    expect(grpcUnix).toBe(`grpc+unix:${tmp.path('g.sock')}`);
    expect(v1).toBe(`v1+unix:${tmp.path('v1.sock')}`);
    expect(await served.listen()).toEqual(served.endpoints);

    // each endpoint as reported is one a client can connect to; the TLS options left
    // grpc:// plain (a plaintext client gets through), only grpcs:// uses them
    for (const e of [uds, grpc, grpcUnix, v1]) await answers(e as string, 'multi');
    await answers(grpcs as string, 'multi', { ca: c.ca });

    // close releases everything: sockets gone, ports free, endpoints empty
    await served.close();
    expect(served.endpoints).toEqual([]);
    for (const f of ['a.sock', 'g.sock', 'v1.sock']) expect(existsSync(tmp.path(f))).toBe(false);
    await expect(
      V2Transport.connect('after', grpc as string, { connectTimeoutMs: 2_000 }),
    ).rejects.toThrow();
    await expect(served.listen()).rejects.toMatchObject({ code: ErrorCode.ConnectionClosed });
    // the same endpoints can be served again at once
    const again = await serve([`unix:${tmp.path('a.sock')}`, grpc as string], echo('again'), quiet);
    closer.add(again, (s) => s.close());
    expect(again.endpoints).toEqual([uds, grpc]);
  });

  it('drain() stops every server and removes their socket files', async () => {
    const tmp = closer.add(tempDir(), (d) => d.cleanup());
    const served = await serve(
      [tmp.path('d.sock'), `grpc+unix:${tmp.path('dg.sock')}`],
      echo('drained'),
      quiet,
    );
    await answers(tmp.path('d.sock'), 'drained');
    await served.drain(1_000);
    expect(served.endpoints).toEqual([]);
    expect(existsSync(tmp.path('d.sock'))).toBe(false);
    expect(existsSync(tmp.path('dg.sock'))).toBe(false);
  });

  it('dials reverse+unix: and reverse+tls:// listeners and serves the proxy there', async () => {
    const tmp = closer.add(tempDir(), (d) => d.cleanup());
    const c = testCerts();
    const pool = closer.add(createPool({ requestTimeoutMs: 5_000, failureMode: 'closed' }), (p) =>
      p.close(),
    );
    await pool.addAgent('rev-unix', `reverse+unix:${tmp.path('r.sock')}`, {
      reverse: { tokens: ['tok'] },
      logger: silentLogger,
    });
    let tlsAddress = '';
    await pool.addAgent('rev-tls', 'reverse+tls://127.0.0.1:0', {
      reverse: {
        tls: { cert: c.serverCert, key: c.serverKey },
        onListening: (a) => {
          tlsAddress = a;
        },
      },
      logger: silentLogger,
    });
    const onServer: ReverseAgent[] = [];
    const served = await serve([`reverse+unix:${tmp.path('r.sock')}`], echo('rev-unix'), {
      ...quiet,
      reverse: { authToken: 'tok' },
      onServer: (s) => onServer.push(s as ReverseAgent),
    });
    closer.add(served, (s) => s.close());
    // listen() waited for the registration
    expect(served.endpoints).toEqual([`reverse+unix:${tmp.path('r.sock')}`]);
    expect(onServer[0]?.connected).toBe(1);
    const viaTls = await serve(`reverse+tls://${tlsAddress}`, echo('x'), {
      ...quiet,
      agentId: 'rev-tls', // the option wins over the handler's id
      tls: { ca: c.ca, servername: 'localhost' },
    });
    closer.add(viaTls, (s) => s.close());
    expect(viaTls.endpoints).toEqual([`reverse+tls://${tlsAddress}`]);
    for (const name of ['rev-unix', 'rev-tls']) {
      // registered on the listener; the pool takes the connection a moment later
      while (pool.agentStats(name)?.isHealthy !== true) await new Promise((r) => setTimeout(r, 20));
      const r = await pool.sendRequestHeaders(name, goldenRequestHeaders(`c-${name}`, '/'));
      expect(setHeader(r, 'x-echo-agent')).toMatch(name === 'rev-unix' ? /^rev-unix\// : /^x\//);
    }
    await served.close();
    expect(served.endpoints).toEqual([]);
  });

  it('reverse wait:false returns while the proxy is away; waitTimeoutMs gives up', async () => {
    const tmp = closer.add(tempDir(), (d) => d.cleanup());
    const away = `reverse+unix:${tmp.path('nobody.sock')}`;
    const started = await serve(away, echo('patient'), {
      ...quiet,
      reverse: { wait: false, reconnect: { initialDelayMs: 20, maxDelayMs: 100 } },
    });
    closer.add(started, (s) => s.close());
    expect(started.endpoints).toEqual([away]);
    await expect(
      serve(away, echo('impatient'), { ...quiet, reverse: { waitTimeoutMs: 300 } }),
    ).rejects.toMatchObject({ endpoint: away, code: ErrorCode.Timeout });
  });

  it('refuses bad endpoints before binding anything, naming them', async () => {
    const tmp = closer.add(tempDir(), (d) => d.cleanup());
    const ok = `unix:${tmp.path('never.sock')}`;
    const cases: [string, RegExp][] = [
      ['ftp://x', /unknown scheme "ftp:\/\/"/],
      ['grpcs://127.0.0.1:0', /TLS needs tls\.cert and tls\.key/],
      ['dns:///localhost:5000', /listens on host:port/],
      ['reverse+tcp://127.0.0.1:0', /port 0 cannot be dialled/],
    ];
    for (const [bad, why] of cases) {
      const err = await serve([ok, bad], echo('e'), quiet).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ServeError);
      expect(err).toBeInstanceOf(AgentProtocolError);
      expect((err as ServeError).endpoint).toBe(bad);
      expect((err as ServeError).code).toBe(ErrorCode.InvalidArgument);
      expect((err as Error).message).toContain(bad);
      expect((err as Error).message).toMatch(why);
      expect(existsSync(tmp.path('never.sock'))).toBe(false);
    }
    // a reverse dialer needs an id; a handler without one gives none
    const anonymous = { capabilities: echo('z').capabilities.bind(echo('z')) };
    await expect(serve(`reverse+unix:${tmp.path('r.sock')}`, anonymous)).rejects.toThrow(
      /reverse\+unix:.*set options\.agentId/,
    );
    await expect(serve([], echo('e'))).rejects.toThrow(/no endpoint/);
  });

  it('a failing endpoint closes those already started and names the endpoint', async () => {
    const tmp = closer.add(tempDir(), (d) => d.cleanup());
    const port = await busyPort();
    const err = await serve(
      [`unix:${tmp.path('first.sock')}`, `grpc://127.0.0.1:${port}`],
      echo('busy'),
      quiet,
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ServeError);
    expect((err as ServeError).endpoint).toBe(`grpc://127.0.0.1:${port}`);
    expect((err as Error).message).toContain(
      `cannot serve agent "busy" on grpc://127.0.0.1:${port}`,
    );
    expect(existsSync(tmp.path('first.sock'))).toBe(false);
  });
});

const run = promisify(execFile);

it('without @picket/grpc: unix: still works, gRPC endpoints fail with the npm install line (serve, connect, createPool)', async () => {
  const tmp = closer.add(tempDir(), (d) => d.cleanup());
  const child = fileURLToPath(new URL('./fixtures/no-grpc.ts', import.meta.url));
  const { stdout } = await run(process.execPath, ['--import', 'tsx', child, tmp.dir], {
    cwd: fileURLToPath(new URL('..', import.meta.url)),
    timeout: 30_000,
  });
  const r = JSON.parse(stdout.trim().split('\n').pop() as string);
  expect(r.uds).toEqual({ endpoints: [`unix:${tmp.path('ok.sock')}`], echoed: 'uds-only/1.0' });
  const lines = (m: string) => m.split('\n');
  expect(r.serve.code).toBe(ErrorCode.Unsupported);
  expect(r.serve.endpoint).toBe('grpc://127.0.0.1:0');
  expect(lines(r.serve.message)).toEqual([
    'cannot serve agent "uds-only" on grpc://127.0.0.1:0: @picket/grpc is not installed (gRPC endpoints need it); install it with:',
    'npm install @picket/grpc',
  ]);
  expect(lines(r.connect.message)).toEqual([
    'agent "waf" at grpcs://waf.internal:443: @picket/grpc is not installed (gRPC endpoints need it); install it with:',
    'npm install @picket/grpc',
  ]);
  expect(lines(r.pool.message)).toEqual([
    'agent "auth" at auth.internal:50051: @picket/grpc is not installed (gRPC endpoints need it); install it with:',
    'npm install @picket/grpc',
  ]);
}, 40_000);
