/**
 * @picket/grpc — the Zentinel agent protocol v2 over gRPC
 * (`zentinel.agent.v2.AgentServiceV2`): proxy-side {@link AgentClientV2}, agent-side
 * {@link GrpcAgentServerV2}, plaintext, TLS and mTLS.
 */
export {
  AgentClientV2,
  type AgentClientV2Options,
  type FlowControlPolicy,
  type KeepaliveOptions,
} from './client.js';
export {
  agentResponseFromProto,
  agentResponseToProto,
  capabilitiesFromProto,
  capabilitiesToProto,
  eventToProto,
  handshakeRequestToProto,
  parseJsonLoose,
  pingToProto,
  timestampToMs,
} from './convert.js';
export { defaultLogger, type LogFields, type Logger, silentLogger } from './logger.js';
export {
  agentServiceV2Definition,
  encodeAgentToProxy,
  encodeProxyToAgent,
  METHOD_PATHS,
  PICKET_METADATA_KEY,
  PROTO_PATH,
  pb,
  SERVICE_NAME,
  UndecodableMessage,
} from './proto.js';
export {
  type BoundAddress,
  DEFAULT_GRPC_HANDSHAKE_TIMEOUT_MS,
  DEFAULT_GRPC_MAX_CONNECTIONS,
  type ErrorCause,
  type ErrorInfo,
  type ErrorPolicy,
  GrpcAgentServerV2,
  type GrpcAgentServerV2Options,
} from './server.js';
export { type ParsedTarget, parseTarget } from './target.js';
export { loadPem, type PemSource, type ServerTlsConfig, type TlsConfig } from './tls.js';
