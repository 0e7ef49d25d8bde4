/**
 * @picket/reverse — Zentinel agent protocol v2 reverse connections: agents behind
 * NAT or scaled dynamically dial the proxy. Proxy side: `ReverseConnectionListener`
 * (`bindUds` / `bindTcp`, TLS optional). Agent side: `connectReverse()`. Pieces shared with
 * picket's own packages are in `@picket/reverse/internal` (outside semver).
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
  type TokenConfig,
  TokenSet,
  type TokenVerifier,
  type TokenVerifyInfo,
} from './auth.js';
export { DEFAULT_RECONNECT, type ReconnectOptions } from './backoff.js';
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
export { parseReverseEndpoint, type ReverseEndpoint } from './endpoint.js';
export {
  type RegistrationRejection,
  type RejectionStage,
  ReverseConnectionListener,
  type ReverseListenerEventMap,
  type ReverseListenerStats,
} from './listener.js';
export { PICKET_REVERSE_VERSION } from './version.js';
