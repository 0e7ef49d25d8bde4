/**
 * The pool's OpenTelemetry spans: one CLIENT span `picket.agent <type>` per
 * call, its W3C traceparent written into the request headers event so the
 * agent's span becomes its child. Only built when the pool has a tracer; the
 * call path pays nothing otherwise.
 */
import type { Context, Span, Tracer } from '@opentelemetry/api';
import {
  TraceAttributes as A,
  AgentProtocolError,
  type AgentResponse,
  ErrorCode,
  type EventType,
  type RequestHeadersEvent,
  type TransportKind,
} from '@picket/protocol';
import {
  checkTracer,
  formatTraceparent,
  otelApi,
  parseTraceparent,
  setAnswerAttributes,
  setSpanError,
} from '@picket/protocol/internal';
import { affinityKey } from './agent-state.js';
import type { PoolOptions } from './options.js';

/** The instrumentation scope of `tracing: true`. */
export const POOL_TRACER_NAME = '@picket/pool';
const POOL_VERSION = '0.1.0';
/** Parent contexts kept for the calls after a request's headers. */
const MAX_REMEMBERED = 10_000;

export class PoolTracing {
  readonly #api = otelApi();
  readonly #parents = new Map<string, Context>();

  constructor(readonly tracer: Tracer) {}

  /**
   * Starts a call's span. Parent: `explicit`, else the active context; when
   * neither holds a span, a request headers event's `metadata.traceparent` (the
   * gateway's trace). Later events of the request (no traceparent of their own)
   * without a span of their own reuse the parent its request headers call had,
   * or that call's span when it had none.
   */
  start(
    agentId: string,
    type: EventType,
    event: unknown,
    cid: string,
    explicit: Context | undefined,
  ): Span {
    const { context, trace, SpanKind } = this.#api;
    const parents = this.#parents;
    let parent = explicit ?? context.active();
    const hasSpan = trace.getSpanContext(parent) !== undefined;
    const key = affinityKey(agentId, cid);
    if (type === 'request_headers') {
      if (!hasSpan) {
        const sc = parseTraceparent((event as Partial<RequestHeadersEvent>).metadata?.traceparent);
        if (sc !== undefined) parent = trace.setSpanContext(parent, sc);
      }
    } else {
      const remembered = parents.get(key);
      if (!hasSpan && remembered !== undefined) parent = remembered;
      if (type === 'request_complete') parents.delete(key);
    }
    const span = this.tracer.startSpan(
      `picket.agent ${type}`,
      {
        kind: SpanKind.CLIENT,
        attributes: { [A.agent]: agentId, [A.eventType]: type, [A.correlationId]: cid },
      },
      parent,
    );
    if (type === 'request_headers') {
      if (parents.size >= MAX_REMEMBERED && !parents.has(key)) {
        parents.delete(parents.keys().next().value as string);
      }
      // with no trace to join, the request's later calls join this span's
      parents.set(key, trace.getSpanContext(parent) ? parent : trace.setSpan(parent, span));
    }
    return span;
  }

  /**
   * The event to send: a request headers event gets the span's traceparent in
   * `metadata.traceparent` and, when it carries one, its `traceparent` header
   * (a copy; the caller's event is not changed). Other events have no place for it.
   */
  stamp(span: Span, type: EventType, event: unknown): unknown {
    if (type !== 'request_headers' || event === null || typeof event !== 'object') return event;
    const sc = span.spanContext();
    if (!this.#api.trace.isSpanContextValid(sc)) return event;
    const tp = formatTraceparent(sc);
    const e = event as RequestHeadersEvent;
    const stamped: RequestHeadersEvent = { ...e, metadata: { ...e.metadata, traceparent: tp } };
    if (
      e.headers !== null &&
      typeof e.headers === 'object' &&
      Object.hasOwn(e.headers, 'traceparent')
    ) {
      stamped.headers = { ...e.headers, traceparent: [tp] };
    }
    return stamped;
  }

  /** The connection the attempt goes out on. */
  sending(span: Span, kind: TransportKind): void {
    span.setAttribute(A.transport, kind);
  }

  /** The agent answered. */
  answered(span: Span, response: AgentResponse): void {
    setAnswerAttributes(span, response);
    span.end();
  }

  /** The call failed with `err`; `answer` is the failure mode's, `mode` which one (none: it threw). */
  failed(
    span: Span,
    err: unknown,
    mode: 'open' | 'closed' | undefined,
    answer: AgentResponse | undefined,
  ): void {
    setSpanError(span, err);
    if (mode !== undefined) span.setAttribute(A.failureMode, mode);
    if (answer !== undefined) setAnswerAttributes(span, answer);
    span.end();
  }
}

/** The pool's tracing from its options: `tracer`, else `tracing: true` (the global provider's tracer), else none. */
export function poolTracing(options: PoolOptions): PoolTracing | undefined {
  const { tracer, tracing } = options;
  if (tracing !== undefined && typeof tracing !== 'boolean') {
    throw new AgentProtocolError(
      ErrorCode.InvalidArgument,
      `pool option tracing must be a boolean, got ${typeof tracing}`,
    );
  }
  if (tracer !== undefined) {
    checkTracer(tracer, 'AgentPool');
    return new PoolTracing(tracer);
  }
  if (tracing === true) {
    return new PoolTracing(otelApi().trace.getTracer(POOL_TRACER_NAME, POOL_VERSION));
  }
  return undefined;
}
