/**
 * serve(): the agent side of the facade, mirroring connect. The endpoint string
 * picks the server (UDS, gRPC, v1, or a reverse dialer towards a proxy's
 * listener); its package is imported on first use.
 */
import type { GrpcAgentServerV2Options } from '@picket/grpc';
import {
  type AgentHandler,
  AgentProtocolError,
  type AgentServer,
  type AgentTracingOptions,
  ErrorCode,
  type ErrorPolicy,
  type TlsOptions,
} from '@picket/protocol';
import type { ConnectReverseOptions, ReverseAgent } from '@picket/reverse';
import type { UdsAgentServerOptions } from '@picket/uds';
import type { AgentServerOptions as V1ServerOptions } from '@picket/v1';
import { detectTransport, type ParsedEndpoint } from './endpoint.js';
import { loadGrpc, loadReverse, loadUds, loadV1 } from './load.js';
import type { Logger } from './options.js';

/** How {@link serve} dials a proxy's reverse listener (`reverse+unix:`, `reverse+tcp://`, `reverse+tls://`). */
export interface ServeReverseOptions
  extends Omit<
    ConnectReverseOptions,
    'endpoint' | 'agentId' | 'handler' | 'tls' | 'logger' | 'errorPolicy'
  > {
  /**
   * `listen()` (and so `serve()`) waits until one connection is registered (default
   * true). `false`: it resolves once dialling has started; the dialer keeps retrying
   * with backoff and reports through its events (see `onServer`).
   */
  wait?: boolean;
  /** with `wait`: give up after this many ms (default: wait as long as it takes) */
  waitTimeoutMs?: number;
}

/** Options of {@link serve}: common settings plus one object per transport. */
export interface ServeOptions extends AgentTracingOptions {
  /**
   * The agent's id: what a reverse dialer registers as (required there) and what v1 logs.
   * Default: the handler's own `agentId` property when it has one.
   */
  agentId?: string;
  /**
   * TLS, used only where the endpoint says so (never switched on implicitly).
   * `grpcs://` / `https://` listeners: `cert` + `key` are the server's (required),
   * `ca` verifies client certificates (mTLS; `requireClientCert` as in `TlsOptions`).
   * `reverse+tls://` dialers: `ca` verifies the proxy (default Node's roots),
   * `cert` + `key` are the client certificate, `servername` the name checked,
   * `rejectUnauthorized: false` skips the check (tests only).
   */
  tls?: TlsOptions;
  /** answer to a failing handler on every server (never allow); default `'block'` */
  errorPolicy?: ErrorPolicy;
  /** where the servers log (each server's default otherwise) */
  logger?: Logger;
  /** reverse dialer settings: token, connections, backoff, waiting */
  reverse?: ServeReverseOptions;
  /** passed to `UdsAgentServerV2`; wins over the common settings */
  uds?: UdsAgentServerOptions;
  /** passed to `GrpcAgentServerV2`; wins over the common settings */
  grpc?: GrpcAgentServerV2Options;
  /** passed to v1's `AgentServer`; wins over the common settings */
  v1?: V1ServerOptions;
  /**
   * Called with each server once it is created, before it listens (a reverse dialer:
   * as it starts dialling), to subscribe to its events: a `UdsAgentServerV2`,
   * `GrpcAgentServerV2`, v1 `AgentServer` or `ReverseAgent`.
   */
  onServer?: (server: AgentServer, endpoint: ParsedEndpoint) => void;
}

/** A serve() failure: the {@link AgentProtocolError} names the endpoint, also given here. */
export class ServeError extends AgentProtocolError {
  /** the endpoint that failed, as given */
  readonly endpoint: string;
  constructor(code: ErrorCode, message: string, endpoint: string, cause?: unknown) {
    super(code, message, cause === undefined ? undefined : { cause });
    this.endpoint = endpoint;
  }
}

/** The servers one {@link serve} call started, as one {@link AgentServer}. */
export class ServedAgent implements AgentServer {
  /** one server per endpoint, in the order given */
  readonly servers: readonly AgentServer[];
  #closed = false;

  constructor(servers: readonly AgentServer[]) {
    this.servers = servers;
  }

  /** Every endpoint bound (the real port for port 0, the dialled listener for reverse). */
  get endpoints(): readonly string[] {
    return this.servers.flatMap((s) => s.endpoints);
  }

  /** serve() has listened already: the bound endpoints; rejects once closed. */
  async listen(): Promise<readonly string[]> {
    if (this.#closed) {
      throw new AgentProtocolError(ErrorCode.ConnectionClosed, 'served agent is closed');
    }
    return this.endpoints;
  }

  /** Closes every server at once (all are tried; the first failure is thrown after). */
  close(): Promise<void> {
    this.#closed = true;
    return settle(this.servers.map((s) => s.close()));
  }

  /** Drains every server at once, each for up to `timeoutMs`. */
  drain(timeoutMs?: number): Promise<void> {
    this.#closed = true;
    return settle(this.servers.map((s) => s.drain(timeoutMs)));
  }
}

async function settle(all: Promise<void>[]): Promise<void> {
  const failed = (await Promise.allSettled(all)).find((r) => r.status === 'rejected');
  if (failed) throw failed.reason;
}

/**
 * Serves `handler` on every endpoint (see the endpoint grammar): `unix:` / a socket
 * path (UDS), `host:port`, `grpc://`, `grpcs://` (TLS), `grpc+unix:` (gRPC), `v1+unix:`
 * (legacy v1), and `reverse+unix:` / `reverse+tcp://` / `reverse+tls://` to dial a
 * proxy's reverse listener. Every endpoint is checked before anything is bound; they
 * are then started in order. Resolves once all listen, with one {@link AgentServer}
 * whose `endpoints` are those really bound and whose `close` / `drain` act on all.
 * Rejects with a {@link ServeError} naming the endpoint, after closing what had
 * started; a transport package that is not installed fails with the
 * `npm install @picket/…` line.
 */
export async function serve(
  endpoint: string | readonly string[],
  handler: AgentHandler,
  options: ServeOptions = {},
): Promise<ServedAgent> {
  const given = typeof endpoint === 'string' ? [endpoint] : [...endpoint];
  if (given.length === 0) {
    throw new AgentProtocolError(ErrorCode.InvalidArgument, 'serve: no endpoint given');
  }
  if (handler === null || typeof handler?.capabilities !== 'function') {
    throw new AgentProtocolError(
      ErrorCode.InvalidArgument,
      'serve: handler must be an AgentHandler (with capabilities())',
    );
  }
  const agentId = options.agentId ?? ownId(handler);
  const eps = given.map((e) => checked(e, agentId, options));
  const servers: AgentServer[] = [];
  for (const ep of eps) {
    try {
      const server = await create(ep, handler, agentId, options);
      servers.push(server);
      options.onServer?.(server, ep);
      await listen(server, ep, options);
    } catch (err) {
      await Promise.allSettled(servers.map((s) => s.close()));
      throw failure(err, ep.endpoint, agentId);
    }
  }
  return new ServedAgent(servers);
}

function ownId(handler: AgentHandler): string | undefined {
  const id = (handler as { agentId?: unknown }).agentId;
  return typeof id === 'string' && id !== '' ? id : undefined;
}

function failure(err: unknown, endpoint: string, agentId: string | undefined): ServeError {
  const e = AgentProtocolError.from(err, ErrorCode.Internal);
  const message = e.message.includes(endpoint)
    ? e.message
    : `cannot serve${agentId === undefined ? '' : ` agent "${agentId}"`} on ${endpoint}: ${e.message}`;
  return new ServeError(e.code, message, endpoint, err);
}

/** Parses an endpoint and refuses, before anything is bound, what cannot be served. */
function checked(endpoint: string, agentId: string | undefined, o: ServeOptions): ParsedEndpoint {
  let ep: ParsedEndpoint;
  try {
    ep = detectTransport(endpoint);
  } catch (err) {
    throw failure(err, String(endpoint), agentId);
  }
  const refuse = (problem: string) =>
    failure(new AgentProtocolError(ErrorCode.InvalidArgument, problem), endpoint, agentId);
  if (ep.kind === 'grpc' && ['dns', 'ipv4', 'ipv6'].includes(ep.scheme ?? '')) {
    throw refuse('a server listens on host:port, grpc://host:port or grpcs://host:port');
  }
  if (ep.kind === 'grpc' && ep.tls && (o.tls?.cert === undefined || o.tls.key === undefined)) {
    throw refuse('TLS needs tls.cert and tls.key');
  }
  if (ep.kind === 'prox') {
    throw refuse(
      'prox+exec: runs a prox plugin for a proxy; serve a handler as a prox plugin with @picket/prox (serveAgentAsProxPlugin)',
    );
  }
  if (ep.kind === 'reverse') {
    if (ep.listen.transport === 'tcp' && ep.listen.port === 0) {
      throw refuse('port 0 cannot be dialled; name the port the proxy listens on');
    }
    if (agentId === undefined) {
      throw refuse('a reverse dialer registers with an agent id: set options.agentId');
    }
  }
  return ep;
}

async function listen(server: AgentServer, ep: ParsedEndpoint, o: ServeOptions): Promise<void> {
  if (ep.kind !== 'reverse') {
    await server.listen();
    return;
  }
  const r = o.reverse ?? {};
  if (r.wait === false) return; // connectReverse has started dialling
  await (server as ReverseAgent).listen(
    r.waitTimeoutMs === undefined ? {} : { timeoutMs: r.waitTimeoutMs },
  );
}

/** The options every server takes, from the common settings. */
function common(
  o: ServeOptions,
): { logger?: Logger; errorPolicy?: ErrorPolicy } & AgentTracingOptions {
  return {
    ...(o.logger !== undefined && { logger: o.logger }),
    ...(o.tracer !== undefined && { tracer: o.tracer }),
    ...(o.errorPolicy !== undefined && { errorPolicy: o.errorPolicy }),
  };
}

async function create(
  ep: ParsedEndpoint,
  handler: AgentHandler,
  agentId: string | undefined,
  o: ServeOptions,
): Promise<AgentServer> {
  switch (ep.kind) {
    case 'uds': {
      const { UdsAgentServerV2 } = await loadUds();
      return new UdsAgentServerV2(ep.path, handler, { ...common(o), ...o.uds });
    }
    case 'v1': {
      const { AgentServer } = await loadV1();
      return new AgentServer(agentId ?? 'agent', ep.path, handler, { ...common(o), ...o.v1 });
    }
    case 'grpc': {
      const { GrpcAgentServerV2 } = await loadGrpc();
      return new GrpcAgentServerV2(handler, {
        ...common(o),
        address: ep.target,
        // only an endpoint that says TLS gets it (checked() made sure cert and key are there)
        ...(ep.tls && o.tls !== undefined && { tls: o.tls }),
        ...o.grpc,
      });
    }
    case 'reverse': {
      const { connectReverse } = await loadReverse();
      const l = ep.listen;
      const { wait: _wait, waitTimeoutMs: _waitMs, ...r } = o.reverse ?? {};
      const agent = connectReverse({
        ...r,
        ...common(o),
        endpoint:
          l.transport === 'uds' ? `unix:${l.path}` : `${ep.tls ? 'tls' : 'tcp'}://${l.address}`,
        agentId: agentId as string, // checked() refused a reverse endpoint without one
        handler,
        ...(ep.tls && { tls: o.tls ?? true }),
      });
      return agent;
    }
    case 'prox':
      throw new AgentProtocolError(ErrorCode.InvalidArgument, 'prox+exec: cannot be served');
  }
}
