import {
  type AgentHandler,
  type AgentProtocolError,
  type AgentResponse,
  allow,
  createCapabilities,
  type RequestContext,
  type RequestHeadersEvent,
} from '@picket/protocol';
import { afterEach, describe, expect, it } from 'vitest';
import {
  AgentServer,
  connectV1,
  silentLogger,
  V1Transport,
  type V1TransportOptions,
} from '../src/index.js';
import {
  cleanupDirs,
  headersEvent,
  type RawPeer,
  rawAgent,
  rejection,
  socketPath,
  until,
} from './helpers.js';

const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c();
  cleanupDirs();
});

/** An agent that answers `/hang` only when its connection drops, `/gate` when released. */
class GateAgent implements AgentHandler {
  readonly seen: { cid: string; ctx: RequestContext }[] = [];
  private gate: (() => void)[] = [];
  capabilities() {
    return createCapabilities({ agentId: 'gate' });
  }
  async onRequestHeaders(e: RequestHeadersEvent, ctx: RequestContext): Promise<AgentResponse> {
    const cid = e.metadata.correlation_id;
    this.seen.push({ cid, ctx });
    if (e.uri === '/hang') {
      await new Promise<void>((r) => ctx.signal.addEventListener('abort', () => r()));
    }
    if (e.uri === '/gate') await new Promise<void>((r) => this.gate.push(r));
    return allow({ requestHeaders: [{ set: { name: 'x-cid', value: cid } }] });
  }
  release(): void {
    for (const r of this.gate.splice(0)) r();
  }
  get waiting(): number {
    return this.gate.length;
  }
}

async function setup(options: V1TransportOptions = {}, handler = new GateAgent()) {
  const path = socketPath();
  const server = new AgentServer('gate', path, handler, { logger: silentLogger });
  await server.run();
  closers.push(() => server.close());
  const t = await connectV1('gate', path, { timeoutMs: 5000, ...options });
  closers.push(() => t.close());
  return { path, server, t, handler };
}

const xcid = (r: AgentResponse) => (r.request_headers[0] as { set: { value: string } }).set.value;

describe('V1Transport', () => {
  it('is an AgentTransport of kind v1 with synthesised capabilities', async () => {
    const { t } = await setup({ connections: 3 });
    expect(t).toBeInstanceOf(V1Transport);
    expect(t.kind).toBe('v1');
    expect(t.encoding).toBe('json');
    expect(t.agentId).toBe('gate');
    expect(t.capabilities.agent_id).toBe('gate');
    expect(t.capabilities.limits.max_concurrency).toBe(3);
    expect(t.paused).toBe(false);
    expect(t.isHealthy()).toBe(true);
    expect(t.openConnections).toBe(3);
    expect(t.inFlight).toBe(0);
  });

  it('spreads concurrent calls over N connections and queues the rest', async () => {
    const { t, handler } = await setup({ connections: 3 });
    const calls = ['a', 'b', 'c', 'd', 'e'].map((id) =>
      t.sendRequestHeaders(headersEvent(id, '/gate')),
    );
    await until(() => handler.waiting === 3, 'three calls at the agent');
    expect(t.queued).toBe(2);
    expect(t.inFlight).toBe(5);
    expect(new Set(handler.seen.map((s) => s.ctx.connectionId)).size).toBe(3);
    while (handler.seen.length < 5) {
      handler.release();
      await until(() => handler.waiting > 0 || handler.seen.length === 5, 'the queue to move');
    }
    handler.release();
    const replies = await Promise.all(calls);
    expect(replies.map(xcid)).toEqual(['a', 'b', 'c', 'd', 'e']);
    expect(t.inFlight).toBe(0);
  });

  it('times out a silent call, aborts it at the agent and keeps working', async () => {
    const { t, handler } = await setup({ connections: 1 });
    const err = await rejection(
      t.sendRequestHeaders(headersEvent('slow', '/hang'), { timeoutMs: 100 }),
    );
    expect(err.code).toBe('TIMEOUT');
    await until(() => handler.seen[0]?.ctx.signal.aborted === true, 'the agent to be told');
    const r = await t.sendRequestHeaders(headersEvent('next'));
    expect(xcid(r)).toBe('next');
    expect(t.isHealthy()).toBe(true);
  });

  it('times out a call that waits too long for a free connection', async () => {
    const { t, handler } = await setup({ connections: 1 });
    const busy = t.sendRequestHeaders(headersEvent('busy', '/gate'));
    await until(() => handler.waiting === 1, 'the first call at the agent');
    const err = await rejection(t.sendRequestHeaders(headersEvent('q'), { timeoutMs: 50 }));
    expect(err.code).toBe('TIMEOUT');
    expect(err.message).toContain('no free connection');
    handler.release();
    expect(xcid(await busy)).toBe('busy');
  });

  it('bounds the wait queue with UNAVAILABLE', async () => {
    const { t, handler } = await setup({ connections: 1, maxQueue: 1 });
    const first = t.sendRequestHeaders(headersEvent('1', '/gate'));
    const second = t.sendRequestHeaders(headersEvent('2'));
    const err = await rejection(t.sendRequestHeaders(headersEvent('3')));
    expect(err.code).toBe('UNAVAILABLE');
    await until(() => handler.waiting === 1, 'the first call at the agent');
    handler.release();
    await Promise.all([first, second]);
  });

  it('rejects a correlation id already in flight with INVALID_ARGUMENT', async () => {
    const { t, handler } = await setup();
    const first = t.sendRequestHeaders(headersEvent('dup', '/gate'));
    const err = await rejection(t.sendRequestHeaders(headersEvent('dup')));
    expect(err.code).toBe('INVALID_ARGUMENT');
    expect(err.message).toContain('dup');
    await until(() => handler.waiting === 1, 'the call at the agent');
    handler.release();
    await first;
  });

  it('cancel(cid) rejects locally with CANCELLED and closes that connection', async () => {
    const { t, handler } = await setup({ connections: 2 });
    const call = rejection(t.sendRequestHeaders(headersEvent('c1', '/hang')));
    await until(() => handler.seen.length === 1, 'the agent to see the call');
    await t.cancel('c1', 'client_disconnect');
    const err = await call;
    expect(err.code).toBe('CANCELLED');
    expect(err.message).toContain('client_disconnect');
    await until(() => handler.seen[0]?.ctx.signal.aborted === true, "the handler's signal");
    await until(() => t.openConnections === 2, 'the slot to reconnect');
    expect(xcid(await t.sendRequestHeaders(headersEvent('after')))).toBe('after');
  });

  it('cancels queued calls and counts them in cancelAll', async () => {
    const { t, handler } = await setup({ connections: 1 });
    const calls = ['x', 'y', 'z'].map((id) =>
      rejection(t.sendRequestHeaders(headersEvent(id, '/hang'))),
    );
    await until(() => handler.seen.length === 1, 'the first call at the agent');
    expect(t.queued).toBe(2);
    expect(await t.cancelAll('proxy_shutdown')).toBe(3);
    for (const err of await Promise.all(calls)) expect(err.code).toBe('CANCELLED');
    expect(t.inFlight).toBe(0);
    await t.cancel('unknown');
  });

  it('rejects with CANCELLED when the caller aborts', async () => {
    const { t, handler } = await setup();
    const ac = new AbortController();
    const call = rejection(
      t.sendRequestHeaders(headersEvent('ab', '/hang'), { signal: ac.signal }),
    );
    await until(() => handler.seen.length === 1, 'the agent to see the call');
    ac.abort();
    expect((await call).code).toBe('CANCELLED');
    await until(() => handler.seen[0]?.ctx.signal.aborted === true, "the handler's signal");
    const pre = new AbortController();
    pre.abort();
    const early = await rejection(
      t.sendRequestHeaders(headersEvent('pre'), { signal: pre.signal }),
    );
    expect(early.code).toBe('CANCELLED');
  });

  it('sends configure as {agent_id, config}', async () => {
    const path = socketPath();
    const agent = await rawAgent(path, (p: RawPeer) => {
      void p.nextJson().then((req) => {
        p.writeJson({ version: 1, decision: 'allow', audit: { custom: { got: req } } });
      });
    });
    closers.push(() => agent.close());
    const t = await connectV1('waf-1', path, { connections: 1 });
    closers.push(() => t.close());
    const r = await t.sendConfigure({
      correlation_id: 'cfg',
      config: { a: 1 },
      config_version: '7',
    });
    expect(r.audit.custom.got).toEqual({
      version: 1,
      event_type: 'configure',
      payload: { agent_id: 'waf-1', config: { a: 1 } },
    });
  });

  it('ping measures a fresh connection and fails once the agent is gone', async () => {
    const { t, server } = await setup();
    expect(await t.ping()).toBeGreaterThanOrEqual(0);
    await server.close();
    const err = await rejection(t.ping());
    expect(['CONNECTION_FAILED', 'CONNECTION_CLOSED']).toContain(err.code);
  });

  it('close() rejects pending calls, emits close and refuses new calls', async () => {
    const { t, handler } = await setup({ connections: 1 });
    const events: (AgentProtocolError | undefined)[] = [];
    t.on('close', (e) => events.push(e));
    const calls = ['p', 'q'].map((id) =>
      rejection(t.sendRequestHeaders(headersEvent(id, '/hang'))),
    );
    await until(() => handler.seen.length === 1, 'the call at the agent');
    await t.close();
    for (const err of await Promise.all(calls)) expect(err.code).toBe('CONNECTION_CLOSED');
    expect(events).toEqual([undefined]);
    expect(t.isHealthy()).toBe(false);
    expect((await rejection(t.sendRequestHeaders(headersEvent('late')))).code).toBe(
      'CONNECTION_CLOSED',
    );
    await t.close();
    expect(events).toHaveLength(1);
  });

  it('emits close with an error when the agent goes away for good', async () => {
    const { t, server, handler } = await setup({ connections: 2 });
    const closed = new Promise<AgentProtocolError | undefined>((r) => t.once('close', r));
    const pending = rejection(t.sendRequestHeaders(headersEvent('lost', '/hang')));
    await until(() => handler.seen.length === 1, 'the call at the agent');
    await server.close();
    expect((await pending).code).toBe('CONNECTION_CLOSED');
    const err = await closed;
    expect(err?.code).toBe('CONNECTION_CLOSED');
    expect(err?.message).toContain('all 2 connections');
    expect(t.isHealthy()).toBe(false);
  });

  it('accepts a unix: endpoint prefix', async () => {
    const { path } = await setup();
    const t = await connectV1('gate', `unix:${path}`, { connections: 1 });
    closers.push(() => t.close());
    expect(t.path).toBe(path);
    expect(xcid(await t.sendRequestHeaders(headersEvent('u')))).toBe('u');
  });

  it('fails to connect with CONNECTION_FAILED when no agent listens', async () => {
    const err = await rejection(connectV1('none', socketPath('none.sock')));
    expect(err.code).toBe('CONNECTION_FAILED');
    expect(err.message).toContain('none');
  });
});
