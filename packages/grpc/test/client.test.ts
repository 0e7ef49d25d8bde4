/**
 * AgentClientV2 behaviour: duplicate ids, timeouts with cancel, flow control policies,
 * health / metrics / log / config-update pushes, drain and shutdown from the agent,
 * endpoint syntax, and a Rust-like agent (no picket extensions, no ControlStream).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Metadata, Server, ServerCredentials, type ServerDuplexStream } from '@grpc/grpc-js';
import {
  type AgentEvent,
  type AgentHandler,
  allow,
  type CancelReason,
  type ConfigUpdateRequest,
  createCapabilities,
  type EventType,
  type HealthReport,
  type LogMessage,
  type MetricsReport,
  type RequestHeadersEvent,
} from '@picket/protocol';
import { sendInto } from '@picket/protocol/internal';
import { afterEach, describe, expect, test, vi } from 'vitest';
import { AgentClientV2, type AgentClientV2Options } from '../src/client.js';
import { agentResponseToProto, capabilitiesToProto } from '../src/convert.js';
import { encodeAgentToProxy, METHOD_PATHS, type ProxyToAgentMsg, pb } from '../src/proto.js';
import { GrpcAgentServerV2 } from '../src/server.js';
import { type GrpcFixture, startGrpcFixture } from './fixtures.js';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const ev = (cid: string): RequestHeadersEvent => ({
  metadata: {
    correlation_id: cid,
    request_id: cid,
    client_ip: '127.0.0.1',
    client_port: 1234,
    protocol: 'HTTP/1.1',
    timestamp: '2026-01-01T00:00:00Z',
  },
  method: 'GET',
  uri: '/',
  headers: {},
});

function handler(
  extra: Partial<AgentHandler> = {},
): AgentHandler & { cancels: [string, CancelReason][] } {
  const cancels: [string, CancelReason][] = [];
  return {
    cancels,
    capabilities: () => createCapabilities({ agentId: 'client-test' }),
    onRequestHeaders: () => allow(),
    onCancel: (cid, reason) => cancels.push([cid, reason]),
    ...extra,
  };
}

async function fixture(h: AgentHandler, client?: AgentClientV2Options): Promise<GrpcFixture> {
  const f = await startGrpcFixture(h, client ? { client } : {});
  cleanups.push(() => f.close());
  return f;
}

describe('calls', () => {
  test('a correlation id already in flight is INVALID_ARGUMENT', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const f = await fixture(
      handler({
        onRequestHeaders: async () => {
          await gate;
          return allow();
        },
      }),
    );
    const first = f.transport.sendRequestHeaders(ev('dup'));
    await expect(f.transport.sendRequestHeaders(ev('dup'))).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
    });
    release();
    expect((await first).decision).toBe('allow');
  });

  test('a timeout rejects TIMEOUT and tells the agent (cancel reason timeout)', async () => {
    const h = handler({ onRequestHeaders: () => new Promise(() => undefined) });
    const f = await fixture(h);
    await expect(
      f.transport.sendRequestHeaders(ev('slow'), { timeoutMs: 50 }),
    ).rejects.toMatchObject({
      code: 'TIMEOUT',
    });
    await vi.waitFor(() => expect(h.cancels).toEqual([['slow', 'timeout']]));
    expect(f.transport.inFlight).toBe(0);
  });

  test('an already aborted signal is CANCELLED without contacting the agent', async () => {
    const seen: string[] = [];
    const f = await fixture(
      handler({
        onRequestHeaders: (e) => {
          seen.push(e.metadata.correlation_id);
          return allow();
        },
      }),
    );
    const ac = new AbortController();
    ac.abort();
    await expect(
      f.transport.sendRequestHeaders(ev('x'), { signal: ac.signal }),
    ).rejects.toMatchObject({
      code: 'CANCELLED',
    });
    await f.transport.ping();
    expect(seen).toEqual([]);
  });

  test('cancel reaches running handlers whose ids are Object.prototype names', async () => {
    const aborted: string[] = [];
    const h = handler({
      onRequestHeaders: (e, ctx) =>
        new Promise((resolve) => {
          ctx.signal.addEventListener('abort', () => {
            aborted.push(e.metadata.correlation_id);
            resolve(allow());
          });
        }),
    });
    const f = await fixture(h);
    const ids = ['__proto__', 'toString', 'constructor', '10', '2'];
    const calls = ids.map((c) => f.transport.sendRequestHeaders(ev(c)).catch((e) => e));
    await vi.waitFor(() => expect(f.transport.inFlight).toBe(ids.length));
    expect(await f.transport.cancelAll('manual')).toBe(ids.length);
    for (const e of await Promise.all(calls)) expect(e.code).toBe('CANCELLED');
    await vi.waitFor(() => expect([...aborted].sort()).toEqual([...ids].sort()));
    expect(h.cancels.map((c) => c[0])).toEqual(ids);
  });

  test('cancelAll cancels every pending call and counts them', async () => {
    const h = handler({ onRequestHeaders: () => new Promise(() => undefined) });
    const f = await fixture(h);
    const calls = ['a', 'b', 'c'].map((c) => f.transport.sendRequestHeaders(ev(c)).catch((e) => e));
    await vi.waitFor(() => expect(f.transport.inFlight).toBe(3));
    expect(await f.transport.cancelAll('proxy_shutdown')).toBe(3);
    for (const e of await Promise.all(calls)) expect(e.code).toBe('CANCELLED');
    await vi.waitFor(() =>
      expect(h.cancels.map((c) => c[1])).toEqual(Array(3).fill('proxy_shutdown')),
    );
  });

  test('ping measures a round trip', async () => {
    const f = await fixture(handler());
    const ms = await f.transport.ping();
    expect(ms).toBeGreaterThanOrEqual(0);
    expect(await f.transport.ping()).toBeGreaterThanOrEqual(0);
  });
});

describe('flow control', () => {
  // fail_open / wait are the pool's policy (packages/pool); the transport only refuses
  test('a pause rejects gated calls at once; resume lets them through', async () => {
    const f = await fixture(handler());
    const events: string[] = [];
    f.transport.on('flowControl', (a) => events.push(a));
    f.server.pause();
    await vi.waitFor(() => expect(f.transport.paused).toBe(true));
    expect(f.transport.isHealthy()).toBe(false);
    await expect(f.transport.sendRequestHeaders(ev('p1'))).rejects.toMatchObject({
      code: 'FLOW_CONTROL_PAUSED',
    });
    // response headers are not gated (as in Rust's pool)
    expect(
      (await f.transport.sendResponseHeaders({ correlation_id: 'p1', status: 200, headers: {} }))
        .decision,
    ).toBe('allow');
    f.server.resume();
    await vi.waitFor(() => expect(f.transport.paused).toBe(false));
    expect((await f.transport.sendRequestHeaders(ev('p2'))).decision).toBe('allow');
    expect(events).toEqual(['pause', 'resume']);
    expect(f.transport.isHealthy()).toBe(true);
  });

  test('a proxy that connects while the agent is paused is told at once', async () => {
    const server = new GrpcAgentServerV2(handler());
    cleanups.push(() => server.forceShutdown());
    server.pause();
    const { address } = await server.listen('127.0.0.1:0');
    const t = await AgentClientV2.connect('client-test', address);
    cleanups.push(() => t.close());
    await vi.waitFor(() => expect(t.paused).toBe(true));
  });
});

describe('pushes from the agent', () => {
  test('health reports are emitted and drive isHealthy()', async () => {
    const f = await fixture(handler());
    const reports: HealthReport[] = [];
    f.transport.on('health', (r) => reports.push(r));
    f.server.reportHealth('degraded', 'slow disk');
    await vi.waitFor(() => expect(reports).toHaveLength(1));
    expect(f.transport.isHealthy()).toBe(true);
    f.server.reportHealth('unhealthy', 'database down');
    await vi.waitFor(() => expect(reports).toHaveLength(2));
    expect(f.transport.isHealthy()).toBe(false);
    f.server.reportHealth('healthy');
    await vi.waitFor(() => expect(reports).toHaveLength(3));
    expect(f.transport.isHealthy()).toBe(true);
    expect(reports).toEqual([
      { state: 'degraded', message: 'slow disk' },
      { state: 'unhealthy', message: 'database down' },
      { state: 'healthy' },
    ]);
  });

  test('metrics and log messages', async () => {
    const f = await fixture(handler());
    const metrics: MetricsReport[] = [];
    const logs: LogMessage[] = [];
    f.transport.on('metrics', (m) => metrics.push(m));
    f.transport.on('log', (l) => logs.push(l));
    const report: MetricsReport = {
      agent_id: '',
      timestamp_ms: 1767225600000,
      interval_ms: 10_000,
      counters: [{ name: 'requests_total', help: 'Requests', labels: { route: 'api' }, value: 42 }],
      gauges: [{ name: 'in_flight', labels: {}, value: 1.5 }],
      histograms: [
        {
          name: 'latency_seconds',
          labels: {},
          sum: 0.75,
          count: 3,
          buckets: [
            { le: 0.1, count: 1 },
            { le: Number.POSITIVE_INFINITY, count: 3 },
          ],
        },
      ],
    };
    f.server.reportMetrics(report);
    f.server.sendLog({ level: 'warn', message: 'rule set reloaded', fields: { rules: '12' } });
    await vi.waitFor(() => expect(metrics.length + logs.length).toBe(2));
    expect(metrics[0]).toEqual({ ...report, agent_id: 'client-test' });
    expect(logs[0]).toMatchObject({
      level: 'warn',
      message: 'rule set reloaded',
      correlation_id: null,
      fields: { rules: '12' },
    });
  });

  test('a config update request is emitted and answered back to the agent', async () => {
    const f = await fixture(handler());
    const seen: ConfigUpdateRequest[] = [];
    f.transport.on('configUpdate', (r) => seen.push(r));
    const answer = await f.server.requestConfigUpdateAndWait({
      update_type: { type: 'list_update', list_id: 'blocked_ips', add: ['192.0.2.1'], remove: [] },
    });
    expect(answer.accepted).toBe(true);
    expect(answer.request_id).toBe(seen[0]?.request_id);
    expect(seen[0]?.update_type).toEqual({
      type: 'list_update',
      list_id: 'blocked_ips',
      add: ['192.0.2.1'],
      remove: [],
    });
  });

  test('onConfigUpdate decides the answer', async () => {
    const f = await fixture(handler(), {
      onConfigUpdate: (r) => ({ accepted: false, error: `no reload for ${r.update_type.type}` }),
    });
    const answer = await f.server.requestConfigUpdateAndWait({
      update_type: { type: 'request_reload' },
    });
    expect(answer).toMatchObject({ accepted: false, error: 'no reload for request_reload' });
  });

  test('drain: health draining, not healthy, new calls UNAVAILABLE', async () => {
    const f = await fixture(handler());
    const reports: HealthReport[] = [];
    f.transport.on('health', (r) => reports.push(r));
    f.server.startDrain(1000);
    await vi.waitFor(() => expect(f.transport.isHealthy()).toBe(false));
    expect(reports.some((r) => r.state === 'draining')).toBe(true);
    await vi.waitFor(() =>
      expect(f.transport.sendRequestHeaders(ev('d'))).rejects.toMatchObject({
        code: 'UNAVAILABLE',
      }),
    );
  });

  test('a graceful agent close ends the transport with a close event', async () => {
    const f = await fixture(handler());
    const closed = new Promise<unknown>((r) => f.transport.once('close', r));
    await f.server.close({ drainTimeoutMs: 100 });
    expect(((await closed) as { code: string }).code).toBe('CONNECTION_CLOSED');
    expect(f.transport.closed).toBe(true);
  });

  test('a local close emits close without an error', async () => {
    const f = await fixture(handler());
    const closed = new Promise<unknown>((r) => f.transport.once('close', (e) => r(e)));
    await f.transport.close();
    expect(await closed).toBeUndefined();
  });
});

describe('endpoints', () => {
  test.each([
    ['host:port', (p: number) => `127.0.0.1:${p}`],
    ['http:// prefix', (p: number) => `http://127.0.0.1:${p}`],
    ['dns:///', (p: number) => `dns:///localhost:${p}`],
    ['ipv4:', (p: number) => `ipv4:127.0.0.1:${p}`],
  ])('%s', async (_name, target) => {
    const server = new GrpcAgentServerV2(handler());
    cleanups.push(() => server.forceShutdown());
    const { port } = await server.listen('127.0.0.1:0');
    const t = await AgentClientV2.connect('client-test', target(port));
    cleanups.push(() => t.close());
    expect((await t.sendRequestHeaders(ev('e'))).decision).toBe('allow');
  });

  test('unix:/path on both sides', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'picket-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const server = new GrpcAgentServerV2(handler());
    cleanups.push(() => server.forceShutdown());
    const { address, port } = await server.listen(`unix:${join(dir, 'agent.sock')}`);
    expect(port).toBe(0);
    const t = await AgentClientV2.connect('client-test', address);
    cleanups.push(() => t.close());
    expect((await t.sendRequestHeaders(ev('u'))).decision).toBe('allow');
  });
});

/** A stand-in for a Rust GrpcAgentServerV2: no picket metadata, no ControlStream, custom as JSON text. */
async function rustLikeAgent() {
  const server = new Server();
  cleanups.push(() => server.forceShutdown());
  const received: ProxyToAgentMsg[] = [];
  server.register(
    METHOD_PATHS.ProcessStream,
    (call: ServerDuplexStream<ProxyToAgentMsg, Buffer>) => {
      call.sendMetadata(new Metadata());
      call.on('data', (m: ProxyToAgentMsg) => {
        received.push(m);
        if (m.handshake) {
          call.write(
            encodeAgentToProxy({
              handshake: {
                protocol_version: 2,
                capabilities: capabilitiesToProto(createCapabilities({ agentId: 'rusty' })),
                success: true,
              },
            }),
          );
        } else if (m.request_headers) {
          const cid = m.request_headers.metadata?.correlation_id ?? '';
          const r = agentResponseToProto(allow(), cid, 1);
          r.audit = { custom: { correlation_id: JSON.stringify(cid), note: 'plain text' } };
          call.write(encodeAgentToProxy({ response: r }));
        }
        // configure / guardrail / cancel: no reply, as the Rust server
      });
      call.on('error', () => undefined);
    },
    (b: Buffer) => b,
    (b: Buffer) => pb.ProxyToAgent.decode(b),
    'bidi',
  );
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (e, p) =>
      e ? reject(e) : resolve(p),
    ),
  );
  return { port, received };
}

describe('a Rust-like agent', () => {
  test('works without a ControlStream; custom JSON text is decoded', async () => {
    const { port, received } = await rustLikeAgent();
    const t = await AgentClientV2.connect('rusty', `127.0.0.1:${port}`);
    cleanups.push(() => t.close());
    expect(t.peerIsPicket).toBe(false);
    const r = await t.sendRequestHeaders(ev('r1'));
    expect(r.audit.custom).toEqual({ correlation_id: 'r1', note: 'plain text' });
    expect(received[0]?.handshake?.config_json).toBe('{}');
  });

  test('guardrail is UNSUPPORTED; configure resolves at once, tagged', async () => {
    const { port, received } = await rustLikeAgent();
    const t = await AgentClientV2.connect('rusty', `127.0.0.1:${port}`);
    cleanups.push(() => t.close());
    await expect(
      t.sendGuardrailInspect({
        correlation_id: 'g',
        inspection_type: 'prompt_injection',
        content: 'x',
        categories: [],
        metadata: {},
      }),
    ).rejects.toMatchObject({ code: 'UNSUPPORTED' });
    const c = await t.sendConfigure({ correlation_id: 'c', config: { a: 1 } });
    expect(c.audit.tags).toEqual(['configure_unacknowledged']);
    await vi.waitFor(() => expect(received.some((m) => m.configure)).toBe(true));
    expect(received.find((m) => m.configure)?.configure?.config_json).toBe('{"a":1}');
  });

  test('the pool path (sendInto) gives the same outcomes, to the call itself', async () => {
    const { port } = await rustLikeAgent();
    const t = await AgentClientV2.connect('rusty', `127.0.0.1:${port}`);
    cleanups.push(() => t.close());
    const outcome = (type: EventType, event: AgentEvent, cid: string) =>
      new Promise<string>((resolve) => {
        t[sendInto](
          {
            type,
            event,
            correlationId: cid,
            timeoutMs: 5_000,
            signal: undefined,
            answered: (r) => resolve(`answered ${JSON.stringify(r.audit.tags)}`),
            failed: (e) => resolve(`failed ${e.code} sent=${String(e.sent)}`),
          },
          performance.now(),
        );
      });
    expect(await outcome('request_headers', ev('s1'), 's1')).toBe('answered []');
    const guardrail = {
      correlation_id: 'g',
      inspection_type: 'prompt_injection' as const,
      content: 'x',
      categories: [],
      metadata: {},
    };
    expect(await outcome('guardrail_inspect', guardrail, 'g')).toBe(
      'failed UNSUPPORTED sent=false',
    );
    expect(await outcome('configure', { correlation_id: 'c', config: {} }, 'c')).toBe(
      'answered ["configure_unacknowledged"]',
    );
  });
});
