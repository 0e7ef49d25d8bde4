import type { AgentTransport, TlsOptions } from '@picket/protocol';
import type { Logger } from '@picket/uds';
import type { TokenConfig, TokenVerifier } from './auth.js';

/**
 * Where accepted connections go besides the listener's own event and iterator:
 * anything with `addConnection(agentId, transport)`, e.g. an `AgentPool` from
 * `@picket/pool`. A throw refuses the registration (the agent gets
 * `success:false` with the error text).
 */
export interface ReverseConnectionPool {
  addConnection(agentId: string, transport: AgentTransport): unknown;
}

/** @deprecated use `TlsOptions` from `@picket/protocol` (the same type). */
export type ReverseTlsConfig = TlsOptions;

/**
 * Settings of a {@link ReverseConnectionListener}. The first six are the seeds'
 * `ReverseConnectionConfig` fields (durations in ms); everything else is picket's.
 */
export interface ReverseConnectionConfig {
  /** pending-connection queue of the listening socket; default 128 */
  backlog?: number;
  /**
   * Registration timeout: an agent must deliver its whole registration frame within
   * this many ms of connecting (after the TLS handshake on TLS), else it is dropped
   * without a response. Also bounds `verifyToken` and the TLS handshake. Default 10 000.
   */
  handshakeTimeout?: number;
  /** registered connections one agent id may hold; checked before answering success. Default 4 */
  maxConnectionsPerAgent?: number;
  /**
   * Agent ids allowed to register: exact ids or globs (`waf-*`, `*`, `?`). Empty or
   * absent = every agent.
   */
  allowedAgents?: Iterable<string>;
  /**
   * Demand a token. Default: true exactly when `tokens` or `verifyToken` is set.
   * `true` without either is refused at bind time (picket never accepts "any token",
   * which is all upstream checks), and `false` with either is refused as contradictory.
   */
  requireAuth?: boolean;
  /** default per-call timeout of accepted connections, in ms; default 30 000 */
  requestTimeout?: number;

  /** accepted tokens (compared in constant time); exclusive with `verifyToken` */
  tokens?: TokenConfig;
  /** async token check; exclusive with `tokens` */
  verifyToken?: TokenVerifier;
  /** registered connections over all agents; checked before answering success. Default 1024 */
  maxConnections?: number;
  /**
   * Connections still registering at once; more are dropped at accept, so a flood
   * of idle or junk sockets cannot exhaust the process. Default 256.
   */
  maxPendingRegistrations?: number;
  /** largest registration frame (length field) accepted; default 64 KiB */
  maxRegistrationBytes?: number;
  /** `proxy_id` in registration responses; default `picket-proxy` (Zentinel says `zentinel-proxy`) */
  proxyId?: string;
  /** `proxy_version` in registration responses; default this package's version */
  proxyVersion?: string;
  /** permission bits of the Unix socket file; default 0o660 */
  socketMode?: number;
  /** TLS for `bindTcp`; not allowed with `bindUds` */
  tls?: TlsOptions;
  /** accepted connections are added to this pool (see also `attachPool`) */
  pool?: ReverseConnectionPool;
  /** largest frame length on registered connections; default 16 MiB */
  maxFrameLength?: number;
  /** bytes allowed to queue towards an agent that is not reading; default 16 MiB */
  maxWriteQueueBytes?: number;
  /** where diagnostics go; default warn/error to the console. Tokens are never logged. */
  logger?: Logger;
  /** epoch-ms clock for connection ids and cancel / ping timestamps (tests pin it) */
  clock?: () => number;
}

/** The defaults of the seeds' fields and picket's limits. */
export const DEFAULT_REVERSE_CONFIG = Object.freeze({
  backlog: 128,
  handshakeTimeout: 10_000,
  maxConnectionsPerAgent: 4,
  allowedAgents: Object.freeze([]) as readonly string[],
  requireAuth: false,
  requestTimeout: 30_000,
  maxConnections: 1024,
  maxPendingRegistrations: 256,
  maxRegistrationBytes: 64 * 1024,
  socketMode: 0o660,
});
