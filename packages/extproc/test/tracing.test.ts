/**
 * ExtProcServer's `tracer`: Envoy sends the request's W3C traceparent as a header; each
 * event of the stream is one SERVER span in that trace, the body's too (it carries none),
 * and a throwing handler gives an ERROR span while Envoy still gets a block.
 */
import { SpanKind, SpanStatusCode } from '@opentelemetry/api';
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import { describe, expect, it } from 'vitest';
import { requestBody, requestHeaders, start, TestAgent } from './helpers.js';

const TRACE = '0af7651916cd43dd8448eb211c80319c';
const PARENT = 'b7ad6b7169203331';

function tracer() {
  const exporter = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
  return { exporter, tracer: provider.getTracer('extproc-test') };
}

describe('ExtProcServer tracing', () => {
  it("spans every event of a stream under the request's traceparent header", async () => {
    const { exporter, tracer: t } = tracer();
    const { stream } = await start(new TestAgent(), { tracer: t });
    const s = stream();
    await s.exchange(
      requestHeaders('/traced', {
        endOfStream: false,
        extra: [['traceparent', `00-${TRACE}-${PARENT}-01`]],
      }),
    );
    await s.exchange(requestBody('hello', true));
    await s.finish();
    const spans = exporter.getFinishedSpans();
    expect(spans.map((x) => x.name)).toEqual([
      'picket.handle request_headers',
      'picket.handle request_body_chunk',
    ]);
    for (const span of spans) {
      expect(span.kind).toBe(SpanKind.SERVER);
      expect(span.spanContext().traceId).toBe(TRACE);
      expect(span.parentSpanContext?.spanId).toBe(PARENT);
      expect(span.attributes['picket.transport']).toBe('extproc');
      expect(span.attributes['picket.decision']).toBe('allow');
    }
  });

  it('a throwing handler: ERROR span, and Envoy gets the block', async () => {
    const { exporter, tracer: t } = tracer();
    const { stream } = await start(new TestAgent(), { tracer: t });
    const s = stream();
    const r = await s.exchange(requestHeaders('/throw'));
    await s.finish();
    expect(r.immediate_response?.status?.code).toBe(500);
    const [span] = exporter.getFinishedSpans();
    expect(span?.status).toEqual({ code: SpanStatusCode.ERROR, message: 'handler exploded' });
  });
});
