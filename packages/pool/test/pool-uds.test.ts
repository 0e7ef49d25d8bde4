/**
 * The pool against real agents on Unix sockets (UdsAgentServerV2 in a temp dir).
 * Short real intervals; eventual behaviour is asserted by polling, never timing.
 */
import { type AgentResponse, allow, decisionKind } from '@picket/protocol';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AgentPool, type LoadBalanceStrategy, type PoolOptions } from '../src/index.js';
import { bodyChunk, complete, headers, until } from './fake-transport.js';
import { deferred, RecordingAgent, tempDir } from './uds-helpers.js';

let tmp: ReturnType<typeof tempDir>;
const agents: RecordingAgent[] = [];
const pools: AgentPool[] = [];

beforeEach(() => {
  tmp = tempDir();
});
afterEach(async () => {
  await Promise.all(pools.splice(0).map((p) => p.close({ drainTimeoutMs: 0 })));
  await Promise.all(agents.splice(0).map((a) => a.server.close({ drainTimeoutMs: 0 })));
  tmp.cleanup();
});

async function agent(id: string): Promise<RecordingAgent> {
  const a = new RecordingAgent(id, tmp.sock(id));
  agents.push(a);
  await a.listen();
  return a;
}

function pool(o: PoolOptions = {}): AgentPool {
  const p = new AgentPool({
    healthCheckIntervalMs: 50,
    pingTimeoutMs: 500,
    reconnect: { initialDelayMs: 20, maxDelayMs: 200 },
    ...o,
  });
  pools.push(p);
  return p;
}

const FAILURE_REASONS = new Set([
  'AGENT_UNAVAILABLE',
  'AGENT_TIMEOUT',
  'AGENT_CIRCUIT_OPEN',
  'AGENT_CONNECTION_CLOSED',
  'AGENT_FLOW_CONTROL_PAUSED',
]);

describe('agent killed under load', () => {
  it('loses no call, opens the breaker, reconnects after restart and gets traffic again', async () => {
    const a = await agent('a');
    const b = await agent('b');
    const p = pool({
      connectionsPerAgent: 2,
      requestTimeoutMs: 2_000,
      circuitBreaker: { failureThreshold: 3, openTimeoutMs: 100, successThreshold: 2 },
    });
    const opened: string[] = [];
    p.on('status', (s) => {
      if (s.type === 'circuit' && s.to === 'open') opened.push(s.agentId);
    });
    expect(await p.addAgent('a', a.connector())).toBe(2);
    expect(await p.addAgent('b', b.connector())).toBe(2);

    let stop = false;
    let n = 0;
    const results: { agent: string; r: AgentResponse }[] = [];
    const worker = async () => {
      while (!stop) {
        const target = n % 2 === 0 ? 'a' : 'b';
        const cid = `load-${n++}`;
        const r = await p.sendRequestHeaders(target, headers(cid));
        results.push({ agent: target, r });
        // give the event loop room so reconnects and probes proceed under load
        await new Promise((res) => setImmediate(res));
      }
    };
    const workers = Array.from({ length: 8 }, worker);
    const guard = setTimeout(() => {
      stop = true;
    }, 15_000);

    await until(() => a.seen.length > 50 && b.seen.length > 50, 'traffic on both agents');
    await a.kill();
    await until(() => p.agentStats('a')!.circuitState === 'open', 'breaker of a opens', 5_000);
    expect(opened).toContain('a');
    expect(p.agentStats('b')!.circuitState).toBe('closed');
    const bBefore = b.seen.length;
    await until(() => b.seen.length > bBefore + 50, 'b keeps serving while a is down');

    await a.restart();
    const before = a.seen.length;
    await until(
      () =>
        a.seen.length > before + 50 &&
        p.agentStats('a')!.healthyConnections === 2 &&
        p.agentStats('a')!.circuitState === 'closed',
      'a reconnected and serving again',
      8_000,
    );
    stop = true;
    clearTimeout(guard);
    await Promise.all(workers);

    // every call resolved: a decision, or the fail-closed stand-in naming why
    expect(results.length).toBe(n);
    for (const { agent: id, r } of results) {
      if (r.decision === 'allow') continue;
      expect(id).toBe('a');
      expect(decisionKind(r.decision)).toBe('block');
      expect(r.audit.tags).toEqual(['fail_closed']);
      expect(FAILURE_REASONS.has(r.audit.reason_codes[0]!)).toBe(true);
    }
    expect(results.filter((x) => x.agent === 'b').every((x) => x.r.decision === 'allow')).toBe(
      true,
    );
    expect(results.some((x) => x.agent === 'a' && x.r.decision !== 'allow')).toBe(true);
    expect(p.agentStats('a')!.reconnects).toBeGreaterThanOrEqual(2);
    // the restarted agent is reached over fresh server-side connections
    const oldConns = new Set(a.seen.slice(0, before).map((s) => s.connectionId));
    const newConns = new Set(a.seen.slice(before).map((s) => s.connectionId));
    expect(newConns.size).toBeGreaterThan(0);
    for (const c of newConns) expect(oldConns.has(c)).toBe(false);
  }, 30_000);
});

describe('distribution per strategy', () => {
  it('round_robin spreads evenly over 4 connections', async () => {
    const a = await agent('rr');
    const p = pool();
    expect(await p.addAgent('rr', a.connector())).toBe(4);
    for (let i = 0; i < 40; i++) await p.sendRequestHeaders('rr', headers(`rr${i}`));
    expect([...a.perConnection().values()]).toEqual([10, 10, 10, 10]);
  });

  it('least_connections prefers the idle connection', async () => {
    const a = await agent('lc');
    const gate = deferred();
    a.decide = async (_t, ctx) => {
      if (ctx.correlationId.startsWith('slow')) await gate.promise;
      return allow();
    };
    const p = pool({ strategy: 'least_connections' });
    await p.addAgent('lc', a.connector());
    const slow = [0, 1, 2].map((i) => p.sendRequestHeaders('lc', headers(`slow${i}`)));
    await until(() => a.seen.length === 3, 'three slow calls arrived');
    for (let i = 0; i < 10; i++) await p.sendRequestHeaders('lc', headers(`fast${i}`));
    const slowConns = a.perConnection((s) => s.cid.startsWith('slow'));
    const fastConns = a.perConnection((s) => s.cid.startsWith('fast'));
    expect(slowConns.size).toBe(3);
    expect(fastConns.size).toBe(1);
    expect(slowConns.has([...fastConns.keys()][0]!)).toBe(false);
    gate.resolve();
    await Promise.all(slow);
  });

  for (const strategy of ['random', 'power_of_two_choices'] as LoadBalanceStrategy[]) {
    it(`${strategy} spreads over every connection`, async () => {
      const a = await agent(strategy);
      const p = pool({ strategy });
      await p.addAgent(strategy, a.connector());
      await Promise.all(
        Array.from({ length: 8 }, async (_, w) => {
          for (let i = 0; i < 25; i++) await p.sendRequestHeaders(strategy, headers(`${w}-${i}`));
        }),
      );
      const per = a.perConnection();
      expect(per.size).toBe(4);
      for (const n of per.values()) expect(n).toBeGreaterThan(5);
    });
  }

  it('health_based avoids a connection whose calls fail', async () => {
    const a = await agent('hb');
    let bad: string | undefined;
    a.decide = (_t, ctx) => {
      bad ??= ctx.connectionId;
      // this connection's requests never get an answer: they time out
      return ctx.connectionId === bad ? new Promise<AgentResponse>(() => {}) : allow();
    };
    const p = pool({
      strategy: 'health_based',
      healthCheckIntervalMs: 0,
      maxConsecutiveErrors: 1_000,
      circuitBreaker: false,
      requestTimeoutMs: 100,
    });
    await p.addAgent('hb', a.connector());
    for (let i = 0; i < 30; i++) await p.sendRequestHeaders('hb', headers(`hb${i}`));
    const per = a.perConnection();
    expect(per.get(bad!)).toBe(1);
    expect(per.size).toBe(4);
  });
});

describe('affinity', () => {
  it('body chunks, response events and completion land on the connection that saw the headers', async () => {
    const a = await agent('af');
    a.decide = async () => {
      await new Promise((r) => setTimeout(r, Math.random() * 3));
      return allow();
    };
    const p = pool({ strategy: 'random' });
    await p.addAgent('af', a.connector());
    await Promise.all(
      Array.from({ length: 40 }, async (_, i) => {
        const cid = `req-${i}`;
        await p.sendRequestHeaders('af', headers(cid));
        // one call per correlation id at a time: the protocol keys replies by it
        for (let k = 0; k < 3; k++) await p.sendRequestBodyChunk('af', bodyChunk(cid, k));
        await p.sendResponseHeaders('af', { correlation_id: cid, status: 200, headers: {} });
        await p.sendResponseBodyChunk('af', {
          correlation_id: cid,
          data: new Uint8Array([1]),
          is_last: true,
          total_size: 1,
          chunk_index: 0,
          bytes_sent: 1,
        });
        await p.sendRequestComplete('af', complete(cid));
      }),
    );
    const byCid = new Map<string, Set<string>>();
    for (const s of a.seen) {
      const set = byCid.get(s.cid) ?? new Set();
      set.add(s.connectionId);
      byCid.set(s.cid, set);
    }
    expect(byCid.size).toBe(40);
    for (const [cid, conns] of byCid) expect([cid, conns.size]).toEqual([cid, 1]);
    expect(a.seen.length).toBe(40 * 7);
    expect(new Set(a.seen.map((s) => s.connectionId)).size).toBeGreaterThan(1);
  });
});

describe('flow control', () => {
  it("an agent's pause diverts traffic to its other connections; all paused applies the gate", async () => {
    const a = await agent('fc');
    const p = pool({ connectionsPerAgent: 2 });
    await p.addAgent('fc', a.connector());
    await p.addAgent('fw', a.connector(), { flowControl: 'wait', flowControlWaitMs: 5_000 });
    const [first] = [...a.server.connections];
    first!.pause();
    await until(
      () => p.agentStats('fc')!.pausedConnections + p.agentStats('fw')!.pausedConnections === 1,
      'pool saw the pause',
    );
    const start = a.seen.length;
    for (let i = 0; i < 20; i++) {
      await p.sendRequestHeaders('fc', headers(`d${i}`));
      await p.sendRequestHeaders('fw', headers(`w${i}`));
    }
    const later = a.seen.slice(start);
    expect(later.length).toBe(40);
    expect(later.some((s) => s.connectionId === first!.id)).toBe(false);

    a.server.pause();
    await until(() => p.agentStats('fc')!.pausedConnections === 2, 'all paused');
    await until(() => p.agentStats('fw')!.pausedConnections === 2, 'all paused (wait agent)');
    const gated = await p.sendRequestHeaders('fc', headers('gated'));
    expect(gated.audit.reason_codes).toEqual(['AGENT_FLOW_CONTROL_PAUSED']);
    expect(p.agentStats('fc')!.circuitState).toBe('closed');
    const waiting = p.sendRequestHeaders('fw', headers('waits'));
    await new Promise((r) => setTimeout(r, 20));
    a.server.resume();
    expect((await waiting).decision).toBe('allow');
    expect(a.seen.some((s) => s.cid === 'gated')).toBe(false);
    expect(a.seen.some((s) => s.cid === 'waits')).toBe(true);
  });
});

describe('flow control policy (the pool decides; the transport only reports the pause)', () => {
  it('fail_open answers allow without calling; wait fails closed after its bound, then resumes', async () => {
    const a = await agent('fp');
    const p = pool({ connectionsPerAgent: 2 });
    await p.addAgent('open', a.connector(), { flowControl: 'fail_open' });
    await p.addAgent('wait', a.connector(), { flowControl: 'wait', flowControlWaitMs: 50 });
    a.server.pause();
    await until(
      () => p.agentStats('open')!.pausedConnections + p.agentStats('wait')!.pausedConnections === 4,
      'the pool saw every pause',
    );
    const open = await p.sendRequestHeaders('open', headers('fo'));
    expect(open.decision).toBe('allow');
    expect(open.audit.tags).toEqual(['fail_open']);
    expect(open.audit.reason_codes).toEqual(['AGENT_FLOW_CONTROL_PAUSED']);
    const waited = await p.sendRequestHeaders('wait', headers('fw'));
    expect(waited.audit.reason_codes).toEqual(['AGENT_FLOW_CONTROL_PAUSED']);
    expect(a.seen.some((s) => s.cid === 'fo' || s.cid === 'fw')).toBe(false);
    expect(p.agentStats('wait')!.circuitState).toBe('closed');

    a.server.resume();
    await until(() => p.agentStats('open')!.pausedConnections === 0, 'resumed');
    const after = await p.sendRequestHeaders('open', headers('fo2'));
    expect(after.audit.tags).not.toContain('fail_open');
    expect(a.seen.some((s) => s.cid === 'fo2')).toBe(true);
  });
});

describe('flow control wait and cancel', () => {
  it("a call waiting for a paused agent to resume is cancelled by the request's cancel, never sent", async () => {
    const a = await agent('fc');
    const p = pool({ connectionsPerAgent: 1 });
    await p.addAgent('w', a.connector(), { flowControl: 'wait', flowControlWaitMs: 60_000 });
    a.server.pause();
    await until(() => p.agentStats('w')!.pausedConnections === 1, 'the pool saw the pause');
    const waiting = p.sendRequestHeaders('w', headers('gone'));
    await until(() => p.agentStats('w')!.queued === 1, 'the call waits');
    expect(await p.cancel('w', 'gone')).toBe(true);
    const answer = await waiting; // without the cancel it would wait the full minute
    expect(answer.audit.reason_codes).toEqual(['AGENT_CANCELLED']);
    a.server.resume();
    await until(() => p.agentStats('w')!.pausedConnections === 0, 'resumed');
    expect(decisionKind((await p.sendRequestHeaders('w', headers('next'))).decision)).toBe('allow');
    expect(a.seen.map((s) => s.cid)).toEqual(['next']);
  });
});

describe('retry over real sockets', () => {
  it('an agent that drops the connection mid-call: request headers are not repeated, configure is', async () => {
    const a = await agent('rt');
    const p = pool({ connectionsPerAgent: 2, circuitBreaker: false, healthCheckIntervalMs: 0 });
    await p.addAgent('rt', a.connector());
    const dropped = new Set<string>();
    a.decide = (_type, ctx) => {
      if (dropped.has(ctx.correlationId)) return allow();
      dropped.add(ctx.correlationId);
      a.drop(ctx.connectionId);
      return new Promise<AgentResponse>(() => {});
    };
    const h = await p.sendRequestHeaders('rt', headers('h-drop'));
    expect(h.audit.reason_codes).toEqual(['AGENT_CONNECTION_CLOSED']);
    expect(a.seen.filter((s) => s.cid === 'h-drop').length).toBe(1);

    await until(() => p.agentStats('rt')!.healthyConnections === 2, 'redialled');
    const c = await p.sendConfigure('rt', { correlation_id: 'cfg-drop', config: { level: 1 } });
    expect(c.decision).toBe('allow');
    const seen = a.seen.filter((s) => s.cid === 'cfg-drop');
    expect(seen.length).toBe(2);
    expect(new Set(seen.map((s) => s.connectionId)).size).toBe(2);
  });
});

describe('close', () => {
  it('drains: in-flight calls complete, new calls are rejected', async () => {
    const a = await agent('dr');
    const gate = deferred();
    a.decide = async () => {
      await gate.promise;
      return allow();
    };
    const p = new AgentPool({ healthCheckIntervalMs: 0 });
    await p.addAgent('dr', a.connector());
    const running = Array.from({ length: 6 }, (_, i) =>
      p.sendRequestHeaders('dr', headers(`dr${i}`)),
    );
    await until(() => a.seen.length === 6, 'all in flight');
    const closing = p.close({ drainTimeoutMs: 10_000 });
    await expect(p.sendRequestHeaders('dr', headers('late'))).rejects.toMatchObject({
      code: 'UNAVAILABLE',
    });
    gate.resolve();
    const done = await Promise.all(running);
    expect(done.every((r) => r.decision === 'allow')).toBe(true);
    await closing;
    await until(() => a.server.connections.size === 0, 'agent saw the connections close');
  });

  it('forwards agent-reported metrics with an agent_id label', async () => {
    const a = await agent('mx');
    const p = pool({ connectionsPerAgent: 1 });
    await p.addAgent('mx', a.connector());
    a.server.reportMetrics({
      agent_id: 'mx',
      timestamp_ms: Date.now(),
      interval_ms: 1_000,
      counters: [{ name: 'agent_requests_total', labels: { route: 'r1' }, value: 42 }],
      gauges: [],
      histograms: [],
    });
    await until(
      () => p.metrics().includes('agent_requests_total{agent_id="mx",route="r1"} 42'),
      'metrics',
    );
  });
});

describe('cancel', () => {
  it('sends Cancel on the connection that saw the request headers', async () => {
    const a = await agent('a');
    const p = pool({ connectionsPerAgent: 3 });
    await p.addAgent('a', a.connector());
    await p.sendRequestHeaders('a', headers('gone-1'));
    expect(await p.cancel('a', 'gone-1')).toBe(true);
    await until(() => a.cancels.length === 1);
    expect(a.cancels[0]).toEqual({ cid: 'gone-1', reason: 'client_disconnect' });
    expect(await p.cancel('a', 'never-sent')).toBe(false);
    expect(await p.cancel('nobody', 'gone-1')).toBe(false);
    await p.sendRequestComplete('a', complete('gone-1'));
    expect(await p.cancel('a', 'gone-1')).toBe(false);
  });

  it('cancels a call of the request that still waits for a connection slot (never sent) and the one in flight', async () => {
    const a = await agent('a');
    const gate = deferred<AgentResponse>();
    a.decide = () => gate.promise;
    const p = pool({ connectionsPerAgent: 1, maxConcurrentPerConnection: 1, failureMode: 'throw' });
    await p.addAgent('a', a.connector());
    const first = p.sendRequestHeaders('a', headers('busy'));
    await until(() => a.seen.length === 1);
    const queued = p.sendRequestHeaders('a', headers('left'));
    const other = p.sendRequestHeaders('a', headers('stays'));
    expect(await p.cancel('a', 'left')).toBe(true);
    await expect(queued).rejects.toMatchObject({ code: 'CANCELLED' });
    expect(await p.cancel('a', 'busy')).toBe(true);
    await expect(first).rejects.toMatchObject({ code: 'CANCELLED' });
    gate.resolve(allow());
    expect(decisionKind((await other).decision)).toBe('allow');
    expect(a.seen.map((s) => s.cid)).toEqual(['busy', 'stays']); // 'left' never reached the agent
    await until(() => a.cancels.length === 1);
    expect(a.cancels).toEqual([{ cid: 'busy', reason: 'client_disconnect' }]);
  });
});
