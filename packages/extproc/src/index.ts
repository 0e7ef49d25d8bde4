/**
 * @picket/extproc: serve any picket `AgentHandler` to Envoy as an
 * `envoy.service.ext_proc.v3.ExternalProcessor` gRPC server.
 */
export type { HeaderValueField } from './convert.js';
export {
  EXTPROC_METHOD_PATH,
  EXTPROC_SERVICE_NAME,
  PROTO_DIR,
  PROTO_FILE,
} from './proto.js';
export {
  DEFAULT_EXTPROC_MAX_STREAMS,
  ExtProcServer,
  type ExtProcServerOptions,
} from './server.js';
