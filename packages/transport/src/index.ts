/**
 * @picket/transport — one endpoint string for every Zentinel agent transport:
 * {@link detectTransport} parses it, {@link V2Transport}.connect opens an
 * `AgentTransport` over UDS, gRPC, a reverse listener or legacy v1, and
 * {@link createPool} makes an `AgentPool` whose `addAgent(name, endpoint)`
 * picks the transport; {@link serve} is the agent side: it serves a handler on
 * endpoint strings. Transports are imported on first use (optional peer
 * dependencies: install the ones you use).
 */
export { connectEndpoint, V2Transport } from './connect.js';
export {
  detectTransport,
  ENDPOINT_FORMS,
  endpointGrammar,
  formatEndpoint,
  type GrpcEndpoint,
  type ParsedEndpoint,
  type ProxEndpoint,
  type ReverseEndpoint,
  type ReverseListenAddress,
  type UdsEndpoint,
  type V1Endpoint,
} from './endpoint.js';
export {
  DEFAULT_CONNECT_TIMEOUT_MS,
  type Logger,
  type ReverseListenerOptions,
  type TransportOptions,
} from './options.js';
export {
  createPool,
  type TransportAgentOptions,
  TransportPool,
  type TransportPoolOptions,
} from './pool.js';
export { REVERSE_WAIT_MS, type ReverseListenerInfo } from './reverse.js';
export {
  ServedAgent,
  ServeError,
  type ServeOptions,
  type ServeReverseOptions,
  serve,
} from './serve.js';
export { readTokenFile } from './token-file.js';
