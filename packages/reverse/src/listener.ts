import { EventEmitter } from 'node:events';
import * as net from 'node:net';
import * as tls from 'node:tls';
import { AgentProtocolError, ErrorCode } from '@picket/protocol';
import {
  listenUnix,
  loadTlsMaterial,
  requiresClientCert,
  type SocketFile,
  socketError,
} from '@picket/protocol/internal';
import { Acceptor } from './accept.js';
import { Admission, type RejectionStage } from './admission.js';
import type { ReverseConnectionConfig, ReverseConnectionPool } from './config.js';
import type {
  ReverseConnection,
  ReverseConnectionInfo,
  ReverseTransportKind,
} from './connection.js';
import { formatHostPort, type HostPort, parseHostPort } from './endpoint.js';
import { invalidConfig, type ResolvedListenerConfig, resolveConfig } from './listener-config.js';
import { noteAcceptedPeer } from './peers.js';

export type { RejectionStage } from './admission.js';

/** A registration that did not produce a connection (emitted as `rejected`). */
export interface RegistrationRejection {
  /** the listener's name for the socket, e.g. `reverse:tcp#12` */
  socket: string;
  stage: RejectionStage;
  code: ErrorCode;
  /** why; for a rejection that was answered, exactly the `error` the agent received */
  reason: string;
  /** true when a RegistrationResponse with `success:false` was sent */
  responded: boolean;
  /** the agent id, once the registration decoded */
  agentId?: string;
  transport: ReverseTransportKind;
  remoteAddress?: string;
}

/** Events of a {@link ReverseConnectionListener}. */
export interface ReverseListenerEventMap {
  /** an agent registered; the connection is ready for calls */
  connection: [connection: ReverseConnection, info: ReverseConnectionInfo];
  /** a registered connection ended (`error` says why, unless closed locally) */
  disconnect: [connection: ReverseConnection, error?: AgentProtocolError];
  /** a connection attempt did not register (the reason was logged too) */
  rejected: [rejection: RegistrationRejection];
  /** the listener closed */
  close: [];
}

/** Counters of a listener, live. */
export interface ReverseListenerStats {
  /** sockets accepted */
  accepted: number;
  /** registrations that succeeded */
  registered: number;
  /** registrations answered with `success:false` */
  refused: number;
  /** sockets dropped without a response */
  dropped: number;
}

interface Subscriber {
  push(connection: ReverseConnection): void;
  end(): void;
}

/**
 * The proxy side of reverse connections (the seeds' `ReverseConnectionListener`):
 * agents behind NAT or scaled dynamically dial the proxy, register (frame 0x01 →
 * 0x02, spec §3), and the socket then carries normal v2 traffic in JSON.
 *
 * ```ts
 * const listener = await ReverseConnectionListener.bindTcp('0.0.0.0:7443', {
 *   tls: { cert, key }, tokens: { 'waf-1': [process.env.WAF_TOKEN!] }, pool,
 * });
 * ```
 *
 * Beyond upstream (which has UDS only and checks tokens for presence): TCP and
 * TLS (optionally with client certificates), real token checks in constant time
 * or through an async verifier, glob allow-lists, per-agent and listener-wide
 * caps checked *before* success is answered, a registration timeout covering the
 * whole frame, bounded pending registrations, and no token in any log, error or event.
 *
 * Each accepted connection is a {@link ReverseConnection} (`AgentTransport`,
 * `kind: 'reverse'`), delivered as a `connection` event, through
 * `for await (const c of listener)` / {@link connections}, and to the attached pool.
 */
export class ReverseConnectionListener
  extends EventEmitter<ReverseListenerEventMap>
  implements AsyncIterable<ReverseConnection>
{
  /** the listener's wire */
  readonly transport: ReverseTransportKind;
  /** the socket path (`bindUds`) */
  readonly socketPath: string | undefined;
  /** counters, live */
  readonly stats: ReverseListenerStats = { accepted: 0, registered: 0, refused: 0, dropped: 0 };

  private readonly config: ResolvedListenerConfig;
  private readonly server: net.Server;
  private pool: ReverseConnectionPool | undefined;
  private readonly sockets = new Set<net.Socket>();
  private readonly admission: Admission;
  private readonly acceptor: Acceptor;
  private readonly subscribers = new Set<Subscriber>();
  private socketFile: SocketFile | undefined;
  private closing: Promise<void> | undefined;

  private constructor(
    transport: ReverseTransportKind,
    server: net.Server,
    config: ReverseConnectionConfig,
    resolved: ResolvedListenerConfig,
    socketPath: string | undefined,
  ) {
    super();
    this.transport = transport;
    this.server = server;
    this.config = resolved;
    this.admission = new Admission(resolved);
    const listener = this;
    this.acceptor = new Acceptor(transport, resolved, config, this.admission, {
      stats: this.stats,
      get pool() {
        return listener.pool;
      },
      get closing() {
        return listener.closing !== undefined;
      },
      rejected: (rejection) => this.emit('rejected', rejection),
      registered: (connection, info) => this.onRegistered(connection, info),
    });
    this.socketPath = socketPath;
    this.pool = config.pool;
    // Every socket, including TLS ones still in their handshake, so close() can end them all.
    server.on('connection', (socket: net.Socket) => {
      if (transport === 'tls') noteAcceptedPeer(socket);
      this.sockets.add(socket);
      socket.once('close', () => this.sockets.delete(socket));
    });
    server.on('error', (err) =>
      this.config.logger.error('reverse listener error', { listener: this.name, error: err }),
    );
    server.on('drop', () => {
      this.stats.dropped++;
      this.config.logger.warn('reverse listener dropped a connection: socket limit reached', {
        listener: this.name,
      });
    });
  }

  /**
   * Listens on a Unix socket (the seeds' `bind_uds`). A stale socket file at `path`
   * is replaced; anything else there (a regular file, a live socket) is refused
   * rather than deleted. The file gets mode `socketMode` (0660) from the start: it never
   * exists at `path` with the umask's wider bits.
   */
  static async bindUds(
    path: string,
    config: ReverseConnectionConfig = {},
  ): Promise<ReverseConnectionListener> {
    if (config.tls !== undefined) {
      throw invalidConfig('TLS is for bindTcp; a Unix socket is protected by its file mode');
    }
    const socketPath = path.startsWith('unix:') ? path.slice(5) : path;
    if (socketPath === '') throw invalidConfig('empty socket path');
    const resolved = resolveConfig(config);
    const server = net.createServer();
    const listener = new ReverseConnectionListener('uds', server, config, resolved, socketPath);
    server.on('connection', (socket: net.Socket) => listener.acceptor.onSocket(socket));
    server.maxConnections = resolved.maxConnections + resolved.maxPendingRegistrations;
    listener.socketFile = await listenUnix(server, socketPath, {
      mode: resolved.socketMode,
      backlog: resolved.backlog,
      logger: resolved.logger,
    });
    resolved.logger.info('reverse listener bound', { listener: listener.name });
    return listener;
  }

  /**
   * Listens on TCP (`host:port`, `tcp://host:port`, `[::1]:port`, or `{ host, port }`;
   * port 0 picks a free port, see {@link address}). With `config.tls` it speaks TLS; with a
   * `tls.ca` it requires client certificates signed by it (`requireClientCert: false`: asks
   * for one but lets agents without through, see `authorized`).
   */
  static async bindTcp(
    address: string | HostPort,
    config: ReverseConnectionConfig = {},
  ): Promise<ReverseConnectionListener> {
    const hp =
      typeof address === 'string'
        ? parseHostPort(address.replace(/^(tcp|tls):\/\//i, ''), true, address)
        : address;
    const resolved = resolveConfig(config);
    let server: net.Server;
    let kind: ReverseTransportKind;
    if (config.tls !== undefined) {
      const t = config.tls;
      kind = 'tls';
      // with a `ca`, a client certificate is asked for; required unless requireClientCert: false
      server = tls.createServer({
        ...loadTlsMaterial(t, 'listen', 'reverse listener: tls'),
        requestCert: t.ca !== undefined,
        rejectUnauthorized: requiresClientCert(t),
        minVersion: 'TLSv1.2',
        handshakeTimeout: resolved.handshakeTimeout,
      });
    } else {
      kind = 'tcp';
      server = net.createServer();
    }
    const listener = new ReverseConnectionListener(kind, server, config, resolved, undefined);
    if (kind === 'tls') {
      server.on('secureConnection', (socket: tls.TLSSocket) => listener.acceptor.onSocket(socket));
      server.on('tlsClientError', (err: Error, socket: tls.TLSSocket) =>
        listener.acceptor.onTlsError(err, socket),
      );
    } else {
      server.on('connection', (socket: net.Socket) => listener.acceptor.onSocket(socket));
    }
    await listen(
      server,
      { host: hp.host, port: hp.port, backlog: resolved.backlog },
      formatHostPort(hp.host, hp.port),
    );
    server.maxConnections = resolved.maxConnections + resolved.maxPendingRegistrations;
    resolved.logger.info('reverse listener bound', { listener: listener.name });
    return listener;
  }

  /** `unix:/path`, `tcp://host:port` or `tls://host:port`: what an agent passes to `connectReverse`. */
  get endpoint(): string {
    if (this.socketPath !== undefined) return `unix:${this.socketPath}`;
    const a = this.address();
    return `${this.transport}://${formatHostPort(a.host, a.port)}`;
  }

  /** The bound TCP address (with the real port after binding port 0). */
  address(): HostPort {
    const a = this.server.address();
    if (a === null || typeof a === 'string') {
      throw new AgentProtocolError(
        ErrorCode.InvalidArgument,
        `${this.name}: not a TCP listener (or closed)`,
      );
    }
    return { host: a.address, port: a.port };
  }

  /** Registered, open connections. */
  get connectionCount(): number {
    return this.admission.size;
  }

  /** Sockets that have not finished registering (including ones being refused). */
  get pendingCount(): number {
    return this.acceptor.pending.size;
  }

  /** Every open socket of the listener: registered, registering, or in the TLS handshake. */
  get socketCount(): number {
    return this.sockets.size;
  }

  /** True once `close()` was called. */
  get closed(): boolean {
    return this.closing !== undefined;
  }

  /** The open connections of `agentId`, or of every agent. */
  list(agentId?: string): ReverseConnection[] {
    return this.admission.list(agentId);
  }

  /**
   * Adds every connection registered from now on to `pool` (replacing a pool given
   * earlier). Connections already open stay where they are.
   */
  attachPool(pool: ReverseConnectionPool): void {
    if (typeof pool?.addConnection !== 'function') {
      throw invalidConfig('attachPool needs an object with addConnection(agentId, transport)');
    }
    this.pool = pool;
  }

  /**
   * Connections registered from the moment this is called, in order, until the
   * listener closes. Connections that close before they are taken are skipped.
   */
  connections(): AsyncIterableIterator<ReverseConnection> {
    const queue: ReverseConnection[] = [];
    const waiters: ((r: IteratorResult<ReverseConnection>) => void)[] = [];
    let done = this.closing !== undefined;
    const finish = (): void => {
      done = true;
      this.subscribers.delete(sub);
      for (const w of waiters.splice(0, waiters.length)) w({ value: undefined, done: true });
    };
    const sub: Subscriber = {
      push: (c) => {
        const w = waiters.shift();
        if (w !== undefined) w({ value: c, done: false });
        else queue.push(c);
      },
      end: finish,
    };
    if (!done) this.subscribers.add(sub);
    const iterator: AsyncIterableIterator<ReverseConnection> = {
      next: () => {
        while (queue.length > 0) {
          const c = queue.shift() as ReverseConnection;
          if (!c.closed) return Promise.resolve({ value: c, done: false });
        }
        if (done) return Promise.resolve({ value: undefined, done: true });
        return new Promise((resolve) => waiters.push(resolve));
      },
      return: () => {
        queue.length = 0;
        finish();
        return Promise.resolve({ value: undefined, done: true });
      },
      [Symbol.asyncIterator]: () => iterator,
    };
    return iterator;
  }

  /** `for await (const connection of listener)`: see {@link connections}. */
  [Symbol.asyncIterator](): AsyncIterator<ReverseConnection> {
    return this.connections();
  }

  /** Number of sockets the server holds, as Node counts them. */
  getSocketCount(): Promise<number> {
    return new Promise((resolve, reject) =>
      this.server.getConnections((err, n) => (err ? reject(err) : resolve(n))),
    );
  }

  /**
   * Stops listening, drops registrations in progress, closes every accepted
   * connection (pending calls are cancelled and rejected), ends the iterators and
   * removes the socket file. Idempotent.
   */
  close(): Promise<void> {
    this.closing ??= this.doClose();
    return this.closing;
  }

  // ------------------------------------------------------------------ internals

  private get name(): string {
    if (this.socketPath !== undefined) return `reverse:uds:${this.socketPath}`;
    const a = this.server.address();
    return a !== null && typeof a === 'object'
      ? `reverse:${this.transport}:${formatHostPort(a.address, a.port)}`
      : `reverse:${this.transport}`;
  }

  private onRegistered(connection: ReverseConnection, info: ReverseConnectionInfo): void {
    connection.once('close', (error) => this.onConnectionClose(connection, error));
    this.emit('connection', connection, info);
    for (const sub of [...this.subscribers]) sub.push(connection);
  }

  private onConnectionClose(connection: ReverseConnection, error?: AgentProtocolError): void {
    this.admission.remove(connection);
    this.config.logger.info('reverse connection closed', {
      agentId: connection.agentId,
      connectionId: connection.connectionId,
      ...(error === undefined ? {} : { reason: error.message }),
    });
    this.emit('disconnect', connection, error);
  }

  private async doClose(): Promise<void> {
    // Only our own file (someone may have bound a new listener at the path since), removed
    // while the listener still holds the inode so its number cannot be reused yet.
    await this.socketFile?.remove();
    this.socketFile = undefined;
    const stopped = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const socket of this.acceptor.pending) socket.destroy();
    this.acceptor.pending.clear();
    for (const sub of [...this.subscribers]) sub.end();
    await Promise.all(this.admission.list().map((c) => c.close()));
    // TLS sockets still in their handshake, refused sockets still flushing.
    for (const socket of this.sockets) socket.destroy();
    await stopped;
    this.config.logger.info('reverse listener closed', { listener: this.name });
    this.emit('close');
  }
}

function listen(server: net.Server, options: net.ListenOptions, where: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const onError = (err: Error): void => {
      reject(socketError(err, 'listen', where));
    };
    server.once('error', onError);
    server.listen(options, () => {
      server.off('error', onError);
      resolve();
    });
  });
}
