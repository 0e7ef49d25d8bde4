/** The reverse agent's dial and registration: one attempt, no retry (ReverseAgent retries). */
import * as net from 'node:net';
import * as tls from 'node:tls';
import { decodeRegistrationResponse, encodeRegistrationRequest } from '@picket/codec';
import {
  AgentProtocolError,
  describeMessageType,
  ErrorCode,
  MessageType,
  PROTOCOL_VERSION,
  type RegistrationResponse,
} from '@picket/protocol';
import { loadTlsMaterial, socketError } from '@picket/protocol/internal';
import { type FrameChannel, SocketReader } from '@picket/uds/internal';
import type { ConnectReverseOptions } from './agent-options.js';
import { formatHostPort, type ReverseEndpoint } from './endpoint.js';

const DEFAULT_CONNECT_TIMEOUT_MS = 5000;
const DEFAULT_REGISTRATION_TIMEOUT_MS = 10_000;

export function describeTarget(t: ReverseEndpoint): string {
  return t.kind === 'uds' ? `unix:${t.path}` : `${t.kind}://${formatHostPort(t.host, t.port)}`;
}

/** The error code a refusal text maps to (the texts are the spec's and picket's). */
function rejectionCode(text: string): ErrorCode {
  if (text.startsWith('Protocol version mismatch')) return ErrorCode.VersionMismatch;
  if (text.startsWith('Authentication') || text.includes('Authentication required')) {
    return ErrorCode.Unauthenticated;
  }
  if (text.startsWith('Connection limit') || text.startsWith('Connection refused')) {
    return ErrorCode.Unavailable;
  }
  return ErrorCode.HandshakeFailed;
}

/** A registration the proxy answered with `success:false`. */
export class RegistrationRejected extends AgentProtocolError {
  constructor(
    code: ErrorCode,
    message: string,
    readonly proxyError: string,
  ) {
    super(code, message);
  }
}

/** A connected socket, and the reader it was created with (absent for TLS). */
export interface DialedSocket {
  socket: net.Socket;
  reader: SocketReader | undefined;
}

/**
 * Opens a socket to the proxy's listener (Unix, TCP or TLS) within the connect timeout;
 * `onSocket` is handed the socket at once so a stop can destroy it mid-dial.
 */
export function dialProxy(
  t: ReverseEndpoint,
  where: string,
  options: Pick<ConnectReverseOptions, 'tls' | 'connectTimeoutMs'>,
  onSocket: (socket: net.Socket) => void,
): Promise<DialedSocket> {
  const timeoutMs = options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
  return new Promise((resolve, reject) => {
    let socket: net.Socket;
    let readyEvent: string;
    // plain sockets are read through `onread` (see SocketReader); TLS ones through 'data'
    let reader: SocketReader | undefined;
    if (t.kind === 'uds') {
      reader = new SocketReader();
      socket = net.createConnection({ path: t.path, onread: reader.onread });
      readyEvent = 'connect';
    } else if (t.kind === 'tcp') {
      reader = new SocketReader();
      socket = net.createConnection({ host: t.host, port: t.port, onread: reader.onread });
      readyEvent = 'connect';
    } else {
      const o = typeof options.tls === 'object' ? options.tls : {};
      const servername = o.servername ?? (net.isIP(t.host) === 0 ? t.host : undefined);
      socket = tls.connect({
        host: t.host,
        port: t.port,
        ...loadTlsMaterial(o, 'dial'),
        ...(servername === undefined ? {} : { servername }),
        rejectUnauthorized: o.rejectUnauthorized !== false,
      });
      readyEvent = 'secureConnect';
    }
    onSocket(socket);
    const timer = setTimeout(() => {
      done(
        new AgentProtocolError(
          ErrorCode.Timeout,
          `cannot connect to ${where}: no connection within ${timeoutMs} ms`,
        ),
      );
    }, timeoutMs);
    const onError = (err: NodeJS.ErrnoException): void => done(socketError(err, 'connect', where));
    const onClose = (): void => {
      done(
        new AgentProtocolError(
          ErrorCode.ConnectionFailed,
          `cannot connect to ${where}: connection closed while connecting`,
        ),
      );
    };
    const onReady = (): void => done(undefined);
    const done = (error: AgentProtocolError | undefined): void => {
      clearTimeout(timer);
      socket.off('error', onError);
      socket.off('close', onClose);
      socket.off(readyEvent, onReady);
      if (error !== undefined) {
        socket.destroy();
        reject(error);
        return;
      }
      // A socket error after the handover reaches FrameChannel; this keeps it handled meanwhile.
      socket.on('error', () => {});
      if (t.kind !== 'uds') {
        socket.setNoDelay(true);
        socket.setKeepAlive(true, 30_000);
      }
      resolve({ socket, reader });
    };
    socket.once('error', onError);
    socket.once('close', onClose);
    socket.once(readyEvent, onReady);
  });
}

/**
 * Sends the registration (0x01) on `channel` and reads the proxy's answer (0x02); a
 * refusal rejects with {@link RegistrationRejected} carrying the proxy's text.
 */
export async function register(
  channel: FrameChannel,
  where: string,
  agentId: string,
  options: Pick<
    ConnectReverseOptions,
    'handler' | 'authToken' | 'metadata' | 'registrationTimeoutMs'
  >,
): Promise<RegistrationResponse> {
  const payload = encodeRegistrationRequest({
    protocol_version: PROTOCOL_VERSION,
    agent_id: agentId,
    capabilities: options.handler.capabilities(),
    auth_token: options.authToken ?? null,
    metadata: options.metadata ?? null,
  });
  channel.write(MessageType.HandshakeRequest, payload);
  const timeoutMs = options.registrationTimeoutMs ?? DEFAULT_REGISTRATION_TIMEOUT_MS;
  let frame: Awaited<ReturnType<FrameChannel['readFrame']>>;
  try {
    frame = await channel.readFrame(timeoutMs, 'registration response');
  } catch (err) {
    const e = AgentProtocolError.from(err, ErrorCode.ConnectionClosed, where);
    if (e.code === ErrorCode.Timeout) {
      throw new AgentProtocolError(
        ErrorCode.Timeout,
        `${where}: no registration response within ${timeoutMs} ms`,
        { cause: e },
      );
    }
    throw new AgentProtocolError(
      ErrorCode.ConnectionClosed,
      `${where}: connection ended before the registration response (${e.message})`,
      { cause: e },
    );
  }
  if (frame.type !== MessageType.HandshakeResponse) {
    throw new AgentProtocolError(
      ErrorCode.HandshakeFailed,
      `${where}: expected RegistrationResponse (0x02), got ${describeMessageType(frame.type)}`,
    );
  }
  let response: RegistrationResponse;
  try {
    response = decodeRegistrationResponse(frame.payload);
  } catch (err) {
    throw AgentProtocolError.from(
      err,
      ErrorCode.InvalidMessage,
      `${where}: invalid registration response`,
    );
  }
  if (!response.success) {
    const text = response.error ?? 'unknown registration error';
    throw new RegistrationRejected(
      rejectionCode(text),
      `${where}: registration rejected by the proxy: ${text}`,
      text,
    );
  }
  return response;
}
