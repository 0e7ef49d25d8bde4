export { FramingError, type FramingErrorCode, isFramingError } from './errors.js';
export {
  decodeFrames,
  encodeFrame,
  encodeFrameHeader,
  FRAME_HEADER_SIZE,
  type Frame,
  FrameDecoder,
  type FrameDecoderOptions,
  type FrameEncoderOptions,
  MAX_FRAME_PAYLOAD_LENGTH,
} from './frame.js';
export {
  decodeV1Frames,
  encodeV1Frame,
  encodeV1FrameHeader,
  V1_HEADER_SIZE,
  V1FrameDecoder,
  type V1FrameOptions,
} from './v1.js';
