import { FramingError } from './errors.js';

/** Largest value a u32 length field can hold. */
export const U32_MAX = 0xffff_ffff;

/** Validates a size-limit option; a bad limit is a programming error, not a wire error. */
export function resolveLimit(value: number | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < 1 || value > U32_MAX) {
    throw new RangeError(`${name} must be an integer between 1 and ${U32_MAX}, got ${value}`);
  }
  return value;
}

export function readU32BE(bytes: Uint8Array, offset: number): number {
  return (
    (((bytes[offset] as number) << 24) |
      ((bytes[offset + 1] as number) << 16) |
      ((bytes[offset + 2] as number) << 8) |
      (bytes[offset + 3] as number)) >>>
    0
  );
}

export function writeU32BE(bytes: Uint8Array, offset: number, value: number): void {
  bytes[offset] = value >>> 24;
  bytes[offset + 1] = (value >>> 16) & 0xff;
  bytes[offset + 2] = (value >>> 8) & 0xff;
  bytes[offset + 3] = value & 0xff;
}

/**
 * Shared streaming core for `[u32 BE length][type byte?][payload]` framing.
 *
 * State is at most one partial header (<= 5 bytes) plus one payload buffer that is
 * allocated once, at its exact size, after the length has been checked. Frames that lie
 * entirely inside a pushed chunk are returned as views (no copy); split ones are copied once.
 */
export abstract class LengthPrefixedDecoder<T> {
  /** 5 for v2 (length + type byte), 4 for v1. */
  private readonly headerSize: number;
  private readonly limit: number;
  private readonly header = new Uint8Array(5);
  private headerFill = 0;
  private frameType = 0;
  private payload: Uint8Array | undefined = undefined;
  private payloadFill = 0;
  private failure: FramingError | undefined = undefined;
  /** Noun used in error messages ("frame", "v1 message"). */
  private readonly label: string;

  protected constructor(headerSize: 4 | 5, limit: number, label: string) {
    this.headerSize = headerSize;
    this.limit = limit;
    this.label = label;
  }

  /** Builds the output item for one complete frame. */
  protected abstract emit(type: number, payload: Uint8Array): T;
  /** Throws (via `fail`) when the type byte is not accepted. Only called for typed frames. */
  protected abstract checkType(type: number, length: number): void;

  /** Bytes of the current incomplete frame held by the decoder (0 between frames). */
  get bufferedBytes(): number {
    return this.headerFill + this.payloadFill;
  }

  /**
   * Feeds the next chunk of the stream and returns every frame it completes, in order.
   * Throws `FramingError` on a malformed frame; the decoder is then failed for good.
   */
  push(chunk: Uint8Array): T[] {
    if (this.failure !== undefined) this.throwFailed();
    const out: T[] = [];
    const end = chunk.length;
    const headerSize = this.headerSize;
    let pos = 0;
    while (pos < end) {
      const pending = this.payload;
      if (pending !== undefined) {
        const need = pending.length - this.payloadFill;
        const available = end - pos;
        if (available < need) {
          pending.set(pos === 0 ? chunk : chunk.subarray(pos), this.payloadFill);
          this.payloadFill += available;
          return out;
        }
        pending.set(chunk.subarray(pos, pos + need), this.payloadFill);
        pos += need;
        this.payload = undefined;
        this.headerFill = 0;
        this.payloadFill = 0;
        out.push(this.emit(this.frameType, pending));
        continue;
      }

      let length: number;
      let type = 0;
      if (this.headerFill === 0 && end - pos >= headerSize) {
        // Fast path: the whole header is in this chunk.
        length = readU32BE(chunk, pos);
        this.checkLength(length);
        if (headerSize === 5) {
          type = chunk[pos + 4] as number;
          this.checkType(type, length);
        }
        pos += headerSize;
      } else {
        // The header straddles chunks: collect it byte by byte (at most 5 bytes).
        const header = this.header;
        while (pos < end && this.headerFill < headerSize) {
          header[this.headerFill++] = chunk[pos++] as number;
          // Reject a bad length before waiting for the type byte or any payload.
          if (this.headerFill === 4) this.checkLength(readU32BE(header, 0));
        }
        if (this.headerFill < headerSize) return out;
        length = readU32BE(header, 0);
        if (headerSize === 5) {
          type = header[4] as number;
          this.checkType(type, length);
        }
        this.headerFill = 0;
      }

      const payloadLength = length - (headerSize - 4);
      if (end - pos >= payloadLength) {
        out.push(
          this.emit(
            type,
            payloadLength === 0 ? new Uint8Array(0) : chunk.subarray(pos, pos + payloadLength),
          ),
        );
        pos += payloadLength;
        continue;
      }
      // The payload continues in later chunks: allocate it once, at its checked size. No
      // zero-fill: it is only ever handed out once every byte has been written.
      const payload = new Uint8Array(
        Buffer.allocUnsafeSlow(payloadLength).buffer,
        0,
        payloadLength,
      );
      payload.set(chunk.subarray(pos), 0);
      this.frameType = type;
      this.headerFill = headerSize;
      this.payload = payload;
      this.payloadFill = end - pos;
      return out;
    }
    return out;
  }

  /**
   * Call at end of stream. Returns quietly at a frame boundary; throws `TRUNCATED` when a
   * partial frame is buffered (the peer closed mid-frame).
   */
  finish(): void {
    if (this.failure !== undefined) this.throwFailed();
    const pending = this.payload;
    if (pending === undefined && this.headerFill === 0) return;
    const detail =
      pending === undefined
        ? `${this.headerFill} of ${this.headerSize} header bytes`
        : `${this.payloadFill} of ${pending.length} payload bytes`;
    this.fail(new FramingError('TRUNCATED', `stream ended mid-${this.label}: ${detail} received`));
  }

  /** Marks the decoder failed, drops its buffers and throws `error`. */
  protected fail(error: FramingError): never {
    this.failure = error;
    this.payload = undefined;
    this.headerFill = 0;
    this.payloadFill = 0;
    throw error;
  }

  private checkLength(length: number): void {
    if (length === 0) {
      this.fail(new FramingError('ZERO_LENGTH', `zero-length ${this.label}`));
    }
    if (length > this.limit) {
      this.fail(
        new FramingError(
          'FRAME_TOO_LARGE',
          `${this.label} length ${length} exceeds the ${this.limit}-byte limit`,
        ),
      );
    }
  }

  private throwFailed(): never {
    const cause = this.failure;
    throw new FramingError(
      'DECODER_FAILED',
      `decoder already failed (${cause?.message ?? 'unknown error'}); the stream is unusable`,
      { cause },
    );
  }
}
