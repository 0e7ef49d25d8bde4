import type { Writable } from 'node:stream';
import type { Logger } from '@picket/protocol';

/**
 * Where a {@link Supervisor} is: `idle` (not started), `starting` (a child is spawned and its
 * ready check runs), `ready`, `backoff` (waiting before the next spawn), `stopping`, `stopped`.
 */
export type SupervisorState = 'idle' | 'starting' | 'ready' | 'backoff' | 'stopping' | 'stopped';

/** How a child ended: its exit code, or the signal that killed it. */
export interface ChildExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** One spawned child (one "generation"). */
export interface SupervisedChild {
  readonly pid: number;
  /** 1 for the first spawn, +1 per restart (a spawn that failed counts too) */
  readonly generation: number;
  /** the child's stdin (a pipe); the supervisor closes it to ask the child to stop */
  readonly stdin: Writable;
  /**
   * Subscribe to stdout lines (UTF-8, without the `\n` and a `\r` before it). Returns an
   * unsubscribe function. Nothing is delivered when the supervisor's `stdout` is `'ignore'`.
   */
  onStdoutLine(listener: (line: string) => void): () => void;
  /** settles (never rejects) when the child has exited */
  readonly exited: Promise<ChildExit>;
}

/**
 * Resolves when `child` is ready; rejects (or the signal aborts) when it cannot become
 * ready. The signal aborts on the ready timeout, when the child exits and on stop; the
 * supervisor stops waiting then even if the check ignores it.
 */
export type ReadyCheck = (child: SupervisedChild, signal: AbortSignal) => Promise<void>;

/** Restart delays: exponential from `initialMs` to `maxMs`, jittered, never giving up. */
export interface SupervisorBackoff {
  /** the delay before the first restart, in ms (default 250) */
  initialMs?: number;
  /** the delay stops growing here, in ms (default 30 000) */
  maxMs?: number;
  /** a child that stayed ready this long (ms) before exiting restarts from `initialMs` again (default 10 000) */
  stableAfterMs?: number;
}

/** Settings of a {@link Supervisor}. */
export interface SupervisorOptions {
  /** tag for stderr lines, logs, events and metrics */
  name: string;
  /** argv; `command[0]` is the program (looked up on PATH) */
  command: readonly string[];
  /** merged over `process.env`; `undefined` removes a variable */
  env?: Record<string, string | undefined>;
  /** the child's working directory (default: this process's) */
  cwd?: string;
  /** when a spawned child counts as ready (default: as soon as it is spawned) */
  ready?: ReadyCheck;
  /** not ready this long after the spawn (ms) → killed and restarted (default 10 000) */
  readyTimeoutMs?: number;
  /**
   * Stop escalation step (ms, default 5 000): stdin closed → wait → SIGTERM to the group →
   * wait → SIGKILL to the group.
   */
  stopGraceMs?: number;
  /** restart delays (never gives up) */
  backoff?: SupervisorBackoff;
  /** the longest stdout line in bytes (default 1 MiB); a longer one is logged as an error and the child is killed and restarted */
  stdoutLineLimit?: number;
  /** `'lines'` (default): stdout is read as lines; `'ignore'`: it is drained and dropped */
  stdout?: 'lines' | 'ignore';
  /** stderr lines go here as info, tagged `[name] line` (escaped); errors and restarts too (default: console, warnings and errors only) */
  logger?: Logger;
  /** the owner's lifetime: aborting it is {@link Supervisor.stop} */
  signal?: AbortSignal;
}

/** A supervisor's numbers, for /metrics. */
export interface SupervisorStats {
  name: string;
  state: SupervisorState;
  /** the live child's pid */
  pid?: number;
  /** the latest generation spawned (0 before the first spawn) */
  generation: number;
  /** respawns so far (failed spawns included) */
  restarts: number;
  /** how the previous child ended, and when (ms since the epoch) */
  lastExit?: ChildExit & { at: number };
  /** when the current child became ready (ms since the epoch); absent unless `ready` */
  readySince?: number;
}
