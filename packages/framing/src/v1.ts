import { MAX_V1_MESSAGE_SIZE } from '@picket/protocol';
import { LengthPrefixedDecoder, resolveLimit, writeU32BE } from './decoder.js';
import { FramingError } from './errors.js';

/** `[u32 BE length]`: v1 frames have no type byte; the length counts only the JSON. */
export const V1_HEADER_SIZE = 4;

export interface V1FrameOptions {
  /** Largest payload (= length field) to write or accept. Default `MAX_V1_MESSAGE_SIZE` (10 MiB). */
  maxMessageSize?: number;
}

function checkV1Payload(payloadLength: number, options?: V1FrameOptions): void {
  const max = resolveLimit(options?.maxMessageSize, MAX_V1_MESSAGE_SIZE, 'maxMessageSize');
  if (!Number.isSafeInteger(payloadLength) || payloadLength < 0) {
    throw new RangeError(`payload length must be a non-negative integer, got ${payloadLength}`);
  }
  // A v1 payload is always a JSON object, and readers reject a zero length.
  if (payloadLength === 0) throw new FramingError('ZERO_LENGTH', 'zero-length v1 message');
  if (payloadLength > max) {
    throw new FramingError(
      'FRAME_TOO_LARGE',
      `v1 message length ${payloadLength} exceeds the ${max}-byte limit`,
    );
  }
}

/** Encodes one v1 frame into a single new buffer: `[u32 BE payload.length][payload]`. */
export function encodeV1Frame(payload: Uint8Array, options?: V1FrameOptions): Uint8Array {
  checkV1Payload(payload.length, options);
  const frame = new Uint8Array(V1_HEADER_SIZE + payload.length);
  writeU32BE(frame, 0, payload.length);
  frame.set(payload, V1_HEADER_SIZE);
  return frame;
}

/** Encodes only the 4-byte v1 length prefix, for `writev` without copying the payload. */
export function encodeV1FrameHeader(payloadLength: number, options?: V1FrameOptions): Uint8Array {
  checkV1Payload(payloadLength, options);
  const header = new Uint8Array(V1_HEADER_SIZE);
  writeU32BE(header, 0, payloadLength);
  return header;
}

/**
 * Streaming v1 decoder; same guarantees as `FrameDecoder` (length checked before buffering,
 * failed for good after an error, payloads may be views into pushed chunks).
 */
export class V1FrameDecoder extends LengthPrefixedDecoder<Uint8Array> {
  constructor(options?: V1FrameOptions) {
    super(
      V1_HEADER_SIZE,
      resolveLimit(options?.maxMessageSize, MAX_V1_MESSAGE_SIZE, 'maxMessageSize'),
      'v1 message',
    );
  }

  protected emit(_type: number, payload: Uint8Array): Uint8Array {
    return payload;
  }

  protected checkType(): void {
    // v1 frames carry no type byte.
  }
}

/** Decodes a buffer holding zero or more complete v1 frames; throws `TRUNCATED` mid-frame. */
export function decodeV1Frames(bytes: Uint8Array, options?: V1FrameOptions): Uint8Array[] {
  const decoder = new V1FrameDecoder(options);
  const payloads = decoder.push(bytes);
  decoder.finish();
  return payloads;
}
