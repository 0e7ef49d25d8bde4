/**
 * The accept side of the reverse listener: each accepted socket is counted against the
 * pending-registration cap, registered (see registration.ts), and then dropped, refused
 * with `success:false`, or turned into a {@link ReverseConnection}, the caps checked in the
 * same synchronous block that answers success.
 */
import type * as net from 'node:net';
import * as tls from 'node:tls';
import { encodeRegistrationResponse } from '@picket/codec';
import { encodeFrame } from '@picket/framing';
import {
  ErrorCode,
  MessageType,
  type RegistrationRequest,
  type RegistrationResponse,
} from '@picket/protocol';
import { FrameChannel } from '@picket/uds/internal';
import { type Admission, Rejection } from './admission.js';
import type { ReverseConnectionConfig, ReverseConnectionPool } from './config.js';
import {
  type RedactedRegistration,
  ReverseConnection,
  type ReverseConnectionInfo,
  type ReverseTransportKind,
} from './connection.js';
import { readFirstFrame } from './first-frame.js';
import type { RegistrationRejection, ReverseListenerStats } from './listener.js';
import type { ResolvedListenerConfig } from './listener-config.js';
import { type Peer, peerOf, tlsFailureReason } from './peers.js';
import { type RegistrationChannel, register } from './registration.js';

/** What the accept side needs from its listener. */
export interface AcceptHost {
  readonly stats: ReverseListenerStats;
  /** the pool registered connections go to, if any */
  readonly pool: ReverseConnectionPool | undefined;
  /** true once the listener began closing */
  readonly closing: boolean;
  /** a registration did not produce a connection (already logged) */
  rejected(rejection: RegistrationRejection): void;
  /** a connection registered, was answered success and counts towards the caps */
  registered(connection: ReverseConnection, info: ReverseConnectionInfo): void;
}

let socketCounter = 0;

/** Handles the sockets one listener accepts. */
export class Acceptor {
  /** sockets that have not finished registering (including ones being refused) */
  readonly pending = new Set<net.Socket>();

  constructor(
    private readonly transport: ReverseTransportKind,
    private readonly config: ResolvedListenerConfig,
    private readonly raw: ReverseConnectionConfig,
    private readonly admission: Admission,
    private readonly host: AcceptHost,
  ) {}

  onTlsError(err: Error, socket: tls.TLSSocket): void {
    this.drop(
      socket,
      `reverse:tls#${++socketCounter}`,
      new Rejection('tls', ErrorCode.Unauthenticated, tlsFailureReason(err, socket)),
    );
  }

  onSocket(socket: net.Socket): void {
    const id = `reverse:${this.transport}#${++socketCounter}`;
    this.host.stats.accepted++;
    // One listener for the socket's whole life: a late error must never be unhandled.
    socket.on('error', (err) =>
      this.config.logger.debug('reverse socket error', { socket: id, error: err.message }),
    );
    if (this.host.closing) {
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
    this.host.stats.dropped++;
    this.pending.delete(socket);
    socket.destroy();
    this.config.logger.warn(`dropping reverse connection: ${rejection.text}`, {
      socket: id,
      stage: rejection.stage,
      ...(agentId === undefined ? {} : { agentId }),
      ...remote,
    });
    this.host.rejected({
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
    this.host.stats.refused++;
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
    this.host.rejected({
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

  /** Runs the registration over the socket and answers as it decides. */
  private async register(socket: net.Socket, id: string): Promise<void> {
    const cfg = this.config;
    const { host } = this;
    const channel: RegistrationChannel = {
      id,
      transport: this.transport,
      readFrame: () =>
        readFirstFrame(socket, {
          maxFrameLength: cfg.maxRegistrationBytes,
          expectedType: MessageType.HandshakeRequest,
          timeoutMs: cfg.handshakeTimeout,
          what: 'RegistrationRequest (0x01)',
          hint: foreignRegistration,
        }),
      get gone() {
        return socket.destroyed;
      },
      get closing() {
        return host.closing;
      },
      peer: () =>
        socket instanceof tls.TLSSocket
          ? {
              ...this.remote(socket),
              authorized: socket.authorized,
              peerCertificate: socket.getPeerCertificate(),
            }
          : this.remote(socket),
    };
    const outcome = await register(channel, this.admission, cfg.requireAuth);
    if (outcome.kind === 'drop') this.drop(socket, id, outcome.rejection, outcome.agentId);
    else if (outcome.kind === 'refuse') this.refuse(socket, id, outcome.rejection, outcome.agentId);
    // Everything below runs in one synchronous block: the caps cannot change under us.
    else this.accept(socket, id, outcome.request, outcome.hasToken, outcome.rest);
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
    const full = this.admission.checkCaps(agentId);
    if (full !== undefined) {
      this.refuse(socket, id, full, agentId);
      return;
    }

    const now = cfg.clock();
    const connectionId = this.admission.nextConnectionId(agentId, now);
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
    const pool = this.host.pool;
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
        this.host.stats.refused++;
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
        this.host.rejected({
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
    this.admission.add(connection);
    this.host.stats.registered++;
    cfg.logger.info('agent registered over a reverse connection', {
      agentId,
      connectionId,
      transport: this.transport,
      ...remote,
    });
    this.host.registered(connection, info);
  }
}

/** The Zentinel Go SDK's private v2 dialect registers with a 0x03 frame (RegistrationAck 0x04). */
const GO_SDK_REGISTRATION = 0x03;

function foreignRegistration(type: number): string | undefined {
  if (type !== GO_SDK_REGISTRATION) return undefined;
  return (
    "a registration in the Zentinel Go SDK's private v2 dialect (0x03), which Zentinel reverse " +
    'connections do not speak; run the agent with its v1 server on a Unix socket and use a v1+unix: endpoint'
  );
}
