/**
 * serve()'s `tracer` reaches every server kind: a request headers event carrying a
 * traceparent gives one SERVER span on the agent, child of that traceparent, on UDS,
 * gRPC (TCP and Unix socket) and v1 over real sockets.
 */
import { SpanKind, SpanStatusCode } from '@opentelemetry/api';
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import { silentLogger } from '@picket/uds';
import { afterEach, describe, expect, it } from 'vitest';
import { serve, V2Transport } from '../src/index.js';
import { Closer, echo, headers, tempDir } from './helpers.js';

const closer = new Closer();
afterEach(() => closer.closeAll());

const TRACE = '0af7651916cd43dd8448eb211c80319c';
const PARENT = 'b7ad6b7169203331';

describe('serve({ tracer })', () => {
  it('every server traces its events as SERVER spans under the request traceparent', async () => {
    const exporter = new InMemorySpanExporter();
    const provider = new BasicTracerProvider({
      spanProcessors: [new SimpleSpanProcessor(exporter)],
    });
    const tmp = closer.add(tempDir(), (d) => d.cleanup());
    const served = await serve(
      [
        `unix:${tmp.path('a.sock')}`,
        'grpc://127.0.0.1:0',
        `grpc+unix:${tmp.path('g.sock')}`,
        `v1+unix:${tmp.path('v1.sock')}`,
      ],
      echo('traced'),
      { logger: silentLogger, tracer: provider.getTracer('agent') },
    );
    closer.add(served, (s) => s.close());
    const kinds = ['uds', 'grpc', 'grpc', 'v1'];
    for (const [i, endpoint] of served.endpoints.entries()) {
      const t = await V2Transport.connect(`probe-${i}`, endpoint, {
        connectTimeoutMs: 10_000,
        logger: silentLogger,
      });
      try {
        const event = headers('/traced', `trace-${i}`);
        await t.sendRequestHeaders(
          { ...event, metadata: { ...event.metadata, traceparent: `00-${TRACE}-${PARENT}-01` } },
          { timeoutMs: 10_000 },
        );
      } finally {
        await t.close();
      }
      const spans = exporter
        .getFinishedSpans()
        .filter((s) => s.attributes['picket.correlation_id'] === `trace-${i}`);
      expect(
        spans.map((s) => s.name),
        endpoint,
      ).toEqual(['picket.handle request_headers']);
      const [span] = spans;
      expect(span?.kind).toBe(SpanKind.SERVER);
      expect(span?.attributes['picket.transport'], endpoint).toBe(kinds[i]);
      expect(span?.attributes['picket.decision']).toBe('allow');
      expect(span?.status.code).toBe(SpanStatusCode.UNSET);
      expect(span?.spanContext().traceId, endpoint).toBe(TRACE);
      expect(span?.parentSpanContext?.spanId, endpoint).toBe(PARENT);
    }
  });
});
