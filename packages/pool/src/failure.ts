import {
  AgentProtocolError,
  type AgentResponse,
  agentResponse,
  ErrorCode,
  type EventType,
} from '@picket/protocol';
import type { FailureMode } from './options.js';

/** Reason codes the pool puts into `audit.reason_codes` of a synthesized response. */
export const FailureReason = {
  /** no healthy connection, or the agent could not be reached */
  Unavailable: 'AGENT_UNAVAILABLE',
  /** no answer within the call's deadline (incl. waiting for a slot) */
  Timeout: 'AGENT_TIMEOUT',
  /** the agent's circuit breaker is open */
  CircuitOpen: 'AGENT_CIRCUIT_OPEN',
  /** every connection is paused by the agent's flow control */
  FlowControlPaused: 'AGENT_FLOW_CONTROL_PAUSED',
  /** the connection ended while the call was pending */
  ConnectionClosed: 'AGENT_CONNECTION_CLOSED',
  /** too many calls waiting for a connection slot */
  Overloaded: 'AGENT_OVERLOADED',
  /** the call was cancelled (caller's signal, or pool shutdown) */
  Cancelled: 'AGENT_CANCELLED',
  /** the agent sent something that is not a valid response */
  InvalidResponse: 'AGENT_INVALID_RESPONSE',
  /** any other error */
  Error: 'AGENT_ERROR',
} as const;
export type FailureReason = (typeof FailureReason)[keyof typeof FailureReason];

/** How the pool judged a failed call. */
export interface Failure {
  reason: FailureReason;
  error: AgentProtocolError;
  /** counts towards the circuit breaker and the connection's consecutive errors */
  counts: boolean;
}

const TAGGED = new WeakMap<AgentProtocolError, { reason: FailureReason; counts: boolean }>();
const UNSENT = new WeakSet<AgentProtocolError>();

/** Records that `err` is known to have been raised before its event was written. */
export function markUnsent(err: AgentProtocolError): AgentProtocolError {
  UNSENT.add(err);
  return err;
}

/** An error raised by the pool itself, with the reason and breaker weight it carries. */
export function poolError(
  code: ErrorCode,
  reason: FailureReason,
  counts: boolean,
  message: string,
  cause?: unknown,
): AgentProtocolError {
  const err = new AgentProtocolError(code, message, cause === undefined ? undefined : { cause });
  TAGGED.set(err, { reason, counts });
  return err;
}

/**
 * Classifies an error. Transport errors and timeouts count as agent failures;
 * cancellation, flow control, overload and unsupported calls do not.
 */
export function classify(err: AgentProtocolError): Failure {
  const tagged = TAGGED.get(err);
  if (tagged) return { error: err, ...tagged };
  switch (err.code) {
    case ErrorCode.Timeout:
      return { error: err, reason: FailureReason.Timeout, counts: true };
    case ErrorCode.FlowControlPaused:
      return { error: err, reason: FailureReason.FlowControlPaused, counts: false };
    case ErrorCode.Cancelled:
      return { error: err, reason: FailureReason.Cancelled, counts: false };
    case ErrorCode.ConnectionClosed:
      return { error: err, reason: FailureReason.ConnectionClosed, counts: true };
    case ErrorCode.ConnectionFailed:
    case ErrorCode.Unavailable:
      return { error: err, reason: FailureReason.Unavailable, counts: true };
    case ErrorCode.InvalidMessage:
      return { error: err, reason: FailureReason.InvalidResponse, counts: true };
    case ErrorCode.Unsupported:
    case ErrorCode.MessageTooLarge:
    case ErrorCode.InvalidArgument:
      // about this call, not about the agent's health
      return { error: err, reason: FailureReason.Error, counts: false };
    default:
      return { error: err, reason: FailureReason.Error, counts: true };
  }
}

/**
 * True when the error proves the event never left this process, so sending
 * it on another connection cannot duplicate it. A transport says so with
 * `sent: false` on the AgentProtocolError (`sent: true`: it may have reached
 * the agent); without that fact, flow-control and not-connected refusals and
 * errors the pool marked itself qualify.
 */
export function neverSent(err: AgentProtocolError): boolean {
  const sent = (err as { sent?: unknown }).sent;
  if (typeof sent === 'boolean') return !sent;
  if (UNSENT.has(err)) return true;
  return (
    err.code === ErrorCode.FlowControlPaused ||
    err.code === ErrorCode.ConnectionFailed ||
    err.code === ErrorCode.Unavailable
  );
}

/**
 * True when another attempt on another connection may succeed: the error's own
 * `retryable` fact when a transport set it, else connection-level failures.
 * A caller's mistake (INVALID_ARGUMENT), a cancel, a timeout or an oversize
 * event never is.
 */
export function retryable(err: AgentProtocolError): boolean {
  const r = (err as { retryable?: unknown }).retryable;
  if (typeof r === 'boolean') return r;
  return (
    err.code === ErrorCode.ConnectionClosed ||
    err.code === ErrorCode.ConnectionFailed ||
    err.code === ErrorCode.Unavailable ||
    err.code === ErrorCode.FlowControlPaused
  );
}

/**
 * Events an agent may see twice without harm: an inspection and a
 * configuration hold no per-request state. Request and response events do
 * (body accumulation, rate counters), so they are never sent twice.
 */
const IDEMPOTENT_EVENTS: ReadonlySet<EventType> = new Set<EventType>([
  'guardrail_inspect',
  'configure',
]);

/**
 * The pool's retry decision for a failed attempt: retryable, and either
 * provably never written or idempotent. A call that may have reached the agent
 * is not repeated for any other event.
 */
export function mayRetry(err: AgentProtocolError, type: EventType): boolean {
  return retryable(err) && (neverSent(err) || IDEMPOTENT_EVENTS.has(type));
}

/**
 * The response that stands in for the agent's: `closed` ⇒ block 503 tagged
 * `fail_closed`; `open` ⇒ allow tagged `fail_open`. The reason code is in
 * `audit.reason_codes`; `audit.custom` names the agent and the error.
 * WebSocket frames also get a websocket decision (close 1011 / allow).
 */
export function failureResponse(
  mode: Exclude<FailureMode, 'throw'>,
  agentId: string,
  type: EventType,
  failure: Failure,
): AgentResponse {
  const custom = {
    agent_id: agentId,
    error_code: failure.error.code,
    error: failure.error.message,
  };
  const ws = type === 'web_socket_frame';
  if (mode === 'open') {
    return agentResponse('allow', {
      tags: ['fail_open'],
      reasonCodes: [failure.reason],
      custom,
      websocketDecision: ws ? 'allow' : null,
    });
  }
  return agentResponse(
    { block: { status: 503, body: null, headers: null } },
    {
      tags: ['fail_closed'],
      reasonCodes: [failure.reason],
      custom,
      websocketDecision: ws ? { close: { code: 1011, reason: 'agent unavailable' } } : null,
    },
  );
}
