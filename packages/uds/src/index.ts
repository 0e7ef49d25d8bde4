export {
  AGENT_HANDLER_ERROR,
  AGENT_INVALID_EVENT,
  AgentConnection,
  type AgentConnectionEventMap,
  type AgentConnectionOptions,
  type ErrorPolicy,
  PICKET_ERROR_TAG,
} from './agent-connection.js';
export { FrameChannel, type FrameChannelOptions } from './channel.js';
export { AgentClientV2Uds, DEFAULT_CONNECT_TIMEOUT_MS, type UdsClientOptions } from './client.js';
export {
  type AgentHandshakeOptions,
  type AgentHandshakeResult,
  agentHandshake,
  chooseEncoding,
  DEFAULT_AGENT_ENCODINGS,
  DEFAULT_HANDSHAKE_TIMEOUT_MS,
  PICKET_EXTENSION_VERSION,
  PICKET_PROXY_ID,
  type ProxyHandshakeOptions,
  type ProxyHandshakeResult,
  proxyHandshake,
} from './handshake.js';
export {
  consoleLogger,
  defaultLogger,
  type LogFields,
  type Logger,
  silentLogger,
} from './logger.js';
export {
  type FlowControlMode,
  ProxyConnection,
  type ProxyConnectionOptions,
  type ProxyConnectionStats,
} from './proxy-connection.js';
export {
  type UdsAgentServerEventMap,
  type UdsAgentServerOptions,
  UdsAgentServerV2,
} from './server.js';
export { PICKET_UDS_VERSION } from './version.js';
