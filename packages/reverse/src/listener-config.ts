/**
 * The reverse listener's settings, checked once at bind time: a wrong value is refused with
 * INVALID_ARGUMENT naming it, never silently replaced.
 */
import { AgentProtocolError, ErrorCode } from '@picket/protocol';
import type { Logger } from '@picket/uds';
import { PICKET_PROXY_ID } from '@picket/uds/internal';
import { AllowList, TokenSet, type TokenVerifier } from './auth.js';
import { DEFAULT_REVERSE_CONFIG, type ReverseConnectionConfig } from './config.js';
import { defaultLogger } from './logger.js';
import { PICKET_REVERSE_VERSION } from './version.js';

/** {@link ReverseConnectionConfig} with every default filled in and every value checked. */
export interface ResolvedListenerConfig {
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

export function invalidConfig(message: string): AgentProtocolError {
  return new AgentProtocolError(ErrorCode.InvalidArgument, `reverse listener: ${message}`);
}

function positiveInt(name: string, value: number | undefined, fallback: number, min = 1): number {
  const v = value ?? fallback;
  if (!Number.isInteger(v) || v < min) {
    throw invalidConfig(`${name} must be an integer ≥ ${min}, got ${String(value)}`);
  }
  return v;
}

export function resolveConfig(config: ReverseConnectionConfig): ResolvedListenerConfig {
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
