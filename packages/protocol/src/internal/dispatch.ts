/**
 * Agent-side dispatch shared by every picket server (UDS, gRPC, v1, reverse):
 * which hook answers which event, the default answer when there is none, the
 * RequestContext with its lazily created signal, cancel notification, and the
 * error policy's answer. The wires only decode, encode (checking the answer as
 * they write it) and schedule.
 */
import { allow, websocketAllow } from '../builders.js';
import { AgentProtocolError, ErrorCode } from '../errors.js';
import { type ErrorPolicy, type HandlerErrorInfo, handlerErrorResponse } from '../handler-error.js';
import type { Logger } from '../logger.js';
import type { AgentHandler, ConfigUpdateInput, RequestContext, TransportKind } from '../roles.js';
import type { AgentResponse, CancelReason, ConfigUpdateRequest, EventType } from '../types.js';
import type { AgentTracing } from './tracing.js';

/** The handler hook answering each event. */
export const EVENT_HOOK = {
  request_headers: 'onRequestHeaders',
  request_body_chunk: 'onRequestBodyChunk',
  response_headers: 'onResponseHeaders',
  response_body_chunk: 'onResponseBodyChunk',
  request_complete: 'onRequestComplete',
  web_socket_frame: 'onWebSocketFrame',
  guardrail_inspect: 'onGuardrailInspect',
  configure: 'onConfigure',
} as const satisfies Record<EventType, keyof AgentHandler>;

type AnyHook = (event: unknown, ctx: RequestContext) => unknown;

/** The answer to an event whose hook the handler lacks: allow (a WebSocket frame: `websocket_decision: "allow"`), as Rust agents. */
export function defaultResponse(type: EventType): AgentResponse {
  return type === 'web_socket_frame' ? websocketAllow() : allow();
}

/** Whether `await` would wait on `v`. */
export function isThenable(v: unknown): v is PromiseLike<unknown> {
  return (
    v !== null &&
    (typeof v === 'object' || typeof v === 'function') &&
    typeof (v as { then?: unknown }).then === 'function'
  );
}

/**
 * Runs `handler`'s hook for `type`: returns what it returned (an answer or a
 * promise of one) unchecked, the default answer when there is no hook, and a
 * rejected promise when it threw, so a caller has one error path. A caller that
 * wants no promise for a synchronous answer checks {@link isThenable}. With
 * `tracing` (a server's `tracer` option) the hook runs inside a span.
 */
export function runHook(
  handler: AgentHandler,
  type: EventType,
  event: unknown,
  ctx: RequestContext,
  tracing?: AgentTracing,
): unknown {
  if (tracing !== undefined) return tracing.run(handler, type, event, ctx);
  return callHook(handler, type, event, ctx);
}

/** {@link runHook} without tracing. */
export function callHook(
  handler: AgentHandler,
  type: EventType,
  event: unknown,
  ctx: RequestContext,
): unknown {
  const hook = handler[EVENT_HOOK[type]] as AnyHook | undefined;
  if (hook === undefined) return defaultResponse(type);
  try {
    return hook.call(handler, event, ctx);
  } catch (err) {
    return Promise.reject(err);
  }
}

/**
 * The abort state of one event, whose AbortSignal exists only once someone reads
 * it: an AbortSignal costs microseconds and most handlers never look at
 * `ctx.signal`. A plain object will do, so a server can keep these fields in the
 * record it already makes per event (an object literal: cheaper than a class).
 */
export interface AbortState {
  controller: AbortController | undefined;
  aborted: boolean;
  reason: unknown;
}

/** The event's signal, created on first use (already aborted if the event was). */
export function signalOf(s: AbortState): AbortSignal {
  let c = s.controller;
  if (c === undefined) {
    c = new AbortController();
    s.controller = c;
    if (s.aborted) c.abort(s.reason);
  }
  return c.signal;
}

/** Aborts the event's signal, or remembers the reason for when someone asks for it. */
export function abortEvent(s: AbortState, reason: unknown): void {
  if (s.aborted) return;
  s.aborted = true;
  s.reason = reason;
  s.controller?.abort(reason);
}

/** An {@link AbortState} with methods, for servers that keep nothing else per event. */
export class LazyAbort implements AbortState {
  controller: AbortController | undefined = undefined;
  aborted = false;
  reason: unknown = undefined;

  get signal(): AbortSignal {
    return signalOf(this);
  }

  abort(reason: unknown): void {
    abortEvent(this, reason);
  }
}

const ABORT = Symbol('abort');

/** `ctx.signal`: an own enumerable accessor (spreading ctx keeps it), one getter so every ctx has the same shape. */
const SIGNAL_PROPERTY: PropertyDescriptor = {
  enumerable: true,
  configurable: true,
  get(this: { [ABORT]: AbortState }): AbortSignal {
    return signalOf(this[ABORT]);
  },
};

/** The RequestContext of one event; its `signal` is `abort`'s. */
export function requestContext(
  abort: AbortState,
  correlationId: string,
  transport: TransportKind,
  connectionId: string,
  proxyId: string | undefined,
): RequestContext {
  const ctx: Record<string | symbol, unknown> = {
    correlationId,
    transport,
    connectionId,
    [ABORT]: abort,
  };
  if (proxyId !== undefined) ctx.proxyId = proxyId;
  Object.defineProperty(ctx, 'signal', SIGNAL_PROPERTY);
  return ctx as unknown as RequestContext;
}

/** Tells the handler a request was cancelled; a throwing `onCancel` is logged, not fatal. */
export function notifyCancel(
  handler: AgentHandler,
  correlationId: string,
  reason: CancelReason,
  logger: Logger,
  connectionId: string,
): void {
  try {
    handler.onCancel?.(correlationId, reason);
  } catch (err) {
    logger.warn('handler.onCancel threw', {
      connectionId,
      correlationId,
      error: err instanceof Error ? err.message : String(err),
    });
  }
}

/**
 * Checks an `errorPolicy` option; throws INVALID_ARGUMENT naming it otherwise.
 * `'allow'` (accepted by older UDS servers) is refused on purpose.
 */
export function checkErrorPolicy(policy: unknown, where: string): ErrorPolicy {
  if (policy === undefined) return 'block';
  if (policy === 'block' || policy === 'close' || typeof policy === 'function') {
    return policy as ErrorPolicy;
  }
  if (policy !== null && typeof policy === 'object' && !Array.isArray(policy)) {
    const { status, body } = policy as { status?: unknown; body?: unknown };
    if (
      status !== undefined &&
      !(Number.isInteger(status) && (status as number) >= 100 && (status as number) <= 599)
    ) {
      throw new AgentProtocolError(
        ErrorCode.InvalidArgument,
        `${where}: errorPolicy.status must be an HTTP status 100-599, got ${String(status)}`,
      );
    }
    if (body !== undefined && body !== null && typeof body !== 'string') {
      throw new AgentProtocolError(
        ErrorCode.InvalidArgument,
        `${where}: errorPolicy.body must be a string or null`,
      );
    }
    return policy as ErrorPolicy;
  }
  const hint = policy === 'allow' ? ' (a handler error never becomes allow)' : '';
  throw new AgentProtocolError(
    ErrorCode.InvalidArgument,
    `${where}: errorPolicy must be 'block', 'close', { status, body } or a function, got ${JSON.stringify(policy) ?? String(policy)}${hint}`,
  );
}

/**
 * True when `r` lets the event through: a WebSocket frame unless it is closed or
 * dropped (its `websocket_decision` is what counts for a frame), any other event
 * when the decision is allow.
 */
function allows(r: AgentResponse, type: EventType): boolean {
  if (type === 'web_socket_frame') return (r.websocket_decision ?? 'allow') === 'allow';
  return r.decision === 'allow';
}

/**
 * The answer `policy` gives to a failed event, or `undefined` when the policy
 * says close. A function policy that throws, returns no response or allows is
 * logged and replaced by the default answer.
 */
export function errorAnswer(
  policy: ErrorPolicy,
  error: AgentProtocolError,
  info: HandlerErrorInfo,
  logger: Logger,
): AgentResponse | undefined {
  if (policy === 'close') return undefined;
  if (typeof policy === 'function') {
    try {
      const r = policy(error, info);
      if (
        r !== null &&
        typeof r === 'object' &&
        r.decision !== undefined &&
        !allows(r, info.eventType)
      ) {
        return r;
      }
      logger.error('errorPolicy answered allow or no AgentResponse; answering the default block', {
        connectionId: info.connectionId,
        correlationId: info.correlationId,
      });
    } catch (err) {
      logger.error('errorPolicy threw; answering the default block', {
        connectionId: info.connectionId,
        correlationId: info.correlationId,
        error: err instanceof Error ? err.message : String(err),
      });
    }
    return handlerErrorResponse(info.eventType, info.cause);
  }
  return handlerErrorResponse(info.eventType, info.cause, policy === 'block' ? {} : policy);
}

let configUpdateCounter = 0;

/** A complete config update request: a fresh `request_id` and the current time when absent. */
export function configUpdateRequest(input: ConfigUpdateInput): ConfigUpdateRequest {
  return {
    update_type: input.update_type,
    request_id:
      input.request_id ?? `cfg-${Date.now().toString(36)}-${(++configUpdateCounter).toString(36)}`,
    timestamp_ms: input.timestamp_ms ?? Date.now(),
  };
}
