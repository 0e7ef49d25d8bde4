import { AgentProtocolError, type AgentTransport } from '@picket/protocol';
import { afterEach, describe, expect, it } from 'vitest';
import { V2Transport } from '../src/index.js';
import {
  Closer,
  echo,
  roundTrip,
  setHeader,
  startGrpc,
  startUds,
  startV1,
  tempDir,
  testCerts,
} from './helpers.js';

const closer = new Closer();
afterEach(() => closer.closeAll());

const silent = { debug() {}, info() {}, warn() {}, error() {} };

async function connect(agentId: string, endpoint: string, options = {}): Promise<AgentTransport> {
  const t = await V2Transport.connect(agentId, endpoint, { logger: silent, ...options });
  return closer.add(t, (x) => x.close());
}

async function rejection(p: Promise<unknown>): Promise<AgentProtocolError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(AgentProtocolError);
    return err as AgentProtocolError;
  }
  throw new Error('expected a rejection');
}

describe('V2Transport.connect over UDS', () => {
  it.each([
    ['a plain path', (p: string) => p],
    ['unix:/path', (p: string) => `unix:${p}`],
    ['unix:///path', (p: string) => `unix://${p}`],
  ])('connects with %s', async (_name, form) => {
    const tmp = closer.add(tempDir(), (d) => d.cleanup());
    const path = tmp.path('agent.sock');
    closer.add(await startUds(path, echo('uds-echo')), (s) => s.close({ drainTimeoutMs: 0 }));
    const t = await connect('uds-echo', form(path), { encodings: ['msgpack', 'json'] });
    expect(t.kind).toBe('uds');
    expect(t.encoding).toBe('msgpack');
    expect(t.capabilities.agent_id).toBe('uds-echo');
    const r = await roundTrip(t, '/uds');
    expect(setHeader(r, 'X-Echo-Agent')).toBe('uds-echo/1.0');
    expect(setHeader(r, 'X-Echo-Path')).toBe('/uds');
    expect(await t.ping()).toBeGreaterThanOrEqual(0);
  });

  it('connects to a relative path ending in .sock', async () => {
    const tmp = closer.add(tempDir(), (d) => d.cleanup());
    closer.add(await startUds(tmp.path('rel.sock'), echo('rel')), (s) =>
      s.close({ drainTimeoutMs: 0 }),
    );
    const cwd = process.cwd();
    process.chdir(tmp.dir);
    try {
      const t = await connect('rel', 'rel.sock');
      expect(setHeader(await roundTrip(t), 'X-Echo-Agent')).toBe('rel/1.0');
    } finally {
      process.chdir(cwd);
    }
  });

  it('fails with CONNECTION_FAILED naming the endpoint when nothing listens', async () => {
    const tmp = closer.add(tempDir(), (d) => d.cleanup());
    const endpoint = tmp.path('dead.sock');
    const e = await rejection(V2Transport.connect('dead', endpoint, { logger: silent }));
    expect(e.code).toBe('CONNECTION_FAILED');
    expect(e.message).toContain(endpoint);
  });
});

describe('V2Transport.connect over legacy v1', () => {
  it('connects with v1+unix: and carries a request', async () => {
    const tmp = closer.add(tempDir(), (d) => d.cleanup());
    const path = tmp.path('legacy.sock');
    closer.add(await startV1(path, echo('v1-echo')), (s) => s.close());
    const t = await connect('v1-echo', `v1+unix:${path}`, { timeoutMs: 5000 });
    expect(t.kind).toBe('v1');
    const r = await roundTrip(t, '/legacy');
    expect(setHeader(r, 'X-Echo-Agent')).toBe('v1-echo/1.0');
  });
});

describe('V2Transport.connect over gRPC', () => {
  it.each([
    ['host:port', (port: number) => `127.0.0.1:${port}`],
    ['http://', (port: number) => `http://127.0.0.1:${port}`],
    ['grpc://', (port: number) => `grpc://127.0.0.1:${port}`],
    ['dns:///', (port: number) => `dns:///127.0.0.1:${port}`],
  ])('connects in plaintext with %s', async (_name, form) => {
    const { server, port } = await startGrpc(echo('grpc-echo'));
    closer.add(server, (s) => s.close({ drainTimeoutMs: 0 }));
    const t = await connect('grpc-echo', form(port), { timeoutMs: 5000 });
    expect(t.kind).toBe('grpc');
    expect(t.capabilities.agent_id).toBe('grpc-echo');
    const r = await roundTrip(t, '/grpc');
    expect(setHeader(r, 'X-Echo-Agent')).toBe('grpc-echo/1.0');
    expect(await t.ping()).toBeGreaterThanOrEqual(0);
  });

  it('connects over gRPC on a Unix socket with grpc+unix:', async () => {
    const tmp = closer.add(tempDir(), (d) => d.cleanup());
    const { GrpcAgentServerV2 } = await import('@picket/grpc');
    const server = closer.add(new GrpcAgentServerV2(echo('grpc-unix')), (s) =>
      s.close({ drainTimeoutMs: 0 }),
    );
    await server.listen(`unix:${tmp.path('grpc.sock')}`);
    const t = await connect('grpc-unix', `grpc+unix:${tmp.path('grpc.sock')}`);
    expect(t.kind).toBe('grpc');
    expect(setHeader(await roundTrip(t), 'X-Echo-Agent')).toBe('grpc-unix/1.0');
  });

  it('connects over TLS with https:// and the test CA (servername for the IP)', async () => {
    const c = testCerts();
    const { server, port } = await startGrpc(echo('tls-echo'), {});
    closer.add(server, (s) => s.close({ drainTimeoutMs: 0 }));
    const t = await connect('tls-echo', `https://127.0.0.1:${port}`, {
      tls: { ca: c.ca, servername: 'localhost' },
    });
    expect(setHeader(await roundTrip(t), 'X-Echo-Agent')).toBe('tls-echo/1.0');
  });

  it('connects with mTLS: grpcs:// with a client certificate', async () => {
    const c = testCerts();
    const { server, port } = await startGrpc(echo('mtls-echo'), { mtls: true });
    closer.add(server, (s) => s.close({ drainTimeoutMs: 0 }));
    const t = await connect('mtls-echo', `grpcs://localhost:${port}`, {
      tls: { ca: c.ca, cert: c.clientCert, key: c.clientKey },
    });
    expect(setHeader(await roundTrip(t), 'X-Echo-Agent')).toBe('mtls-echo/1.0');
  });

  it('TLS options turn TLS on for a bare host:port; http:// stays plaintext', async () => {
    const c = testCerts();
    const tlsServer = await startGrpc(echo('bare-tls'), {});
    closer.add(tlsServer.server, (s) => s.close({ drainTimeoutMs: 0 }));
    const t = await connect('bare-tls', `localhost:${tlsServer.port}`, { tls: { ca: c.ca } });
    expect(setHeader(await roundTrip(t), 'X-Echo-Agent')).toBe('bare-tls/1.0');

    const plain = await startGrpc(echo('plain'));
    closer.add(plain.server, (s) => s.close({ drainTimeoutMs: 0 }));
    const p = await connect('plain', `http://127.0.0.1:${plain.port}`, { tls: { ca: c.ca } });
    expect(setHeader(await roundTrip(p), 'X-Echo-Agent')).toBe('plain/1.0');
  });

  it('refuses a TLS agent whose certificate is not trusted', async () => {
    const { server, port } = await startGrpc(echo('untrusted'), {});
    closer.add(server, (s) => s.close({ drainTimeoutMs: 0 }));
    const e = await rejection(
      V2Transport.connect('untrusted', `https://localhost:${port}`, {
        connectTimeoutMs: 3000,
        logger: silent,
      }),
    );
    expect(['CONNECTION_FAILED', 'HANDSHAKE_FAILED', 'TIMEOUT', 'UNAVAILABLE']).toContain(e.code);
    expect(e.message).toContain(`https://localhost:${port}`);
  });

  it('fails naming the endpoint when nothing listens on the port', async () => {
    const { server, port } = await startGrpc(echo('gone'));
    await server.close({ drainTimeoutMs: 0 });
    const endpoint = `127.0.0.1:${port}`;
    const e = await rejection(
      V2Transport.connect('gone', endpoint, { connectTimeoutMs: 3000, logger: silent }),
    );
    expect(e.message).toContain(endpoint);
  });
});

describe('V2Transport.connect: bad endpoints', () => {
  it('rejects an unknown scheme with INVALID_ARGUMENT listing the accepted forms', async () => {
    const e = await rejection(V2Transport.connect('x', 'ftp://x'));
    expect(e.code).toBe('INVALID_ARGUMENT');
    expect(e.message).toContain('unknown scheme "ftp://"');
    expect(e.message).toContain('reverse+tcp://host:port');
  });

  it('V2Transport.detect is detectTransport', () => {
    expect(V2Transport.detect('/a.sock').kind).toBe('uds');
  });
});
