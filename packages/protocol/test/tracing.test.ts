/**
 * The agent side's tracing in runHook (every server's dispatch) with a real in-memory
 * exporter, and W3C traceparent parsing.
 */
import { SpanKind, SpanStatusCode } from '@opentelemetry/api';
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import { describe, expect, it } from 'vitest';
import { type AgentHandler, block, createCapabilities, type RequestContext } from '../src/index.js';
import {
  AgentTracing,
  agentTracing,
  formatTraceparent,
  LazyAbort,
  parseTraceparent,
  requestContext,
  runHook,
} from '../src/internal/index.js';

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const SPAN = '00f067aa0ba902b7';

function setup(handler: Partial<AgentHandler>) {
  const exporter = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
  const tracing = new AgentTracing(provider.getTracer('t'));
  const h: AgentHandler = { capabilities: () => createCapabilities({ agentId: 't' }), ...handler };
  const ctx = (cid: string): RequestContext =>
    requestContext(new LazyAbort(), cid, 'uds', 'conn-1', undefined);
  const run = (type: Parameters<typeof runHook>[1], event: unknown, cid: string) =>
    runHook(h, type, event, ctx(cid), tracing);
  return { exporter, run };
}

const requestHeaders = (cid: string, tp?: string, headerTp?: string) => ({
  metadata: { correlation_id: cid, ...(tp !== undefined && { traceparent: tp }) },
  method: 'GET',
  uri: '/',
  headers: headerTp === undefined ? {} : { traceparent: [headerTp] },
});

describe('parseTraceparent / formatTraceparent', () => {
  it('accepts version 00 and later versions with more fields; round-trips', () => {
    const sc = parseTraceparent(`00-${TRACE}-${SPAN}-01`);
    expect(sc).toEqual({ traceId: TRACE, spanId: SPAN, traceFlags: 1, isRemote: true });
    expect(formatTraceparent(sc as NonNullable<typeof sc>)).toBe(`00-${TRACE}-${SPAN}-01`);
    expect(parseTraceparent(`01-${TRACE}-${SPAN}-00-extra`)?.traceFlags).toBe(0);
  });

  it.each([
    ['not a string', 42],
    ['empty', ''],
    ['version ff', `ff-${TRACE}-${SPAN}-01`],
    ['zero trace id', `00-${'0'.repeat(32)}-${SPAN}-01`],
    ['zero span id', `00-${TRACE}-${'0'.repeat(16)}-01`],
    ['upper case', `00-${TRACE.toUpperCase()}-${SPAN}-01`],
    ['short trace id', `00-${TRACE.slice(1)}-${SPAN}-01`],
    ['version 00 with a suffix', `00-${TRACE}-${SPAN}-01-x`],
    ['over-long', `01-${TRACE}-${SPAN}-01-${'a'.repeat(600)}`],
  ])('refuses %s', (_why, value) => {
    expect(parseTraceparent(value)).toBeUndefined();
  });
});

describe('runHook with tracing', () => {
  it('a span per event, child of metadata.traceparent (else the traceparent header)', async () => {
    const { exporter, run } = setup({ onRequestHeaders: () => block(403) });
    await run('request_headers', requestHeaders('a', `00-${TRACE}-${SPAN}-01`), 'a');
    await run(
      'request_headers',
      requestHeaders('b', undefined, `00-${TRACE}-${'1'.repeat(16)}-01`),
      'b',
    );
    const [a, b] = exporter.getFinishedSpans();
    expect(a?.name).toBe('picket.handle request_headers');
    expect(a?.kind).toBe(SpanKind.SERVER);
    expect(a?.parentSpanContext?.spanId).toBe(SPAN);
    expect(a?.spanContext().traceId).toBe(TRACE);
    expect(a?.attributes).toEqual({
      'picket.transport': 'uds',
      'picket.event.type': 'request_headers',
      'picket.correlation_id': 'a',
      'picket.decision': 'block',
      'picket.status': 403,
    });
    expect(b?.parentSpanContext?.spanId).toBe('1'.repeat(16));
  });

  it("later events join the request's trace until request complete", async () => {
    const { exporter, run } = setup({});
    await run('request_headers', requestHeaders('c', `00-${TRACE}-${SPAN}-01`), 'c');
    await run('request_body_chunk', { correlation_id: 'c' }, 'c');
    await run('request_complete', { correlation_id: 'c' }, 'c');
    await run('response_headers', { correlation_id: 'c' }, 'c'); // after complete: forgotten
    const spans = exporter.getFinishedSpans();
    expect(spans.map((s) => s.parentSpanContext?.spanId)).toEqual([SPAN, SPAN, SPAN, undefined]);
    // no hook: the default allow, still one span
    expect(spans.map((s) => s.attributes['picket.decision'])).toEqual([
      'allow',
      'allow',
      'allow',
      'allow',
    ]);
  });

  it('a hook that throws or rejects: ERROR span with the exception, same rejection', async () => {
    const boom = new Error('boom');
    const { exporter, run } = setup({
      onRequestHeaders: () => {
        throw boom;
      },
      onResponseHeaders: async () => {
        throw new Error('async boom');
      },
    });
    await expect(run('request_headers', requestHeaders('d'), 'd')).rejects.toBe(boom);
    await expect(run('response_headers', { correlation_id: 'd' }, 'd')).rejects.toThrow(
      'async boom',
    );
    const spans = exporter.getFinishedSpans();
    expect(spans.map((s) => s.status)).toEqual([
      { code: SpanStatusCode.ERROR, message: 'boom' },
      { code: SpanStatusCode.ERROR, message: 'async boom' },
    ]);
    expect(spans.map((s) => s.events.map((e) => e.name))).toEqual([['exception'], ['exception']]);
    expect(spans[0]?.attributes['picket.decision']).toBeUndefined();
  });

  it('a synchronous answer stays synchronous', () => {
    const { run } = setup({ onRequestHeaders: () => block(401) });
    const r = run('request_headers', requestHeaders('e'), 'e');
    expect(r).toMatchObject({ decision: { block: { status: 401 } } });
  });

  it('no tracer: no tracing object; a bad one is refused by name', () => {
    expect(agentTracing(undefined, 'S')).toBeUndefined();
    expect(() => agentTracing({} as never, 'MyServer')).toThrow(
      /MyServer: tracer must be an OpenTelemetry Tracer/,
    );
  });
});
