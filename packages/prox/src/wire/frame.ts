/**
 * prox's socket framing: `[u32 BE length][payload]`, at most 1 MiB. A frame of exactly 1 MiB is
 * legal; prox and its SDK refuse `n > 1<<20`. Built on @picket/framing's v1 decoder (the same
 * `[u32 BE length][payload]` layout), with errors reworded for prox.
 */
import { isFramingError, V1FrameDecoder } from '@picket/framing';
import { AgentProtocolError, ErrorCode } from '@picket/protocol';

/** Largest payload of one frame: 1 MiB (`1<<20`), legal on both sides. */
export const MAX_PROX_FRAME = 1 << 20;

/** Length of the frame header (the u32 length). */
export const PROX_FRAME_HEADER = 4;

function reword(err: unknown): unknown {
  if (!isFramingError(err)) return err;
  const code =
    err.code === 'FRAME_TOO_LARGE' ? ErrorCode.MessageTooLarge : ErrorCode.InvalidMessage;
  const message = err.message.replace(/v1 message/g, 'prox frame');
  return new AgentProtocolError(code, message, { cause: err });
}

/** `[u32 BE payload.length][payload]` in one buffer; throws MESSAGE_TOO_LARGE above 1 MiB. */
export function encodeProxFrame(payload: Uint8Array): Uint8Array {
  if (payload.length > MAX_PROX_FRAME) {
    throw new AgentProtocolError(
      ErrorCode.MessageTooLarge,
      `prox frame payload of ${payload.length} bytes exceeds the ${MAX_PROX_FRAME}-byte limit`,
    );
  }
  if (payload.length === 0) {
    throw new AgentProtocolError(ErrorCode.InvalidArgument, 'empty prox frame payload');
  }
  const frame = new Uint8Array(PROX_FRAME_HEADER + payload.length);
  new DataView(frame.buffer).setUint32(0, payload.length);
  frame.set(payload, PROX_FRAME_HEADER);
  return frame;
}

/**
 * Incremental frame reader for one socket: `push(chunk)` returns every payload the chunk
 * completes. A length above 1 MiB (checked before anything is buffered) or of zero throws
 * (AgentProtocolError MESSAGE_TOO_LARGE / INVALID_MESSAGE) and the reader stays failed: the
 * connection must be closed. `end()` throws INVALID_MESSAGE when the stream stopped mid-frame.
 * Payloads may be views into the pushed chunks.
 */
export class ProxFrameReader {
  private readonly decoder = new V1FrameDecoder({ maxMessageSize: MAX_PROX_FRAME });

  /** Feeds the next chunk; returns the payloads it completes, in order. */
  push(chunk: Uint8Array): Uint8Array[] {
    try {
      return this.decoder.push(chunk);
    } catch (err) {
      throw reword(err);
    }
  }

  /** Bytes of an incomplete frame held (0 between frames). */
  get buffered(): number {
    return this.decoder.bufferedBytes;
  }

  /** Call at end of stream: throws when a partial frame was buffered (truncated frame). */
  end(): void {
    try {
      this.decoder.finish();
    } catch (err) {
      throw reword(err);
    }
  }
}
