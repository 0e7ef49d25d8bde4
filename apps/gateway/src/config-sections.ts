/**
 * Validation of the config's sections: upstreams, agents, routes (with their
 * path policy) and server limits. Each collects its problems in the Checker.
 */

import { DEFAULT_PATH_POLICY, ESCAPED_SLASHES, normalizePath, type PathPolicy } from '@picket/http';
import { detectTransport, readTokenFile } from '@picket/transport';
import { type Checker, HOST, isObj, type Obj } from './config-check.js';
import { PROCESS_KEYS, PROX_ENDPOINT, parseAgentProcess } from './config-process.js';
import {
  type AgentConfig,
  DEFAULT_AGENT_TIMEOUT_MS,
  DEFAULT_HEADERS_TIMEOUT_MS,
  DEFAULT_KEEP_ALIVE_TIMEOUT_MS,
  DEFAULT_MAX_BODY_BYTES,
  DEFAULT_MAX_CONNECTIONS,
  DEFAULT_REQUEST_TIMEOUT_MS,
  DEFAULT_UPSTREAM_CONNECT_TIMEOUT_MS,
  DEFAULT_UPSTREAM_TIMEOUT_MS,
  GATEWAY_EVENTS,
  type GatewayEvent,
  type RouteConfig,
  type ServerConfig,
  type UpstreamConfig,
} from './config-types.js';

/** the longest any of the client timeouts may be set to (one day) */
const MAX_CLIENT_TIMEOUT_MS = 86_400_000;

export function parseUpstream(
  c: Checker,
  name: string,
  v: unknown,
  path: string,
): UpstreamConfig | undefined {
  const raw: Obj = typeof v === 'string' ? { url: v } : isObj(v) ? v : {};
  if (typeof v !== 'string' && !isObj(v)) {
    return c.fail(path, 'must be a URL string or an object with "url" (or "targets_from")');
  }
  c.unknownKeys(raw, path, ['url', 'targets_from', 'timeout_ms', 'connect_timeout_ms', 'retries']);
  // targets_from: the servers come from a prox plugin's set_targets (checked in config-process.ts)
  let targetsFrom: string | undefined;
  if (raw.targets_from !== undefined) {
    targetsFrom = c.str(raw.targets_from, `${path}.targets_from`);
    if (raw.url !== undefined) c.fail(path, 'give url or targets_from, not both');
  }
  const urlText = raw.targets_from === undefined ? c.str(raw.url, `${path}.url`) : undefined;
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
  if (
    (!url && !targetsFrom) ||
    timeoutMs === undefined ||
    connectTimeoutMs === undefined ||
    retries === undefined
  ) {
    return undefined;
  }
  return { name, url, targetsFrom, timeoutMs, connectTimeoutMs, retries };
}

export function parseAgent(
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
    ...PROCESS_KEYS,
  ]);
  let endpoint = c.str(v.endpoint, `${path}.endpoint`);
  // `endpoint: prox`: the command is a prox plugin (config-process.ts)
  if (endpoint !== undefined && endpoint !== PROX_ENDPOINT) {
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
  const proc = parseAgentProcess(c, v, path, endpoint, dir);
  if (
    !proc.ok ||
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
    process: proc.process,
    prox: proc.prox,
  };
}

export function parseRoute(
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
export function parseServer(c: Checker, v: unknown): ServerConfig {
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
