/**
 * Why a frame could not be encoded or decoded.
 * - `FRAME_TOO_LARGE`: the length field (or the payload to write) exceeds the limit.
 * - `ZERO_LENGTH`: a length field of 0 (v2 lengths count the type byte; v1 payloads are JSON).
 * - `UNKNOWN_TYPE`: a type byte the protocol does not define (or the caller does not accept).
 * - `TRUNCATED`: the stream ended in the middle of a frame.
 * - `DECODER_FAILED`: the decoder already failed once; the stream cannot be resynchronised.
 */
export type FramingErrorCode =
  | 'FRAME_TOO_LARGE'
  | 'ZERO_LENGTH'
  | 'UNKNOWN_TYPE'
  | 'TRUNCATED'
  | 'DECODER_FAILED';

/** The one error type this package throws for bad frames (options errors are `RangeError`s). */
export class FramingError extends Error {
  override readonly name = 'FramingError';
  readonly code: FramingErrorCode;

  constructor(code: FramingErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

/** Type guard that also works across duplicated package copies (checks name + code). */
export function isFramingError(error: unknown): error is FramingError {
  return (
    error instanceof FramingError ||
    (error instanceof Error &&
      error.name === 'FramingError' &&
      typeof (error as { code?: unknown }).code === 'string')
  );
}
