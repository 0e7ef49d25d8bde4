/**
 * `@picket/uds/internal`: the UDS engines other picket transports build on (the reverse
 * transport runs them over its own sockets). Not part of the public API and outside semver:
 * it may change in any release; siblings pin it through their `workspace:^` range.
 */
export {
  AGENT_INVALID_EVENT,
  AgentConnection,
  type AgentConnectionEventMap,
  type AgentConnectionOptions,
  PICKET_ERROR_TAG,
} from './agent-connection.js';
export { FrameChannel, type FrameChannelOptions } from './channel.js';
export {
  type AgentHandshakeOptions,
  type AgentHandshakeResult,
  agentHandshake,
  chooseEncoding,
  DEFAULT_AGENT_ENCODINGS,
  PICKET_EXTENSION_VERSION,
  PICKET_PROXY_ID,
  type ProxyHandshakeOptions,
  type ProxyHandshakeResult,
  proxyHandshake,
} from './handshake.js';
export { defaultLogger } from './logger.js';
export {
  ProxyConnection,
  type ProxyConnectionOptions,
  type ProxyConnectionStats,
} from './proxy-connection.js';
export { ConnectionPush } from './push.js';
export { type AdoptedSocket, adoptAccepted, SocketReader } from './socket-reader.js';
