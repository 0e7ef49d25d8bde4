/**
 * The two role interfaces every picket package is written against:
 * `AgentTransport` (proxy side: one live connection or stream to one agent) and
 * `AgentHandler` (agent side: what an agent author implements). Every server
 * runs the same handler; every client satisfies the same transport, so pools,
 * gateways and the compliance suite never care which wire is underneath.
 */
import type { AgentProtocolError } from './errors.js';
import type {
  AgentCapabilities,
  AgentResponse,
  CancelReason,
  ConfigUpdateRequest,
  ConfigureEvent,
  EventMap,
  EventType,
  GuardrailInspectEvent,
  HandshakeRequest,
  HealthState,
  LogMessage,
  MetricsReport,
  RegistrationRequest,
  RequestBodyChunkEvent,
  RequestCompleteEvent,
  RequestHeadersEvent,
  ResponseBodyChunkEvent,
  ResponseHeadersEvent,
  TransportEncoding,
  WebSocketFrameEvent,
} from './types.js';

/**
 * Which wire carried an event; `spoe` is agent-side only (HAProxy's SPOP, @picket/spoe),
 * as is `extproc` (Envoy's ext_proc, @picket/extproc); `prox` is both sides of prox's plugin
 * protocol (a handler served as a prox plugin, or a prox plugin run by @picket/prox).
 */
export type TransportKind = 'uds' | 'grpc' | 'reverse' | 'v1' | 'spoe' | 'prox' | 'extproc';

/** Per-call options. */
export interface CallOptions {
  /** overrides the transport's default request timeout */
  timeoutMs?: number;
  /** aborting rejects the call with CANCELLED and sends a cancel to the agent */
  signal?: AbortSignal;
}

/** What an agent reported about its health (frame 0x30 / gRPC HealthStatus). */
export interface HealthReport {
  state: HealthState;
  message?: string;
}

/** Notifications a transport emits. */
export interface TransportEventMap {
  /** the agent reported its health */
  health: [report: HealthReport];
  /** the agent paused or resumed traffic on this connection */
  flowControl: [action: 'pause' | 'resume'];
  /** the agent pushed a metrics report */
  metrics: [report: MetricsReport];
  /** the agent asked for a configuration change */
  configUpdate: [request: ConfigUpdateRequest];
  /** the agent sent a log line (gRPC) */
  log: [entry: LogMessage];
  /** the connection ended; `error` says why when it was not a local close() */
  close: [error?: AgentProtocolError];
}

/** A minimal typed event-emitter surface (Node's EventEmitter satisfies it). */
export interface TypedEvents<M extends { [K in keyof M]: unknown[] }> {
  on<K extends keyof M & string>(event: K, listener: (...args: M[K]) => void): this;
  once<K extends keyof M & string>(event: K, listener: (...args: M[K]) => void): this;
  off<K extends keyof M & string>(event: K, listener: (...args: M[K]) => void): this;
}

/** Proxy side: one live connection (or gRPC stream) to one agent. */
export interface AgentTransport extends TypedEvents<TransportEventMap> {
  readonly kind: TransportKind;
  /** id from the capabilities or the registration */
  readonly agentId: string;
  readonly capabilities: AgentCapabilities;
  readonly encoding: TransportEncoding;
  /** calls sent and not yet answered */
  readonly inFlight: number;

  /**
   * Sends any event and resolves with the agent's answer; the typed `send*` methods below
   * are this with the type filled in. The event's own correlation id (RequestHeaders:
   * `metadata.correlation_id`) keys the answer; a second call with an id already in flight
   * rejects with INVALID_ARGUMENT, a call while the agent paused traffic with FLOW_CONTROL_PAUSED.
   */
  send<K extends EventType>(
    type: K,
    event: EventMap[K],
    options?: CallOptions,
  ): Promise<AgentResponse>;
  sendRequestHeaders(e: RequestHeadersEvent, o?: CallOptions): Promise<AgentResponse>;
  sendRequestBodyChunk(e: RequestBodyChunkEvent, o?: CallOptions): Promise<AgentResponse>;
  sendResponseHeaders(e: ResponseHeadersEvent, o?: CallOptions): Promise<AgentResponse>;
  sendResponseBodyChunk(e: ResponseBodyChunkEvent, o?: CallOptions): Promise<AgentResponse>;
  sendRequestComplete(e: RequestCompleteEvent, o?: CallOptions): Promise<AgentResponse>;
  sendWebSocketFrame(e: WebSocketFrameEvent, o?: CallOptions): Promise<AgentResponse>;
  sendGuardrailInspect(e: GuardrailInspectEvent, o?: CallOptions): Promise<AgentResponse>;
  sendConfigure(e: ConfigureEvent, o?: CallOptions): Promise<AgentResponse>;

  /** Tells the agent to stop working on a request and rejects its pending call with CANCELLED. */
  cancel(correlationId: string, reason?: CancelReason): Promise<void>;
  /** Cancels every pending call; resolves to how many there were. */
  cancelAll(reason?: CancelReason): Promise<number>;
  /** Round trip in milliseconds. */
  ping(o?: CallOptions): Promise<number>;
  /** Connected, not paused by flow control, not reported unhealthy or draining. */
  isHealthy(): boolean;
  /** True while the agent has paused traffic with flow control. */
  readonly paused: boolean;
  close(): Promise<void>;
}

/** Where an event came from and how to notice that it no longer matters. */
export interface RequestContext {
  /** the event's correlation id */
  readonly correlationId: string;
  /** aborts when the proxy cancels the request or the connection drops */
  readonly signal: AbortSignal;
  /** which wire carried the event */
  readonly transport: TransportKind;
  /** a stable id of the connection, for logs */
  readonly connectionId: string;
  /** the proxy's id from its handshake, when it sent one */
  readonly proxyId?: string;
}

/** What a handshake or registration hands the handler. */
export type HandshakeInfo =
  | { kind: 'handshake'; request: HandshakeRequest }
  | { kind: 'registration'; request: RegistrationRequest };

export type HandshakeDecision = { accept: true } | { accept: false; error: string };

type Hook<E> = (event: E, ctx: RequestContext) => AgentResponse | Promise<AgentResponse>;

/**
 * Agent side: what an agent author implements. Every hook is optional; an
 * event without a hook is answered with allow (a WebSocket frame with
 * `websocket_decision: "allow"`), as Rust agents do.
 */
export interface AgentHandler {
  capabilities(): AgentCapabilities;
  /** Accept or refuse a proxy's handshake; default accept. */
  onHandshake?(info: HandshakeInfo): HandshakeDecision | Promise<HandshakeDecision>;
  onRequestHeaders?: Hook<RequestHeadersEvent>;
  onRequestBodyChunk?: Hook<RequestBodyChunkEvent>;
  onResponseHeaders?: Hook<ResponseHeadersEvent>;
  onResponseBodyChunk?: Hook<ResponseBodyChunkEvent>;
  onRequestComplete?: Hook<RequestCompleteEvent>;
  onWebSocketFrame?: Hook<WebSocketFrameEvent>;
  onGuardrailInspect?: Hook<GuardrailInspectEvent>;
  onConfigure?: Hook<ConfigureEvent>;
  /** Told when the proxy cancels a request (ctx.signal aborts too). */
  onCancel?(correlationId: string, reason: CancelReason): void;
}

/** A config update request as the push API takes it: `request_id` and `timestamp_ms` are filled in when absent. */
export type ConfigUpdateInput = Omit<ConfigUpdateRequest, 'request_id' | 'timestamp_ms'> &
  Partial<Pick<ConfigUpdateRequest, 'request_id' | 'timestamp_ms'>>;

/**
 * What a running agent tells the proxies connected to it, the same on every server
 * with a control channel (UDS, gRPC, reverse; v1 has none). Each call returns how
 * many proxy connections were told. Health and pause are remembered: a proxy that
 * connects later is told a non-healthy state and a pause right after its handshake.
 */
export interface AgentPush {
  /** health report (UDS 0x30, gRPC HealthStatus) */
  reportHealth(state: HealthState, message?: string): number;
  /** asks the proxies to stop sending events (flow control pause) */
  pause(): number;
  /** lets them send again (flow control resume) */
  resume(): number;
  /** true between pause() and resume() */
  readonly paused: boolean;
  /** pushes a metrics report (UDS 0x31, gRPC MetricsReport) */
  reportMetrics(report: MetricsReport): number;
  /** asks the proxies for a configuration change (UDS 0x32, gRPC ConfigUpdateRequest) */
  requestConfigUpdate(request: ConfigUpdateInput): number;
}

/**
 * Agent side: one running server (UDS, gRPC, v1) or reverse dialer, whatever
 * the wire. `serve()` in @picket/transport builds on this.
 */
export interface AgentServer {
  /**
   * Starts accepting (or, for the reverse dialer, connects and registers).
   * Resolves to the endpoints really bound, in the endpoint grammar of
   * @picket/transport (`unix:/run/a.sock`, `grpc://127.0.0.1:5001`,
   * `grpcs://…`, `grpc+unix:/run/a.sock`, `v1+unix:/run/a.sock`; the reverse
   * dialer gives the listener it dialled, `reverse+unix:/run/p.sock` or
   * `reverse+tcp://host:port`). A port 0 comes back as the port the OS picked.
   * Rejects when nothing could be bound.
   */
  listen(): Promise<readonly string[]>;
  /**
   * Stops: refuses new connections, ends the live ones (handlers still running see
   * `ctx.signal` abort) and removes a socket file it created. Each server keeps its
   * documented grace for in-flight calls (UDS: its `drainTimeoutMs`, default 30 s;
   * gRPC: 5 s; v1 and the reverse dialer: none); call `drain(ms)` to say how long.
   * Idempotent.
   */
  close(): Promise<void>;
  /**
   * Stops accepting, tells connected proxies it is draining where the wire can
   * say so (UDS and reverse health `draining`, gRPC DrainRequest), waits up to
   * `timeoutMs` (default: the server's own) for in-flight calls, then closes.
   */
  drain(timeoutMs?: number): Promise<void>;
  /** What listen() resolved to; empty before listen() and after close(). */
  readonly endpoints: readonly string[];
}
