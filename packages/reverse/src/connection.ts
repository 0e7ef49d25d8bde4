import type { RegistrationRequest } from '@picket/protocol';
import {
  type FrameChannel,
  ProxyConnection,
  type ProxyConnectionOptions,
} from '@picket/uds/internal';

/** The listener's wire. */
export type ReverseTransportKind = 'uds' | 'tcp' | 'tls';

/** A registration as kept and reported by picket: the token itself is never retained. */
export type RedactedRegistration = Omit<RegistrationRequest, 'auth_token'> & {
  /** whether the agent sent a token (its value is not kept anywhere) */
  hasToken: boolean;
};

/** What the listener reports about an accepted reverse connection. */
export interface ReverseConnectionInfo {
  /** the registered agent id */
  agentId: string;
  /** `<agent_id>-<epoch ms hex>`, with `-<n>` appended on a collision */
  connectionId: string;
  /** the registration's `metadata` (`null` when none) */
  metadata: unknown;
  /** the listener's wire */
  transport: ReverseTransportKind;
  /** peer address (TCP/TLS) */
  remoteAddress?: string;
  remotePort?: number;
  /** TLS: the client certificate was verified against the configured CA */
  authorized?: boolean;
  /** epoch ms of the registration */
  registeredAt: number;
}

/** Options of a {@link ReverseConnection} (the listener builds these). */
export interface ReverseConnectionOptions extends ProxyConnectionOptions {
  info: ReverseConnectionInfo;
  registration: RedactedRegistration;
}

/**
 * One registered reverse connection, seen from the proxy: an `AgentTransport`
 * (`kind: 'reverse'`, JSON encoding, capabilities from the registration) running
 * the same engine as a UDS client connection, over a socket the agent opened.
 */
export class ReverseConnection extends ProxyConnection {
  /** `<agent_id>-<epoch ms hex>[-n]`, as sent to the agent */
  readonly connectionId: string;
  /** the registration's `metadata` */
  readonly metadata: unknown;
  /** where and when the agent registered */
  readonly info: ReverseConnectionInfo;
  /** the registration without its token */
  readonly registration: RedactedRegistration;

  constructor(channel: FrameChannel, options: ReverseConnectionOptions) {
    super(channel, { ...options, kind: 'reverse', encoding: 'json' });
    this.connectionId = options.info.connectionId;
    this.metadata = options.info.metadata;
    this.info = options.info;
    this.registration = options.registration;
  }
}
