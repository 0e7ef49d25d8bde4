/**
 * The wire of prox plugins: frames, the hook envelope, typed payload codecs and the NDJSON
 * control lines. Shared by the plugin side (src/plugin) and the host side (src/host).
 */
export {
  decodeAuthorizeResult,
  decodeConnInfo,
  decodeConnResult,
  decodeDisconnectInfo,
  decodeEnvelope,
  decodeRequestInfo,
  decodeResponseModResult,
  decodeResponsePair,
  encodeAuthorizeResult,
  encodeConnInfo,
  encodeConnResult,
  encodeDisconnectInfo,
  encodeEnvelope,
  encodeRequestInfo,
  encodeResponseModResult,
  encodeResponsePair,
} from './codec.js';
export {
  type ConfigureParams,
  decodeHostLine,
  decodePluginLine,
  encodeConfigureLine,
  encodeLogLine,
  encodeReadyLine,
  encodeSetSpeedLine,
  encodeSetTargetsLine,
  type HostLine,
  MAX_CONTROL_LINE,
  OK_LINE,
  type PluginLine,
  type ProxLogLevel,
  type PushTarget,
} from './control.js';
export { encodeProxFrame, MAX_PROX_FRAME, PROX_FRAME_HEADER, ProxFrameReader } from './frame.js';
export * from './types.js';
