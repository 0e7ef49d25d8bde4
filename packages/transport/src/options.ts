import type { AgentClientV2Options } from '@picket/grpc';
import type { Encoding } from '@picket/protocol';
import type { UdsClientOptions } from '@picket/uds';
import type { V1TransportOptions } from '@picket/v1';

/** PEM text (contains `-----BEGIN`), PEM bytes, or a path to a PEM file. */
export type PemSource = string | Uint8Array;

/** TLS towards a gRPC agent (`https://`, `grpcs://`, or any non-plaintext gRPC endpoint). */
export interface GrpcTlsOptions {
  /** CA certificate(s) that signed the agent's certificate; default: Node's public roots */
  ca?: PemSource;
  /** client certificate for mTLS (with `key`) */
  cert?: PemSource;
  /** client private key for mTLS (with `cert`) */
  key?: PemSource;
  /** name to check the agent's certificate against instead of the target host */
  serverNameOverride?: string;
  /** verify the agent's certificate (default true; `false` is for tests only) */
  verifyServer?: boolean;
}

/** TLS of a `reverse+tls://` listener (the proxy is the TLS server). */
export interface ReverseTlsOptions {
  /** the listener's certificate chain */
  cert: PemSource;
  /** its private key */
  key: PemSource;
  /** CA that signs agents' client certificates; set it to require mTLS */
  ca?: PemSource;
  /** refuse agents without a client certificate signed by `ca` (default: true when `ca` is set) */
  requireClientCert?: boolean;
}

/** Settings of a reverse listener (`reverse+unix:`, `reverse+tcp://`, `reverse+tls://`). */
export interface ReverseListenerOptions {
  /** certificate and key; required for `reverse+tls://` */
  tls?: ReverseTlsOptions;
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
   * `grpc+unix:` say plaintext and win over it.
   */
  tls?: GrpcTlsOptions;
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
}

/** Default connect + handshake limit of the facade. */
export const DEFAULT_CONNECT_TIMEOUT_MS = 5_000;
