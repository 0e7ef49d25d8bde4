/**
 * Proxy side: `AgentClientV2`, one ProcessStream to one gRPC agent, implementing
 * `AgentTransport`. Requests are multiplexed on the stream by correlation id; the pending
 * calls, deadlines, signals and cancels are the call engine every picket transport shares.
 */
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
  type AgentEvent,
  AgentProtocolError,
  type AgentResponse,
  type AgentTransport,
  agentResponse,
  type CallOptions,
  type CancelReason,
  type ConfigUpdateRequest,
  cancelReasonToGrpc,
  DEFAULT_GRPC_MAX_MESSAGE_SIZE,
  ErrorCode,
  type EventMap,
  type EventType,
  type HealthState,
  PROTOCOL_VERSION,
  type RequestHeadersEvent,
  type TlsOptions,
  type TransportEncoding,
} from '@picket/protocol';
import {
  AgentTransportBase,
  CallEngine,
  type SinkCall,
  type SinkSender,
  sendInto,
  withSent,
} from '@picket/protocol/internal';
import { openProcessStream, passThrough, type StreamMessage } from './client-handshake.js';
import { type AgentClientV2Options, channelOptionsFor } from './client-options.js';
import {
  agentResponseFromProto,
  configResponseToProto,
  configUpdateFromProto,
  eventToProto,
  healthFromProto,
  logFromProto,
  metricsFromProto,
  pingToProto,
} from './convert.js';
import { describeGrpcError, grpcCode, streamError } from './errors.js';
import { encodeRequestHeadersFast, FastAgentResponse } from './fast-paths.js';
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
import { clientCredentials } from './tls.js';

export type { AgentClientV2Options, KeepaliveOptions } from './client-options.js';

interface PendingPing {
  started: number;
  resolve(ms: number): void;
  reject(e: AgentProtocolError): void;
  cleanup(): void;
}

/** Event types refused while the agent has paused traffic (as Rust's pool gates them). */
const GATED: ReadonlySet<EventType> = new Set<EventType>([
  'request_headers',
  'request_body_chunk',
  'response_body_chunk',
  'guardrail_inspect',
]);

const decodeProxyControl = agentServiceV2Definition.ControlStream.responseDeserialize;

function correlationIdOf(type: EventType, event: EventMap[EventType]): string {
  return type === 'request_headers'
    ? (event as RequestHeadersEvent).metadata.correlation_id
    : (event as { correlation_id: string }).correlation_id;
}

/**
 * gRPC transport to one agent (`zentinel.agent.v2.AgentServiceV2/ProcessStream`).
 * Create it with {@link AgentClientV2.connect} or {@link AgentClientV2.connectWithTls}.
 */
export class AgentClientV2 extends AgentTransportBase implements AgentTransport, SinkSender {
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
  /** pending calls, their one deadline timer, signals, cancels, the paused state */
  readonly #calls: CallEngine;
  readonly #pings = new Map<number, PendingPing>();
  #seq = 0;
  #call: ClientDuplexStream<Buffer, StreamMessage> | undefined;
  #control: ClientDuplexStream<Buffer, ProxyControlMsg> | undefined;
  #peerIsPicket = false;
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
    this.#calls = new CallEngine({
      name: `agent ${agentId}`,
      timeoutMs: this.#timeoutMs,
      pausable: GATED,
      wire: {
        write: (call, event) => {
          this.#call?.write(this.#encode(call.type, event, call.correlationId));
        },
        writeCancel: (cid, reason) => this.#writeCancel(cid, reason),
      },
    });
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
    tls: TlsOptions,
    options: AgentClientV2Options = {},
  ): Promise<AgentClientV2> {
    const parsed = parseTarget(target);
    const channelOptions: ChannelOptions = {};
    if (tls.servername) {
      channelOptions['grpc.ssl_target_name_override'] = tls.servername;
      channelOptions['grpc.default_authority'] = tls.servername;
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
    const where = `agent ${agentId} at ${target}${tls ? ' (TLS)' : ''}`;
    const budget = options.connectTimeoutMs ?? options.timeoutMs ?? 30_000;
    // grpc-js (1.14) leaks a connection when a channel is closed while its subchannel waits
    // to retry: once the agent is back, the orphaned subchannel connects and stays open. So a
    // connect to an agent that is down must fail before grpc-js is involved.
    await checkReachable(target, where, budget);
    let client: Client;
    try {
      client = new Client(target, creds, channelOptionsFor(options));
    } catch (err) {
      throw new AgentProtocolError(
        ErrorCode.ConnectionFailed,
        `agent ${agentId}: invalid gRPC target ${JSON.stringify(target)}: ${(err as Error).message}`,
        { cause: err },
      );
    }
    const transport = new AgentClientV2(agentId, target, client, options);
    try {
      const opened = await openProcessStream(client, where, tls, budget, options, {
        onMetadata: (picket) => {
          transport.#peerIsPicket = picket;
        },
        attach: (call) => transport.#attach(call),
      });
      transport.#capabilities = opened.capabilities;
      transport.#protocolVersion = opened.protocolVersion;
    } catch (err) {
      transport.#closed = true;
      client.close();
      throw err;
    }
    if (options.controlStream !== false) transport.#openControlStream();
    return transport;
  }

  /** Steady-state listeners of the ProcessStream. */
  #attach(call: ClientDuplexStream<Buffer, StreamMessage>): void {
    this.#call = call;
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
    if (this.#calls.resolve(msg.correlationId, msg.response)) return;
    this.#log.debug?.('response for no pending call (late or cancelled)', {
      agentId: this.agentId,
      correlationId: msg.correlationId,
    });
  }

  #onMessage(msg: AgentToProxyMsg): void {
    switch (msg.message) {
      case 'response': {
        const r = msg.response;
        if (!r) return;
        const cid = r.correlation_id ?? '';
        if (this.#calls.get(cid) === undefined) {
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
          this.#calls.fail(
            cid,
            AgentProtocolError.from(err, ErrorCode.InvalidMessage, `agent ${this.agentId}`),
          );
          return;
        }
        this.#calls.resolve(cid, response);
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
    if (!this.#calls.setPaused(paused)) return;
    this.emit('flowControl', paused ? 'pause' : 'resume');
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
    while (this.#calls.size > 0 && Date.now() < deadline && !this.#closed) {
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
    return this.#calls.size;
  }

  get paused(): boolean {
    return this.#calls.paused;
  }

  /** True once closed (locally or because the stream failed). */
  get closed(): boolean {
    return this.#closed;
  }

  isHealthy(): boolean {
    return (
      !this.#closed &&
      !this.#calls.paused &&
      !this.#draining &&
      this.#health !== 'unhealthy' &&
      this.#health !== 'draining'
    );
  }

  /**
   * Sends an event and waits for its answer. Not `async`: the common path costs one
   * promise; a synchronous failure still comes back as a rejected promise.
   *
   * While the agent has paused traffic, request headers, request/response body chunks and
   * guardrail events reject at once with FLOW_CONTROL_PAUSED (as Rust's pool gates them).
   * Guardrail inspection: only picket agents answer it over gRPC (a Rust agent server never
   * replies), so towards other agents it rejects with UNSUPPORTED. Configuration push: a
   * Rust agent ignores configure events, so towards it the event is sent and the call
   * resolves at once with allow tagged `configure_unacknowledged`.
   */
  send<K extends EventType>(type: K, event: EventMap[K], o?: CallOptions): Promise<AgentResponse> {
    try {
      const cid = correlationIdOf(type, event);
      const early = this.#beforeCall(type, event, cid, o?.signal);
      if (early !== undefined) return Promise.resolve(early);
      return this.#calls.call(type, event, cid, o);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** @internal The pool's path: {@link send} with the outcome going to the call itself. */
  [sendInto](call: SinkCall, now: number): void {
    let early: AgentResponse | undefined;
    try {
      early = this.#beforeCall(call.type, call.event, call.correlationId, call.signal);
    } catch (err) {
      call.failed(withSent(AgentProtocolError.from(err, ErrorCode.Internal, this.agentId), false));
      return;
    }
    if (early !== undefined) call.answered(early);
    else this.#calls.callInto(call, now);
  }

  /**
   * What happens before a call reaches the engine: throws the refusal of a draining agent or
   * of a guardrail event towards a Rust agent, and answers a configure push towards a Rust
   * agent at once (returned); undefined lets the call go on.
   */
  #beforeCall(
    type: EventType,
    event: AgentEvent,
    cid: string,
    signal: AbortSignal | undefined,
  ): AgentResponse | undefined {
    if (this.#draining && !this.#closed) {
      throw new AgentProtocolError(
        ErrorCode.Unavailable,
        `agent ${this.agentId} is draining; ${type} ${cid} not sent`,
      );
    }
    if (!this.#peerIsPicket && !this.#closed) {
      if (type === 'guardrail_inspect') {
        throw new AgentProtocolError(
          ErrorCode.Unsupported,
          `agent ${this.agentId} is not a picket agent; gRPC agents of the Rust crate never answer guardrail events`,
        );
      }
      if (type === 'configure' && signal?.aborted !== true) {
        this.#call?.write(this.#encode(type, event, cid));
        return agentResponse('allow', { tags: ['configure_unacknowledged'] });
      }
    }
    return undefined;
  }

  /** The event as ProcessStream bytes; MESSAGE_TOO_LARGE past the message limit. */
  #encode(type: EventType, event: AgentEvent, cid: string) {
    const bytes =
      (type === 'request_headers'
        ? encodeRequestHeadersFast(event as RequestHeadersEvent)
        : undefined) ?? encodeProxyToAgent(eventToProto(type, event as EventMap[typeof type]));
    if (bytes.length > this.#maxMessageSize) {
      throw new AgentProtocolError(
        ErrorCode.MessageTooLarge,
        `agent ${this.agentId}: ${type} ${cid} is ${bytes.length} bytes, over the ${this.#maxMessageSize}-byte gRPC message limit`,
      );
    }
    return bytes;
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
    this.#calls.cancel(correlationId, reason);
  }

  async cancelAll(reason: CancelReason = 'manual'): Promise<number> {
    return this.#calls.cancelAll(reason);
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
    this.#calls.close(reason);
    for (const p of [...this.#pings.values()]) p.reject(reason);
    this.#control?.cancel();
    this.#call?.cancel();
    this.#client.close();
    this.emit('close', err);
  }

  /** Rejects pending calls with CONNECTION_CLOSED and closes the channel. */
  async close(): Promise<void> {
    this.#fail(undefined);
  }
}
