/**
 * Agent side: `GrpcAgentServerV2` serves any `AgentHandler` as
 * `zentinel.agent.v2.AgentServiceV2` (ProcessStream, ControlStream, ProcessEvent).
 */
import { EventEmitter } from 'node:events';
import {
  Metadata,
  Server,
  type ServerDuplexStream,
  type ServerOptions,
  type ServerUnaryCall,
  type sendUnaryData,
  status,
  type UntypedServiceImplementation,
} from '@grpc/grpc-js';
import {
  type AgentHandler,
  AgentProtocolError,
  type AgentResponse,
  allow,
  block,
  type ConfigUpdateRequest,
  type ConfigUpdateResponse,
  cancelReasonFromGrpc,
  DEFAULT_GRPC_MAX_MESSAGE_SIZE,
  ErrorCode,
  type EventMap,
  type EventType,
  type HandshakeDecision,
  type HealthState,
  type LogMessage,
  type MetricsReport,
  PROTOCOL_VERSION,
  type RequestContext,
  websocketAllow,
} from '@picket/protocol';
import { bindSocketFile, type SocketFile } from '@picket/protocol/internal';
import {
  agentResponseToProto,
  capabilitiesToProto,
  configResponseFromProto,
  configUpdateToProto,
  configureFromProto,
  guardrailFromProto,
  handshakeRequestFromProto,
  healthToProto,
  logToProto,
  metricsToProto,
  requestBodyChunkFromProto,
  requestCompleteFromProto,
  requestHeadersFromProto,
  responseBodyChunkFromProto,
  responseHeadersFromProto,
  webSocketFrameFromProto,
} from './convert.js';
import {
  decodeRequestHeadersFast,
  encodeAgentResponseFast,
  FastRequestHeaders,
} from './fast-paths.js';
import { defaultLogger, type Logger } from './logger.js';
import {
  type AgentControlMsg,
  agentServiceV2Definition,
  encodeAgentToProxy,
  encodeProxyControl,
  type IAgentToProxy,
  type IHandshakeResponse,
  type IProxyControl,
  num,
  PICKET_GRPC_REVISION,
  PICKET_METADATA_KEY,
  type ProxyToAgentMsg,
  UndecodableMessage,
} from './proto.js';
import { type ServerTlsConfig, serverCredentials } from './tls.js';

/** Why a handler's answer was replaced by the error policy. */
export type ErrorCause = 'HANDLER_ERROR' | 'INVALID_RESPONSE' | 'RESPONSE_TOO_LARGE';

/** What the error policy is told. */
export interface ErrorInfo {
  cause: ErrorCause;
  eventType: EventType;
  correlationId: string;
  connectionId: string;
}

/**
 * What to answer when a handler throws or returns something unusable: a block status
 * (+ body), or a function building the whole response. Default: block 500 with reason
 * code = the cause and tag `agent_error`. A handler failure never becomes allow unless
 * a custom function says so.
 */
export type ErrorPolicy =
  | { status?: number; body?: string | null }
  | ((error: AgentProtocolError, info: ErrorInfo) => AgentResponse);

/** Options of {@link GrpcAgentServerV2}. */
export interface GrpcAgentServerV2Options {
  /** TLS (and mTLS with `ca`); plaintext when absent */
  tls?: ServerTlsConfig;
  /** permission bits of a `unix:` socket file; default 0o660 (owner and group may connect) */
  socketMode?: number;
  /** events handled at once per ProcessStream; more wait in order (default 100) */
  maxConcurrentPerStream?: number;
  errorPolicy?: ErrorPolicy;
  logger?: Logger;
  /** max message size in bytes, both directions (default 4 MiB, tonic's default) */
  maxMessageSize?: number;
  /** HTTP/2 keepalive pings to the proxy (off unless set) */
  keepalive?: { timeMs?: number; timeoutMs?: number };
  /** extra grpc-js server options (applied last) */
  serverOptions?: ServerOptions;
  /** default timeout of {@link GrpcAgentServerV2.requestConfigUpdate} (default 10 000 ms) */
  configUpdateTimeoutMs?: number;
  /**
   * a ProcessStream whose handshake has not completed (including a slow `onHandshake`)
   * after this many ms is ended with DEADLINE_EXCEEDED; default 10 000 (as the UDS server)
   */
  handshakeTimeoutMs?: number;
  /**
   * ProcessStreams open at once; more are refused with RESOURCE_EXHAUSTED. ControlStreams
   * are capped separately at the same number. `Infinity` turns the cap off. Default 1024
   */
  maxConnections?: number;
}

/** Default of {@link GrpcAgentServerV2Options.handshakeTimeoutMs}. */
export const DEFAULT_GRPC_HANDSHAKE_TIMEOUT_MS = 10_000;
/** Default of {@link GrpcAgentServerV2Options.maxConnections}. */
export const DEFAULT_GRPC_MAX_CONNECTIONS = 1024;

/** Where {@link GrpcAgentServerV2.listen} bound. */
export interface BoundAddress {
  /** `host:port` with the real port, or the `unix:` address as given */
  address: string;
  /** the TCP port (0 for Unix sockets) */
  port: number;
}

const HOOKS = {
  request_headers: 'onRequestHeaders',
  request_body_chunk: 'onRequestBodyChunk',
  response_headers: 'onResponseHeaders',
  response_body_chunk: 'onResponseBodyChunk',
  request_complete: 'onRequestComplete',
  web_socket_frame: 'onWebSocketFrame',
  guardrail_inspect: 'onGuardrailInspect',
  configure: 'onConfigure',
} as const satisfies Record<EventType, keyof AgentHandler>;

interface DecodedEvent {
  type: EventType;
  event: EventMap[EventType];
  cid: string;
}

/** What a ProcessStream delivers: a plain RequestHeaders read in one pass, or any message. */
type StreamMessage = ProxyToAgentMsg | FastRequestHeaders;

/** ProcessStream's reader: the one-pass reader for plain RequestHeaders, else protobufjs. */
function readStreamMessage(b: Buffer): StreamMessage | UndecodableMessage {
  return (
    decodeRequestHeadersFast(b) ?? agentServiceV2Definition.ProcessStream.requestDeserialize(b)
  );
}

/** The service definition served: proto.ts's, with {@link readStreamMessage} for ProcessStream. */
const SERVICE = {
  ...agentServiceV2Definition,
  ProcessStream: {
    ...agentServiceV2Definition.ProcessStream,
    requestDeserialize: readStreamMessage,
  },
};

/** The event inside a ProxyToAgent, or undefined when it carries none. */
function decodeEvent(msg: StreamMessage): DecodedEvent | undefined {
  if (msg instanceof FastRequestHeaders) {
    return { type: 'request_headers', event: msg.event, cid: msg.event.metadata.correlation_id };
  }
  switch (msg.message) {
    case 'request_headers': {
      const event = requestHeadersFromProto(msg.request_headers ?? {});
      return { type: 'request_headers', event, cid: event.metadata.correlation_id };
    }
    case 'request_body_chunk': {
      const event = requestBodyChunkFromProto(msg.request_body_chunk ?? {});
      return { type: 'request_body_chunk', event, cid: event.correlation_id };
    }
    case 'response_headers': {
      const event = responseHeadersFromProto(msg.response_headers ?? {});
      return { type: 'response_headers', event, cid: event.correlation_id };
    }
    case 'response_body_chunk': {
      const event = responseBodyChunkFromProto(msg.response_body_chunk ?? {});
      return { type: 'response_body_chunk', event, cid: event.correlation_id };
    }
    case 'request_complete': {
      const event = requestCompleteFromProto(msg.request_complete ?? {});
      return { type: 'request_complete', event, cid: event.correlation_id };
    }
    case 'websocket_frame': {
      const event = webSocketFrameFromProto(msg.websocket_frame ?? {});
      return { type: 'web_socket_frame', event, cid: event.correlation_id };
    }
    case 'guardrail': {
      const event = guardrailFromProto(msg.guardrail ?? {});
      return { type: 'guardrail_inspect', event, cid: event.correlation_id };
    }
    case 'configure': {
      const event = configureFromProto(msg.configure ?? {});
      return { type: 'configure', event, cid: event.correlation_id };
    }
    default:
      return undefined;
  }
}

/** What a stream answers for an event whose hook the handler does not have. */
function defaultResponse(ev: DecodedEvent): AgentResponse {
  return ev.type === 'web_socket_frame' ? websocketAllow() : allow();
}

/** Whether `await` would wait on `v`. */
function isThenable(v: unknown): v is PromiseLike<unknown> {
  return (
    v !== null &&
    (typeof v === 'object' || typeof v === 'function') &&
    typeof (v as { then?: unknown }).then === 'function'
  );
}

let connectionCounter = 0;

/** One open ProcessStream. */
/**
 * An AbortController whose signal is only created when someone reads it: creating
 * an AbortSignal costs microseconds and most handlers never look at `ctx.signal`.
 */
class LazyAbort {
  aborted = false;
  reason: unknown;
  #controller: AbortController | undefined;

  get signal(): AbortSignal {
    if (this.#controller === undefined) {
      this.#controller = new AbortController();
      if (this.aborted) this.#controller.abort(this.reason);
    }
    return this.#controller.signal;
  }

  abort(reason: unknown): void {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = reason;
    this.#controller?.abort(reason);
  }
}

const ABORT = Symbol('abort');

/** `ctx.signal` as an own enumerable accessor shared by every context (same object shape). */
const SIGNAL_PROPERTY: PropertyDescriptor = {
  enumerable: true,
  configurable: true,
  get(this: { [ABORT]: LazyAbort }): AbortSignal {
    return this[ABORT].signal;
  },
};

class StreamSession {
  readonly id = `grpc-${++connectionCounter}`;
  handshaken = false;
  /** ends the stream if the handshake does not complete in time; cleared once it has */
  handshakeTimer: NodeJS.Timeout | undefined;
  proxyId: string | undefined;
  closed = false;
  active = 0;
  readonly queue: DecodedEvent[] = [];
  readonly inflight = new Map<string, Set<LazyAbort>>();
  readonly picketPeer: boolean;
  readonly #idleWaiters: (() => void)[] = [];

  constructor(readonly call: ServerDuplexStream<ProxyToAgentMsg, Buffer>) {
    this.picketPeer = call.metadata.get(PICKET_METADATA_KEY).length > 0;
  }

  write(m: IAgentToProxy): void {
    if (this.closed) return;
    try {
      this.call.write(encodeAgentToProxy(m));
    } catch {
      // the stream is going away; its 'cancelled'/'error' handler cleans up
    }
  }

  /** Resolves once no event is being handled or waiting. */
  idle(): Promise<void> {
    if (this.active === 0 && this.queue.length === 0) return Promise.resolve();
    return new Promise((resolve) => {
      this.#idleWaiters.push(resolve);
    });
  }

  checkIdle(): void {
    if (this.active === 0 && this.queue.length === 0) {
      for (const wake of this.#idleWaiters.splice(0)) wake();
    }
  }

  abortAll(reason: string): void {
    for (const set of this.inflight.values()) for (const c of set) c.abort(reason);
  }
}

interface PendingConfigUpdate {
  resolve(r: ConfigUpdateResponse): void;
  reject(e: AgentProtocolError): void;
}

/**
 * gRPC agent server. Sends response headers as soon as a ProcessStream opens (a Rust
 * proxy waits for them before its handshake), answers the handshake with full
 * capabilities, handles events concurrently and answers each with its exact correlation id.
 */
export class GrpcAgentServerV2 extends EventEmitter {
  readonly #handler: AgentHandler;
  readonly #options: GrpcAgentServerV2Options;
  readonly #log: Logger;
  readonly #server: Server;
  readonly #maxConcurrent: number;
  readonly #maxMessageSize: number;
  readonly #handshakeTimeoutMs: number;
  readonly #maxConnections: number;
  readonly #sessions = new Set<StreamSession>();
  readonly #controls = new Set<ServerDuplexStream<AgentControlMsg, Buffer>>();
  readonly #configUpdates = new Map<string, PendingConfigUpdate>();
  #health: { state: HealthState; message?: string } | undefined;
  #paused = false;
  #draining = false;
  #closing = false;
  #closed = false;
  /** `unix:` socket files bound by listen(), removed (if still ours) on close */
  readonly #socketFiles: SocketFile[] = [];

  constructor(handler: AgentHandler, options: GrpcAgentServerV2Options = {}) {
    super();
    this.#handler = handler;
    this.#options = options;
    this.#log = options.logger ?? defaultLogger;
    this.#maxConcurrent = Math.max(1, options.maxConcurrentPerStream ?? 100);
    this.#maxMessageSize = options.maxMessageSize ?? DEFAULT_GRPC_MAX_MESSAGE_SIZE;
    this.#handshakeTimeoutMs = options.handshakeTimeoutMs ?? DEFAULT_GRPC_HANDSHAKE_TIMEOUT_MS;
    if (!(this.#handshakeTimeoutMs > 0)) {
      throw new AgentProtocolError(
        ErrorCode.InvalidArgument,
        `GrpcAgentServerV2: handshakeTimeoutMs must be > 0 ms, got ${String(options.handshakeTimeoutMs)}`,
      );
    }
    this.#maxConnections = options.maxConnections ?? DEFAULT_GRPC_MAX_CONNECTIONS;
    if (
      !(this.#maxConnections >= 1) ||
      (!Number.isInteger(this.#maxConnections) && this.#maxConnections !== Infinity)
    ) {
      throw new AgentProtocolError(
        ErrorCode.InvalidArgument,
        `GrpcAgentServerV2: maxConnections must be an integer ≥ 1 or Infinity, got ${String(options.maxConnections)}`,
      );
    }
    const serverOptions: ServerOptions = {
      'grpc.max_receive_message_length': this.#maxMessageSize,
      'grpc.max_send_message_length': this.#maxMessageSize,
    };
    if (options.keepalive?.timeMs !== undefined) {
      serverOptions['grpc.keepalive_time_ms'] = options.keepalive.timeMs;
    }
    if (options.keepalive?.timeoutMs !== undefined) {
      serverOptions['grpc.keepalive_timeout_ms'] = options.keepalive.timeoutMs;
    }
    this.#server = new Server({ ...serverOptions, ...options.serverOptions });
    const impl: UntypedServiceImplementation = {
      ProcessStream: (call: ServerDuplexStream<ProxyToAgentMsg, Buffer>) =>
        this.#processStream(call),
      ControlStream: (call: ServerDuplexStream<AgentControlMsg, Buffer>) =>
        this.#controlStream(call),
      ProcessEvent: (
        call: ServerUnaryCall<ProxyToAgentMsg, Buffer>,
        callback: sendUnaryData<Buffer>,
      ) => void this.#processEvent(call, callback),
    };
    this.#server.addService(SERVICE, impl);
  }

  /**
   * Binds an address (`127.0.0.1:0`, `0.0.0.0:50051`, `unix:/path/agent.sock`, …) and
   * starts serving. Resolves with the bound address (the real port for `:0`).
   */
  listen(address: string): Promise<BoundAddress> {
    let creds: ReturnType<typeof serverCredentials>;
    try {
      creds = serverCredentials(this.#options.tls);
    } catch (err) {
      return Promise.reject(err);
    }
    if (address.startsWith('unix:')) return this.#listenUnix(address, creds);
    return new Promise((resolve, reject) => {
      this.#server.bindAsync(address, creds, (err, port) => {
        if (err) {
          reject(
            new AgentProtocolError(
              ErrorCode.ConnectionFailed,
              `cannot listen on ${address}: ${err.message}`,
              { cause: err },
            ),
          );
          return;
        }
        resolve({ address: address.replace(/:\d+$/, `:${port}`), port });
      });
    });
  }

  /**
   * A `unix:` address: grpc-js would create the socket file with the umask's bits, so it
   * binds a private temporary path and the file is renamed into place with `socketMode`.
   */
  async #listenUnix(
    address: string,
    creds: ReturnType<typeof serverCredentials>,
  ): Promise<BoundAddress> {
    const path = address.replace(/^unix:(\/\/)?/, '');
    const bind = (tempPath: string) =>
      new Promise<() => void>((resolve, reject) => {
        const temp = `unix:${tempPath}`;
        this.#server.bindAsync(temp, creds, (err) =>
          err ? reject(err) : resolve(() => this.#server.unbind(temp)),
        );
      });
    const file = await bindSocketFile(path, bind, {
      mode: this.#options.socketMode ?? 0o660,
      logger: { info: (message, fields) => this.#log.info?.(message, fields) },
    });
    this.#socketFiles.push(file);
    return { address, port: 0 };
  }

  /** Open ProcessStreams. */
  get connections(): number {
    return this.#sessions.size;
  }

  /** Reports health to every connected proxy (and to proxies that connect later). */
  reportHealth(state: HealthState, message?: string): void {
    this.#health = message === undefined ? { state } : { state, message };
    for (const s of this.#sessions) if (s.handshaken) this.#sendHealth(s);
  }

  #sendHealth(s: StreamSession): void {
    if (!this.#health) return;
    s.write({
      health: healthToProto(this.#agentId(), this.#health.state, this.#health.message),
    });
  }

  /** Pushes a metrics report to every connected proxy. */
  reportMetrics(report: MetricsReport): void {
    const m = metricsToProto({ ...report, agent_id: report.agent_id || this.#agentId() });
    for (const s of this.#sessions) if (s.handshaken) s.write({ metrics: m });
  }

  /** Sends a log line to every connected proxy. */
  sendLog(entry: Partial<LogMessage> & { message: string }): void {
    const m = logToProto({
      level: entry.level ?? 'info',
      message: entry.message,
      correlation_id: entry.correlation_id ?? null,
      fields: entry.fields ?? {},
      timestamp_ms: entry.timestamp_ms ?? Date.now(),
    });
    for (const s of this.#sessions) if (s.handshaken) s.write({ log: m });
  }

  /** Asks every connected proxy to pause traffic (FlowControlSignal PAUSE). */
  pause(): void {
    this.#paused = true;
    for (const s of this.#sessions) if (s.handshaken) this.#sendFlow(s);
  }

  /** Lets traffic flow again (FlowControlSignal RESUME). */
  resume(): void {
    this.#paused = false;
    for (const s of this.#sessions) if (s.handshaken) this.#sendFlow(s);
  }

  #sendFlow(s: StreamSession): void {
    s.write({ flow_control: { action: this.#paused ? 1 : 2, timestamp_ms: Date.now() } });
  }

  /**
   * Sends a config update request to the connected proxies and resolves with the first
   * answer. Only picket proxies answer (a Rust proxy hands the request to its handler and
   * sends nothing back): with none connected this rejects UNSUPPORTED after delivering it.
   */
  requestConfigUpdate(
    request: Omit<ConfigUpdateRequest, 'timestamp_ms' | 'request_id'> &
      Partial<Pick<ConfigUpdateRequest, 'timestamp_ms' | 'request_id'>>,
    o: { timeoutMs?: number } = {},
  ): Promise<ConfigUpdateResponse> {
    const req: ConfigUpdateRequest = {
      update_type: request.update_type,
      request_id:
        request.request_id ??
        `cfg-${Date.now().toString(36)}-${(++connectionCounter).toString(36)}`,
      timestamp_ms: request.timestamp_ms ?? Date.now(),
    };
    const streams = [...this.#sessions].filter((s) => s.handshaken);
    if (streams.length === 0) {
      return Promise.reject(
        new AgentProtocolError(
          ErrorCode.Unavailable,
          'no proxy is connected to ask for a config update',
        ),
      );
    }
    const msg = { config_update: configUpdateToProto(req) };
    for (const s of streams) s.write(msg);
    if (!streams.some((s) => s.picketPeer)) {
      return Promise.reject(
        new AgentProtocolError(
          ErrorCode.Unsupported,
          `config update ${req.request_id} delivered to ${streams.length} proxy stream(s) that do not answer (not picket)`,
        ),
      );
    }
    const timeoutMs = o.timeoutMs ?? this.#options.configUpdateTimeoutMs ?? 10_000;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#configUpdates.delete(req.request_id);
        reject(
          new AgentProtocolError(
            ErrorCode.Timeout,
            `no proxy answered config update ${req.request_id} within ${timeoutMs} ms`,
          ),
        );
      }, timeoutMs);
      this.#configUpdates.set(req.request_id, {
        resolve: (r) => {
          clearTimeout(timer);
          this.#configUpdates.delete(req.request_id);
          resolve(r);
        },
        reject: (e) => {
          clearTimeout(timer);
          this.#configUpdates.delete(req.request_id);
          reject(e);
        },
      });
    });
  }

  /**
   * Starts draining: reports `draining` health, tells ControlStream peers (DrainRequest),
   * and refuses new ProcessStreams and ProcessEvent calls. Existing streams keep being served.
   */
  drain(durationMs = 0): void {
    this.#draining = true;
    this.reportHealth('draining', 'agent is draining');
    this.#broadcastControl({
      drain: { duration_ms: durationMs || undefined, reason: 4, timestamp_ms: Date.now() },
    });
  }

  /**
   * Graceful close: refuses new work, announces the shutdown on ControlStreams, waits up
   * to `drainTimeoutMs` (default 5000) for in-flight events, then ends every stream and
   * stops the server.
   */
  async close(o: { drainTimeoutMs?: number } = {}): Promise<void> {
    if (this.#closed || this.#closing) return;
    this.#closing = true;
    this.#draining = true;
    const drainMs = o.drainTimeoutMs ?? 5000;
    this.#broadcastControl({
      shutdown: { reason: 1, grace_period_ms: drainMs || undefined, timestamp_ms: Date.now() },
    });
    const idle = Promise.all([...this.#sessions].map((s) => s.idle()));
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([idle, new Promise((r) => (timer = setTimeout(r, drainMs)))]);
    clearTimeout(timer);
    for (const s of this.#sessions) {
      clearTimeout(s.handshakeTimer);
      s.abortAll('agent server closing');
      s.closed = true;
      s.call.end();
    }
    for (const c of this.#controls) c.end();
    this.#rejectConfigUpdates('agent server closed');
    // Before shutting down: while the server holds the inodes, their numbers cannot be reused.
    await Promise.all(this.#socketFiles.splice(0).map((f) => f.remove()));
    await new Promise<void>((resolve) => {
      const force = setTimeout(
        () => {
          this.#server.forceShutdown();
          resolve();
        },
        Math.max(100, drainMs),
      );
      this.#server.tryShutdown(() => {
        clearTimeout(force);
        resolve();
      });
    });
    this.#closed = true;
  }

  /** Drops every connection at once (what a crash looks like to the proxy). */
  forceShutdown(): void {
    this.#closed = true;
    for (const s of this.#sessions) {
      clearTimeout(s.handshakeTimer);
      s.closed = true;
      s.abortAll('agent server shut down');
    }
    this.#rejectConfigUpdates('agent server shut down');
    for (const f of this.#socketFiles.splice(0)) void f.remove();
    this.#server.forceShutdown();
  }

  #rejectConfigUpdates(why: string): void {
    for (const p of [...this.#configUpdates.values()]) {
      p.reject(new AgentProtocolError(ErrorCode.ConnectionClosed, why));
    }
  }

  #broadcastControl(m: IProxyControl): void {
    const bytes = encodeProxyControl(m);
    for (const c of this.#controls) {
      try {
        c.write(bytes);
      } catch {
        // stream going away
      }
    }
  }

  #agentId(): string {
    try {
      return this.#handler.capabilities().agent_id;
    } catch {
      return '';
    }
  }

  // ---------------------------------------------------------------- ProcessStream

  #processStream(call: ServerDuplexStream<ProxyToAgentMsg, Buffer>): void {
    // Refused before any header is sent, so the proxy gets a plain status (Trailers-Only).
    if (this.#sessions.size >= this.#maxConnections) {
      this.#refuseOverLimit(call, 'ProcessStream', this.#sessions.size);
      return;
    }
    // Response headers first, before reading anything: the Rust proxy waits for them.
    const md = new Metadata();
    md.set(PICKET_METADATA_KEY, PICKET_GRPC_REVISION);
    call.sendMetadata(md);
    if (this.#draining) {
      call.emit('error', { code: status.UNAVAILABLE, details: 'agent is draining' });
      return;
    }
    const s = new StreamSession(call);
    this.#sessions.add(s);
    this.#log.debug?.('ProcessStream opened', { connectionId: s.id, peer: call.getPeer() });
    s.handshakeTimer = setTimeout(() => this.#handshakeTimedOut(s), this.#handshakeTimeoutMs);
    const done = (why: string) => {
      if (!this.#sessions.delete(s)) return;
      clearTimeout(s.handshakeTimer);
      s.closed = true;
      s.abortAll(why);
      this.#log.debug?.('ProcessStream closed', { connectionId: s.id, why });
    };
    call.on('data', (msg: StreamMessage | UndecodableMessage) => {
      if (msg instanceof UndecodableMessage) this.#rejectUndecodable(s, msg);
      else this.#onStreamMessage(s, msg);
    });
    call.on('end', () => {
      // the proxy half-closed: finish what is in flight, then end our side
      void s.idle().then(() => {
        if (!s.closed) call.end();
        done('proxy ended the stream');
      });
    });
    call.on('cancelled', () => done('stream cancelled'));
    call.on('error', (err: Error) => done(`stream error: ${err.message}`));
  }

  /** Answers a stream over the `maxConnections` cap with RESOURCE_EXHAUSTED, logged. */
  #refuseOverLimit(
    call: ServerDuplexStream<unknown, Buffer>,
    kind: 'ProcessStream' | 'ControlStream',
    open: number,
  ): void {
    const details = `connection limit reached: ${open} ${kind}s open (maxConnections ${this.#maxConnections})`;
    this.#log.warn?.(`refusing ${kind}: ${details}`, {
      peer: call.getPeer(),
      maxConnections: this.#maxConnections,
    });
    call.emit('error', { code: status.RESOURCE_EXHAUSTED, details });
  }

  /**
   * Ends a stream whose handshake has not completed in time (a silent peer, or a slow
   * `onHandshake`), so it cannot hold a slot of the cap for ever. Other streams are untouched.
   */
  #handshakeTimedOut(s: StreamSession): void {
    s.handshakeTimer = undefined;
    if (s.closed || s.handshaken) return;
    const details = `no handshake completed within ${this.#handshakeTimeoutMs} ms (handshakeTimeoutMs)`;
    this.#log.warn?.(`closing ProcessStream: ${details}`, {
      connectionId: s.id,
      peer: s.call.getPeer(),
    });
    s.closed = true;
    s.abortAll('handshake timeout');
    s.call.emit('error', { code: status.DEADLINE_EXCEEDED, details });
  }

  /** Ends a stream that sent bytes which are not a ProxyToAgent. */
  #rejectUndecodable(s: StreamSession, msg: UndecodableMessage): void {
    const why = msg.error instanceof Error ? msg.error.message : String(msg.error);
    this.#endInvalid(
      s,
      'undecodable ProxyToAgent message',
      { bytes: msg.size, error: why },
      `undecodable ProxyToAgent message (${msg.size} bytes): ${why}`,
    );
  }

  /**
   * A message that decoded but whose event could not be converted (no known input does
   * this): the stream ends as for undecodable bytes, rather than the exception taking the
   * process down from inside grpc-js's 'data' event.
   */
  #rejectUnusable(s: StreamSession, msg: StreamMessage, err: unknown): void {
    const why = err instanceof Error ? err.message : String(err);
    this.#endInvalid(
      s,
      'unusable event',
      { kind: msg.message, error: why },
      `unusable ${String(msg.message)} event: ${why}`,
    );
  }

  /**
   * Ends a stream with INVALID_ARGUMENT, logged: marked closed first, so no answer of a
   * handler still running is written after the status (which would keep grpc-js from
   * ever sending it).
   */
  #endInvalid(
    s: StreamSession,
    what: string,
    fields: Record<string, unknown>,
    details: string,
  ): void {
    if (s.closed) return;
    this.#log.warn?.(`closing ProcessStream: ${what}`, { connectionId: s.id, ...fields });
    s.closed = true;
    s.abortAll(what);
    s.call.emit('error', { code: status.INVALID_ARGUMENT, details });
  }

  #onStreamMessage(s: StreamSession, msg: StreamMessage): void {
    if (s.closed) return;
    switch (msg.message) {
      case 'handshake':
        void this.#onHandshake(s, msg);
        return;
      case 'ping':
        s.write({
          pong: {
            sequence: num(msg.ping?.sequence) || undefined,
            ping_timestamp_ms: num(msg.ping?.timestamp_ms) || undefined,
            timestamp_ms: Date.now(),
          },
        });
        return;
      case 'cancel': {
        const cid = msg.cancel?.correlation_id ?? '';
        const reason = cancelReasonFromGrpc(msg.cancel?.reason ?? 0);
        const set = s.inflight.get(cid);
        if (set) for (const c of set) c.abort(reason);
        // queued events of the cancelled request are dropped as well
        for (let i = s.queue.length - 1; i >= 0; i--)
          if (s.queue[i]?.cid === cid) s.queue.splice(i, 1);
        s.checkIdle();
        try {
          this.#handler.onCancel?.(cid, reason);
        } catch (err) {
          this.#log.warn?.('onCancel threw', { correlationId: cid, error: String(err) });
        }
        return;
      }
      case 'config_response': {
        const r = msg.config_response;
        if (!r) return;
        this.#configUpdates.get(r.request_id ?? '')?.resolve(configResponseFromProto(r));
        return;
      }
      default: {
        let ev: DecodedEvent | undefined;
        try {
          ev = decodeEvent(msg);
        } catch (err) {
          this.#rejectUnusable(s, msg, err);
          return;
        }
        if (!ev) {
          this.#log.debug?.('ignored empty message', { connectionId: s.id });
          return;
        }
        if (!s.handshaken) {
          // as a Rust agent: events before a successful handshake get no reply
          this.#log.warn?.('event before handshake ignored', { connectionId: s.id, type: ev.type });
          return;
        }
        s.queue.push(ev);
        this.#pump(s);
      }
    }
  }

  async #onHandshake(s: StreamSession, msg: ProxyToAgentMsg): Promise<void> {
    const request = handshakeRequestFromProto(msg.handshake ?? {});
    let decision: HandshakeDecision = { accept: true };
    try {
      if (this.#handler.onHandshake) {
        decision = await this.#handler.onHandshake({ kind: 'handshake', request });
      }
    } catch (err) {
      decision = { accept: false, error: `handshake handler failed: ${(err as Error).message}` };
    }
    if (s.closed) return; // timed out (or went away) while onHandshake ran
    const reply = this.#handshakeReply(decision);
    s.write({ handshake: reply });
    if (!decision.accept) {
      s.closed = true;
      s.call.end();
      return;
    }
    s.handshaken = true;
    clearTimeout(s.handshakeTimer);
    s.handshakeTimer = undefined;
    s.proxyId = request.proxy_id;
    if (this.#health) this.#sendHealth(s);
    if (this.#paused) this.#sendFlow(s);
  }

  #handshakeReply(decision: HandshakeDecision): IHandshakeResponse {
    const reply: IHandshakeResponse = {
      protocol_version: PROTOCOL_VERSION,
      capabilities: capabilitiesToProto(this.#handler.capabilities()),
    };
    if (decision.accept) reply.success = true;
    else reply.error = decision.error;
    return reply;
  }

  /** Starts queued events while below the concurrency limit; pauses reading when full. */
  #pump(s: StreamSession): void {
    let answered = false;
    while (s.active < this.#maxConcurrent && s.queue.length > 0) {
      const ev = s.queue.shift() as DecodedEvent;
      s.active++;
      let running: Promise<void> | undefined;
      try {
        running = this.#runEvent(s, ev);
      } catch (err) {
        running = Promise.reject(err);
      }
      if (running === undefined) {
        // answered synchronously (a handler that returned its response, not a promise)
        s.active--;
        answered = true;
        continue;
      }
      const done = (): void => {
        s.active--;
        this.#pump(s);
        s.checkIdle();
      };
      // `.then` with both outcomes instead of `.finally` (one promise less); a rejection still surfaces
      void running.then(done, (err: unknown) => {
        done();
        throw err;
      });
    }
    // backpressure through HTTP/2 flow control instead of an unbounded queue
    if (s.queue.length >= this.#maxConcurrent) s.call.pause();
    else if (s.call.isPaused()) s.call.resume();
    if (answered) s.checkIdle();
  }

  /**
   * Runs one event. A handler that returns its response directly is answered at once
   * (no promise, no bookkeeping: no cancel can arrive while it runs) and this returns
   * undefined; one that returns a promise is registered for cancellation and awaited.
   */
  #runEvent(s: StreamSession, ev: DecodedEvent): Promise<void> | undefined {
    const controller = new LazyAbort();
    const ctx: Record<string | symbol, unknown> = {
      correlationId: ev.cid,
      transport: 'grpc',
      connectionId: s.id,
      [ABORT]: controller,
    };
    if (s.proxyId !== undefined) ctx.proxyId = s.proxyId;
    Object.defineProperty(ctx, 'signal', SIGNAL_PROPERTY);
    const started = performance.now();
    const hook = this.#hook(ev);
    if (hook === undefined) {
      this.#reply(s, ev, defaultResponse(ev), started);
      return undefined;
    }
    let result: unknown;
    try {
      result = hook.call(this.#handler, ev.event, ctx as unknown as RequestContext);
    } catch (err) {
      this.#reply(s, ev, this.#handlerFailed(err, ev, s.id), started);
      return undefined;
    }
    if (isThenable(result)) return this.#awaitEvent(s, ev, controller, result, started);
    this.#reply(s, ev, this.#checked(result, ev, s.id), started);
    return undefined;
  }

  /** The rest of {@link #runEvent} for a handler that returned a promise. */
  async #awaitEvent(
    s: StreamSession,
    ev: DecodedEvent,
    controller: LazyAbort,
    pending: PromiseLike<unknown>,
    started: number,
  ): Promise<void> {
    let set = s.inflight.get(ev.cid);
    if (!set) {
      set = new Set();
      s.inflight.set(ev.cid, set);
    }
    set.add(controller);
    let response: AgentResponse;
    try {
      response = this.#checked(await pending, ev, s.id);
    } catch (err) {
      response = this.#handlerFailed(err, ev, s.id);
    }
    set.delete(controller);
    if (set.size === 0) s.inflight.delete(ev.cid);
    if (controller.aborted) return; // cancelled by the proxy: no reply
    this.#reply(s, ev, response, started);
  }

  #reply(s: StreamSession, ev: DecodedEvent, response: AgentResponse, started: number): void {
    const bytes = this.#encodeResponse(response, ev, s.id, performance.now() - started);
    if (!s.closed) {
      try {
        s.call.write(bytes);
      } catch {
        // stream going away
      }
    }
  }

  #hook(
    ev: DecodedEvent,
  ): ((e: unknown, c: RequestContext) => AgentResponse | Promise<AgentResponse>) | undefined {
    return this.#handler[HOOKS[ev.type]] as
      | ((e: unknown, c: RequestContext) => AgentResponse | Promise<AgentResponse>)
      | undefined;
  }

  /** The handler's result when it is an AgentResponse; else the error policy's answer. */
  #checked(r: unknown, ev: DecodedEvent, connectionId: string): AgentResponse {
    if (!r || typeof r !== 'object' || (r as AgentResponse).decision === undefined) {
      return this.#policy(
        new AgentProtocolError(
          ErrorCode.HandlerError,
          `${HOOKS[ev.type]} returned no AgentResponse`,
        ),
        'INVALID_RESPONSE',
        ev,
        connectionId,
      );
    }
    return r as AgentResponse;
  }

  /** A handler threw (or its promise rejected): logged, answered by the error policy. */
  #handlerFailed(err: unknown, ev: DecodedEvent, connectionId: string): AgentResponse {
    const e = AgentProtocolError.from(err, ErrorCode.HandlerError, `${HOOKS[ev.type]} failed`);
    this.#log.warn?.('handler failed', { connectionId, correlationId: ev.cid, error: e.message });
    return this.#policy(e, 'HANDLER_ERROR', ev, connectionId);
  }

  /** Runs the handler hook (missing hook ⇒ allow); failures go through the error policy. */
  async #invoke(
    ev: DecodedEvent,
    ctx: RequestContext,
    connectionId: string,
  ): Promise<AgentResponse> {
    const hook = this.#hook(ev);
    if (!hook) return defaultResponse(ev);
    try {
      return this.#checked(await hook.call(this.#handler, ev.event, ctx), ev, connectionId);
    } catch (err) {
      return this.#handlerFailed(err, ev, connectionId);
    }
  }

  #policy(
    error: AgentProtocolError,
    cause: ErrorCause,
    ev: DecodedEvent,
    connectionId: string,
  ): AgentResponse {
    const p = this.#options.errorPolicy;
    if (typeof p === 'function') {
      try {
        return p(error, { cause, eventType: ev.type, correlationId: ev.cid, connectionId });
      } catch (err) {
        this.#log.error?.('errorPolicy threw; blocking', { error: String(err) });
      }
    }
    const o = typeof p === 'object' ? p : {};
    return block(o.status ?? 500, {
      body: o.body ?? null,
      reasonCodes: [cause],
      tags: ['agent_error'],
    });
  }

  /** Encodes the reply; an unencodable or oversized answer is replaced through the error policy. */
  #encodeResponse(r: AgentResponse, ev: DecodedEvent, connectionId: string, ms: number): Buffer {
    let cause: ErrorCause;
    let error: AgentProtocolError;
    try {
      const bytes =
        encodeAgentResponseFast(r, ev.cid, ms) ??
        encodeAgentToProxy({ response: agentResponseToProto(r, ev.cid, ms) });
      if (bytes.length <= this.#maxMessageSize) return bytes;
      cause = 'RESPONSE_TOO_LARGE';
      error = new AgentProtocolError(
        ErrorCode.MessageTooLarge,
        `response to ${ev.cid} is ${bytes.length} bytes, over the ${this.#maxMessageSize}-byte limit`,
      );
    } catch (err) {
      cause = 'INVALID_RESPONSE';
      error = AgentProtocolError.from(err, ErrorCode.HandlerError, 'unusable AgentResponse');
    }
    this.#log.warn?.('handler response replaced', {
      connectionId,
      correlationId: ev.cid,
      error: error.message,
    });
    return encodeAgentToProxy({
      response: agentResponseToProto(this.#policy(error, cause, ev, connectionId), ev.cid, ms),
    });
  }

  // ---------------------------------------------------------------- ProcessEvent (unary)

  async #processEvent(
    call: ServerUnaryCall<ProxyToAgentMsg, Buffer>,
    callback: sendUnaryData<Buffer>,
  ): Promise<void> {
    const msg = call.request;
    if (this.#draining) {
      callback({ code: status.UNAVAILABLE, details: 'agent is draining' });
      return;
    }
    if (msg.message === 'handshake') {
      let decision: HandshakeDecision = { accept: true };
      try {
        if (this.#handler.onHandshake) {
          decision = await this.#handler.onHandshake({
            kind: 'handshake',
            request: handshakeRequestFromProto(msg.handshake ?? {}),
          });
        }
      } catch (err) {
        decision = { accept: false, error: `handshake handler failed: ${(err as Error).message}` };
      }
      callback(null, encodeAgentToProxy({ handshake: this.#handshakeReply(decision) }));
      return;
    }
    if (msg.message === 'ping') {
      callback(
        null,
        encodeAgentToProxy({
          pong: {
            sequence: num(msg.ping?.sequence) || undefined,
            ping_timestamp_ms: num(msg.ping?.timestamp_ms) || undefined,
            timestamp_ms: Date.now(),
          },
        }),
      );
      return;
    }
    const ev = decodeEvent(msg);
    if (!ev) {
      callback({ code: status.INVALID_ARGUMENT, details: 'Unsupported event type' });
      return;
    }
    const controller = new AbortController();
    call.on('cancelled', () => controller.abort('client_disconnect'));
    const connectionId = `grpc-unary-${++connectionCounter}`;
    const ctx: RequestContext = {
      correlationId: ev.cid,
      signal: controller.signal,
      transport: 'grpc',
      connectionId,
    };
    const started = performance.now();
    const response = await this.#invoke(ev, ctx, connectionId);
    callback(null, this.#encodeResponse(response, ev, connectionId, performance.now() - started));
  }

  // ---------------------------------------------------------------- ControlStream

  #controlStream(call: ServerDuplexStream<AgentControlMsg, Buffer>): void {
    // No handshake on this stream (a proxy may open it and stay silent): only the cap bounds it.
    if (this.#controls.size >= this.#maxConnections) {
      this.#refuseOverLimit(call, 'ControlStream', this.#controls.size);
      return;
    }
    call.sendMetadata(new Metadata());
    this.#controls.add(call);
    if (this.#draining && !this.#closing) {
      call.write(encodeProxyControl({ drain: { reason: 4, timestamp_ms: Date.now() } }));
    }
    call.on('data', (m: AgentControlMsg) => {
      if (m.message === 'config_update') {
        // as a Rust agent server does: acknowledge
        call.write(
          encodeProxyControl({
            config_response: {
              request_id: m.config_update?.request_id || undefined,
              accepted: true,
              timestamp_ms: Date.now(),
            },
          }),
        );
      } else {
        this.#log.debug?.('control message from proxy ignored', { kind: m.message });
      }
    });
    const done = () => this.#controls.delete(call);
    call.on('end', () => {
      done();
      call.end();
    });
    call.on('cancelled', done);
    call.on('error', done);
  }
}
