import type { AgentClientV2Options } from '@picket/grpc';
import type { Encoding, TlsOptions } from '@picket/protocol';
import type { ProxConnectOptions } from '@picket/prox';
import type { UdsClientOptions } from '@picket/uds';
import type { V1TransportOptions } from '@picket/v1';

/** Settings of a reverse listener (`reverse+unix:`, `reverse+tcp://`, `reverse+tls://`). */
export interface ReverseListenerOptions {
  /**
   * The listener's TLS (`TlsOptions` of `@picket/protocol`): `cert` and `key`, required for
   * `reverse+tls://`; `ca` requires agents' client certificates signed by it (mTLS) unless
   * `requireClientCert: false`.
   */
  tls?: TlsOptions;
  /**
   * Accepted registration tokens (compared in constant time). When set, an agent
   * without one of them is refused. Default: no token needed.
   */
  tokens?: readonly string[];
  /**
   * Agent ids that may register, in addition to the agents the pool was asked
   * for. Default: only those agents.
   */
  allowedAgents?: readonly string[];
  /** an agent must register within this after connecting (default 10 000 ms) */
  handshakeTimeoutMs?: number;
  /**
   * Called once the listener is bound, with its address (the socket path, or
   * `host:port` with the real port — useful with port 0).
   */
  onListening?: (address: string) => void;
}

/** A console-like logger (`console` fits). */
export interface Logger {
  debug(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
}

/**
 * How to connect, whatever the endpoint. Each setting is used by the transports it
 * applies to and ignored by the others; `uds` / `grpc` / `v1` pass anything else
 * straight to that transport (and win over the common settings).
 */
export interface TransportOptions {
  /** default per-call timeout of the connection in ms (each transport's own default otherwise) */
  timeoutMs?: number;
  /**
   * Limit for connecting and the handshake in ms (default 5 000). For a reverse
   * endpoint: how long `V2Transport.connect` waits for the agent to register.
   */
  connectTimeoutMs?: number;
  /**
   * gRPC TLS. Used by `https://` / `grpcs://`, and turns TLS on for a bare
   * `host:port` or a `dns:` / `ipv4:` / `ipv6:` target. `http://`, `grpc://` and
   * `grpc+unix:` say plaintext and win over it. `TlsOptions` of `@picket/protocol`: `ca`,
   * `cert` + `key` (mTLS), `servername`, `rejectUnauthorized`.
   */
  tls?: TlsOptions;
  /** encodings offered to a UDS agent, in preference order (default the codec's default) */
  encodings?: readonly Encoding[];
  /** reverse listener settings (TLS, tokens, allowed agents) */
  reverse?: ReverseListenerOptions;
  /** where the transports log (each transport's default otherwise) */
  logger?: Logger;
  /** extra options for `AgentClientV2Uds.connect` */
  uds?: UdsClientOptions;
  /** extra options for `AgentClientV2.connect` / `connectWithTls` */
  grpc?: AgentClientV2Options;
  /** extra options for `connectV1` */
  v1?: V1TransportOptions;
  /**
   * extra options for `ProxPluginTransport.connect` (`prox+exec:` endpoints): route bindings,
   * connection caps, env / cwd, error policies. `connectTimeoutMs` is its `readyTimeoutMs`.
   */
  prox?: ProxConnectOptions;
}

/** Default connect + handshake limit of the facade. */
export const DEFAULT_CONNECT_TIMEOUT_MS = 5_000;
