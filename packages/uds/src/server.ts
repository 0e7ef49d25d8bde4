import { EventEmitter } from 'node:events';
import * as net from 'node:net';
import {
  type AgentHandler,
  AgentProtocolError,
  type AgentPush,
  type AgentServer,
  type AgentTracingOptions,
  type ConfigUpdateInput,
  type Encoding,
  ErrorCode,
  type ErrorPolicy,
  type HealthState,
  type MetricsReport,
} from '@picket/protocol';
import {
  type AgentTracing,
  agentTracing,
  checkErrorPolicy,
  listenUnix,
  type SocketFile,
} from '@picket/protocol/internal';
import { AgentConnection } from './agent-connection.js';
import { FrameChannel } from './channel.js';
import { agentHandshake, DEFAULT_AGENT_ENCODINGS } from './handshake.js';
import { defaultLogger, type Logger } from './logger.js';
import { ConnectionPush } from './push.js';
import { type AdoptedSocket, adoptAccepted } from './socket-reader.js';

/** Options of {@link UdsAgentServerV2}; `tracer`: a span per event (see the README's Tracing). */
export interface UdsAgentServerOptions extends AgentTracingOptions {
  /** permission bits of the socket file; default 0o660 (owner and group may connect) */
  mode?: number;
  /** close a client that has not completed the handshake after this; default 10 000 ms */
  handshakeTimeoutMs?: number;
  /** handlers running at once per connection; default 100 */
  maxConcurrentPerConnection?: number;
  /** events queued per connection beyond that before reads pause; default 1000 */
  maxQueuedPerConnection?: number;
  /** encodings this agent speaks; default json, msgpack, cbor */
  encodings?: readonly Encoding[];
  /**
   * answer to undecodable events and failing handlers; default `'block'` (block 500,
   * `AGENT_HANDLER_ERROR`, see ErrorPolicy in @picket/protocol); never allow
   */
  errorPolicy?: ErrorPolicy;
  /** default drain time for {@link UdsAgentServerV2.close} and `drain()`; default 30 000 ms */
  drainTimeoutMs?: number;
  /** largest frame length accepted and written; default 16 MiB */
  maxFrameLength?: number;
  /** bytes allowed to queue while a proxy is not reading; default 16 MiB */
  maxWriteQueueBytes?: number;
  /** where diagnostics go; default warn/error to the console */
  logger?: Logger;
}

/** Events emitted by {@link UdsAgentServerV2}. */
export interface UdsAgentServerEventMap {
  /** a proxy completed the handshake */
  connection: [connection: AgentConnection];
  /** a handshaken connection ended */
  disconnect: [connection: AgentConnection, error?: AgentProtocolError];
}

let serverConnectionCounter = 0;

/**
 * Agent side of the v2 binary protocol on a Unix socket (the seeds' `UdsAgentServerV2`):
 * serves one {@link AgentHandler} to any number of proxy connections.
 *
 * - `listen()` replaces a stale socket file (refusing to delete anything that is not a
 *   socket, or a socket someone is still listening on); the socket file exists only with
 *   `mode`, never with the umask's bits (bound in a private directory, chmodded, renamed
 *   into place). `close()` drains in-flight requests, closes connections and removes the
 *   file if it is still ours.
 * - Each connection: handshake per spec 2.3 within `handshakeTimeoutMs`, then an
 *   {@link AgentConnection}. A misbehaving connection (bad frame, bad handshake) is
 *   closed alone, with its reason logged; the others keep working.
 * - Control towards every connected proxy ({@link AgentPush}): `reportHealth`, `pause` /
 *   `resume`, `reportMetrics`, `requestConfigUpdate`, each returning how many proxies
 *   were told. A proxy that connects later is told the current pause and a non-healthy
 *   state right after its handshake.
 * - An {@link AgentServer}: `listen()` resolves to `['unix:<path>']`, `drain(ms)` is
 *   `close({ drainTimeoutMs: ms })`.
 */
export class UdsAgentServerV2
  extends EventEmitter<UdsAgentServerEventMap>
  implements AgentServer, AgentPush
{
  /** the socket path */
  readonly path: string;
  private readonly handler: AgentHandler;
  private readonly options: UdsAgentServerOptions;
  private readonly logger: Logger;
  private readonly tracing: AgentTracing | undefined;
  private server: net.Server | undefined;
  private readonly pendingSockets = new Set<FrameChannel>();
  private readonly active = new Set<AgentConnection>();
  private readonly push = new ConnectionPush(this.active);
  private closing: Promise<void> | undefined;
  /** the socket file we created; close() removes it only while it is still ours */
  private socketFile: SocketFile | undefined;

  constructor(path: string, handler: AgentHandler, options: UdsAgentServerOptions = {}) {
    super();
    this.path = path.startsWith('unix:') ? path.slice(5) : path;
    this.handler = handler;
    this.options = options;
    this.logger = options.logger ?? defaultLogger;
    checkErrorPolicy(options.errorPolicy, `UdsAgentServerV2 ${this.path}`);
    this.tracing = agentTracing(options.tracer, `UdsAgentServerV2 ${this.path}`);
  }

  /** `['unix:<path>']` while listening, else empty. */
  get endpoints(): readonly string[] {
    return this.server === undefined || this.closing !== undefined ? [] : [`unix:${this.path}`];
  }

  /** Connections that completed the handshake and are open. */
  get connections(): ReadonlySet<AgentConnection> {
    return this.active;
  }

  /** True between `listen()` and `close()`. */
  get listening(): boolean {
    return this.server?.listening === true;
  }

  /** True while the agent has asked proxies to pause. */
  get paused(): boolean {
    return this.push.paused;
  }

  /**
   * Binds the socket and resolves to `['unix:<path>']`. Rejects if the path holds
   * something else or a live server.
   */
  async listen(): Promise<readonly string[]> {
    if (this.server !== undefined)
      throw new AgentProtocolError(ErrorCode.InvalidArgument, `${this.path}: already listening`);
    // paused: the accepted socket is re-created to read through a SocketReader (adoptAccepted)
    const server = net.createServer({ pauseOnConnect: true }, (accepted) =>
      this.onSocket(adoptAccepted(accepted)),
    );
    this.socketFile = await listenUnix(server, this.path, {
      mode: this.options.mode ?? 0o660,
      logger: this.logger,
    });
    server.on('error', (err) =>
      this.logger.error('listener error', { path: this.path, error: err }),
    );
    this.server = server;
    this.logger.info('listening', { path: this.path });
    return this.endpoints;
  }

  /**
   * Stops accepting, lets in-flight requests finish for up to `drainTimeoutMs`
   * (default from the options, 30 s), then closes every connection and removes the
   * socket file. Connected proxies are told `draining` first (health 0x30).
   */
  close(options: { drainTimeoutMs?: number } = {}): Promise<void> {
    this.closing ??= this.doClose(options.drainTimeoutMs ?? this.options.drainTimeoutMs ?? 30_000);
    return this.closing;
  }

  /** {@link close} with `timeoutMs` (default `drainTimeoutMs`) for in-flight requests. */
  drain(timeoutMs?: number): Promise<void> {
    return this.close(timeoutMs === undefined ? {} : { drainTimeoutMs: timeoutMs });
  }

  /** Reports health to every connected proxy (0x30); returns how many were told. */
  reportHealth(state: HealthState, message?: string): number {
    return this.push.reportHealth(state, message);
  }

  /** Asks every connected proxy to stop sending events (0x33 pause). */
  pause(): number {
    return this.push.pause();
  }

  /** Lets every connected proxy send events again (0x33 resume). */
  resume(): number {
    return this.push.resume();
  }

  /** Pushes a metrics report to every connected proxy (0x31). */
  reportMetrics(report: MetricsReport): number {
    return this.push.reportMetrics(report);
  }

  /**
   * Sends a config update request to every connected proxy (0x32); `request_id` and
   * `timestamp_ms` are filled in when absent. UDS carries no answer (spec 2.8).
   */
  requestConfigUpdate(request: ConfigUpdateInput): number {
    return this.push.requestConfigUpdate(request);
  }

  // ------------------------------------------------------------------ internals

  private onSocket({ socket, reader }: AdoptedSocket): void {
    const id = `uds:${this.path}#${++serverConnectionCounter}`;
    if (this.closing !== undefined) {
      socket.destroy();
      return;
    }
    const channel = new FrameChannel(socket, {
      id,
      reader,
      maxFrameLength: this.options.maxFrameLength,
      maxWriteQueueBytes: this.options.maxWriteQueueBytes,
    });
    this.pendingSockets.add(channel);
    // agentHandshake logs why a connection ended before or during the handshake.
    channel.onClose(() => this.pendingSockets.delete(channel));
    this.logger.debug('proxy connected', { connection: id });
    void agentHandshake(channel, this.handler, {
      encodings: this.options.encodings ?? DEFAULT_AGENT_ENCODINGS,
      timeoutMs: this.options.handshakeTimeoutMs ?? 10_000,
      logger: this.logger,
    }).then(
      (result) => {
        this.pendingSockets.delete(channel);
        if (result === undefined || channel.closed) return;
        if (this.closing !== undefined) {
          channel.destroy();
          return;
        }
        const connection = new AgentConnection(channel, this.handler, {
          id,
          encoding: result.encoding,
          proxyId: result.request.proxy_id,
          transport: 'uds',
          maxConcurrent: this.options.maxConcurrentPerConnection,
          maxQueued: this.options.maxQueuedPerConnection,
          errorPolicy: this.options.errorPolicy,
          logger: this.logger,
          tracing: this.tracing,
        });
        this.active.add(connection);
        connection.once('close', (error) => {
          this.active.delete(connection);
          this.emit('disconnect', connection, error);
        });
        this.logger.debug('handshake complete', {
          connection: id,
          proxyId: result.request.proxy_id,
          encoding: result.encoding,
        });
        this.push.greet(connection);
        this.emit('connection', connection);
      },
      (err: unknown) => {
        this.pendingSockets.delete(channel);
        this.logger.error('handshake failed unexpectedly', { connection: id, error: err });
        channel.destroy();
      },
    );
  }

  private async doClose(drainTimeoutMs: number): Promise<void> {
    // Removed while the listener still holds the inode, so its number cannot be reused yet.
    await this.socketFile?.remove();
    this.socketFile = undefined;
    const server = this.server;
    const stopped =
      server === undefined
        ? Promise.resolve()
        : new Promise<void>((resolve) => server.close(() => resolve()));
    for (const channel of this.pendingSockets) channel.destroy();
    this.pendingSockets.clear();
    this.push.broadcast((c) => c.reportHealth('draining'));
    const connections = [...this.active];
    const drained = await Promise.all(connections.map((c) => c.drain(drainTimeoutMs)));
    if (drained.includes(false)) {
      this.logger.warn('drain timeout: closing connections with requests in flight', {
        path: this.path,
        drainTimeoutMs,
        inFlight: connections.reduce((n, c) => n + c.inFlight, 0),
      });
    }
    await Promise.all(
      connections.map((c) => {
        if (c.inFlight > 0) c.destroy();
        return c.close();
      }),
    );
    await stopped;
    this.server = undefined;
    this.logger.info('closed', { path: this.path });
  }
}
