/**
 * `@picket/grpc/internal`: the generated protobuf module, the event ⇄ proto converters and the
 * message encoders, for picket's own tools and tests (the fuzzer and the reliability suite build
 * raw gRPC messages with them). Not part of the public API and outside semver: it may change in
 * any release.
 */
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
export { defaultLogger } from './logger.js';
export { encodeAgentToProxy, encodeProxyToAgent, pb, UndecodableMessage } from './proto.js';
export { type ParsedTarget, parseTarget } from './target.js';
