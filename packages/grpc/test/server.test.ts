/**
 * GrpcAgentServerV2 seen from raw grpc-js clients: headers before anything is written,
 * handshake capabilities, pong, events before the handshake, ProcessEvent (unary),
 * ControlStream, concurrency limit, graceful close.
 */
import { type Client, credentials, Metadata, makeGenericClientConstructor } from '@grpc/grpc-js';
import {
  type AgentHandler,
  allow,
  block,
  type ConfigureEvent,
  createCapabilities,
  silentLogger as silent,
} from '@picket/protocol';
import { afterEach, describe, expect, test, vi } from 'vitest';
import { AgentClientV2 } from '../src/client.js';
import {
  type AgentToProxyMsg,
  agentServiceV2Definition,
  encodeAgentControl,
  encodeProxyToAgent,
  type IProxyToAgent,
  METHOD_PATHS,
  type ProxyControlMsg,
  pb,
} from '../src/proto.js';
import { GrpcAgentServerV2 } from '../src/server.js';
import { bareRequest } from './helpers.js';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const caps = () =>
  createCapabilities({
    agentId: 'srv',
    name: 'Server Test',
    version: '1.2.3',
    features: { cancellation: true, health_reporting: true },
    limits: { max_processing_time_ms: 250 },
  });

async function serve(h: Partial<AgentHandler> = {}) {
  const server = new GrpcAgentServerV2({ capabilities: caps, ...h });
  cleanups.push(() => server.forceShutdown());
  const { address } = await server.listen('127.0.0.1:0');
  const Ctor = makeGenericClientConstructor(agentServiceV2Definition, 'AgentServiceV2');
  const client = new Ctor(address, credentials.createInsecure()) as Client;
  cleanups.push(() => client.close());
  return { server, address, client };
}

function rawStream(client: Client) {
  const call = client.makeBidiStreamRequest(
    METHOD_PATHS.ProcessStream,
    (b: Buffer) => b,
    (b: Buffer) => pb.AgentToProxy.decode(b),
    new Metadata(),
  );
  call.on('error', () => undefined);
  cleanups.push(() => call.cancel());
  const inbox: AgentToProxyMsg[] = [];
  call.on('data', (m: AgentToProxyMsg) => inbox.push(m));
  const send = (m: IProxyToAgent) => call.write(encodeProxyToAgent(m));
  return { call, inbox, send };
}

const handshake: IProxyToAgent = {
  handshake: {
    supported_versions: [2, 1],
    proxy_id: 'raw-proxy',
    proxy_version: '9',
    config_json: '{}',
  },
};

describe('ProcessStream', () => {
  test('response headers arrive before the client writes anything', async () => {
    const { client } = await serve();
    const { call } = rawStream(client);
    const md = await new Promise<Metadata>((resolve) => call.once('metadata', resolve));
    expect(md.get('x-picket-grpc')).toEqual(['1']);
  });

  test('the handshake is answered with full capabilities', async () => {
    const { client } = await serve();
    const { inbox, send } = rawStream(client);
    send(handshake);
    await vi.waitFor(() => expect(inbox).toHaveLength(1));
    const hs = inbox[0]?.handshake;
    expect(hs?.success).toBe(true);
    expect(hs?.protocol_version).toBe(2);
    expect(hs?.capabilities?.agent_id).toBe('srv');
    expect(hs?.capabilities?.features?.cancellation).toBe(true);
    expect(Number(hs?.capabilities?.limits?.max_processing_time_ms)).toBe(250);
    expect(hs?.capabilities?.health_config?.report_interval_ms).toBe(10_000);
    expect(hs?.capabilities?.supported_events).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
  });

  test('ping is answered with pong {sequence, ping_timestamp_ms, timestamp_ms}, even before the handshake', async () => {
    const { client } = await serve();
    const { inbox, send } = rawStream(client);
    const before = Date.now();
    send({ ping: { sequence: 7, timestamp_ms: 1767225600000 } });
    await vi.waitFor(() => expect(inbox).toHaveLength(1));
    const pong = inbox[0]?.pong;
    expect(Number(pong?.sequence)).toBe(7);
    expect(Number(pong?.ping_timestamp_ms)).toBe(1767225600000);
    expect(Number(pong?.timestamp_ms)).toBeGreaterThanOrEqual(before);
  });

  test('events before the handshake get no reply (as a Rust agent)', async () => {
    const seen: string[] = [];
    const { client } = await serve({
      onRequestHeaders: (e) => {
        seen.push(e.metadata.correlation_id);
        return allow();
      },
    });
    const { inbox, send } = rawStream(client);
    send({ request_headers: { metadata: { correlation_id: 'early' }, method: 'GET', uri: '/' } });
    send(handshake);
    send({ request_headers: { metadata: { correlation_id: 'late' }, method: 'GET', uri: '/' } });
    await vi.waitFor(() => expect(inbox).toHaveLength(2));
    expect(inbox[1]?.response?.correlation_id).toBe('late');
    expect(seen).toEqual(['late']);
  });

  test('a configure event from a Rust proxy (no correlation id) reaches the handler and is answered', async () => {
    const got: ConfigureEvent[] = [];
    const { client } = await serve({
      onConfigure: (e) => {
        got.push(e);
        return allow();
      },
    });
    const { inbox, send } = rawStream(client);
    send(handshake);
    send({ configure: { config_json: '{"x":1}', is_initial: false, timestamp_ms: 1 } });
    await vi.waitFor(() => expect(inbox).toHaveLength(2));
    expect(got).toEqual([{ correlation_id: '', config: { x: 1 }, config_version: null }]);
    expect(inbox[1]?.response?.correlation_id).toBe('');
  });

  test('maxConcurrentPerStream bounds handler concurrency; all events are answered', async () => {
    let active = 0;
    let peak = 0;
    const server = new GrpcAgentServerV2(
      {
        capabilities: caps,
        onRequestHeaders: async () => {
          active++;
          peak = Math.max(peak, active);
          await new Promise((r) => setTimeout(r, 5));
          active--;
          return allow();
        },
      },
      { maxConcurrentPerStream: 3 },
    );
    cleanups.push(() => server.forceShutdown());
    const { address } = await server.listen('127.0.0.1:0');
    const t = await AgentClientV2.connect('srv', address);
    cleanups.push(() => t.close());
    const results = await Promise.all(
      Array.from({ length: 30 }, (_, i) => t.sendRequestHeaders(bareRequest(`c${i}`))),
    );
    expect(results).toHaveLength(30);
    expect(peak).toBeLessThanOrEqual(3);
    expect(peak).toBeGreaterThan(1);
  });

  test('errorPolicy as a function builds the answer; one that allows is overruled', async () => {
    const server = new GrpcAgentServerV2(
      {
        capabilities: caps,
        onRequestHeaders: (e) => {
          throw new Error(e.uri === '/open' ? 'open' : 'nope');
        },
      },
      {
        errorPolicy: (err, info) =>
          err.message.includes('open')
            ? allow({ tags: ['fail_open'] })
            : block(503, {
                tags: ['custom'],
                custom: { cause: info.cause, error: err.message, transport: info.transport },
              }),
        logger: silent,
      },
    );
    cleanups.push(() => server.forceShutdown());
    const { address } = await server.listen('127.0.0.1:0');
    const t = await AgentClientV2.connect('srv', address);
    cleanups.push(() => t.close());
    const r = await t.sendRequestHeaders(bareRequest('x', ''));
    expect(r.decision).toEqual({ block: { status: 503, body: null, headers: null } });
    expect(r.audit.custom).toEqual({
      cause: 'HANDLER_ERROR',
      error: 'onRequestHeaders failed: nope',
      transport: 'grpc',
    });
    const open = await t.sendRequestHeaders({ ...bareRequest('y', ''), uri: '/open' });
    expect(open.decision).toEqual({
      block: { status: 500, body: 'Agent handler error', headers: null },
    });
    expect(open.audit.tags).toEqual(['picket_error']);
  });

  test("errorPolicy 'close' ends the stream with INTERNAL; 'allow' is refused", async () => {
    expect(
      () => new GrpcAgentServerV2({ capabilities: caps }, { errorPolicy: 'allow' as never }),
    ).toThrow(/errorPolicy must be 'block', 'close'/);
    const server = new GrpcAgentServerV2(
      {
        capabilities: caps,
        onRequestHeaders: () => {
          throw new Error('nope');
        },
      },
      { errorPolicy: 'close', logger: silent },
    );
    cleanups.push(() => server.forceShutdown());
    const { address } = await server.listen('127.0.0.1:0');
    const t = await AgentClientV2.connect('srv', address);
    cleanups.push(() => t.close());
    const err = await t.sendRequestHeaders(bareRequest('x', '')).catch((e: unknown) => e);
    expect((err as { code: string }).code).toBe('CONNECTION_CLOSED');
  });

  test('close({drainTimeoutMs}) lets in-flight work finish before ending the stream', async () => {
    let release!: () => void;
    let started = false;
    const gate = new Promise<void>((r) => (release = r));
    const server = new GrpcAgentServerV2({
      capabilities: caps,
      onRequestHeaders: async () => {
        started = true;
        await gate;
        return allow({ tags: ['finished'] });
      },
    });
    const { address } = await server.listen('127.0.0.1:0');
    const t = await AgentClientV2.connect('srv', address);
    cleanups.push(() => t.close());
    const inflight = t.sendRequestHeaders(bareRequest('draining', ''));
    await vi.waitFor(() => expect(started).toBe(true));
    const closing = server.close({ drainTimeoutMs: 10_000 });
    setTimeout(release, 30);
    expect((await inflight).audit.tags).toEqual(['finished']);
    await closing;
    await vi.waitFor(() => expect(t.closed).toBe(true));
  });
});

describe('ProcessEvent (unary)', () => {
  function unary(client: Client, m: IProxyToAgent): Promise<AgentToProxyMsg> {
    return new Promise((resolve, reject) =>
      client.makeUnaryRequest(
        METHOD_PATHS.ProcessEvent,
        (b: Buffer) => b,
        (b: Buffer) => pb.AgentToProxy.decode(b),
        encodeProxyToAgent(m),
        (err, res) => (err ? reject(err) : resolve(res as AgentToProxyMsg)),
      ),
    );
  }

  test('handshake, events, ping; anything else is INVALID_ARGUMENT', async () => {
    const { client } = await serve({ onRequestHeaders: () => allow({ tags: ['unary'] }) });
    expect((await unary(client, handshake)).handshake?.success).toBe(true);
    const r = await unary(client, {
      request_headers: { metadata: { correlation_id: 'u1' }, method: 'GET', uri: '/' },
    });
    expect(r.response?.correlation_id).toBe('u1');
    expect(r.response?.audit?.tags).toEqual(['unary']);
    const c = await unary(client, { response_headers: { correlation_id: 'u2', status_code: 200 } });
    expect(c.response?.correlation_id).toBe('u2');
    expect(Number((await unary(client, { ping: { sequence: 3 } })).pong?.sequence)).toBe(3);
    await expect(
      unary(client, { cancel: { correlation_id: 'u1', reason: 2 } }),
    ).rejects.toMatchObject({
      code: 3,
      details: 'Unsupported event type',
    });
  });
});

describe('ControlStream', () => {
  function rawControl(client: Client) {
    const call = client.makeBidiStreamRequest(
      METHOD_PATHS.ControlStream,
      (b: Buffer) => b,
      (b: Buffer) => pb.ProxyControl.decode(b),
      new Metadata(),
    );
    call.on('error', () => undefined);
    cleanups.push(() => call.cancel());
    const inbox: ProxyControlMsg[] = [];
    call.on('data', (m: ProxyControlMsg) => inbox.push(m));
    return { call, inbox };
  }

  test('a config update is acknowledged; drain and shutdown are announced', async () => {
    const { client, server } = await serve();
    const { call, inbox } = rawControl(client);
    call.write(encodeAgentControl({ config_update: { request_id: 'cu-1', request_reload: {} } }));
    await vi.waitFor(() => expect(inbox).toHaveLength(1));
    expect(inbox[0]?.config_response?.request_id).toBe('cu-1');
    expect(inbox[0]?.config_response?.accepted).toBe(true);
    server.startDrain(500);
    await vi.waitFor(() => expect(inbox).toHaveLength(2));
    expect(Number(inbox[1]?.drain?.duration_ms)).toBe(500);
    void server.close({ drainTimeoutMs: 50 });
    await vi.waitFor(() => expect(inbox.some((m) => m.shutdown)).toBe(true));
  });
});

describe('draining', () => {
  test('a draining agent refuses new connections with a clear error', async () => {
    const { server, address } = await serve();
    server.startDrain();
    const err = await AgentClientV2.connect('srv', address, { timeoutMs: 5000 }).catch(
      (e: unknown) => e,
    );
    expect((err as { code: string }).code).toBe('CONNECTION_FAILED');
    expect((err as Error).message).toContain('draining');
  });
});

describe('unix socket mode', () => {
  test('gives a unix: socket file mode 0660 by default, whatever the umask', async () => {
    const { mkdtempSync, statSync, rmSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const { createCapabilities } = await import('@picket/protocol');
    const { GrpcAgentServerV2 } = await import('../src/server.js');
    const dir = mkdtempSync(join(tmpdir(), 'picket-'));
    const old = process.umask(0);
    const server = new GrpcAgentServerV2({
      capabilities: () => createCapabilities({ agentId: 'm' }),
    });
    try {
      await server.listen(`unix:${join(dir, 'agent.sock')}`);
      expect(statSync(join(dir, 'agent.sock')).mode & 0o777).toBe(0o660);
    } finally {
      process.umask(old);
      await server.close({ drainTimeoutMs: 0 });
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('replaces a stale unix: socket, refuses a live one, removes its own file on close', async () => {
    const { linkSync, mkdtempSync, readdirSync, renameSync, rmSync } = await import('node:fs');
    const net = await import('node:net');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const { createCapabilities } = await import('@picket/protocol');
    const { GrpcAgentServerV2 } = await import('../src/server.js');
    const dir = mkdtempSync(join(tmpdir(), 'picket-'));
    const path = join(dir, 'agent.sock');
    // a stale socket, as a killed agent leaves it (Node unlinks only the name it bound)
    const stale = net.createServer();
    await new Promise<void>((r) => stale.listen(path, r));
    linkSync(path, `${path}.keep`);
    await new Promise<void>((r) => stale.close(() => r()));
    renameSync(`${path}.keep`, path);
    const handler = { capabilities: () => createCapabilities({ agentId: 'm' }) };
    const server = new GrpcAgentServerV2(handler);
    const second = new GrpcAgentServerV2(handler);
    try {
      expect(await server.listen(`unix:${path}`)).toEqual({ address: `unix:${path}`, port: 0 });
      const client = await AgentClientV2.connect('m', `unix:${path}`);
      await client.close();
      await expect(second.listen(`unix:${path}`)).rejects.toMatchObject({
        code: 'CONNECTION_FAILED',
        message: `${path}: another process is already listening on this socket`,
      });
      await server.close({ drainTimeoutMs: 0 });
      expect(readdirSync(dir)).toEqual([]);
    } finally {
      await server.close({ drainTimeoutMs: 0 });
      await second.close({ drainTimeoutMs: 0 });
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
