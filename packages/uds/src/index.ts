/**
 * @picket/uds — the Zentinel agent protocol v2 over Unix sockets: proxy-side
 * {@link AgentClientV2Uds}, agent-side {@link UdsAgentServerV2}. The engines under them are
 * in `@picket/uds/internal` (outside semver).
 */
export { AGENT_HANDLER_ERROR, type ErrorPolicy } from './agent-connection.js';
export { AgentClientV2Uds, DEFAULT_CONNECT_TIMEOUT_MS, type UdsClientOptions } from './client.js';
export { DEFAULT_HANDSHAKE_TIMEOUT_MS } from './handshake.js';
export { type LogFields, type Logger, silentLogger } from './logger.js';
export {
  type UdsAgentServerEventMap,
  type UdsAgentServerOptions,
  UdsAgentServerV2,
} from './server.js';
export { PICKET_UDS_VERSION } from './version.js';
