export {
  decodeCancel,
  decodeGuardrailResponse,
  decodeHandshakeRequest,
  decodeHandshakeResponse,
  decodePing,
  decodeRegistrationRequest,
  decodeRegistrationResponse,
  encodeCancel,
  encodeGuardrailResponse,
  encodeHandshakeRequest,
  encodeHandshakeResponse,
  encodePing,
  encodeRegistrationRequest,
  encodeRegistrationResponse,
} from './always-json.js';
export {
  type Codec,
  cborCodec,
  DEFAULT_OFFERED_ENCODINGS,
  getCodec,
  jsonCodec,
  msgpackCodec,
  negotiateEncoding,
  SUPPORTED_ENCODINGS,
} from './codec.js';
export {
  createMessageCodec,
  type MessageCodec,
  type MessageCodecOptions,
} from './message-codec.js';
export { formatF32, formatF64, normalizeF32 } from './rust-float.js';
export {
  decodeV1Request,
  decodeV1Response,
  encodeV1Request,
  encodeV1Response,
  type V1ConfigurePayload,
  type V1PayloadMap,
  type V1Request,
} from './v1.js';
