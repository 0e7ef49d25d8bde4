/**
 * Runtime validation of decoded, untrusted payloads. Each `parse*` takes what a
 * codec decoded and returns a complete typed message (defaults filled in the way
 * serde fills them) or throws `AgentProtocolError('INVALID_MESSAGE')` naming the
 * field. Like serde, structs may arrive as maps or as positional arrays (rmp-serde
 * writes arrays), unknown keys are ignored and variant names are case-sensitive.
 *
 * The validators live in validate-primitives.ts (shared readers), validate-responses.ts,
 * validate-events.ts and validate-messages.ts (handshake, registration, control); this
 * module is the public entry point.
 */

export {
  eventCorrelationId,
  parseConfigureEvent,
  parseEvent,
  parseGuardrailInspectEvent,
  parseRequestBodyChunkEvent,
  parseRequestCompleteEvent,
  parseRequestHeadersEvent,
  parseRequestMetadata,
  parseResponseBodyChunkEvent,
  parseResponseHeadersEvent,
  parseWebSocketFrameEvent,
  salvageCorrelationId,
} from './validate-events.js';
export {
  parseCancel,
  parseCapabilities,
  parseConfigUpdateRequest,
  parseFlowControl,
  parseGuardrailResponse,
  parseHandshakeRequest,
  parseHandshakeResponse,
  parseHealthStatus,
  parseMetricsReport,
  parsePing,
  parseRegistrationRequest,
  parseRegistrationResponse,
} from './validate-messages.js';
export { asBytes, putOwn } from './validate-primitives.js';
export {
  parseAgentResponse,
  parseAudit,
  parseDecision,
  parseHeaderOp,
  parseWebSocketDecision,
  responseCorrelationId,
} from './validate-responses.js';
