import { AgentPool } from '@picket/pool';
import { AgentProtocolError, decisionKind } from '@picket/protocol';
import { connectReverse } from '@picket/reverse';
import { AgentClientV2Uds, silentLogger } from '@picket/uds';
import { afterEach, describe, expect, it } from 'vitest';
import { createPool, TransportPool } from '../src/index.js';
import {
  Closer,
  echo,
  headers,
  setHeader,
  startGrpc,
  startUds,
  startV1,
  tempDir,
  testCerts,
} from './helpers.js';

const closer = new Closer();
afterEach(() => closer.closeAll());

async function eventually(check: () => void, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  for (;;) {
    try {
      check();
      return;
    } catch (err) {
      if (Date.now() > end) throw err;
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}

function newPool(options: ConstructorParameters<typeof TransportPool>[0] = {}): TransportPool {
  const pool = createPool({
    healthCheckIntervalMs: 0,
    requestTimeoutMs: 5_000,
    connectionsPerAgent: 2,
    logger: silentLogger,
    ...options,
  });
  return closer.add(pool, (p) => p.close({ drainTimeoutMs: 0 }));
}

describe('createPool', () => {
  it('is an AgentPool', () => {
    const pool = newPool();
    expect(pool).toBeInstanceOf(AgentPool);
    expect(pool).toBeInstanceOf(TransportPool);
  });

  it('mixes UDS, v1, gRPC, gRPC over TLS and reverse agents, and routes each call to its agent', async () => {
    const c = testCerts();
    const tmp = closer.add(tempDir(), (d) => d.cleanup());
    closer.add(await startUds(tmp.path('uds.sock'), echo('uds-agent')), (s) =>
      s.close({ drainTimeoutMs: 0 }),
    );
    closer.add(await startV1(tmp.path('v1.sock'), echo('v1-agent')), (s) => s.close());
    const grpc = await startGrpc(echo('grpc-agent'));
    closer.add(grpc.server, (s) => s.close({ drainTimeoutMs: 0 }));
    const tls = await startGrpc(echo('tls-agent'), { mtls: true });
    closer.add(tls.server, (s) => s.close({ drainTimeoutMs: 0 }));

    // pool-wide TLS defaults: used by the https:// agent, ignored by the http:// one
    const pool = newPool({ tls: { ca: c.ca, cert: c.clientCert, key: c.clientKey } });
    expect(await pool.addAgent('local', tmp.path('uds.sock'))).toBe(2);
    expect(await pool.addAgent('legacy', `v1+unix:${tmp.path('v1.sock')}`)).toBe(2);
    expect(await pool.addAgent('remote', `http://127.0.0.1:${grpc.port}`)).toBe(2);
    expect(await pool.addAgent('secure', `https://localhost:${tls.port}`)).toBe(2);
    expect(
      await pool.addAgent('dialer', `reverse+unix:${tmp.path('rev.sock')}`, {
        connectionsPerAgent: 1,
      }),
    ).toBe(0);
    const agent = connectReverse({
      endpoint: `unix:${tmp.path('rev.sock')}`,
      agentId: 'dialer',
      handler: echo('dialer'),
      logger: silentLogger,
    });
    closer.add(agent, (a) => a.stop());
    await eventually(() => expect(pool.agentStats('dialer')?.activeConnections).toBe(1));

    const expected: Record<string, [string, string]> = {
      local: ['uds', 'uds-agent'],
      legacy: ['v1', 'v1-agent'],
      remote: ['grpc', 'grpc-agent'],
      secure: ['grpc', 'tls-agent'],
      dialer: ['reverse', 'dialer'],
    };
    for (const [name, [kind, agentId]] of Object.entries(expected)) {
      expect(pool.endpoint(name)?.kind).toBe(kind);
      for (let i = 0; i < 3; i++) {
        const r = await pool.sendRequestHeaders(name, headers(`/${name}/${i}`));
        expect(decisionKind(r.decision)).toBe('allow');
        expect(setHeader(r, 'X-Echo-Agent')).toBe(`${agentId}/1.0`);
        expect(setHeader(r, 'X-Echo-Path')).toBe(`/${name}/${i}`);
      }
    }
    const stats = Object.fromEntries(pool.stats().map((s) => [s.agentId, s]));
    for (const name of Object.keys(expected)) {
      expect(stats[name]?.totalRequests).toBe(3);
      expect(stats[name]?.isHealthy).toBe(true);
    }
    expect(pool.metrics()).toContain('picket_pool_requests_total');
  });

  it('keeps redialling an agent that is not up yet, and uses it once it is', async () => {
    const tmp = closer.add(tempDir(), (d) => d.cleanup());
    const pool = newPool({ reconnect: { initialDelayMs: 10, maxDelayMs: 50 } });
    expect(await pool.addAgent('late', tmp.path('late.sock'), { connectionsPerAgent: 1 })).toBe(0);
    const early = await pool.sendRequestHeaders('late', headers());
    expect(early.audit.reason_codes).toContain('AGENT_UNAVAILABLE');
    closer.add(await startUds(tmp.path('late.sock'), echo('late')), (s) =>
      s.close({ drainTimeoutMs: 0 }),
    );
    await eventually(() => expect(pool.agentStats('late')?.activeConnections).toBe(1));
    const r = await pool.sendRequestHeaders('late', headers());
    expect(setHeader(r, 'X-Echo-Agent')).toBe('late/1.0');
  });

  it('still takes a connect factory, as AgentPool does', async () => {
    const tmp = closer.add(tempDir(), (d) => d.cleanup());
    closer.add(await startUds(tmp.path('f.sock'), echo('factory')), (s) =>
      s.close({ drainTimeoutMs: 0 }),
    );
    const pool = newPool();
    await pool.addAgent('f', () =>
      AgentClientV2Uds.connect('f', tmp.path('f.sock'), { logger: silentLogger }),
    );
    expect(pool.endpoint('f')).toBeUndefined();
    expect(setHeader(await pool.sendRequestHeaders('f', headers()), 'X-Echo-Agent')).toBe(
      'factory/1.0',
    );
  });

  it('passes agentId to the transport and keeps the pool name', async () => {
    const tmp = closer.add(tempDir(), (d) => d.cleanup());
    closer.add(await startUds(tmp.path('id.sock'), echo('real-id')), (s) =>
      s.close({ drainTimeoutMs: 0 }),
    );
    const pool = newPool();
    await pool.addAgent('alias', `unix:${tmp.path('id.sock')}`, { agentId: 'real-id' });
    expect(pool.agentIds()).toEqual(['alias']);
    expect(pool.capabilities('alias')?.agent_id).toBe('real-id');
  });

  it('rejects a bad endpoint with INVALID_ARGUMENT and adds nothing', async () => {
    const pool = newPool();
    const err = await pool.addAgent('bad', 'grpc+quic://agent:443').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AgentProtocolError);
    expect((err as AgentProtocolError).code).toBe('INVALID_ARGUMENT');
    expect((err as AgentProtocolError).message).toContain('accepted endpoint forms');
    expect(pool.hasAgent('bad')).toBe(false);
  });

  it('rejects a second agent with the same name', async () => {
    const tmp = closer.add(tempDir(), (d) => d.cleanup());
    const pool = newPool();
    await pool.addAgent('dup', tmp.path('dup.sock'), { connectionsPerAgent: 1 });
    const err = await pool.addAgent('dup', tmp.path('dup.sock')).catch((e: unknown) => e);
    expect((err as AgentProtocolError).code).toBe('INVALID_ARGUMENT');
  });

  it('removeAgent forgets the endpoint', async () => {
    const tmp = closer.add(tempDir(), (d) => d.cleanup());
    const pool = newPool();
    await pool.addAgent('gone', tmp.path('gone.sock'), { connectionsPerAgent: 1 });
    expect(pool.endpoint('gone')?.kind).toBe('uds');
    expect(await pool.removeAgent('gone')).toBe(true);
    expect(pool.endpoint('gone')).toBeUndefined();
    expect(pool.hasAgent('gone')).toBe(false);
  });
});
