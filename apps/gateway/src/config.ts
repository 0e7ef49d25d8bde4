/**
 * Gateway configuration: the file format (JSON or YAML, snake_case keys), its
 * validation with errors that name the offending field, and the resolved shape
 * the rest of the gateway works with.
 */
import { readFileSync } from 'node:fs';
import { dirname, extname, resolve } from 'node:path';
import { detectTransport, readTokenFile } from '@picket/transport';
import { parse as parseYaml } from 'yaml';
import {
  DEFAULT_PATH_POLICY,
  ESCAPED_SLASHES,
  normalizePath,
  type PathPolicy,
} from './path-policy.js';

/** Events the gateway can send to an agent, as named in the config. */
export const GATEWAY_EVENTS = [
  'request_headers',
  'request_body',
  'response_headers',
  'response_body',
  'request_complete',
] as const;
export type GatewayEvent = (typeof GATEWAY_EVENTS)[number];

/** How body events are sent: the whole body at once, or chunk by chunk. */
export type BodyMode = 'buffer' | 'stream';

/** An upstream HTTP server. */
export interface UpstreamConfig {
  name: string;
  /** `http://host:port[/base/path]` (https works too) */
  url: URL;
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
  /** how the request path is normalised or refused (see path-policy.ts) */
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
export const DEFAULT_AGENT_TIMEOUT_MS = 1_000;
export const DEFAULT_MAX_BODY_BYTES = 1024 * 1024;
export const DEFAULT_UPSTREAM_TIMEOUT_MS = 30_000;
export const DEFAULT_UPSTREAM_CONNECT_TIMEOUT_MS = 5_000;
export const DEFAULT_HEADERS_TIMEOUT_MS = 30_000;
export const DEFAULT_REQUEST_TIMEOUT_MS = 300_000;
export const DEFAULT_KEEP_ALIVE_TIMEOUT_MS = 5_000;
export const DEFAULT_MAX_CONNECTIONS = 10_000;
/** the longest any of the client timeouts may be set to (one day) */
const MAX_CLIENT_TIMEOUT_MS = 86_400_000;

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const HOST = /^(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*\.?$/;

type Obj = Record<string, unknown>;

const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Collects problems while walking the raw value. */
class Checker {
  readonly problems: string[] = [];

  fail(path: string, problem: string): undefined {
    this.problems.push(`${path}: ${problem}`);
    return undefined;
  }

  unknownKeys(o: Obj, path: string, known: readonly string[]): void {
    for (const k of Object.keys(o)) {
      if (!known.includes(k)) {
        this.fail(path ? `${path}.${k}` : k, `unknown field (expected one of ${known.join(', ')})`);
      }
    }
  }

  str(v: unknown, path: string): string | undefined {
    if (typeof v !== 'string' || v === '') return this.fail(path, 'must be a non-empty string');
    return v;
  }

  int(v: unknown, path: string, min: number, max = Number.MAX_SAFE_INTEGER): number | undefined {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
      return this.fail(path, `must be an integer between ${min} and ${max}`);
    }
    return v;
  }

  oneOf<T extends string>(v: unknown, path: string, allowed: readonly T[]): T | undefined {
    if (typeof v !== 'string' || !(allowed as readonly string[]).includes(v)) {
      return this.fail(path, `must be one of ${allowed.map((a) => `"${a}"`).join(', ')}`);
    }
    return v as T;
  }

  listen(v: unknown, path: string): string | undefined {
    const s = this.str(v, path);
    if (s === undefined) return undefined;
    try {
      parseListen(s);
      return s;
    } catch (e) {
      return this.fail(path, (e as Error).message);
    }
  }
}

/**
 * Splits `host:port` (`[::1]:80`, `:8080` ⇒ 127.0.0.1, a bare port ⇒ 127.0.0.1).
 * Throws a readable error for anything else.
 */
export function parseListen(address: string): { host: string; port: number } {
  let host = '127.0.0.1';
  let port: string;
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):(\d+)$/.exec(address);
  if (m) {
    host = m[1] ?? (m[2] || '127.0.0.1');
    port = m[3] as string;
  } else if (/^\d+$/.test(address)) {
    port = address;
  } else {
    throw new Error(`"${address}" is not a host:port address`);
  }
  const n = Number(port);
  if (n > 65535) throw new Error(`port ${n} of "${address}" is out of range`);
  return { host, port: n };
}

function parseUpstream(
  c: Checker,
  name: string,
  v: unknown,
  path: string,
): UpstreamConfig | undefined {
  const raw: Obj = typeof v === 'string' ? { url: v } : isObj(v) ? v : {};
  if (typeof v !== 'string' && !isObj(v)) {
    return c.fail(path, 'must be a URL string or an object with "url"');
  }
  c.unknownKeys(raw, path, ['url', 'timeout_ms', 'connect_timeout_ms', 'retries']);
  const urlText = c.str(raw.url, `${path}.url`);
  let url: URL | undefined;
  if (urlText !== undefined) {
    try {
      url = new URL(urlText);
      if (url.protocol !== 'http:' && url.protocol !== 'https:') {
        url = c.fail(`${path}.url`, `"${urlText}" must be an http:// or https:// URL`);
      } else if (url.search || url.hash || url.username || url.password) {
        url = c.fail(`${path}.url`, `"${urlText}" must not have a query, fragment or credentials`);
      }
    } catch {
      c.fail(`${path}.url`, `"${urlText}" is not a valid URL`);
    }
  }
  const timeoutMs =
    raw.timeout_ms === undefined
      ? DEFAULT_UPSTREAM_TIMEOUT_MS
      : c.int(raw.timeout_ms, `${path}.timeout_ms`, 1);
  const connectTimeoutMs =
    raw.connect_timeout_ms === undefined
      ? DEFAULT_UPSTREAM_CONNECT_TIMEOUT_MS
      : c.int(raw.connect_timeout_ms, `${path}.connect_timeout_ms`, 1);
  const retries = raw.retries === undefined ? 0 : c.int(raw.retries, `${path}.retries`, 0, 10);
  if (!url || timeoutMs === undefined || connectTimeoutMs === undefined || retries === undefined) {
    return undefined;
  }
  return { name, url, timeoutMs, connectTimeoutMs, retries };
}

function parseAgent(
  c: Checker,
  name: string,
  v: unknown,
  path: string,
  dir: string,
): AgentConfig | undefined {
  if (typeof v === 'string') v = { endpoint: v };
  if (!isObj(v)) return c.fail(path, 'must be an endpoint string or an object with "endpoint"');
  c.unknownKeys(v, path, [
    'endpoint',
    'events',
    'body_mode',
    'max_body_bytes',
    'timeout_ms',
    'failure_mode',
    'connections',
    'auth_token',
    'auth_token_file',
  ]);
  let endpoint = c.str(v.endpoint, `${path}.endpoint`);
  if (endpoint !== undefined) {
    // checked here so a bad endpoint is listed with every other problem, not after them
    try {
      detectTransport(endpoint);
    } catch (e) {
      endpoint = c.fail(`${path}.endpoint`, (e as Error).message.split('\n')[0] as string);
    }
  }
  let events: Set<GatewayEvent> | undefined = new Set(['request_headers']);
  if (v.events !== undefined) {
    if (!Array.isArray(v.events) || v.events.length === 0) {
      events = c.fail(`${path}.events`, 'must be a non-empty list of event names');
    } else {
      events = new Set();
      for (const [i, e] of v.events.entries()) {
        const ev = c.oneOf(e, `${path}.events[${i}]`, GATEWAY_EVENTS);
        if (ev) events.add(ev);
      }
    }
  }
  const bodyMode =
    v.body_mode === undefined
      ? 'buffer'
      : c.oneOf(v.body_mode, `${path}.body_mode`, ['buffer', 'stream'] as const);
  const maxBodyBytes =
    v.max_body_bytes === undefined
      ? DEFAULT_MAX_BODY_BYTES
      : c.int(v.max_body_bytes, `${path}.max_body_bytes`, 0);
  const timeoutMs =
    v.timeout_ms === undefined
      ? DEFAULT_AGENT_TIMEOUT_MS
      : c.int(v.timeout_ms, `${path}.timeout_ms`, 1);
  const failureMode =
    v.failure_mode === undefined
      ? 'closed'
      : c.oneOf(v.failure_mode, `${path}.failure_mode`, ['open', 'closed'] as const);
  const connections =
    v.connections === undefined ? undefined : c.int(v.connections, `${path}.connections`, 1, 64);
  let authToken: string | undefined;
  if (v.auth_token !== undefined && v.auth_token_file !== undefined) {
    c.fail(path, 'give auth_token or auth_token_file, not both');
  } else if (v.auth_token_file !== undefined) {
    const file = c.str(v.auth_token_file, `${path}.auth_token_file`);
    try {
      if (file !== undefined) authToken = readTokenFile(file, dir);
    } catch (e) {
      c.fail(`${path}.auth_token_file`, (e as Error).message);
    }
  } else if (v.auth_token !== undefined) authToken = c.str(v.auth_token, `${path}.auth_token`);
  if (
    endpoint === undefined ||
    !events ||
    !bodyMode ||
    maxBodyBytes === undefined ||
    timeoutMs === undefined ||
    !failureMode ||
    (v.connections !== undefined && connections === undefined)
  ) {
    return undefined;
  }
  return {
    name,
    endpoint,
    events,
    bodyMode,
    maxBodyBytes,
    timeoutMs,
    failureMode,
    connections,
    authToken,
  };
}

function parseRoute(
  c: Checker,
  v: unknown,
  i: number,
  upstreams: ReadonlyMap<string, UpstreamConfig>,
  agents: ReadonlyMap<string, AgentConfig>,
  knownUpstreams: ReadonlySet<string>,
  knownAgents: ReadonlySet<string>,
): RouteConfig | undefined {
  const path = `routes[${i}]`;
  if (!isObj(v)) return c.fail(path, 'must be an object');
  c.unknownKeys(v, path, ['name', 'host', 'path_prefix', 'upstream', 'agents', 'path']);
  const name = v.name === undefined ? `route-${i}` : c.str(v.name, `${path}.name`);
  let host: string | undefined;
  if (v.host !== undefined) {
    const h = c.str(v.host, `${path}.host`)?.toLowerCase();
    if (h !== undefined && !HOST.test(h)) {
      c.fail(`${path}.host`, `"${h}" is not a host name or "*.domain" pattern (no port)`);
    } else host = h?.replace(/\.$/, '');
  }
  let pathPrefix: string | undefined = '/';
  if (v.path_prefix !== undefined) {
    pathPrefix = c.str(v.path_prefix, `${path}.path_prefix`);
    if (pathPrefix !== undefined && !pathPrefix.startsWith('/')) {
      pathPrefix = c.fail(`${path}.path_prefix`, `"${pathPrefix}" must start with "/"`);
    } else if (pathPrefix !== undefined && /[?#]/.test(pathPrefix)) {
      pathPrefix = c.fail(`${path}.path_prefix`, `"${pathPrefix}" must not contain "?" or "#"`);
    }
  }
  const upstream = c.str(v.upstream, `${path}.upstream`);
  if (upstream !== undefined && !knownUpstreams.has(upstream)) {
    c.fail(`${path}.upstream`, `unknown upstream "${upstream}"`);
  }
  const chain: string[] = [];
  if (v.agents !== undefined) {
    if (!Array.isArray(v.agents)) c.fail(`${path}.agents`, 'must be a list of agent names');
    else {
      for (const [j, a] of v.agents.entries()) {
        const an = c.str(a, `${path}.agents[${j}]`);
        if (an === undefined) continue;
        if (!knownAgents.has(an)) c.fail(`${path}.agents[${j}]`, `unknown agent "${an}"`);
        else if (chain.includes(an))
          c.fail(`${path}.agents[${j}]`, `agent "${an}" is listed twice`);
        else chain.push(an);
      }
    }
  }
  const policy = parsePathPolicy(c, v.path, `${path}.path`);
  if (policy && pathPrefix !== undefined) {
    // a prefix not in the route's own path form could never match
    const n = normalizePath(pathPrefix, policy);
    if (!n.ok || n.path !== pathPrefix) {
      c.fail(
        `${path}.path_prefix`,
        n.ok
          ? `"${pathPrefix}" never matches a normalised path; write it as "${n.path}"`
          : `"${pathPrefix}" never matches: ${n.reason}`,
      );
    }
  }
  if (
    name === undefined ||
    pathPrefix === undefined ||
    upstream === undefined ||
    !upstreams.has(upstream) ||
    chain.some((a) => !agents.has(a)) ||
    !policy
  ) {
    return undefined;
  }
  return { name, host, pathPrefix, upstream, agents: chain, path: policy };
}

/** The `server:` section; every field has a default. */
function parseServer(c: Checker, v: unknown): ServerConfig {
  const s: ServerConfig = {
    headersTimeoutMs: DEFAULT_HEADERS_TIMEOUT_MS,
    requestTimeoutMs: DEFAULT_REQUEST_TIMEOUT_MS,
    keepAliveTimeoutMs: DEFAULT_KEEP_ALIVE_TIMEOUT_MS,
    maxConnections: DEFAULT_MAX_CONNECTIONS,
  };
  if (v === undefined) return s;
  if (!isObj(v)) {
    c.fail('server', 'must be an object');
    return s;
  }
  c.unknownKeys(v, 'server', [
    'headers_timeout_ms',
    'request_timeout_ms',
    'keep_alive_timeout_ms',
    'max_connections',
  ]);
  const ms = (key: string, fallback: number): number =>
    v[key] === undefined
      ? fallback
      : (c.int(v[key], `server.${key}`, 1, MAX_CLIENT_TIMEOUT_MS) ?? fallback);
  s.headersTimeoutMs = ms('headers_timeout_ms', s.headersTimeoutMs);
  s.requestTimeoutMs = ms('request_timeout_ms', s.requestTimeoutMs);
  s.keepAliveTimeoutMs = ms('keep_alive_timeout_ms', s.keepAliveTimeoutMs);
  if (v.max_connections !== undefined) {
    s.maxConnections = c.int(v.max_connections, 'server.max_connections', 1) ?? s.maxConnections;
  }
  // node:http refuses headersTimeout > requestTimeout; say so in config terms
  if (s.headersTimeoutMs > s.requestTimeoutMs) {
    c.fail(
      'server.headers_timeout_ms',
      `${s.headersTimeoutMs} must not be more than server.request_timeout_ms (${s.requestTimeoutMs}): the headers are part of the request`,
    );
  }
  return s;
}

/** A route's `path:` block: `normalize`, `merge_slashes`, `escaped_slashes`; safe defaults. */
function parsePathPolicy(c: Checker, v: unknown, path: string): PathPolicy | undefined {
  if (v === undefined) return { ...DEFAULT_PATH_POLICY };
  if (!isObj(v)) {
    return c.fail(path, 'must be an object (normalize, merge_slashes, escaped_slashes)');
  }
  c.unknownKeys(v, path, ['normalize', 'merge_slashes', 'escaped_slashes']);
  const before = c.problems.length;
  const flag = (key: string, fallback: boolean): boolean => {
    if (v[key] === undefined) return fallback;
    if (typeof v[key] !== 'boolean') c.fail(`${path}.${key}`, 'must be true or false');
    return v[key] === true;
  };
  const policy: PathPolicy = {
    normalize: flag('normalize', DEFAULT_PATH_POLICY.normalize),
    mergeSlashes: flag('merge_slashes', DEFAULT_PATH_POLICY.mergeSlashes),
    escapedSlashes:
      v.escaped_slashes === undefined
        ? DEFAULT_PATH_POLICY.escapedSlashes
        : (c.oneOf(v.escaped_slashes, `${path}.escaped_slashes`, ESCAPED_SLASHES) ?? 'reject'),
  };
  if (policy.escapedSlashes === 'decode' && !policy.normalize) {
    // decoding makes new "/" and ".." segments that nothing would resolve
    c.fail(`${path}.escaped_slashes`, '"decode" needs normalize: true');
  }
  return c.problems.length === before ? policy : undefined;
}

/**
 * Validates a parsed config value (from JSON or YAML). Throws {@link ConfigError}
 * listing every problem, each prefixed by the field path
 * (`routes[1].upstream: unknown upstream "x"`).
 */
export function parseConfig(raw: unknown, source?: string): GatewayConfig {
  const c = new Checker();
  if (!isObj(raw)) throw new ConfigError(['(root): must be an object (a mapping)'], source);
  c.unknownKeys(raw, '', [
    'listen',
    'admin',
    'server',
    'client_ip_header',
    'upstreams',
    'agents',
    'routes',
  ]);

  const listen = raw.listen === undefined ? DEFAULT_LISTEN : c.listen(raw.listen, 'listen');

  const admin: AdminConfig = {
    prefix: DEFAULT_ADMIN_PREFIX,
    listen: undefined,
    minHealthyAgents: 'all',
  };
  if (raw.admin !== undefined) {
    if (!isObj(raw.admin)) c.fail('admin', 'must be an object');
    else {
      c.unknownKeys(raw.admin, 'admin', ['prefix', 'listen', 'min_healthy_agents']);
      const a = raw.admin;
      if (a.prefix !== undefined) {
        const p = c.str(a.prefix, 'admin.prefix');
        if (p !== undefined && !/^\/[^?#]*[^/?#]$/.test(p)) {
          c.fail('admin.prefix', `"${p}" must start with "/", not end with "/" and not be "/"`);
        } else if (p !== undefined) admin.prefix = p;
      }
      if (a.listen !== undefined) admin.listen = c.listen(a.listen, 'admin.listen');
      if (a.min_healthy_agents !== undefined) {
        if (a.min_healthy_agents === 'all') admin.minHealthyAgents = 'all';
        else {
          const n = c.int(a.min_healthy_agents, 'admin.min_healthy_agents', 0);
          if (n !== undefined) admin.minHealthyAgents = n;
        }
      }
    }
  }

  const server = parseServer(c, raw.server);

  let clientIpHeader: string | undefined;
  if (raw.client_ip_header !== undefined && raw.client_ip_header !== null) {
    const h = c.str(raw.client_ip_header, 'client_ip_header');
    if (h !== undefined && !HEADER_NAME.test(h)) {
      c.fail('client_ip_header', `"${h}" is not a valid header name`);
    } else clientIpHeader = h?.toLowerCase();
  }

  const upstreams = new Map<string, UpstreamConfig>();
  const knownUpstreams = new Set<string>();
  if (!isObj(raw.upstreams) || Object.keys(raw.upstreams).length === 0) {
    c.fail('upstreams', 'must map at least one upstream name to a URL');
  } else {
    for (const [name, v] of Object.entries(raw.upstreams)) {
      const path = `upstreams.${name}`;
      knownUpstreams.add(name);
      if (!NAME.test(name)) c.fail(path, 'name must be letters, digits, ".", "_" or "-"');
      const u = parseUpstream(c, name, v, path);
      if (u) upstreams.set(name, u);
    }
  }

  const agents = new Map<string, AgentConfig>();
  const knownAgents = new Set<string>();
  // files named in the config (auth_token_file) are relative to the config file
  const dir = source === undefined ? process.cwd() : dirname(resolve(source));
  if (raw.agents !== undefined) {
    if (!isObj(raw.agents)) c.fail('agents', 'must map agent names to their settings');
    else {
      for (const [name, v] of Object.entries(raw.agents)) {
        const path = `agents.${name}`;
        knownAgents.add(name);
        if (!NAME.test(name)) c.fail(path, 'name must be letters, digits, ".", "_" or "-"');
        const a = parseAgent(c, name, v, path, dir);
        if (a) agents.set(name, a);
      }
    }
  }

  const routes: RouteConfig[] = [];
  if (!Array.isArray(raw.routes) || raw.routes.length === 0) {
    c.fail('routes', 'must be a non-empty list');
  } else {
    const names = new Set<string>();
    for (const [i, v] of raw.routes.entries()) {
      const r = parseRoute(c, v, i, upstreams, agents, knownUpstreams, knownAgents);
      if (!r) continue;
      if (names.has(r.name)) c.fail(`routes[${i}].name`, `duplicate route name "${r.name}"`);
      names.add(r.name);
      routes.push(r);
    }
  }
  if (typeof admin.minHealthyAgents === 'number' && admin.minHealthyAgents > knownAgents.size) {
    c.fail(
      'admin.min_healthy_agents',
      `${admin.minHealthyAgents} is more than the ${knownAgents.size} configured agent(s)`,
    );
  }

  if (c.problems.length > 0 || listen === undefined) throw new ConfigError(c.problems, source);
  return { listen, admin, server, clientIpHeader, upstreams, agents, routes };
}

/** Parses config text; YAML unless the file name ends in `.json` (YAML is a superset anyway). */
export function parseConfigText(text: string, source = 'config'): GatewayConfig {
  let raw: unknown;
  try {
    raw = extname(source).toLowerCase() === '.json' ? JSON.parse(text) : parseYaml(text);
  } catch (e) {
    throw new ConfigError([`(file): cannot parse: ${(e as Error).message}`], source);
  }
  return parseConfig(raw, source);
}

/** Reads and validates a config file (`.json`, `.yaml`, `.yml`). */
export function loadConfigFile(file: string): GatewayConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigError([`(file): cannot read: ${(e as Error).message}`], file);
  }
  return parseConfigText(text, file);
}
