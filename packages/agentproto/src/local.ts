/**
 * The local side (spec §2.3, the original's `AgentRunner`): run a command through an agent,
 * enumerate the agent's PATH, open a file-op session.
 *
 * `via` is the argv of any channel whose stdin / stdout reach a `picket-agent`:
 * `['ssh', 'host', 'picket-agent']`, `['docker', 'exec', '-i', 'ctr', 'picket-agent']`, or a
 * local agent (`[process.execPath, '/path/to/picket-agent.js']`). One channel process per
 * session. The channel's stderr carries the agent's bootstrap diagnostics: it is forwarded to
 * `agentStderr` when given and always drained (its last 4 KiB are quoted in errors).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { constants as osConstants } from 'node:os';
import type { Duplex, Readable, Writable } from 'node:stream';
import {
  AgentProtocolError,
  ErrorCode,
  escapeForLog,
  type Logger,
  silentLogger,
} from '@picket/protocol';
import {
  type AgentConfig,
  type ExecMsg,
  FrameType,
  isKnownFrame,
  type LogEntry,
  type PathInfoEntry,
} from './frames.js';
import { Mux, type MuxRecorder, type StreamHandler } from './mux.js';

/** The exit code reported when the agent's stream ended without an Exit frame (as the original runner). */
export const EXIT_NO_EXIT_FRAME = 127;
const STDERR_TAIL = 4096;

/** What to run: `path` (looked up in the agent's PATH when it has no slash) and the full argv. */
export interface ExecCommand {
  path: string;
  /** argv including argv[0]; the child's argv[0] is `path` (the original's rule). Default `[path]`. */
  argv?: readonly string[];
  /** `KEY=VALUE` entries; `null` / absent: the child inherits the agent's environment. */
  env?: readonly string[] | null;
  /** Working directory on the agent's side; empty / absent: the agent's. */
  cwd?: string;
}

/** Where the command's standard streams come from and go to. */
export interface ExecStdio {
  /** Copied to the command's stdin; absent: the command sees EOF at once. Never ended by exec. */
  stdin?: Readable;
  /** Receives the command's stdout (not ended by exec). Absent: discarded. */
  stdout?: Writable;
  /** Receives the command's stderr (not ended by exec). Absent: discarded. */
  stderr?: Writable;
}

/** Options shared by every local-side call. */
export interface ChannelOptions {
  /** argv of the channel to the agent (see the module comment). */
  via: readonly string[];
  /** Receives the agent's in-band logs (`source: 'agent'`) and the runner's diagnostics. */
  logger?: Logger;
  /** Also receives the channel's raw stderr (bootstrap diagnostics, ssh's own messages). */
  agentStderr?: Writable;
}

/** Options of {@link exec} / {@link startExec}. */
export interface ExecOptions extends ChannelOptions {
  stdio?: ExecStdio;
  /**
   * Extra fds ≥ 3 for the command, each bridged both ways to a local duplex: what the command
   * writes to fd N is written to `extraFds[N]`, what `extraFds[N]` yields is sent to fd N; each
   * side's EOF is passed on (the local duplex is ended when the command closes its end).
   */
  extraFds?: Readonly<Record<number, Duplex>>;
  /** Sent as a Config frame first: the env allow-list the agent applies to `command.env`. */
  config?: AgentConfig;
  /** Aborting sends SIGTERM to the command's process group, closes the channel and rejects with CANCELLED. */
  signal?: AbortSignal;
  /** Records the command (start, every frame both ways, end). */
  recorder?: ExecRecorder;
  /**
   * Called with the reason when the result is not the command's own: the agent could not start
   * it (`Exit{127, e}`) or the stream ended without Exit (then the code is 127).
   */
  onError?: (message: string) => void;
}

/** The recorder calls the runner makes (the Recorder in recording.ts has this shape). */
export interface ExecRecorder extends MuxRecorder {
  /** Records CommandStart; returns the command's sequence number. */
  writeCommandStart(exec: ExecMsg): number;
  writeCommandEnd(seq: number, exitCode: number): void;
}

/** A running command. */
export interface ExecSession {
  /** The exit code: the command's status, 128 + signal, 127 when it could not start or the agent vanished. */
  readonly exitCode: Promise<number>;
  /** Sends a signal (a number or a name such as `'SIGINT'`) to the command's process group. */
  kill(signal: number | NodeJS.Signals): void;
}

/** The number of `signal` (a number is passed through). */
export function signalToNumber(signal: number | NodeJS.Signals): number {
  if (typeof signal === 'number') return signal;
  const n = (osConstants.signals as Record<string, number | undefined>)[signal];
  if (n === undefined) {
    throw new AgentProtocolError(
      ErrorCode.InvalidArgument,
      `unknown signal "${escapeForLog(String(signal))}"`,
    );
  }
  return n;
}

/** An agent Log entry as a line of `logger` (`source: 'agent'`, the `k=v` attributes split). */
function relogAgentEntry(logger: Logger, entry: LogEntry): void {
  const fields: Record<string, string> = { source: 'agent' };
  for (const attr of entry.a ?? []) {
    const eq = attr.indexOf('=');
    const key = eq < 0 ? attr : attr.slice(0, eq);
    fields[escapeForLog(key)] = escapeForLog(eq < 0 ? '' : attr.slice(eq + 1));
  }
  const msg = escapeForLog(entry.msg);
  if (entry.lvl >= 8) logger.error(msg, fields);
  else if (entry.lvl >= 4) logger.warn(msg, fields);
  else if (entry.lvl >= 0) logger.info(msg, fields);
  else logger.debug(msg, fields);
}

/** One channel process with a Mux on its stdio. */
interface Channel {
  child: ChildProcess;
  mux: Mux;
  /** Resolves when the channel process has exited. */
  exited: Promise<void>;
  /** The last bytes of the channel's stderr, escaped, for error messages. */
  stderrTail(): string;
  /** Ends the agent's stdin (the agent then finishes its session). */
  endInput(): void;
}

function openChannel(
  options: ChannelOptions,
  muxOptions: { recorder?: MuxRecorder; recordSeq?: number } = {},
): Promise<Channel> {
  const [file, ...args] = options.via;
  if (file === undefined || file === '') {
    return Promise.reject(
      new AgentProtocolError(ErrorCode.InvalidArgument, 'agentproto: `via` is empty'),
    );
  }
  return new Promise<Channel>((resolve, reject) => {
    const child = spawn(file, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const exited = new Promise<void>((res) => child.once('close', () => res()));
    let tail = Buffer.alloc(0);
    child.stderr?.on('data', (chunk: Buffer) => {
      tail = Buffer.concat([tail, chunk]);
      if (tail.length > STDERR_TAIL) tail = tail.subarray(tail.length - STDERR_TAIL);
      options.agentStderr?.write(chunk);
    });
    child.stdin?.on('error', () => {
      // EPIPE when the channel went away: the mux reports it as a failed write
    });
    child.on('error', (err) => {
      if (child.pid === undefined) {
        reject(
          new AgentProtocolError(
            ErrorCode.ConnectionFailed,
            `agentproto: cannot start the channel "${escapeForLog(file)}": ${err.message}`,
            { cause: err },
          ),
        );
      }
    });
    child.once('spawn', () => {
      const mux = new Mux(child.stdout as Readable, child.stdin as Writable, {
        ...muxOptions,
        ...(options.logger ? { logger: options.logger } : {}),
      });
      const logger = options.logger ?? silentLogger;
      mux.onLog((entry) => relogAgentEntry(logger, entry));
      resolve({
        child,
        mux,
        exited,
        stderrTail: () => escapeForLog(tail.toString('utf8').trim()),
        endInput: () => {
          if (child.stdin && !child.stdin.destroyed && !child.stdin.writableEnded)
            child.stdin.end();
        },
      });
    });
  });
}

function writeTo(target: Writable | undefined): StreamHandler {
  return {
    write(data) {
      if (target === undefined || target.destroyed || target.writableEnded) return;
      if (target.write(data)) return;
      return new Promise<void>((resolve) => {
        const done = () => {
          target.off('drain', done);
          target.off('close', done);
          target.off('error', done);
          resolve();
        };
        target.on('drain', done);
        target.on('close', done);
        target.on('error', done);
      });
    },
    eof() {
      // the caller's stdout / stderr stay open
    },
  };
}

/**
 * Copies `source` to stream `fd` of `mux` with backpressure, then EOF. The returned `stop`
 * detaches from `source` without consuming or ending it (a stdin that stays open must not
 * keep the session alive).
 */
function bridgeIn(mux: Mux, fd: number, source: Readable): { stop(): void } {
  let stopped = false;
  const onData = (chunk: Buffer | string) => {
    source.pause();
    mux.sendData(fd, typeof chunk === 'string' ? Buffer.from(chunk) : chunk).then(
      () => {
        if (!stopped) source.resume();
      },
      () => stop(),
    );
  };
  const onEnd = () => {
    if (!stopped) mux.sendEOF(fd).catch(() => undefined);
    stop();
  };
  const stop = () => {
    if (stopped) return;
    stopped = true;
    source.off('data', onData);
    source.off('end', onEnd);
    source.off('error', onEnd);
    source.pause();
  };
  source.on('data', onData);
  source.once('end', onEnd);
  source.once('error', onEnd);
  source.resume();
  return { stop };
}

/**
 * Starts `command` on the agent reached through `options.via`. See {@link ExecSession};
 * {@link exec} is the promise-only form.
 */
export function startExec(command: ExecCommand, options: ExecOptions): ExecSession {
  const logger = options.logger ?? silentLogger;
  let channel: Channel | undefined;
  const early: number[] = [];
  const msg: ExecMsg = {
    path: command.path,
    argv: [...(command.argv ?? [command.path])],
    env: command.env === undefined || command.env === null ? null : [...command.env],
    cwd: command.cwd ?? '',
  };
  const fds = Object.keys(options.extraFds ?? {})
    .map(Number)
    .sort((a, b) => a - b);
  if (fds.length > 0) msg.fds = fds;
  for (const fd of fds) {
    if (!Number.isInteger(fd) || fd < 3) {
      const err = new AgentProtocolError(
        ErrorCode.InvalidArgument,
        `agentproto: extra fd ${fd} is not an integer ≥ 3`,
      );
      return { exitCode: Promise.reject(err), kill: () => undefined };
    }
  }

  const sendSignal = (sig: number) => {
    if (channel === undefined) {
      early.push(sig);
      return;
    }
    channel.mux.send({ t: FrameType.Signal, sig }).catch(() => undefined);
  };

  const exitCode = (async () => {
    if (options.signal?.aborted) {
      throw new AgentProtocolError(
        ErrorCode.Cancelled,
        'agentproto: exec was cancelled before it started',
        {
          cause: options.signal.reason,
        },
      );
    }
    const recorder = options.recorder;
    const seq = recorder?.writeCommandStart(msg);
    const ch = await openChannel(options, recorder ? { recorder, recordSeq: seq ?? 0 } : {});
    channel = ch;
    const mux = ch.mux;
    let errorText: string | undefined;
    mux.onExit((_code, e) => {
      if (e !== '') errorText = e;
    });
    mux.onError((e) => logger.warn(`agent error: ${escapeForLog(e)}`, { source: 'agent' }));

    let aborted = false;
    const stopChannel = () => {
      aborted = true;
      ch.endInput();
      ch.child.kill('SIGTERM');
    };
    // the Signal frame follows Exec in the control queue, so the agent applies it to the command
    const onAbort = () => {
      mux.send({ t: FrameType.Signal, sig: osConstants.signals.SIGTERM }).catch(() => undefined);
      stopChannel();
    };
    if (options.signal?.aborted) {
      stopChannel(); // aborted while the channel was starting: run nothing
    } else {
      if (options.config) {
        mux.send({ t: FrameType.Config, cfg: options.config }).catch(() => undefined);
      }
      mux.send({ t: FrameType.Exec, x: msg }).catch(() => undefined);
      for (const sig of early.splice(0)) sendSignal(sig);
      options.signal?.addEventListener('abort', onAbort, { once: true });
    }

    mux.registerStream(1, writeTo(options.stdio?.stdout));
    mux.registerStream(2, writeTo(options.stdio?.stderr));
    const bridges: { stop(): void }[] = [];
    for (const fd of fds) {
      const local = (options.extraFds as Record<number, Duplex>)[fd] as Duplex;
      local.on('error', (err) => logger.warn('an extra fd failed', { fd, error: err.message }));
      const out = writeTo(local);
      mux.registerStream(fd, {
        write: out.write,
        eof: () => {
          if (!local.destroyed && !local.writableEnded) local.end();
        },
      });
      bridges.push(bridgeIn(mux, fd, local));
    }
    const stdin = options.stdio?.stdin;
    if (stdin) bridges.push(bridgeIn(mux, 0, stdin));
    else mux.sendEOF(0).catch(() => undefined);

    let code: number;
    let failure: string | undefined;
    try {
      code = await mux.run();
    } catch (err) {
      code = -1;
      failure = (err as Error).message;
    } finally {
      options.signal?.removeEventListener('abort', onAbort);
      for (const b of bridges) b.stop();
    }
    await mux.flushInbound(); // the command's output is written before we return
    ch.endInput();
    // without an Exit the agent is broken or hostile: do not wait for it to go away by itself
    if (code === -1 && ch.child.exitCode === null && ch.child.signalCode === null)
      ch.child.kill('SIGTERM');
    await ch.exited;
    mux.close('exec finished');
    if (aborted) {
      throw new AgentProtocolError(ErrorCode.Cancelled, 'agentproto: exec was cancelled', {
        cause: options.signal?.reason,
      });
    }
    if (code === -1) {
      const tail = ch.stderrTail();
      errorText = `the agent's stream ended without an exit frame${failure ? ` (${failure})` : ''}${tail ? `; agent stderr: ${tail}` : ''}`;
      code = EXIT_NO_EXIT_FRAME;
    }
    if (seq !== undefined) recorder?.writeCommandEnd(seq, code);
    if (errorText !== undefined) options.onError?.(escapeForLog(errorText));
    return code;
  })();

  return {
    exitCode,
    kill: (signal) => sendSignal(signalToNumber(signal)),
  };
}

/**
 * Runs `command` through the agent at `options.via` and resolves with its exit code: the
 * command's status, 128 + signal, or 127 when it could not start (the agent's reason goes to
 * `onError`) — also 127 when the agent's stream ended without an Exit frame (the original
 * runner maps its −1 the same way). Rejects with CONNECTION_FAILED when the channel cannot be
 * started and CANCELLED when `options.signal` aborts.
 */
export function exec(command: ExecCommand, options: ExecOptions): Promise<number> {
  return startExec(command, options).exitCode;
}

/** Options of {@link enumeratePath}. */
export interface EnumerateOptions extends ChannelOptions {
  /** Directories to scan in order; empty / absent: the agent's `$PATH`. */
  paths?: readonly string[];
}

/**
 * The executables the agent sees in `paths` (its `$PATH` when empty), deduplicated by name,
 * the first directory winning (an empty list when none). Rejects with the agent's Error frame
 * text, or CONNECTION_CLOSED when the agent ended without a PathInfo.
 */
export async function enumeratePath(options: EnumerateOptions): Promise<PathInfoEntry[]> {
  const logger = options.logger ?? silentLogger;
  const ch = await openChannel(options);
  try {
    const paths = options.paths ?? [];
    await ch.mux.send({ t: FrameType.PathQuery, q: paths.length > 0 ? { paths: [...paths] } : {} });
    for (;;) {
      const f = await ch.mux.readFrame();
      if (f === undefined) {
        const tail = ch.stderrTail();
        throw new AgentProtocolError(
          ErrorCode.ConnectionClosed,
          `agentproto: the agent ended without a path info frame${tail ? `; agent stderr: ${tail}` : ''}`,
        );
      }
      if (!isKnownFrame(f)) continue;
      if (f.t === FrameType.Log && f.l) relogAgentEntry(logger, f.l);
      else if (f.t === FrameType.Error) {
        throw new AgentProtocolError(
          ErrorCode.InvalidMessage,
          `agentproto: the agent reported an error: ${escapeForLog(f.e ?? '')}`,
        );
      } else if (f.t === FrameType.PathInfo && f.i) return f.i.entries ?? [];
    }
  } finally {
    ch.endInput();
    ch.mux.close('enumeration finished');
    await ch.exited;
  }
}

/** A file-op session: G's `files(session.mux)` client runs on top of it. */
export interface FileSession {
  readonly mux: Mux;
  /** Ends the agent's input (it closes every handle and exits) and waits for the channel. */
  close(): Promise<void>;
}

/**
 * Opens a channel to an agent for file operations: the agent enters its file-op service mode
 * at the first request and serves until {@link FileSession.close}.
 */
export async function openFileSession(options: ChannelOptions): Promise<FileSession> {
  const ch = await openChannel(options);
  const loop = ch.mux.run().catch((err: Error) => {
    (options.logger ?? silentLogger).warn('agentproto: the file-op session ended', {
      error: err.message,
    });
    return -1;
  });
  return {
    mux: ch.mux,
    close: async () => {
      ch.endInput();
      await ch.exited;
      ch.mux.close('the file session was closed');
      await loop;
    },
  };
}
