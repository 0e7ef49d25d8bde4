import { describeMessageType, isMessageType, MAX_UDS_FRAME_LENGTH } from '@picket/protocol';
import { LengthPrefixedDecoder, resolveLimit, writeU32BE } from './decoder.js';
import { FramingError } from './errors.js';

/** One v2 frame: the type byte and the bytes after it. */
export interface Frame {
  type: number;
  payload: Uint8Array;
}

/** `[u32 BE length][u8 type]`: the length counts the type byte plus the payload. */
export const FRAME_HEADER_SIZE = 5;

/**
 * Largest payload picket writes or reads by default: 16 MiB - 1. Rust writers accept a
 * 16 MiB payload (length field 16 MiB + 1) that every Rust reader rejects; picket keeps to
 * the reader's limit so it never sends a frame a peer must refuse.
 */
export const MAX_FRAME_PAYLOAD_LENGTH = MAX_UDS_FRAME_LENGTH - 1;

export interface FrameEncoderOptions {
  /** Largest length field to produce (type byte + payload). Default `MAX_UDS_FRAME_LENGTH`. */
  maxFrameLength?: number;
  /** Which type bytes may be written. Default: the 18 types the protocol defines. */
  acceptType?: (type: number) => boolean;
}

export interface FrameDecoderOptions {
  /** Largest length field to accept (type byte + payload). Default `MAX_UDS_FRAME_LENGTH`. */
  maxFrameLength?: number;
  /** Which type bytes are accepted. Default: the 18 types the protocol defines. */
  acceptType?: (type: number) => boolean;
}

// A 256-entry table makes the default type check a single indexed load on the hot path.
const KNOWN_TYPES = new Uint8Array(256);
for (let byte = 0; byte < 256; byte++) KNOWN_TYPES[byte] = isMessageType(byte) ? 1 : 0;

function isKnownType(type: number): boolean {
  return KNOWN_TYPES[type] === 1;
}

function typeError(type: number): FramingError {
  const message = isMessageType(type)
    ? `message type ${describeMessageType(type)} is not accepted here`
    : Number.isInteger(type) && type >= 0 && type <= 0xff
      ? `unknown message type 0x${type.toString(16).padStart(2, '0')}`
      : `message type ${type} is not a byte`;
  return new FramingError('UNKNOWN_TYPE', message);
}

/** Validates a frame to be written and returns its length field. */
function checkFrame(type: number, payloadLength: number, options?: FrameEncoderOptions): number {
  const maxFrameLength = resolveLimit(
    options?.maxFrameLength,
    MAX_UDS_FRAME_LENGTH,
    'maxFrameLength',
  );
  if (!Number.isSafeInteger(payloadLength) || payloadLength < 0) {
    throw new RangeError(`payload length must be a non-negative integer, got ${payloadLength}`);
  }
  if (payloadLength > maxFrameLength - 1) {
    throw new FramingError(
      'FRAME_TOO_LARGE',
      `payload of ${payloadLength} bytes exceeds the ${maxFrameLength - 1}-byte limit ` +
        `(frame length ${payloadLength + 1} > ${maxFrameLength})`,
    );
  }
  const accept = options?.acceptType ?? isKnownType;
  if (!(Number.isInteger(type) && type >= 0 && type <= 0xff && accept(type))) {
    throw typeError(type);
  }
  return payloadLength + 1;
}

/**
 * Encodes one v2 frame into a single new buffer: `[u32 BE 1 + payload.length][type][payload]`.
 * Throws `FramingError` (`FRAME_TOO_LARGE`, `UNKNOWN_TYPE`) rather than emit a frame that a
 * reader with the same limits would reject.
 */
export function encodeFrame(
  type: number,
  payload: Uint8Array,
  options?: FrameEncoderOptions,
): Uint8Array {
  const length = checkFrame(type, payload.length, options);
  const frame = new Uint8Array(FRAME_HEADER_SIZE + payload.length);
  writeU32BE(frame, 0, length);
  frame[4] = type;
  frame.set(payload, FRAME_HEADER_SIZE);
  return frame;
}

/**
 * Encodes only the 5-byte header of a frame whose payload is `payloadLength` bytes, so a
 * writer can send header and payload with `writev` / two writes without copying the payload.
 */
export function encodeFrameHeader(
  type: number,
  payloadLength: number,
  options?: FrameEncoderOptions,
): Uint8Array {
  const length = checkFrame(type, payloadLength, options);
  const header = new Uint8Array(FRAME_HEADER_SIZE);
  writeU32BE(header, 0, length);
  header[4] = type;
  return header;
}

/**
 * Streaming v2 frame decoder: push socket chunks of any size, get whole frames back.
 *
 * A length of 0 or above `maxFrameLength` is rejected as soon as its 4 bytes arrive, and an
 * unaccepted type byte as soon as it arrives, before any payload is buffered. After an error
 * the decoder stays failed (every later call throws `DECODER_FAILED`), as the stream cannot be
 * resynchronised. Payloads may be views into a pushed chunk: do not mutate pushed chunks.
 */
export class FrameDecoder extends LengthPrefixedDecoder<Frame> {
  private readonly acceptType: (type: number) => boolean;

  constructor(options?: FrameDecoderOptions) {
    super(
      FRAME_HEADER_SIZE,
      resolveLimit(options?.maxFrameLength, MAX_UDS_FRAME_LENGTH, 'maxFrameLength'),
      'frame',
    );
    this.acceptType = options?.acceptType ?? isKnownType;
  }

  protected emit(type: number, payload: Uint8Array): Frame {
    return { type, payload };
  }

  protected checkType(type: number, length: number): void {
    if (this.acceptType(type)) return;
    const error = typeError(type);
    this.fail(new FramingError('UNKNOWN_TYPE', `${error.message} (frame length ${length})`));
  }
}

/**
 * Decodes a buffer holding zero or more complete frames. Throws `TRUNCATED` when it ends
 * mid-frame. Payloads are views into `bytes`.
 */
export function decodeFrames(bytes: Uint8Array, options?: FrameDecoderOptions): Frame[] {
  const decoder = new FrameDecoder(options);
  const frames = decoder.push(bytes);
  decoder.finish();
  return frames;
}
