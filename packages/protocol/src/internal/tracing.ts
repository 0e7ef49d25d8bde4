/**
 * The OpenTelemetry machinery behind the `tracer` options: a lazily loaded
 * `@opentelemetry/api`, W3C traceparent parsing and formatting, the answer's
 * span attributes, and the agent side's span per event ({@link AgentTracing},
 * used by `runHook`). Nothing here runs unless a tracer was configured.
 */
import { createRequire } from 'node:module';
import type * as OtelApi from '@opentelemetry/api';
import type { Attributes, Context, Span, SpanContext, Tracer } from '@opentelemetry/api';
import { AgentProtocolError, ErrorCode } from '../errors.js';
import type { AgentHandler, RequestContext } from '../roles.js';
import { TraceAttributes as A } from '../tracing.js';
import type { AgentResponse, EventType } from '../types.js';
import { callHook, isThenable } from './dispatch.js';

export type { Context as OtelContext, Span as OtelSpan, Tracer as OtelTracer };

let api: typeof OtelApi | undefined;

/**
 * `@opentelemetry/api`, required on first use: only a configured tracer gets
 * here, so an untraced process never loads it. The API keeps its state in a
 * process-global registry, so this copy and the application's share it.
 */
export function otelApi(): typeof OtelApi {
  if (api === undefined) {
    try {
      api = createRequire(import.meta.url)('@opentelemetry/api') as typeof OtelApi;
    } catch (err) {
      throw new AgentProtocolError(
        ErrorCode.InvalidArgument,
        'tracing needs the @opentelemetry/api package installed next to picket',
        { cause: err },
      );
    }
  }
  return api;
}

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;
const ZEROS = /^0+$/;

/**
 * The span context of a W3C `traceparent` (remote), or undefined when it is
 * not one: version `ff`, all-zero ids, and a version-00 value with a suffix are
 * invalid; a later version may carry more fields after the four.
 */
export function parseTraceparent(value: unknown): SpanContext | undefined {
  if (typeof value !== 'string' || value.length > 512) return undefined;
  const m = TRACEPARENT.exec(value.trim());
  if (m === null) return undefined;
  const [, version, traceId, spanId, flags, rest] = m as unknown as string[];
  if (version === 'ff' || (version === '00' && rest !== undefined)) return undefined;
  if (ZEROS.test(traceId as string) || ZEROS.test(spanId as string)) return undefined;
  return {
    traceId: traceId as string,
    spanId: spanId as string,
    traceFlags: Number.parseInt(flags as string, 16),
    isRemote: true,
  };
}

/** The W3C `traceparent` (version 00) of a span context. */
export function formatTraceparent(sc: SpanContext): string {
  return `00-${sc.traceId}-${sc.spanId}-${(sc.traceFlags & 0xff).toString(16).padStart(2, '0')}`;
}

/** Sets the attributes describing an answer: decision, its status, a frame's decision. */
export function setAnswerAttributes(span: Span, r: unknown): void {
  if (r === null || typeof r !== 'object') return;
  const { decision, websocket_decision: ws } = r as Partial<AgentResponse>;
  if (typeof decision === 'string') span.setAttribute(A.decision, decision);
  else if (decision !== null && typeof decision === 'object') {
    const kind = Object.keys(decision)[0];
    if (kind !== undefined) span.setAttribute(A.decision, kind);
    const inner = (decision as Record<string, { status?: unknown } | undefined>)[kind ?? ''];
    if (typeof inner?.status === 'number') span.setAttribute(A.status, inner.status);
  }
  if (typeof ws === 'string') span.setAttribute(A.websocketDecision, ws);
  else if (ws !== null && typeof ws === 'object') span.setAttribute(A.websocketDecision, 'close');
}

/** Marks a span failed with `err`: status ERROR, the exception, its code when it has one. */
export function setSpanError(span: Span, err: unknown): void {
  const { SpanStatusCode } = otelApi();
  const message = err instanceof Error ? err.message : String(err);
  span.setStatus({ code: SpanStatusCode.ERROR, message });
  span.recordException(err instanceof Error ? err : message);
  if (err instanceof AgentProtocolError) span.setAttribute(A.errorCode, err.code);
}

/** Remote parents kept for the events after a request's headers (they carry no traceparent). */
const MAX_REMEMBERED = 10_000;

/**
 * The agent side's tracing: one SERVER span `picket.handle <type>` per event
 * around the handler's hook. Its parent is the request's `traceparent`
 * (`metadata.traceparent`, else the `traceparent` request header); later events
 * of the request carry none on the wire, so the parent seen with its request
 * headers is remembered (bounded, dropped at request complete). The hook runs
 * with the span active, so the handler's own spans nest under it.
 */
export class AgentTracing {
  readonly #api = otelApi();
  readonly #parents = new Map<string, Context>();

  constructor(readonly tracer: Tracer) {}

  /** `runHook` with a span: same result (an answer, or a promise of one that rejects when the hook failed). */
  run(handler: AgentHandler, type: EventType, event: unknown, ctx: RequestContext): unknown {
    const { context, trace, SpanKind } = this.#api;
    const cid = ctx.correlationId;
    const parent = this.#parent(type, event, cid);
    const attributes: Attributes = {
      [A.transport]: ctx.transport,
      [A.eventType]: type,
      [A.correlationId]: cid,
    };
    const span = this.tracer.startSpan(
      `picket.handle ${type}`,
      { kind: SpanKind.SERVER, attributes },
      parent,
    );
    const result = context.with(
      trace.setSpan(parent, span),
      callHook,
      undefined,
      handler,
      type,
      event,
      ctx,
    );
    if (!isThenable(result)) {
      setAnswerAttributes(span, result);
      span.end();
      return result;
    }
    return Promise.resolve(result).then(
      (r) => {
        setAnswerAttributes(span, r);
        span.end();
        return r;
      },
      (err: unknown) => {
        setSpanError(span, err);
        span.end();
        throw err;
      },
    );
  }

  #parent(type: EventType, event: unknown, cid: string): Context {
    const { context, trace } = this.#api;
    const parents = this.#parents;
    if (type === 'request_headers') {
      const sc = parseTraceparent(requestTraceparent(event));
      if (sc === undefined) return context.active();
      const parent = trace.setSpanContext(context.active(), sc);
      if (parents.size >= MAX_REMEMBERED && !parents.has(cid)) {
        parents.delete(parents.keys().next().value as string);
      }
      parents.set(cid, parent);
      return parent;
    }
    const parent = parents.get(cid);
    if (type === 'request_complete') parents.delete(cid);
    return parent ?? context.active();
  }
}

/** A request headers event's traceparent: `metadata.traceparent`, else its `traceparent` header. */
function requestTraceparent(event: unknown): unknown {
  if (event === null || typeof event !== 'object') return undefined;
  const { metadata, headers } = event as {
    metadata?: { traceparent?: unknown };
    headers?: unknown;
  };
  const fromMetadata = metadata?.traceparent;
  if (typeof fromMetadata === 'string') return fromMetadata;
  if (headers === null || typeof headers !== 'object') return undefined;
  const h = (headers as Record<string, unknown>).traceparent;
  return Array.isArray(h) ? h[0] : h;
}

/** The agent side's tracing for a server's `tracer` option; undefined (no cost) without one. */
export function agentTracing(tracer: Tracer | undefined, where: string): AgentTracing | undefined {
  if (tracer === undefined) return undefined;
  checkTracer(tracer, where);
  return new AgentTracing(tracer);
}

/** Throws INVALID_ARGUMENT naming `where` unless `tracer` looks like an OpenTelemetry Tracer. */
export function checkTracer(tracer: unknown, where: string): asserts tracer is Tracer {
  if (
    tracer === null ||
    typeof tracer !== 'object' ||
    typeof (tracer as { startSpan?: unknown }).startSpan !== 'function'
  ) {
    throw new AgentProtocolError(
      ErrorCode.InvalidArgument,
      `${where}: tracer must be an OpenTelemetry Tracer (with startSpan), got ${tracer === null ? 'null' : typeof tracer}`,
    );
  }
}
