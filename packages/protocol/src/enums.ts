import type { CancelReason, EventType, FlowAction, HealthState } from './types.js';

/** Declaration order of Rust's `CancelReason`; UDS sends the index (0-based). */
export const CANCEL_REASONS: readonly CancelReason[] = [
  'client_disconnect',
  'timeout',
  'blocked_by_agent',
  'upstream_error',
  'proxy_shutdown',
  'manual',
];

/** UDS numbering: ClientDisconnect 0 … Manual 5 (Timeout = 1). */
export function cancelReasonToUds(reason: CancelReason): number {
  return CANCEL_REASONS.indexOf(reason);
}
/** gRPC numbering: the proto enum, ClientDisconnect 1 … Manual 6 (Timeout = 2). */
export function cancelReasonToGrpc(reason: CancelReason): number {
  return CANCEL_REASONS.indexOf(reason) + 1;
}
/** Unknown numbers map to `manual`: a cancel is still a cancel. */
export function cancelReasonFromUds(n: number): CancelReason {
  return CANCEL_REASONS[n] ?? 'manual';
}
export function cancelReasonFromGrpc(n: number): CancelReason {
  return CANCEL_REASONS[n - 1] ?? 'manual';
}

const HEALTH_STATES: readonly HealthState[] = ['healthy', 'degraded', 'draining', 'unhealthy'];

/** Wire number of a health state (1 healthy … 4 unhealthy, same on UDS and gRPC). */
export function healthStateToWire(state: HealthState): number {
  return HEALTH_STATES.indexOf(state) + 1;
}
/** `undefined` for 0 / unknown numbers (UNSPECIFIED). */
export function healthStateFromWire(n: number): HealthState | undefined {
  return HEALTH_STATES[n - 1];
}

/** FlowControl `action`: 1 pause, 2 resume (UDS and gRPC). */
export function flowActionToWire(action: FlowAction): number {
  return action === 'pause' ? 1 : 2;
}
/** Rust treats everything but 1 as "normal", so do we. */
export function flowActionFromWire(n: number | null | undefined): FlowAction {
  return n === 1 ? 'pause' : 'resume';
}

/**
 * Capability `supported_events` numbering (the proto's): RequestHeaders 1 …
 * GuardrailInspect 7, Configure 8. A Rust proxy decodes UDS values with
 * 0 = Configure, so {@link eventTypeFromNumber} accepts both for Configure.
 */
export const EVENT_TYPE_NUMBERS: Readonly<Record<EventType, number>> = {
  request_headers: 1,
  request_body_chunk: 2,
  response_headers: 3,
  response_body_chunk: 4,
  request_complete: 5,
  web_socket_frame: 6,
  guardrail_inspect: 7,
  configure: 8,
};

const EVENT_BY_NUMBER = new Map<number, EventType>(
  Object.entries(EVENT_TYPE_NUMBERS).map(([k, v]) => [v, k as EventType]),
);
EVENT_BY_NUMBER.set(0, 'configure');

export function eventTypeFromNumber(n: number): EventType | undefined {
  return EVENT_BY_NUMBER.get(n);
}
