/**
 * Agent side: `GrpcAgentServerV2` serves any `AgentHandler` as
 * `zentinel.agent.v2.AgentServiceV2` (ProcessStream, ControlStream, ProcessEvent).
 * The per-stream work is in server-stream.ts, the answers in server-answers.ts.
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
  type AgentPush,
  type AgentServer,
  type AgentTracingOptions,
  type ConfigUpdateInput,
  type ConfigUpdateResponse,
  DEFAULT_GRPC_MAX_MESSAGE_SIZE,
  ErrorCode,
  type ErrorPolicy,
  type HandlerErrorCause,
  type HandlerErrorInfo,
  type HealthState,
  type LogMessage,
  type MetricsReport,
  type TlsOptions,
} from '@picket/protocol';
import {
  agentTracing,
  bindSocketFile,
  checkErrorPolicy,
  configUpdateRequest,
  type SocketFile,
} from '@picket/protocol/internal';
import { configUpdateToProto, healthToProto, logToProto, metricsToProto } from './convert.js';
import {
  HEALTH_SERVICE_NAME,
  HealthService,
  healthServiceDefinition,
  type ServingStatus,
} from './health.js';
import { defaultLogger, type Logger } from './logger.js';
import {
  type AgentControlMsg,
  encodeProxyControl,
  type IAgentToProxy,
  type IProxyControl,
  type ProxyToAgentMsg,
  SERVICE_NAME,
} from './proto.js';
import {
  REFLECTION_SERVICE_NAMES,
  ReflectionService,
  reflectionServiceDefinitions,
} from './reflection.js';
import { ServerAnswers } from './server-answers.js';
import { SERVICE } from './server-events.js';
import { ProcessStream, type StreamHost } from './server-stream.js';
import { processEvent } from './server-unary.js';
import { serverCredentials } from './tls.js';

export type { ErrorPolicy } from '@picket/protocol';
/** @deprecated the cause of an error answer: use `HandlerErrorCause` of @picket/protocol */
export type ErrorCause = HandlerErrorCause;
/** @deprecated what a function error policy is told: use `HandlerErrorInfo` of @picket/protocol */
export type ErrorInfo = HandlerErrorInfo;

/** Options of {@link GrpcAgentServerV2}. */
export interface GrpcAgentServerV2Options extends AgentTracingOptions {
  /** where {@link GrpcAgentServerV2.listen} binds when called without an address */
  address?: string;
  /** TLS (and mTLS with `ca`); plaintext when absent */
  tls?: TlsOptions;
  /** permission bits of a `unix:` socket file; default 0o660 (owner and group may connect) */
  socketMode?: number;
  /** events handled at once per ProcessStream; more wait in order (default 100) */
  maxConcurrentPerStream?: number;
  /**
   * what a failing handler is answered: default `'block'` (block 500, body `Agent handler
   * error`, tag `picket_error`, reason code `AGENT_HANDLER_ERROR`); `'close'` ends the
   * stream (or unary call) with INTERNAL. See ErrorPolicy in @picket/protocol; never allow.
   */
  errorPolicy?: ErrorPolicy;
  logger?: Logger;
  /** max message size in bytes, both directions (default 4 MiB, tonic's default) */
  maxMessageSize?: number;
  /** HTTP/2 keepalive pings to the proxy (off unless set) */
  keepalive?: { timeMs?: number; timeoutMs?: number };
  /** extra grpc-js server options (applied last) */
  serverOptions?: ServerOptions;
  /** default timeout of {@link GrpcAgentServerV2.requestConfigUpdateAndWait} (default 10 000 ms) */
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
  /**
   * serve `grpc.health.v1.Health` (Check, Watch) for `""` (the server) and
   * `zentinel.agent.v2.AgentServiceV2`: SERVING, NOT_SERVING while draining or closing and
   * while the last {@link GrpcAgentServerV2.reportHealth} said `unhealthy` or `draining`
   * (`degraded` still serves). Default true; `false` leaves the service out (UNIMPLEMENTED)
   */
  health?: boolean;
  /**
   * serve gRPC server reflection (`grpc.reflection.v1` and `v1alpha`) over the descriptors of
   * the services served, for grpcurl and the like. Default true; `false` leaves it out
   */
  reflection?: boolean;
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

interface PendingConfigUpdate {
  resolve(r: ConfigUpdateResponse): void;
  reject(e: AgentProtocolError): void;
}

/**
 * gRPC agent server. Sends response headers as soon as a ProcessStream opens (a Rust
 * proxy waits for them before its handshake), answers the handshake with full
 * capabilities, handles events concurrently and answers each with its exact correlation id.
 * An {@link AgentServer} (`listen()` resolves to `grpc://host:port`, `grpcs://…` or
 * `grpc+unix:/path`) and an {@link AgentPush}.
 */
export class GrpcAgentServerV2 extends EventEmitter implements AgentServer, AgentPush {
  readonly #options: GrpcAgentServerV2Options;
  readonly #log: Logger;
  readonly #server: Server;
  readonly #answers: ServerAnswers;
  readonly #maxConnections: number;
  readonly #host: StreamHost;
  readonly #sessions = new Set<ProcessStream>();
  readonly #controls = new Set<ServerDuplexStream<AgentControlMsg, Buffer>>();
  readonly #configUpdates = new Map<string, PendingConfigUpdate>();
  readonly #healthService: HealthService | undefined;
  readonly #reflection: ReflectionService | undefined;
  #health: { state: HealthState; message?: string } | undefined;
  #paused = false;
  #draining = false;
  #closing = false;
  #closed = false;
  #endpoints: string[] = [];
  /** `unix:` socket files bound by listen(), removed (if still ours) on close */
  readonly #socketFiles: SocketFile[] = [];

  constructor(handler: AgentHandler, options: GrpcAgentServerV2Options = {}) {
    super();
    this.#options = options;
    this.#log = options.logger ?? defaultLogger;
    const maxMessageSize = options.maxMessageSize ?? DEFAULT_GRPC_MAX_MESSAGE_SIZE;
    const handshakeTimeoutMs = options.handshakeTimeoutMs ?? DEFAULT_GRPC_HANDSHAKE_TIMEOUT_MS;
    if (!(handshakeTimeoutMs > 0)) {
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
    this.#answers = new ServerAnswers(handler, {
      errorPolicy: checkErrorPolicy(options.errorPolicy, 'GrpcAgentServerV2'),
      maxMessageSize,
      log: this.#log,
      tracing: agentTracing(options.tracer, 'GrpcAgentServerV2'),
    });
    this.#host = {
      answers: this.#answers,
      log: this.#log,
      maxConcurrent: Math.max(1, options.maxConcurrentPerStream ?? 100),
      handshakeTimeoutMs,
      handshaken: (s) => {
        if (this.#health) this.#sendHealth(s);
        if (this.#paused) this.#sendFlow(s);
      },
      configResponse: (r) => this.#configUpdates.get(r.request_id)?.resolve(r),
      ended: (s) => this.#sessions.delete(s),
    };
    const serverOptions: ServerOptions = {
      'grpc.max_receive_message_length': maxMessageSize,
      'grpc.max_send_message_length': maxMessageSize,
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
      ) => void processEvent(this.#answers, this.#draining, call, callback),
    };
    this.#server.addService(SERVICE, impl);
    const served: string[] = [SERVICE_NAME];
    if (options.health !== false) {
      this.#healthService = new HealthService(['', SERVICE_NAME], 'SERVING');
      this.#server.addService(healthServiceDefinition, this.#healthService.implementation());
      served.push(HEALTH_SERVICE_NAME);
    }
    if (options.reflection !== false) {
      this.#reflection = new ReflectionService([...served, ...REFLECTION_SERVICE_NAMES]);
      const reflectionImpl = this.#reflection.implementation();
      for (const d of reflectionServiceDefinitions) this.#server.addService(d, reflectionImpl);
    }
  }

  /** What the health service answers for the known services now. */
  #servingStatus(): ServingStatus {
    const state = this.#health?.state;
    return this.#draining ||
      this.#closing ||
      this.#closed ||
      state === 'unhealthy' ||
      state === 'draining'
      ? 'NOT_SERVING'
      : 'SERVING';
  }

  #updateServing(): void {
    this.#healthService?.set(this.#servingStatus());
  }

  /** What listen() bound, in @picket/transport's grammar; empty before listen() and after close(). */
  get endpoints(): readonly string[] {
    return this.#closing || this.#closed ? [] : this.#endpoints;
  }

  /**
   * {@link AgentServer.listen}: binds `options.address` and resolves to the endpoint
   * (`grpc://127.0.0.1:50051`, `grpcs://…` with TLS, `grpc+unix:/path`).
   */
  listen(): Promise<readonly string[]>;
  /**
   * Binds an address (`127.0.0.1:0`, `0.0.0.0:50051`, `unix:/path/agent.sock`, …) and
   * starts serving. Resolves with the bound address (the real port for `:0`).
   */
  listen(address: string): Promise<BoundAddress>;
  async listen(address?: string): Promise<BoundAddress | readonly string[]> {
    if (address !== undefined) return this.#bind(address);
    const configured = this.#options.address;
    if (configured === undefined) {
      throw new AgentProtocolError(
        ErrorCode.InvalidArgument,
        'GrpcAgentServerV2: listen() needs an address: pass options.address or listen(address)',
      );
    }
    await this.#bind(configured);
    return this.endpoints;
  }

  #bind(address: string): Promise<BoundAddress> {
    let creds: ReturnType<typeof serverCredentials>;
    try {
      creds = serverCredentials(this.#options.tls);
    } catch (err) {
      return Promise.reject(err);
    }
    const bound = (b: BoundAddress): BoundAddress => {
      this.#endpoints.push(
        address.startsWith('unix:')
          ? `grpc+unix:${address.replace(/^unix:(\/\/)?/, '')}`
          : `${this.#options.tls ? 'grpcs' : 'grpc'}://${b.address}`,
      );
      return b;
    };
    if (address.startsWith('unix:')) return this.#listenUnix(address, creds).then(bound);
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
        resolve(bound({ address: address.replace(/:\d+$/, `:${port}`), port }));
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
      logger: { info: (message, fields) => this.#log.info(message, fields) },
    });
    this.#socketFiles.push(file);
    return { address, port: 0 };
  }

  /** Open ProcessStreams. */
  get connections(): number {
    return this.#sessions.size;
  }

  /** True between pause() and resume(). */
  get paused(): boolean {
    return this.#paused;
  }

  /** Handshaken ProcessStreams, each told `m`; returns how many. */
  #broadcast(m: IAgentToProxy | ((s: ProcessStream) => void)): number {
    let n = 0;
    for (const s of this.#sessions) {
      if (!s.handshaken || s.closed) continue;
      if (typeof m === 'function') m(s);
      else s.write(m);
      n++;
    }
    return n;
  }

  /** Reports health to every connected proxy (and to proxies that connect later); returns how many were told. */
  reportHealth(state: HealthState, message?: string): number {
    this.#health = message === undefined ? { state } : { state, message };
    this.#updateServing();
    return this.#broadcast((s) => this.#sendHealth(s));
  }

  #sendHealth(s: ProcessStream): void {
    if (!this.#health) return;
    s.write({
      health: healthToProto(this.#answers.agentId(), this.#health.state, this.#health.message),
    });
  }

  /** Pushes a metrics report to every connected proxy; returns how many were told. */
  reportMetrics(report: MetricsReport): number {
    const m = metricsToProto({ ...report, agent_id: report.agent_id || this.#answers.agentId() });
    return this.#broadcast({ metrics: m });
  }

  /** Sends a log line to every connected proxy; returns how many were told. */
  sendLog(entry: Partial<LogMessage> & { message: string }): number {
    const m = logToProto({
      level: entry.level ?? 'info',
      message: entry.message,
      correlation_id: entry.correlation_id ?? null,
      fields: entry.fields ?? {},
      timestamp_ms: entry.timestamp_ms ?? Date.now(),
    });
    return this.#broadcast({ log: m });
  }

  /** Asks every connected proxy to pause traffic (FlowControlSignal PAUSE); returns how many. */
  pause(): number {
    this.#paused = true;
    return this.#broadcast((s) => this.#sendFlow(s));
  }

  /** Lets traffic flow again (FlowControlSignal RESUME); returns how many were told. */
  resume(): number {
    this.#paused = false;
    return this.#broadcast((s) => this.#sendFlow(s));
  }

  #sendFlow(s: ProcessStream): void {
    s.write({ flow_control: { action: this.#paused ? 1 : 2, timestamp_ms: Date.now() } });
  }

  /**
   * Sends a config update request to every connected proxy; returns how many were told
   * (the same on every picket server). {@link requestConfigUpdateAndWait} waits for an answer.
   */
  requestConfigUpdate(request: ConfigUpdateInput): number {
    return this.#broadcast({ config_update: configUpdateToProto(configUpdateRequest(request)) });
  }

  /**
   * Sends a config update request to the connected proxies and resolves with the first
   * answer. Only picket proxies answer (a Rust proxy hands the request to its handler and
   * sends nothing back): with none connected this rejects UNSUPPORTED after delivering it.
   */
  requestConfigUpdateAndWait(
    request: ConfigUpdateInput,
    o: { timeoutMs?: number } = {},
  ): Promise<ConfigUpdateResponse> {
    const req = configUpdateRequest(request);
    const streams = [...this.#sessions].filter((s) => s.handshaken && !s.closed);
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
      const settle = (): void => {
        clearTimeout(timer);
        this.#configUpdates.delete(req.request_id);
      };
      const timer = setTimeout(() => {
        settle();
        reject(
          new AgentProtocolError(
            ErrorCode.Timeout,
            `no proxy answered config update ${req.request_id} within ${timeoutMs} ms`,
          ),
        );
      }, timeoutMs);
      this.#configUpdates.set(req.request_id, {
        resolve: (r) => {
          settle();
          resolve(r);
        },
        reject: (e) => {
          settle();
          reject(e);
        },
      });
    });
  }

  /**
   * Starts draining: reports `draining` health, tells ControlStream peers (DrainRequest
   * with `durationMs`), and refuses new ProcessStreams and ProcessEvent calls; existing
   * streams keep being served. {@link drain} does this and then closes.
   */
  startDrain(durationMs = 0): void {
    this.#draining = true;
    this.reportHealth('draining', 'agent is draining');
    this.#broadcastControl({
      drain: { duration_ms: durationMs || undefined, reason: 4, timestamp_ms: Date.now() },
    });
  }

  /**
   * {@link AgentServer.drain}: {@link startDrain}, then {@link close} letting in-flight
   * events finish for up to `timeoutMs` (default 5000).
   */
  async drain(timeoutMs = 5000): Promise<void> {
    if (this.#closing || this.#closed) return;
    this.startDrain(timeoutMs);
    await this.close({ drainTimeoutMs: timeoutMs });
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
    this.#updateServing();
    const drainMs = o.drainTimeoutMs ?? 5000;
    this.#broadcastControl({
      shutdown: { reason: 1, grace_period_ms: drainMs || undefined, timestamp_ms: Date.now() },
    });
    const idle = Promise.all([...this.#sessions].map((s) => s.idle()));
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([idle, new Promise((r) => (timer = setTimeout(r, drainMs)))]);
    clearTimeout(timer);
    for (const s of this.#sessions) s.end('agent server closing');
    for (const c of this.#controls) c.end();
    // open Watch and reflection streams would otherwise hold tryShutdown until the force timer
    this.#healthService?.endWatches();
    this.#reflection?.endStreams();
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
    this.#updateServing();
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

  // ---------------------------------------------------------------- ProcessStream

  #processStream(call: ServerDuplexStream<ProxyToAgentMsg, Buffer>): void {
    // Refused before any header is sent, so the proxy gets a plain status (Trailers-Only).
    if (this.#sessions.size >= this.#maxConnections) {
      this.#refuseOverLimit(call, 'ProcessStream', this.#sessions.size);
      return;
    }
    // Response headers first, before reading anything: the Rust proxy waits for them.
    ProcessStream.sendHeaders(call);
    if (this.#draining) {
      call.emit('error', { code: status.UNAVAILABLE, details: 'agent is draining' });
      return;
    }
    const s = new ProcessStream(call, this.#host);
    this.#sessions.add(s);
    s.start();
  }

  /** Answers a stream over the `maxConnections` cap with RESOURCE_EXHAUSTED, logged. */
  #refuseOverLimit(
    call: ServerDuplexStream<unknown, Buffer>,
    kind: 'ProcessStream' | 'ControlStream',
    open: number,
  ): void {
    const details = `connection limit reached: ${open} ${kind}s open (maxConnections ${this.#maxConnections})`;
    this.#log.warn(`refusing ${kind}: ${details}`, {
      peer: call.getPeer(),
      maxConnections: this.#maxConnections,
    });
    call.emit('error', { code: status.RESOURCE_EXHAUSTED, details });
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
        this.#log.debug('control message from proxy ignored', { kind: m.message });
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
