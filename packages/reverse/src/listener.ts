import { EventEmitter } from 'node:events';
import * as net from 'node:net';
import * as tls from 'node:tls';
import { encodeRegistrationResponse } from '@picket/codec';
import { encodeFrame } from '@picket/framing';
import {
  AgentProtocolError,
  ErrorCode,
  MessageType,
  PROTOCOL_VERSION,
  parseRegistrationRequest,
  type RegistrationRequest,
  type RegistrationResponse,
} from '@picket/protocol';
import { listenUnix, type SocketFile } from '@picket/protocol/internal';
import type { Logger } from '@picket/uds';
import { FrameChannel, PICKET_PROXY_ID } from '@picket/uds/internal';
import { AllowList, redact, TokenSet, type TokenVerifier, type TokenVerifyInfo } from './auth.js';
import {
  DEFAULT_REVERSE_CONFIG,
  type ReverseConnectionConfig,
  type ReverseConnectionPool,
} from './config.js';
import {
  type RedactedRegistration,
  ReverseConnection,
  type ReverseConnectionInfo,
  type ReverseTransportKind,
} from './connection.js';
import { formatHostPort, type HostPort, parseHostPort } from './endpoint.js';
import { readFirstFrame } from './first-frame.js';
import { defaultLogger } from './logger.js';
import { PICKET_REVERSE_VERSION } from './version.js';

/** Where a registration attempt failed. */
export type RejectionStage =
  /** dropped at accept: too many registrations pending, or the listener is closing */
  | 'accept'
  /** the TLS handshake failed (e.g. missing or untrusted client certificate) */
  | 'tls'
  /** no valid first frame: timeout, EOF, wrong type, bad length */
  | 'read'
  /** the registration frame did not decode */
  | 'decode'
  /** the spec's checks: version, empty id, allow-list, token presence */
  | 'validate'
  /** the token was wrong or could not be verified */
  | 'auth'
  /** a connection cap was reached */
  | 'limit'
  /** the attached pool refused the connection */
  | 'pool';

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

interface Resolved {
  backlog: number;
  handshakeTimeout: number;
  maxConnectionsPerAgent: number;
  maxConnections: number;
  maxPendingRegistrations: number;
  maxRegistrationBytes: number;
  requestTimeout: number;
  socketMode: number;
  proxyId: string;
  proxyVersion: string;
  allow: AllowList;
  requireAuth: boolean;
  tokens: TokenSet | undefined;
  verifyToken: TokenVerifier | undefined;
  logger: Logger;
  clock: () => number;
}

class Rejection extends Error {
  constructor(
    readonly stage: RejectionStage,
    readonly code: ErrorCode,
    readonly text: string,
  ) {
    super(text);
  }
}

let socketCounter = 0;

function invalidConfig(message: string): AgentProtocolError {
  return new AgentProtocolError(ErrorCode.InvalidArgument, `reverse listener: ${message}`);
}

function positiveInt(name: string, value: number | undefined, fallback: number, min = 1): number {
  const v = value ?? fallback;
  if (!Number.isInteger(v) || v < min) {
    throw invalidConfig(`${name} must be an integer ≥ ${min}, got ${String(value)}`);
  }
  return v;
}

function resolveConfig(config: ReverseConnectionConfig): Resolved {
  if (config.tokens !== undefined && config.verifyToken !== undefined) {
    throw invalidConfig('configure either tokens or verifyToken, not both');
  }
  if (config.verifyToken !== undefined && typeof config.verifyToken !== 'function') {
    throw invalidConfig('verifyToken must be a function');
  }
  const hasCredentials = config.tokens !== undefined || config.verifyToken !== undefined;
  if (config.requireAuth === true && !hasCredentials) {
    throw invalidConfig(
      'requireAuth is set but neither tokens nor verifyToken is configured; picket does not accept arbitrary tokens',
    );
  }
  if (config.requireAuth === false && hasCredentials) {
    throw invalidConfig('requireAuth is false but tokens or verifyToken is configured');
  }
  const timeout = config.handshakeTimeout ?? DEFAULT_REVERSE_CONFIG.handshakeTimeout;
  if (!(timeout > 0)) throw invalidConfig(`handshakeTimeout must be > 0 ms, got ${timeout}`);
  const requestTimeout = config.requestTimeout ?? DEFAULT_REVERSE_CONFIG.requestTimeout;
  if (!(requestTimeout > 0))
    throw invalidConfig(`requestTimeout must be > 0 ms, got ${requestTimeout}`);
  return {
    backlog: positiveInt('backlog', config.backlog, DEFAULT_REVERSE_CONFIG.backlog),
    handshakeTimeout: timeout,
    maxConnectionsPerAgent: positiveInt(
      'maxConnectionsPerAgent',
      config.maxConnectionsPerAgent,
      DEFAULT_REVERSE_CONFIG.maxConnectionsPerAgent,
    ),
    maxConnections: positiveInt(
      'maxConnections',
      config.maxConnections,
      DEFAULT_REVERSE_CONFIG.maxConnections,
    ),
    maxPendingRegistrations: positiveInt(
      'maxPendingRegistrations',
      config.maxPendingRegistrations,
      DEFAULT_REVERSE_CONFIG.maxPendingRegistrations,
    ),
    maxRegistrationBytes: positiveInt(
      'maxRegistrationBytes',
      config.maxRegistrationBytes,
      DEFAULT_REVERSE_CONFIG.maxRegistrationBytes,
      2,
    ),
    requestTimeout,
    socketMode: config.socketMode ?? DEFAULT_REVERSE_CONFIG.socketMode,
    proxyId: config.proxyId ?? PICKET_PROXY_ID,
    proxyVersion: config.proxyVersion ?? PICKET_REVERSE_VERSION,
    allow: new AllowList(config.allowedAgents ?? []),
    requireAuth: hasCredentials,
    tokens: config.tokens === undefined ? undefined : new TokenSet(config.tokens),
    verifyToken: config.verifyToken,
    logger: config.logger ?? defaultLogger,
    clock: config.clock ?? Date.now,
  };
}

/** An error text of a decode failure with anything that could be the token removed. */
function sanitizeDecodeError(message: string, raw: unknown): string {
  let text = message;
  const token =
    raw !== null && typeof raw === 'object'
      ? (raw as Record<string, unknown>).auth_token
      : undefined;
  if (token !== undefined && token !== null) {
    // A token of the wrong type is described by the validator; say only that it is wrong.
    if (text.includes('auth_token'))
      return 'RegistrationRequest.auth_token: expected a string or null';
    text = redact(text, typeof token === 'string' ? token : String(token));
  }
  return text;
}

const UTF8 = new TextDecoder('utf-8', { fatal: true });

interface Peer {
  remoteAddress?: string;
  remotePort?: number;
}

/** Peers of accepted TCP sockets, noted at accept: a socket that failed TLS has forgotten its own. */
const acceptedPeers = new WeakMap<net.Socket, Peer>();

/**
 * The peer of a socket. A TLS socket that failed its handshake has lost its handle, so its
 * own `remoteAddress` is undefined; then the address noted when the TCP socket under it
 * (`_parent`, which Node's TLS server sets on every socket it wraps) was accepted is used.
 */
function peerOf(socket: net.Socket): Peer {
  if (socket.remoteAddress !== undefined) {
    return { remoteAddress: socket.remoteAddress, remotePort: socket.remotePort };
  }
  const parent = (socket as net.Socket & { _parent?: net.Socket | null })._parent;
  return (parent && acceptedPeers.get(parent)) || {};
}

/** OpenSSL's text for the certificate verification codes a refused client is likely to hit. */
const VERIFY_ERRORS: Readonly<Record<string, string>> = {
  CERT_HAS_EXPIRED: 'certificate has expired',
  CERT_NOT_YET_VALID: 'certificate is not yet valid',
  CERT_REVOKED: 'certificate revoked',
  CERT_SIGNATURE_FAILURE: 'certificate signature failure',
  CERT_UNTRUSTED: 'certificate not trusted',
  CERT_REJECTED: 'certificate rejected',
  DEPTH_ZERO_SELF_SIGNED_CERT: 'self-signed certificate',
  SELF_SIGNED_CERT_IN_CHAIN:
    'self-signed certificate in certificate chain; not signed by a trusted CA',
  UNABLE_TO_GET_ISSUER_CERT: 'unable to get issuer certificate; not signed by a trusted CA',
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    'unable to get local issuer certificate; not signed by a trusted CA',
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'unable to verify the first certificate',
  INVALID_PURPOSE: 'unsuitable certificate purpose; not a client certificate',
  INVALID_CA: 'invalid CA certificate',
  PATH_LENGTH_EXCEEDED: 'path length constraint exceeded',
};

/**
 * Why a TLS handshake failed, for the log and the `rejected` event. Node reports a client
 * certificate that failed verification (expired, untrusted, wrong purpose …) as "socket hang
 * up": it destroys the socket itself after the handshake, and only `authorizationError`
 * keeps the real reason.
 */
function tlsFailureReason(err: Error, socket: tls.TLSSocket): string {
  const { remoteAddress, remotePort } = peerOf(socket);
  const from =
    remoteAddress === undefined ? '' : ` from ${formatHostPort(remoteAddress, remotePort ?? 0)}`;
  const verify = socket.authorizationError as unknown;
  if (verify !== null && verify !== undefined && verify !== '') {
    const code =
      verify instanceof Error ? String((verify as NodeJS.ErrnoException).code) : String(verify);
    const text = VERIFY_ERRORS[code];
    return `TLS handshake failed: client certificate${from} refused: ${code}${text === undefined ? '' : ` (${text})`}`;
  }
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE') {
    return `TLS handshake failed: the agent${from} presented no client certificate (requireClientCert)`;
  }
  // OpenSSL errors carry a short `reason` besides their long message.
  const reason = (err as Error & { reason?: unknown }).reason;
  const text = typeof reason === 'string' && reason !== '' ? reason : err.message;
  return `TLS handshake failed${from}: ${code === undefined ? '' : `${code} `}${text}`;
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

  private readonly config: Resolved;
  private readonly raw: ReverseConnectionConfig;
  private readonly server: net.Server;
  private pool: ReverseConnectionPool | undefined;
  private readonly sockets = new Set<net.Socket>();
  private readonly pending = new Set<net.Socket>();
  private readonly live = new Map<string, ReverseConnection>();
  private readonly byAgent = new Map<string, Set<ReverseConnection>>();
  private readonly subscribers = new Set<Subscriber>();
  private issuedMs = -1;
  private readonly issuedIds = new Set<string>();
  private socketFile: SocketFile | undefined;
  private closing: Promise<void> | undefined;

  private constructor(
    transport: ReverseTransportKind,
    server: net.Server,
    config: ReverseConnectionConfig,
    resolved: Resolved,
    socketPath: string | undefined,
  ) {
    super();
    this.transport = transport;
    this.server = server;
    this.raw = config;
    this.config = resolved;
    this.socketPath = socketPath;
    this.pool = config.pool;
    // Every socket, including TLS ones still in their handshake, so close() can end them all.
    server.on('connection', (socket: net.Socket) => {
      if (transport === 'tls') {
        acceptedPeers.set(socket, {
          remoteAddress: socket.remoteAddress,
          remotePort: socket.remotePort,
        });
      }
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
    server.on('connection', (socket: net.Socket) => listener.onSocket(socket));
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
   * port 0 picks a free port, see {@link address}). With `config.tls` it speaks TLS,
   * optionally asking for (`requestClientCert`) or requiring (`requireClientCert`)
   * client certificates.
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
      if (t.cert === undefined || t.key === undefined) {
        throw invalidConfig('tls needs cert and key');
      }
      kind = 'tls';
      server = tls.createServer({
        cert: t.cert,
        key: t.key,
        passphrase: t.passphrase,
        ca: t.ca,
        requestCert: t.requestClientCert === true || t.requireClientCert === true,
        rejectUnauthorized: t.requireClientCert === true,
        minVersion: t.minVersion ?? 'TLSv1.2',
        handshakeTimeout: resolved.handshakeTimeout,
      });
    } else {
      kind = 'tcp';
      server = net.createServer();
    }
    const listener = new ReverseConnectionListener(kind, server, config, resolved, undefined);
    if (kind === 'tls') {
      server.on('secureConnection', (socket: tls.TLSSocket) => listener.onSocket(socket));
      server.on('tlsClientError', (err: Error, socket: tls.TLSSocket) =>
        listener.onTlsError(err, socket),
      );
    } else {
      server.on('connection', (socket: net.Socket) => listener.onSocket(socket));
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
    return this.live.size;
  }

  /** Sockets that have not finished registering (including ones being refused). */
  get pendingCount(): number {
    return this.pending.size;
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
    if (agentId === undefined) return [...this.live.values()];
    return [...(this.byAgent.get(agentId) ?? [])];
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

  private onTlsError(err: Error, socket: tls.TLSSocket): void {
    this.drop(
      socket,
      `reverse:tls#${++socketCounter}`,
      new Rejection('tls', ErrorCode.Unauthenticated, tlsFailureReason(err, socket)),
    );
  }

  private onSocket(socket: net.Socket): void {
    const id = `reverse:${this.transport}#${++socketCounter}`;
    this.stats.accepted++;
    // One listener for the socket's whole life: a late error must never be unhandled.
    socket.on('error', (err) =>
      this.config.logger.debug('reverse socket error', { socket: id, error: err.message }),
    );
    if (this.closing !== undefined) {
      this.drop(socket, id, new Rejection('accept', ErrorCode.Unavailable, 'listener is closing'));
      return;
    }
    if (this.pending.size >= this.config.maxPendingRegistrations) {
      this.drop(
        socket,
        id,
        new Rejection(
          'accept',
          ErrorCode.Unavailable,
          `too many registrations in progress (maxPendingRegistrations ${this.config.maxPendingRegistrations})`,
        ),
      );
      return;
    }
    this.pending.add(socket);
    socket.once('close', () => this.pending.delete(socket));
    if (this.transport !== 'uds') {
      socket.setNoDelay(true);
      // Agents sit behind NAT: keepalives stop idle mappings from expiring silently.
      socket.setKeepAlive(true, 30_000);
    }
    this.register(socket, id).catch((err: unknown) => {
      this.config.logger.error('reverse registration failed unexpectedly', {
        socket: id,
        error: err instanceof Error ? err.message : String(err),
      });
      this.pending.delete(socket);
      socket.destroy();
    });
  }

  private remote(socket: net.Socket): Peer {
    if (this.transport === 'uds') return {};
    return peerOf(socket);
  }

  /** Drops a socket without a response (errors before validation, per spec §3). */
  private drop(socket: net.Socket, id: string, rejection: Rejection, agentId?: string): void {
    const remote = this.remote(socket);
    this.stats.dropped++;
    this.pending.delete(socket);
    socket.destroy();
    this.config.logger.warn(`dropping reverse connection: ${rejection.text}`, {
      socket: id,
      stage: rejection.stage,
      ...(agentId === undefined ? {} : { agentId }),
      ...remote,
    });
    this.emit('rejected', {
      socket: id,
      stage: rejection.stage,
      code: rejection.code,
      reason: rejection.text,
      responded: false,
      ...(agentId === undefined ? {} : { agentId }),
      transport: this.transport,
      ...(remote.remoteAddress === undefined ? {} : { remoteAddress: remote.remoteAddress }),
    });
  }

  /** Answers `success:false` with the reason, then closes. */
  private refuse(socket: net.Socket, id: string, rejection: Rejection, agentId: string): void {
    const remote = this.remote(socket);
    this.stats.refused++;
    const frame = this.responseFrame({
      success: false,
      error: rejection.text,
      proxy_id: this.config.proxyId,
      proxy_version: this.config.proxyVersion,
      connection_id: '',
    });
    // Read and discard anything else the peer sends, so closing sends FIN rather than RST
    // (an RST could destroy the response before the agent reads it).
    socket.on('data', () => {});
    socket.resume();
    const guard = setTimeout(() => socket.destroy(), 2000);
    guard.unref();
    socket.once('close', () => clearTimeout(guard));
    if (!socket.destroyed) socket.end(frame);
    this.config.logger.warn(`reverse registration refused: ${rejection.text}`, {
      socket: id,
      stage: rejection.stage,
      agentId,
      ...remote,
    });
    const remoteAddress = remote.remoteAddress;
    this.emit('rejected', {
      socket: id,
      stage: rejection.stage,
      code: rejection.code,
      reason: rejection.text,
      responded: true,
      agentId,
      transport: this.transport,
      ...(remoteAddress === undefined ? {} : { remoteAddress }),
    });
  }

  private responseFrame(response: RegistrationResponse): Buffer {
    return Buffer.from(
      encodeFrame(MessageType.HandshakeResponse, encodeRegistrationResponse(response)),
    );
  }

  private async register(socket: net.Socket, id: string): Promise<void> {
    const cfg = this.config;
    let frame: Awaited<ReturnType<typeof readFirstFrame>>;
    try {
      frame = await readFirstFrame(socket, {
        maxFrameLength: cfg.maxRegistrationBytes,
        expectedType: MessageType.HandshakeRequest,
        timeoutMs: cfg.handshakeTimeout,
        what: 'RegistrationRequest (0x01)',
      });
    } catch (err) {
      const e = AgentProtocolError.from(err, ErrorCode.InvalidMessage, id);
      this.drop(socket, id, new Rejection('read', e.code, e.message));
      return;
    }
    if (this.closing !== undefined) {
      this.drop(socket, id, new Rejection('accept', ErrorCode.Unavailable, 'listener is closing'));
      return;
    }

    // Decoding. Failures here are "before validation": no response (spec §3). The
    // reasons are built so they cannot contain the token.
    let raw: unknown;
    try {
      raw = JSON.parse(UTF8.decode(frame.payload));
    } catch {
      this.drop(
        socket,
        id,
        new Rejection(
          'decode',
          ErrorCode.InvalidMessage,
          `RegistrationRequest is not valid UTF-8 JSON (${frame.payload.length} bytes)`,
        ),
      );
      return;
    }
    let request: RegistrationRequest;
    try {
      request = parseRegistrationRequest(raw);
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      this.drop(
        socket,
        id,
        new Rejection(
          'decode',
          ErrorCode.InvalidMessage,
          `invalid RegistrationRequest: ${sanitizeDecodeError(message, raw)}`,
        ),
      );
      return;
    }
    const agentId = request.agent_id;
    const token = request.auth_token;
    // From here on only `token` holds the secret; it is never logged or emitted.
    request.auth_token = null;

    const invalid = this.validate(request, token);
    if (invalid !== undefined) {
      this.refuse(socket, id, invalid, agentId);
      return;
    }

    const remote = this.remote(socket);
    const tlsSocket = socket instanceof tls.TLSSocket ? socket : undefined;
    if (cfg.requireAuth) {
      const info: TokenVerifyInfo = {
        transport: this.transport,
        ...remote,
        ...(tlsSocket === undefined
          ? {}
          : { authorized: tlsSocket.authorized, peerCertificate: tlsSocket.getPeerCertificate() }),
        metadata: request.metadata,
        capabilities: request.capabilities,
      };
      const denied = await this.authenticate(agentId, token as string, info, id);
      if (denied !== undefined) {
        if (socket.destroyed) {
          this.drop(
            socket,
            id,
            new Rejection('auth', denied.code, `${denied.text} (peer gone)`),
            agentId,
          );
        } else {
          this.refuse(socket, id, denied, agentId);
        }
        return;
      }
    }
    if (socket.destroyed) {
      this.drop(
        socket,
        id,
        new Rejection(
          'read',
          ErrorCode.ConnectionClosed,
          'peer closed the connection during registration',
        ),
        agentId,
      );
      return;
    }
    if (this.closing !== undefined) {
      this.drop(
        socket,
        id,
        new Rejection('accept', ErrorCode.Unavailable, 'listener is closing'),
        agentId,
      );
      return;
    }
    // Everything below runs in one synchronous block: the caps cannot change under us.
    this.accept(socket, id, request, token !== null, frame.rest);
  }

  /** The spec's checks in the spec's order (first failure wins), with the spec's texts. */
  private validate(request: RegistrationRequest, token: string | null): Rejection | undefined {
    if (request.protocol_version !== PROTOCOL_VERSION) {
      return new Rejection(
        'validate',
        ErrorCode.VersionMismatch,
        `Protocol version mismatch: expected ${PROTOCOL_VERSION}, got ${request.protocol_version}`,
      );
    }
    if (request.agent_id === '') {
      return new Rejection(
        'validate',
        ErrorCode.InvalidMessage,
        'Invalid message format: Agent ID cannot be empty',
      );
    }
    if (!this.config.allow.allows(request.agent_id)) {
      return new Rejection(
        'validate',
        ErrorCode.InvalidMessage,
        `Invalid message format: Agent '${request.agent_id}' is not in the allowed list`,
      );
    }
    if (this.config.requireAuth && token === null) {
      return new Rejection(
        'validate',
        ErrorCode.Unauthenticated,
        'Invalid message format: Authentication required but no token provided',
      );
    }
    return undefined;
  }

  private async authenticate(
    agentId: string,
    token: string,
    info: TokenVerifyInfo,
    id: string,
  ): Promise<Rejection | undefined> {
    const wrong = new Rejection(
      'auth',
      ErrorCode.Unauthenticated,
      `Authentication failed: invalid token for agent '${agentId}'`,
    );
    if (token === '') return wrong;
    const { tokens, verifyToken, handshakeTimeout, logger } = this.config;
    if (tokens !== undefined) return tokens.verify(agentId, token) ? undefined : wrong;
    if (verifyToken === undefined) return wrong;
    let timer: NodeJS.Timeout | undefined;
    try {
      const verdict = await Promise.race([
        Promise.resolve().then(() => verifyToken(agentId, token, info)),
        new Promise<'timeout'>((resolve) => {
          timer = setTimeout(() => resolve('timeout'), handshakeTimeout);
        }),
      ]);
      if (verdict === 'timeout') {
        return new Rejection(
          'auth',
          ErrorCode.Timeout,
          `Authentication failed: token verification for agent '${agentId}' timed out`,
        );
      }
      return verdict === true ? undefined : wrong;
    } catch (err) {
      logger.error('verifyToken threw; refusing the registration', {
        socket: id,
        agentId,
        error: redact(err instanceof Error ? err.message : String(err), token),
      });
      return new Rejection(
        'auth',
        ErrorCode.Unauthenticated,
        `Authentication failed: token verification for agent '${agentId}' failed`,
      );
    } finally {
      clearTimeout(timer);
    }
  }

  /** `<agent_id>-<ms hex>`, `-<n>` appended while that id was issued in the same ms or is open. */
  private nextConnectionId(agentId: string, now: number): string {
    if (now !== this.issuedMs) {
      this.issuedMs = now;
      this.issuedIds.clear();
    }
    const base = `${agentId}-${Math.max(0, Math.floor(now)).toString(16)}`;
    let candidate = base;
    for (let n = 1; this.issuedIds.has(candidate) || this.live.has(candidate); n++) {
      candidate = `${base}-${n}`;
    }
    this.issuedIds.add(candidate);
    return candidate;
  }

  private accept(
    socket: net.Socket,
    id: string,
    request: RegistrationRequest,
    hasToken: boolean,
    rest: Buffer,
  ): void {
    const cfg = this.config;
    const agentId = request.agent_id;
    const mine = this.byAgent.get(agentId)?.size ?? 0;
    if (mine >= cfg.maxConnectionsPerAgent) {
      this.refuse(
        socket,
        id,
        new Rejection(
          'limit',
          ErrorCode.Unavailable,
          `Connection limit reached: agent '${agentId}' already has ${mine} connections (maxConnectionsPerAgent ${cfg.maxConnectionsPerAgent})`,
        ),
        agentId,
      );
      return;
    }
    if (this.live.size >= cfg.maxConnections) {
      this.refuse(
        socket,
        id,
        new Rejection(
          'limit',
          ErrorCode.Unavailable,
          `Connection limit reached: the listener already has ${this.live.size} connections (maxConnections ${cfg.maxConnections})`,
        ),
        agentId,
      );
      return;
    }

    const now = cfg.clock();
    const connectionId = this.nextConnectionId(agentId, now);
    const remote = this.remote(socket);
    const info: ReverseConnectionInfo = {
      agentId,
      connectionId,
      metadata: request.metadata,
      transport: this.transport,
      ...remote,
      ...(socket instanceof tls.TLSSocket ? { authorized: socket.authorized } : {}),
      registeredAt: now,
    };
    const { auth_token: _omitted, ...rest0 } = request;
    const registration: RedactedRegistration = { ...rest0, hasToken };

    // The bytes after the registration frame belong to the connection engine.
    if (rest.length > 0) socket.unshift(rest);
    const channel = new FrameChannel(socket, {
      id: `reverse:${connectionId}`,
      maxFrameLength: this.raw.maxFrameLength,
      maxWriteQueueBytes: this.raw.maxWriteQueueBytes,
    });
    const connection = new ReverseConnection(channel, {
      id: `reverse:${connectionId}`,
      agentId,
      capabilities: request.capabilities,
      timeoutMs: cfg.requestTimeout,
      logger: cfg.logger,
      clock: cfg.clock,
      info,
      registration,
    });

    // The pool may send on the connection as soon as it has it (queued calls), but
    // FrameChannel writes leave on the next tick, while the response below is written
    // to the socket synchronously: the agent always reads the response first.
    const pool = this.pool;
    if (pool !== undefined) {
      try {
        pool.addConnection(agentId, connection);
      } catch (err) {
        const message = err instanceof Error ? err.message : String(err);
        const rejection = new Rejection(
          'pool',
          ErrorCode.Unavailable,
          `Connection refused by the agent pool: ${message}`,
        );
        this.stats.refused++;
        socket.write(
          this.responseFrame({
            success: false,
            error: rejection.text,
            proxy_id: cfg.proxyId,
            proxy_version: cfg.proxyVersion,
            connection_id: '',
          }),
        );
        void connection.close();
        cfg.logger.warn(`reverse registration refused: ${rejection.text}`, {
          socket: id,
          stage: 'pool',
          agentId,
          ...remote,
        });
        this.emit('rejected', {
          socket: id,
          stage: 'pool',
          code: rejection.code,
          reason: rejection.text,
          responded: true,
          agentId,
          transport: this.transport,
          ...(remote.remoteAddress === undefined ? {} : { remoteAddress: remote.remoteAddress }),
        });
        return;
      }
    }
    socket.write(
      this.responseFrame({
        success: true,
        error: null,
        proxy_id: cfg.proxyId,
        proxy_version: cfg.proxyVersion,
        connection_id: connectionId,
      }),
    );

    this.pending.delete(socket);
    this.live.set(connectionId, connection);
    let set = this.byAgent.get(agentId);
    if (set === undefined) {
      set = new Set();
      this.byAgent.set(agentId, set);
    }
    set.add(connection);
    connection.once('close', (error) => this.onConnectionClose(connection, error));
    this.stats.registered++;
    cfg.logger.info('agent registered over a reverse connection', {
      agentId,
      connectionId,
      transport: this.transport,
      ...remote,
    });
    this.emit('connection', connection, info);
    for (const sub of [...this.subscribers]) sub.push(connection);
  }

  private onConnectionClose(connection: ReverseConnection, error?: AgentProtocolError): void {
    this.live.delete(connection.connectionId);
    const set = this.byAgent.get(connection.agentId);
    if (set !== undefined) {
      set.delete(connection);
      if (set.size === 0) this.byAgent.delete(connection.agentId);
    }
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
    for (const socket of this.pending) socket.destroy();
    this.pending.clear();
    for (const sub of [...this.subscribers]) sub.end();
    await Promise.all([...this.live.values()].map((c) => c.close()));
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
      reject(AgentProtocolError.from(err, ErrorCode.ConnectionFailed, `cannot listen on ${where}`));
    };
    server.once('error', onError);
    server.listen(options, () => {
      server.off('error', onError);
      resolve();
    });
  });
}
