/**
 * Pool behaviour against in-memory transports (no sockets): failure modes,
 * retries, breaker, affinity, flow control, queueing, probes, drain, events.
 */
import {
  AgentProtocolError,
  type AgentResponse,
  allow,
  block,
  decisionKind,
  ErrorCode,
  type MetricsReport,
} from '@picket/protocol';
import { afterEach, describe, expect, it } from 'vitest';
import { AgentPool, type PoolOptions, type PoolStatus } from '../src/index.js';
import { bodyChunk, complete, FakeTransport, headers, until } from './fake-transport.js';

const pools: AgentPool[] = [];
function pool(o: PoolOptions = {}): AgentPool {
  const p = new AgentPool({
    healthCheckIntervalMs: 0,
    reconnect: { initialDelayMs: 5, maxDelayMs: 20 },
    ...o,
  });
  pools.push(p);
  return p;
}
afterEach(async () => {
  await Promise.all(pools.splice(0).map((p) => p.close({ drainTimeoutMs: 0 })));
});

/** A factory whose transports are recorded, all sharing `handler`. */
function fleet(agentId = 'a', handler?: ConstructorParameters<typeof FakeTransport>[1]) {
  const made: FakeTransport[] = [];
  let fail = false;
  const connect = async () => {
    if (fail) throw new AgentProtocolError(ErrorCode.ConnectionFailed, 'refused');
    const t = new FakeTransport(agentId, handler);
    made.push(t);
    return t;
  };
  return {
    made,
    connect,
    live: () => made.filter((t) => !t.closed),
    setFail: (f: boolean) => {
      fail = f;
    },
  };
}

function deferred<T>() {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

const reasons = (r: AgentResponse) => r.audit.reason_codes;

/** What a test reads of the pool's per-agent state. */
interface AgentStateView {
  connections: Map<string, unknown>;
  connectionList: unknown[];
}

describe('membership and selection', () => {
  it('opens connectionsPerAgent connections and round-robins evenly', async () => {
    const f = fleet();
    const p = pool();
    expect(await p.addAgent('a', f.connect)).toBe(4);
    for (let i = 0; i < 40; i++) await p.sendRequestHeaders('a', headers(`r${i}`));
    expect(f.made.map((t) => t.seen.length)).toEqual([10, 10, 10, 10]);
    const s = p.agentStats('a')!;
    expect(s).toMatchObject({
      agentId: 'a',
      activeConnections: 4,
      healthyConnections: 4,
      totalRequests: 40,
      totalErrors: 0,
      errorRate: 0,
      isHealthy: true,
      circuitState: 'closed',
    });
    expect(s.latencyMs).not.toBeNull();
  });

  it('round robin goes on over the connections left after one drops, then over its replacement', async () => {
    const f = fleet();
    const p = pool();
    expect(await p.addAgent('a', f.connect, { connectionsPerAgent: 3 })).toBe(3);
    const [first, middle, last] = f.made as [FakeTransport, FakeTransport, FakeTransport];
    middle.kill();
    await until(() => f.made.length === 4 && p.agentStats('a')!.activeConnections === 3, 'redial');
    const replacement = f.made[3] as FakeTransport;
    for (let i = 0; i < 30; i++) await p.sendRequestHeaders('a', headers(`q${i}`));
    expect([first, middle, last, replacement].map((t) => t.seen.length)).toEqual([10, 0, 10, 10]);
    // the walk list and the id map hold the same connections, in the same order
    const { ctx } = p as unknown as { ctx: { agents: Map<string, AgentStateView> } };
    const agent = ctx.agents.get('a')!;
    expect(agent.connectionList).toEqual([...agent.connections.values()]);
  });

  it('round robin: a connection that cannot take a call passes its turn to the next one', async () => {
    const hold = deferred<void>();
    let holding: FakeTransport | undefined;
    const f = fleet('a', async (_t, _e, t) => {
      if (t === holding) await hold.promise;
      return allow();
    });
    const p = pool({ maxConcurrentPerConnection: 1 });
    expect(await p.addAgent('a', f.connect, { connectionsPerAgent: 3 })).toBe(3);
    const [first, second, third] = f.made as [FakeTransport, FakeTransport, FakeTransport];
    holding = first;
    const held = p.sendRequestHeaders('a', headers('held')); // first's only slot stays taken
    await until(() => first.seen.length === 1, 'held call sent');
    second.pause(); // and second refuses traffic
    for (let i = 0; i < 6; i++) await p.sendRequestHeaders('a', headers(`t${i}`));
    expect([first, second, third].map((t) => t.seen.length)).toEqual([1, 0, 6]);
    second.resume();
    hold.resolve();
    await held;
    for (let i = 0; i < 6; i++) await p.sendRequestHeaders('a', headers(`u${i}`));
    expect([first, second, third].map((t) => t.seen.length)).toEqual([3, 2, 8]);
  });

  it('rejects unknown agents, duplicate ids, bad options and calls after close', async () => {
    const p = pool();
    await expect(p.sendRequestHeaders('nope', headers('x'))).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
    });
    await p.addAgent('a', fleet().connect, { connectionsPerAgent: 1 });
    await expect(p.addAgent('a', fleet().connect)).rejects.toThrow(/already in the pool/);
    await expect(
      p.addAgent('b', fleet().connect, { strategy: 'fastest' as never }),
    ).rejects.toThrow(/strategy/);
    expect(() => new AgentPool({ connectionsPerAgent: 0 })).toThrow(/connectionsPerAgent/);
    await p.close();
    await expect(p.sendRequestHeaders('a', headers('y'))).rejects.toMatchObject({
      code: 'UNAVAILABLE',
    });
  });

  it('health_based steers away from an erroring connection', async () => {
    let bad: FakeTransport | undefined;
    const f = fleet('a', (_t, _e, t) => {
      if (t === bad) throw new Error('boom');
      return allow();
    });
    const p = pool({
      strategy: 'health_based',
      maxConsecutiveErrors: 1_000,
      circuitBreaker: false,
    });
    await p.addAgent('a', f.connect, { connectionsPerAgent: 3 });
    bad = f.made[0];
    for (let i = 0; i < 60; i++) await p.sendRequestHeaders('a', headers(`h${i}`));
    const badCount = bad!.seen.length;
    const others = f.made.slice(1).map((t) => t.seen.length);
    expect(badCount).toBeLessThan(5);
    for (const n of others) expect(n).toBeGreaterThan(15);
  });

  it('least_connections prefers the idle connection', async () => {
    const gate = deferred<void>();
    const f = fleet('a', async (_t, e) => {
      if (
        (e as { metadata: { correlation_id: string } }).metadata.correlation_id.startsWith('slow')
      ) {
        await gate.promise;
      }
      return allow();
    });
    const p = pool({ strategy: 'least_connections' });
    await p.addAgent('a', f.connect, { connectionsPerAgent: 2 });
    const slow = [
      p.sendRequestHeaders('a', headers('slow1')),
      p.sendRequestHeaders('a', headers('slow2')),
    ];
    await until(() => f.made.every((t) => t.inFlight === 1), 'one slow call per connection');
    // both busy with one call: finish one side's call by adding load elsewhere
    const busy = f.made[0]!;
    const extra = p.sendRequestHeaders('a', headers('slow3'));
    await until(() => f.made.reduce((n, t) => n + t.inFlight, 0) === 3, 'three slow calls');
    const idleIdx = busy.inFlight === 2 ? 1 : 0;
    for (let i = 0; i < 5; i++) {
      // the connection with fewer calls gets the next one, then they are equal again
      const before = f.made.map((t) => t.inFlight);
      const r = p.sendRequestHeaders('a', headers(`fast${i}`));
      await r;
      expect(f.made[idleIdx]!.seen.length).toBeGreaterThan(0);
      expect(before[idleIdx]).toBeLessThanOrEqual(before[1 - idleIdx]!);
    }
    expect(f.made[idleIdx]!.seen.filter((s) => s.cid.startsWith('fast')).length).toBe(5);
    gate.resolve();
    await Promise.all([...slow, extra]);
  });
});

describe('failure modes', () => {
  const hang = () => new Promise<AgentResponse>(() => {});

  it('closed: block 503 with the reason code and a fail_closed tag', async () => {
    const p = pool({ requestTimeoutMs: 30 });
    await p.addAgent('a', fleet('a', hang).connect, { connectionsPerAgent: 1 });
    const r = await p.sendRequestHeaders('a', headers('t1'));
    expect(r.decision).toEqual({ block: { status: 503, body: null, headers: null } });
    expect(reasons(r)).toEqual(['AGENT_TIMEOUT']);
    expect(r.audit.tags).toEqual(['fail_closed']);
    expect(r.audit.custom).toMatchObject({ agent_id: 'a', error_code: 'TIMEOUT' });
    expect(p.agentStats('a')).toMatchObject({ totalTimeouts: 1, totalErrors: 1 });
  });

  it('open: allow tagged fail_open; throw: rejects with the AgentProtocolError', async () => {
    const p = pool({ requestTimeoutMs: 30 });
    await p.addAgent('open', fleet('open', hang).connect, {
      connectionsPerAgent: 1,
      failureMode: 'open',
    });
    await p.addAgent('throw', fleet('throw', hang).connect, {
      connectionsPerAgent: 1,
      failureMode: 'throw',
    });
    const r = await p.sendRequestHeaders('open', headers('o1'));
    expect(r.decision).toBe('allow');
    expect(r.audit.tags).toEqual(['fail_open']);
    expect(reasons(r)).toEqual(['AGENT_TIMEOUT']);
    await expect(p.sendRequestHeaders('throw', headers('t1'))).rejects.toBeInstanceOf(
      AgentProtocolError,
    );
    await expect(p.sendRequestHeaders('throw', headers('t2'))).rejects.toMatchObject({
      code: 'TIMEOUT',
    });
  });

  it('websocket frames get a websocket decision too', async () => {
    const p = pool({ requestTimeoutMs: 20 });
    await p.addAgent('a', fleet('a', hang).connect, { connectionsPerAgent: 1 });
    const r = await p.sendWebSocketFrame('a', {
      correlation_id: 'w',
      opcode: 'text',
      data: new Uint8Array(),
      client_to_server: true,
      frame_index: 0,
      fin: true,
      route_id: null,
      client_ip: '127.0.0.1',
    });
    expect(r.websocket_decision).toEqual({ close: { code: 1011, reason: 'agent unavailable' } });
  });

  it('no connection ⇒ AGENT_UNAVAILABLE; the pool keeps redialling forever', async () => {
    const f = fleet();
    f.setFail(true);
    const p = pool();
    const events: PoolStatus[] = [];
    p.on('status', (s) => events.push(s));
    expect(
      await p.addAgent('a', f.connect, {
        connectionsPerAgent: 1,
        reconnect: { initialDelayMs: 1, maxDelayMs: 5 },
      }),
    ).toBe(0);
    const r = await p.sendRequestHeaders('a', headers('u1'));
    expect(reasons(r)).toEqual(['AGENT_UNAVAILABLE']);
    await until(
      () => events.filter((e) => e.type === 'connect_failed').length > 6,
      'more failed attempts than upstream ever makes',
    );
    f.setFail(false);
    await until(() => p.agentStats('a')!.healthyConnections === 1, 'reconnected');
    expect((await p.sendRequestHeaders('a', headers('u2'))).decision).toBe('allow');
    expect(events.some((e) => e.type === 'agent_healthy')).toBe(true);
  });

  it('a never-sent call is retried once on another connection; a sent one is not', async () => {
    const f = fleet();
    const p = pool({ circuitBreaker: false });
    await p.addAgent('a', f.connect, { connectionsPerAgent: 2 });
    const [t1, t2] = f.made as [FakeTransport, FakeTransport];
    // t1 looks healthy but its socket is already gone: it refuses synchronously
    const original = t1.send;
    t1.send = () =>
      Promise.reject(new AgentProtocolError(ErrorCode.ConnectionClosed, 'gone before send'));
    for (let i = 0; i < 6; i++) {
      expect((await p.sendRequestHeaders('a', headers(`n${i}`))).decision).toBe('allow');
    }
    expect(t2.seen.length).toBe(6);
    // now t1 accepts the call and then dies: that call was sent, so it is not repeated
    t1.send = original;
    t1.handler = () => {
      setImmediate(() => t1.kill());
      return new Promise(() => {});
    };
    const results = await Promise.all(
      [0, 1].map((i) => p.sendRequestHeaders('a', headers(`s${i}`))),
    );
    const failed = results.filter((r) => decisionKind(r.decision) === 'block');
    expect(failed.map(reasons)).toEqual([['AGENT_CONNECTION_CLOSED']]);
    expect(t2.seen.filter((s) => s.cid.startsWith('s')).length).toBe(1);
  });

  it('unknown event input is a caller error, never an answer', async () => {
    const p = pool({ failureMode: 'open' });
    await p.addAgent('a', fleet().connect, { connectionsPerAgent: 1 });
    await expect(p.sendRequestBodyChunk('a', null as never)).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
    });
  });
});

describe('circuit breaker', () => {
  it('opens on transport failures, not on block decisions, and recovers via half-open', async () => {
    let mode: 'block' | 'fail' | 'ok' = 'block';
    const f = fleet('a', () => {
      if (mode === 'fail') throw new Error('agent exploded');
      return mode === 'block' ? block(403) : allow();
    });
    const p = pool({ maxConsecutiveErrors: 1_000 });
    const events: PoolStatus[] = [];
    p.on('status', (s) => events.push(s));
    await p.addAgent('a', f.connect, {
      connectionsPerAgent: 1,
      circuitBreaker: { failureThreshold: 3, openTimeoutMs: 40, successThreshold: 2 },
    });
    for (let i = 0; i < 10; i++) await p.sendRequestHeaders('a', headers(`b${i}`));
    expect(p.agentStats('a')!.circuitState).toBe('closed');
    mode = 'fail';
    for (let i = 0; i < 3; i++) {
      expect(reasons(await p.sendRequestHeaders('a', headers(`f${i}`)))).toEqual(['AGENT_ERROR']);
    }
    expect(p.agentStats('a')!.circuitState).toBe('open');
    const seen = f.made[0]!.seen.length;
    expect(reasons(await p.sendRequestHeaders('a', headers('x')))).toEqual(['AGENT_CIRCUIT_OPEN']);
    expect(f.made[0]!.seen.length).toBe(seen); // not sent
    expect(p.metrics()).toContain('picket_pool_circuit_state{agent_id="a",state="open"} 1');
    mode = 'ok';
    await until(() => p.agentStats('a')!.circuitState === 'half_open', 'half-open');
    expect((await p.sendRequestHeaders('a', headers('p1'))).decision).toBe('allow');
    expect((await p.sendRequestHeaders('a', headers('p2'))).decision).toBe('allow');
    expect(p.agentStats('a')!.circuitState).toBe('closed');
    expect(events.filter((e) => e.type === 'circuit').map((e) => (e as { to: string }).to)).toEqual(
      ['open', 'half_open', 'closed'],
    );
  });
});

describe('affinity and sessions', () => {
  it('body chunks and response events follow the headers; cleared on request complete', async () => {
    const f = fleet();
    const p = pool({ strategy: 'random' });
    await p.addAgent('a', f.connect);
    await Promise.all(
      Array.from({ length: 20 }, async (_, i) => {
        const cid = `c${i}`;
        await p.sendRequestHeaders('a', headers(cid));
        for (let k = 0; k < 3; k++) await p.sendRequestBodyChunk('a', bodyChunk(cid, k));
        await p.sendResponseHeaders('a', { correlation_id: cid, status: 200, headers: {} });
        await p.sendRequestComplete('a', complete(cid));
      }),
    );
    for (let i = 0; i < 20; i++) {
      const holders = f.made.filter((t) => t.seen.some((s) => s.cid === `c${i}`));
      expect(holders.length).toBe(1);
      expect(holders[0]!.seen.filter((s) => s.cid === `c${i}`).length).toBe(6);
    }
    expect(p.metrics()).toContain('picket_pool_correlation_affinities 0');
  });

  it('falls back to normal selection when the pinned connection is gone', async () => {
    const f = fleet();
    const p = pool();
    await p.addAgent('a', f.connect, { connectionsPerAgent: 2 });
    await p.sendRequestHeaders('a', headers('z'));
    const holder = f.made.find((t) => t.seen.length === 1)!;
    holder.kill();
    await until(
      () => p.agentStats('a')!.activeConnections >= 1 && !holder.listenerCount('close'),
      'removed',
    );
    expect((await p.sendRequestBodyChunk('a', bodyChunk('z'))).decision).toBe('allow');
    p.clearAffinity('z');
  });

  it('sticky sessions pin request headers to one connection', async () => {
    const f = fleet();
    const p = pool();
    await p.addAgent('a', f.connect);
    for (let i = 0; i < 12; i++)
      await p.sendRequestHeadersWithSession('a', headers(`s${i}`), 'user-1');
    for (let i = 0; i < 12; i++)
      await p.sendRequestHeaders('a', headers(`t${i}`), { sessionId: 'user-2' });
    const s1 = f.made.filter((t) => t.seen.some((s) => s.cid.startsWith('s')));
    const s2 = f.made.filter((t) => t.seen.some((s) => s.cid.startsWith('t')));
    expect(s1.length).toBe(1);
    expect(s2.length).toBe(1);
  });
});

describe('flow control', () => {
  it('skips a paused connection; gates when all are paused', async () => {
    const f = fleet();
    const p = pool();
    await p.addAgent('closed', f.connect, { connectionsPerAgent: 2 });
    const [t1, t2] = f.made as [FakeTransport, FakeTransport];
    t1.pause();
    for (let i = 0; i < 6; i++) await p.sendRequestHeaders('closed', headers(`p${i}`));
    expect(t1.seen.length).toBe(0);
    expect(t2.seen.length).toBe(6);
    t2.pause();
    const r = await p.sendRequestHeaders('closed', headers('px'));
    expect(reasons(r)).toEqual(['AGENT_FLOW_CONTROL_PAUSED']);
    expect(p.agentStats('closed')).toMatchObject({ pausedConnections: 2, circuitState: 'closed' });
  });

  it('fail_open allows without calling; wait resumes within the bound', async () => {
    const fo = fleet('fo');
    const fw = fleet('fw');
    const p = pool();
    await p.addAgent('fo', fo.connect, { connectionsPerAgent: 1, flowControl: 'fail_open' });
    await p.addAgent('fw', fw.connect, {
      connectionsPerAgent: 1,
      flowControl: 'wait',
      flowControlWaitMs: 5_000,
    });
    fo.made[0]!.pause();
    const r = await p.sendRequestHeaders('fo', headers('a'));
    expect(r.decision).toBe('allow');
    expect(r.audit.tags).toEqual(['fail_open']);
    expect(fo.made[0]!.seen.length).toBe(0);
    fw.made[0]!.pause();
    const waiting = p.sendRequestHeaders('fw', headers('b'));
    setTimeout(() => fw.made[0]!.resume(), 20);
    expect((await waiting).decision).toBe('allow');
    fw.made[0]!.pause();
    const r2 = await p.sendRequestHeaders('fw', headers('c'), { timeoutMs: 30 });
    expect(reasons(r2)).toEqual(['AGENT_FLOW_CONTROL_PAUSED']);
  });
});

describe('concurrency limit and queue', () => {
  it('queues beyond the per-connection limit and refuses beyond the queue bound', async () => {
    const gates: (() => void)[] = [];
    const f = fleet('a', () => new Promise<AgentResponse>((r) => gates.push(() => r(allow()))));
    const p = pool();
    await p.addAgent('a', f.connect, {
      connectionsPerAgent: 1,
      maxConcurrentPerConnection: 2,
      maxQueued: 1,
    });
    const calls = [0, 1, 2].map((i) => p.sendRequestHeaders('a', headers(`q${i}`)));
    await until(() => gates.length === 2, 'two running');
    expect(p.agentStats('a')).toMatchObject({ totalInFlight: 2, queued: 1 });
    const over = await p.sendRequestHeaders('a', headers('q3'));
    expect(reasons(over)).toEqual(['AGENT_OVERLOADED']);
    gates.shift()!();
    await until(() => gates.length === 2, 'queued call started');
    for (const g of gates.splice(0)) g();
    const done = await Promise.all(calls);
    expect(done.map((r) => r.decision)).toEqual(['allow', 'allow', 'allow']);
    expect(p.agentStats('a')!.circuitState).toBe('closed');
  });

  it('a queued call times out within its deadline', async () => {
    const f = fleet('a', () => new Promise<AgentResponse>(() => {}));
    const p = pool({ requestTimeoutMs: 40 });
    await p.addAgent('a', f.connect, { connectionsPerAgent: 1, maxConcurrentPerConnection: 1 });
    const [a, b] = await Promise.all([
      p.sendRequestHeaders('a', headers('x')),
      p.sendRequestHeaders('a', headers('y')),
    ]);
    expect(reasons(a)).toEqual(['AGENT_TIMEOUT']);
    expect(reasons(b)).toEqual(['AGENT_TIMEOUT']);
  });
});

describe('health', () => {
  it('failed probes make a connection unhealthy, then replace it', async () => {
    const f = fleet();
    const p = pool({ healthCheckIntervalMs: 10 });
    await p.addAgent('a', f.connect, { connectionsPerAgent: 2 });
    f.made[0]!.pingFails = true;
    await until(() => f.made[0]!.closed, 'zombie closed');
    await until(
      () => f.made.length === 3 && p.agentStats('a')!.healthyConnections === 2,
      'replaced',
    );
  });

  it('agent-reported unhealthy / draining connections get no traffic', async () => {
    const f = fleet();
    const p = pool();
    const events: PoolStatus[] = [];
    p.on('status', (s) => events.push(s));
    await p.addAgent('a', f.connect, { connectionsPerAgent: 2 });
    f.made[0]!.report('draining');
    f.made[1]!.report('unhealthy');
    expect(p.agentStats('a')!.isHealthy).toBe(false);
    expect(events.at(-1)).toEqual({ type: 'agent_unhealthy', agentId: 'a' });
    expect(reasons(await p.sendRequestHeaders('a', headers('h')))).toEqual(['AGENT_UNAVAILABLE']);
    f.made[1]!.report('healthy');
    expect((await p.sendRequestHeaders('a', headers('h2'))).decision).toBe('allow');
    expect(f.made[0]!.seen.length).toBe(0);
  });
});

describe('reverse connections', () => {
  it('are added, used, and removed (not redialled) when they drop', async () => {
    const p = pool();
    const t = new FakeTransport('rev');
    const id = p.addConnection('rev', t, { connectionsPerAgent: 1 });
    expect(id).toMatch(/^rev#/);
    expect(() => p.addConnection('rev', new FakeTransport('rev'))).toThrow(/already has 1/);
    expect((await p.sendRequestHeaders('rev', headers('r'))).decision).toBe('allow');
    t.kill();
    expect(p.agentStats('rev')!.activeConnections).toBe(0);
    expect(reasons(await p.sendRequestHeaders('rev', headers('r2')))).toEqual([
      'AGENT_UNAVAILABLE',
    ]);
    p.addConnection('rev', new FakeTransport('rev'));
    expect((await p.sendRequestHeaders('rev', headers('r3'))).decision).toBe('allow');
  });
});

describe('close and removeAgent', () => {
  it('drains in-flight calls, refuses new ones, cancels leftovers with proxy_shutdown', async () => {
    const release = deferred<void>();
    const f = fleet('a', async (_t, e) => {
      const cid = (e as { metadata: { correlation_id: string } }).metadata.correlation_id;
      if (cid === 'stuck') return new Promise<AgentResponse>(() => {});
      await release.promise;
      return allow();
    });
    const p = new AgentPool({ healthCheckIntervalMs: 0 });
    await p.addAgent('a', f.connect, { connectionsPerAgent: 2 });
    const running = [1, 2, 3].map((i) => p.sendRequestHeaders('a', headers(`d${i}`)));
    await until(() => f.made.reduce((n, t) => n + t.inFlight, 0) === 3, 'running');
    const closing = p.close({ drainTimeoutMs: 5_000 });
    await expect(p.sendRequestHeaders('a', headers('late'))).rejects.toMatchObject({
      code: 'UNAVAILABLE',
    });
    release.resolve();
    expect((await Promise.all(running)).map((r) => r.decision)).toEqual([
      'allow',
      'allow',
      'allow',
    ]);
    await closing;
    expect(f.made.every((t) => t.closed)).toBe(true);

    const g = fleet('b', (_t, e) =>
      (e as { metadata: { correlation_id: string } }).metadata.correlation_id === 'stuck'
        ? new Promise<AgentResponse>(() => {})
        : allow(),
    );
    const p2 = new AgentPool({ healthCheckIntervalMs: 0 });
    await p2.addAgent('b', g.connect, { connectionsPerAgent: 1 });
    const stuck = p2.sendRequestHeaders('b', headers('stuck'));
    await until(() => g.made[0]!.inFlight === 1, 'stuck sent');
    await p2.close({ drainTimeoutMs: 20 });
    expect(reasons(await stuck)).toEqual(['AGENT_CANCELLED']);
    expect(g.made[0]!.cancelled).toContainEqual(['*', 'proxy_shutdown']);
  });

  it('removeAgent stops redialling and forgets the agent', async () => {
    const f = fleet();
    const p = pool();
    await p.addAgent('a', f.connect, { connectionsPerAgent: 2 });
    expect(await p.removeAgent('a')).toBe(true);
    expect(await p.removeAgent('a')).toBe(false);
    expect(p.hasAgent('a')).toBe(false);
    await new Promise((r) => setTimeout(r, 30));
    expect(f.made.length).toBe(2);
    expect(f.made.every((t) => t.closed)).toBe(true);
  });
});

describe('events and metrics', () => {
  it('status() yields changes and ends on close', async () => {
    const p = new AgentPool({ healthCheckIntervalMs: 0 });
    const seen: PoolStatus['type'][] = [];
    const consumer = (async () => {
      for await (const s of p.status()) seen.push(s.type);
    })();
    const f = fleet();
    await p.addAgent('a', f.connect, { connectionsPerAgent: 1 });
    f.made[0]!.kill();
    await until(() => seen.includes('connection_removed'), 'removal seen');
    await p.close();
    await consumer;
    expect(seen.slice(0, 3)).toEqual(['agent_added', 'connection_added', 'agent_healthy']);
    expect(seen).toContain('agent_unhealthy');
  });

  it('metrics() prints pool families and agent-reported series with escaped labels', async () => {
    const f = fleet('we"ird\\id');
    const p = pool({ requestTimeoutMs: 20 });
    await p.addAgent('we"ird\\id', f.connect, { connectionsPerAgent: 1 });
    await p.sendRequestHeaders('we"ird\\id', headers('m1'));
    f.made[0]!.handler = () => new Promise(() => {});
    await p.sendRequestHeaders('we"ird\\id', headers('m2'));
    const report: MetricsReport = {
      agent_id: 'x',
      timestamp_ms: 1,
      interval_ms: 1,
      counters: [{ name: 'agent_requests_total', labels: {}, value: 3 }],
      gauges: [],
      histograms: [],
    };
    f.made[0]!.emit('metrics', report);
    const text = p.metrics();
    const id = 'agent_id="we\\"ird\\\\id"';
    expect(text).toContain(`picket_pool_requests_total{${id},event="request_headers"} 2`);
    expect(text).toContain(
      `picket_pool_errors_total{${id},event="request_headers",reason="AGENT_TIMEOUT"} 1`,
    );
    expect(text).toContain(`picket_pool_timeouts_total{${id},event="request_headers"} 1`);
    expect(text).toContain(
      `picket_pool_request_duration_seconds_count{${id},event="request_headers"} 2`,
    );
    expect(text).toContain(
      `picket_pool_request_duration_seconds_bucket{${id},event="request_headers",le="+Inf"} 2`,
    );
    expect(text).toContain(`picket_pool_healthy_connections{${id}} 1`);
    expect(text).toContain(
      `picket_pool_failure_responses_total{${id},mode="closed",reason="AGENT_TIMEOUT"} 1`,
    );
    expect(text).toContain(`agent_requests_total{${id}} 3`);
    for (const line of text.trimEnd().split('\n')) {
      expect(line).toMatch(/^(# (HELP|TYPE) [a-z_]+ .+|[a-z_]+(\{.*\})? [-+0-9.eInfNa]+)$/);
    }
  });
});
