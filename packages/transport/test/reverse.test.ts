import { createServer } from 'node:net';
import { AgentProtocolError } from '@picket/protocol';
import { connectReverse, type ReverseAgent } from '@picket/reverse';
import { silentLogger } from '@picket/uds';
import { afterEach, describe, expect, it } from 'vitest';
import { createPool, V2Transport } from '../src/index.js';
import { Closer, echo, headers, roundTrip, setHeader, tempDir, testCerts } from './helpers.js';

const closer = new Closer();
afterEach(() => closer.closeAll());

/** An agent dialling `endpoint` (the listener's address) as `agentId`. */
function dial(
  endpoint: string,
  agentId: string,
  extra: Partial<Parameters<typeof connectReverse>[0]> = {},
): ReverseAgent {
  const agent = connectReverse({
    endpoint,
    agentId,
    handler: echo(agentId),
    logger: silentLogger,
    reconnect: { initialDelayMs: 20, maxDelayMs: 200 },
    ...extra,
  });
  return closer.add(agent, (a) => a.stop());
}

/** The proxy's text of the first registration it refuses (dial failures are skipped). */
function refusal(agent: ReverseAgent): Promise<string> {
  return new Promise((resolve) => {
    const on = (e: AgentProtocolError, info: { rejected: boolean }) => {
      if (!info.rejected) return;
      agent.off('registrationFailed', on);
      resolve(e.message);
    };
    agent.on('registrationFailed', on);
  });
}

/** Retries `fn` until it stops throwing (hang guard only). */
async function eventually<T>(fn: () => Promise<T> | T, ms = 10_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if (Date.now() > end) throw err;
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}

describe('V2Transport.connect with a reverse endpoint', () => {
  it('reverse+unix: binds, and resolves with the first registration of that agent', async () => {
    const tmp = closer.add(tempDir(), (d) => d.cleanup());
    const path = tmp.path('agents.sock');
    const pending = V2Transport.connect('rev-uds', `reverse+unix:${path}`, {
      connectTimeoutMs: 10_000,
      logger: silentLogger,
    });
    // the listener binds before the agent dials; the agent retries until it is there
    dial(`unix:${path}`, 'rev-uds');
    const t = closer.add(await pending, (x) => x.close());
    expect(t.kind).toBe('reverse');
    expect(t.agentId).toBe('rev-uds');
    expect(setHeader(await roundTrip(t), 'X-Echo-Agent')).toBe('rev-uds/1.0');
  });

  it('reverse+unix: close() resolves once the listener released its path (it can be bound again at once)', async () => {
    const tmp = closer.add(tempDir(), (d) => d.cleanup());
    const path = tmp.path('again.sock');
    for (let round = 0; round < 5; round++) {
      const pending = V2Transport.connect('rev-again', `reverse+unix:${path}`, {
        connectTimeoutMs: 10_000,
        logger: silentLogger,
      });
      const agent = dial(`unix:${path}`, 'rev-again');
      const t = await pending;
      await agent.stop();
      await t.close();
      // the socket file is gone: a plain listener binds the same path without EADDRINUSE
      const server = createServer();
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(path, resolve);
      });
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  it('reverse+tcp:// refuses other agent ids and takes the right one', async () => {
    let bound!: (address: string) => void;
    const listening = new Promise<string>((resolve) => (bound = resolve));
    const pending = V2Transport.connect('rev-tcp', 'reverse+tcp://127.0.0.1:0', {
      connectTimeoutMs: 10_000,
      logger: silentLogger,
      reverse: { onListening: bound },
    });
    const address = await listening;
    expect(address).toMatch(/^127\.0\.0\.1:[1-9]\d*$/);
    const stranger = dial(`tcp://${address}`, 'stranger');
    const refused = refusal(stranger);
    dial(`tcp://${address}`, 'rev-tcp');
    const t = closer.add(await pending, (x) => x.close());
    expect(t.agentId).toBe('rev-tcp');
    expect(setHeader(await roundTrip(t), 'X-Echo-Agent')).toBe('rev-tcp/1.0');
    expect(await refused).toContain('stranger');
  });

  it('times out with TIMEOUT naming the endpoint when the agent never registers', async () => {
    const tmp = closer.add(tempDir(), (d) => d.cleanup());
    const endpoint = `reverse+unix:${tmp.path('nobody.sock')}`;
    const err = await V2Transport.connect('nobody', endpoint, {
      connectTimeoutMs: 200,
      logger: silentLogger,
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AgentProtocolError);
    expect((err as AgentProtocolError).code).toBe('TIMEOUT');
    expect((err as AgentProtocolError).message).toContain(tmp.path('nobody.sock'));
  });

  it('reverse+tls:// with a token: the agent verifies the listener and presents its token', async () => {
    const c = testCerts();
    let bound!: (address: string) => void;
    const listening = new Promise<string>((resolve) => (bound = resolve));
    const pending = V2Transport.connect('rev-tls', 'reverse+tls://127.0.0.1:0', {
      connectTimeoutMs: 10_000,
      logger: silentLogger,
      reverse: {
        tls: { cert: c.serverCert, key: c.serverKey },
        tokens: ['s3cret'],
        onListening: bound,
      },
    });
    const address = await listening;
    const wrong = dial(`tls://${address}`, 'rev-tls', {
      authToken: 'wrong',
      tls: { ca: c.ca, servername: 'localhost' },
    });
    const refused = refusal(wrong);
    expect(await refused).toContain('Authentication failed');
    await wrong.stop();
    dial(`tls://${address}`, 'rev-tls', {
      authToken: 's3cret',
      tls: { ca: c.ca, servername: 'localhost' },
    });
    const t = closer.add(await pending, (x) => x.close());
    expect(setHeader(await roundTrip(t), 'X-Echo-Agent')).toBe('rev-tls/1.0');
  });

  it('reverse+tls:// without reverse.tls is INVALID_ARGUMENT', async () => {
    const err = await V2Transport.connect('x', 'reverse+tls://127.0.0.1:0', {
      connectTimeoutMs: 100,
    }).catch((e: unknown) => e);
    expect((err as AgentProtocolError).code).toBe('INVALID_ARGUMENT');
    expect((err as AgentProtocolError).message).toContain('reverse.tls');
  });
});

describe('createPool with reverse endpoints', () => {
  it('one shared UDS listener serves two agents; each joins the pool under its name', async () => {
    const tmp = closer.add(tempDir(), (d) => d.cleanup());
    const path = tmp.path('shared.sock');
    const pool = closer.add(
      createPool({ healthCheckIntervalMs: 0, requestTimeoutMs: 5_000, logger: silentLogger }),
      (p) => p.close({ drainTimeoutMs: 0 }),
    );
    expect(await pool.addAgent('waf', `reverse+unix:${path}`, { connectionsPerAgent: 2 })).toBe(0);
    await pool.addAgent('auth', `reverse+unix:${path}`, {
      agentId: 'auth-agent-1',
      connectionsPerAgent: 1,
    });
    expect(pool.reverseListeners()).toEqual([
      { endpoint: `reverse+unix:${path}`, address: path, agents: ['waf', 'auth'] },
    ]);
    // registered but not yet connected: calls get the failure mode, not "unknown agent"
    const early = await pool.sendRequestHeaders('waf', headers('/early'));
    expect(early.decision).toEqual(expect.objectContaining({ block: expect.anything() }));
    expect(early.audit.reason_codes).toContain('AGENT_UNAVAILABLE');

    dial(`unix:${path}`, 'waf', { connections: 2 });
    dial(`unix:${path}`, 'auth-agent-1');
    await eventually(() => {
      expect(pool.agentStats('waf')?.activeConnections).toBe(2);
      expect(pool.agentStats('auth')?.activeConnections).toBe(1);
    });
    const w = await pool.sendRequestHeaders('waf', headers('/w'));
    expect(setHeader(w, 'X-Echo-Agent')).toBe('waf/1.0');
    const a = await pool.sendRequestHeaders('auth', headers('/a'));
    expect(setHeader(a, 'X-Echo-Agent')).toBe('auth-agent-1/1.0');
  });

  it('a dropped reverse connection is replaced when the agent dials in again', async () => {
    const tmp = closer.add(tempDir(), (d) => d.cleanup());
    const path = tmp.path('again.sock');
    const pool = closer.add(createPool({ healthCheckIntervalMs: 0, logger: silentLogger }), (p) =>
      p.close({ drainTimeoutMs: 0 }),
    );
    await pool.addAgent('echo', `reverse+unix:${path}`, { connectionsPerAgent: 1 });
    const first = dial(`unix:${path}`, 'echo');
    await eventually(() => expect(pool.agentStats('echo')?.activeConnections).toBe(1));
    await first.stop();
    await eventually(() => expect(pool.agentStats('echo')?.activeConnections).toBe(0));
    dial(`unix:${path}`, 'echo');
    await eventually(() => expect(pool.agentStats('echo')?.activeConnections).toBe(1));
    expect(setHeader(await pool.sendRequestHeaders('echo', headers()), 'X-Echo-Agent')).toBe(
      'echo/1.0',
    );
  });

  it('refuses registrations beyond connectionsPerAgent with success:false', async () => {
    const tmp = closer.add(tempDir(), (d) => d.cleanup());
    const path = tmp.path('cap.sock');
    const pool = closer.add(createPool({ healthCheckIntervalMs: 0, logger: silentLogger }), (p) =>
      p.close({ drainTimeoutMs: 0 }),
    );
    await pool.addAgent('capped', `reverse+unix:${path}`, { connectionsPerAgent: 2 });
    const agent = dial(`unix:${path}`, 'capped', { connections: 3 });
    const refused = refusal(agent);
    expect(await refused).toContain('already has the 2 connection(s)');
    await eventually(() => expect(pool.agentStats('capped')?.activeConnections).toBe(2));
    expect(agent.connected).toBe(2);
  });

  it('removeAgent of the last agent closes the listener; close() closes the rest', async () => {
    const tmp = closer.add(tempDir(), (d) => d.cleanup());
    const pool = createPool({ healthCheckIntervalMs: 0, logger: silentLogger });
    await pool.addAgent('a', `reverse+unix:${tmp.path('a.sock')}`);
    await pool.addAgent('b', `reverse+tcp://127.0.0.1:0`);
    expect(pool.reverseListeners()).toHaveLength(2);
    expect(await pool.removeAgent('a')).toBe(true);
    expect(pool.reverseListeners().map((l) => l.agents)).toEqual([['b']]);
    await pool.close({ drainTimeoutMs: 0 });
    expect(pool.reverseListeners()).toEqual([]);
  });

  it('refuses agents sharing a listener with different settings', async () => {
    const tmp = closer.add(tempDir(), (d) => d.cleanup());
    const path = tmp.path('conflict.sock');
    const pool = closer.add(createPool({ healthCheckIntervalMs: 0, logger: silentLogger }), (p) =>
      p.close({ drainTimeoutMs: 0 }),
    );
    await pool.addAgent('a', `reverse+unix:${path}`, { reverse: { tokens: ['t1'] } });
    const err = await pool
      .addAgent('b', `reverse+unix:${path}`, { reverse: { tokens: ['t2'] } })
      .catch((e: unknown) => e);
    expect((err as AgentProtocolError).code).toBe('INVALID_ARGUMENT');
    expect(pool.hasAgent('b')).toBe(false);
  });
});
