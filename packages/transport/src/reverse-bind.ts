/** Binds a `@picket/reverse` listener for a reverse endpoint (loaded on first use). */
import { AgentProtocolError, type AgentTransport, ErrorCode } from '@picket/protocol';
import type { ReverseConnectionConfig } from '@picket/reverse';
import type { ReverseEndpoint } from './endpoint.js';
import { loadReverse } from './load.js';
import type { TransportOptions } from './options.js';

/** A bound reverse listener as the hub sees it. */
export interface BoundListener {
  /** the socket path, or host:port with the real port */
  readonly address: string;
  close(): Promise<void>;
}

/**
 * Binds the listener of `ep`. Every registration that passes the listener's own
 * checks (allow-list, token, TLS) is offered to `accept`, which takes the
 * connection or throws to refuse it (the agent then gets `success:false` with
 * the message). Per-agent caps are the caller's, so the listener's is lifted.
 */
export async function bindReverseListener(
  ep: ReverseEndpoint,
  options: TransportOptions,
  accept: (agentId: string, transport: AgentTransport) => void,
): Promise<BoundListener> {
  const { ReverseConnectionListener } = await loadReverse();
  const r = options.reverse ?? {};
  if (ep.tls && r.tls === undefined) {
    throw new AgentProtocolError(
      ErrorCode.InvalidArgument,
      `${ep.endpoint}: a reverse+tls:// listener needs reverse.tls { cert, key }`,
    );
  }
  const config: ReverseConnectionConfig = {
    maxConnectionsPerAgent: 1024,
    pool: { addConnection: accept },
    ...(r.handshakeTimeoutMs !== undefined && { handshakeTimeout: r.handshakeTimeoutMs }),
    ...(r.tokens !== undefined && r.tokens.length > 0 && { tokens: [...r.tokens] }),
    ...(r.allowedAgents !== undefined && { allowedAgents: [...r.allowedAgents] }),
    ...(options.timeoutMs !== undefined && { requestTimeout: options.timeoutMs }),
    ...(options.logger !== undefined && { logger: options.logger }),
    // the listener reads PEM text, bytes or files itself (TlsOptions of @picket/protocol)
    ...(ep.tls && r.tls && { tls: r.tls }),
  };
  const l = ep.listen;
  const listener =
    l.transport === 'uds'
      ? await ReverseConnectionListener.bindUds(l.path, config)
      : await ReverseConnectionListener.bindTcp({ host: l.host, port: l.port }, config);
  const address =
    l.transport === 'uds' ? l.path : hostPort(listener.address().host, listener.address().port);
  return { address, close: () => listener.close() };
}

/** `host:port`, an IPv6 host in brackets. */
function hostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}
