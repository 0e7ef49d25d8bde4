/**
 * @picket/v1 — the legacy Zentinel agent protocol v1: `[u32 BE length][JSON]`
 * frames over a Unix socket, one request and one response per round trip.
 */
export {
  AgentClient,
  type AgentClientEvents,
  type AgentClientOptions,
  DEFAULT_V1_ACCEPTED_VERSIONS,
  DEFAULT_V1_CONNECT_TIMEOUT_MS,
  DEFAULT_V1_TIMEOUT_MS,
} from './client.js';
export { type LogFields, type Logger, silentLogger } from './logger.js';
export {
  AGENT_HANDLER_ERROR,
  AgentServer,
  type AgentServerOptions,
  DEFAULT_V1_MAX_CONNECTIONS,
  DEFAULT_V1_REFUSAL_LOG_INTERVAL_MS,
} from './server.js';
export {
  connectV1,
  DEFAULT_V1_AFFINITY_TTL_MS,
  DEFAULT_V1_CONNECTIONS,
  DEFAULT_V1_MAX_AFFINITIES,
  DEFAULT_V1_MAX_QUEUE,
  DEFAULT_V1_RECONNECT_INTERVAL_MS,
  V1Transport,
  type V1TransportOptions,
} from './transport.js';
