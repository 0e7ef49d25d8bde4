/**
 * Conversions between picket's wire-shaped protocol types (@picket/protocol) and the
 * protobuf messages of `zentinel.agent.v2`, following the Rust client and server
 * (spec §4.4 / §4.5) where they are lossless and doing better where they are not:
 *
 * - proto3 implicit-presence fields are set only when non-default (prost omits defaults;
 *   protobufjs writes whatever is set), `optional` fields whenever present — so the bytes
 *   equal prost's (golden vectors G1–G6).
 * - bodies travel as raw bytes; audit `custom` values as JSON text (like a Rust agent);
 *   a received custom value is JSON-parsed when it parses, else kept as the raw string.
 * - what upstream's messages cannot carry goes into picket extension fields (≥ 1000) that
 *   Rust peers skip; see the README's table.
 *
 * The two per-call messages usually go through fast-paths.ts instead, which must match
 * these conversions (+ protobufjs) byte for byte and falls back to them for anything odd.
 *
 * The converters live in convert-helpers.ts, convert-events.ts, convert-responses.ts and
 * convert-control.ts (capabilities, health, metrics, config, logs); this module re-exports them.
 */

export {
  capabilitiesFromProto,
  capabilitiesToProto,
  configResponseFromProto,
  configResponseToProto,
  configUpdateFromProto,
  configUpdateToProto,
  DEFAULT_HEALTH_CONFIG,
  DEFAULT_MAX_PROCESSING_TIME_MS,
  healthFromProto,
  healthToProto,
  logFromProto,
  logToProto,
  metricsFromProto,
  metricsToProto,
} from './convert-control.js';
export {
  configureFromProto,
  configureToProto,
  EVENT_FIELDS,
  eventToProto,
  guardrailFromProto,
  guardrailToProto,
  handshakeRequestFromProto,
  handshakeRequestToProto,
  metadataFromProto,
  pingToProto,
  requestBodyChunkFromProto,
  requestBodyChunkToProto,
  requestCompleteFromProto,
  requestCompleteToProto,
  requestHeadersFromProto,
  requestHeadersToProto,
  responseBodyChunkFromProto,
  responseBodyChunkToProto,
  responseHeadersFromProto,
  responseHeadersToProto,
  webSocketFrameFromProto,
  webSocketFrameToProto,
} from './convert-events.js';
export {
  addHeader,
  headersFromProto,
  headersToProto,
  jsonText,
  parseJsonLoose,
  timestampToMs,
} from './convert-helpers.js';
export {
  agentResponseFromProto,
  agentResponseToProto,
} from './convert-responses.js';
