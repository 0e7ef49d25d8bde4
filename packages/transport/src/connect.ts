import type { AgentClientV2Options } from '@picket/grpc';
import { AgentProtocolError, type AgentTransport, ErrorCode } from '@picket/protocol';
import type { UdsClientOptions } from '@picket/uds';
import type { V1TransportOptions } from '@picket/v1';
import {
  detectTransport,
  type GrpcEndpoint,
  type ParsedEndpoint,
  type ProxEndpoint,
  type UdsEndpoint,
  type V1Endpoint,
} from './endpoint.js';
import { loadGrpc, loadProx, loadUds, loadV1 } from './load.js';
import { DEFAULT_CONNECT_TIMEOUT_MS, type TransportOptions } from './options.js';
import { connectReverseEndpoint } from './reverse.js';

/** Accepts a string or an already parsed endpoint. */
export function toEndpoint(endpoint: string | ParsedEndpoint): ParsedEndpoint {
  return typeof endpoint === 'string' ? detectTransport(endpoint) : endpoint;
}

/** True when the gRPC endpoint will be dialled over TLS with these options. */
export function usesTls(ep: GrpcEndpoint, options: TransportOptions): boolean {
  if (ep.tls) return true;
  // an explicit plaintext scheme wins over TLS options (e.g. pool-wide defaults)
  if (ep.scheme === 'http' || ep.scheme === 'grpc' || ep.scheme === 'grpc+unix') return false;
  return options.tls !== undefined;
}

function where(agentId: string, ep: ParsedEndpoint): string {
  return `agent "${agentId}" at ${ep.endpoint}`;
}

/** Rewraps a connect failure so its message names the agent and the endpoint as the user wrote it. */
export function named(err: unknown, agentId: string, ep: ParsedEndpoint): AgentProtocolError {
  const e = AgentProtocolError.from(err, ErrorCode.ConnectionFailed, where(agentId, ep));
  if (e.message.includes(ep.endpoint)) return e;
  return new AgentProtocolError(e.code, `${where(agentId, ep)}: ${e.message}`, { cause: e });
}

async function connectUds(
  agentId: string,
  ep: UdsEndpoint,
  o: TransportOptions,
): Promise<AgentTransport> {
  const { AgentClientV2Uds } = await loadUds();
  const connectTimeoutMs = o.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
  const options: UdsClientOptions = {
    connectTimeoutMs,
    handshakeTimeoutMs: connectTimeoutMs,
    ...(o.timeoutMs !== undefined && { timeoutMs: o.timeoutMs }),
    ...(o.encodings !== undefined && { encodings: o.encodings }),
    ...(o.logger !== undefined && { logger: o.logger }),
    ...o.uds,
  };
  return AgentClientV2Uds.connect(agentId, ep.path, options);
}

async function connectGrpc(
  agentId: string,
  ep: GrpcEndpoint,
  o: TransportOptions,
): Promise<AgentTransport> {
  const { AgentClientV2 } = await loadGrpc();
  const options: AgentClientV2Options = {
    connectTimeoutMs: o.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
    ...(o.timeoutMs !== undefined && { timeoutMs: o.timeoutMs }),
    ...(o.logger !== undefined && { logger: o.logger }),
    ...o.grpc,
  };
  if (!usesTls(ep, o)) return AgentClientV2.connect(agentId, ep.target, options);
  return AgentClientV2.connectWithTls(agentId, ep.target, o.tls ?? {}, options);
}

async function connectLegacy(
  agentId: string,
  ep: V1Endpoint,
  o: TransportOptions,
): Promise<AgentTransport> {
  const { connectV1 } = await loadV1();
  const options: V1TransportOptions = {
    connectTimeoutMs: o.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
    ...(o.timeoutMs !== undefined && { timeoutMs: o.timeoutMs }),
    ...(o.logger !== undefined && { logger: o.logger }),
    ...o.v1,
  };
  return connectV1(agentId, ep.path, options);
}

/**
 * Starts a prox plugin and resolves once it sent `ready`; closing the transport stops it.
 * `connectTimeoutMs` bounds the wait for `ready`, `timeoutMs` is the per-call deadline.
 */
async function connectProx(
  agentId: string,
  ep: ProxEndpoint,
  o: TransportOptions,
): Promise<AgentTransport> {
  const { ProxPluginTransport } = await loadProx();
  return ProxPluginTransport.connect(agentId, ep.endpoint, {
    readyTimeoutMs: o.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
    ...(o.timeoutMs !== undefined && { timeoutMs: o.timeoutMs }),
    ...(o.logger !== undefined && { logger: o.logger }),
    ...o.prox,
  });
}

/**
 * Opens one {@link AgentTransport} to `agentId` at `endpoint` (see
 * {@link detectTransport}). A reverse endpoint binds a listener of its own and
 * resolves with the first connection that agent registers on it within
 * `connectTimeoutMs`; closing that connection closes the listener.
 */
export async function connectEndpoint(
  agentId: string,
  endpoint: string | ParsedEndpoint,
  options: TransportOptions = {},
): Promise<AgentTransport> {
  const ep = toEndpoint(endpoint);
  try {
    switch (ep.kind) {
      case 'uds':
        return await connectUds(agentId, ep, options);
      case 'grpc':
        return await connectGrpc(agentId, ep, options);
      case 'v1':
        return await connectLegacy(agentId, ep, options);
      case 'reverse':
        return await connectReverseEndpoint(agentId, ep, options);
      case 'prox':
        return await connectProx(agentId, ep, options);
    }
  } catch (err) {
    throw named(err, agentId, ep);
  }
}

/**
 * The seeds' `V2Transport`: one interface over every transport. As a type it is
 * simply an {@link AgentTransport}; as a value it opens one from an endpoint string.
 *
 * ```ts
 * const t: V2Transport = await V2Transport.connect('waf', 'https://waf.internal:50051', { tls: { ca } });
 * ```
 */
export type V2Transport = AgentTransport;

/** Opens transports from endpoint strings; see {@link connectEndpoint}. */
export const V2Transport = {
  /** Opens one connection to `agentId` at `endpoint`. */
  connect: connectEndpoint,
  /** Parses an endpoint without connecting ({@link detectTransport}). */
  detect: detectTransport,
} as const;
