import { EventEmitter } from 'node:events';
import * as net from 'node:net';
import { V1FrameDecoder } from '@picket/framing';
import {
  type AgentEvent,
  AgentProtocolError,
  type AgentResponse,
  allow,
  type CallOptions,
  ErrorCode,
  type EventMap,
  type EventType,
  escapeForLog,
  MAX_V1_MESSAGE_SIZE,
  PROTOCOL_VERSION_V1,
} from '@picket/protocol';
import { type Call, CallEngine, describeNodeError, socketError } from '@picket/protocol/internal';
import { type Logger, silentLogger } from './logger.js';
import {
  ACK_EVENTS,
  decodeV1Ack,
  decodeV1Response,
  requestFrame,
  toProtocolError,
  type V1Ack,
} from './wire.js';

/** Default per-call limit: the Zentinel proxy's default agent `timeout_ms`. */
export const DEFAULT_V1_TIMEOUT_MS = 1000;
/** Default limit for establishing a connection. */
export const DEFAULT_V1_CONNECT_TIMEOUT_MS = 5000;
/**
 * Response versions a client accepts by default: 1 (real v1 agents) and 2
 * (the Python and Go v1 SDKs send `version: 2`, spec §1.1).
 */
export const DEFAULT_V1_ACCEPTED_VERSIONS: readonly number[] = [1, 2];

/** Options of {@link AgentClient}. */
export interface AgentClientOptions {
  /**
   * Default limit per `sendEvent`, from the call until its answer (it includes
   * waiting behind this client's earlier calls). Default 1000 ms.
   */
  timeoutMs?: number;
  /** Limit for establishing the connection. Default 5000 ms. */
  connectTimeoutMs?: number;
  /** Largest request or response JSON. Default 10 MiB (the v1 limit). */
  maxMessageSize?: number;
  /** `version` written in requests. Default 1. */
  requestVersion?: number;
  /** Response `version`s accepted; anything else is `VERSION_MISMATCH`. Default `[1, 2]`. */
  acceptedVersions?: readonly number[];
  /**
   * After the connection was closed (timeout, cancel, protocol error, agent
   * went away), the next call opens a new one. Default true; with false every
   * later call fails with `CONNECTION_CLOSED`.
   */
  reconnect?: boolean;
  /** Where connection events go. Default: nowhere (errors reach callers as rejections). */
  logger?: Logger;
}

/** Events of an {@link AgentClient}. */
export interface AgentClientEvents {
  /** a connection was established */
  connect: [];
  /** the connection ended; `error` says why unless it was closed by `close()` */
  disconnect: [error?: AgentProtocolError];
}

type ResponseWaiter = {
  resolve(frame: Uint8Array): void;
  reject(err: AgentProtocolError): void;
};

/** One socket and its decoder; ends exactly once, synchronously rejecting a pending read. */
class ClientConnection {
  private waiter: ResponseWaiter | undefined;
  private failure: AgentProtocolError | undefined;
  private ended = false;
  private readonly closedPromise: Promise<void>;

  constructor(
    readonly socket: net.Socket,
    maxMessageSize: number,
    private readonly where: string,
    private readonly onEnd: (conn: ClientConnection, err: AgentProtocolError) => void,
  ) {
    const decoder = new V1FrameDecoder({ maxMessageSize });
    socket.on('data', (chunk: Buffer) => {
      let frames: Uint8Array[];
      try {
        frames = decoder.push(chunk);
      } catch (err) {
        this.destroy(toProtocolError(err, this.where));
        return;
      }
      for (const frame of frames) {
        const w = this.waiter;
        if (w === undefined) {
          this.destroy(
            new AgentProtocolError(
              ErrorCode.InvalidMessage,
              `${this.where}: sent a message while no request was pending`,
            ),
          );
          return;
        }
        this.waiter = undefined;
        w.resolve(frame);
      }
    });
    socket.on('error', (err) => {
      this.failure ??= new AgentProtocolError(
        ErrorCode.ConnectionClosed,
        `${this.where}: connection error: ${describeNodeError(err)}`,
        { cause: err },
      );
    });
    this.closedPromise = new Promise((resolve) => socket.once('close', () => resolve()));
    socket.once('close', () => {
      this.finish(
        this.failure ??
          new AgentProtocolError(
            ErrorCode.ConnectionClosed,
            `${this.where}: the agent closed the connection`,
          ),
      );
    });
  }

  get open(): boolean {
    return !this.ended;
  }

  /** Writes one request frame and resolves with the one response frame. */
  roundTrip(frame: Uint8Array): Promise<Uint8Array> {
    if (this.ended) {
      return Promise.reject(
        this.failure ?? new AgentProtocolError(ErrorCode.ConnectionClosed, `${this.where}: closed`),
      );
    }
    if (this.waiter !== undefined) {
      return Promise.reject(
        new AgentProtocolError(ErrorCode.Internal, `${this.where}: a request is already pending`),
      );
    }
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
      this.socket.write(frame);
    });
  }

  /** Closes the socket now; a pending read is rejected with `err`. */
  destroy(err: AgentProtocolError): void {
    if (this.ended) return;
    this.failure ??= err;
    this.finish(this.failure);
    this.socket.destroy();
  }

  closed(): Promise<void> {
    return this.closedPromise;
  }

  private finish(err: AgentProtocolError): void {
    if (this.ended) return;
    this.ended = true;
    const w = this.waiter;
    this.waiter = undefined;
    w?.reject(err);
    this.onEnd(this, err);
  }
}

/** Where a call is: the engine keeps its deadline and signal, this its frame and phase. */
interface Job {
  readonly frame: Uint8Array;
  phase: 'queued' | 'connecting' | 'waiting';
}
type JobCall = Call<Job>;

/** The closed connection's reason after a call on the wire was given up. */
const POSITION_LOST =
  'connection closed (an unanswered request leaves the stream position unknown)';

/**
 * Proxy side of the legacy v1 protocol: one Unix-socket connection to one
 * agent, `[u32 BE length][JSON]` frames, one request and one response per
 * round trip. v1 has no correlation on the wire, so calls on one client are
 * serialised through an internal queue.
 *
 * When a call times out or is aborted while its request is on the wire, or
 * the agent sends something invalid, the connection is closed: the position in
 * the stream is unknown, and a late answer must never be taken for the next
 * call's. The next call then reconnects (`reconnect: true`, the default) or
 * fails with `CONNECTION_CLOSED` (`reconnect: false`).
 */
export class AgentClient extends EventEmitter<AgentClientEvents> {
  /** The agent this client talks to (also the `agent_id` of v1 configure events). */
  readonly agentId: string;
  /** The agent's Unix socket path. */
  readonly path: string;

  readonly #timeoutMs: number;
  readonly #connectTimeoutMs: number;
  readonly #maxMessageSize: number;
  readonly #requestVersion: number;
  readonly #accepted: readonly number[];
  readonly #reconnect: boolean;
  readonly #log: Logger;
  readonly #where: string;

  #conn: ClientConnection | undefined;
  #connecting: Promise<ClientConnection> | undefined;
  #hadConnection = false;
  #lastDrop: AgentProtocolError | undefined;
  /** calls in order; v1 has no correlation on the wire, so keys are local numbers */
  readonly #calls: CallEngine<Job>;
  #seq = 0;
  #queue: JobCall[] = [];
  #active: JobCall | undefined;
  #closed = false;

  /** Creates a client without connecting; the first call (or `connect()`) connects. */
  constructor(agentId: string, path: string, options: AgentClientOptions = {}) {
    super();
    this.agentId = agentId;
    this.path = socketPathOf(path);
    this.#timeoutMs = positive(options.timeoutMs, DEFAULT_V1_TIMEOUT_MS, 'timeoutMs');
    this.#connectTimeoutMs = positive(
      options.connectTimeoutMs,
      DEFAULT_V1_CONNECT_TIMEOUT_MS,
      'connectTimeoutMs',
    );
    this.#maxMessageSize = options.maxMessageSize ?? MAX_V1_MESSAGE_SIZE;
    this.#requestVersion = options.requestVersion ?? PROTOCOL_VERSION_V1;
    this.#accepted = options.acceptedVersions ?? DEFAULT_V1_ACCEPTED_VERSIONS;
    this.#reconnect = options.reconnect ?? true;
    this.#log = options.logger ?? silentLogger;
    this.#where = `v1 agent "${agentId}" at ${this.path}`;
    this.#calls = new CallEngine<Job>({
      name: this.#where,
      timeoutMs: this.#timeoutMs,
      wire: {
        write: (call, event) => this.#enqueue(call, event),
        writeCancel: (_key, reason, call) => {
          if (call !== undefined) this.#stop(call, reason);
        },
        timeoutError: (call) =>
          new AgentProtocolError(
            ErrorCode.Timeout,
            `${this.#where}: no response to ${call.type} within ${call.timeoutMs} ms` +
              (call.data?.phase === 'waiting' ? `; ${POSITION_LOST}` : ''),
          ),
      },
    });
  }

  /**
   * Connects to the agent at `path` and resolves once connected (like Rust's
   * `AgentClient::unix_socket`). Rejects with `CONNECTION_FAILED`.
   */
  static async unixSocket(
    agentId: string,
    path: string,
    options?: AgentClientOptions,
  ): Promise<AgentClient> {
    const client = new AgentClient(agentId, path, options);
    await client.connect();
    return client;
  }

  /** True while a connection is open. */
  get connected(): boolean {
    return this.#conn?.open === true;
  }

  /** Calls queued or on the wire. */
  get pending(): number {
    return this.#calls.size;
  }

  /** True after `close()`. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Opens the connection if none is open. Idempotent. */
  async connect(): Promise<void> {
    await this.#open();
  }

  /**
   * Sends one event and resolves with the agent's response (any `version` in
   * `acceptedVersions`). Rejects with `TIMEOUT`, `CANCELLED` (signal),
   * `CONNECTION_FAILED`/`CONNECTION_CLOSED`, `INVALID_MESSAGE`,
   * `MESSAGE_TOO_LARGE` or `VERSION_MISMATCH`.
   */
  sendEvent<K extends EventType>(
    eventType: K,
    payload: EventMap[K],
    options: CallOptions = {},
  ): Promise<AgentResponse> {
    if (this.#closed) return Promise.reject(this.#closedError());
    const signal = options.signal;
    if (signal?.aborted) {
      return Promise.reject(
        new AgentProtocolError(
          ErrorCode.Cancelled,
          `${this.#where}: ${eventType} call aborted before sending`,
        ),
      );
    }
    let timeoutMs: number;
    try {
      // Infinity: no limit of this client's own (V1Transport's call engine keeps the deadline)
      timeoutMs =
        options.timeoutMs === Number.POSITIVE_INFINITY
          ? options.timeoutMs
          : positive(options.timeoutMs, this.#timeoutMs, 'timeoutMs');
    } catch (err) {
      return Promise.reject(err);
    }
    return this.#calls.call(eventType, payload, String(++this.#seq), { timeoutMs, signal });
  }

  /** The engine registered a call: encode it and queue it behind the earlier ones. */
  #enqueue(call: JobCall, event: AgentEvent): void {
    let frame: Uint8Array;
    try {
      frame = requestFrame(call.type, event as EventMap[EventType], {
        agentId: this.agentId,
        version: this.#requestVersion,
        maxMessageSize: this.#maxMessageSize,
      });
    } catch (err) {
      throw err instanceof AgentProtocolError
        ? err
        : toProtocolError(err, `${this.#where}: cannot encode ${call.type}`);
    }
    call.data = { frame, phase: 'queued' };
    this.#queue.push(call);
    this.#pump();
  }

  /** The call was given up (timeout, signal): take it out of the queue or off the wire. */
  #stop(call: JobCall, reason: string): void {
    const job = call.data;
    if (job?.phase === 'queued') {
      const i = this.#queue.indexOf(call);
      if (i >= 0) this.#queue.splice(i, 1);
    } else if (job?.phase === 'waiting') {
      // The request is on the wire and its answer may still come: only closing
      // the connection guarantees it is never taken for the next call's answer.
      this.#conn?.destroy(
        new AgentProtocolError(
          reason === 'timeout' ? ErrorCode.Timeout : ErrorCode.Cancelled,
          `${this.#where}: ${call.type} call given up (${reason}); ${POSITION_LOST}`,
        ),
      );
    }
    // 'connecting': the connection being opened stays usable for the next call.
  }

  /** Rejects every pending call with `CONNECTION_CLOSED` and closes the connection. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const err = this.#closedError();
    this.#queue = [];
    this.#calls.close(err);
    const conn = this.#conn;
    if (conn !== undefined) {
      conn.destroy(err);
      await conn.closed();
    }
    // An attempt still connecting is closed as soon as it completes (see #open).
    await this.#connecting?.then(
      (c) => c.closed(),
      () => undefined,
    );
  }

  #closedError(): AgentProtocolError {
    return new AgentProtocolError(
      ErrorCode.ConnectionClosed,
      `${this.#where}: the client is closed`,
    );
  }

  #open(): Promise<ClientConnection> {
    if (this.#closed) return Promise.reject(this.#closedError());
    const current = this.#conn;
    if (current?.open) return Promise.resolve(current);
    if (this.#connecting !== undefined) return this.#connecting;
    if (this.#hadConnection && !this.#reconnect) {
      return Promise.reject(
        new AgentProtocolError(
          ErrorCode.ConnectionClosed,
          `${this.#where}: the connection was closed (${this.#lastDrop?.message ?? 'unknown reason'}) and reconnect is disabled`,
          { cause: this.#lastDrop },
        ),
      );
    }
    const attempt = new Promise<ClientConnection>((resolve, reject) => {
      const socket = net.createConnection({ path: this.path });
      const timer = setTimeout(() => {
        socket.destroy();
        reject(
          new AgentProtocolError(
            ErrorCode.ConnectionFailed,
            `cannot connect to ${this.#where}: timed out after ${this.#connectTimeoutMs} ms`,
          ),
        );
      }, this.#connectTimeoutMs);
      const onError = (err: Error) => {
        clearTimeout(timer);
        reject(
          socketError(err, 'connect', `unix:${this.path}`, { who: `v1 agent "${this.agentId}"` }),
        );
      };
      socket.once('error', onError);
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.off('error', onError);
        const conn = new ClientConnection(socket, this.#maxMessageSize, this.#where, (c, err) =>
          this.#onConnectionEnd(c, err),
        );
        if (this.#closed) {
          conn.destroy(this.#closedError());
          reject(this.#closedError());
          return;
        }
        this.#conn = conn;
        this.#hadConnection = true;
        this.#log.debug('v1 connection established', { agentId: this.agentId, path: this.path });
        this.emit('connect');
        resolve(conn);
      });
    });
    this.#connecting = attempt;
    const clear = () => {
      if (this.#connecting === attempt) this.#connecting = undefined;
    };
    attempt.then(clear, clear);
    return attempt;
  }

  #onConnectionEnd(conn: ClientConnection, err: AgentProtocolError): void {
    if (this.#conn !== conn) return;
    this.#conn = undefined;
    this.#lastDrop = err;
    if (this.#closed) {
      this.emit('disconnect');
      return;
    }
    this.#log.debug('v1 connection ended', {
      agentId: this.agentId,
      path: this.path,
      code: err.code,
      reason: err.message,
    });
    this.emit('disconnect', err);
  }

  #pump(): void {
    if (this.#active !== undefined) return;
    const call = this.#queue.shift();
    if (call === undefined) return;
    this.#active = call;
    void this.#run(call).finally(() => {
      this.#active = undefined;
      this.#pump();
    });
  }

  /** True once the engine settled the call (timeout, signal, close). */
  #done(call: JobCall): boolean {
    return this.#calls.get(call.correlationId) !== call;
  }

  async #run(call: JobCall): Promise<void> {
    const job = call.data as Job;
    try {
      job.phase = 'connecting';
      const conn = await this.#open();
      if (this.#done(call)) return;
      job.phase = 'waiting';
      const frame = await conn.roundTrip(job.frame);
      if (this.#done(call)) return;
      let response: AgentResponse;
      try {
        response = decodeV1Response(frame);
      } catch (err) {
        // After completion (and for configure) there is no decision to make: the Python
        // and Go SDKs answer `{"success": true}`, a complete frame, so the stream is intact.
        const ack = ACK_EVENTS.has(call.type) ? decodeV1Ack(frame) : undefined;
        if (ack !== undefined) {
          this.#calls.settle(call, this.#fromAck(call.type, ack));
          return;
        }
        const e =
          err instanceof AgentProtocolError
            ? new AgentProtocolError(
                err.code,
                `${this.#where}: bad response to ${call.type}: ${err.message}`,
                { cause: err },
              )
            : toProtocolError(err, `${this.#where}: bad response to ${call.type}`);
        conn.destroy(e);
        throw e;
      }
      if (!this.#accepted.includes(response.version)) {
        const e = new AgentProtocolError(
          ErrorCode.VersionMismatch,
          `${this.#where}: response version ${response.version} is not one of ${this.#accepted.join(', ')}`,
        );
        conn.destroy(e);
        throw e;
      }
      this.#calls.settle(call, response);
    } catch (err) {
      this.#calls.settle(call, toProtocolError(err, this.#where));
    }
  }

  /** `success: true` counts as allow; `success: false` is the agent's own failure, reported. */
  #fromAck(type: EventType, ack: V1Ack): AgentResponse | AgentProtocolError {
    if (ack.success) {
      this.#log.debug('v1 agent acknowledged instead of answering; taken as allow', {
        agentId: this.agentId,
        eventType: type,
      });
      return allow();
    }
    return new AgentProtocolError(
      ErrorCode.HandlerError,
      `${this.#where}: the agent failed ${type}: ${escapeForLog(ack.error ?? 'no error text')}`,
    );
  }
}

/** A socket path, accepting Zentinel's `unix:` endpoint prefix. */
export function socketPathOf(endpoint: string): string {
  return endpoint.startsWith('unix:') ? endpoint.slice('unix:'.length) : endpoint;
}

function positive(value: number | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  if (!Number.isFinite(value) || value <= 0) {
    throw new AgentProtocolError(
      ErrorCode.InvalidArgument,
      `${name} must be a positive number, got ${value}`,
    );
  }
  return value;
}
