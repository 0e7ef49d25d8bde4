/**
 * Client-side limits of the gateway, over real sockets with the gateway in this
 * process: header / whole-request / keep-alive bounds that hold to within a
 * check interval (not node:http's default 30 s one), the connection cap and its
 * metrics, good clients served while slow ones hang, and pool affinities freed
 * when each exchange ends.
 */
import { rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { UdsAgentServerV2 } from '@picket/uds';
import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { type AgentLayer, createAgentLayer } from '../src/agents.js';
import { parseConfig } from '../src/config.js';
import { type EchoUpstream, startEchoUpstream } from '../src/echo-upstream.js';
import { connectionsCheckingIntervalMs, Gateway } from '../src/gateway.js';
import { tempDir, until } from './helpers.js';
import { ControlAgent } from './test-agents.js';

const silent = { debug() {}, info() {}, warn() {}, error() {} };

/**
 * node:http's default connectionsCheckingInterval: without a shorter one a timed-out
 * client lives until the next check, up to this long past its bound. Every closure
 * below is asserted well before it.
 */
const NODE_DEFAULT_CHECK_MS = 30_000;

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => {});
});

interface Running {
  gw: Gateway;
  port: number;
  adminPort: number;
  upstream: EchoUpstream;
  layer: AgentLayer;
}

/** Starts an echo upstream and an in-process gateway (admin on its own port). */
async function startGateway(
  server: Record<string, unknown>,
  extra: Record<string, unknown> = {},
): Promise<Running> {
  const upstream = await startEchoUpstream('echo');
  cleanups.push(() => upstream.close());
  const config = parseConfig({
    listen: '127.0.0.1:0',
    admin: { listen: '127.0.0.1:0' },
    server,
    upstreams: { echo: upstream.url },
    routes: [{ name: 'all', upstream: 'echo' }],
    ...extra,
  });
  const layer = await createAgentLayer(config);
  cleanups.push(() => layer.close());
  const gw = new Gateway(config, { pool: layer.pool, logger: silent });
  const bound = await gw.listen();
  cleanups.push(() => gw.close());
  return { gw, port: bound.port, adminPort: gw.adminAddress?.port ?? 0, upstream, layer };
}

/** A raw client socket: what it received, and when it closed (ms after connect). */
interface RawClient {
  socket: Socket;
  received(): string;
  closed: Promise<number>;
  isClosed(): boolean;
}

function rawClient(port: number): Promise<RawClient> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let data = '';
    let done = false;
    let t0 = 0;
    socket.on('data', (d: Buffer) => {
      data += d.toString('latin1');
    });
    socket.on('error', () => {}); // a reset is a closure too
    const closed = new Promise<number>((r) =>
      socket.once('close', () => {
        done = true;
        r(performance.now() - t0);
      }),
    );
    socket.once('connect', () => {
      t0 = performance.now();
      cleanups.push(async () => socket.destroy());
      resolve({ socket, received: () => data, closed, isClosed: () => done });
    });
    socket.once('error', reject);
  });
}

/** Writes `text` one byte per `gapMs` until the socket closes. */
function trickle(c: RawClient, text: string, gapMs: number): void {
  let i = 0;
  const timer = setInterval(() => {
    if (c.isClosed() || i >= text.length) {
      clearInterval(timer);
      return;
    }
    c.socket.write(text.charAt(i++));
  }, gapMs);
  cleanups.push(async () => clearInterval(timer));
}

/** Races `p` against a deadline; rejects naming what did not happen. */
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms);
    p.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (e) => {
        clearTimeout(timer);
        reject(e);
      },
    );
  });
}

async function metrics(port: number): Promise<string> {
  const res = await request(`http://127.0.0.1:${port}/metrics`);
  return res.body.text();
}

function sample(text: string, name: string): number | undefined {
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : undefined;
}

const LONG_HEADER = `GET / HTTP/1.1\r\nHost: gw.test\r\nX-Slow: ${'a'.repeat(2_000)}\r\n\r\n`;

describe('server config', () => {
  const base = { upstreams: { a: 'http://127.0.0.1:1' }, routes: [{ upstream: 'a' }] };

  it('defaults: headers 30 s, whole request 300 s, keep-alive 5 s, 10 000 connections', () => {
    expect(parseConfig(base).server).toEqual({
      headersTimeoutMs: 30_000,
      requestTimeoutMs: 300_000,
      keepAliveTimeoutMs: 5_000,
      maxConnections: 10_000,
    });
  });

  it('names each bad field', () => {
    const problems = (server: unknown): string => {
      try {
        parseConfig({ ...base, server }, 'gw.yaml');
      } catch (e) {
        return (e as Error).message;
      }
      throw new Error('accepted');
    };
    expect(problems('fast')).toMatch(/server: must be an object/);
    expect(problems({ headers_timeout_ms: 0 })).toMatch(
      /server\.headers_timeout_ms: must be an integer between 1 and 86400000/,
    );
    expect(problems({ request_timeout_ms: '5s' })).toMatch(/server\.request_timeout_ms: must be/);
    expect(problems({ keep_alive_timeout_ms: 1.5 })).toMatch(
      /server\.keep_alive_timeout_ms: must be/,
    );
    expect(problems({ max_connections: 0 })).toMatch(/server\.max_connections: must be/);
    expect(problems({ idle_timeout_ms: 5 })).toMatch(/server\.idle_timeout_ms: unknown field/);
    expect(problems({ headers_timeout_ms: 60_000, request_timeout_ms: 10_000 })).toMatch(
      /server\.headers_timeout_ms: 60000 must not be more than server\.request_timeout_ms \(10000\)/,
    );
  });
});

describe('client timeouts', () => {
  it('checks often enough for the configured bounds', () => {
    const s = { keepAliveTimeoutMs: 5_000, maxConnections: 1 };
    expect(
      connectionsCheckingIntervalMs({ ...s, headersTimeoutMs: 30_000, requestTimeoutMs: 300_000 }),
    ).toBe(1_000);
    expect(
      connectionsCheckingIntervalMs({ ...s, headersTimeoutMs: 1_000, requestTimeoutMs: 3_000 }),
    ).toBe(100);
    expect(connectionsCheckingIntervalMs({ ...s, headersTimeoutMs: 1, requestTimeoutMs: 1 })).toBe(
      50,
    );
  });

  it('closes a slowloris client (a header byte every 200 ms) and a silent one at the headers bound', async () => {
    const { port } = await startGateway({ headers_timeout_ms: 1_000, request_timeout_ms: 3_000 });
    const slow = await rawClient(port);
    trickle(slow, LONG_HEADER, 200);
    const silentClient = await rawClient(port);
    // bound 1 s + generous slack for a loaded machine, far below Node's 30 s check
    const bound = 8_000;
    expect(bound).toBeLessThan(NODE_DEFAULT_CHECK_MS / 3);
    const [slowMs, silentMs] = await within(
      Promise.all([slow.closed, silentClient.closed]),
      bound,
      'header timeouts',
    );
    // timers never fire early: the closure is the headers bound, not something else
    expect(slowMs).toBeGreaterThanOrEqual(900);
    expect(silentMs).toBeGreaterThanOrEqual(900);
    expect(slow.received()).toMatch(/^HTTP\/1\.1 408 /);
    expect(silentClient.received()).toMatch(/^HTTP\/1\.1 408 /);
  });

  it('cuts a client that sent its headers but trickles the body at the whole-request bound', async () => {
    const { port, upstream } = await startGateway({
      headers_timeout_ms: 1_000,
      request_timeout_ms: 2_000,
    });
    let upstreamSawBody = false;
    upstream.server.on('request', (req) => req.on('end', () => (upstreamSawBody = true)));
    const c = await rawClient(port);
    c.socket.write(
      'POST /upload HTTP/1.1\r\nHost: gw.test\r\nContent-Type: text/plain\r\nContent-Length: 1000\r\n\r\n',
    );
    trickle(c, 'x'.repeat(1_000), 200);
    const ms = await within(c.closed, 9_000, 'request timeout');
    // past the headers bound (the headers were complete), at the request bound
    expect(ms).toBeGreaterThanOrEqual(1_900);
    expect(c.received()).toMatch(/^HTTP\/1\.1 408 /);
    expect(upstreamSawBody).toBe(false);
  });

  it('closes an idle keep-alive connection after the idle bound', async () => {
    const { port } = await startGateway({ keep_alive_timeout_ms: 300 });
    const c = await rawClient(port);
    c.socket.write('GET /first HTTP/1.1\r\nHost: gw.test\r\n\r\n');
    await until(() => {
      const [head, body] = c.received().split('\r\n\r\n', 2);
      const length = /\r\ncontent-length: (\d+)/i.exec(head ?? '')?.[1];
      return length !== undefined && Buffer.byteLength(body ?? '') >= Number(length);
    }, 10_000);
    expect(c.received()).toMatch(/^HTTP\/1\.1 200 /);
    expect(c.received()).toMatch(/keep-alive/i);
    // 300 ms + the 1 s Node adds + slack; the old default kept it 6 s
    const ms = await within(c.closed, 4_500, 'keep-alive idle close');
    expect(ms).toBeGreaterThanOrEqual(250);
  });

  it('serves normal requests while 40 slowloris clients hang', async () => {
    const { port, adminPort } = await startGateway({ headers_timeout_ms: 20_000 });
    const slow = await Promise.all(Array.from({ length: 40 }, () => rawClient(port)));
    for (const c of slow) trickle(c, LONG_HEADER, 200);
    await until(
      async () => sample(await metrics(adminPort), 'picket_gateway_open_connections') === 40,
    );
    for (let round = 0; round < 3; round++) {
      const answers = await Promise.all(
        Array.from({ length: 10 }, async (_, i) => {
          const res = await request(`http://127.0.0.1:${port}/ok/${round}/${i}`, {
            headersTimeout: 10_000,
          });
          const body = (await res.body.json()) as { path: string };
          return { status: res.statusCode, path: body.path };
        }),
      );
      for (const [i, a] of answers.entries()) {
        expect(a).toEqual({ status: 200, path: `/ok/${round}/${i}` });
      }
    }
    // the slow ones are still hanging, not dropped to make room
    expect(slow.every((c) => !c.isClosed())).toBe(true);
  });
});

describe('connection cap', () => {
  it('refuses connections over server.max_connections, visible in /metrics', async () => {
    const { port, adminPort } = await startGateway({ max_connections: 5 });
    const held = await Promise.all(Array.from({ length: 5 }, () => rawClient(port)));
    await until(
      async () => sample(await metrics(adminPort), 'picket_gateway_open_connections') === 5,
    );
    const extra = await Promise.all(Array.from({ length: 3 }, () => rawClient(port)));
    for (const c of extra) {
      // closed at accept by the server, before any byte is read
      c.socket.write('GET / HTTP/1.1\r\nHost: gw.test\r\n\r\n');
      await within(c.closed, 10_000, 'refused connection closed');
      expect(c.received()).toBe('');
    }
    const text = await metrics(adminPort);
    expect(text).toMatch(/^# TYPE picket_gateway_open_connections gauge$/m);
    expect(text).toMatch(/^# TYPE picket_gateway_refused_connections_total counter$/m);
    expect(sample(text, 'picket_gateway_open_connections')).toBe(5);
    expect(sample(text, 'picket_gateway_refused_connections_total')).toBe(3);
    // the held connections still work, and a freed slot is usable again
    const first = held[0] as RawClient;
    first.socket.write('GET /held HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\n\r\n');
    await within(first.closed, 10_000, 'held connection answered');
    expect(first.received()).toMatch(/^HTTP\/1\.1 200 /);
    await until(
      async () => sample(await metrics(adminPort), 'picket_gateway_open_connections') === 4,
    );
    const res = await request(`http://127.0.0.1:${port}/again`, { reset: true });
    expect(res.statusCode).toBe(200);
    await res.body.text();
  });
});

describe('affinity', () => {
  it('forgets every request affinity once its exchange ends (allow, block, error, disconnect)', async () => {
    const dir = tempDir();
    cleanups.push(async () => rmSync(dir, { recursive: true, force: true }));
    // headers only: never takes request-complete, the case the pool cannot clean up itself
    const plain = new ControlAgent();
    const withComplete = new ControlAgent();
    const servers = [
      new UdsAgentServerV2(join(dir, 'plain.sock'), plain, { logger: silent }),
      new UdsAgentServerV2(join(dir, 'complete.sock'), withComplete, { logger: silent }),
    ];
    await Promise.all(servers.map((s) => s.listen()));
    for (const s of servers) cleanups.push(() => s.close({ drainTimeoutMs: 0 }));
    const { port, adminPort, layer } = await startGateway(
      {},
      {
        upstreams: { echo: 'http://127.0.0.1:1', dead: 'http://127.0.0.1:1' },
        agents: {
          plain: { endpoint: `unix:${join(dir, 'plain.sock')}`, timeout_ms: 20_000 },
          complete: {
            endpoint: `unix:${join(dir, 'complete.sock')}`,
            events: ['request_headers', 'request_complete'],
          },
        },
        routes: [
          { name: 'dead', path_prefix: '/dead', upstream: 'dead', agents: ['plain', 'complete'] },
          { name: 'all', upstream: 'echo', agents: ['plain', 'complete'] },
        ],
      },
    );
    await until(
      () =>
        layer.pool.agentStats('plain')?.isHealthy && layer.pool.agentStats('complete')?.isHealthy,
    );
    // upstream refused ⇒ 502, the agent's redirect ⇒ a decision without upstream
    for (let i = 0; i < 20; i++) {
      const res = await request(`http://127.0.0.1:${port}/dead/${i}`);
      await res.body.text();
      expect(res.statusCode).toBe(502);
    }
    for (let i = 0; i < 5; i++) {
      const res = await request(`http://127.0.0.1:${port}/redirect`);
      await res.body.text();
      expect(res.statusCode).toBe(307);
    }
    // the client leaves while `plain` is still deciding
    const c = await rawClient(port);
    c.socket.write('GET /hang HTTP/1.1\r\nHost: gw.test\r\n\r\n');
    await until(() => plain.hanging.length === 1);
    c.socket.destroy();
    await until(() => plain.aborted.length === 1);

    // every exchange is over: nothing may stay pinned (the TTL would keep them 300 s)
    await until(() => withComplete.completes.length === 26);
    const text = await until(async () => {
      const t = await metrics(adminPort);
      return sample(t, 'picket_pool_correlation_affinities') === 0 && t;
    });
    expect(sample(text, 'picket_gateway_in_flight_requests')).toBe(0);
    expect(sample(text, 'picket_pool_affinity_rejections_total')).toBe(0);
  });
});
