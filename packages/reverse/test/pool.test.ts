import { cid, requestHeaders } from '@picket/compliance';
import { AgentPool } from '@picket/pool';
import { afterEach, describe, expect, it } from 'vitest';
import { connectReverse, type ReverseAgent, ReverseConnectionListener } from '../src/index.js';
import { captureLogger, stampHandler, tempSocket, until } from './helpers.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function setup(attach: 'config' | 'method') {
  const sock = tempSocket();
  // No probes: the test is about membership, not health.
  const pool = new AgentPool({ healthCheckIntervalMs: 0, failureMode: 'throw' });
  const listener = await ReverseConnectionListener.bindUds(sock.path, {
    logger: captureLogger(),
    ...(attach === 'config' ? { pool } : {}),
  });
  if (attach === 'method') listener.attachPool(pool);
  cleanups.push(async () => {
    await listener.close();
    await pool.close({ drainTimeoutMs: 0 });
    sock.cleanup();
  });
  return { pool, listener };
}

function start(endpoint: string, connections = 1): ReverseAgent {
  const a = connectReverse({
    endpoint,
    agentId: 'waf',
    handler: stampHandler('waf'),
    connections,
    reconnect: { initialDelayMs: 10, maxDelayMs: 50 },
    logger: captureLogger(),
  });
  cleanups.push(() => a.stop());
  return a;
}

const poolConnections = (pool: AgentPool): number => pool.agentStats('waf')?.activeConnections ?? 0;

async function headerVia(pool: AgentPool): Promise<string | undefined> {
  const r = await pool.sendRequestHeaders('waf', requestHeaders(cid(), '/'), { timeoutMs: 5000 });
  for (const op of r.request_headers)
    if ('set' in op && op.set.name === 'x-connection') return op.set.value;
  return undefined;
}

describe('with a pool attached', () => {
  for (const attach of ['config', 'method'] as const) {
    it(`adds registered connections (pool via ${attach}) and the pool drops dead ones itself`, async () => {
      const { pool, listener } = await setup(attach);
      const a = start(listener.endpoint, 2);
      await a.ready({ timeoutMs: 5000 });
      await until(() => poolConnections(pool) === 2);
      const stats = pool.agentStats('waf');
      expect(stats?.connections.every((c) => c.reverse && c.kind === 'reverse')).toBe(true);
      const live = new Set(listener.list('waf').map((c) => c.connectionId));
      expect(live.has((await headerVia(pool)) as string)).toBe(true);

      // The agent goes away: the pool notices the close and removes the connections.
      await a.stop();
      await until(() => poolConnections(pool) === 0, 5000, 'the pool to drop the connections');
      expect(listener.connectionCount).toBe(0);
    });
  }

  it('an agent restarted 20 times is re-registered every time; the pool ends with the live connections', async () => {
    const { pool, listener } = await setup('config');
    let registered = 0;
    listener.on('connection', () => registered++);
    let agent = start(listener.endpoint, 2);
    for (let i = 0; i < 20; i++) {
      await agent.ready({ timeoutMs: 5000 });
      const mine = new Set(
        agent
          .status()
          .slots.map((s) => s.connectionId)
          .filter((x) => x !== undefined),
      );
      expect(mine.size).toBe(2);
      // The pool reaches this instance's connections (old ones may still be closing).
      await until(
        () => [...mine].every((id) => listener.list('waf').some((c) => c.connectionId === id)),
        5000,
        `restart ${i}: registered at the listener`,
      );
      if (i % 2 === 0) {
        await agent.stop();
      } else {
        // A crash: sockets die without a goodbye, the process is gone (no reconnects).
        for (const c of agent.connections) c.destroy();
        await agent.stop();
      }
      agent = start(listener.endpoint, 2);
    }
    await agent.ready({ timeoutMs: 5000 });
    expect(registered).toBe(42);
    await until(
      () => listener.connectionCount === 2 && poolConnections(pool) === 2,
      5000,
      'only the live connections to remain',
    );
    const live = new Set(listener.list('waf').map((c) => c.connectionId));
    for (let i = 0; i < 4; i++) expect(live.has((await headerVia(pool)) as string)).toBe(true);
  });
});
