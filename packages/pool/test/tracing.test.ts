/**
 * OpenTelemetry spans through a real UDS agent: the pool's CLIENT span per call and the
 * agent server's SERVER span per event, linked through the traceparent the pool writes
 * into the request headers event; failures and handler exceptions give ERROR spans;
 * without a tracer nothing is traced and @opentelemetry/api is never loaded.
 */
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  type ReadableSpan,
  SimpleSpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import {
  type AgentHandler,
  type AgentResponse,
  allow,
  block,
  createCapabilities,
  type RequestHeadersEvent,
} from '@picket/protocol';
import { AgentClientV2Uds, silentLogger, UdsAgentServerV2 } from '@picket/uds';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AgentPool, type PoolOptions } from '../src/index.js';
import { bodyChunk, complete, headers, until } from './fake-transport.js';
import { deferred, tempDir } from './uds-helpers.js';

const execFileAsync = promisify(execFile);
const here = dirname(fileURLToPath(import.meta.url));

const CLIENT_TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const CLIENT_SPAN = '00f067aa0ba902b7';
const CLIENT_TP = `00-${CLIENT_TRACE}-${CLIENT_SPAN}-01`;

function provider(): { exporter: InMemorySpanExporter; provider: BasicTracerProvider } {
  const exporter = new InMemorySpanExporter();
  return {
    exporter,
    provider: new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }),
  };
}

let tmp: ReturnType<typeof tempDir>;
let proxySide: ReturnType<typeof provider>;
let agentSide: ReturnType<typeof provider>;
const closers: (() => Promise<unknown>)[] = [];

beforeEach(() => {
  tmp = tempDir();
  proxySide = provider();
  agentSide = provider();
});

afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
  tmp.cleanup();
});

/** What the agent's hooks do; `seen` keeps the request headers events as the agent got them. */
interface Agent {
  seen: RequestHeadersEvent[];
  onHeaders: (e: RequestHeadersEvent) => AgentResponse | Promise<AgentResponse>;
}

async function setup(
  poolOptions: PoolOptions,
  traceAgent = true,
): Promise<{ pool: AgentPool; agent: Agent }> {
  const agent: Agent = { seen: [], onHeaders: () => block(403) };
  const handler: AgentHandler = {
    capabilities: () => createCapabilities({ agentId: 'waf' }),
    onRequestHeaders: (e) => {
      agent.seen.push(e);
      return agent.onHeaders(e);
    },
    onRequestBodyChunk: () => allow(),
  };
  const path = tmp.sock('waf');
  const server = new UdsAgentServerV2(path, handler, {
    logger: silentLogger,
    drainTimeoutMs: 0,
    ...(traceAgent ? { tracer: agentSide.provider.getTracer('agent') } : {}),
  });
  await server.listen();
  closers.push(() => server.close({ drainTimeoutMs: 0 }));
  const pool = new AgentPool({ healthCheckIntervalMs: 0, connectionsPerAgent: 1, ...poolOptions });
  closers.push(() => pool.close({ drainTimeoutMs: 0 }));
  await pool.addAgent('waf', () =>
    AgentClientV2Uds.connect('waf', path, { timeoutMs: 10_000, logger: silentLogger }),
  );
  return { pool, agent };
}

const handlerOf = (agentId: string): AgentHandler => ({
  capabilities: () => createCapabilities({ agentId }),
});

function only(spans: ReadableSpan[], name: string): ReadableSpan {
  const found = spans.filter((s) => s.name === name);
  expect(found.map((s) => s.name)).toEqual([name]);
  return found[0] as ReadableSpan;
}

/** A request headers event as the gateway sends it: its traceparent in metadata and headers. */
function gatewayHeaders(cid: string): RequestHeadersEvent {
  const e = headers(cid);
  e.metadata.traceparent = CLIENT_TP;
  e.headers = { traceparent: [CLIENT_TP], host: ['example.test'] };
  return e;
}

describe('tracing through a real UDS agent', () => {
  it('links the proxy CLIENT span and the agent SERVER span through traceparent', async () => {
    const { pool, agent } = await setup({ tracer: proxySide.provider.getTracer('proxy') });
    const event = gatewayHeaders('c1');
    const before = structuredClone(event);
    const r = await pool.sendRequestHeaders('waf', event);
    expect(r.decision).toEqual({ block: expect.objectContaining({ status: 403 }) });
    expect(event).toEqual(before); // the caller's event is not changed

    const proxy = only(proxySide.exporter.getFinishedSpans(), 'picket.agent request_headers');
    await until(() => agentSide.exporter.getFinishedSpans().length > 0, 'agent span');
    const server = only(agentSide.exporter.getFinishedSpans(), 'picket.handle request_headers');

    expect(proxy.kind).toBe(SpanKind.CLIENT);
    expect(server.kind).toBe(SpanKind.SERVER);
    // the gateway's trace is the proxy span's parent, the proxy span the agent span's
    expect(proxy.spanContext().traceId).toBe(CLIENT_TRACE);
    expect(proxy.parentSpanContext?.spanId).toBe(CLIENT_SPAN);
    expect(server.spanContext().traceId).toBe(CLIENT_TRACE);
    expect(server.parentSpanContext?.spanId).toBe(proxy.spanContext().spanId);
    expect(server.parentSpanContext?.isRemote).toBe(true);

    const tp = `00-${CLIENT_TRACE}-${proxy.spanContext().spanId}-01`;
    expect(agent.seen[0]?.metadata.traceparent).toBe(tp);
    expect(agent.seen[0]?.headers.traceparent).toEqual([tp]);
    expect(agent.seen[0]?.headers.host).toEqual(['example.test']);

    expect(proxy.attributes).toMatchObject({
      'picket.agent.name': 'waf',
      'picket.transport': 'uds',
      'picket.event.type': 'request_headers',
      'picket.correlation_id': 'c1',
      'picket.decision': 'block',
      'picket.status': 403,
    });
    expect(proxy.status.code).toBe(SpanStatusCode.UNSET);
    expect(server.attributes).toMatchObject({
      'picket.transport': 'uds',
      'picket.event.type': 'request_headers',
      'picket.correlation_id': 'c1',
      'picket.decision': 'block',
      'picket.status': 403,
    });
    expect(server.status.code).toBe(SpanStatusCode.UNSET);
  });

  it("keeps a request's later events in its trace (they carry no traceparent)", async () => {
    const { pool } = await setup({ tracer: proxySide.provider.getTracer('proxy') });
    await pool.sendRequestHeaders('waf', gatewayHeaders('c2'));
    await pool.sendRequestBodyChunk('waf', bodyChunk('c2'));
    await pool.sendRequestComplete('waf', complete('c2'));
    await until(() => agentSide.exporter.getFinishedSpans().length === 3, 'three agent spans');
    const proxySpans = proxySide.exporter.getFinishedSpans();
    const headersSpan = only(proxySpans, 'picket.agent request_headers');
    const chunk = only(proxySpans, 'picket.agent request_body_chunk');
    expect(chunk.spanContext().traceId).toBe(CLIENT_TRACE);
    expect(chunk.parentSpanContext?.spanId).toBe(CLIENT_SPAN);
    const agentSpans = agentSide.exporter.getFinishedSpans();
    expect(agentSpans.map((s) => s.spanContext().traceId)).toEqual([
      CLIENT_TRACE,
      CLIENT_TRACE,
      CLIENT_TRACE,
    ]);
    const agentChunk = only(agentSpans, 'picket.handle request_body_chunk');
    expect(agentChunk.parentSpanContext?.spanId).toBe(headersSpan.spanContext().spanId);
    expect(agentChunk.attributes['picket.decision']).toBe('allow');
  });

  it('uses an explicit parentContext over the event traceparent', async () => {
    const tracer = proxySide.provider.getTracer('proxy');
    const { pool } = await setup({ tracer });
    const parent = tracer.startSpan('gateway request');
    await pool.sendRequestHeaders('waf', gatewayHeaders('c3'), {
      parentContext: trace.setSpan(ROOT_CONTEXT, parent),
    });
    // the request's next call, with no parent given, stays in that trace
    await pool.sendRequestBodyChunk('waf', bodyChunk('c3'));
    parent.end();
    const chunk = only(proxySide.exporter.getFinishedSpans(), 'picket.agent request_body_chunk');
    expect(chunk.parentSpanContext?.spanId).toBe(parent.spanContext().spanId);
    const call = only(proxySide.exporter.getFinishedSpans(), 'picket.agent request_headers');
    expect(call.spanContext().traceId).toBe(parent.spanContext().traceId);
    expect(call.parentSpanContext?.spanId).toBe(parent.spanContext().spanId);
    await until(() => agentSide.exporter.getFinishedSpans().length > 0, 'agent span');
    const agentSpan = only(agentSide.exporter.getFinishedSpans(), 'picket.handle request_headers');
    expect(agentSpan.spanContext().traceId).toBe(parent.spanContext().traceId);
  });

  it('a timeout gives an ERROR span with the failure mode and its answer', async () => {
    const { pool, agent } = await setup({
      tracer: proxySide.provider.getTracer('proxy'),
      requestTimeoutMs: 200,
      circuitBreaker: false,
    });
    const gate = deferred<AgentResponse>();
    agent.onHeaders = () => gate.promise;
    const r = await pool.sendRequestHeaders('waf', headers('slow'));
    gate.resolve(allow());
    expect(r.audit.tags).toContain('fail_closed');
    const span = only(proxySide.exporter.getFinishedSpans(), 'picket.agent request_headers');
    expect(span.status.code).toBe(SpanStatusCode.ERROR);
    expect(span.status.message).toMatch(/did not answer request_headers slow/);
    expect(span.attributes).toMatchObject({
      'picket.error.code': 'TIMEOUT',
      'picket.failure_mode': 'closed',
      'picket.decision': 'block',
      'picket.status': 503,
    });
    expect(span.events.map((e) => e.name)).toContain('exception');
  });

  it('an answer of the fail-open mode is an ERROR span too', async () => {
    const path = tmp.sock('nobody'); // nothing listens: every attempt fails
    const pool = new AgentPool({
      tracer: proxySide.provider.getTracer('proxy'),
      failureMode: 'open',
      healthCheckIntervalMs: 0,
      connectionsPerAgent: 1,
      reconnect: { initialDelayMs: 10_000, maxDelayMs: 10_000 },
    });
    closers.push(() => pool.close({ drainTimeoutMs: 0 }));
    await pool.addAgent('gone', () =>
      AgentClientV2Uds.connect('gone', path, { logger: silentLogger }),
    );
    const r = await pool.sendRequestHeaders('gone', headers('open'));
    expect(r.decision).toBe('allow');
    const span = only(proxySide.exporter.getFinishedSpans(), 'picket.agent request_headers');
    expect(span.status.code).toBe(SpanStatusCode.ERROR);
    expect(span.attributes).toMatchObject({
      'picket.failure_mode': 'open',
      'picket.decision': 'allow',
      'picket.agent.name': 'gone',
    });
    expect(span.attributes['picket.error.code']).toEqual(expect.any(String));
  });

  it('a handler exception gives an ERROR server span (and never an allow)', async () => {
    const { pool, agent } = await setup({ tracer: proxySide.provider.getTracer('proxy') });
    agent.onHeaders = () => {
      throw new Error('rule engine exploded');
    };
    const r = await pool.sendRequestHeaders('waf', gatewayHeaders('boom'));
    expect(r.decision).toEqual({ block: expect.objectContaining({ status: 500 }) });
    await until(() => agentSide.exporter.getFinishedSpans().length > 0, 'agent span');
    const server = only(agentSide.exporter.getFinishedSpans(), 'picket.handle request_headers');
    expect(server.status).toEqual({ code: SpanStatusCode.ERROR, message: 'rule engine exploded' });
    expect(server.events.map((e) => e.name)).toEqual(['exception']);
    // the agent answered (its error policy's block): the call itself did not fail
    const proxy = only(proxySide.exporter.getFinishedSpans(), 'picket.agent request_headers');
    expect(proxy.status.code).toBe(SpanStatusCode.UNSET);
    expect(proxy.attributes['picket.status']).toBe(500);
    expect(server.parentSpanContext?.spanId).toBe(proxy.spanContext().spanId);
  });

  it('without a tracer: no span, the event goes out as given', async () => {
    const { pool, agent } = await setup({}, false);
    const event = headers('plain');
    await pool.sendRequestHeaders('waf', event);
    expect(agent.seen[0]?.metadata).not.toHaveProperty('traceparent');
    expect(proxySide.exporter.getFinishedSpans()).toEqual([]);
    expect(agentSide.exporter.getFinishedSpans()).toEqual([]);
  });

  it('refuses a tracer that is not one, naming the option', () => {
    expect(() => new AgentPool({ tracer: {} as never })).toThrow(/AgentPool: tracer must be/);
    expect(() => new AgentPool({ tracing: 'yes' as never })).toThrow(/tracing must be a boolean/);
    expect(
      () => new UdsAgentServerV2(tmp.sock('x'), handlerOf('x'), { tracer: 42 as never }),
    ).toThrow(/UdsAgentServerV2 .*tracer must be an OpenTelemetry Tracer/);
  });
});

describe('cost when tracing is off', () => {
  it('never loads @opentelemetry/api without a tracer, and does with tracing: true', async () => {
    const script = join(here, 'fixtures', 'otel-loaded.ts');
    const run = async (tracing: string) => {
      const { stdout } = await execFileAsync(
        process.execPath,
        ['--import', 'tsx', script, tmp.sock(`probe-${tracing}`), tracing],
        { cwd: join(here, '..'), timeout: 60_000 },
      );
      return JSON.parse(stdout.trim().split('\n').pop() as string) as {
        decision: unknown;
        loaded: string[];
      };
    };
    const off = await run('off');
    expect(off.decision).toBe('allow');
    expect(off.loaded).toEqual([]);
    const on = await run('on'); // the check can fail: with tracing the API is loaded
    expect(on.decision).toBe('allow');
    expect(on.loaded.length).toBeGreaterThan(0);
  });

  it('the built packages import nothing from @opentelemetry (types only)', () => {
    const dists = ['../dist', '../../protocol/dist', '../../uds/dist'].map((d) => join(here, d));
    const offenders: string[] = [];
    for (const dist of dists) {
      for (const f of readdirSync(dist, { recursive: true }) as string[]) {
        if (!f.endsWith('.js')) continue;
        const text = readFileSync(join(dist, f), 'utf8');
        if (/(?:from|import\()\s*['"]@opentelemetry/.test(text)) offenders.push(join(dist, f));
      }
    }
    expect(offenders).toEqual([]);
  });
});

describe('docs/observability.md', () => {
  it('embeds examples/tracing.ts byte for byte', () => {
    const doc = readFileSync(join(here, '../../../docs/observability.md'), 'utf8');
    const m = /<!-- file: packages\/pool\/examples\/tracing\.ts -->\n```ts\n([\s\S]*?)```\n/.exec(
      doc,
    );
    expect(m?.[1]).toBe(readFileSync(join(here, '../examples/tracing.ts'), 'utf8'));
  });
});
