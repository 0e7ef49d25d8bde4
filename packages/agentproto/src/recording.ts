/**
 * Session recordings (spec §2.6): a CBOR sequence of Records 1–5 with long keys, byte-compatible
 * with MachineProxy's recorder; a reader that keeps everything before a damaged tail; and a replay
 * channel that plays a recorded command back to a Mux for deterministic tests.
 *
 * Unlike the original: env values and data payloads are redacted unless `redact: false`, write
 * errors are reported (never swallowed), and the Mux records frames read before its read loop too.
 */
import { EventEmitter } from 'node:events';
import { createReadStream, createWriteStream } from 'node:fs';
import { userInfo } from 'node:os';
import { Readable, Writable } from 'node:stream';
import { AgentProtocolError, ErrorCode } from '@picket/protocol';
import { CborSequenceDecoder, DEFAULT_MAX_ITEM_SIZE } from './cbor.js';
import {
  type DecodedFrame,
  decodeRecord,
  type ExecMsg,
  encodeFrame,
  encodeRecord,
  type Frame,
  FrameDecoder,
  FrameType,
  type Int64,
  RecordDirection,
  type RecordEntry,
  RecordType,
  type SessionHeader,
  type UnknownFrame,
} from './frames.js';

export { RecordDirection };

/** The `version` written in session headers when the caller gives none. */
export const RECORDING_VERSION = 'picket-agentproto/0.1.0';

const encoder = new TextEncoder();

/** `KEY=VALUE` → `KEY=<redacted>`; an entry without `=` is redacted whole. */
function redactEnv(env: string[] | null): string[] | null {
  return (
    env?.map((kv) => {
      const eq = kv.indexOf('=');
      return eq < 0 ? '<redacted>' : `${kv.slice(0, eq)}=<redacted>`;
    }) ?? null
  );
}

function redactBytes(d: Uint8Array): Uint8Array {
  return encoder.encode(`<redacted ${d.length} bytes>`);
}

/** The ExecMsg with env values replaced (names kept). */
export function redactExec(x: ExecMsg): ExecMsg {
  return { ...x, env: redactEnv(x.env) };
}

/**
 * A frame as the recorder writes it by default: env values in Exec, and the bytes of Data frames
 * and of file-op requests and responses, replaced by `<redacted N bytes>` (an empty payload stays
 * empty). Other frames are returned unchanged.
 */
export function redactFrame<F extends Frame | UnknownFrame>(frame: F): F {
  const f = frame as Frame | UnknownFrame;
  if (!('unknown' in f)) {
    switch (f.t) {
      case FrameType.Exec:
        if (f.x) return { ...f, x: redactExec(f.x) } as F;
        break;
      case FrameType.Data:
        if (f.d.length > 0) return { ...f, d: redactBytes(f.d) } as F;
        break;
      case FrameType.FileOp:
        if (f.fop?.d && f.fop.d.length > 0)
          return { ...f, fop: { ...f.fop, d: redactBytes(f.fop.d) } } as F;
        break;
      case FrameType.FileResp:
        if (f.frp?.d && f.frp.d.length > 0)
          return { ...f, frp: { ...f.frp, d: redactBytes(f.frp.d) } } as F;
        break;
    }
  }
  return frame;
}

/** Options of a {@link Recorder}. */
export interface RecorderOptions {
  /** Replace env values and data payloads (default true); `false` records everything verbatim. */
  redact?: boolean;
  /** End the sink on {@link Recorder.close} (default: only for a file the recorder opened). */
  endSink?: boolean;
  /** Clock in nanoseconds since the epoch (tests pin it). */
  now?: () => bigint;
}

/** Header fields; anything left out gets a default (this process, this user, now). */
export type SessionHeaderInit = Partial<SessionHeader>;

function nanoClock(): () => bigint {
  const wall = BigInt(Date.now()) * 1_000_000n;
  const mono = process.hrtime.bigint();
  return () => wall + (process.hrtime.bigint() - mono);
}

function safeInt(n: bigint): Int64 {
  return n <= BigInt(Number.MAX_SAFE_INTEGER) && n >= BigInt(Number.MIN_SAFE_INTEGER)
    ? Number(n)
    : n;
}

function currentUser(): string {
  try {
    return userInfo().username;
  } catch {
    return process.env.USER ?? '';
  }
}

/**
 * Writes a recording to a byte sink. Shared by any number of commands: each
 * {@link writeCommandStart} returns the `seq` its frames are recorded under.
 *
 * The write methods never throw and never wait (the hook runs inside the Mux's send and receive
 * paths). A write error fails the recorder: later records are dropped, the error is emitted as
 * `'error'` (when someone listens) and rejects {@link flush} and {@link close}.
 */
export class Recorder extends EventEmitter<{ error: [AgentProtocolError] }> {
  private readonly sink: Writable;
  private readonly redact: boolean;
  private readonly endSink: boolean;
  private readonly now: () => bigint;
  private nextSeq = 0;
  private failed: AgentProtocolError | undefined;
  private written: Promise<void> = Promise.resolve();
  private closing: Promise<void> | undefined;
  private closed = false;

  constructor(sink: Writable, options: RecorderOptions = {}) {
    super();
    this.sink = sink;
    this.redact = options.redact ?? true;
    this.endSink = options.endSink ?? false;
    this.now = options.now ?? nanoClock();
    sink.on('error', (err) => this.fail(err));
  }

  /**
   * Creates (or truncates) `path` with mode 0600 (a recording can hold secrets) and records into
   * it; rejects when the file cannot be opened. {@link close} closes the file.
   */
  static async open(path: string, options: RecorderOptions = {}): Promise<Recorder> {
    const file = createWriteStream(path, { flags: 'w', mode: 0o600 });
    await new Promise<void>((resolve, reject) => {
      file.once('open', () => resolve());
      file.once('error', reject);
    }).catch((err: Error) => {
      throw new AgentProtocolError(
        ErrorCode.Unavailable,
        `recording: cannot open ${path}: ${err.message}`,
        { cause: err },
      );
    });
    return new Recorder(file, { endSink: true, ...options });
  }

  /** The write error the recorder failed with, if any. */
  get error(): AgentProtocolError | undefined {
    return this.failed;
  }

  /** Commands started so far (the footer's `command_count`). */
  get commandCount(): number {
    return this.nextSeq;
  }

  private fail(err: unknown): void {
    if (this.failed) return;
    this.failed = new AgentProtocolError(
      ErrorCode.Unavailable,
      `recording: write failed: ${err instanceof Error ? err.message : String(err)}`,
      { cause: err },
    );
    if (this.listenerCount('error') > 0) this.emit('error', this.failed);
  }

  private write(rec: RecordEntry): void {
    if (this.failed || this.closed) return;
    let bytes: Uint8Array;
    try {
      bytes = encodeRecord(rec);
    } catch (err) {
      this.fail(err);
      return;
    }
    this.written = new Promise((resolve) => {
      try {
        this.sink.write(bytes, (err) => {
          if (err) this.fail(err);
          resolve();
        });
      } catch (err) {
        this.fail(err);
        resolve();
      }
    });
  }

  /** Record type 1. Call once, first. */
  writeSessionHeader(init: SessionHeaderInit = {}): void {
    const header: SessionHeader = {
      version: init.version ?? RECORDING_VERSION,
      start_time: init.start_time ?? safeInt(this.now()),
      local_user: init.local_user ?? currentUser(),
      local_pid: init.local_pid ?? process.pid,
      agent_path: init.agent_path ?? '',
    };
    for (const k of ['ssh_addr', 'ssh_user', 'backend_type', 'backend_addr'] as const) {
      const v = init[k];
      if (v) header[k] = v;
    }
    this.write({ type: RecordType.SessionHeader, header });
  }

  /** Record type 2; returns the command's `seq` (0, 1, 2, …). */
  writeCommandStart(exec: ExecMsg): number {
    const seq = this.nextSeq++;
    this.write({
      type: RecordType.CommandStart,
      cmd_start: {
        seq,
        start_time: safeInt(this.now()),
        exec: this.redact ? redactExec(exec) : exec,
      },
    });
    return seq;
  }

  /** Record type 3: the Mux hook, for every frame sent (`dir` 1) and received (`dir` 2). */
  writeFrame(seq: number, dir: RecordDirection, frame: Frame | UnknownFrame): void {
    this.write({
      type: RecordType.Frame,
      frame: {
        seq,
        ts: safeInt(this.now()),
        dir,
        frame: this.redact ? redactFrame(frame) : frame,
      },
    });
  }

  /** Record type 4. */
  writeCommandEnd(seq: number, exitCode: number): void {
    this.write({
      type: RecordType.CommandEnd,
      cmd_end: { seq, end_time: safeInt(this.now()), exit_code: exitCode },
    });
  }

  /** Record type 5 (written by {@link close}). */
  writeSessionFooter(): void {
    this.write({
      type: RecordType.SessionFooter,
      footer: { end_time: safeInt(this.now()), command_count: this.nextSeq },
    });
  }

  /** Resolves when everything written so far reached the sink; rejects with the write error. */
  async flush(): Promise<void> {
    await this.written;
    if (this.failed) throw this.failed;
  }

  /**
   * Writes the footer, waits for the writes, ends the sink when the recorder owns it, and
   * rejects with the first write error. Records written after close are dropped.
   */
  close(): Promise<void> {
    this.closing ??= this.finish();
    return this.closing;
  }

  private async finish(): Promise<void> {
    this.writeSessionFooter();
    this.closed = true;
    await this.written;
    if (this.endSink && !this.failed) {
      await new Promise<void>((resolve) => {
        this.sink.end(() => resolve());
        this.sink.once('error', () => resolve());
      });
    }
    if (this.failed) throw this.failed;
  }
}

// ---------------------------------------------------------------------------------------------
// Reading

/** What {@link readRecording} found: every good record, and why it stopped early if it did. */
export interface RecordingContents {
  records: RecordEntry[];
  /** A truncated tail or a bad item (INVALID_MESSAGE / MESSAGE_TOO_LARGE); the records before it are kept. */
  error?: AgentProtocolError;
}

/** Options of {@link readRecording}. */
export interface ReadRecordingOptions {
  /** Largest record accepted (default: a 1 MiB payload plus headroom). */
  maxItemSize?: number;
}

type ByteSource = Uint8Array | Readable | AsyncIterable<Uint8Array | string>;

/**
 * Reads a whole recording from bytes or a stream. It does not throw for bad content: the records
 * before a truncated tail or a bad item are returned with `error` naming the problem (an error
 * of the stream itself, such as a missing file, rejects).
 */
export async function readRecording(
  source: ByteSource,
  options: ReadRecordingOptions = {},
): Promise<RecordingContents> {
  const scanner = new CborSequenceDecoder({
    maxItemSize: options.maxItemSize ?? DEFAULT_MAX_ITEM_SIZE + 4096,
  });
  const records: RecordEntry[] = [];
  // names the record a problem was found in (counting from 0)
  const at = (err: unknown): AgentProtocolError => {
    const e = AgentProtocolError.from(err, ErrorCode.InvalidMessage);
    return new AgentProtocolError(e.code, `record ${records.length}: ${e.message}`, { cause: e });
  };
  const take = (chunk: Uint8Array): void => {
    let items: Uint8Array[];
    try {
      items = scanner.pushRaw(chunk);
    } catch (err) {
      throw at(err);
    }
    for (const item of items) {
      try {
        records.push(decodeRecord(item));
      } catch (err) {
        throw at(err);
      }
    }
  };
  try {
    if (source instanceof Uint8Array) {
      take(source);
    } else {
      for await (const chunk of source as AsyncIterable<Uint8Array | string>) {
        take(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
      }
    }
    try {
      scanner.end(); // also throws a fault the scanner deferred behind good records
    } catch (err) {
      throw at(err);
    }
  } catch (err) {
    if (err instanceof AgentProtocolError) return { records, error: err };
    throw err;
  }
  return { records };
}

/** {@link readRecording} of a file. */
export function readRecordingFile(
  path: string,
  options?: ReadRecordingOptions,
): Promise<RecordingContents> {
  return readRecording(createReadStream(path), options);
}

// ---------------------------------------------------------------------------------------------
// Replay

/** Options of {@link createReplayChannel}. */
export interface ReplayOptions {
  /** The command to replay (default: the first command that has frames). */
  seq?: number;
}

/** A byte-stream pair a Mux runs on, answering its sends from a recording. */
export interface ReplayChannel {
  /** What the Mux reads: the recorded received frames. */
  readable: Readable;
  /** What the Mux writes: checked against the recorded sent frames. */
  writable: Writable;
  /** Resolves when every recorded frame was played and matched; rejects on a mismatch. */
  done: Promise<void>;
}

function describeFrame(f: Frame | UnknownFrame): string {
  const name = Object.entries(FrameType).find(([, v]) => v === f.t)?.[0] ?? `unknown type ${f.t}`;
  const hex = Buffer.from(encodeFrame(f)).toString('hex');
  return `${name} frame (${hex.length > 96 ? `${hex.slice(0, 96)}…` : hex})`;
}

function sameFrame(actual: DecodedFrame, expected: Frame | UnknownFrame): boolean {
  const want = Buffer.from(encodeFrame(expected));
  // A redacted recording matches the redacted form of what is sent now.
  return (
    want.equals(Buffer.from(encodeFrame(actual))) ||
    want.equals(Buffer.from(encodeFrame(redactFrame(actual))))
  );
}

/**
 * A replay transport: the frames of one recorded command, in recorded order. Received (`dir` 2)
 * frames are fed to the readable until the next sent (`dir` 1) frame is due; then the channel
 * waits for the Mux to write exactly that frame (compared by canonical encoding; against a
 * redacted recording the redacted form of the write is compared). A different frame, or a frame
 * after the end, fails the channel: the readable is destroyed with the error, the write callback
 * gets it and `done` rejects. After the last recorded frame the readable ends.
 *
 * A redacted recording plays `<redacted N bytes>` placeholders as received data: record fixtures
 * with `redact: false`.
 */
export function createReplayChannel(
  records: readonly RecordEntry[],
  options: ReplayOptions = {},
): ReplayChannel {
  const frames = records.flatMap((r) => (r.type === RecordType.Frame ? [r.frame] : []));
  const seq = options.seq ?? frames[0]?.seq ?? 0;
  const script = frames.filter((f) => f.seq === seq);
  let at = 0;
  let failed: AgentProtocolError | undefined;
  let settle: { resolve(): void; reject(err: Error): void } | undefined;
  const done = new Promise<void>((resolve, reject) => {
    settle = { resolve, reject };
  });
  done.catch(() => {}); // reported through the streams too; the caller may not await done

  const readable = new Readable({ read() {} });
  const decoder = new FrameDecoder();

  const fail = (message: string): AgentProtocolError => {
    failed ??= new AgentProtocolError(
      ErrorCode.InvalidMessage,
      `replay of command ${seq}: ${message}`,
    );
    // once the readable ended, the Mux has read everything: the write callback reports it
    if (!readable.readableEnded) readable.destroy(failed);
    settle?.reject(failed);
    return failed;
  };

  // Plays received frames up to the next expected send; ends the readable after the last frame.
  const advance = (): void => {
    while (at < script.length && script[at]?.dir !== RecordDirection.Send) {
      readable.push(encodeFrame((script[at] as { frame: Frame | UnknownFrame }).frame));
      at++;
    }
    if (at >= script.length) {
      readable.push(null);
      settle?.resolve();
    }
  };

  const writable = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      if (failed) {
        callback(failed);
        return;
      }
      decoder.push(chunk);
      try {
        for (let frame = decoder.next(); frame !== undefined; frame = decoder.next()) {
          const expected = script[at];
          if (expected === undefined) {
            callback(fail(`unexpected ${describeFrame(frame)} after the end of the recording`));
            return;
          }
          if (!sameFrame(frame, expected.frame)) {
            callback(
              fail(
                `recorded frame ${at} expects ${describeFrame(expected.frame)}, but the Mux sent ${describeFrame(frame)}`,
              ),
            );
            return;
          }
          at++;
          advance();
        }
      } catch (err) {
        callback(fail(`the Mux wrote bytes that are not a frame: ${(err as Error).message}`));
        return;
      }
      callback();
    },
    final(callback) {
      const left = script.slice(at).filter((f) => f.dir === RecordDirection.Send).length;
      if (failed || left === 0) {
        callback(failed);
        return;
      }
      callback(fail(`the Mux ended its output with ${left} recorded send frame(s) still due`));
    },
  });

  advance();
  return { readable, writable, done };
}
