import * as net from 'node:net';
import { cid, requestHeaders } from '@picket/compliance';
import { FrameDecoder } from '@picket/framing';
import { type AgentProtocolError, createCapabilities } from '@picket/protocol';
import { afterEach, describe, expect, it } from 'vitest';
import {
  connectReverse,
  parseReverseEndpoint,
  type RegistrationFailureInfo,
  type ReverseAgent,
  type ReverseConnection,
  type ReverseConnectionConfig,
  ReverseConnectionListener,
} from '../src/index.js';
import { reconnectDelay } from '../src/internal.js';
import { captureLogger, golden, stampHandler, tempSocket, until } from './helpers.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function udsListener(config: ReverseConnectionConfig = {}, path?: string) {
  const sock = path === undefined ? tempSocket() : undefined;
  const listener = await ReverseConnectionListener.bindUds(path ?? (sock?.path as string), {
    logger: captureLogger(),
    ...config,
  });
  cleanups.push(async () => {
    await listener.close();
    sock?.cleanup();
  });
  return listener;
}

async function tcpListener(config: ReverseConnectionConfig = {}) {
  const listener = await ReverseConnectionListener.bindTcp('127.0.0.1:0', {
    logger: captureLogger(),
    ...config,
  });
  cleanups.push(() => listener.close());
  return listener;
}

function agent(options: Parameters<typeof connectReverse>[0]): ReverseAgent {
  const a = connectReverse({ logger: captureLogger(), ...options });
  cleanups.push(() => a.stop());
  return a;
}

const fast = { initialDelayMs: 10, maxDelayMs: 50 };

async function call(conn: ReverseConnection, uri = '/'): Promise<Record<string, string>> {
  const r = await conn.sendRequestHeaders(requestHeaders(cid(), uri), { timeoutMs: 5000 });
  const out: Record<string, string> = {};
  for (const op of r.request_headers) if ('set' in op) out[op.set.name] = op.set.value;
  return out;
}

describe('connectReverse endpoints', () => {
  it('registers over UDS (unix: prefix and bare path) and serves the handler', async () => {
    const listener = await udsListener();
    const a = agent({
      endpoint: listener.endpoint,
      agentId: 'waf-1',
      handler: stampHandler('waf-1'),
    });
    const b = agent({
      endpoint: listener.socketPath as string,
      agentId: 'waf-2',
      handler: stampHandler('waf-2'),
    });
    await Promise.all([a.ready({ timeoutMs: 5000 }), b.ready({ timeoutMs: 5000 })]);
    const [c1] = listener.list('waf-1');
    const [c2] = listener.list('waf-2');
    expect(await call(c1 as ReverseConnection)).toMatchObject({
      'x-agent': 'waf-1',
      'x-connection': c1?.connectionId,
    });
    expect((await call(c2 as ReverseConnection))['x-agent']).toBe('waf-2');
    expect(a.status()).toMatchObject({ connected: 1, desired: 1, registrations: 1 });
    expect(a.status().slots[0]?.connectionId).toBe(c1?.connectionId);
  });

  it('registers over TCP (tcp:// and host:port)', async () => {
    const listener = await tcpListener();
    expect(listener.endpoint).toMatch(/^tcp:\/\/127\.0\.0\.1:\d+$/);
    const { port } = listener.address();
    const a = agent({ endpoint: listener.endpoint, agentId: 'a', handler: stampHandler('a') });
    const b = agent({ endpoint: `127.0.0.1:${port}`, agentId: 'b', handler: stampHandler('b') });
    await Promise.all([a.ready({ timeoutMs: 5000 }), b.ready({ timeoutMs: 5000 })]);
    expect((await call(listener.list('b')[0] as ReverseConnection))['x-agent']).toBe('b');
    expect(listener.list('a')[0]?.info).toMatchObject({
      transport: 'tcp',
      remoteAddress: '127.0.0.1',
    });
  });

  it('parses endpoints', () => {
    expect(parseReverseEndpoint('unix:/run/p.sock')).toEqual({ kind: 'uds', path: '/run/p.sock' });
    expect(parseReverseEndpoint('/run/p.sock')).toEqual({ kind: 'uds', path: '/run/p.sock' });
    expect(parseReverseEndpoint('tcp://10.0.0.1:7000')).toEqual({
      kind: 'tcp',
      host: '10.0.0.1',
      port: 7000,
    });
    expect(parseReverseEndpoint('proxy.internal:7000')).toEqual({
      kind: 'tcp',
      host: 'proxy.internal',
      port: 7000,
    });
    expect(parseReverseEndpoint('tls://proxy:7443')).toEqual({
      kind: 'tls',
      host: 'proxy',
      port: 7443,
    });
    expect(parseReverseEndpoint('proxy:7443', true)).toEqual({
      kind: 'tls',
      host: 'proxy',
      port: 7443,
    });
    expect(parseReverseEndpoint('[::1]:7000')).toEqual({ kind: 'tcp', host: '::1', port: 7000 });
    for (const bad of ['', 'proxy', 'proxy:0', 'proxy:70000', 'http://x:1', 'unix:', '::1:80']) {
      expect(() => parseReverseEndpoint(bad)).toThrow(/invalid reverse endpoint/);
    }
    expect(() => parseReverseEndpoint('tcp://x:1', true)).toThrow(/use tls/);
  });
});

describe('registration request', () => {
  it('is byte-identical to V9a for the same values', async () => {
    const sock = tempSocket();
    cleanups.push(() => sock.cleanup());
    const first = new Promise<Buffer>((resolve) => {
      const server = net.createServer((s) => {
        const decoder = new FrameDecoder();
        const chunks: Buffer[] = [];
        s.on('data', (c: Buffer) => {
          chunks.push(c);
          if (decoder.push(c).length > 0) {
            resolve(Buffer.concat(chunks));
            s.destroy();
          }
        });
      });
      server.listen(sock.path);
      cleanups.push(() => new Promise<void>((r) => server.close(() => r())));
    });
    agent({
      endpoint: sock.path,
      agentId: 'waf-1',
      authToken: 'secret',
      reconnect: { initialDelayMs: 1000 },
      handler: {
        capabilities: () =>
          createCapabilities({
            agentId: 'waf-1',
            name: 'Echo Agent',
            version: '1.0.0',
            events: ['request_headers'],
          }),
      },
    });
    expect((await first).equals(golden('V9a'))).toBe(true);
  });
});

describe('connections, failures and reconnects', () => {
  it('keeps N connections', async () => {
    const listener = await udsListener();
    const a = agent({
      endpoint: listener.endpoint,
      agentId: 'waf',
      handler: stampHandler('waf'),
      connections: 3,
    });
    await a.ready({ timeoutMs: 5000 });
    expect(a.connected).toBe(3);
    expect(listener.list('waf')).toHaveLength(3);
    const ids = new Set(listener.list('waf').map((c) => c.connectionId));
    expect(ids.size).toBe(3);
  });

  it('reports a refusal with the proxy text, keeps retrying, never silently', async () => {
    const listener = await udsListener({ allowedAgents: ['waf-*'] });
    const log = captureLogger();
    const a = agent({
      endpoint: listener.endpoint,
      agentId: 'intruder',
      handler: stampHandler('intruder'),
      reconnect: fast,
      logger: log,
    });
    const failures: [AgentProtocolError, RegistrationFailureInfo][] = [];
    a.on('registrationFailed', (e, info) => failures.push([e, info]));
    await until(() => failures.length >= 3, 5000, 'three refusals');
    const [err, info] = failures[0] as [AgentProtocolError, RegistrationFailureInfo];
    const text = "Invalid message format: Agent 'intruder' is not in the allowed list";
    expect(info).toMatchObject({ rejected: true, proxyError: text, failures: 1 });
    expect(failures[2]?.[1].failures).toBe(3);
    expect(err.message).toContain(text);
    expect(a.lastError?.message).toContain(text);
    expect(a.status().lastError).toContain(text);
    expect(a.connected).toBe(0);
    expect(log.entries.filter((e) => e.level === 'warn' && e.fields?.reason)).not.toHaveLength(0);
    await expect(a.ready({ timeoutMs: 50 })).rejects.toThrow(
      /last error: .*not in the allowed list/,
    );
  });

  it('maps refusals to error codes (wrong token ⇒ UNAUTHENTICATED)', async () => {
    const listener = await udsListener({ tokens: ['right'] });
    const a = agent({
      endpoint: listener.endpoint,
      agentId: 'waf',
      authToken: 'wrong',
      handler: stampHandler('waf'),
      reconnect: fast,
    });
    const [err] = await new Promise<[AgentProtocolError]>((r) =>
      a.once('registrationFailed', (e) => r([e])),
    );
    expect(err.code).toBe('UNAUTHENTICATED');
    expect(err.message).toContain("Authentication failed: invalid token for agent 'waf'");
  });

  it('keeps dialling a proxy that is not there yet, then registers', async () => {
    const sock = tempSocket();
    cleanups.push(() => sock.cleanup());
    const a = agent({
      endpoint: sock.path,
      agentId: 'early',
      handler: stampHandler('early'),
      reconnect: fast,
    });
    const failures: AgentProtocolError[] = [];
    a.on('registrationFailed', (e) => failures.push(e));
    await until(() => failures.length >= 2, 5000, 'dial failures');
    expect(failures[0]?.code).toBe('CONNECTION_FAILED');
    expect(failures[0]?.message).toMatch(/cannot connect to unix:.*ENOENT|ECONNREFUSED/);
    const listener = await udsListener({}, sock.path);
    await a.ready({ timeoutMs: 5000 });
    expect(listener.list('early')).toHaveLength(1);
  });

  it('reconnects when the proxy drops the connection or restarts', async () => {
    const sock = tempSocket();
    cleanups.push(() => sock.cleanup());
    let listener = await ReverseConnectionListener.bindUds(sock.path, { logger: captureLogger() });
    const a = agent({
      endpoint: sock.path,
      agentId: 'waf',
      handler: stampHandler('waf'),
      reconnect: fast,
    });
    await a.ready({ timeoutMs: 5000 });
    const disconnected = new Promise((r) => a.once('disconnected', r));
    listener.list('waf')[0]?.destroy();
    await disconnected;
    await until(() => listener.list('waf').length === 1 && a.connected === 1, 5000, 'reconnect');
    expect(a.status().registrations).toBe(2);

    await listener.close();
    await until(() => a.connected === 0);
    listener = await ReverseConnectionListener.bindUds(sock.path, { logger: captureLogger() });
    cleanups.push(() => listener.close());
    await until(() => listener.list('waf').length === 1, 5000, 're-registration');
    expect((await call(listener.list('waf')[0] as ReverseConnection))['x-agent']).toBe('waf');
  });

  it('stop(): sockets closed, no reconnect afterwards, no timers left', async () => {
    const listener = await udsListener();
    const baseline = process
      .getActiveResourcesInfo()
      .filter((r) => r === 'Timeout' || r === 'PipeWrap').length;
    const a = connectReverse({
      endpoint: listener.endpoint,
      agentId: 'waf',
      handler: stampHandler('waf'),
      connections: 2,
      reconnect: fast,
      logger: captureLogger(),
    });
    await a.ready({ timeoutMs: 5000 });
    // One slot in its backoff wait when stop() comes.
    listener.list('waf')[0]?.destroy();
    await until(() => a.status().slots.some((s) => s.state === 'waiting'), 5000, 'a waiting slot');
    await a.stop();
    const accepted = listener.stats.accepted;
    expect(a.stopped).toBe(true);
    expect(a.status().slots.every((s) => s.state === 'stopped')).toBe(true);
    await until(() => listener.connectionCount === 0 && listener.socketCount === 0);
    await new Promise((r) => setTimeout(r, 100));
    expect(listener.stats.accepted).toBe(accepted);
    expect(listener.connectionCount).toBe(0);
    const after = process
      .getActiveResourcesInfo()
      .filter((r) => r === 'Timeout' || r === 'PipeWrap').length;
    expect(after).toBeLessThanOrEqual(baseline);
    await a.stop(); // idempotent
  });

  it('stop() during a dial and during registration leaves nothing behind', async () => {
    // A "proxy" that accepts and never answers: the agent hangs in registration.
    const sock = tempSocket();
    cleanups.push(() => sock.cleanup());
    const sockets = new Set<net.Socket>();
    const server = net.createServer((s) => {
      sockets.add(s);
      s.resume();
      s.on('close', () => sockets.delete(s));
    });
    await new Promise<void>((r) => server.listen(sock.path, () => r()));
    cleanups.push(() => new Promise<void>((r) => server.close(() => r())));
    const a = connectReverse({
      endpoint: sock.path,
      agentId: 'x',
      handler: stampHandler('x'),
      logger: captureLogger(),
    });
    await until(() => a.status().slots[0]?.state === 'registering' && sockets.size === 1);
    await a.stop();
    await until(() => sockets.size === 0, 3000, 'the server side to see the close');
  });

  it('backoff grows exponentially, is capped and jittered downwards only', () => {
    const top = () => 1;
    expect([0, 1, 2, 3].map((n) => reconnectDelay(n, { initialDelayMs: 100 }, top))).toEqual([
      100, 200, 400, 800,
    ]);
    expect(reconnectDelay(30, { initialDelayMs: 100, maxDelayMs: 5000 }, top)).toBe(5000);
    // jitter 0.2 (the default): a delay lies in [80 %, 100 %] of the base
    expect(reconnectDelay(0, { initialDelayMs: 100 }, () => 0)).toBe(80);
    expect(reconnectDelay(0, { initialDelayMs: 100 }, () => 0.5)).toBe(90);
    expect(reconnectDelay(30, { maxDelayMs: 1000, jitter: 0.5 }, () => 0.999)).toBe(1000);
  });

  it('a wrong reconnect option is refused up front, naming it', () => {
    expect(() =>
      agent({
        endpoint: 'unix:/nonexistent',
        agentId: 'w',
        handler: stampHandler('w'),
        reconnect: { jitter: 2 },
      }),
    ).toThrow('connectReverse: reconnect.jitter: expected a number from 0 to 1, got 2');
    expect(() => reconnectDelay(0, { multiplier: 0 })).toThrow(
      'reconnect.multiplier: expected a finite number ≥ 1, got 0',
    );
  });

  it('control frames reach the proxy: pause is remembered for new connections', async () => {
    const listener = await udsListener();
    const a = agent({ endpoint: listener.endpoint, agentId: 'w', handler: stampHandler('w') });
    await a.ready({ timeoutMs: 5000 });
    const conn = listener.list('w')[0] as ReverseConnection;
    const paused = new Promise((r) => conn.once('flowControl', r));
    expect(a.pause()).toBe(1);
    await paused;
    expect(conn.paused).toBe(true);
    expect(conn.isHealthy()).toBe(false);
    expect(await conn.ping({ timeoutMs: 5000 })).toBeGreaterThanOrEqual(0);
  });
});
