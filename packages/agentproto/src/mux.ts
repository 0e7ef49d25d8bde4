/**
 * The agentproto Mux: frames over one byte-stream pair (spec §2.4).
 *
 * Inbound: one read loop decodes the CBOR sequence and dispatches by frame type — Data / EOF
 * to per-fd stream handlers, Exit ends the loop with its code, FileOp requests run on the
 * agent side concurrently (up to a limit) instead of inside the loop, FileResp completes the
 * client side's pending RPC. Unknown frame types are ignored; a decode error ends the loop.
 *
 * Outbound: control frames (everything but Data / EOF) jump ahead of queued stream data, and
 * Data / EOF of one fd keep their order. Writes respect `writable.write()` returning false, so
 * a Signal, FileResp or Exit waits for at most what the writable already holds, never for a
 * data backlog.
 */
import type { Readable, Writable } from 'node:stream';
import { AgentProtocolError, ErrorCode, type Logger, silentLogger } from '@picket/protocol';
import {
  type AgentConfig,
  type DecodedFrame,
  type ExecMsg,
  encodeFrame,
  type FileOpReq,
  type FileOpResp,
  type Frame,
  FrameDecoder,
  FrameType,
  isKnownFrame,
  type LogEntry,
  type PathInfo,
  type PathQuery,
  RecordDirection,
} from './frames.js';

/** The largest Data payload a sender puts in one frame (the Go senders' read buffer). */
export const MAX_DATA_CHUNK = 32 * 1024;
/** Default bound on concurrently running agent-side FileOp handlers. */
export const DEFAULT_FILE_OP_CONCURRENCY = 16;
/** Bytes handed to one stream handler and not yet written before the read loop waits. */
const INBOUND_STREAM_LIMIT = 1024 * 1024;
/** errno answered when a FileOp handler throws (EIO, the original's catch-all). */
const EIO = 5;

/** Where one inbound stream's bytes go. */
export interface StreamHandler {
  /** One Data payload (never empty). A returned promise holds back further data for this fd. */
  write(data: Uint8Array): void | Promise<void>;
  /** The peer closed this stream (its EOF frame). */
  eof(): void;
}

/** The agent side's file-op service: one request in, one response out (the id is copied back). */
export type FileOpHandler = (
  req: FileOpReq,
  signal: AbortSignal,
) => FileOpResp | Promise<FileOpResp>;

/** What the mux needs of a recorder (the Recorder in recording.ts has this shape). */
export interface MuxRecorder {
  writeFrame(seq: number, dir: RecordDirection, frame: Frame | DecodedFrame): void;
}

/** Options of a {@link Mux}. */
export interface MuxOptions {
  /** Records every frame sent and received (including {@link Mux.readFrame}). */
  recorder?: MuxRecorder;
  /** The command sequence number the recorded frames belong to. */
  recordSeq?: number;
  /** Largest inbound CBOR item accepted (the decoder never buffers past it). */
  maxItemSize?: number;
  /** Agent-side FileOp handlers running at once; the read loop waits for a slot beyond it. */
  fileOpConcurrency?: number;
  /** Mux diagnostics (handler failures, dropped writes). */
  logger?: Logger;
}

interface Outgoing {
  frame: Frame;
  resolve(): void;
  reject(err: Error): void;
}

interface Pending {
  op: number;
  resolve(resp: FileOpResp): void;
  reject(err: Error): void;
}

interface Inbound {
  tail: Promise<void>;
  bytes: number;
}

/** A frame mux over `readable` (frames in) and `writable` (frames out). */
export class Mux {
  private readonly readable: Readable;
  private readonly writable: Writable;
  private readonly recorder: MuxRecorder | undefined;
  private readonly recordSeq: number;
  private readonly logger: Logger;
  private readonly decoder: FrameDecoder;
  private readonly fileOpLimit: number;
  private iterator: AsyncIterator<unknown> | undefined;

  private readonly streams = new Map<number, StreamHandler>();
  private readonly inbound = new Map<number, Inbound>();
  private signalFn: ((sig: number) => void) | undefined;
  private logFn: ((entry: LogEntry) => void) | undefined;
  private errorFn: ((message: string) => void) | undefined;
  private exitFn: ((code: number, error: string) => void) | undefined;
  private execFn: ((exec: ExecMsg) => void) | undefined;
  private configFn: ((config: AgentConfig) => void) | undefined;
  private pathQueryFn: ((query: PathQuery) => void) | undefined;
  private pathInfoFn: ((info: PathInfo) => void) | undefined;
  private fileOpFn: FileOpHandler | undefined;

  private nextId = 0;
  private readonly pending = new Map<number, Pending>();
  private fileOpsRunning = 0;
  private slotWaiters: (() => void)[] = [];
  private readonly fileOpAbort = new AbortController();

  private readonly control: Outgoing[] = [];
  private readonly data = new Map<number, Outgoing[]>();
  private dataOrder: number[] = [];
  private blocked = false;
  private outError: Error | undefined;
  private ended: Error | undefined;
  private running = false;
  private inputWaiters: (() => void)[] = [];
  /** Resolves a read waiting in {@link nextFrame} when the mux is closed. */
  private wake: () => void = () => {};
  private readonly woken = new Promise<undefined>((resolve) => {
    this.wake = () => resolve(undefined);
  });

  constructor(readable: Readable, writable: Writable, options: MuxOptions = {}) {
    this.readable = readable;
    this.writable = writable;
    this.recorder = options.recorder;
    this.recordSeq = options.recordSeq ?? 0;
    this.logger = options.logger ?? silentLogger;
    this.decoder = new FrameDecoder(
      options.maxItemSize === undefined ? undefined : { maxItemSize: options.maxItemSize },
    );
    this.fileOpLimit = Math.max(1, options.fileOpConcurrency ?? DEFAULT_FILE_OP_CONCURRENCY);
    this.writable.on('drain', this.onDrain);
    this.writable.on('error', this.onWriteError);
    this.writable.on('close', this.onWriteClose);
  }

  /** Routes Data / EOF of stream `fd` (0 stdin, 1 stdout, 2 stderr, 3+ extra fds) to `handler`. */
  registerStream(fd: number, handler: StreamHandler): void {
    this.streams.set(fd, handler);
  }
  onSignal(fn: (sig: number) => void): void {
    this.signalFn = fn;
  }
  onLog(fn: (entry: LogEntry) => void): void {
    this.logFn = fn;
  }
  onError(fn: (message: string) => void): void {
    this.errorFn = fn;
  }
  onExit(fn: (code: number, error: string) => void): void {
    this.exitFn = fn;
  }
  onExec(fn: (exec: ExecMsg) => void): void {
    this.execFn = fn;
  }
  onConfig(fn: (config: AgentConfig) => void): void {
    this.configFn = fn;
  }
  onPathQuery(fn: (query: PathQuery) => void): void {
    this.pathQueryFn = fn;
  }
  onPathInfo(fn: (info: PathInfo) => void): void {
    this.pathInfoFn = fn;
  }
  /** Agent side: serve FileOp requests with `handler` (see {@link FileOpHandler}). */
  onFileOp(handler: FileOpHandler): void {
    this.fileOpFn = handler;
  }

  // ---------------------------------------------------------------- outbound

  /**
   * Sends one frame. Data and EOF frames join their stream's queue (use {@link sendData} /
   * {@link sendEOF}); every other frame goes ahead of all queued data. Resolves once the
   * frame is handed to the writable; rejects when the writable has failed or closed.
   */
  send(frame: Frame): Promise<void> {
    if (frame.t === FrameType.Data || frame.t === FrameType.EOF) {
      return this.enqueueData(frame.s ?? 0, frame);
    }
    return new Promise<void>((resolve, reject) => {
      if (this.outError) return reject(this.outError);
      this.control.push({ frame, resolve, reject });
      this.pump();
    });
  }

  /** Sends `data` on stream `fd` in Data frames of at most 32 KiB (nothing for an empty buffer). */
  sendData(fd: number, data: Uint8Array): Promise<void> {
    const parts: Promise<void>[] = [];
    for (let off = 0; off < data.length; off += MAX_DATA_CHUNK) {
      const d = data.subarray(off, Math.min(data.length, off + MAX_DATA_CHUNK));
      parts.push(this.enqueueData(fd, { t: FrameType.Data, s: fd, d }));
    }
    return Promise.all(parts).then(() => undefined);
  }

  /** Closes stream `fd` towards the peer, after everything queued on it. */
  sendEOF(fd: number): Promise<void> {
    return this.enqueueData(fd, { t: FrameType.EOF, s: fd });
  }

  private enqueueData(fd: number, frame: Frame): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      if (this.outError) return reject(this.outError);
      let q = this.data.get(fd);
      if (q === undefined) {
        q = [];
        this.data.set(fd, q);
      }
      if (q.length === 0) this.dataOrder.push(fd);
      q.push({ frame, resolve, reject });
      this.pump();
    });
  }

  /** The next frame to write: control first, then one item per stream, round robin. */
  private nextOutgoing(): Outgoing | undefined {
    const c = this.control.shift();
    if (c !== undefined) return c;
    const fd = this.dataOrder.shift();
    if (fd === undefined) return undefined;
    const q = this.data.get(fd) as Outgoing[];
    const item = q.shift();
    if (q.length > 0) this.dataOrder.push(fd);
    return item;
  }

  private pump(): void {
    while (!this.blocked && this.outError === undefined) {
      const item = this.nextOutgoing();
      if (item === undefined) return;
      let bytes: Uint8Array;
      try {
        bytes = encodeFrame(item.frame);
      } catch (err) {
        item.reject(
          new AgentProtocolError(
            ErrorCode.InvalidArgument,
            `agentproto: cannot encode a frame of type ${item.frame.t}: ${(err as Error).message}`,
            { cause: err },
          ),
        );
        continue;
      }
      this.record(RecordDirection.Send, item.frame);
      const ok = this.writable.write(bytes);
      item.resolve();
      if (!ok) this.blocked = true;
    }
  }

  private readonly onDrain = (): void => {
    this.blocked = false;
    this.pump();
  };

  private readonly onWriteError = (err: Error): void => {
    this.failOutbound(
      new AgentProtocolError(
        ErrorCode.ConnectionClosed,
        `agentproto: writing to the peer failed: ${err.message}`,
        { cause: err },
      ),
    );
  };

  private readonly onWriteClose = (): void => {
    this.failOutbound(
      new AgentProtocolError(ErrorCode.ConnectionClosed, 'agentproto: the outbound stream closed'),
    );
  };

  private failOutbound(err: Error): void {
    if (this.outError) return;
    this.outError = err;
    for (const item of this.control.splice(0)) item.reject(err);
    for (const q of this.data.values()) for (const item of q.splice(0)) item.reject(err);
    this.dataOrder = [];
  }

  private record(dir: RecordDirection, frame: Frame | DecodedFrame): void {
    if (this.recorder === undefined) return;
    try {
      this.recorder.writeFrame(this.recordSeq, dir, frame);
    } catch (err) {
      this.logger.warn('agentproto: recording a frame failed', { error: (err as Error).message });
    }
  }

  // ---------------------------------------------------------------- file-op RPC (client side)

  /**
   * One file-op RPC: allocates the request id (never 0, wraps at 2^32, skips ids in flight),
   * sends the FileOp frame and resolves with the matching FileResp. Rejects with CANCELLED when
   * `options.signal` aborts (a late reply is dropped) and with CONNECTION_CLOSED when the
   * stream ends or the mux closes first.
   */
  fileOp(req: Omit<FileOpReq, 'id'>, options: { signal?: AbortSignal } = {}): Promise<FileOpResp> {
    const signal = options.signal;
    if (signal?.aborted) return Promise.reject(cancelled(req.op, signal));
    if (this.ended) return Promise.reject(this.ended);
    let id = this.nextId;
    do {
      id = (id + 1) >>> 0;
    } while (id === 0 || this.pending.has(id));
    this.nextId = id;
    return new Promise<FileOpResp>((resolve, reject) => {
      const onAbort = () => {
        this.pending.delete(id);
        reject(cancelled(req.op, signal as AbortSignal));
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.pending.set(id, {
        op: req.op,
        resolve: (resp) => {
          signal?.removeEventListener('abort', onAbort);
          resolve(resp);
        },
        reject: (err) => {
          signal?.removeEventListener('abort', onAbort);
          reject(err);
        },
      });
      this.send({ t: FrameType.FileOp, fop: { ...req, id } }).catch((err: Error) => {
        const p = this.pending.get(id);
        if (p === undefined) return;
        this.pending.delete(id);
        p.reject(err);
      });
    });
  }

  private deliver(resp: FileOpResp): void {
    const p = this.pending.get(resp.id);
    if (p === undefined) return; // late (cancelled) or unknown: dropped, as in the original
    this.pending.delete(resp.id);
    p.resolve(resp);
  }

  private failPending(err: Error | undefined): void {
    for (const [id, p] of [...this.pending]) {
      this.pending.delete(id);
      p.reject(
        new AgentProtocolError(
          ErrorCode.ConnectionClosed,
          `agentproto: ${err ? err.message : 'the stream ended'} while file op ${p.op} (request ${id}) was pending`,
          err ? { cause: err } : undefined,
        ),
      );
    }
  }

  // ---------------------------------------------------------------- file-op service (agent side)

  private async serveFileOp(req: FileOpReq): Promise<void> {
    const handler = this.fileOpFn as FileOpHandler;
    let resp: FileOpResp;
    try {
      resp = await handler(req, this.fileOpAbort.signal);
    } catch (err) {
      this.logger.error('agentproto: file-op handler failed', {
        op: req.op,
        error: (err as Error)?.message ?? String(err),
      });
      resp = {
        id: req.id,
        er: EIO,
        em: `file op ${req.op} failed: ${(err as Error)?.message ?? String(err)}`,
      };
    }
    await this.send({ t: FrameType.FileResp, frp: { ...resp, id: req.id } }).catch(() => {
      // the peer is gone: nothing to answer
    });
  }

  private async scheduleFileOp(req: FileOpReq): Promise<void> {
    while (this.fileOpsRunning >= this.fileOpLimit) {
      await new Promise<void>((resolve) => this.slotWaiters.push(resolve));
    }
    this.fileOpsRunning++;
    void this.serveFileOp(req).finally(() => {
      this.fileOpsRunning--;
      this.slotWaiters.shift()?.();
    });
  }

  /** Resolves when every running FileOp handler has answered. */
  async idle(): Promise<void> {
    while (this.fileOpsRunning > 0) {
      await new Promise<void>((resolve) => this.slotWaiters.push(resolve));
    }
  }

  // ---------------------------------------------------------------- inbound

  /**
   * The next frame, read outside the loop (the original's `DecodeOne`, for the first frames
   * of a session); undefined at end of stream. Recorded like every received frame. Rejects
   * with INVALID_MESSAGE / MESSAGE_TOO_LARGE on a malformed item.
   */
  async readFrame(): Promise<DecodedFrame | undefined> {
    const frame = await this.nextFrame();
    if (frame !== undefined) this.record(RecordDirection.Recv, frame);
    return frame;
  }

  private async nextFrame(): Promise<DecodedFrame | undefined> {
    for (;;) {
      // a malformed item, or a well-formed one with a wrong field type, throws here, in order
      const frame = this.decoder.next();
      if (frame !== undefined) return frame;
      this.iterator ??= this.readable[Symbol.asyncIterator]();
      let r: IteratorResult<unknown> | undefined;
      try {
        r = await Promise.race([this.iterator.next(), this.woken]);
      } catch (err) {
        throw new AgentProtocolError(
          ErrorCode.ConnectionClosed,
          `agentproto: reading from the peer failed: ${(err as Error).message}`,
          { cause: err },
        );
      }
      if (r === undefined) return undefined; // closed
      if (r.done) {
        this.decoder.end(); // throws when the stream stopped inside an item
        return undefined;
      }
      const chunk = r.value;
      this.decoder.push(typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Uint8Array));
    }
  }

  /**
   * The read loop (the original's `ReadLoop`): dispatches frames until Exit (resolves with its
   * code), end of stream (resolves −1) or {@link close} (resolves −1). A malformed item or a
   * transport error rejects with an AgentProtocolError naming what was wrong. Either way every
   * pending file-op call is failed.
   */
  async run(): Promise<number> {
    if (this.running)
      throw new AgentProtocolError(ErrorCode.Internal, 'agentproto: run() called twice');
    this.running = true;
    let failure: Error | undefined;
    try {
      for (;;) {
        if (this.ended) return -1;
        const frame = await this.nextFrame();
        if (frame === undefined || this.ended) return -1;
        this.record(RecordDirection.Recv, frame);
        this.notifyInput();
        const code = await this.dispatch(frame);
        if (code !== undefined) return code;
      }
    } catch (err) {
      failure = err as Error;
      throw err;
    } finally {
      this.ended ??=
        failure ??
        new AgentProtocolError(ErrorCode.ConnectionClosed, 'agentproto: the read loop ended');
      this.failPending(failure);
      this.notifyInput();
    }
  }

  /** Resolves at the next frame the read loop receives, or when the loop ends. */
  waitForInput(): Promise<void> {
    if (this.ended) return Promise.resolve();
    return new Promise<void>((resolve) => this.inputWaiters.push(resolve));
  }

  private notifyInput(): void {
    for (const w of this.inputWaiters.splice(0)) w();
  }

  /** Handles one frame; returns the exit code for Exit. */
  private async dispatch(frame: DecodedFrame): Promise<number | undefined> {
    if (!isKnownFrame(frame)) return undefined; // unknown types are ignored (forward compatibility)
    const f: Frame = frame;
    switch (f.t) {
      case FrameType.Exec:
        if (f.x !== undefined) this.execFn?.(f.x);
        return undefined;
      case FrameType.Data: {
        const d = f.d;
        const h = this.streams.get(f.s ?? 0);
        if (h === undefined || d === undefined || d.length === 0) return undefined;
        await this.toStream(f.s ?? 0, d.length, () => h.write(d));
        return undefined;
      }
      case FrameType.EOF: {
        const h = this.streams.get(f.s ?? 0);
        if (h !== undefined) await this.toStream(f.s ?? 0, 0, () => h.eof());
        return undefined;
      }
      case FrameType.Signal:
        this.signalFn?.(f.sig ?? 0);
        return undefined;
      case FrameType.Exit:
        this.exitFn?.(f.c ?? 0, f.e ?? '');
        return f.c ?? 0;
      case FrameType.Error:
        this.errorFn?.(f.e ?? '');
        return undefined;
      case FrameType.Log:
        if (f.l !== undefined) this.logFn?.(f.l);
        return undefined;
      case FrameType.Config:
        if (f.cfg !== undefined) this.configFn?.(f.cfg);
        return undefined;
      case FrameType.PathQuery:
        this.pathQueryFn?.(f.q ?? {});
        return undefined;
      case FrameType.PathInfo:
        if (f.i !== undefined) this.pathInfoFn?.(f.i);
        return undefined;
      case FrameType.FileOp:
        if (f.fop !== undefined && this.fileOpFn !== undefined) await this.scheduleFileOp(f.fop);
        return undefined;
      case FrameType.FileResp:
        if (f.frp !== undefined) this.deliver(f.frp);
        return undefined;
      default:
        return undefined; // unknown types are ignored (forward compatibility)
    }
  }

  /**
   * Runs `fn` after everything earlier on stream `fd`, without holding up the read loop —
   * unless that stream already has too many bytes in flight, then the loop waits for it.
   */
  private async toStream(fd: number, size: number, fn: () => void | Promise<void>): Promise<void> {
    let s = this.inbound.get(fd);
    if (s === undefined) {
      s = { tail: Promise.resolve(), bytes: 0 };
      this.inbound.set(fd, s);
    }
    const state = s;
    state.bytes += size;
    state.tail = state.tail
      .then(fn)
      .catch((err: unknown) => {
        this.logger.warn('agentproto: a stream handler failed', {
          stream: fd,
          error: (err as Error)?.message ?? String(err),
        });
      })
      .finally(() => {
        state.bytes -= size;
      });
    if (state.bytes > INBOUND_STREAM_LIMIT) await state.tail;
  }

  /** Resolves when every stream handler has taken what was dispatched to it. */
  async flushInbound(): Promise<void> {
    await Promise.all([...this.inbound.values()].map((s) => s.tail));
  }

  /**
   * Stops the mux: the read loop resolves −1 at its next frame, pending file-op calls fail with
   * CONNECTION_CLOSED, running FileOp handlers see their signal abort. It does not end or
   * destroy the streams (their owner does; ending the readable unblocks a waiting read).
   */
  close(reason = 'the mux was closed'): void {
    if (this.ended === undefined) {
      this.ended = new AgentProtocolError(ErrorCode.ConnectionClosed, `agentproto: ${reason}`);
    }
    this.failPending(this.ended);
    this.fileOpAbort.abort(this.ended);
    this.wake();
    this.notifyInput();
  }
}

function cancelled(op: number, signal: AbortSignal): AgentProtocolError {
  return new AgentProtocolError(ErrorCode.Cancelled, `agentproto: file op ${op} was cancelled`, {
    cause: signal.reason,
  });
}
