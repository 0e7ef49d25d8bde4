import * as net from 'node:net';
import { V1FrameDecoder } from '@picket/framing';
import {
  type AgentHandler,
  AgentProtocolError,
  type AgentResponse,
  type AgentServer as AgentServerRole,
  type AgentTracingOptions,
  ErrorCode,
  type ErrorPolicy,
  eventCorrelationId,
  type HandlerErrorCause,
  handlerErrorResponse,
  MAX_V1_MESSAGE_SIZE,
  PROTOCOL_VERSION_V1,
  parseAgentResponse,
} from '@picket/protocol';
import {
  type AgentTracing,
  agentTracing,
  checkErrorPolicy,
  errorAnswer,
  LazyAbort,
  listenUnix,
  requestContext,
  runHook,
  type SocketFile,
} from '@picket/protocol/internal';
import { socketPathOf } from './client.js';
import { defaultLogger, type Logger } from './logger.js';
import { type DecodedV1Request, decodeV1Request, responseFrame, toProtocolError } from './wire.js';

/** Reason code of the handler-error answer (the one of @picket/protocol, re-exported). */
export { AGENT_HANDLER_ERROR } from '@picket/protocol';

/** Options of {@link AgentServer}; `tracer`: a span per event. */
export interface AgentServerOptions extends AgentTracingOptions {
  /** Where connection problems and handler errors go. Default: warn/error to the console. */
  logger?: Logger;
  /**
   * `version` written in every response. Default 1: a real v1 proxy rejected
   * anything else (vector V10b). Set 2 to answer like the Python/Go v1 SDKs.
   */
  responseVersion?: number;
  /** Largest request or response JSON. Default 10 MiB (the v1 limit). */
  maxMessageSize?: number;
  /** File mode of the socket. Default `0o660` (owner and group may connect). */
  socketMode?: number;
  /**
   * Connections open at once; a connection beyond this is closed at accept, with a `warn`
   * naming the limit. `Infinity` turns the cap off. Default 1024
   * ({@link DEFAULT_V1_MAX_CONNECTIONS}): v1 has no handshake, so nothing else bounds idle peers.
   */
  maxConnections?: number;
  /**
   * Refusals over `maxConnections` are logged at most once per this interval: the first at
   * once, later ones as one summary line with their count. Default 10 000 ms.
   */
  refusalLogIntervalMs?: number;
  /**
   * What a failing handler is answered: default `'block'` (block 500, body `Agent handler
   * error`, `AGENT_HANDLER_ERROR`, tag `picket_error`); `'close'` drops the connection
   * unanswered. See ErrorPolicy in @picket/protocol; it never allows.
   */
  errorPolicy?: ErrorPolicy;
}

/** Default of {@link AgentServerOptions.maxConnections}. */
export const DEFAULT_V1_MAX_CONNECTIONS = 1024;

/** Default of {@link AgentServerOptions.refusalLogIntervalMs}. */
export const DEFAULT_V1_REFUSAL_LOG_INTERVAL_MS = 10_000;

/** Pipelined requests (sent before earlier ones were answered) held before reading pauses. */
const MAX_QUEUED_REQUESTS = 16;

/** One accepted connection: strictly one request at a time, in arrival order. */
class ServerConnection {
  /** the request being handled: its ctx.signal aborts when the connection ends */
  current: LazyAbort | undefined;
  private readonly decoder: V1FrameDecoder;
  private readonly queue: Uint8Array[] = [];
  private processing = false;
  private ended = false;

  constructor(
    readonly id: string,
    readonly socket: net.Socket,
    private readonly agentId: string,
    /** the answer's frame; undefined = close the connection unanswered (errorPolicy 'close') */
    private readonly serve: (
      request: DecodedV1Request,
      conn: ServerConnection,
    ) => Promise<Uint8Array | undefined>,
    maxMessageSize: number,
    private readonly log: Logger,
    private readonly onEnd: (conn: ServerConnection) => void,
  ) {
    this.decoder = new V1FrameDecoder({ maxMessageSize });
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    // End of stream means the client is gone (a v1 client never half-closes and
    // then waits), so the connection closes and a running handler is aborted.
    socket.on('end', () => {
      if (this.decoder.bufferedBytes > 0) {
        this.drop('the client closed the connection in the middle of a frame');
      } else {
        this.destroy();
      }
    });
    socket.on('error', (err) => {
      this.log.debug('v1 connection error', { connectionId: id, error: err.message });
    });
    socket.once('close', () => this.finish());
  }

  /** True while a request is being handled or waits. */
  get busy(): boolean {
    return this.processing || this.queue.length > 0;
  }

  /** Closes this connection (and only this one), logging why. */
  drop(reason: string, err?: unknown): void {
    if (this.ended) return;
    this.log.warn(`v1 connection closed: ${reason}`, {
      connectionId: this.id,
      agentId: this.agentId,
      ...(err instanceof Error ? { error: err.message } : {}),
    });
    this.destroy();
  }

  destroy(): void {
    if (this.ended) return;
    this.finish();
    this.socket.destroy();
  }

  private finish(): void {
    if (this.ended) return;
    this.ended = true;
    this.queue.length = 0;
    this.current?.abort(
      new AgentProtocolError(ErrorCode.ConnectionClosed, `v1 connection ${this.id} closed`),
    );
    this.onEnd(this);
  }

  /** Resolves when the socket can take more data, or has closed. */
  private drained(): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        this.socket.off('drain', done);
        this.socket.off('close', done);
        resolve();
      };
      this.socket.on('drain', done);
      this.socket.on('close', done);
    });
  }

  private onData(chunk: Buffer): void {
    if (this.ended) return;
    let frames: Uint8Array[];
    try {
      frames = this.decoder.push(chunk);
    } catch (err) {
      this.drop(toProtocolError(err, 'bad frame').message, err);
      return;
    }
    if (frames.length === 0) return;
    this.queue.push(...frames);
    // Stop reading from a client that pipelines too far ahead of its answers.
    if (this.queue.length >= MAX_QUEUED_REQUESTS) this.socket.pause();
    void this.process();
  }

  private async process(): Promise<void> {
    if (this.processing) return;
    this.processing = true;
    try {
      for (;;) {
        const frame = this.queue.shift();
        if (frame === undefined || this.ended) break;
        let request: DecodedV1Request;
        try {
          request = decodeV1Request(frame);
        } catch (err) {
          this.drop(err instanceof AgentProtocolError ? err.message : 'undecodable request', err);
          return;
        }
        const answer = await this.serve(request, this);
        if (this.ended) return;
        if (answer === undefined) {
          this.drop('handler failed (errorPolicy "close")');
          return;
        }
        // A client that sends but never reads must not grow our write buffer without bound.
        if (!this.socket.write(answer)) await this.drained();
      }
    } finally {
      this.processing = false;
    }
    if (!this.ended && this.socket.isPaused()) this.socket.resume();
    this.onIdle(this);
  }

  /** Told when the queue has run empty (drain waits on it). */
  onIdle: (conn: ServerConnection) => void = () => undefined;
}

/**
 * Agent side of the legacy v1 protocol: listens on a Unix socket and serves
 * an {@link AgentHandler} (the same interface the v2 servers run). Many
 * connections at once, one request at a time on each. A bad frame, bad JSON,
 * an unknown `event_type` or a payload that does not validate closes only
 * that connection (without an answer, like the Rust v1 server) and is logged.
 * A handler that throws is answered with the handler-error answer of
 * @picket/protocol (block 500, `Agent handler error`, `AGENT_HANDLER_ERROR`), never allow.
 * Implements the AgentServer role: `listen()` resolves to `['v1+unix:<path>']`.
 */
export class AgentServer implements AgentServerRole {
  /** The agent's id (for logs and connection ids). */
  readonly agentId: string;
  /** The Unix socket path. */
  readonly path: string;
  readonly #handler: AgentHandler;
  readonly #log: Logger;
  readonly #responseVersion: number;
  readonly #maxMessageSize: number;
  readonly #socketMode: number;
  readonly #maxConnections: number;
  readonly #errorPolicy: ErrorPolicy;
  readonly #tracing: AgentTracing | undefined;
  #server: net.Server | undefined;
  #socketFile: SocketFile | undefined;
  #starting: Promise<void> | undefined;
  #connections = new Set<ServerConnection>();
  #nextId = 1;
  #closed = false;
  readonly #refusalLogIntervalMs: number;
  /** refusals since the last log line; a flood is one line per interval, not one per socket */
  #refusedUnlogged = 0;
  #refusalWindowStart = 0;
  #refusalTimer: NodeJS.Timeout | undefined;

  constructor(
    agentId: string,
    path: string,
    handler: AgentHandler,
    options: AgentServerOptions = {},
  ) {
    this.agentId = agentId;
    this.path = socketPathOf(path);
    this.#handler = handler;
    this.#log = options.logger ?? defaultLogger;
    this.#responseVersion = options.responseVersion ?? PROTOCOL_VERSION_V1;
    this.#maxMessageSize = options.maxMessageSize ?? MAX_V1_MESSAGE_SIZE;
    this.#socketMode = options.socketMode ?? 0o660;
    this.#maxConnections = options.maxConnections ?? DEFAULT_V1_MAX_CONNECTIONS;
    if (
      !(this.#maxConnections >= 1) ||
      (!Number.isInteger(this.#maxConnections) && this.#maxConnections !== Infinity)
    ) {
      throw new AgentProtocolError(
        ErrorCode.InvalidArgument,
        `v1 server ${agentId}: maxConnections must be an integer ≥ 1 or Infinity, got ${String(options.maxConnections)}`,
      );
    }
    this.#errorPolicy = checkErrorPolicy(options.errorPolicy, `v1 server ${agentId}`);
    this.#tracing = agentTracing(options.tracer, `v1 server ${agentId}`);
    this.#refusalLogIntervalMs = options.refusalLogIntervalMs ?? DEFAULT_V1_REFUSAL_LOG_INTERVAL_MS;
    if (!Number.isInteger(this.#refusalLogIntervalMs) || this.#refusalLogIntervalMs < 1) {
      throw new AgentProtocolError(
        ErrorCode.InvalidArgument,
        `v1 server ${agentId}: refusalLogIntervalMs must be an integer ≥ 1, got ${String(options.refusalLogIntervalMs)}`,
      );
    }
  }

  /** True while listening. */
  get listening(): boolean {
    return this.#server?.listening === true;
  }

  /** Open connections. */
  get connectionCount(): number {
    return this.#connections.size;
  }

  /** `['v1+unix:<path>']` while listening, else empty. */
  get endpoints(): readonly string[] {
    return this.listening && !this.#closed ? [`v1+unix:${this.path}`] : [];
  }

  /** {@link run}, resolving to {@link endpoints}: the AgentServer way to start. */
  async listen(): Promise<readonly string[]> {
    await this.run();
    return this.endpoints;
  }

  /**
   * Stops accepting, lets the requests being handled answer for up to `timeoutMs`
   * (default 30 000), then {@link close}s (a handler still running sees `ctx.signal` abort).
   */
  async drain(timeoutMs = 30_000): Promise<void> {
    if (this.#closed) return;
    this.#server?.close();
    let timer: NodeJS.Timeout | undefined;
    const idle = new Promise<void>((resolve) => {
      const check = (): void => {
        if ([...this.#connections].every((c) => !c.busy)) resolve();
      };
      for (const c of this.#connections) c.onIdle = check;
      check();
    });
    await Promise.race([idle, new Promise((r) => (timer = setTimeout(r, timeoutMs)))]);
    clearTimeout(timer);
    await this.close();
  }

  /**
   * Starts listening and resolves once the socket accepts connections. A stale
   * socket file at `path` (nobody listening) is replaced; a live one, or a file
   * that is not a socket, is left alone and the call rejects. The socket file exists
   * only with `socketMode`, never with the umask's wider bits.
   */
  run(): Promise<void> {
    if (this.#closed) {
      return Promise.reject(
        new AgentProtocolError(ErrorCode.ConnectionClosed, `v1 server at ${this.path} was closed`),
      );
    }
    this.#starting ??= this.#listen();
    return this.#starting;
  }

  /**
   * Stops listening, closes every connection (their handlers' `ctx.signal`
   * aborts) and removes the socket file if it is still ours.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#refusalTimer);
    this.#refusalTimer = undefined;
    this.#logRefusals();
    await this.#starting?.catch(() => undefined);
    for (const conn of this.#connections) conn.destroy();
    // Before the server closes: while it holds the inode, its number cannot be reused.
    await this.#socketFile?.remove();
    this.#socketFile = undefined;
    const server = this.#server;
    this.#server = undefined;
    if (server?.listening) {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  }

  async #listen(): Promise<void> {
    const server = net.createServer((socket) => this.#accept(socket));
    this.#socketFile = await listenUnix(server, this.path, {
      mode: this.#socketMode,
      logger: this.#log,
    });
    server.on('error', (err) =>
      this.#log.error('v1 server error', { path: this.path, error: err.message }),
    );
    this.#server = server;
    // close() called meanwhile waits for this start and then closes the server.
    if (this.#closed) return;
    this.#log.info('v1 agent server listening', { agentId: this.agentId, path: this.path });
  }

  #accept(socket: net.Socket): void {
    if (this.#closed) {
      socket.destroy();
      return;
    }
    const id = `${this.agentId}/v1-${this.#nextId++}`;
    // Counted here rather than with net.Server.maxConnections, so the refusal is logged and a
    // slot is free as soon as its connection has ended (not only once its socket has closed).
    if (this.#connections.size >= this.#maxConnections) {
      socket.on('error', () => undefined);
      socket.destroy();
      this.#refused(id);
      return;
    }
    const conn = new ServerConnection(
      id,
      socket,
      this.agentId,
      async (request, c) => {
        const response = await this.#dispatch(request, c);
        return response === undefined ? undefined : this.#encode(response, request, c.id);
      },
      this.#maxMessageSize,
      this.#log,
      (c) => {
        this.#connections.delete(c);
        this.#log.debug('v1 connection ended', { connectionId: c.id });
      },
    );
    this.#connections.add(conn);
    this.#log.debug('v1 connection accepted', { connectionId: id });
  }

  /**
   * Logs a refusal: the first one at once, the ones after it in a summary per
   * `refusalLogIntervalMs`, until an interval passes without any.
   */
  #refused(connectionId: string): void {
    if (this.#refusalTimer !== undefined) {
      this.#refusedUnlogged++;
      return;
    }
    this.#log.warn(
      `v1 connection refused: connection limit reached (${this.#connections.size} open, maxConnections ${this.#maxConnections})`,
      { connectionId, agentId: this.agentId, maxConnections: this.#maxConnections },
    );
    this.#startRefusalWindow();
  }

  #startRefusalWindow(): void {
    this.#refusalWindowStart = performance.now();
    this.#refusalTimer = setTimeout(() => {
      this.#refusalTimer = undefined;
      if (this.#refusedUnlogged === 0) return; // a quiet interval: the next refusal logs at once
      this.#logRefusals();
      this.#startRefusalWindow();
    }, this.#refusalLogIntervalMs);
    this.#refusalTimer.unref(); // never keeps the process alive
  }

  #logRefusals(): void {
    const refused = this.#refusedUnlogged;
    if (refused === 0) return;
    this.#refusedUnlogged = 0;
    const seconds = ((performance.now() - this.#refusalWindowStart) / 1000).toFixed(1);
    this.#log.warn(
      `v1 connections refused: ${refused} more over the cap of ${this.#maxConnections} in the last ${seconds} s`,
      { agentId: this.agentId, maxConnections: this.#maxConnections, refused },
    );
  }

  /** Runs the handler hook for one request; never rejects. Undefined: errorPolicy says close. */
  async #dispatch(
    request: DecodedV1Request,
    conn: ServerConnection,
  ): Promise<AgentResponse | undefined> {
    const abort = new LazyAbort();
    conn.current = abort;
    const correlationId = eventCorrelationId(request.event);
    const ctx = requestContext(abort, correlationId, 'v1', conn.id, undefined);
    let cause: HandlerErrorCause = 'HANDLER_ERROR';
    try {
      const result: unknown = await runHook(
        this.#handler,
        request.eventType,
        request.event,
        ctx,
        this.#tracing,
      );
      cause = 'INVALID_RESPONSE';
      if (result === null || typeof result !== 'object') {
        throw new TypeError(`handler returned ${result === null ? 'null' : typeof result}`);
      }
      // Validated so that a malformed response becomes a block, not bad JSON on the wire.
      return parseAgentResponse(
        { ...(result as object), version: this.#responseVersion },
        'handler response',
      );
    } catch (err) {
      return this.#failed(err, cause, request, conn.id);
    } finally {
      if (conn.current === abort) conn.current = undefined;
    }
  }

  /** The error policy's answer to a failed request (logged), with this server's version. */
  #failed(
    err: unknown,
    cause: HandlerErrorCause,
    request: DecodedV1Request,
    connectionId: string,
  ): AgentResponse | undefined {
    const error = AgentProtocolError.from(
      err,
      ErrorCode.HandlerError,
      `${request.eventType} handler`,
    );
    const correlationId = eventCorrelationId(request.event);
    this.#log.error('v1 handler failed; answering per errorPolicy', {
      connectionId,
      eventType: request.eventType,
      correlationId,
      cause,
      error: err instanceof Error ? err.message : String(err),
    });
    const info = {
      cause,
      eventType: request.eventType,
      correlationId,
      connectionId,
      transport: 'v1' as const,
    };
    const answer = errorAnswer(this.#errorPolicy, error, info, this.#log);
    return answer === undefined ? undefined : { ...answer, version: this.#responseVersion };
  }

  /** Frames a response; one that cannot be written is answered per the error policy. */
  #encode(
    response: AgentResponse,
    request: DecodedV1Request,
    connectionId: string,
  ): Uint8Array | undefined {
    try {
      return responseFrame(response, this.#maxMessageSize);
    } catch (err) {
      const e = toProtocolError(err, 'v1 response');
      const answer = this.#failed(
        e,
        e.code === ErrorCode.MessageTooLarge ? 'RESPONSE_TOO_LARGE' : 'INVALID_RESPONSE',
        request,
        connectionId,
      );
      if (answer === undefined) return undefined;
      try {
        return responseFrame(answer, this.#maxMessageSize);
      } catch {
        // only a function policy's own answer can fail here
        return responseFrame(
          { ...handlerErrorResponse(request.eventType), version: this.#responseVersion },
          this.#maxMessageSize,
        );
      }
    }
  }
}
