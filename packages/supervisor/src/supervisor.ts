/**
 * A supervised child process: spawned in its own process group, ready when its
 * {@link ReadyCheck} says so, restarted with a backoff that never gives up, stopped with
 * stdin EOF → SIGTERM → SIGKILL to the whole group within a fixed bound. Written against the
 * failures of prox's plugin manager (spec §3.6): no give-up after one failed respawn, no
 * unbounded stop, no 64 KiB stall, no loop outliving its owner.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { existsSync } from 'node:fs';
import type { Writable } from 'node:stream';
import {
  AgentProtocolError,
  createConsoleLogger,
  ErrorCode,
  escapeForLog,
  type Logger,
} from '@picket/protocol';
import {
  backoffDelay,
  describeNodeError,
  nodeErrorCode,
  resolveBackoff,
} from '@picket/protocol/internal';
import { LineSplitter } from './lines.js';
import type {
  ChildExit,
  ReadyCheck,
  SupervisedChild,
  SupervisorOptions,
  SupervisorState,
  SupervisorStats,
} from './types.js';

/** The events of a {@link Supervisor} and their arguments. */
export interface SupervisorEvents {
  /** the state changed from `prev` to `state` */
  state: [state: SupervisorState, prev: SupervisorState];
  /** a child was spawned (its ready check starts now) */
  spawn: [child: SupervisedChild];
  /** a child passed its ready check */
  ready: [child: SupervisedChild];
  /** a child exited */
  exit: [child: SupervisedChild, exit: ChildExit];
  /** the next spawn comes in `delayMs`; `attempt` counts failures since the last stable run (0-based) */
  backoff: [delayMs: number, attempt: number];
  /** something went wrong with a child (also logged; no listener is needed) */
  error: [err: Error];
}

const DEFAULTS = {
  readyTimeoutMs: 10_000,
  stopGraceMs: 5_000,
  stdoutLineLimit: 1024 * 1024,
  initialMs: 250,
  maxMs: 30_000,
  stableAfterMs: 10_000,
};
/** How long to wait for the exit after a SIGKILL, and then for the pipes to close. */
const KILL_WAIT_MS = 500;
const DRAIN_WAIT_MS = 400;
/** Jitter only shortens a delay (see backoffDelay), so maxMs stays a ceiling. */
const JITTER = 0.2;

function invalid(field: string, expected: string, got: unknown): AgentProtocolError {
  return new AgentProtocolError(
    ErrorCode.InvalidArgument,
    `Supervisor: ${field}: expected ${expected}, got ${typeof got === 'string' ? JSON.stringify(got) : String(got)}`,
  );
}

function checkMs(field: string, v: number | undefined, fallback: number, min: number): number {
  if (v === undefined) return fallback;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < min) {
    throw invalid(field, `a finite number ≥ ${min}`, v);
  }
  return v;
}

function describeExit(e: ChildExit): string {
  return e.signal !== null ? `killed by ${e.signal}` : `exited with code ${String(e.code)}`;
}

/** Resolves after `ms`, or at once when `signal` aborts; the timer never outlives either. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}

/** One spawned process and everything the supervisor tracks about it. */
class Generation implements SupervisedChild {
  readonly exited: Promise<ChildExit>;
  exit: ChildExit | undefined;
  /** the first reason this generation is finished (exit, stdout overflow, timeout, stop) */
  readonly trouble: Promise<Error>;
  failure: Error | undefined;
  /** aborts with {@link failure}: the ready check's signal */
  readonly abort = new AbortController();
  private readonly listeners = new Set<(line: string) => void>();
  private settleTrouble!: (err: Error) => void;

  constructor(
    readonly proc: ChildProcess & { pid: number },
    readonly generation: number,
  ) {
    this.trouble = new Promise((resolve) => {
      this.settleTrouble = resolve;
    });
    this.exited = new Promise((resolve) => {
      proc.once('exit', (code, signal) => {
        this.exit = { code, signal };
        resolve(this.exit);
      });
    });
  }

  get pid(): number {
    return this.proc.pid;
  }

  get stdin(): Writable {
    return this.proc.stdin as Writable;
  }

  onStdoutLine(listener: (line: string) => void): () => void {
    // a new function per subscription, so the same listener twice is two subscriptions
    const entry = (line: string): void => listener(line);
    this.listeners.add(entry);
    return () => {
      this.listeners.delete(entry);
    };
  }

  /** Delivers a line; a throwing listener is reported and the others still get it. */
  line(line: string, onThrow: (err: unknown) => void): void {
    for (const l of [...this.listeners]) {
      try {
        l(line);
      } catch (err) {
        onThrow(err);
      }
    }
  }

  fail(err: Error): void {
    if (this.failure !== undefined) return;
    this.failure = err;
    this.abort.abort(err);
    this.settleTrouble(err);
  }

  /** Sends `sig` to the child's whole process group; false if the group is gone. */
  signalGroup(sig: NodeJS.Signals): boolean {
    try {
      process.kill(-this.proc.pid, sig);
      return true;
    } catch {
      // ESRCH: nobody left in the group
      return false;
    }
  }

  /** True once exited, false after `ms` without an exit; the timer is always cleared. */
  async waitExit(ms: number): Promise<boolean> {
    if (this.exit !== undefined) return true;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<false>((resolve) => {
      timer = setTimeout(() => resolve(false), ms);
    });
    const r = await Promise.race([this.exited.then(() => true), timeout]);
    clearTimeout(timer);
    return r;
  }
}

interface Waiter {
  resolve: (child: SupervisedChild) => void;
  reject: (err: Error) => void;
}

/**
 * Runs one agent process for its owner: spawn, ready check, restart forever with backoff,
 * stop with escalation. Events: see {@link SupervisorEvents}. Every timer and loop ends
 * when {@link stop} is called or the owner's `signal` aborts.
 */
export class Supervisor extends EventEmitter<SupervisorEvents> {
  readonly name: string;
  readonly #command: readonly string[];
  readonly #env: NodeJS.ProcessEnv;
  readonly #cwd: string | undefined;
  readonly #ready: ReadyCheck | undefined;
  readonly #readyTimeoutMs: number;
  readonly #stopGraceMs: number;
  readonly #backoff: {
    initialDelayMs: number;
    maxDelayMs: number;
    multiplier: number;
    jitter: number;
  };
  readonly #stableAfterMs: number;
  readonly #lineLimit: number;
  readonly #readStdout: boolean;
  readonly #log: Logger;
  readonly #owner: AbortSignal | undefined;
  readonly #onOwnerAbort = (): void => {
    void this.stop();
  };
  /** aborted by stop(): ends the loop, the ready check, the backoff sleep */
  readonly #life = new AbortController();

  #state: SupervisorState = 'idle';
  #gen: Generation | undefined;
  #generation = 0;
  #restarts = 0;
  #lastExit: (ChildExit & { at: number }) | undefined;
  #readySince: number | undefined;
  #waiters = new Set<Waiter>();
  #started: Promise<void> | undefined;
  #loop: Promise<void> | undefined;
  #stopped: Promise<void> | undefined;

  constructor(o: SupervisorOptions) {
    super();
    if (typeof o?.name !== 'string' || o.name === '')
      throw invalid('name', 'a non-empty string', o?.name);
    this.name = o.name;
    const cmd = o.command as unknown;
    if (
      !Array.isArray(cmd) ||
      cmd.length === 0 ||
      cmd.some((a) => typeof a !== 'string' || a.includes('\0')) ||
      cmd[0] === ''
    ) {
      throw invalid(
        'command',
        'a non-empty array of strings without NUL, the program first',
        JSON.stringify(cmd),
      );
    }
    this.#command = [...(cmd as string[])];
    this.#env = { ...process.env };
    for (const [k, v] of Object.entries(o.env ?? {})) {
      if (v === undefined) delete this.#env[k];
      else if (typeof v !== 'string' || k.includes('=') || k.includes('\0') || v.includes('\0')) {
        throw invalid(`env.${k}`, 'a string (and a name without "=" or NUL)', v);
      } else this.#env[k] = v;
    }
    this.#cwd = o.cwd;
    if (o.ready !== undefined && typeof o.ready !== 'function') {
      throw invalid('ready', 'a function (child, signal) => Promise<void>', o.ready);
    }
    this.#ready = o.ready;
    this.#readyTimeoutMs = checkMs('readyTimeoutMs', o.readyTimeoutMs, DEFAULTS.readyTimeoutMs, 1);
    this.#stopGraceMs = checkMs('stopGraceMs', o.stopGraceMs, DEFAULTS.stopGraceMs, 0);
    this.#backoff = resolveBackoff(
      { initialDelayMs: o.backoff?.initialMs, maxDelayMs: o.backoff?.maxMs },
      {
        initialDelayMs: DEFAULTS.initialMs,
        maxDelayMs: DEFAULTS.maxMs,
        multiplier: 2,
        jitter: JITTER,
      },
      'Supervisor.backoff',
    );
    this.#stableAfterMs = checkMs(
      'backoff.stableAfterMs',
      o.backoff?.stableAfterMs,
      DEFAULTS.stableAfterMs,
      0,
    );
    const limit = o.stdoutLineLimit ?? DEFAULTS.stdoutLineLimit;
    if (!Number.isSafeInteger(limit) || limit < 1) {
      throw invalid('stdoutLineLimit', 'an integer ≥ 1 (bytes)', limit);
    }
    this.#lineLimit = limit;
    if (o.stdout !== undefined && o.stdout !== 'lines' && o.stdout !== 'ignore') {
      throw invalid('stdout', '"lines" or "ignore"', o.stdout);
    }
    this.#readStdout = o.stdout !== 'ignore';
    this.#log = o.logger ?? createConsoleLogger('supervisor');
    this.#owner = o.signal;
    this.#owner?.addEventListener('abort', this.#onOwnerAbort, { once: true });
  }

  get state(): SupervisorState {
    return this.#state;
  }

  /** The live child, if any (also while it is starting). */
  get child(): SupervisedChild | undefined {
    return this.#gen;
  }

  /** Respawns so far, failed spawns included. */
  get restarts(): number {
    return this.#restarts;
  }

  /**
   * Spawns the child; resolves at its first ready. Rejects only if stop() or the owner's
   * abort comes first. After that the supervisor keeps restarting it forever, until stop().
   * Calling it again returns the same promise.
   */
  start(): Promise<void> {
    if (this.#started) return this.#started;
    if (this.#stopped !== undefined || this.#owner?.aborted) {
      this.#started = Promise.reject(this.#stoppedError('start() after stop()'));
      if (this.#stopped === undefined) void this.stop();
      return this.#started;
    }
    this.#started = this.whenReady().then(() => undefined);
    // `void s.start()` must not become an unhandled rejection when it is stopped first
    this.#started.catch(() => {});
    this.#loop = this.#run().catch((err: unknown) => {
      // a bug in the loop itself: say so loudly, and leave no orphan behind
      this.#log.error(`${this.#tag()} supervisor loop failed: ${escapeForLog(String(err))}`);
      this.#gen?.signalGroup('SIGKILL');
      this.#gen = undefined;
      this.#setState('stopped');
      this.#rejectWaiters(this.#stoppedError('the supervisor loop failed'));
    });
    return this.#started;
  }

  /** Resolves when the current (if ready) or next generation is ready; rejects on stop or `o.signal`. */
  whenReady(o: { signal?: AbortSignal } = {}): Promise<SupervisedChild> {
    const gen = this.#gen;
    if (this.#state === 'ready' && gen && gen.failure === undefined) return Promise.resolve(gen);
    if (this.#state === 'stopping' || this.#state === 'stopped') {
      return Promise.reject(this.#stoppedError('whenReady()'));
    }
    const signal = o.signal;
    if (signal?.aborted) return Promise.reject(signal.reason);
    return new Promise((resolve, reject) => {
      const onAbort = (): void => {
        this.#waiters.delete(waiter);
        reject(signal?.reason);
      };
      const waiter: Waiter = {
        resolve: (c) => {
          signal?.removeEventListener('abort', onAbort);
          resolve(c);
        },
        reject: (e) => {
          signal?.removeEventListener('abort', onAbort);
          reject(e);
        },
      };
      this.#waiters.add(waiter);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /**
   * Stops for good: the live child's stdin is closed, after `stopGraceMs` its process group
   * gets SIGTERM, after another `stopGraceMs` SIGKILL. Always settles within
   * `2 × stopGraceMs + 1 s`, whatever the child does; idempotent.
   */
  stop(): Promise<void> {
    if (this.#stopped) return this.#stopped;
    if (this.#state === 'stopped') {
      this.#stopped = Promise.resolve();
      return this.#stopped;
    }
    this.#owner?.removeEventListener('abort', this.#onOwnerAbort);
    const loop = this.#loop;
    this.#setState(loop ? 'stopping' : 'stopped');
    this.#rejectWaiters(this.#stoppedError('stopped before the child was ready'));
    this.#life.abort(this.#stoppedError('stopping'));
    this.#stopped = loop ?? Promise.resolve();
    return this.#stopped;
  }

  /** Numbers for /metrics. */
  stats(): SupervisorStats {
    const s: SupervisorStats = {
      name: this.name,
      state: this.#state,
      generation: this.#generation,
      restarts: this.#restarts,
    };
    if (this.#gen && this.#gen.exit === undefined) s.pid = this.#gen.pid;
    if (this.#lastExit) s.lastExit = { ...this.#lastExit };
    if (this.#state === 'ready' && this.#readySince !== undefined) s.readySince = this.#readySince;
    return s;
  }

  #stoppedError(what: string): AgentProtocolError {
    return new AgentProtocolError(
      ErrorCode.Cancelled,
      `supervisor ${JSON.stringify(this.name)}: ${what}: the supervisor is stopped`,
    );
  }

  #tag(): string {
    return `[${escapeForLog(this.name)}]`;
  }

  #setState(next: SupervisorState): void {
    const prev = this.#state;
    if (prev === next) return;
    this.#state = next;
    this.#notify('state', next, prev);
  }

  /** emit(), but a throwing listener is logged instead of breaking the supervision loop */
  #notify<K extends keyof SupervisorEvents>(event: K, ...args: SupervisorEvents[K]): void {
    try {
      (this.emit as (e: K, ...a: SupervisorEvents[K]) => boolean)(event, ...args);
    } catch (err) {
      this.#listenerFailed(`'${event}' listener`, err);
    }
  }

  #listenerFailed(what: string, err: unknown): void {
    this.#log.error(`${this.#tag()} a ${what} threw (ignored): ${escapeForLog(String(err))}`);
  }

  #rejectWaiters(err: Error): void {
    const waiters = [...this.#waiters];
    this.#waiters.clear();
    for (const w of waiters) w.reject(err);
  }

  #error(err: Error): void {
    // emitting 'error' without a listener would throw: the logger already has it
    if (this.listenerCount('error') > 0) this.#notify('error', err);
  }

  async #run(): Promise<void> {
    // events start after start() has returned, so a listener added right after it sees them all
    await Promise.resolve();
    const life = this.#life.signal;
    let failures = 0;
    while (!life.aborted) {
      if (this.#generation > 0) this.#restarts++;
      this.#generation++;
      this.#setState('starting');
      const gen = await this.#spawn(this.#generation);
      let readyAt: number | undefined;
      let endAt = Date.now();
      if (gen) {
        readyAt = await this.#watch(gen);
        endAt = Date.now();
        this.#readySince = undefined;
        // the child is done for (it is being killed, if needed): no longer 'ready'
        if (!life.aborted) this.#setState('backoff');
        await this.#finish(gen, life.aborted);
        this.#gen = undefined;
      }
      if (life.aborted) break;
      if (readyAt !== undefined && endAt - readyAt >= this.#stableAfterMs) failures = 0;
      const delay = backoffDelay(failures, this.#backoff);
      this.#setState('backoff');
      this.#log.warn(
        `${this.#tag()} restarting in ${delay} ms (restart ${this.#restarts + 1}, generation ${this.#generation + 1})`,
      );
      this.#notify('backoff', delay, failures);
      failures++;
      await sleep(delay, life);
    }
    this.#gen = undefined;
    this.#setState('stopped');
    this.#rejectWaiters(this.#stoppedError('stopped before the child was ready'));
  }

  /** Spawns generation `n`; undefined (logged) when the program cannot be started. */
  async #spawn(n: number): Promise<Generation | undefined> {
    const [program, ...args] = this.#command as [string, ...string[]];
    let proc: ChildProcess;
    try {
      // detached: its own process group, so a stop reaches the grandchildren too; never unref'd
      proc = spawn(program, args, {
        cwd: this.#cwd,
        env: this.#env,
        detached: true,
        stdio: ['pipe', 'pipe', 'pipe'],
      });
    } catch (err) {
      this.#spawnFailed(n, err);
      return undefined;
    }
    if (proc.pid === undefined) {
      // ENOENT, EACCES, a bad cwd …: reported asynchronously through 'error'
      const err = await new Promise<unknown>((resolve) => proc.once('error', resolve));
      this.#spawnFailed(n, err);
      return undefined;
    }
    const gen = new Generation(proc as ChildProcess & { pid: number }, n);
    this.#wire(gen);
    this.#gen = gen;
    this.#notify('spawn', gen);
    this.#log.info(
      `${this.#tag()} spawned pid ${gen.pid} (generation ${n}): ${escapeForLog(this.#command.join(' '))}`,
    );
    return gen;
  }

  #spawnFailed(n: number, err: unknown): void {
    // Node reports a missing cwd as the program's ENOENT: say which one it is
    const cwd = this.#cwd;
    const where =
      cwd !== undefined && nodeErrorCode(err) === 'ENOENT' && !existsSync(cwd)
        ? ` (the cwd ${JSON.stringify(cwd)} does not exist)`
        : '';
    const e = new AgentProtocolError(
      ErrorCode.Unavailable,
      `supervisor ${JSON.stringify(this.name)}: cannot start ${JSON.stringify(this.#command[0])} (generation ${n}): ${describeNodeError(err)}${where}`,
      { cause: err },
    );
    this.#log.error(`${this.#tag()} ${escapeForLog(e.message)}`);
    this.#error(e);
  }

  /** Pipes, exit and the owner's stop, wired to the generation. */
  #wire(gen: Generation): void {
    const { proc } = gen;
    const tag = this.#tag();
    proc.on('error', (err) => {
      this.#log.warn(`${tag} child process error: ${escapeForLog(describeNodeError(err))}`);
    });
    // EPIPE when writing to a child that is gone: its exit is handled, not the write
    proc.stdin?.on('error', () => {});
    proc.stdout?.on('error', () => {});
    proc.stderr?.on('error', () => {});
    const stderr = new LineSplitter(
      this.#lineLimit,
      (line) => this.#log.info(`${tag} ${escapeForLog(line)}`),
      (seen) =>
        this.#log.warn(
          `${tag} stderr line longer than ${this.#lineLimit} bytes (${seen}+ so far): dropped`,
        ),
    );
    proc.stderr?.on('data', (chunk: Buffer) => stderr.push(chunk));
    proc.stderr?.on('end', () => stderr.end());
    if (this.#readStdout) {
      const stdout = new LineSplitter(
        this.#lineLimit,
        (line) => gen.line(line, (err) => this.#listenerFailed('stdout line listener', err)),
        (seen) => {
          const err = new AgentProtocolError(
            ErrorCode.MessageTooLarge,
            `supervisor ${JSON.stringify(this.name)}: pid ${gen.pid} wrote a stdout line longer than stdoutLineLimit (${this.#lineLimit} bytes; ${seen} bytes without a newline): killing and restarting it`,
          );
          this.#log.error(`${tag} ${err.message}`);
          this.#error(err);
          gen.fail(err);
        },
      );
      proc.stdout?.on('data', (chunk: Buffer) => stdout.push(chunk));
      proc.stdout?.on('end', () => stdout.end());
    } else {
      proc.stdout?.resume();
    }
    void gen.exited.then((exit) => {
      this.#lastExit = { ...exit, at: Date.now() };
      // right away: anything the leader left behind in its group is orphaned now
      gen.signalGroup('SIGKILL');
      this.#notify('exit', gen, exit);
      gen.fail(new Error(describeExit(exit)));
    });
  }

  /**
   * Runs the ready check, then waits for the generation's end. Returns when it became
   * ready (ms since the epoch), or undefined if it never did.
   */
  async #watch(gen: Generation): Promise<number | undefined> {
    const life = this.#life.signal;
    const onStop = (): void => gen.fail(life.reason as Error);
    if (life.aborted) onStop();
    life.addEventListener('abort', onStop, { once: true });
    try {
      const ms = this.#readyTimeoutMs;
      const timer = setTimeout(
        () => gen.fail(new Error(`not ready within readyTimeoutMs (${ms} ms)`)),
        ms,
      );
      const check = this.#ready;
      const ready = check
        ? Promise.resolve()
            .then(() => check(gen, gen.abort.signal))
            .then(
              () => undefined,
              (err: unknown) =>
                err instanceof Error ? err : new Error(`ready check failed: ${String(err)}`),
            )
        : Promise.resolve(undefined);
      const first = await Promise.race([ready, gen.trouble]);
      clearTimeout(timer);
      const failed = first ?? gen.failure;
      if (failed !== undefined) {
        gen.fail(failed);
        if (!life.aborted) {
          const why = gen.failure ?? failed;
          this.#log.error(
            `${this.#tag()} pid ${gen.pid} (generation ${gen.generation}) did not become ready: ${escapeForLog(why.message)}`,
          );
        }
        return undefined;
      }
      const readyAt = Date.now();
      this.#readySince = readyAt;
      this.#setState('ready');
      this.#log.info(`${this.#tag()} ready: pid ${gen.pid} (generation ${gen.generation})`);
      this.#notify('ready', gen);
      const waiters = [...this.#waiters];
      this.#waiters.clear();
      for (const w of waiters) w.resolve(gen);
      const why = await gen.trouble;
      if (!life.aborted) {
        this.#log.warn(
          `${this.#tag()} pid ${gen.pid} (generation ${gen.generation}) ended after ${Date.now() - readyAt} ms ready: ${escapeForLog(why.message)}`,
        );
      }
      return readyAt;
    } finally {
      life.removeEventListener('abort', onStop);
    }
  }

  /**
   * Ends a generation within `2 × stopGraceMs + 1 s`: on stop its stdin is closed first
   * (the polite request), then SIGTERM and SIGKILL go to its process group; then the pipes
   * get a moment to deliver the last stderr lines and are destroyed.
   */
  async #finish(gen: Generation, polite: boolean): Promise<void> {
    if (polite && gen.exit === undefined) {
      gen.stdin.end();
      await gen.waitExit(this.#stopGraceMs);
    }
    if (gen.exit === undefined) {
      gen.signalGroup('SIGTERM');
      if (!(await gen.waitExit(this.#stopGraceMs))) {
        this.#log.warn(
          `${this.#tag()} pid ${gen.pid} ignored SIGTERM for ${this.#stopGraceMs} ms: SIGKILL`,
        );
        gen.signalGroup('SIGKILL');
        await gen.waitExit(KILL_WAIT_MS);
      }
    }
    gen.signalGroup('SIGKILL');
    await this.#drain(gen);
  }

  /** Waits (bounded) for stdout and stderr to close, then destroys all three pipes. */
  async #drain(gen: Generation): Promise<void> {
    const { proc } = gen;
    const open = [proc.stdout, proc.stderr].filter(
      (s): s is NonNullable<typeof s> => s !== null && !s.closed,
    );
    if (open.length > 0) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        Promise.all(open.map((s) => new Promise((r) => s.once('close', r)))),
        new Promise((r) => {
          timer = setTimeout(r, DRAIN_WAIT_MS);
        }),
      ]);
      clearTimeout(timer);
    }
    proc.stdin?.destroy();
    proc.stdout?.destroy();
    proc.stderr?.destroy();
  }
}
