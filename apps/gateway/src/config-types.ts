/**
 * The gateway configuration's resolved shape (what the rest of the gateway works
 * with), its error type and its defaults. Parsing is in config.ts.
 */
import { AGENT_DEFAULTS, type AgentEvent, type BodyMode, type PathPolicy } from '@picket/http';

/** Events the gateway can send to an agent, as named in the config (the engine's events). */
export { AGENT_EVENTS as GATEWAY_EVENTS } from '@picket/http';
export type GatewayEvent = AgentEvent;
export type { BodyMode };

/** An upstream HTTP server, or the servers a prox plugin names (`targets_from`). */
export interface UpstreamConfig {
  name: string;
  /** `http://host:port[/base/path]` (https works too); undefined with `targetsFrom` */
  url: URL | undefined;
  /** a prox plugin agent whose `set_targets` pushes are this upstream's servers */
  targetsFrom: string | undefined;
  /** limit for the response headers and for the gap between body chunks */
  timeoutMs: number;
  connectTimeoutMs: number;
  /** extra attempts after a connection error, only for replayable (bodyless or buffered) requests */
  retries: number;
}

/** One agent and how the gateway talks to it. */
export interface AgentConfig {
  name: string;
  /** transport endpoint (`unix:/path`, `host:port`, `https://…`, `v1+unix:…`, `reverse+unix:…`, `reverse+tcp://…`) */
  endpoint: string;
  events: ReadonlySet<GatewayEvent>;
  bodyMode: BodyMode;
  /** buffer mode: the largest body collected for one body event */
  maxBodyBytes: number;
  timeoutMs: number;
  failureMode: 'open' | 'closed';
  /** connections the pool keeps (reverse: the most it accepts); undefined = pool default */
  connections: number | undefined;
  /** reverse endpoints: token the agent must present (`auth_token`, or read from `auth_token_file`) */
  authToken: string | undefined;
  /** the agent's process, when the gateway starts and supervises it (`command`, or `prox+exec:`) */
  process?: AgentProcessConfig | undefined;
  /** a prox plugin (`endpoint: prox` with `command`, or `prox+exec:`): picket's prox host talks to it */
  prox?: { targetsOnly: boolean } | undefined;
}

/** An agent process the gateway runs under a supervisor. */
export interface AgentProcessConfig {
  /** argv; `command[0]` is looked up in PATH unless it holds a `/` (then relative to `cwd`) */
  command: readonly string[];
  /** added to the gateway's environment */
  env: Readonly<Record<string, string>>;
  /** absolute; default the config file's directory */
  cwd: string;
  /** a generation not ready by then is killed and restarted; the first one also bounds startup */
  readyTimeoutMs: number;
  /** stop: stdin closed, this long, SIGTERM, this long, SIGKILL (to its process group) */
  stopGraceMs: number;
}

/** A route: host + path-prefix match, an upstream and the agent chain. */
export interface RouteConfig {
  name: string;
  /** lower-case host, `*.example.com`, or undefined for any host */
  host: string | undefined;
  pathPrefix: string;
  upstream: string;
  /** agent names, consulted in this order */
  agents: readonly string[];
  /** how the request path is normalised or refused (see @picket/http's path policy) */
  path: PathPolicy;
}

/** Where `/metrics` and `/healthz` are served. */
export interface AdminConfig {
  /** on the gateway port under this prefix (default `/_picket`), unless `listen` is set */
  prefix: string;
  /** a separate `host:port` that serves `/metrics` and `/healthz` at its root */
  listen: string | undefined;
  /** agents that must be healthy for `/healthz` to answer 200; `all` = every configured agent */
  minHealthyAgents: number | 'all';
}

/** Limits on client connections (both the gateway and the admin listener). */
export interface ServerConfig {
  /** a client must have sent the complete request headers within this (else 408 and close) */
  headersTimeoutMs: number;
  /** a client must have sent the whole request, body included, within this (else 408 and close) */
  requestTimeoutMs: number;
  /** an idle keep-alive connection is closed after this (Node adds 1 s of grace) */
  keepAliveTimeoutMs: number;
  /** client connections open at once on the gateway listener; more are closed at accept */
  maxConnections: number;
}

/** The validated configuration. */
export interface GatewayConfig {
  listen: string;
  admin: AdminConfig;
  server: ServerConfig;
  /**
   * Take the client IP from this request header (first address of the list)
   * instead of the socket. Only for demos or behind a trusted front proxy: any
   * client can send it.
   */
  clientIpHeader: string | undefined;
  upstreams: ReadonlyMap<string, UpstreamConfig>;
  agents: ReadonlyMap<string, AgentConfig>;
  routes: readonly RouteConfig[];
}

/** Raised for an invalid configuration; `problems` lists every field that is wrong. */
export class ConfigError extends Error {
  constructor(
    readonly problems: readonly string[],
    source?: string,
  ) {
    super(
      `invalid gateway config${source ? ` (${source})` : ''}:\n${problems.map((p) => `  - ${p}`).join('\n')}`,
    );
    this.name = 'ConfigError';
  }
}

export const DEFAULT_LISTEN = '127.0.0.1:8080';
export const DEFAULT_ADMIN_PREFIX = '/_picket';
/** the engine's defaults (`agentSpec`) */
export const DEFAULT_AGENT_TIMEOUT_MS = AGENT_DEFAULTS.timeoutMs;
export const DEFAULT_MAX_BODY_BYTES = AGENT_DEFAULTS.maxBodyBytes;
export const DEFAULT_UPSTREAM_TIMEOUT_MS = 30_000;
export const DEFAULT_UPSTREAM_CONNECT_TIMEOUT_MS = 5_000;
export const DEFAULT_HEADERS_TIMEOUT_MS = 30_000;
export const DEFAULT_REQUEST_TIMEOUT_MS = 300_000;
export const DEFAULT_KEEP_ALIVE_TIMEOUT_MS = 5_000;
export const DEFAULT_MAX_CONNECTIONS = 10_000;
export const DEFAULT_AGENT_READY_TIMEOUT_MS = 10_000;
export const DEFAULT_AGENT_STOP_GRACE_MS = 2_000;
/** the longest `stop_grace_ms` (a stop takes up to twice this plus a second) */
export const MAX_AGENT_STOP_GRACE_MS = 30_000;
