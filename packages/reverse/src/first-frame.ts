import type { Duplex } from 'node:stream';
import { AgentProtocolError, describeMessageType, ErrorCode } from '@picket/protocol';

/** The registration frame and whatever arrived after it in the same reads. */
export interface FirstFrame {
  type: number;
  payload: Buffer;
  /** bytes after the frame; pushed back into the socket for the connection engine */
  rest: Buffer;
}

/** Options of {@link readFirstFrame}. */
export interface FirstFrameOptions {
  /** largest length field accepted (type byte + payload) */
  maxFrameLength: number;
  /** the only acceptable frame type; any other is refused as soon as its type byte arrives */
  expectedType: number;
  /** whole frame must arrive within this; `Infinity` = no limit */
  timeoutMs: number;
  /** name for messages, e.g. `RegistrationRequest (0x01)` */
  what: string;
  /** what to add to the refusal of a wrong frame type (e.g. a known foreign dialect), if anything */
  hint?: (type: number) => string | undefined;
}

/**
 * Reads exactly one v2 frame from a fresh socket with a small size limit, before
 * any connection engine owns the socket. Refuses early (a zero or oversize length,
 * a wrong type byte) instead of buffering junk, and leaves the socket paused with
 * the bytes after the frame unread, so no data is lost when the engine takes over.
 *
 * Rejects with AgentProtocolError: TIMEOUT, CONNECTION_CLOSED (EOF / reset),
 * MESSAGE_TOO_LARGE, INVALID_MESSAGE (zero length, wrong type).
 */
export function readFirstFrame(socket: Duplex, options: FirstFrameOptions): Promise<FirstFrame> {
  return new Promise((resolve, reject) => {
    let chunks: Buffer[] = [];
    let have = 0;
    let need: number | undefined;
    let typeChecked = false;
    let timer: NodeJS.Timeout | undefined;

    const cleanup = (): void => {
      if (timer !== undefined) clearTimeout(timer);
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.off('error', onError);
      socket.off('close', onClose);
    };
    const fail = (code: ErrorCode, message: string, cause?: unknown): void => {
      cleanup();
      reject(new AgentProtocolError(code, message, { cause }));
    };
    const onData = (chunk: Buffer | string): void => {
      const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
      chunks.push(bytes);
      have += bytes.length;
      if (need === undefined && have >= 4) {
        if (chunks.length > 1) chunks = [Buffer.concat(chunks, have)];
        const head = chunks[0] as Buffer;
        const length = head.readUInt32BE(0);
        if (length === 0) {
          fail(ErrorCode.InvalidMessage, `zero-length frame instead of the ${options.what}`);
          return;
        }
        if (length > options.maxFrameLength) {
          fail(
            ErrorCode.MessageTooLarge,
            `${options.what} frame of ${length} bytes exceeds the limit of ${options.maxFrameLength}`,
          );
          return;
        }
        need = 4 + length;
      }
      if (need !== undefined && !typeChecked && have >= 5) {
        typeChecked = true;
        // Copies at most once: the header arrives within the first few reads.
        if (chunks.length > 1) chunks = [Buffer.concat(chunks, have)];
        const type = (chunks[0] as Buffer)[4] as number;
        if (type !== options.expectedType) {
          const hint = options.hint?.(type);
          fail(
            ErrorCode.InvalidMessage,
            `expected ${options.what} as the first frame, got ${describeMessageType(type)}` +
              (hint === undefined ? '' : `: ${hint}`),
          );
          return;
        }
      }
      if (need !== undefined && have >= need) {
        const all = chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, have);
        // Hold further bytes in the socket until the connection engine attaches.
        socket.pause();
        cleanup();
        resolve({
          type: all[4] as number,
          payload: all.subarray(5, need),
          rest: all.subarray(need),
        });
      }
    };
    const onEnd = (): void => {
      fail(
        ErrorCode.ConnectionClosed,
        have === 0
          ? `peer closed the connection before sending the ${options.what}`
          : `peer closed the connection after ${have} bytes of a truncated ${options.what}`,
      );
    };
    const onError = (err: Error): void => {
      fail(
        ErrorCode.ConnectionClosed,
        `socket error before the ${options.what}: ${err.message}`,
        err,
      );
    };
    const onClose = (): void => {
      fail(ErrorCode.ConnectionClosed, `connection closed before the ${options.what}`);
    };

    socket.on('data', onData);
    socket.on('end', onEnd);
    socket.on('error', onError);
    socket.on('close', onClose);
    if (Number.isFinite(options.timeoutMs)) {
      timer = setTimeout(() => {
        fail(
          ErrorCode.Timeout,
          have === 0
            ? `no ${options.what} within ${options.timeoutMs} ms`
            : `incomplete ${options.what} (${have} bytes) after ${options.timeoutMs} ms`,
        );
      }, options.timeoutMs);
    }
    if (socket.isPaused()) socket.resume();
  });
}
