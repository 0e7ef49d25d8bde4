/**
 * @picket/http: the exchange engine — per request the agent events, chains,
 * failure modes and every decision applied to the HTTP exchange — independent
 * of how the request arrived and where it goes next (see README.md).
 */

export { AbortNotice } from './abort-notice.js';
export * from './adapters/index.js';
export { type GeneratedResponse, renderChallenge, renderDecision } from './decisions.js';
export {
  AGENT_DEFAULTS,
  AGENT_EVENTS,
  type AgentEvent,
  type AgentSpec,
  agentSpec,
  type BodyMode,
  type ClientRequest,
  type ClientResponse,
  type EngineHooks,
  type EngineRoute,
  HttpEngine,
  type HttpEngineOptions,
  type NextHop,
  type NextHopRequest,
  type NextHopResponse,
  type Router,
  type Routing,
  singleRoute,
} from './engine.js';
export { Exchange } from './exchange.js';
export type { AgentVerdict, ExchangeSummary } from './exchange-util.js';
export { UpstreamFailure } from './failure.js';
export {
  DEFAULT_PATH_POLICY,
  ESCAPED_SLASHES,
  type EscapedSlashes,
  normalizePath,
  type PathPolicy,
  type PathResult,
} from './path-policy.js';
