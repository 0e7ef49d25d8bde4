/** Who is at the other end of an accepted socket, and why its TLS handshake failed. */
import type * as net from 'node:net';
import type * as tls from 'node:tls';
import { tlsVerifyText } from '@picket/protocol/internal';
import { formatHostPort } from './endpoint.js';

export interface Peer {
  remoteAddress?: string;
  remotePort?: number;
}

/** Peers of accepted TCP sockets, noted at accept: a socket that failed TLS has forgotten its own. */
const acceptedPeers = new WeakMap<net.Socket, Peer>();

/** Notes the peer of a TCP socket just accepted by a TLS server (see {@link peerOf}). */
export function noteAcceptedPeer(socket: net.Socket): void {
  acceptedPeers.set(socket, { remoteAddress: socket.remoteAddress, remotePort: socket.remotePort });
}

/**
 * The peer of a socket. A TLS socket that failed its handshake has lost its handle, so its
 * own `remoteAddress` is undefined; then the address noted when the TCP socket under it
 * (`_parent`, which Node's TLS server sets on every socket it wraps) was accepted is used.
 */
export function peerOf(socket: net.Socket): Peer {
  if (socket.remoteAddress !== undefined) {
    return { remoteAddress: socket.remoteAddress, remotePort: socket.remotePort };
  }
  const parent = (socket as net.Socket & { _parent?: net.Socket | null })._parent;
  return (parent && acceptedPeers.get(parent)) || {};
}

/**
 * Why a TLS handshake failed, for the log and the `rejected` event. Node reports a client
 * certificate that failed verification (expired, untrusted, wrong purpose …) as "socket hang
 * up": it destroys the socket itself after the handshake, and only `authorizationError`
 * keeps the real reason (worded by the shared Node-error mapper's table).
 */
export function tlsFailureReason(err: Error, socket: tls.TLSSocket): string {
  const { remoteAddress, remotePort } = peerOf(socket);
  const from =
    remoteAddress === undefined ? '' : ` from ${formatHostPort(remoteAddress, remotePort ?? 0)}`;
  const verify = socket.authorizationError as unknown;
  if (verify !== null && verify !== undefined && verify !== '') {
    const code =
      verify instanceof Error ? String((verify as NodeJS.ErrnoException).code) : String(verify);
    let text = tlsVerifyText(code);
    if (code === 'INVALID_PURPOSE') text = `${text}; not a client certificate`;
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
