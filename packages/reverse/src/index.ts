/**
 * @picket/reverse — Zentinel agent protocol v2 reverse connections: agents behind
 * NAT or scaled dynamically dial the proxy. Proxy side: `ReverseConnectionListener`
 * (`bindUds` / `bindTcp`, TLS optional). Agent side: `connectReverse()`.
 */
export {
  type ConnectReverseOptions,
  connectReverse,
  type DisconnectInfo,
  type ReconnectInfo,
  type RegisteredInfo,
  type RegistrationFailureInfo,
  ReverseAgent,
  type ReverseAgentEventMap,
  type ReverseAgentStatus,
  type ReverseSlotStatus,
  type ReverseTlsClientOptions,
  type SlotState,
} from './agent.js';
export {
  AllowList,
  redact,
  type TokenConfig,
  TokenSet,
  type TokenVerifier,
  type TokenVerifyInfo,
} from './auth.js';
export { DEFAULT_RECONNECT, type ReconnectOptions, reconnectDelay } from './backoff.js';
export {
  DEFAULT_REVERSE_CONFIG,
  type ReverseConnectionConfig,
  type ReverseConnectionPool,
  type ReverseTlsConfig,
} from './config.js';
export {
  type RedactedRegistration,
  ReverseConnection,
  type ReverseConnectionInfo,
  type ReverseConnectionOptions,
  type ReverseTransportKind,
} from './connection.js';
export {
  formatHostPort,
  type HostPort,
  parseHostPort,
  parseReverseEndpoint,
  type ReverseEndpoint,
} from './endpoint.js';
export { type FirstFrame, type FirstFrameOptions, readFirstFrame } from './first-frame.js';
export {
  type RegistrationRejection,
  type RejectionStage,
  ReverseConnectionListener,
  type ReverseListenerEventMap,
  type ReverseListenerStats,
} from './listener.js';
export { defaultLogger } from './logger.js';
export { PICKET_REVERSE_VERSION } from './version.js';
