/**
 * `@picket/extproc/internal`: for picket's own tests and tools (an ext_proc client playing
 * Envoy, the message codec). Not part of the public API and outside semver: it may change in
 * any release.
 */
export { type ClientTls, EnvoyStream, extProcClient, headerMap } from './client.js';
export {
  decodeProcessingRequest,
  decodeProcessingResponse,
  encodeProcessingRequest,
  encodeProcessingResponse,
  type ProcessingRequest,
  type ProcessingResponse,
} from './proto.js';
