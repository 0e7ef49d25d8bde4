/**
 * SpoeAgentServer: an SPOA (HAProxy's Stream Processing Offload Agent) that runs
 * any picket AgentHandler. HAProxy connects over TCP, negotiates in a HELLO,
 * and sends one NOTIFY per event; the handler's answer goes back as set-var
 * actions in the ACK (see mapping.ts and the README's haproxy.cfg).
 */
import * as net from 'node:net';
import {
  type AgentHandler,
  AgentProtocolError,
  type AgentResponse,
  type AgentServer,
  type AgentTracingOptions,
  createConsoleLogger,
  ErrorCode,
  type ErrorPolicy,
  type EventType,
  escapeForLog,
  type HandlerErrorCause,
  handlerErrorResponse,
  type Logger,
  parseAgentResponse,
} from '@picket/protocol';
import {
  type AgentTracing,
  agentTracing,
  checkErrorPolicy,
  errorAnswer,
  LazyAbort,
  notifyCancel,
  requestContext,
  runHook,
} from '@picket/protocol/internal';
import { encodeActions, SPOP_MIN_FRAME_SIZE, type SpopMessage } from './codec.js';
import { type ConnectionHost, SpopConnection } from './connection.js';
import { mergeAnswers, requestFromArgs, responseActions, type SpoeVarScope } from './mapping.js';

/** Options of {@link SpoeAgentServer}; `tracer`: a span per event. */
export interface SpoeAgentServerOptions extends AgentTracingOptions {
  /** Address to bind. Default `127.0.0.1`. */
  host?: string;
  /** Port to bind; 0 picks a free one (see `endpoints`). Default 12345. */
  port?: number;
  /**
   * Name of the spoe-message carrying the request (`spoe-message <name>`); other
   * messages of a NOTIFY are acknowledged without actions. Default `picket`.
   */
  message?: string;
  /** Scope of the variables set: `txn` (default, per request) or `sess` (per client connection). */
  varScope?: SpoeVarScope;
  /**
   * Largest frame this agent accepts and sends; the HELLO settles on the smaller
   * of this and HAProxy's `max-frame-size`. 256 to 16 MiB, default 65532.
   */
  maxFrameSize?: number;
  /** NOTIFY frames handled at once per connection before reading pauses. Default 64. */
  maxInFlight?: number;
  /** Connections open at once; more are closed at accept. Default 1024. */
  maxConnections?: number;
  /** A connection that sends no HAPROXY-HELLO within this is disconnected (status 2). Default 10 000 ms. */
  helloTimeoutMs?: number;
  /** The answer to a failing handler (never allow); default `'block'` (block 500). */
  errorPolicy?: ErrorPolicy;
  /** Where connection problems and handler errors go. Default: warnings and errors to the console. */
  logger?: Logger;
}

/** What the server has seen, for tests and metrics. */
export interface SpoeServerStats {
  /** connections open now */
  connections: number;
  /** HELLO handshakes done (health checks not counted) */
  hellos: number;
  /** `option spop-check` health checks answered */
  healthchecks: number;
  /** NOTIFY frames received */
  notifies: number;
  /** most NOTIFY frames in flight at once on one connection */
  peakInFlight: number;
}

/** Default of {@link SpoeAgentServerOptions.maxFrameSize}. */
export const DEFAULT_SPOE_MAX_FRAME_SIZE = 65_532;
const MAX_FRAME_LIMIT = 16 * 1024 * 1024;

function checkInt(where: string, name: string, v: number, min: number, max: number): number {
  if (!Number.isInteger(v) || v < min || v > max) {
    throw new AgentProtocolError(
      ErrorCode.InvalidArgument,
      `${where}: ${name} must be an integer from ${min} to ${max}, got ${String(v)}`,
    );
  }
  return v;
}

/**
 * Serves an AgentHandler to HAProxy over SPOP 2.0 (HAProxy 1.8 to 2.9's SPOE
 * filter). Implements the AgentServer role: `listen()` resolves to
 * `['spoe://host:port']`. Each NOTIFY's `message` (default `picket`) becomes a
 * RequestHeadersEvent (plus a body chunk when the message sends a body); the
 * answer becomes variables. A handler that throws is answered with the
 * handler-error block, never allow. Bad input closes only its connection,
 * with an AGENT-DISCONNECT naming the problem and its SPOP status code.
 */
export class SpoeAgentServer implements AgentServer {
  readonly #handler: AgentHandler;
  readonly #tracing: AgentTracing | undefined;
  readonly #host: string;
  readonly #port: number;
  readonly #message: string;
  readonly #scope: SpoeVarScope;
  readonly #maxConnections: number;
  readonly #errorPolicy: ErrorPolicy;
  readonly #log: Logger;
  readonly #connHost: ConnectionHost;
  readonly #connections = new Set<SpopConnection>();
  #server: net.Server | undefined;
  #starting: Promise<void> | undefined;
  #endpoints: string[] = [];
  #closed = false;
  #nextId = 1;
  #lastRefusalLog = 0;
  #stats = { hellos: 0, healthchecks: 0, notifies: 0, peakInFlight: 0 };

  constructor(handler: AgentHandler, options: SpoeAgentServerOptions = {}) {
    const where = 'SpoeAgentServer';
    if (handler === null || typeof handler?.capabilities !== 'function') {
      throw new AgentProtocolError(
        ErrorCode.InvalidArgument,
        `${where}: handler must be an AgentHandler (with capabilities())`,
      );
    }
    this.#handler = handler;
    this.#host = options.host ?? '127.0.0.1';
    this.#port = checkInt(where, 'port', options.port ?? 12345, 0, 65_535);
    this.#message = options.message ?? 'picket';
    this.#scope = options.varScope ?? 'txn';
    if (this.#scope !== 'txn' && this.#scope !== 'sess') {
      throw new AgentProtocolError(
        ErrorCode.InvalidArgument,
        `${where}: varScope must be 'txn' or 'sess', got ${JSON.stringify(options.varScope)}`,
      );
    }
    const maxFrameSize = checkInt(
      where,
      'maxFrameSize',
      options.maxFrameSize ?? DEFAULT_SPOE_MAX_FRAME_SIZE,
      SPOP_MIN_FRAME_SIZE,
      MAX_FRAME_LIMIT,
    );
    const maxInFlight = checkInt(where, 'maxInFlight', options.maxInFlight ?? 64, 1, 100_000);
    this.#maxConnections = checkInt(
      where,
      'maxConnections',
      options.maxConnections ?? 1024,
      1,
      1_000_000,
    );
    const helloTimeoutMs = checkInt(
      where,
      'helloTimeoutMs',
      options.helloTimeoutMs ?? 10_000,
      1,
      3_600_000,
    );
    this.#errorPolicy = checkErrorPolicy(options.errorPolicy, where);
    this.#tracing = agentTracing(options.tracer, where);
    this.#log = options.logger ?? createConsoleLogger('picket-spoe');
    const stats = this.#stats;
    this.#connHost = {
      log: this.#log,
      maxFrameSize,
      maxInFlight,
      helloTimeoutMs,
      notify: (conn, messages, streamId, frameId, signal) =>
        this.#notify(conn, messages, streamId, frameId, signal),
      ended: (conn) => this.#connections.delete(conn),
      cancelled: (conn, streamId, frameId) =>
        notifyCancel(handler, `${conn.id}-${streamId}-${frameId}`, 'manual', this.#log, conn.id),
      counted: (what, inFlight) => {
        if (what === 'hello') stats.hellos++;
        else if (what === 'healthcheck') stats.healthchecks++;
        else {
          stats.notifies++;
          if ((inFlight ?? 0) > stats.peakInFlight) stats.peakInFlight = inFlight ?? 0;
        }
      },
    };
  }

  /** `['spoe://host:port']` while listening (the real port for port 0), else empty. */
  get endpoints(): readonly string[] {
    return this.#endpoints;
  }

  /** Counters since the server started. */
  get stats(): SpoeServerStats {
    return { connections: this.#connections.size, ...this.#stats };
  }

  /** Binds and resolves to the endpoints bound. Rejects when the address cannot be bound. */
  async listen(): Promise<readonly string[]> {
    if (this.#closed) {
      throw new AgentProtocolError(ErrorCode.ConnectionClosed, 'SPOE agent server was closed');
    }
    this.#starting ??= this.#bind();
    await this.#starting;
    return this.#endpoints;
  }

  async #bind(): Promise<void> {
    const server = net.createServer((socket) => this.#accept(socket));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.#port, this.#host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', (err) => this.#log.error('spoe server error', { error: err.message }));
    this.#server = server;
    const a = server.address() as net.AddressInfo;
    const host = a.family === 'IPv6' ? `[${a.address}]` : a.address;
    this.#endpoints = [`spoe://${host}:${a.port}`];
    if (this.#closed) await this.close();
  }

  #accept(socket: net.Socket): void {
    if (this.#closed || this.#connections.size >= this.#maxConnections) {
      // a flood of refusals is one log line per 10 s, not one per socket
      const now = Date.now();
      if (!this.#closed && now - this.#lastRefusalLog >= 10_000) {
        this.#lastRefusalLog = now;
        this.#log.warn('spoe connection refused: connection limit reached', {
          maxConnections: this.#maxConnections,
        });
      }
      socket.on('error', () => undefined);
      socket.destroy();
      return;
    }
    socket.setNoDelay(true);
    const conn = new SpopConnection(`spoe-${this.#nextId++}`, socket, this.#connHost);
    this.#connections.add(conn);
  }

  /** Stops accepting and ends every connection with AGENT-DISCONNECT (handlers see ctx.signal abort). Idempotent. */
  async close(): Promise<void> {
    this.#closed = true;
    await this.#starting?.catch(() => undefined);
    const server = this.#server;
    this.#server = undefined;
    this.#endpoints = [];
    for (const c of this.#connections) c.disconnect(0, 'agent is shutting down', false);
    const ends = [...this.#connections].map(
      (c) => new Promise<void>((resolve) => c.socket.once('close', () => resolve())),
    );
    if (server !== undefined) await new Promise<void>((resolve) => server.close(() => resolve()));
    await Promise.all(ends);
  }

  /**
   * Stops accepting, lets the NOTIFY frames being handled answer for up to
   * `timeoutMs` (default 30 000), closing each connection with a normal
   * AGENT-DISCONNECT once it is idle, then {@link close}s.
   */
  async drain(timeoutMs = 30_000): Promise<void> {
    if (this.#closed) return;
    this.#server?.close();
    const idle = [...this.#connections].map(
      (c) =>
        new Promise<void>((resolve) => {
          const done = () => {
            c.disconnect(0, 'agent is draining', false);
            resolve();
          };
          if (c.pending === 0) done();
          else c.onIdle = done;
        }),
    );
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all(idle),
      new Promise((r) => {
        timer = setTimeout(r, timeoutMs);
      }),
    ]);
    clearTimeout(timer);
    await this.close();
  }

  /** One NOTIFY: the ACK payload, or undefined when errorPolicy says close. */
  async #notify(
    conn: SpopConnection,
    messages: SpopMessage[],
    streamId: number,
    frameId: number,
    signal: AbortSignal,
  ): Promise<Uint8Array | undefined> {
    const msg = messages.find((m) => m.name === this.#message);
    if (msg === undefined) {
      this.#log.debug('spoe NOTIFY without the configured message; acknowledged without actions', {
        connectionId: conn.id,
        message: this.#message,
      });
      return new Uint8Array(0);
    }
    // the same id as the cancel notice of an aborted frame (SpopConnection.onNotify)
    const correlationId = `${conn.id}-${streamId}-${frameId}`;
    const answer = await this.#answer(conn, msg, correlationId, signal);
    if (answer === undefined) return undefined;
    return this.#encode(answer, conn, correlationId);
  }

  async #answer(
    conn: SpopConnection,
    msg: SpopMessage,
    correlationId: string,
    signal: AbortSignal,
  ): Promise<AgentResponse | undefined> {
    let mapped: ReturnType<typeof requestFromArgs>;
    try {
      mapped = requestFromArgs(msg.args, correlationId);
    } catch (err) {
      this.#log.warn(
        `spoe message "${escapeForLog(msg.name)}" cannot be read: ${escapeForLog((err as Error).message)}`,
        { connectionId: conn.id, correlationId },
      );
      return this.#failed(err, 'INVALID_EVENT', 'request_headers', correlationId, conn);
    }
    const first = await this.#run('request_headers', mapped.headers, correlationId, conn, signal);
    if (first === undefined || first.decision !== 'allow' || mapped.body === undefined) {
      return first;
    }
    const body = await this.#run('request_body_chunk', mapped.body, correlationId, conn, signal);
    return body === undefined ? undefined : mergeAnswers(first, body);
  }

  /** Runs one hook; a throw or an invalid answer becomes the error policy's answer. */
  async #run(
    type: EventType,
    event: unknown,
    correlationId: string,
    conn: SpopConnection,
    signal: AbortSignal,
  ): Promise<AgentResponse | undefined> {
    const abort = new LazyAbort();
    const onAbort = () => abort.abort(signal.reason);
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
    const ctx = requestContext(abort, correlationId, 'spoe', conn.id, conn.engineId);
    let cause: HandlerErrorCause = 'HANDLER_ERROR';
    try {
      const result: unknown = await runHook(this.#handler, type, event, ctx, this.#tracing);
      cause = 'INVALID_RESPONSE';
      if (result === null || typeof result !== 'object') {
        throw new TypeError(`handler returned ${result === null ? 'null' : typeof result}`);
      }
      return parseAgentResponse(result, 'handler response');
    } catch (err) {
      return this.#failed(err, cause, type, correlationId, conn);
    } finally {
      signal.removeEventListener('abort', onAbort);
    }
  }

  #failed(
    err: unknown,
    cause: HandlerErrorCause,
    eventType: EventType,
    correlationId: string,
    conn: SpopConnection,
  ): AgentResponse | undefined {
    const error = AgentProtocolError.from(err, ErrorCode.HandlerError, `${eventType} handler`);
    if (cause !== 'INVALID_EVENT') {
      this.#log.error('spoe handler failed; answering per errorPolicy', {
        connectionId: conn.id,
        correlationId,
        eventType,
        cause,
        error: escapeForLog(error.message),
      });
    }
    return errorAnswer(
      this.#errorPolicy,
      error,
      { cause, eventType, correlationId, connectionId: conn.id, transport: 'spoe' },
      this.#log,
    );
  }

  /** The ACK payload; an answer that cannot be carried is replaced by the error answer. */
  #encode(
    answer: AgentResponse,
    conn: SpopConnection,
    correlationId: string,
  ): Uint8Array | undefined {
    // frame header: type 1 + flags 4 + two varints of at most 10 bytes each
    const room = conn.frameSize - 25;
    let cause: HandlerErrorCause;
    try {
      const { actions, skipped } = responseActions(answer, this.#scope);
      if (skipped.length > 0) {
        this.#log.warn('spoe: header ops with names too long for an HAProxy variable not sent', {
          connectionId: conn.id,
          correlationId,
          headers: skipped.map((h) => escapeForLog(h.slice(0, 80))),
        });
      }
      const payload = encodeActions(actions);
      if (payload.length <= room) return payload;
      cause = 'RESPONSE_TOO_LARGE';
      this.#log.error(
        `spoe answer of ${payload.length} bytes exceeds the frame size ${conn.frameSize}`,
        { connectionId: conn.id, correlationId },
      );
    } catch (err) {
      cause = 'INVALID_RESPONSE';
      this.#log.error(`spoe answer cannot be sent: ${escapeForLog((err as Error).message)}`, {
        connectionId: conn.id,
        correlationId,
      });
    }
    const error = new AgentProtocolError(ErrorCode.InvalidMessage, 'answer cannot be carried');
    const fallback = errorAnswer(
      this.#errorPolicy,
      error,
      {
        cause,
        eventType: 'request_headers',
        correlationId,
        connectionId: conn.id,
        transport: 'spoe',
      },
      this.#log,
    );
    if (fallback === undefined) return undefined;
    try {
      const payload = encodeActions(responseActions(fallback, this.#scope).actions);
      if (payload.length <= room) return payload;
    } catch {
      // only a function policy's own answer can fail here
    }
    return encodeActions(
      responseActions(handlerErrorResponse('request_headers', cause, { body: null }), this.#scope)
        .actions,
    );
  }
}
