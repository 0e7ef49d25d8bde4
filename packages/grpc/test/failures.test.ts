/**
 * Failures: TLS refusals (wrong CA, wrong server name, missing client certificate) with a
 * clear error, an agent dying mid-stream, refused handshakes, nothing listening, a peer
 * that is not an agent.
 */
import { Server, ServerCredentials, type ServerDuplexStream } from '@grpc/grpc-js';
import { AgentProtocolError, allow, createCapabilities } from '@picket/protocol';
import { afterEach, beforeAll, describe, expect, test, vi } from 'vitest';
import { AgentClientV2 } from '../src/client.js';
import { GrpcAgentServerV2 } from '../src/server.js';
import { hasOpenssl, type TestCerts, testCerts } from './certs.js';
import { bareRequest } from './helpers.js';

const caps = () => createCapabilities({ agentId: 'fail-agent' });
const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

async function failure(p: Promise<unknown>): Promise<AgentProtocolError> {
  const err = await p.then(
    (ok) => {
      if (ok instanceof AgentClientV2) cleanups.push(() => ok.close());
      throw new Error('expected a failure');
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(AgentProtocolError);
  return err as AgentProtocolError;
}

describe.skipIf(!hasOpenssl())('TLS refusals', () => {
  let certs: TestCerts;
  let port: number;
  beforeAll(async () => {
    certs = testCerts();
  });
  async function mtlsServer() {
    const server = new GrpcAgentServerV2(
      { capabilities: caps },
      { tls: { cert: certs.serverCert, key: certs.serverKey, ca: certs.caCert } },
    );
    cleanups.push(() => server.forceShutdown());
    port = (await server.listen('127.0.0.1:0')).port;
  }

  test('a server certificate from another CA', async () => {
    await mtlsServer();
    const err = await failure(
      AgentClientV2.connectWithTls(
        'fail-agent',
        `localhost:${port}`,
        { ca: certs.otherCaCert, cert: certs.clientCert, key: certs.clientKey },
        { timeoutMs: 10_000 },
      ),
    );
    expect(err.code).toBe('CONNECTION_FAILED');
    expect(err.message).toMatch(/TLS/);
    expect(err.message).toMatch(/certificate/i);
  });

  test('a server name the certificate does not cover', async () => {
    await mtlsServer();
    const err = await failure(
      AgentClientV2.connectWithTls(
        'fail-agent',
        `localhost:${port}`,
        {
          ca: certs.caCert,
          cert: certs.clientCert,
          key: certs.clientKey,
          servername: 'not-the-agent.example',
        },
        { timeoutMs: 10_000 },
      ),
    );
    expect(err.code).toBe('CONNECTION_FAILED');
    expect(err.message).toMatch(/TLS/);
    expect(err.message).toMatch(/altnames|certificate/i);
  });

  test('servername is what gets verified', async () => {
    await mtlsServer();
    // 127.0.0.1 is in the certificate, so overriding the name to "localhost" for a
    // target the certificate would also accept proves the override is used
    const t = await AgentClientV2.connectWithTls(
      'fail-agent',
      `127.0.0.1:${port}`,
      {
        ca: certs.paths.caCert,
        cert: certs.paths.clientCert,
        key: certs.paths.clientKey,
        servername: 'localhost',
      },
      { timeoutMs: 10_000 },
    );
    cleanups.push(() => t.close());
    expect(await t.ping()).toBeGreaterThanOrEqual(0);
  });

  test('no client certificate when the agent requires one', async () => {
    await mtlsServer();
    const err = await failure(
      AgentClientV2.connectWithTls(
        'fail-agent',
        `localhost:${port}`,
        { ca: certs.caCert },
        { timeoutMs: 10_000 },
      ),
    );
    expect(['CONNECTION_FAILED', 'HANDSHAKE_FAILED']).toContain(err.code);
    expect(err.message).toMatch(/TLS/);
    expect(err.message).toMatch(/certificate/i);
  });

  test('a client certificate from another CA', async () => {
    // a second agent that trusts only the unrelated CA for client certificates
    const server = new GrpcAgentServerV2(
      { capabilities: caps },
      { tls: { cert: certs.serverCert, key: certs.serverKey, ca: certs.otherCaCert } },
    );
    cleanups.push(() => server.forceShutdown());
    const { port } = await server.listen('127.0.0.1:0');
    const err = await failure(
      AgentClientV2.connectWithTls(
        'fail-agent',
        `localhost:${port}`,
        { ca: certs.caCert, cert: certs.clientCert, key: certs.clientKey },
        { timeoutMs: 10_000 },
      ),
    );
    expect(err.code).toBe('CONNECTION_FAILED');
    expect(err.message).toMatch(/TLS/);
  });

  test('plaintext client against a TLS agent fails to connect', async () => {
    await mtlsServer();
    const err = await failure(
      AgentClientV2.connect('fail-agent', `127.0.0.1:${port}`, { timeoutMs: 10_000 }),
    );
    expect(err.code).toBe('CONNECTION_FAILED');
  });
});

describe('connection failures', () => {
  test('an agent that dies mid-stream fails pending calls at once', async () => {
    const server = new GrpcAgentServerV2({
      capabilities: caps,
      onRequestHeaders: () => new Promise(() => undefined), // never answers
    });
    const { address } = await server.listen('127.0.0.1:0');
    const t = await AgentClientV2.connect('fail-agent', address, { timeoutMs: 60_000 });
    cleanups.push(() => t.close());
    const closed = new Promise<AgentProtocolError | undefined>((r) => t.once('close', r));
    const pending = Array.from({ length: 5 }, (_, i) =>
      t.sendRequestHeaders(bareRequest(`dying-${i}`)).catch((e: unknown) => e),
    );
    await vi.waitFor(() => expect(t.inFlight).toBe(5));
    const started = Date.now();
    server.forceShutdown();
    const errors = await Promise.all(pending);
    // well before the 60 s call timeout (generous bound: only a hang guard)
    expect(Date.now() - started).toBeLessThan(20_000);
    for (const e of errors) {
      expect(e).toBeInstanceOf(AgentProtocolError);
      expect((e as AgentProtocolError).code).toBe('CONNECTION_CLOSED');
    }
    const closeErr = await closed;
    expect(closeErr?.code).toBe('CONNECTION_CLOSED');
    expect(t.isHealthy()).toBe(false);
    await expect(t.ping()).rejects.toMatchObject({ code: 'CONNECTION_CLOSED' });
  });

  test('a refused handshake is HANDSHAKE_FAILED with the agent’s reason', async () => {
    const server = new GrpcAgentServerV2({
      capabilities: caps,
      onHandshake: () => ({ accept: false, error: 'proxy not on the allow-list' }),
    });
    cleanups.push(() => server.forceShutdown());
    const { address } = await server.listen('127.0.0.1:0');
    const err = await failure(AgentClientV2.connect('fail-agent', address, { timeoutMs: 10_000 }));
    expect(err.code).toBe('HANDSHAKE_FAILED');
    expect(err.message).toContain('proxy not on the allow-list');
  });

  test('nothing listening is CONNECTION_FAILED', async () => {
    const server = new GrpcAgentServerV2({ capabilities: caps });
    const { address } = await server.listen('127.0.0.1:0');
    server.forceShutdown();
    const err = await failure(AgentClientV2.connect('fail-agent', address, { timeoutMs: 10_000 }));
    expect(err.code).toBe('CONNECTION_FAILED');
  });

  test('a gRPC server without the agent service is CONNECTION_FAILED naming ProcessStream', async () => {
    const server = new Server();
    cleanups.push(() => server.forceShutdown());
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (e, p) =>
        e ? reject(e) : resolve(p),
      ),
    );
    const err = await failure(
      AgentClientV2.connect('fail-agent', `127.0.0.1:${port}`, { timeoutMs: 10_000 }),
    );
    expect(err.code).toBe('CONNECTION_FAILED');
    expect(err.message).toContain('ProcessStream');
  });

  test('an agent that never answers the handshake times out', async () => {
    const server = new Server();
    cleanups.push(() => server.forceShutdown());
    server.register(
      '/zentinel.agent.v2.AgentServiceV2/ProcessStream',
      (call: ServerDuplexStream<Buffer, Buffer>) => {
        call.on('data', () => undefined);
        call.on('error', () => undefined);
      },
      (b: Buffer) => b,
      (b: Buffer) => b,
      'bidi',
    );
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (e, p) =>
        e ? reject(e) : resolve(p),
      ),
    );
    const err = await failure(
      AgentClientV2.connect('fail-agent', `127.0.0.1:${port}`, { connectTimeoutMs: 300 }),
    );
    expect(err.code).toBe('TIMEOUT');
    expect(err.message).toContain('handshake');
  });

  test('an unreadable certificate path is INVALID_ARGUMENT naming the field', async () => {
    const err = await failure(
      AgentClientV2.connectWithTls('a', 'localhost:1', { ca: '/nonexistent/ca.pem' }),
    );
    expect(err.code).toBe('INVALID_ARGUMENT');
    expect(err.message).toContain('tls.ca');
  });

  test('requests after close reject with CONNECTION_CLOSED', async () => {
    const server = new GrpcAgentServerV2({ capabilities: caps, onRequestHeaders: () => allow() });
    cleanups.push(() => server.forceShutdown());
    const { address } = await server.listen('127.0.0.1:0');
    const t = await AgentClientV2.connect('fail-agent', address);
    await t.close();
    await expect(t.sendRequestHeaders(bareRequest('late', ''))).rejects.toMatchObject({
      code: 'CONNECTION_CLOSED',
    });
  });
});
