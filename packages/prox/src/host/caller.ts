/**
 * The host's connections to one plugin socket, as prox's `Caller` keeps them and with the
 * limits prox lacks: one request per connection at a time (no ids, no multiplexing), idle
 * connections kept up to a cap, at most `maxConnections` open with a FIFO queue of callers
 * waiting for one, one deadline per call covering the wait, the dial, the write and the read.
 * Any error discards the connection: a timeout, an abort, a reply that is not one frame of at
 * most 1 MiB, the peer closing it, or bytes arriving while no call is pending (a reply to
 * `on_disconnect`).
 */
import { connect, type Socket } from 'node:net';
import { AgentProtocolError, ErrorCode, escapeForLog, type Logger } from '@picket/protocol';
import { socketError } from '@picket/protocol/internal';
import { encodeProxFrame, ProxFrameReader } from '../wire/frame.js';
import { externalDeadline, type InternalCallOptions } from './internal.js';

/** Settings of a {@link PluginCaller}. */
export interface PluginCallerOptions {
  /** the plugin's socket path (from its `ready`) */
  socketPath: string;
  /** names the plugin in errors, e.g. `prox plugin "auth"` */
  name: string;
  /** idle connections kept for reuse (default 16, prox's pool size) */
  maxIdle?: number;
  /** connections open at once, busy or idle (default 64); further calls wait in a FIFO queue */
  maxConnections?: number;
  /** default deadline of a call in ms (default 5 000, prox's) */
  timeoutMs?: number;
  /**
   * After an `on_disconnect` the connection rests this long (ms, default 100) before it is
   * reused: bytes arriving meanwhile are a reply the hook must not get, and discard it.
   */
  fireQuietMs?: number;
  /** `on_disconnect` calls waiting for a connection beyond this are dropped (default 256, prox's queue) */
  maxQueuedFires?: number;
  logger: Logger;
}

/** Per-call settings. */
export interface PluginCallOptions {
  /** overrides the caller's deadline */
  timeoutMs?: number;
  /** aborting fails the call with CANCELLED and discards its connection */
  signal?: AbortSignal;
}

/** Numbers of a {@link PluginCaller}. */
export interface PluginCallerStats {
  /** connections open or being dialled */
  open: number;
  idle: number;
  /** connections carrying a call (or resting after `on_disconnect`) */
  busy: number;
  /** calls waiting for a connection */
  waiting: number;
  /** connections discarded after an error */
  discarded: number;
  /** `on_disconnect` calls dropped because too many were queued */
  firesDropped: number;
}

const DEFAULT_MAX_IDLE = 16;
const DEFAULT_MAX_CONNECTIONS = 64;
const DEFAULT_TIMEOUT_MS = 5_000;
const DEFAULT_FIRE_QUIET_MS = 100;
const DEFAULT_MAX_QUEUED_FIRES = 256;

/** One pending call on a connection. */
interface Pending {
  hook: string;
  /** `fire`: a frame that gets no reply is resting; any data now is unexpected */
  kind: 'call' | 'fire';
  /** the reply frame arrived: decode it (a throw discards the connection) */
  resolve(reply: Uint8Array): void;
  reject(err: AgentProtocolError): void;
}

/** One connection to the plugin socket. */
class PluginConn {
  readonly socket: Socket;
  readonly reader = new ProxFrameReader();
  /** the call (or resting fire) using the connection; data while undefined is unexpected */
  pending: Pending | undefined;
  closed = false;

  constructor(path: string) {
    this.socket = connect(path);
  }
}

/** A waiter for a connection. */
interface Waiter {
  give(conn: PluginConn): void;
  fail(err: AgentProtocolError): void;
}

/** The single-flight connection pool to one plugin socket. */
export class PluginCaller {
  readonly socketPath: string;
  readonly #o: Required<Omit<PluginCallerOptions, 'socketPath' | 'logger' | 'name'>>;
  readonly #name: string;
  readonly #log: Logger;
  readonly #idle: PluginConn[] = [];
  readonly #waiters: Waiter[] = [];
  #open = 0;
  #discarded = 0;
  #firesQueued = 0;
  #firesDropped = 0;
  #closed: AgentProtocolError | undefined;
  /** retired: no new calls; busy connections close once their call ends */
  #retired = false;

  constructor(o: PluginCallerOptions) {
    this.socketPath = o.socketPath;
    this.#name = o.name;
    this.#log = o.logger;
    this.#o = {
      maxIdle: positive(o.maxIdle, DEFAULT_MAX_IDLE, 'maxIdle', 0),
      maxConnections: positive(o.maxConnections, DEFAULT_MAX_CONNECTIONS, 'maxConnections', 1),
      timeoutMs: positive(o.timeoutMs, DEFAULT_TIMEOUT_MS, 'timeoutMs', 1),
      fireQuietMs: positive(o.fireQuietMs, DEFAULT_FIRE_QUIET_MS, 'fireQuietMs', 0),
      maxQueuedFires: positive(o.maxQueuedFires, DEFAULT_MAX_QUEUED_FIRES, 'maxQueuedFires', 0),
    };
  }

  /** The default deadline of a call in ms. */
  get timeoutMs(): number {
    return this.#o.timeoutMs;
  }

  stats(): PluginCallerStats {
    return {
      open: this.#open,
      idle: this.#idle.length,
      busy: this.#busy.size,
      waiting: this.#waiters.length,
      discarded: this.#discarded,
      firesDropped: this.#firesDropped,
    };
  }

  /**
   * Sends one request frame (an encoded envelope) and resolves with the reply's payload.
   * Rejects TIMEOUT, CANCELLED, CONNECTION_FAILED (dial), CONNECTION_CLOSED (the plugin closed
   * the connection first), MESSAGE_TOO_LARGE or INVALID_MESSAGE (a bad frame), and
   * UNAVAILABLE once the caller is closed or retired.
   */
  call<T>(
    hook: string,
    payload: Uint8Array,
    decode: (reply: Uint8Array) => T,
    o: PluginCallOptions = {},
  ): Promise<T> {
    const refused = this.#refusal(hook);
    if (refused) return Promise.reject(refused);
    const timeoutMs = o.timeoutMs ?? this.#o.timeoutMs;
    const signal = o.signal;
    const external = (o as InternalCallOptions)[externalDeadline];
    if (signal?.aborted) {
      return Promise.reject(
        new AgentProtocolError(
          ErrorCode.Cancelled,
          `${this.#name}: ${hook} aborted before it was sent`,
          {
            sent: false,
          },
        ),
      );
    }
    return new Promise<T>((resolve, reject) => {
      let conn: PluginConn | undefined;
      let done = false;
      let waiter: Waiter | undefined;
      const finish = (err: AgentProtocolError | undefined, value?: T): void => {
        if (done) return;
        done = true;
        if (timer !== undefined) clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        if (waiter) this.#dropWaiter(waiter);
        if (err) reject(err);
        else resolve(value as T);
      };
      const timer =
        external === undefined
          ? setTimeout(() => {
              const where = conn === undefined ? ' (still waiting for a free connection)' : '';
              if (conn) this.#discard(conn, `${hook} timed out`);
              finish(
                new AgentProtocolError(
                  ErrorCode.Timeout,
                  `${this.#name} did not answer ${hook} within ${timeoutMs} ms${where}`,
                  { sent: conn !== undefined },
                ),
              );
            }, timeoutMs)
          : undefined;
      timer?.unref?.();
      const onAbort = (): void => {
        if (conn) this.#discard(conn, `${hook} aborted`);
        finish(
          new AgentProtocolError(
            ErrorCode.Cancelled,
            `${this.#name}: ${hook} aborted by the caller`,
            {
              cause: signal?.reason,
              sent: conn !== undefined,
            },
          ),
        );
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      external?.(onAbort);
      waiter = {
        give: (c) => {
          waiter = undefined;
          if (done) {
            this.#release(c);
            return;
          }
          conn = c;
          c.pending = {
            hook,
            kind: 'call',
            resolve: (reply) => {
              c.pending = undefined;
              let value: T;
              try {
                value = decode(reply);
              } catch (err) {
                const e = AgentProtocolError.from(err, ErrorCode.InvalidMessage, 'reply');
                this.#discard(c, `undecodable ${hook} reply`);
                finish(
                  new AgentProtocolError(
                    e.code,
                    `${this.#name} answered ${hook} with an invalid payload: ${e.message}`,
                    { cause: err, sent: true },
                  ),
                );
                return;
              }
              finish(undefined, value);
              this.#release(c);
            },
            reject: (err) => {
              c.pending = undefined;
              finish(err);
            },
          };
          try {
            c.socket.write(encodeProxFrame(payload));
          } catch (err) {
            this.#discard(c, `${hook} could not be written`);
            finish(AgentProtocolError.from(err, ErrorCode.Internal, `${this.#name}: ${hook}`));
          }
        },
        fail: (err) => {
          waiter = undefined;
          finish(err);
        },
      };
      this.#acquire(waiter);
    });
  }

  /**
   * Sends a frame that gets no reply (`on_disconnect`), without waiting: prox's `Fire`. The
   * connection is reused after {@link PluginCallerOptions.fireQuietMs} of silence. Dropped (and
   * counted) when the caller is closed or too many are queued.
   */
  fire(hook: string, payload: Uint8Array): void {
    if (this.#refusal(hook) !== undefined) return;
    if (this.#firesQueued >= this.#o.maxQueuedFires) {
      this.#firesDropped++;
      this.#log.warn(`${this.#name}: ${hook} dropped, ${this.#firesQueued} already queued`);
      return;
    }
    this.#firesQueued++;
    let timer: NodeJS.Timeout | undefined;
    let settled = false;
    const waiter: Waiter = {
      give: (c) => {
        if (settled) {
          // it timed out while its connection was being dialled: keep the connection
          this.#release(c);
          return;
        }
        settled = true;
        this.#firesQueued--;
        clearTimeout(timer);
        try {
          c.socket.write(encodeProxFrame(payload));
        } catch {
          this.#discard(c, `${hook} could not be written`);
          return;
        }
        c.pending = {
          hook,
          kind: 'fire',
          // never called: any data while it rests is unexpected (see #onData)
          resolve: () => {},
          reject: () => {},
        };
        const rest = setTimeout(() => {
          if (c.pending === undefined) return; // discarded meanwhile
          c.pending = undefined;
          this.#release(c);
        }, this.#o.fireQuietMs);
        rest.unref?.();
      },
      fail: (err) => {
        if (settled) return;
        settled = true;
        this.#firesQueued--;
        clearTimeout(timer);
        this.#log.debug(`${this.#name}: ${hook} dropped: ${err.message}`);
      },
    };
    // a fire never waits longer than a call would
    timer = setTimeout(() => {
      this.#dropWaiter(waiter);
      waiter.fail(
        new AgentProtocolError(
          ErrorCode.Timeout,
          `no free connection within ${this.#o.timeoutMs} ms`,
        ),
      );
    }, this.#o.timeoutMs);
    timer.unref?.();
    this.#acquire(waiter);
  }

  /**
   * No new calls; idle connections close now, busy ones when their call ends. What a new
   * `ready` does to the previous caller.
   */
  retire(): void {
    if (this.#retired || this.#closed) return;
    this.#retired = true;
    for (const c of this.#idle.splice(0)) this.#close(c);
    const err = this.#unavailable('was replaced by a newer ready');
    for (const w of this.#waiters.splice(0)) w.fail(err);
  }

  /** Closes every connection; pending and waiting calls fail with `reason`. Idempotent. */
  close(reason: string): void {
    if (this.#closed) return;
    this.#closed = new AgentProtocolError(ErrorCode.ConnectionClosed, `${this.#name}: ${reason}`);
    this.#retired = true;
    for (const w of this.#waiters.splice(0)) w.fail(this.#closed);
    for (const c of this.#idle.splice(0)) this.#close(c);
    for (const c of [...this.#busy]) this.#discard(c, reason, this.#closed);
  }

  readonly #busy = new Set<PluginConn>();

  #unavailable(why: string): AgentProtocolError {
    return new AgentProtocolError(
      ErrorCode.Unavailable,
      `${this.#name}: the connection pool to ${this.socketPath} ${why}`,
      { sent: false },
    );
  }

  #refusal(hook: string): AgentProtocolError | undefined {
    if (this.#closed) {
      return new AgentProtocolError(
        ErrorCode.ConnectionClosed,
        `${this.#closed.message} (${hook} not sent)`,
        { sent: false },
      );
    }
    if (this.#retired) return this.#unavailable(`was replaced by a newer ready (${hook} not sent)`);
    return undefined;
  }

  #acquire(w: Waiter): void {
    const idle = this.#idle.pop();
    if (idle) {
      this.#busy.add(idle);
      w.give(idle);
      return;
    }
    if (this.#open < this.#o.maxConnections) {
      this.#dial(w);
      return;
    }
    this.#waiters.push(w);
  }

  #dropWaiter(w: Waiter): void {
    const i = this.#waiters.indexOf(w);
    if (i >= 0) this.#waiters.splice(i, 1);
  }

  #dial(w: Waiter): void {
    this.#open++;
    const c = new PluginConn(this.socketPath);
    let connected = false;
    c.socket.setNoDelay?.(true);
    c.socket.once('connect', () => {
      connected = true;
      if (c.closed) return;
      this.#busy.add(c);
      w.give(c);
    });
    c.socket.on('data', (chunk: Buffer) => this.#onData(c, chunk));
    c.socket.on('error', (err) => {
      if (!connected) {
        this.#discard(c, 'dial failed');
        w.fail(socketError(err, 'connect', `unix:${this.socketPath}`, { who: this.#name }));
        return;
      }
      this.#discard(
        c,
        'socket error',
        socketError(err, 'io', `unix:${this.socketPath}`, { who: this.#name, sent: true }),
      );
    });
    c.socket.on('close', () => {
      if (!connected) return; // the error handler dealt with it
      const hook = c.pending?.hook;
      this.#discard(
        c,
        'closed by the plugin',
        new AgentProtocolError(
          ErrorCode.ConnectionClosed,
          `${this.#name} closed the connection before answering ${hook ?? 'a call'}`,
          { sent: true },
        ),
      );
    });
  }

  #onData(c: PluginConn, chunk: Buffer): void {
    if (c.closed) return;
    const p = c.pending;
    if (p === undefined || p.kind === 'fire') {
      const what =
        p === undefined
          ? 'while no call was pending'
          : `in answer to ${p.hook}, which has no reply`;
      this.#discardLoudly(c, `sent ${chunk.length} unexpected bytes ${what}`);
      return;
    }
    let frames: Uint8Array[];
    try {
      frames = c.reader.push(chunk);
    } catch (err) {
      const e = AgentProtocolError.from(err, ErrorCode.InvalidMessage, 'frame');
      this.#discard(
        c,
        'bad frame',
        new AgentProtocolError(
          e.code,
          `${this.#name} answered ${p.hook} with a bad frame: ${e.message}`,
          {
            cause: err,
            sent: true,
          },
        ),
      );
      return;
    }
    if (frames.length === 0) return;
    if (frames.length > 1 || c.reader.buffered > 0) {
      // One request, one frame. More means a stray frame (e.g. a late reply to on_disconnect)
      // came first or would be read as the next call's answer: trust neither.
      this.#discardLoudly(
        c,
        `sent more than one frame in answer to ${p.hook}`,
        new AgentProtocolError(
          ErrorCode.InvalidMessage,
          `${this.#name} sent more than one frame in answer to ${p.hook} (one request, one reply)`,
          { sent: true },
        ),
      );
      return;
    }
    p.resolve(frames[0] as Uint8Array);
  }

  #discardLoudly(c: PluginConn, problem: string, err?: AgentProtocolError): void {
    this.#log.warn(`${this.#name}: ${escapeForLog(problem)}; connection discarded`);
    this.#discard(c, problem, err);
  }

  /** Gives a connection back: to the first waiter, the idle list, or closes it. */
  #release(c: PluginConn): void {
    if (c.closed) return;
    this.#busy.delete(c);
    if (this.#retired) {
      this.#close(c);
      return;
    }
    const w = this.#waiters.shift();
    if (w) {
      this.#busy.add(c);
      w.give(c);
      return;
    }
    if (this.#idle.length < this.#o.maxIdle) this.#idle.push(c);
    else this.#close(c);
  }

  /** Destroys a connection after an error, failing its pending call with `err`. */
  #discard(c: PluginConn, reason: string, err?: AgentProtocolError): void {
    if (c.closed) return;
    this.#discarded++;
    this.#log.debug(`${this.#name}: connection discarded (${reason})`);
    const p = c.pending;
    c.pending = undefined;
    this.#close(c);
    if (p && err) p.reject(err);
    else if (p) {
      p.reject(
        new AgentProtocolError(ErrorCode.ConnectionClosed, `${this.#name}: ${p.hook}: ${reason}`, {
          sent: true,
        }),
      );
    }
  }

  #close(c: PluginConn): void {
    if (c.closed) return;
    c.closed = true;
    this.#open--;
    this.#busy.delete(c);
    const i = this.#idle.indexOf(c);
    if (i >= 0) this.#idle.splice(i, 1);
    c.socket.destroy();
    // a slot freed up: dial for the first waiter
    if (!this.#retired && this.#waiters.length > 0 && this.#open < this.#o.maxConnections) {
      this.#dial(this.#waiters.shift() as Waiter);
    }
  }
}

function positive(v: number | undefined, fallback: number, name: string, min: number): number {
  if (v === undefined) return fallback;
  if (typeof v !== 'number' || Number.isNaN(v) || v < min) {
    throw new AgentProtocolError(
      ErrorCode.InvalidArgument,
      `${name} must be a number >= ${min}, got ${String(v)}`,
    );
  }
  return v;
}
