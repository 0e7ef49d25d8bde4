/**
 * @picket/grpc — the Zentinel agent protocol v2 over gRPC
 * (`zentinel.agent.v2.AgentServiceV2`): proxy-side {@link AgentClientV2}, agent-side
 * {@link GrpcAgentServerV2}, plaintext, TLS and mTLS. The generated protobuf module and the
 * converters are in `@picket/grpc/internal` (outside semver).
 */
export {
  AgentClientV2,
  type AgentClientV2Options,
  type KeepaliveOptions,
} from './client.js';
export { type LogFields, type Logger, silentLogger } from './logger.js';
export {
  agentServiceV2Definition,
  METHOD_PATHS,
  PICKET_METADATA_KEY,
  PROTO_PATH,
  SERVICE_NAME,
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
