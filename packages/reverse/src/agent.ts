import { EventEmitter } from 'node:events';
import type * as net from 'node:net';
import {
  AgentProtocolError,
  type AgentPush,
  type AgentServer,
  type ConfigUpdateInput,
  ErrorCode,
  type HealthState,
  type MetricsReport,
  type RegistrationResponse,
} from '@picket/protocol';
import {
  type AgentTracing,
  agentTracing,
  checkErrorPolicy,
  loadTlsMaterial,
  resolveBackoff,
} from '@picket/protocol/internal';
import type { Logger } from '@picket/uds';
import { AgentConnection, ConnectionPush, FrameChannel } from '@picket/uds/internal';
import { describeTarget, dialProxy, RegistrationRejected, register } from './agent-dial.js';
import type {
  ConnectReverseOptions,
  ReverseAgentEventMap,
  ReverseAgentStatus,
  SlotState,
} from './agent-options.js';
import { DEFAULT_RECONNECT, reconnectDelay } from './backoff.js';
import { formatHostPort, parseReverseEndpoint, type ReverseEndpoint } from './endpoint.js';
import { defaultLogger } from './logger.js';

export type {
  ConnectReverseOptions,
  DisconnectInfo,
  ReconnectInfo,
  RegisteredInfo,
  RegistrationFailureInfo,
  ReverseAgentEventMap,
  ReverseAgentStatus,
  ReverseSlotStatus,
  ReverseTlsClientOptions,
  SlotState,
} from './agent-options.js';

interface Slot {
  readonly index: number;
  state: SlotState;
  failures: number;
  timer?: NodeJS.Timeout;
  socket?: net.Socket;
  channel?: FrameChannel;
  connection?: AgentConnection;
  connectionId?: string;
}

/**
 * The agent side of reverse connections: keeps `connections` registered
 * connections to a proxy's {@link ReverseConnectionListener} and serves `handler`
 * on each with the same engine as `UdsAgentServerV2` (JSON, as spec §3 says).
 * Reconnects forever with exponential backoff and jitter; every failure is logged
 * and emitted (`registrationFailed`, with the proxy's refusal text when it refused).
 * Create it with {@link connectReverse}.
 */
export class ReverseAgent
  extends EventEmitter<ReverseAgentEventMap>
  implements AgentServer, AgentPush
{
  readonly agentId: string;
  readonly endpoint: string;
  private readonly target: ReverseEndpoint;
  private readonly options: ConnectReverseOptions;
  private readonly tracing: AgentTracing | undefined;
  private readonly logger: Logger;
  private readonly slots: Slot[] = [];
  private isStopped = false;
  private started = false;
  private stopping: Promise<void> | undefined;
  private error: AgentProtocolError | undefined;
  private registrations = 0;
  private readonly push: ConnectionPush;

  /** Use {@link connectReverse}. */
  constructor(options: ConnectReverseOptions) {
    super();
    if (options === null || typeof options !== 'object') {
      throw new AgentProtocolError(ErrorCode.InvalidArgument, 'connectReverse: options required');
    }
    if (typeof options.agentId !== 'string' || options.agentId === '') {
      throw new AgentProtocolError(
        ErrorCode.InvalidArgument,
        'connectReverse: agentId must be a non-empty string',
      );
    }
    if (options.handler === null || typeof options.handler?.capabilities !== 'function') {
      throw new AgentProtocolError(
        ErrorCode.InvalidArgument,
        'connectReverse: handler must be an AgentHandler (with capabilities())',
      );
    }
    if (options.authToken !== undefined && typeof options.authToken !== 'string') {
      throw new AgentProtocolError(
        ErrorCode.InvalidArgument,
        'connectReverse: authToken must be a string',
      );
    }
    const count = options.connections ?? 1;
    if (!Number.isInteger(count) || count < 1) {
      throw new AgentProtocolError(
        ErrorCode.InvalidArgument,
        `connectReverse: connections must be an integer ≥ 1, got ${String(options.connections)}`,
      );
    }
    resolveBackoff(options.reconnect, DEFAULT_RECONNECT, 'connectReverse: reconnect');
    checkErrorPolicy(options.errorPolicy, 'connectReverse');
    this.tracing = agentTracing(options.tracer, 'connectReverse');
    // bad TLS material fails here, not on every reconnect
    if (typeof options.tls === 'object')
      loadTlsMaterial(options.tls, 'dial', 'connectReverse: tls');
    this.options = options;
    this.agentId = options.agentId;
    this.target = parseReverseEndpoint(
      options.endpoint,
      options.tls !== undefined && options.tls !== false,
    );
    this.endpoint = describeTarget(this.target);
    this.logger = options.logger ?? defaultLogger;
    for (let i = 0; i < count; i++) this.slots.push({ index: i, state: 'connecting', failures: 0 });
    this.push = new ConnectionPush({ [Symbol.iterator]: () => this.connections.values() });
  }

  /** Registered, open connections. */
  get connected(): number {
    return this.slots.filter((s) => s.state === 'connected').length;
  }

  /** The engines of the open connections (for per-connection control). */
  get connections(): AgentConnection[] {
    return this.slots.flatMap((s) => (s.connection === undefined ? [] : [s.connection]));
  }

  /** The most recent failure (dial, TLS, timeout or the proxy's refusal). */
  get lastError(): AgentProtocolError | undefined {
    return this.error;
  }

  /** True once `stop()` was called. */
  get stopped(): boolean {
    return this.isStopped;
  }

  /** True while the agent has asked the proxy to pause. */
  get paused(): boolean {
    return this.push.paused;
  }

  /**
   * Where it dials, in the endpoint grammar of @picket/transport
   * (`reverse+unix:/p`, `reverse+tcp://h:p`, `reverse+tls://h:p`) while started and not
   * stopped; else empty.
   */
  get endpoints(): readonly string[] {
    if (!this.started || this.isStopped) return [];
    const t = this.target;
    return [
      t.kind === 'uds'
        ? `reverse+unix:${t.path}`
        : `reverse+${t.kind}://${formatHostPort(t.host, t.port)}`,
    ];
  }

  /**
   * {@link AgentServer.listen}: starts dialling (if {@link connectReverse} has not) and
   * resolves to {@link endpoints} once one connection is registered; the other slots keep
   * connecting in the background. Waits as long as the proxy stays away (reconnecting
   * with backoff, failures emitted as `registrationFailed`) unless `timeoutMs` is given;
   * rejects CONNECTION_CLOSED if stopped first.
   */
  async listen(options: { timeoutMs?: number } = {}): Promise<readonly string[]> {
    if (this.isStopped) {
      throw new AgentProtocolError(
        ErrorCode.ConnectionClosed,
        `reverse agent "${this.agentId}" was stopped`,
      );
    }
    this.start();
    await this.ready({ connections: 1, ...options });
    return this.endpoints;
  }

  /** {@link AgentServer.close}: {@link stop} without waiting for running handlers. */
  close(): Promise<void> {
    return this.stop();
  }

  /**
   * {@link AgentServer.drain}: tells the proxy `draining` (health 0x30), then {@link stop}s,
   * letting running handlers finish for up to `timeoutMs` (default 30 000).
   */
  drain(timeoutMs = 30_000): Promise<void> {
    if (!this.isStopped) this.reportHealth('draining');
    return this.stop({ drainTimeoutMs: timeoutMs });
  }

  /** A snapshot of every slot. */
  status(): ReverseAgentStatus {
    return {
      agentId: this.agentId,
      endpoint: this.endpoint,
      desired: this.slots.length,
      connected: this.connected,
      stopped: this.isStopped,
      registrations: this.registrations,
      lastError: this.error?.message,
      slots: this.slots.map((s) => ({
        slot: s.index,
        state: s.state,
        ...(s.connectionId === undefined ? {} : { connectionId: s.connectionId }),
        failures: s.failures,
      })),
    };
  }

  /**
   * Resolves once `connections` (default: all) are registered. Rejects with TIMEOUT
   * (naming the last failure) after `timeoutMs`, or CONNECTION_CLOSED if stopped.
   */
  ready(options: { connections?: number; timeoutMs?: number } = {}): Promise<void> {
    const want = Math.min(options.connections ?? this.slots.length, this.slots.length);
    if (this.connected >= want) return Promise.resolve();
    return new Promise((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const cleanup = (): void => {
        if (timer !== undefined) clearTimeout(timer);
        this.off('registered', check);
        this.off('stopped', onStop);
      };
      const check = (): void => {
        if (this.connected >= want) {
          cleanup();
          resolve();
        }
      };
      const onStop = (): void => {
        cleanup();
        reject(
          new AgentProtocolError(
            ErrorCode.ConnectionClosed,
            `reverse agent "${this.agentId}" stopped before it was ready`,
          ),
        );
      };
      this.on('registered', check);
      this.on('stopped', onStop);
      if (this.isStopped) onStop();
      const timeoutMs = options.timeoutMs;
      if (timeoutMs !== undefined && Number.isFinite(timeoutMs)) {
        timer = setTimeout(() => {
          cleanup();
          reject(
            new AgentProtocolError(
              ErrorCode.Timeout,
              `reverse agent "${this.agentId}": ${this.connected}/${want} connections registered with ${this.endpoint} after ${timeoutMs} ms${this.error === undefined ? '' : `; last error: ${this.error.message}`}`,
            ),
          );
        }, timeoutMs);
      }
    });
  }

  /** Reports health to the proxy on every connection (0x30); remembered for new connections. */
  reportHealth(state: HealthState, message?: string): number {
    return this.push.reportHealth(state, message);
  }

  /** Asks the proxy to stop sending events on every connection (0x33); remembered. */
  pause(): number {
    return this.push.pause();
  }

  /** Lets the proxy send events again (0x33). */
  resume(): number {
    return this.push.resume();
  }

  /** Pushes a metrics report on every connection (0x31). */
  reportMetrics(report: MetricsReport): number {
    return this.push.reportMetrics(report);
  }

  /** Sends a config update request on every connection (0x32); `request_id` / `timestamp_ms` filled in when absent. */
  requestConfigUpdate(request: ConfigUpdateInput): number {
    return this.push.requestConfigUpdate(request);
  }

  /**
   * Stops for good: no further attempts, timers cleared, dials aborted, registered
   * connections closed (after up to `drainTimeoutMs` for running handlers; default
   * 0). Resolves once every socket is closed. Idempotent.
   */
  stop(options: { drainTimeoutMs?: number } = {}): Promise<void> {
    this.stopping ??= this.doStop(options.drainTimeoutMs ?? 0);
    return this.stopping;
  }

  /** @internal starts every slot (called by {@link connectReverse}). */
  start(): this {
    if (this.started || this.isStopped) return this;
    this.started = true;
    for (const slot of this.slots) void this.run(slot);
    return this;
  }

  // ------------------------------------------------------------------ internals

  private async run(slot: Slot): Promise<void> {
    if (this.isStopped) return;
    slot.timer = undefined;
    slot.state = 'connecting';
    let channel: FrameChannel | undefined;
    try {
      const { socket, reader } = await dialProxy(this.target, this.endpoint, this.options, (sk) => {
        slot.socket = sk;
      });
      if (this.isStopped) {
        socket.destroy();
        return;
      }
      slot.state = 'registering';
      channel = new FrameChannel(socket, {
        id: `reverse-agent:${this.agentId}#${slot.index}`,
        reader,
        maxFrameLength: this.options.maxFrameLength,
        maxWriteQueueBytes: this.options.maxWriteQueueBytes,
      });
      slot.channel = channel;
      const response = await register(channel, this.endpoint, this.agentId, this.options);
      if (this.isStopped) {
        channel.destroy();
        return;
      }
      this.serve(slot, channel, response);
    } catch (err) {
      channel?.destroy();
      slot.socket?.destroy();
      slot.socket = undefined;
      slot.channel = undefined;
      if (this.isStopped) return;
      this.onFailure(slot, err);
    }
  }

  private serve(slot: Slot, channel: FrameChannel, response: RegistrationResponse): void {
    const connectionId = response.connection_id;
    const connection = new AgentConnection(channel, this.options.handler, {
      id: connectionId === '' ? channel.id : connectionId,
      transport: 'reverse',
      encoding: 'json',
      proxyId: response.proxy_id,
      maxConcurrent: this.options.maxConcurrentPerConnection,
      maxQueued: this.options.maxQueuedPerConnection,
      errorPolicy: this.options.errorPolicy,
      logger: this.logger,
      tracing: this.tracing,
    });
    slot.socket = undefined;
    slot.channel = undefined;
    slot.connection = connection;
    slot.connectionId = connectionId;
    slot.state = 'connected';
    slot.failures = 0;
    this.registrations++;
    connection.once('close', (error) => this.onDisconnect(slot, connection, error));
    this.logger.info('registered with the proxy', {
      agentId: this.agentId,
      endpoint: this.endpoint,
      connectionId,
      proxyId: response.proxy_id,
      proxyVersion: response.proxy_version,
    });
    this.push.greet(connection);
    this.emit('registered', {
      slot: slot.index,
      connectionId,
      proxyId: response.proxy_id,
      proxyVersion: response.proxy_version,
      connection,
    });
  }

  private onDisconnect(slot: Slot, connection: AgentConnection, error?: AgentProtocolError): void {
    if (slot.connection !== connection) return;
    const connectionId = slot.connectionId ?? connection.id;
    slot.connection = undefined;
    slot.connectionId = undefined;
    if (this.isStopped) {
      slot.state = 'stopped';
      return;
    }
    if (error !== undefined) this.error = error;
    this.logger.warn('connection to the proxy lost; reconnecting', {
      agentId: this.agentId,
      endpoint: this.endpoint,
      connectionId,
      reason: error?.message ?? 'closed',
    });
    this.emit('disconnected', {
      slot: slot.index,
      connectionId,
      ...(error === undefined ? {} : { error }),
    });
    this.schedule(slot);
  }

  private onFailure(slot: Slot, err: unknown): void {
    const error = AgentProtocolError.from(
      err,
      ErrorCode.ConnectionFailed,
      `reverse agent "${this.agentId}"`,
    );
    slot.failures++;
    this.error = error;
    const rejected = err instanceof RegistrationRejected;
    this.logger.warn(
      rejected ? 'registration rejected by the proxy' : 'registration attempt failed',
      {
        agentId: this.agentId,
        endpoint: this.endpoint,
        slot: slot.index,
        failures: slot.failures,
        code: error.code,
        reason: error.message,
      },
    );
    this.emit('registrationFailed', error, {
      slot: slot.index,
      failures: slot.failures,
      rejected,
      ...(rejected ? { proxyError: (err as RegistrationRejected).proxyError } : {}),
    });
    this.schedule(slot);
  }

  private schedule(slot: Slot): void {
    if (this.isStopped) return;
    const failures = slot.failures;
    // After a drop (failures 0) the first retry still waits the initial delay, so a
    // proxy that accepts and drops at once cannot make the agent spin.
    const delayMs = reconnectDelay(
      Math.max(0, failures - 1),
      { ...DEFAULT_RECONNECT, ...this.options.reconnect },
      this.options.random,
    );
    slot.state = 'waiting';
    this.emit('reconnecting', { slot: slot.index, failures, delayMs });
    slot.timer = setTimeout(() => void this.run(slot), delayMs);
  }

  private async doStop(drainTimeoutMs: number): Promise<void> {
    this.isStopped = true;
    const closing: Promise<void>[] = [];
    for (const slot of this.slots) {
      if (slot.timer !== undefined) clearTimeout(slot.timer);
      slot.timer = undefined;
      slot.state = 'stopped';
      if (slot.channel !== undefined) {
        const channel = slot.channel;
        channel.destroy();
        closing.push(channel.whenClosed());
      } else if (slot.socket !== undefined) {
        const socket = slot.socket;
        socket.destroy();
        closing.push(
          socket.closed ? Promise.resolve() : new Promise((r) => socket.once('close', () => r())),
        );
      }
      slot.channel = undefined;
      slot.socket = undefined;
      const connection = slot.connection;
      if (connection !== undefined) {
        closing.push(
          (async () => {
            if (drainTimeoutMs > 0) await connection.drain(drainTimeoutMs);
            await connection.close();
          })(),
        );
      }
      slot.connection = undefined;
      slot.connectionId = undefined;
    }
    await Promise.all(closing);
    this.logger.info('reverse agent stopped', { agentId: this.agentId, endpoint: this.endpoint });
    this.emit('stopped');
  }
}

/**
 * Dials a proxy's reverse listener and keeps `connections` (default 1) registered
 * connections serving `handler`, reconnecting forever with backoff until `stop()`.
 *
 * ```ts
 * const agent = connectReverse({
 *   endpoint: 'tls://proxy.internal:7443',
 *   agentId: 'waf-1',
 *   authToken: process.env.WAF_TOKEN,
 *   handler: new EchoAgent({ agentId: 'waf-1' }),
 *   tls: { ca: readFileSync('ca.pem') },
 * });
 * agent.on('registrationFailed', (err) => console.error(err.message));
 * await agent.ready();
 * ```
 */
export function connectReverse(options: ConnectReverseOptions): ReverseAgent {
  return new ReverseAgent(options).start();
}
