/**
 * Server-side bounds: a ProcessStream that never completes its handshake is ended after
 * `handshakeTimeoutMs` (others keep working), and `maxConnections` refuses streams beyond
 * the cap with RESOURCE_EXHAUSTED until one closes. Behaviour only; timings are hang guards.
 */

import {
  type Client,
  type ClientDuplexStream,
  credentials,
  Metadata,
  makeGenericClientConstructor,
  type ServiceError,
  status,
} from '@grpc/grpc-js';
import { captureLogger, until } from '@picket/compliance';
import { type AgentHandler, AgentProtocolError, allow, createCapabilities } from '@picket/protocol';
import { afterEach, describe, expect, test } from 'vitest';
import { AgentClientV2 } from '../src/client.js';
import {
  type AgentToProxyMsg,
  agentServiceV2Definition,
  encodeProxyToAgent,
  type IProxyToAgent,
  METHOD_PATHS,
  pb,
} from '../src/proto.js';
import {
  DEFAULT_GRPC_HANDSHAKE_TIMEOUT_MS,
  DEFAULT_GRPC_MAX_CONNECTIONS,
  GrpcAgentServerV2,
  type GrpcAgentServerV2Options,
} from '../src/server.js';
import { bareRequest } from './helpers.js';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const caps = () => createCapabilities({ agentId: 'limits' });

async function serve(options: GrpcAgentServerV2Options, handler: Partial<AgentHandler> = {}) {
  const log = captureLogger();
  const server = new GrpcAgentServerV2(
    { capabilities: caps, onRequestHeaders: () => allow(), ...handler },
    { logger: log, ...options },
  );
  cleanups.push(() => server.forceShutdown());
  const { address } = await server.listen('127.0.0.1:0');
  const Ctor = makeGenericClientConstructor(agentServiceV2Definition, 'AgentServiceV2');
  const client = new Ctor(address, credentials.createInsecure()) as Client;
  cleanups.push(() => client.close());
  return { server, address, client, log };
}

/** A raw stream that records what it receives and how it ended. */
function rawStream(client: Client, path: string = METHOD_PATHS.ProcessStream) {
  const call: ClientDuplexStream<Buffer, unknown> = client.makeBidiStreamRequest(
    path,
    (b: Buffer) => b,
    (b: Buffer) =>
      path === METHOD_PATHS.ProcessStream ? pb.AgentToProxy.decode(b) : pb.ProxyControl.decode(b),
    new Metadata(),
  );
  const inbox: AgentToProxyMsg[] = [];
  let error: ServiceError | undefined;
  call.on('data', (m: AgentToProxyMsg) => inbox.push(m));
  call.on('error', (e: ServiceError) => {
    error = e;
  });
  cleanups.push(() => call.cancel());
  return {
    call,
    inbox,
    error: () => error,
    send: (m: IProxyToAgent) => call.write(encodeProxyToAgent(m)),
  };
}

async function connect(address: string): Promise<AgentClientV2> {
  const t = await AgentClientV2.connect('limits', address, { timeoutMs: 10_000 });
  cleanups.push(() => t.close());
  return t;
}

async function refusal(p: Promise<unknown>): Promise<AgentProtocolError> {
  const err = await p.then(
    (ok) => {
      if (ok instanceof AgentClientV2) cleanups.push(() => ok.close());
      throw new Error('expected the connection to be refused');
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(AgentProtocolError);
  return err as AgentProtocolError;
}

describe('options', () => {
  test('defaults mirror the UDS server (10 s handshake) and the reverse listener (1024)', () => {
    expect(DEFAULT_GRPC_HANDSHAKE_TIMEOUT_MS).toBe(10_000);
    expect(DEFAULT_GRPC_MAX_CONNECTIONS).toBe(1024);
  });

  test('nonsense values are refused naming the option', () => {
    const h = { capabilities: caps };
    expect(() => new GrpcAgentServerV2(h, { handshakeTimeoutMs: 0 })).toThrow(/handshakeTimeoutMs/);
    expect(() => new GrpcAgentServerV2(h, { maxConnections: 0 })).toThrow(/maxConnections/);
    expect(() => new GrpcAgentServerV2(h, { maxConnections: 1.5 })).toThrow(/maxConnections/);
    expect(() => new GrpcAgentServerV2(h, { maxConnections: Infinity })).not.toThrow();
  });
});

describe('handshake timeout', () => {
  test('a silent ProcessStream is ended with DEADLINE_EXCEEDED; a handshaken one keeps working', async () => {
    const { server, address, client, log } = await serve({ handshakeTimeoutMs: 200 });
    // the good stream is opened first, so it has been open longer than the timeout when the
    // silent one is ended: its timer was cleared by the handshake
    const good = await connect(address);
    const silent = rawStream(client);
    // a ping is answered before the handshake, but does not count as one
    silent.send({ ping: { sequence: 7, timestamp_ms: 1 } });
    await until(() => silent.error() !== undefined, 10_000, 'the silent stream to be ended');
    expect(silent.inbox.some((m) => m.pong)).toBe(true);
    expect(silent.error()?.code).toBe(status.DEADLINE_EXCEEDED);
    expect(silent.error()?.details).toMatch(/no handshake completed within 200 ms/);
    expect(silent.error()?.details).toContain('handshakeTimeoutMs');
    expect(log.text()).toMatch(/warn closing ProcessStream: no handshake completed within 200 ms/);
    await until(() => server.connections === 1, 5000, 'the slot to be freed');
    const r = await good.sendRequestHeaders(bareRequest('after-timeout'));
    expect(r.decision).toBe('allow');
    expect(good.isHealthy()).toBe(true);
  });

  test('a raw stream that sends its handshake in time is not ended', async () => {
    const { client } = await serve({ handshakeTimeoutMs: 200 });
    const late = rawStream(client);
    const prompt = rawStream(client);
    prompt.send({
      handshake: { supported_versions: [2], proxy_id: 'p', proxy_version: '1', config_json: '{}' },
    });
    await until(() => late.error() !== undefined, 10_000, 'the silent stream to be ended');
    expect(prompt.inbox[0]?.handshake?.success).toBe(true);
    expect(prompt.error()).toBeUndefined();
    prompt.send({ ping: { sequence: 1, timestamp_ms: 1 } });
    await until(() => prompt.inbox.some((m) => m.pong), 5000, 'a pong');
    expect(prompt.error()).toBeUndefined();
  });

  test('an onHandshake that never settles is bounded too', async () => {
    const { address, log } = await serve(
      { handshakeTimeoutMs: 200 },
      { onHandshake: () => new Promise(() => undefined) },
    );
    const err = await refusal(AgentClientV2.connect('limits', address, { timeoutMs: 10_000 }));
    expect(err.code).toBe('CONNECTION_FAILED');
    expect(err.message).toMatch(/DEADLINE_EXCEEDED: no handshake completed within 200 ms/);
    expect(log.text()).toMatch(/closing ProcessStream: no handshake completed/);
  });
});

describe('maxConnections', () => {
  test('refuses the (n+1)th ProcessStream with RESOURCE_EXHAUSTED, accepts again after one closes', async () => {
    const { server, address, log } = await serve({ maxConnections: 2 });
    const a = await connect(address);
    await connect(address);
    expect(server.connections).toBe(2);
    const err = await refusal(AgentClientV2.connect('limits', address, { timeoutMs: 10_000 }));
    expect(err.code).toBe('CONNECTION_FAILED');
    expect(err.message).toContain('RESOURCE_EXHAUSTED');
    expect(err.message).toContain('maxConnections 2');
    expect(log.text()).toMatch(
      /warn refusing ProcessStream: connection limit reached.*maxConnections 2/,
    );
    expect(server.connections).toBe(2);
    await a.close();
    await until(() => server.connections === 1, 5000, 'the slot to be freed');
    const c = await connect(address);
    expect((await c.sendRequestHeaders(bareRequest('third'))).decision).toBe('allow');
  });

  test('silent streams hold slots only until the handshake timeout', async () => {
    const { server, address, client } = await serve({ maxConnections: 1, handshakeTimeoutMs: 200 });
    const silent = rawStream(client);
    await until(() => server.connections === 1, 5000, 'the silent stream to open');
    const err = await refusal(AgentClientV2.connect('limits', address, { timeoutMs: 10_000 }));
    expect(err.message).toContain('maxConnections 1');
    await until(() => silent.error() !== undefined, 10_000, 'the silent stream to be ended');
    await until(() => server.connections === 0, 5000, 'the slot to be freed');
    const t = await connect(address);
    expect((await t.sendRequestHeaders(bareRequest('freed'))).decision).toBe('allow');
  });

  test('ControlStreams are capped on their own, at the same number', async () => {
    const { client, log } = await serve({ maxConnections: 1 });
    const first = rawStream(client, METHOD_PATHS.ControlStream);
    const second = rawStream(client, METHOD_PATHS.ControlStream);
    await until(() => second.error() !== undefined, 10_000, 'the second ControlStream refused');
    expect(second.error()?.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(second.error()?.details).toMatch(/1 ControlStreams open \(maxConnections 1\)/);
    expect(first.error()).toBeUndefined();
    expect(log.text()).toMatch(/refusing ControlStream/);
    // a ProcessStream still fits: the caps are separate
    const p = rawStream(client);
    p.send({
      handshake: { supported_versions: [2], proxy_id: 'p', proxy_version: '1', config_json: '{}' },
    });
    await until(() => p.inbox.length > 0, 5000, 'a handshake answer');
    expect(p.inbox[0]?.handshake?.success).toBe(true);
  });
});
