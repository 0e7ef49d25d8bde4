/**
 * Proxy side: `AgentClientV2`, one ProcessStream to one gRPC agent, implementing
 * `AgentTransport`. Requests are multiplexed on the stream by correlation id.
 */
import { EventEmitter } from 'node:events';
import {
  type ChannelCredentials,
  type ChannelOptions,
  Client,
  type ClientDuplexStream,
  credentials,
  Metadata,
  status,
} from '@grpc/grpc-js';
import {
  type AgentCapabilities,
  AgentProtocolError,
  type AgentResponse,
  type AgentTransport,
  agentResponse,
  CANCEL_REASONS,
  type CallOptions,
  type CancelReason,
  type ConfigUpdateRequest,
  type ConfigureEvent,
  cancelReasonToGrpc,
  DEFAULT_GRPC_MAX_MESSAGE_SIZE,
  ErrorCode,
  type EventMap,
  type EventType,
  type GuardrailInspectEvent,
  type HealthState,
  PROTOCOL_VERSION,
  type RequestBodyChunkEvent,
  type RequestCompleteEvent,
  type RequestHeadersEvent,
  type ResponseBodyChunkEvent,
  type ResponseHeadersEvent,
  type TransportEncoding,
  type TransportEventMap,
  type WebSocketFrameEvent,
  ZENTINEL_PROXY_ID,
  ZENTINEL_PROXY_VERSION,
} from '@picket/protocol';
import {
  agentResponseFromProto,
  capabilitiesFromProto,
  configResponseToProto,
  configUpdateFromProto,
  eventToProto,
  handshakeRequestToProto,
  healthFromProto,
  logFromProto,
  metricsFromProto,
  pingToProto,
} from './convert.js';
import { describeGrpcError, grpcCode, isTlsFailure, streamError } from './errors.js';
import {
  decodeAgentResponseFast,
  encodeRequestHeadersFast,
  FastAgentResponse,
} from './fast-paths.js';
import { defaultLogger, type Logger } from './logger.js';
import {
  type AgentToProxyMsg,
  agentServiceV2Definition,
  encodeProxyToAgent,
  type IProxyToAgent,
  METHOD_PATHS,
  num,
  PICKET_GRPC_REVISION,
  PICKET_METADATA_KEY,
  type ProxyControlMsg,
} from './proto.js';
import { checkReachable, parseTarget } from './target.js';
import { clientCredentials, type TlsConfig } from './tls.js';

/** What the proxy does with a call while the agent has paused traffic (flow control). */
export type FlowControlPolicy = 'fail_closed' | 'fail_open' | 'wait';

/** HTTP/2 keepalive pings on the channel. */
export interface KeepaliveOptions {
  /** interval between keepalive pings (`grpc.keepalive_time_ms`) */
  timeMs?: number;
  /** how long to wait for the ping ack before the connection counts as dead (`grpc.keepalive_timeout_ms`) */
  timeoutMs?: number;
  /** ping even with no call active (`grpc.keepalive_permit_without_calls`) */
  permitWithoutCalls?: boolean;
}

/** Options of {@link AgentClientV2.connect}. */
export interface AgentClientV2Options {
  /** default per-call timeout in ms (default 30 000) */
  timeoutMs?: number;
  /** connect + handshake budget in ms (default: `timeoutMs`) */
  connectTimeoutMs?: number;
  /** `proxy_id` in the handshake (default `zentinel-proxy`, like the Rust proxy) */
  proxyId?: string;
  /** `proxy_version` in the handshake (default `0.6.20`) */
  proxyVersion?: string;
  /** sent as the handshake's `config_json` (default `{}`) */
  config?: unknown;
  /**
   * While the agent has paused traffic: `fail_closed` (default) rejects with
   * FLOW_CONTROL_PAUSED; `fail_open` answers allow tagged `flow_control_fail_open`
   * without contacting the agent; `wait` waits up to `flowControlWaitMs`, then fails closed.
   * Applies to request headers, request/response body chunks and guardrail events.
   */
  flowControl?: FlowControlPolicy;
  /** how long `flowControl: 'wait'` waits for a resume (default 100 ms, like Rust) */
  flowControlWaitMs?: number;
  /** also open the ControlStream (default true); an agent without it is tolerated */
  controlStream?: boolean;
  /** max message size in bytes, both directions (default 4 MiB, tonic's default) */
  maxMessageSize?: number;
  /** HTTP/2 keepalive (off unless set) */
  keepalive?: KeepaliveOptions;
  /** extra grpc-js channel options (applied last) */
  channelOptions?: ChannelOptions;
  /**
   * Answers a picket agent's config update request (sent back on the stream). Default:
   * accepted when at least one `configUpdate` listener is registered.
   */
  onConfigUpdate?(
    request: ConfigUpdateRequest,
  ):
    | { accepted: boolean; error?: string | null }
    | Promise<{ accepted: boolean; error?: string | null }>;
  logger?: Logger;
}

/** Node's setTimeout turns a delay outside 1 ms … 2^31-1 ms into 1 ms; calls keep that meaning. */
const MAX_TIMER_DELAY = 2_147_483_647;

/** The timeout a call gets for `timeoutMs`, with setTimeout's rules for odd values. */
function timerDelay(ms: number): number {
  return ms >= 1 && ms <= MAX_TIMER_DELAY ? ms : 1;
}

/**
 * One call waiting for its answer. A class (not closures) because there is one per call;
 * its timeout is a deadline checked by the transport's single timer (see `#armTimer`).
 */
class Pending {
  /** the abort listener, when the call has a signal */
  onAbort: (() => void) | undefined;

  constructor(
    readonly owner: Map<string, Pending>,
    readonly type: EventType,
    readonly cid: string,
    /** `performance.now()` value after which the call times out */
    readonly deadline: number,
    readonly timeoutMs: number,
    readonly signal: AbortSignal | undefined,
    readonly settle: (r: AgentResponse) => void,
    readonly fail: (e: AgentProtocolError) => void,
  ) {}

  cleanup(): void {
    if (this.onAbort !== undefined) this.signal?.removeEventListener('abort', this.onAbort);
    if (this.owner.get(this.cid) === this) this.owner.delete(this.cid);
  }

  resolve(r: AgentResponse): void {
    this.cleanup();
    this.settle(r);
  }

  reject(e: AgentProtocolError): void {
    this.cleanup();
    this.fail(e);
  }
}

interface PendingPing {
  started: number;
  resolve(ms: number): void;
  reject(e: AgentProtocolError): void;
  cleanup(): void;
}

const GATED: ReadonlySet<EventType> = new Set<EventType>([
  'request_headers',
  'request_body_chunk',
  'response_body_chunk',
  'guardrail_inspect',
]);

const passThrough = (b: Buffer): Buffer => b;
const decodeAgentToProxy = agentServiceV2Definition.ProcessStream.responseDeserialize;
/** What the ProcessStream delivers: a plain response read in one pass, or any other message. */
type StreamMessage = AgentToProxyMsg | FastAgentResponse;
/** The one-pass reader for plain responses; protobufjs (same errors as before) for the rest. */
const decodeStreamMessage = (b: Buffer): StreamMessage =>
  decodeAgentResponseFast(b) ?? decodeAgentToProxy(b);
const decodeProxyControl = agentServiceV2Definition.ControlStream.responseDeserialize;

function correlationIdOf(type: EventType, event: EventMap[EventType]): string {
  return type === 'request_headers'
    ? (event as RequestHeadersEvent).metadata.correlation_id
    : (event as { correlation_id: string }).correlation_id;
}

function isCancelReason(v: unknown): v is CancelReason {
  return typeof v === 'string' && (CANCEL_REASONS as readonly string[]).includes(v);
}

/**
 * gRPC transport to one agent (`zentinel.agent.v2.AgentServiceV2/ProcessStream`).
 * Create it with {@link AgentClientV2.connect} or {@link AgentClientV2.connectWithTls}.
 */
export class AgentClientV2 extends EventEmitter implements AgentTransport {
  readonly kind = 'grpc' as const;
  /** gRPC messages are protobuf. */
  readonly encoding: TransportEncoding = 'protobuf';
  readonly agentId: string;
  /** the target grpc-js dialled */
  readonly target: string;
  #capabilities: AgentCapabilities | undefined;
  #protocolVersion = PROTOCOL_VERSION;
  readonly #client: Client;
  readonly #options: AgentClientV2Options;
  readonly #log: Logger;
  readonly #timeoutMs: number;
  readonly #maxMessageSize: number;
  readonly #pending = new Map<string, Pending>();
  /** one timer for every call's timeout, armed for the earliest deadline */
  #timer: NodeJS.Timeout | undefined;
  #timerAt = Number.POSITIVE_INFINITY;
  readonly #pings = new Map<number, PendingPing>();
  #seq = 0;
  #call: ClientDuplexStream<Buffer, StreamMessage> | undefined;
  #control: ClientDuplexStream<Buffer, ProxyControlMsg> | undefined;
  #peerIsPicket = false;
  #paused = false;
  readonly #resumeWaiters = new Set<() => void>();
  #health: HealthState | undefined;
  #draining = false;
  #closed = false;

  private constructor(
    agentId: string,
    target: string,
    client: Client,
    options: AgentClientV2Options,
  ) {
    super();
    this.agentId = agentId;
    this.target = target;
    this.#client = client;
    this.#options = options;
    this.#log = options.logger ?? defaultLogger;
    this.#timeoutMs = options.timeoutMs ?? 30_000;
    this.#maxMessageSize = options.maxMessageSize ?? DEFAULT_GRPC_MAX_MESSAGE_SIZE;
  }

  /**
   * Connects over plaintext (or TLS with the system roots for an `https://` / `grpcs://`
   * endpoint), opens the ProcessStream and performs the handshake.
   * Rejects with CONNECTION_FAILED, HANDSHAKE_FAILED or TIMEOUT.
   */
  static async connect(
    agentId: string,
    target: string,
    options: AgentClientV2Options = {},
  ): Promise<AgentClientV2> {
    const parsed = parseTarget(target);
    const creds = parsed.tls ? credentials.createSsl() : credentials.createInsecure();
    return AgentClientV2.#open(agentId, parsed.target, creds, parsed.tls === true, options);
  }

  /**
   * Connects over TLS (mTLS when a client certificate and key are given). A scheme prefix
   * on `target` is stripped; TLS is used whatever it says.
   */
  static async connectWithTls(
    agentId: string,
    target: string,
    tls: TlsConfig,
    options: AgentClientV2Options = {},
  ): Promise<AgentClientV2> {
    const parsed = parseTarget(target);
    const channelOptions: ChannelOptions = {};
    if (tls.serverNameOverride) {
      channelOptions['grpc.ssl_target_name_override'] = tls.serverNameOverride;
      channelOptions['grpc.default_authority'] = tls.serverNameOverride;
    }
    return AgentClientV2.#open(agentId, parsed.target, clientCredentials(tls), true, {
      ...options,
      channelOptions: { ...channelOptions, ...options.channelOptions },
    });
  }

  static async #open(
    agentId: string,
    target: string,
    creds: ChannelCredentials,
    tls: boolean,
    options: AgentClientV2Options,
  ): Promise<AgentClientV2> {
    const max = options.maxMessageSize ?? DEFAULT_GRPC_MAX_MESSAGE_SIZE;
    const channelOptions: ChannelOptions = {
      'grpc.max_receive_message_length': max,
      'grpc.max_send_message_length': max,
    };
    const ka = options.keepalive;
    if (ka?.timeMs !== undefined) channelOptions['grpc.keepalive_time_ms'] = ka.timeMs;
    if (ka?.timeoutMs !== undefined) channelOptions['grpc.keepalive_timeout_ms'] = ka.timeoutMs;
    if (ka?.permitWithoutCalls !== undefined) {
      channelOptions['grpc.keepalive_permit_without_calls'] = ka.permitWithoutCalls ? 1 : 0;
    }
    // grpc-js (1.14) leaks a connection when a channel is closed while its subchannel waits
    // to retry: once the agent is back, the orphaned subchannel connects and stays open. So a
    // connect to an agent that is down must fail before grpc-js is involved.
    await checkReachable(
      target,
      `agent ${agentId} at ${target}${tls ? ' (TLS)' : ''}`,
      options.connectTimeoutMs ?? options.timeoutMs ?? 30_000,
    );
    let client: Client;
    try {
      client = new Client(target, creds, { ...channelOptions, ...options.channelOptions });
    } catch (err) {
      throw new AgentProtocolError(
        ErrorCode.ConnectionFailed,
        `agent ${agentId}: invalid gRPC target ${JSON.stringify(target)}: ${(err as Error).message}`,
        { cause: err },
      );
    }
    const transport = new AgentClientV2(agentId, target, client, options);
    try {
      await transport.#handshake(tls, options.connectTimeoutMs ?? options.timeoutMs ?? 30_000);
    } catch (err) {
      transport.#closed = true;
      transport.#call?.cancel();
      client.close();
      throw err;
    }
    if (options.controlStream !== false) transport.#openControlStream();
    return transport;
  }

  /** Opens the ProcessStream, sends the handshake at once and waits for the agent's answer. */
  #handshake(tls: boolean, timeoutMs: number): Promise<void> {
    const where = `agent ${this.agentId} at ${this.target}${tls ? ' (TLS)' : ''}`;
    const md = new Metadata();
    md.set(PICKET_METADATA_KEY, PICKET_GRPC_REVISION);
    const call = this.#client.makeBidiStreamRequest(
      METHOD_PATHS.ProcessStream,
      passThrough,
      decodeStreamMessage,
      md,
      {},
    );
    this.#call = call;
    // errors are handled by the listeners below; this one keeps a late error (e.g. after
    // our own cancel()) from becoming an uncaught exception
    call.on('error', () => undefined);
    call.on('metadata', (m: Metadata) => {
      this.#peerIsPicket = m.get(PICKET_METADATA_KEY).length > 0;
    });
    return new Promise<void>((resolve, reject) => {
      let settled = false;
      const finish = (err?: AgentProtocolError) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        call.off('data', onData);
        call.off('error', onError);
        call.off('end', onEnd);
        if (err) reject(err);
        else resolve();
      };
      const timer = setTimeout(
        () =>
          finish(
            new AgentProtocolError(
              ErrorCode.Timeout,
              `${where}: no handshake answer within ${timeoutMs} ms`,
            ),
          ),
        timeoutMs,
      );
      const onData = (msg: StreamMessage) => {
        if (msg instanceof FastAgentResponse || msg.message !== 'handshake' || !msg.handshake) {
          finish(
            new AgentProtocolError(
              ErrorCode.HandshakeFailed,
              `${where}: expected a handshake answer first, got ${msg.message ?? 'an empty message'}`,
            ),
          );
          return;
        }
        const hs = msg.handshake;
        if (!hs.success) {
          finish(
            new AgentProtocolError(
              ErrorCode.HandshakeFailed,
              `${where} refused the handshake: ${hs.error || 'no reason given'}`,
            ),
          );
          return;
        }
        this.#capabilities = capabilitiesFromProto(hs.capabilities);
        this.#protocolVersion = hs.protocol_version || PROTOCOL_VERSION;
        this.#attach(call);
        finish();
      };
      const onError = (err: unknown) => {
        const code = grpcCode(err);
        const text = describeGrpcError(err);
        let message = `cannot connect to ${where}: ${text}`;
        if (code === status.UNIMPLEMENTED)
          message = `${where} does not serve ProcessStream: ${text}`;
        else if (tls && isTlsFailure(err)) message = `TLS handshake with ${where} failed: ${text}`;
        else if (tls) message = `cannot connect to ${where} (TLS/certificate problem?): ${text}`;
        finish(new AgentProtocolError(ErrorCode.ConnectionFailed, message, { cause: err }));
      };
      const onEnd = () =>
        finish(
          new AgentProtocolError(
            ErrorCode.HandshakeFailed,
            `${where} ended the stream before answering the handshake`,
          ),
        );
      call.on('data', onData);
      call.on('error', onError);
      call.on('end', onEnd);
      // The Rust proxy waits for response headers first; we do not (an agent that only
      // sends them after the first message would otherwise deadlock us).
      call.write(
        encodeProxyToAgent({
          handshake: handshakeRequestToProto({
            supported_versions: [2, 1],
            proxy_id: this.#options.proxyId ?? ZENTINEL_PROXY_ID,
            proxy_version: this.#options.proxyVersion ?? ZENTINEL_PROXY_VERSION,
            config: this.#options.config ?? {},
            supported_encodings: [],
          }),
        }),
      );
    });
  }

  /** Steady-state listeners of the ProcessStream. */
  #attach(call: ClientDuplexStream<Buffer, StreamMessage>): void {
    call.on('data', (msg: StreamMessage) => {
      if (msg instanceof FastAgentResponse) this.#onFastResponse(msg);
      else this.#onMessage(msg);
    });
    call.on('error', (err: unknown) => {
      if (this.#closed) return;
      this.#fail(streamError(err, `agent ${this.agentId}`));
    });
    call.on('end', () => {
      if (this.#closed) return;
      this.#fail(
        new AgentProtocolError(
          ErrorCode.ConnectionClosed,
          `agent ${this.agentId} ended the ProcessStream`,
        ),
      );
    });
  }

  /** A response the one-pass reader already converted. */
  #onFastResponse(msg: FastAgentResponse): void {
    const p = this.#pending.get(msg.correlationId);
    if (p === undefined) {
      this.#log.debug?.('response for no pending call (late or cancelled)', {
        agentId: this.agentId,
        correlationId: msg.correlationId,
      });
      return;
    }
    p.resolve(msg.response);
  }

  #onMessage(msg: AgentToProxyMsg): void {
    switch (msg.message) {
      case 'response': {
        const r = msg.response;
        if (!r) return;
        const p = this.#pending.get(r.correlation_id ?? '');
        if (!p) {
          this.#log.debug?.('response for no pending call (late or cancelled)', {
            agentId: this.agentId,
            correlationId: r.correlation_id,
          });
          return;
        }
        let response: AgentResponse;
        try {
          response = agentResponseFromProto(r);
        } catch (err) {
          p.reject(AgentProtocolError.from(err, ErrorCode.InvalidMessage, `agent ${this.agentId}`));
          return;
        }
        p.resolve(response);
        return;
      }
      case 'pong': {
        const seq = num(msg.pong?.sequence);
        const p = this.#pings.get(seq);
        if (p) p.resolve(performance.now() - p.started);
        return;
      }
      case 'health': {
        if (!msg.health) return;
        const report = healthFromProto(msg.health);
        if (!report) return;
        this.#health = report.state;
        this.emit('health', report);
        return;
      }
      case 'flow_control': {
        const action = msg.flow_control?.action;
        if (action === 1) this.#setPaused(true);
        else if (action === 2) this.#setPaused(false);
        // UPDATE_CAPACITY / unspecified: nothing to do
        return;
      }
      case 'metrics':
        if (msg.metrics) {
          this.emit('metrics', metricsFromProto(msg.metrics, this.agentId));
        }
        return;
      case 'config_update':
        if (msg.config_update) {
          const req = configUpdateFromProto(msg.config_update);
          if (req) void this.#onConfigUpdate(req);
        }
        return;
      case 'log':
        if (msg.log) this.emit('log', logFromProto(msg.log));
        return;
      default:
        this.#log.debug?.('ignored message from agent', {
          agentId: this.agentId,
          kind: msg.message,
        });
    }
  }

  async #onConfigUpdate(req: ConfigUpdateRequest): Promise<void> {
    const hadListeners = this.listenerCount('configUpdate') > 0;
    this.emit('configUpdate', req);
    if (!this.#peerIsPicket) return; // a Rust agent expects no answer (and has no field for one)
    let verdict: { accepted: boolean; error?: string | null };
    try {
      verdict = this.#options.onConfigUpdate
        ? await this.#options.onConfigUpdate(req)
        : hadListeners
          ? { accepted: true }
          : { accepted: false, error: 'the proxy has no config update handler' };
    } catch (err) {
      verdict = { accepted: false, error: (err as Error).message ?? String(err) };
    }
    this.#write({
      config_response: configResponseToProto({
        request_id: req.request_id,
        accepted: verdict.accepted,
        error: verdict.error ?? null,
        timestamp_ms: Date.now(),
      }),
    });
  }

  #setPaused(paused: boolean): void {
    if (this.#paused === paused) return;
    this.#paused = paused;
    this.emit('flowControl', paused ? 'pause' : 'resume');
    if (!paused) {
      for (const wake of this.#resumeWaiters) wake();
      this.#resumeWaiters.clear();
    }
  }

  #openControlStream(): void {
    const md = new Metadata();
    md.set(PICKET_METADATA_KEY, PICKET_GRPC_REVISION);
    const control = this.#client.makeBidiStreamRequest(
      METHOD_PATHS.ControlStream,
      passThrough,
      decodeProxyControl,
      md,
      {},
    );
    this.#control = control;
    control.on('data', (m: ProxyControlMsg) => {
      switch (m.message) {
        case 'drain':
          this.#draining = true;
          this.#health = 'draining';
          this.emit('health', { state: 'draining', message: 'agent is draining' });
          return;
        case 'shutdown':
          void this.#agentShutdown(num(m.shutdown?.grace_period_ms));
          return;
        default:
          // `configure` heartbeats (Rust agents) and config responses need no action
          this.#log.debug?.('control message from agent', {
            agentId: this.agentId,
            kind: m.message,
          });
      }
    });
    control.on('error', (err: unknown) => {
      if (this.#closed) return;
      if (grpcCode(err) === status.UNIMPLEMENTED) {
        this.#log.debug?.('agent has no ControlStream', { agentId: this.agentId });
      } else {
        this.#log.debug?.('ControlStream ended', {
          agentId: this.agentId,
          error: describeGrpcError(err),
        });
      }
    });
    control.on('end', () => undefined);
  }

  /** The agent announced a shutdown: take no new work, let in-flight calls finish, then close. */
  async #agentShutdown(graceMs: number): Promise<void> {
    this.#draining = true;
    const deadline = Date.now() + Math.min(graceMs || 0, this.#timeoutMs);
    while (this.#pending.size > 0 && Date.now() < deadline && !this.#closed) {
      await new Promise((r) => setTimeout(r, 10));
    }
    this.#fail(
      new AgentProtocolError(ErrorCode.ConnectionClosed, `agent ${this.agentId} shut down`),
    );
  }

  // ---------------------------------------------------------------- AgentTransport

  get capabilities(): AgentCapabilities {
    if (!this.#capabilities) throw new AgentProtocolError(ErrorCode.Internal, 'not connected');
    return this.#capabilities;
  }

  /** Protocol version the agent reported in its handshake. */
  get protocolVersion(): number {
    return this.#protocolVersion;
  }

  /** True when the agent advertised picket extensions (guardrail, configure replies …). */
  get peerIsPicket(): boolean {
    return this.#peerIsPicket;
  }

  get inFlight(): number {
    return this.#pending.size;
  }

  get paused(): boolean {
    return this.#paused;
  }

  /** True once closed (locally or because the stream failed). */
  get closed(): boolean {
    return this.#closed;
  }

  isHealthy(): boolean {
    return (
      !this.#closed &&
      !this.#paused &&
      !this.#draining &&
      this.#health !== 'unhealthy' &&
      this.#health !== 'draining'
    );
  }

  sendRequestHeaders(e: RequestHeadersEvent, o?: CallOptions): Promise<AgentResponse> {
    return this.#send('request_headers', e, o);
  }
  sendRequestBodyChunk(e: RequestBodyChunkEvent, o?: CallOptions): Promise<AgentResponse> {
    return this.#send('request_body_chunk', e, o);
  }
  sendResponseHeaders(e: ResponseHeadersEvent, o?: CallOptions): Promise<AgentResponse> {
    return this.#send('response_headers', e, o);
  }
  sendResponseBodyChunk(e: ResponseBodyChunkEvent, o?: CallOptions): Promise<AgentResponse> {
    return this.#send('response_body_chunk', e, o);
  }
  sendRequestComplete(e: RequestCompleteEvent, o?: CallOptions): Promise<AgentResponse> {
    return this.#send('request_complete', e, o);
  }
  sendWebSocketFrame(e: WebSocketFrameEvent, o?: CallOptions): Promise<AgentResponse> {
    return this.#send('web_socket_frame', e, o);
  }
  /**
   * Guardrail inspection. Only picket agents answer it over gRPC (a Rust agent server
   * never replies), so towards other agents this rejects with UNSUPPORTED.
   */
  sendGuardrailInspect(e: GuardrailInspectEvent, o?: CallOptions): Promise<AgentResponse> {
    return this.#send('guardrail_inspect', e, o);
  }
  /**
   * Configuration push. A picket agent answers it; a Rust agent ignores configure events,
   * so towards it the event is sent and the call resolves at once with allow tagged
   * `configure_unacknowledged`.
   */
  sendConfigure(e: ConfigureEvent, o?: CallOptions): Promise<AgentResponse> {
    return this.#send('configure', e, o);
  }

  /**
   * Sends an event and waits for its answer. Not `async`: the common path costs one
   * promise; a synchronous failure still comes back as a rejected promise.
   */
  #send<K extends EventType>(
    type: K,
    event: EventMap[K],
    o: CallOptions | undefined,
  ): Promise<AgentResponse> {
    try {
      const cid = correlationIdOf(type, event);
      if (this.#closed) {
        throw new AgentProtocolError(
          ErrorCode.ConnectionClosed,
          `agent ${this.agentId}: transport closed (${type} ${cid})`,
        );
      }
      if (this.#draining) {
        throw new AgentProtocolError(
          ErrorCode.Unavailable,
          `agent ${this.agentId} is draining; ${type} ${cid} not sent`,
        );
      }
      if (o?.signal?.aborted) {
        throw new AgentProtocolError(ErrorCode.Cancelled, `${type} ${cid}: signal already aborted`);
      }
      if (this.#paused && GATED.has(type)) return this.#sendWhilePaused(type, event, cid, o);
      return this.#dispatch(type, event, cid, o);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** The flow-control policy for a gated event while the agent has paused traffic. */
  async #sendWhilePaused<K extends EventType>(
    type: K,
    event: EventMap[K],
    cid: string,
    o: CallOptions | undefined,
  ): Promise<AgentResponse> {
    const policy = this.#options.flowControl ?? 'fail_closed';
    if (policy === 'fail_open') {
      return agentResponse('allow', { tags: ['flow_control_fail_open'] });
    }
    if (policy === 'wait') await this.#waitForResume(this.#options.flowControlWaitMs ?? 100);
    if (this.#paused) {
      throw new AgentProtocolError(
        ErrorCode.FlowControlPaused,
        `agent ${this.agentId} paused traffic; ${type} ${cid} not sent`,
      );
    }
    if (this.#closed) {
      throw new AgentProtocolError(ErrorCode.ConnectionClosed, `agent ${this.agentId}: closed`);
    }
    return this.#dispatch(type, event, cid, o);
  }

  /** Encodes, registers and writes a call (throws synchronously when it cannot be sent). */
  #dispatch<K extends EventType>(
    type: K,
    event: EventMap[K],
    cid: string,
    o: CallOptions | undefined,
  ): Promise<AgentResponse> {
    if (type === 'guardrail_inspect' && !this.#peerIsPicket) {
      throw new AgentProtocolError(
        ErrorCode.Unsupported,
        `agent ${this.agentId} is not a picket agent; gRPC agents of the Rust crate never answer guardrail events`,
      );
    }
    if (this.#pending.has(cid)) {
      throw new AgentProtocolError(
        ErrorCode.InvalidArgument,
        `agent ${this.agentId}: correlation id ${JSON.stringify(cid)} is already in flight`,
      );
    }
    const bytes =
      (type === 'request_headers'
        ? encodeRequestHeadersFast(event as RequestHeadersEvent)
        : undefined) ?? encodeProxyToAgent(eventToProto(type, event));
    if (bytes.length > this.#maxMessageSize) {
      throw new AgentProtocolError(
        ErrorCode.MessageTooLarge,
        `agent ${this.agentId}: ${type} ${cid} is ${bytes.length} bytes, over the ${this.#maxMessageSize}-byte gRPC message limit`,
      );
    }
    if (type === 'configure' && !this.#peerIsPicket) {
      this.#call?.write(bytes);
      return Promise.resolve(agentResponse('allow', { tags: ['configure_unacknowledged'] }));
    }
    let settle!: (r: AgentResponse) => void;
    let fail!: (e: AgentProtocolError) => void;
    const promise = new Promise<AgentResponse>((resolve, reject) => {
      settle = resolve;
      fail = reject;
    });
    const timeoutMs = o?.timeoutMs ?? this.#timeoutMs;
    const deadline = performance.now() + timerDelay(timeoutMs);
    const signal = o?.signal;
    const pending = new Pending(
      this.#pending,
      type,
      cid,
      deadline,
      timeoutMs,
      signal,
      settle,
      fail,
    );
    this.#pending.set(cid, pending);
    if (signal !== undefined) {
      pending.onAbort = () => this.#abortCall(pending);
      signal.addEventListener('abort', pending.onAbort, { once: true });
    }
    this.#armTimer(deadline);
    this.#call?.write(bytes);
    return promise;
  }

  /** Arms the shared timeout timer unless it already fires at or before `deadline`. */
  #armTimer(deadline: number, now = performance.now()): void {
    if (deadline >= this.#timerAt) return;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timerAt = deadline;
    // whole ms, rounded up: timers truncate fractions and would fire early
    const delay = Math.min(Math.max(1, Math.ceil(deadline - now)), MAX_TIMER_DELAY);
    this.#timer = setTimeout(this.#onTimer, delay);
  }

  /**
   * The timer armed for the earliest deadline fired: every call due by then (1 ms of slack
   * groups near-equal deadlines) times out, as its own setTimeout would have. The timer's
   * firing is the clock here, not a fresh reading, so fake timers drive it too.
   */
  readonly #onTimer = (): void => {
    const due = this.#timerAt + 1;
    const now = Math.max(performance.now(), this.#timerAt);
    this.#timer = undefined;
    this.#timerAt = Number.POSITIVE_INFINITY;
    let next = Number.POSITIVE_INFINITY;
    for (const p of this.#pending.values()) {
      if (p.deadline <= due) {
        p.reject(
          new AgentProtocolError(
            ErrorCode.Timeout,
            `agent ${this.agentId} did not answer ${p.type} ${p.cid} within ${p.timeoutMs} ms`,
          ),
        );
        this.#writeCancel(p.cid, 'timeout');
      } else if (p.deadline < next) next = p.deadline;
    }
    if (next !== Number.POSITIVE_INFINITY) this.#armTimer(next, now);
  };

  /** The call's signal fired: reject it and tell the agent. */
  #abortCall(p: Pending): void {
    if (this.#pending.get(p.cid) !== p) return;
    const reason = isCancelReason(p.signal?.reason) ? p.signal.reason : 'client_disconnect';
    p.reject(
      new AgentProtocolError(ErrorCode.Cancelled, `${p.type} ${p.cid} cancelled by its signal`),
    );
    this.#writeCancel(p.cid, reason);
  }

  #waitForResume(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        this.#resumeWaiters.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      this.#resumeWaiters.add(wake);
    });
  }

  #write(m: IProxyToAgent): void {
    if (this.#closed || !this.#call) return;
    try {
      this.#call.write(encodeProxyToAgent(m));
    } catch (err) {
      this.#log.warn?.('write to agent failed', { agentId: this.agentId, error: String(err) });
    }
  }

  #writeCancel(cid: string, reason: CancelReason): void {
    this.#write({
      cancel: { correlation_id: cid, reason: cancelReasonToGrpc(reason), timestamp_ms: Date.now() },
    });
  }

  async cancel(correlationId: string, reason: CancelReason = 'manual'): Promise<void> {
    this.#writeCancel(correlationId, reason);
    this.#pending
      .get(correlationId)
      ?.reject(
        new AgentProtocolError(ErrorCode.Cancelled, `${correlationId} cancelled (${reason})`),
      );
  }

  async cancelAll(reason: CancelReason = 'manual'): Promise<number> {
    const ids = [...this.#pending.keys()];
    for (const id of ids) await this.cancel(id, reason);
    return ids.length;
  }

  ping(o: CallOptions = {}): Promise<number> {
    if (this.#closed) {
      return Promise.reject(
        new AgentProtocolError(
          ErrorCode.ConnectionClosed,
          `agent ${this.agentId}: transport closed`,
        ),
      );
    }
    const seq = this.#seq++;
    return new Promise<number>((resolve, reject) => {
      const timeoutMs = o.timeoutMs ?? this.#timeoutMs;
      const timer = setTimeout(
        () =>
          p.reject(
            new AgentProtocolError(
              ErrorCode.Timeout,
              `agent ${this.agentId} did not answer ping ${seq} within ${timeoutMs} ms`,
            ),
          ),
        timeoutMs,
      );
      const onAbort = () =>
        p.reject(
          new AgentProtocolError(ErrorCode.Cancelled, `ping ${seq} cancelled by its signal`),
        );
      const p: PendingPing = {
        started: performance.now(),
        cleanup: () => {
          clearTimeout(timer);
          o.signal?.removeEventListener('abort', onAbort);
          this.#pings.delete(seq);
        },
        resolve: (ms) => {
          p.cleanup();
          resolve(ms);
        },
        reject: (e) => {
          p.cleanup();
          reject(e);
        },
      };
      this.#pings.set(seq, p);
      o.signal?.addEventListener('abort', onAbort, { once: true });
      this.#write(pingToProto(seq));
    });
  }

  /** Rejects every pending call with `err`, tears the channel down and emits 'close'. */
  #fail(err: AgentProtocolError | undefined): void {
    if (this.#closed) return;
    this.#closed = true;
    const reason =
      err ?? new AgentProtocolError(ErrorCode.ConnectionClosed, `agent ${this.agentId}: closed`);
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#timerAt = Number.POSITIVE_INFINITY;
    for (const p of [...this.#pending.values()]) p.reject(reason);
    for (const p of [...this.#pings.values()]) p.reject(reason);
    for (const wake of this.#resumeWaiters) wake();
    this.#resumeWaiters.clear();
    this.#control?.cancel();
    this.#call?.cancel();
    this.#client.close();
    this.emit('close', err);
  }

  /** Rejects pending calls with CONNECTION_CLOSED and closes the channel. */
  async close(): Promise<void> {
    this.#fail(undefined);
  }

  // typed EventEmitter surface
  override on<K extends keyof TransportEventMap & string>(
    event: K,
    listener: (...args: TransportEventMap[K]) => void,
  ): this {
    return super.on(event, listener as (...args: unknown[]) => void);
  }
  override once<K extends keyof TransportEventMap & string>(
    event: K,
    listener: (...args: TransportEventMap[K]) => void,
  ): this {
    return super.once(event, listener as (...args: unknown[]) => void);
  }
  override off<K extends keyof TransportEventMap & string>(
    event: K,
    listener: (...args: TransportEventMap[K]) => void,
  ): this {
    return super.off(event, listener as (...args: unknown[]) => void);
  }
}
