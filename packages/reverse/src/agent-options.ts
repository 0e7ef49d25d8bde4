/** Options, status and event types of the reverse-connecting agent ({@link ReverseAgent}). */
import type {
  AgentHandler,
  AgentProtocolError,
  AgentTracingOptions,
  ErrorPolicy,
  TlsOptions,
} from '@picket/protocol';
import type { Logger } from '@picket/uds';
import type { AgentConnection } from '@picket/uds/internal';
import type { ReconnectOptions } from './backoff.js';

/** @deprecated use `TlsOptions` from `@picket/protocol` (the same type). */
export type ReverseTlsClientOptions = TlsOptions;

/** Options of `connectReverse` / `new ReverseAgent`; `tracer`: a span per event. */
export interface ConnectReverseOptions extends AgentTracingOptions {
  /**
   * The proxy's reverse listener: `unix:/path` or `/path` (Unix socket),
   * `tcp://host:port` or `host:port` (TCP), `tls://host:port` (TLS; also
   * `host:port` when `tls` is given).
   */
  endpoint: string;
  /** the id to register as (the proxy's allow-list and tokens refer to it) */
  agentId: string;
  /** sent as `auth_token`; never logged, never part of an error or event */
  authToken?: string;
  /** serves every event, exactly as `UdsAgentServerV2` would */
  handler: AgentHandler;
  /** connections to keep open; default 1 */
  connections?: number;
  /** backoff between attempts (exponential with jitter; retries forever) */
  reconnect?: ReconnectOptions;
  /** TLS towards the proxy (`true` = TLS with Node's default CAs) */
  tls?: boolean | TlsOptions;
  /** sent as the registration's `metadata`; default `null` */
  metadata?: unknown;
  /** where diagnostics go; default warn/error to the console */
  logger?: Logger;
  /** give up one dial after this; default 5000 ms */
  connectTimeoutMs?: number;
  /** give up waiting for the registration response after this; default 10 000 ms */
  registrationTimeoutMs?: number;
  /** handlers running at once per connection; default 100 */
  maxConcurrentPerConnection?: number;
  /** events queued per connection before reads pause; default 1000 */
  maxQueuedPerConnection?: number;
  /** answer to undecodable events and failing handlers; default `'block'` (ErrorPolicy of @picket/protocol; never allow) */
  errorPolicy?: ErrorPolicy;
  /** largest frame length accepted and written; default 16 MiB */
  maxFrameLength?: number;
  /** bytes allowed to queue while the proxy is not reading; default 16 MiB */
  maxWriteQueueBytes?: number;
  /** random source for the jitter (tests) */
  random?: () => number;
}

/** State of one connection slot of a {@link ReverseAgent}. */
export type SlotState = 'connecting' | 'registering' | 'connected' | 'waiting' | 'stopped';

/** A slot of {@link ReverseAgentStatus}. */
export interface ReverseSlotStatus {
  slot: number;
  state: SlotState;
  /** the proxy's connection id while connected */
  connectionId?: string;
  /** failed attempts since the last successful registration */
  failures: number;
}

/** What {@link ReverseAgent.status} reports. */
export interface ReverseAgentStatus {
  agentId: string;
  endpoint: string;
  /** connections asked for */
  desired: number;
  /** registered, open connections */
  connected: number;
  stopped: boolean;
  /** registrations that succeeded, ever */
  registrations: number;
  /** the most recent failure, if any */
  lastError: string | undefined;
  slots: ReverseSlotStatus[];
}

/** Told with `registered`. */
export interface RegisteredInfo {
  slot: number;
  connectionId: string;
  proxyId: string;
  proxyVersion: string;
  /** the engine serving the handler on this connection (control frames: health, pause …) */
  connection: AgentConnection;
}

/** Told with `registrationFailed`. */
export interface RegistrationFailureInfo {
  slot: number;
  /** failed attempts in a row on this slot, this one included */
  failures: number;
  /** true when the proxy answered `success:false` */
  rejected: boolean;
  /** the proxy's `error` text, when it rejected the registration */
  proxyError?: string;
}

/** Told with `disconnected`. */
export interface DisconnectInfo {
  slot: number;
  connectionId: string;
  /** why, unless closed locally */
  error?: AgentProtocolError;
}

/** Told with `reconnecting`. */
export interface ReconnectInfo {
  slot: number;
  /** failed attempts in a row (0 after a dropped connection) */
  failures: number;
  delayMs: number;
}

/** Events of a {@link ReverseAgent}. */
export interface ReverseAgentEventMap {
  /** a connection registered and serves the handler */
  registered: [info: RegisteredInfo];
  /** an attempt failed: dial, TLS, timeout, or the proxy's refusal (with its text) */
  registrationFailed: [error: AgentProtocolError, info: RegistrationFailureInfo];
  /** a registered connection ended */
  disconnected: [info: DisconnectInfo];
  /** the next attempt of a slot is scheduled */
  reconnecting: [info: ReconnectInfo];
  /** `stop()` finished */
  stopped: [];
}
