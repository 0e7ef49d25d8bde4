import { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { TLSSocket } from 'node:tls';
import {
  encodeFrameHeader,
  FRAME_HEADER_SIZE,
  type Frame,
  FrameDecoder,
  type FramingError,
  isFramingError,
} from '@picket/framing';
import {
  AgentProtocolError,
  describeMessageType,
  ErrorCode,
  isMessageType,
  MAX_UDS_FRAME_LENGTH,
} from '@picket/protocol';
import { beginBatch, describeNodeError, endBatch } from '@picket/protocol/internal';
import type { SocketReader } from './socket-reader.js';

/** Options of a {@link FrameChannel}. */
export interface FrameChannelOptions {
  /** a name for error messages and logs, e.g. `uds:waf#3` */
  id?: string;
  /** largest length field accepted and written (type byte + payload); default 16 MiB */
  maxFrameLength?: number;
  /**
   * Bytes of frames allowed to wait in the channel while the socket is congested
   * (`write()` returned false). Beyond it `write` throws UNAVAILABLE rather than
   * buffer without bound. Default 16 MiB. A single frame is always accepted into an
   * empty queue.
   */
  maxWriteQueueBytes?: number;
  /**
   * After `end()`, destroy the socket if it has not closed within this many ms (a
   * peer that neither reads nor closes must not keep a graceful close pending
   * forever). Default 5000.
   */
  endTimeoutMs?: number;
  /**
   * The reader given to the socket as its `onread` option when it was created; the
   * channel then takes the bytes from it instead of `'data'` events.
   */
  reader?: SocketReader;
}

/**
 * Payloads below this size are copied into one buffer per flush together with every
 * frame header (one allocation, one write); bigger ones are handed to the socket as
 * they are, so a body chunk is never copied.
 */
const COPY_LIMIT = 16 * 1024;
const DEFAULT_MAX_WRITE_QUEUE_BYTES = 16 * 1024 * 1024;
/** Smallest reusable flush buffer, and the largest one kept for reuse (memory per connection). */
const SPARE_MIN = 64 * 1024;
const SPARE_MAX = 256 * 1024;

interface Waiter {
  resolve(frame: Frame): void;
  reject(error: AgentProtocolError): void;
}

let channelCounter = 0;

/** Maps a framing failure to the error that closes the connection. */
function framingToProtocolError(id: string, err: FramingError): AgentProtocolError {
  const code =
    err.code === 'FRAME_TOO_LARGE' ? ErrorCode.MessageTooLarge : ErrorCode.InvalidMessage;
  return new AgentProtocolError(code, `${id}: framing error (${err.code}): ${err.message}`, {
    cause: err,
  });
}

/**
 * A v2 frame stream over any connected `Duplex` (a Unix socket, a TCP or TLS socket):
 * decodes inbound frames, batches outbound frames per tick into one socket write,
 * respects socket backpressure with a bounded queue, and reports the end of the
 * connection exactly once. It knows nothing about handshakes or roles, so the proxy
 * and agent engines (and reverse connections) can share it: run a handshake or a
 * registration with {@link FrameChannel.readFrame} / {@link FrameChannel.write}, then
 * hand the channel to {@link ProxyConnection} or {@link AgentConnection}.
 *
 * Frames that arrive while nobody consumes them are held, and the socket is paused,
 * so no frame is lost between the handshake and the engine taking over.
 */
export class FrameChannel {
  /** the name used in error messages and logs */
  readonly id: string;
  /** the underlying socket */
  readonly socket: Duplex;
  private readonly decoder: FrameDecoder;
  private readonly maxFrameLength: number;
  private readonly maxWriteQueueBytes: number;
  private readonly endTimeoutMs: number;
  /** the limit is one the framing package accepts, so `write` may check frames inline */
  private readonly inlineFrameCheck: boolean;

  private readonly inbox: Frame[] = [];
  private handler: ((frame: Frame) => void) | undefined;
  private waiter: Waiter | undefined;
  private externallyPaused = false;
  private pumping = false;

  /** payloads waiting for the next flush, and their frame types */
  private outbox: Uint8Array[] = [];
  private outboxTypes: number[] = [];
  private outboxBytes = 0;
  private flushScheduled = false;
  /** the scheduled flush waits for the end of the loop turn (frames coalesced across I/O callbacks) */
  private flushWaitsForTurn = false;
  /**
   * True for a plain net.Socket: once its `writableLength` is 0 after a write, libuv has
   * taken every byte and nothing refers to the buffer. Not for TLS (it may encrypt
   * later) nor for other Duplexes (one may hand the very chunk to a reader).
   */
  private readonly reuseBuffers: boolean;
  /** the flush buffer free for the next flush */
  private spare: Buffer | undefined;
  private waitingDrain = false;
  private ending = false;

  private isClosed = false;
  private error: AgentProtocolError | undefined;
  private readonly closeListeners: ((error?: AgentProtocolError) => void)[] = [];
  private readonly socketClosed: Promise<void>;

  constructor(socket: Duplex, options: FrameChannelOptions = {}) {
    this.socket = socket;
    this.id = options.id ?? `channel-${++channelCounter}`;
    this.maxFrameLength = options.maxFrameLength ?? MAX_UDS_FRAME_LENGTH;
    this.maxWriteQueueBytes = options.maxWriteQueueBytes ?? DEFAULT_MAX_WRITE_QUEUE_BYTES;
    this.endTimeoutMs = options.endTimeoutMs ?? 5000;
    this.inlineFrameCheck =
      Number.isInteger(this.maxFrameLength) &&
      this.maxFrameLength >= 1 &&
      this.maxFrameLength <= 0xffff_ffff;
    this.decoder = new FrameDecoder({ maxFrameLength: this.maxFrameLength });
    this.reuseBuffers = socket instanceof Socket && !(socket instanceof TLSSocket);
    this.socketClosed = new Promise((resolve) => {
      if (socket.destroyed && socket.closed) resolve();
      else socket.once('close', () => resolve());
    });

    if (options.reader !== undefined) options.reader.onBytes((bytes) => this.onData(bytes));
    else socket.on('data', (chunk: Buffer | string) => this.onData(chunk));
    socket.on('end', () => this.onEnd());
    socket.on('error', (err: Error) => {
      this.finalize(
        new AgentProtocolError(
          ErrorCode.ConnectionClosed,
          `${this.id}: socket error: ${describeNodeError(err)}`,
          {
            cause: err,
          },
        ),
      );
    });
    socket.on('close', () => {
      this.finalize(
        new AgentProtocolError(ErrorCode.ConnectionClosed, `${this.id}: connection closed`),
      );
    });
    socket.on('drain', () => {
      this.waitingDrain = false;
      this.flush();
    });
    if (socket.destroyed) {
      this.finalize(
        new AgentProtocolError(ErrorCode.ConnectionClosed, `${this.id}: socket already destroyed`),
      );
    }
  }

  /** True once the connection ended (or `end` / `destroy` was called). */
  get closed(): boolean {
    return this.isClosed;
  }

  /** Why the connection ended; `undefined` while open or after a local `end()`. */
  get closeError(): AgentProtocolError | undefined {
    return this.error;
  }

  /** Bytes of frames queued in the channel and not yet handed to the socket. */
  get queuedWriteBytes(): number {
    return this.outboxBytes;
  }

  /**
   * Delivers every following frame (and any held back) to `handler`, in order.
   * `undefined` stops delivery: frames are then held and the socket paused.
   */
  setFrameHandler(handler: ((frame: Frame) => void) | undefined): void {
    this.handler = handler;
    this.updateFlow();
    if (handler !== undefined && this.inbox.length > 0) queueMicrotask(() => this.pump());
  }

  /**
   * Resolves with the next frame (for handshakes and registrations). Rejects with
   * TIMEOUT after `timeoutMs`, or with the close error if the connection ends first.
   * Frames after it are held until the next `readFrame` or `setFrameHandler`.
   */
  readFrame(timeoutMs?: number, what = 'frame'): Promise<Frame> {
    if (this.handler !== undefined || this.waiter !== undefined) {
      return Promise.reject(
        new AgentProtocolError(
          ErrorCode.Internal,
          `${this.id}: readFrame while frames are already consumed`,
        ),
      );
    }
    const first = this.inbox.shift();
    if (first !== undefined) {
      this.updateFlow();
      return Promise.resolve(first);
    }
    if (this.isClosed) return Promise.reject(this.closedError(`while waiting for the ${what}`));
    return new Promise<Frame>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const done = (): void => {
        if (timer !== undefined) clearTimeout(timer);
        this.waiter = undefined;
        this.updateFlow();
      };
      this.waiter = {
        resolve: (frame) => {
          done();
          resolve(frame);
        },
        reject: (error) => {
          done();
          reject(error);
        },
      };
      if (timeoutMs !== undefined && Number.isFinite(timeoutMs)) {
        timer = setTimeout(() => {
          this.waiter?.reject(
            new AgentProtocolError(
              ErrorCode.Timeout,
              `${this.id}: no ${what} within ${timeoutMs} ms`,
            ),
          );
        }, timeoutMs);
      }
      this.updateFlow();
    });
  }

  /**
   * Stops reading from the socket (the peer then sees TCP/UDS backpressure) until
   * {@link resumeReading}. Used by the agent engine when its event queue is full.
   */
  pauseReading(): void {
    this.externallyPaused = true;
    this.updateFlow();
  }

  /** Undoes {@link pauseReading}. */
  resumeReading(): void {
    this.externallyPaused = false;
    this.updateFlow();
  }

  /**
   * Called once when the connection ends: with the error for anything but a local
   * `end()` / `destroy()` without error. Called on the next tick if already closed.
   */
  onClose(listener: (error?: AgentProtocolError) => void): void {
    if (this.isClosed) {
      const error = this.error;
      process.nextTick(() => listener(error));
      return;
    }
    this.closeListeners.push(listener);
  }

  /**
   * Queues one frame. Frames written in the same tick leave in one socket write; with
   * `coalesce` the write waits for the end of this event-loop turn instead, so frames
   * written by other I/O callbacks of the same turn (a busy proxy handling many requests)
   * share it: each socket write wakes the peer, and that wakeup is most of a call's cost.
   * Throws CONNECTION_CLOSED after the end, MESSAGE_TOO_LARGE for an oversize payload,
   * UNAVAILABLE when the peer stopped reading and the queue is full.
   */
  write(type: number, payload: Uint8Array, coalesce = false): void {
    if (this.isClosed) throw this.closedError('cannot write');
    const length = payload.length;
    if (!(this.inlineFrameCheck && length < this.maxFrameLength && isMessageType(type))) {
      // Let the framing package produce the exact error (or accept what it accepts).
      this.checkFrame(type, length);
    }
    const size = FRAME_HEADER_SIZE + length;
    if (this.outboxBytes > 0 && this.outboxBytes + size > this.maxWriteQueueBytes) {
      throw new AgentProtocolError(
        ErrorCode.Unavailable,
        `${this.id}: write queue full (${this.outboxBytes} bytes waiting, limit ${this.maxWriteQueueBytes}); the peer is not reading`,
      );
    }
    this.outbox.push(payload);
    this.outboxTypes.push(type);
    this.outboxBytes += size;
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      this.flushWaitsForTurn = coalesce;
      if (coalesce) setImmediate(this.scheduledFlush);
      // written while handling received frames (a reply): the pump sends it when it returns
      else if (!this.pumping) process.nextTick(this.scheduledFlush);
    }
  }

  /**
   * Sends what is queued now rather than at the end of the tick: for a frame known to
   * be the last of its batch (a lone call), so the peer starts on it while this side
   * finishes its bookkeeping. A no-op when nothing is queued or the socket is backed up.
   */
  flushNow(): void {
    if (this.outbox.length > 0) this.flush();
  }

  private readonly scheduledFlush = (): void => {
    this.flushScheduled = false;
    this.flush();
  };

  private checkFrame(type: number, length: number): void {
    try {
      encodeFrameHeader(type, length, { maxFrameLength: this.maxFrameLength });
    } catch (err) {
      if (isFramingError(err) && err.code === 'FRAME_TOO_LARGE') {
        throw new AgentProtocolError(
          ErrorCode.MessageTooLarge,
          `${this.id}: ${describeMessageType(type)}: ${err.message}`,
          { cause: err },
        );
      }
      throw AgentProtocolError.from(
        err,
        ErrorCode.Internal,
        `${this.id}: cannot frame ${describeMessageType(type)}`,
      );
    }
  }

  /**
   * Closes gracefully: no new writes, queued frames are flushed, then the socket is
   * ended. Resolves once the socket has closed.
   */
  end(): Promise<void> {
    if (!this.isClosed) {
      this.ending = true;
      this.finalize(undefined);
      this.flush();
      const guard = setTimeout(() => this.socket.destroy(), this.endTimeoutMs);
      guard.unref();
      void this.socketClosed.then(() => clearTimeout(guard));
    }
    return this.socketClosed;
  }

  /** Closes at once, dropping queued frames; `error` is reported to `onClose` listeners. */
  destroy(error?: AgentProtocolError): void {
    this.finalize(error);
    this.outbox = [];
    this.outboxTypes = [];
    this.outboxBytes = 0;
    this.socket.destroy();
  }

  /** Resolves once the socket has fully closed. */
  whenClosed(): Promise<void> {
    return this.socketClosed;
  }

  // ------------------------------------------------------------------ internals

  private closedError(context: string): AgentProtocolError {
    const why = this.error?.message ?? `${this.id}: connection closed`;
    return new AgentProtocolError(ErrorCode.ConnectionClosed, `${why} (${context})`, {
      cause: this.error,
    });
  }

  private onData(chunk: Buffer | string): void {
    if (this.isClosed) return;
    const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    let frames: Frame[];
    try {
      frames = this.decoder.push(bytes);
    } catch (err) {
      this.destroy(
        isFramingError(err)
          ? framingToProtocolError(this.id, err)
          : AgentProtocolError.from(err, ErrorCode.InvalidMessage, `${this.id}: framing error`),
      );
      return;
    }
    if (frames.length === 0) return;
    for (const frame of frames) this.inbox.push(frame);
    this.pump();
  }

  private onEnd(): void {
    if (this.isClosed) return;
    try {
      this.decoder.finish();
    } catch (err) {
      this.destroy(
        isFramingError(err)
          ? framingToProtocolError(this.id, err)
          : AgentProtocolError.from(err, ErrorCode.ConnectionClosed, this.id),
      );
      return;
    }
    this.finalize(
      new AgentProtocolError(ErrorCode.ConnectionClosed, `${this.id}: peer closed the connection`),
    );
    // The peer will not read any more; release the socket.
    this.socket.destroy();
  }

  private pump(): void {
    if (this.pumping) return;
    this.pumping = true;
    beginBatch(); // answers handled here share one clock reading (the pool times them)
    try {
      while (!this.isClosed && this.inbox.length > 0) {
        const handler = this.handler;
        const waiter = this.waiter;
        if (handler === undefined && waiter === undefined) break;
        const frame = this.inbox.shift() as Frame;
        if (handler !== undefined) {
          try {
            handler(frame);
          } catch (err) {
            this.destroy(
              AgentProtocolError.from(err, ErrorCode.Internal, `${this.id}: frame handler failed`),
            );
          }
        } else {
          waiter?.resolve(frame);
        }
      }
    } finally {
      endBatch();
      this.pumping = false;
    }
    // Replies written while handling this batch of frames leave now, together, instead of
    // after the rest of the tick (frames coalesced for the loop turn keep waiting for it).
    if (this.flushScheduled && !this.flushWaitsForTurn && !this.isClosed) {
      this.flushScheduled = false; // a tick scheduled before the pump then finds nothing
      this.flush();
    }
    this.updateFlow();
  }

  private updateFlow(): void {
    if (this.isClosed) return;
    const consumer = this.handler !== undefined || this.waiter !== undefined;
    const hold = this.externallyPaused || (this.inbox.length > 0 && !consumer);
    if (hold) {
      if (!this.socket.isPaused()) this.socket.pause();
    } else if (this.socket.isPaused()) {
      this.socket.resume();
    }
  }

  private flush(): void {
    const socket = this.socket;
    if (this.waitingDrain || this.outbox.length === 0) {
      if (this.ending && this.outbox.length === 0 && !this.waitingDrain) this.finishEnd();
      return;
    }
    const payloads = this.outbox;
    const types = this.outboxTypes;
    this.outbox = [];
    this.outboxTypes = [];
    this.outboxBytes = 0;
    if (socket.destroyed || !socket.writable) return;
    // Every header and every small payload go into one buffer (copying beats syscalls and
    // per-chunk stream overhead); big payloads are written as they are, corked so Node
    // hands all the pieces to one writev.
    const n = payloads.length;
    let copied = 0;
    for (let i = 0; i < n; i++) {
      const len = (payloads[i] as Uint8Array).length;
      copied += len < COPY_LIMIT ? FRAME_HEADER_SIZE + len : FRAME_HEADER_SIZE;
    }
    // One buffer is reused from flush to flush while the socket takes each write whole at
    // once (the usual case on a Unix socket): fresh buffers per flush were a steady stream
    // of external memory for the GC. A write left pending keeps its buffer.
    let buf = this.spare;
    if (buf !== undefined && copied <= buf.length) this.spare = undefined;
    else buf = Buffer.allocUnsafe(this.reuseBuffers ? Math.max(copied, SPARE_MIN) : copied);
    const pieces: Uint8Array[] = [];
    let pos = 0;
    let segment = 0;
    for (let i = 0; i < n; i++) {
      const payload = payloads[i] as Uint8Array;
      const len = payload.length;
      const frameLength = len + 1;
      buf[pos] = frameLength >>> 24;
      buf[pos + 1] = (frameLength >>> 16) & 0xff;
      buf[pos + 2] = (frameLength >>> 8) & 0xff;
      buf[pos + 3] = frameLength & 0xff;
      buf[pos + 4] = types[i] as number;
      pos += FRAME_HEADER_SIZE;
      if (len < COPY_LIMIT) {
        buf.set(payload, pos);
        pos += len;
      } else {
        pieces.push(buf.subarray(segment, pos), payload);
        segment = pos;
      }
    }
    let ok: boolean;
    if (pieces.length === 0) {
      ok = socket.write(pos === buf.length ? buf : buf.subarray(0, pos));
      if (this.reuseBuffers && socket.writableLength === 0 && buf.length <= SPARE_MAX) {
        this.spare = buf;
      }
    } else {
      if (segment < pos) pieces.push(buf.subarray(segment, pos));
      socket.cork();
      ok = true;
      for (const piece of pieces) ok = socket.write(piece) && ok;
      socket.uncork();
    }
    if (!ok) {
      this.waitingDrain = true;
      return;
    }
    if (this.ending) this.finishEnd();
  }

  private finishEnd(): void {
    this.ending = false;
    if (!this.socket.destroyed) this.socket.end();
  }

  private finalize(error: AgentProtocolError | undefined): void {
    if (this.isClosed) return;
    this.isClosed = true;
    this.error = error;
    this.inbox.length = 0;
    this.handler = undefined;
    if (this.waiter !== undefined) {
      this.waiter.reject(
        error ??
          new AgentProtocolError(
            ErrorCode.ConnectionClosed,
            `${this.id}: connection closed locally`,
          ),
      );
    }
    const listeners = this.closeListeners.splice(0, this.closeListeners.length);
    for (const listener of listeners) {
      try {
        listener(error);
      } catch {
        // a listener's failure must not stop the others from hearing about the close
      }
    }
  }
}
