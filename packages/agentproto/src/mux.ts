/**
 * The agentproto Mux: frames over one byte-stream pair (spec §2.4).
 *
 * Inbound: one read loop decodes the CBOR sequence and dispatches by frame type — Data / EOF
 * to per-fd stream handlers, Exit ends the loop with its code, FileOp requests run on the
 * agent side concurrently (up to a limit) instead of inside the loop, FileResp completes the
 * client side's pending RPC. Unknown frame types are ignored; a decode error ends the loop.
 *
 * Outbound: control frames (everything but Data / EOF) jump ahead of queued stream data, and
 * Data / EOF of one fd keep their order. The mux stops handing frames to the writable once it
 * holds {@link OUTBOUND_LIMIT} bytes (and `write()` returned false), so a Signal, FileResp or Exit
 * waits for at most that much, never for a data backlog. Frames written in one tick go out in
 * one batch (the writable is corked until the next tick).
 */
import type { Readable, Writable } from 'node:stream';
import { AgentProtocolError, ErrorCode, type Logger, silentLogger } from '@picket/protocol';
import { encodeCborBuffer, encodeCborParts } from './cbor.js';
import {
  type AgentConfig,
  type DecodedFrame,
  type ExecMsg,
  type FileOpReq,
  type FileOpResp,
  type Frame,
  FrameDecoder,
  FrameType,
  frameToCbor,
  isKnownFrame,
  type LogEntry,
  type PathInfo,
  type PathQuery,
  RecordDirection,
} from './frames.js';
import { byteStringViews, type InternalDecodeOptions } from './internal.js';

/** The largest Data payload a sender puts in one frame (the Go senders' read buffer). */
export const MAX_DATA_CHUNK = 32 * 1024;
/** Default bound on concurrently running agent-side FileOp handlers. */
export const DEFAULT_FILE_OP_CONCURRENCY = 16;
/** Bytes handed to one stream handler and not yet written before the read loop waits. */
const INBOUND_STREAM_LIMIT = 1024 * 1024;
/**
 * Bytes the writable may hold before the mux waits for 'drain'. Above the writable's own
 * highWaterMark (16 KiB for pipes and sockets), so 32 KiB Data frames do not each wait for a
 * drain, and small enough that a control frame is never far behind.
 */
const OUTBOUND_LIMIT = 128 * 1024;
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
  /** absent for all but the last frame of one {@link Mux.sendData} call */
  resolve?: () => void;
  reject?: (err: Error) => void;
}

interface Pending {
  op: number;
  resolve(resp: FileOpResp): void;
  reject(err: Error): void;
}

interface Inbound {
  /** settles when the stream's handler has taken everything dispatched so far */
  tail: Promise<void>;
  /** handler calls not finished yet (0: the next one may run at once) */
  queued: number;
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
  private corked = false;
  private outError: Error | undefined;
  private ended: Error | undefined;
  private running = false;
  private inputWaiters: (() => void)[] = [];
  /** The mux was closed: reads end (a read waiting in {@link nextFrame} is woken). */
  private woken = false;
  /** Wake the reads waiting right now. */
  private readonly wakeReads = new Set<() => void>();

  constructor(readable: Readable, writable: Writable, options: MuxOptions = {}) {
    this.readable = readable;
    this.writable = writable;
    this.recorder = options.recorder;
    this.recordSeq = options.recordSeq ?? 0;
    this.logger = options.logger ?? silentLogger;
    // payloads may be views of the chunks read: a Readable never reuses a chunk it emitted
    const decodeOptions: InternalDecodeOptions = { [byteStringViews]: true };
    if (options.maxItemSize !== undefined) decodeOptions.maxItemSize = options.maxItemSize;
    this.decoder = new FrameDecoder(decodeOptions);
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

  /** A control frame without a promise: `failed` hears about a failure to send it. */
  private sendControl(frame: Frame, failed: (err: Error) => void): void {
    if (this.outError) {
      failed(this.outError);
      return;
    }
    this.control.push({ frame, reject: failed });
    this.pump();
  }

  /**
   * Sends `data` on stream `fd` in Data frames of at most 32 KiB (nothing for an empty buffer).
   * The payload is written without a copy: the promise resolves once the writable has flushed it,
   * so `data` must not change before then (and may be reused after).
   */
  sendData(fd: number, data: Uint8Array): Promise<void> {
    if (data.length === 0) return this.outError ? Promise.reject(this.outError) : Promise.resolve();
    // one promise for the call: the frames of one fd are written in order, so the last one
    // handed over means all were (and a failure reaches every queued frame, the last included)
    let off = 0;
    for (; off + MAX_DATA_CHUNK < data.length; off += MAX_DATA_CHUNK) {
      if (this.outError) break;
      const d = data.subarray(off, off + MAX_DATA_CHUNK);
      this.queueData(fd, { frame: { t: FrameType.Data, s: fd, d } });
    }
    return this.enqueueData(fd, { t: FrameType.Data, s: fd, d: data.subarray(off) });
  }

  /** Closes stream `fd` towards the peer, after everything queued on it. */
  sendEOF(fd: number): Promise<void> {
    return this.enqueueData(fd, { t: FrameType.EOF, s: fd });
  }

  private enqueueData(fd: number, frame: Frame): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      if (this.outError) return reject(this.outError);
      this.queueData(fd, { frame, resolve, reject });
    });
  }

  private queueData(fd: number, item: Outgoing): void {
    let q = this.data.get(fd);
    if (q === undefined) {
      q = [];
      this.data.set(fd, q);
    }
    if (q.length === 0) this.dataOrder.push(fd);
    q.push(item);
    this.pump();
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
      let bytes: Uint8Array | Uint8Array[];
      try {
        const f = item.frame;
        // a payload is written as it is, between its head and the frame's other fields
        bytes =
          f.t === FrameType.Data && f.d !== undefined && f.d.length >= 256
            ? encodeCborParts(frameToCbor(f))
            : encodeCborBuffer(frameToCbor(f));
      } catch (err) {
        const failure = new AgentProtocolError(
          ErrorCode.InvalidArgument,
          `agentproto: cannot encode a frame of type ${item.frame.t}: ${(err as Error).message}`,
          { cause: err },
        );
        if (item.reject) item.reject(failure);
        else this.logger.warn('agentproto: dropped a frame', { error: failure.message });
        continue;
      }
      this.record(RecordDirection.Send, item.frame);
      if (!this.corked) {
        // everything written in this tick leaves in one writev
        this.corked = true;
        this.writable.cork();
        process.nextTick(this.uncork);
      }
      let ok: boolean;
      if (Array.isArray(bytes)) {
        const last = bytes.length - 1;
        for (let i = 0; i < last; i++) this.writable.write(bytes[i]);
        ok = this.writable.write(bytes[last], item.resolve ? this.flushed(item) : undefined);
      } else {
        ok = this.writable.write(bytes);
        item.resolve?.();
      }
      // a false return alone only means "above highWaterMark": keep going up to our own limit
      if (!ok && this.writable.writableLength >= OUTBOUND_LIMIT) this.blocked = true;
    }
  }

  /** The write callback of a frame whose payload was not copied: settles its sender's promise. */
  private flushed(item: Outgoing): (err?: Error | null) => void {
    return (err) => {
      if (err) {
        item.reject?.(
          new AgentProtocolError(
            ErrorCode.ConnectionClosed,
            `agentproto: writing to the peer failed: ${err.message}`,
            { cause: err },
          ),
        );
      } else {
        item.resolve?.();
      }
    };
  }

  private readonly uncork = (): void => {
    this.corked = false;
    this.writable.uncork();
  };

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
    for (const item of this.control.splice(0)) item.reject?.(err);
    for (const q of this.data.values()) for (const item of q.splice(0)) item.reject?.(err);
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
    const frame: Frame = { t: FrameType.FileOp, fop: { ...req, id } };
    const sendFailed = (err: Error) => {
      const p = this.pending.get(id);
      if (p === undefined) return;
      this.pending.delete(id);
      p.reject(err);
    };
    if (signal === undefined) {
      // the common case: no listener to add and remove
      return new Promise<FileOpResp>((resolve, reject) => {
        this.pending.set(id, { op: req.op, resolve, reject });
        this.sendControl(frame, sendFailed);
      });
    }
    return new Promise<FileOpResp>((resolve, reject) => {
      const onAbort = () => {
        this.pending.delete(id);
        reject(cancelled(req.op, signal as AbortSignal));
      };
      signal.addEventListener('abort', onAbort, { once: true });
      this.pending.set(id, {
        op: req.op,
        resolve: (resp) => {
          signal.removeEventListener('abort', onAbort);
          resolve(resp);
        },
        reject: (err) => {
          signal.removeEventListener('abort', onAbort);
          reject(err);
        },
      });
      this.sendControl(frame, sendFailed);
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
    this.startFileOp(req);
  }

  private startFileOp(req: FileOpReq): void {
    this.fileOpsRunning++;
    void this.serveFileOp(req).then(this.fileOpDone, this.fileOpDone);
  }

  private readonly fileOpDone = (): void => {
    this.fileOpsRunning--;
    this.slotWaiters.shift()?.();
  };

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
        if (this.woken) return undefined;
        // a fresh wake-up per wait: racing one long-lived promise would pile a reaction on it per read
        let wake: () => void = () => {};
        const woken = new Promise<undefined>((resolve) => {
          wake = () => resolve(undefined);
        });
        this.wakeReads.add(wake);
        try {
          r = await Promise.race([this.iterator.next(), woken]);
        } finally {
          this.wakeReads.delete(wake);
        }
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
        // frames already decoded are taken without a promise each
        const frame = this.decoder.next() ?? (await this.nextFrame());
        if (frame === undefined || this.ended) return -1;
        this.record(RecordDirection.Recv, frame);
        if (this.inputWaiters.length > 0) this.notifyInput();
        let code = this.dispatch(frame);
        if (code instanceof Promise) code = await code;
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

  /** Handles one frame; returns the exit code for Exit, or a promise when the loop must wait. */
  private dispatch(frame: DecodedFrame): number | undefined | Promise<undefined> {
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
        return this.toStream(f.s ?? 0, d.length, () => h.write(d));
      }
      case FrameType.EOF: {
        const h = this.streams.get(f.s ?? 0);
        if (h !== undefined) return this.toStream(f.s ?? 0, 0, () => h.eof());
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
        if (f.fop === undefined || this.fileOpFn === undefined) return undefined;
        if (this.fileOpsRunning < this.fileOpLimit) {
          this.startFileOp(f.fop);
          return undefined;
        }
        return this.scheduleFileOp(f.fop).then(() => undefined);
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
  private toStream(
    fd: number,
    size: number,
    fn: () => void | Promise<void>,
  ): Promise<undefined> | undefined {
    let s = this.inbound.get(fd);
    if (s === undefined) {
      s = { tail: Promise.resolve(), queued: 0, bytes: 0 };
      this.inbound.set(fd, s);
    }
    const state = s;
    const failed = (err: unknown): void => {
      this.logger.warn('agentproto: a stream handler failed', {
        stream: fd,
        error: (err as Error)?.message ?? String(err),
      });
    };
    const settled = (): void => {
      state.queued--;
      state.bytes -= size;
    };
    if (state.queued === 0) {
      // nothing earlier is still being written: call the handler now, no promise unless it returns one
      let r: void | Promise<void>;
      try {
        r = fn();
      } catch (err) {
        failed(err);
        return undefined;
      }
      if (typeof (r as PromiseLike<void> | undefined)?.then !== 'function') return undefined;
      state.queued++;
      state.bytes += size;
      state.tail = Promise.resolve(r).then(settled, (err: unknown) => {
        failed(err);
        settled();
      });
    } else {
      state.queued++;
      state.bytes += size;
      state.tail = state.tail.then(fn).catch(failed).then(settled);
    }
    if (state.bytes > INBOUND_STREAM_LIMIT) return state.tail.then(() => undefined);
    return undefined;
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
    this.woken = true;
    for (const wake of this.wakeReads) wake();
    this.notifyInput();
  }
}

function cancelled(op: number, signal: AbortSignal): AgentProtocolError {
  return new AgentProtocolError(ErrorCode.Cancelled, `agentproto: file op ${op} was cancelled`, {
    cause: signal.reason,
  });
}
