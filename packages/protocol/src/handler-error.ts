/**
 * What every picket agent server (UDS, gRPC, v1, reverse) answers when its
 * handler fails: one answer, the same on every wire, and never an allow.
 */
import { block } from './builders.js';
import type { AgentProtocolError } from './errors.js';
import type { TransportKind } from './roles.js';
import type { AgentResponse, EventType } from './types.js';

/** Reason code of the answer to a handler that threw, rejected or returned no usable response. */
export const AGENT_HANDLER_ERROR = 'AGENT_HANDLER_ERROR';
/** Reason code of the answer to an event the agent could not decode (UDS and reverse). */
export const AGENT_INVALID_EVENT = 'AGENT_INVALID_EVENT';
/** Audit tag on every error answer. */
export const PICKET_ERROR_TAG = 'picket_error';
/** Block status of the handler-error answer. */
export const HANDLER_ERROR_STATUS = 500;
/** Block body of the handler-error answer: fixed, so nothing of the failure reaches a client. */
export const HANDLER_ERROR_BODY = 'Agent handler error';
/** WebSocket close of an error answer to a frame: 1011 is the WebSocket "internal error". */
export const HANDLER_ERROR_WEBSOCKET_CLOSE = { code: 1011, reason: 'agent error' } as const;

/** Why an event got an error answer instead of the handler's. */
export type HandlerErrorCause =
  /** the hook threw or its promise rejected */
  | 'HANDLER_ERROR'
  /** the hook returned something that is not a valid AgentResponse */
  | 'INVALID_RESPONSE'
  /** the hook's answer is larger than the wire carries */
  | 'RESPONSE_TOO_LARGE'
  /** the event itself could not be decoded (UDS and reverse only; gRPC and v1 close instead) */
  | 'INVALID_EVENT';

/** What a function {@link ErrorPolicy} is told. */
export interface HandlerErrorInfo {
  cause: HandlerErrorCause;
  eventType: EventType;
  correlationId: string;
  connectionId: string;
  transport: TransportKind;
}

/**
 * What an agent server answers when an event cannot be handled. It never allows:
 * - `'block'` (default): the handler-error answer, see {@link handlerErrorResponse};
 * - `'close'`: no answer; the connection (gRPC: the stream or call) is closed and
 *   the proxy's own failure policy decides;
 * - `{ status, body }`: the same answer with this block status and body;
 * - a function building the answer. An answer that allows (or that cannot be
 *   sent) is replaced by the default, logged: a failure never becomes an allow.
 */
export type ErrorPolicy =
  | 'block'
  | 'close'
  | { status?: number; body?: string | null }
  | ((error: AgentProtocolError, info: HandlerErrorInfo) => AgentResponse);

/**
 * The error answer to an event of type `eventType`: block 500, body
 * `Agent handler error`, tag `picket_error`, reason code `AGENT_HANDLER_ERROR`
 * (`AGENT_INVALID_EVENT` for an undecodable event, whose body stays null); a
 * WebSocket frame also gets close 1011. `status` / `body` come from an object policy.
 */
export function handlerErrorResponse(
  eventType: EventType,
  cause: HandlerErrorCause = 'HANDLER_ERROR',
  o: { status?: number; body?: string | null } = {},
): AgentResponse {
  const invalidEvent = cause === 'INVALID_EVENT';
  return block(o.status ?? HANDLER_ERROR_STATUS, {
    body: o.body !== undefined ? o.body : invalidEvent ? null : HANDLER_ERROR_BODY,
    tags: [PICKET_ERROR_TAG],
    reasonCodes: [invalidEvent ? AGENT_INVALID_EVENT : AGENT_HANDLER_ERROR],
    websocketDecision:
      eventType === 'web_socket_frame' ? { close: { ...HANDLER_ERROR_WEBSOCKET_CLOSE } } : null,
  });
}
