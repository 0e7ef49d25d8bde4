/**
 * `@picket/testing`: unit-test any picket `AgentHandler` in process, without
 * sockets, through the same dispatch, error policy and codec as the real servers.
 */
export {
  type BodyInit,
  configureEvent,
  type GuardrailInspectInit,
  guardrailInspectEvent,
  type HeadersInit,
  type RequestCompleteInit,
  type RequestHeadersInit,
  type ResponseHeadersInit,
  requestBodyChunkEvent,
  requestCompleteEvent,
  requestHeadersEvent,
  responseBodyChunkEvent,
  responseHeadersEvent,
  toBytes,
  toHeaders,
  type WebSocketFrameInit,
  webSocketFrameEvent,
} from './events.js';
export {
  expectAllow,
  expectBlock,
  expectHandlerError,
  expectNoHeaderOps,
  expectRedirect,
  expectRequestHeaderAdded,
  expectRequestHeaderRemoved,
  expectRequestHeaderSet,
  expectResponseHeaderAdded,
  expectResponseHeaderRemoved,
  expectResponseHeaderSet,
  expectWebSocketDecision,
} from './expect.js';
export { AgentHarness, createHarness, type HarnessOptions } from './harness.js';
export {
  type ChunkOptions,
  type FlowAnswer,
  type FlowInit,
  type FlowResult,
  RequestDriver,
} from './request.js';
