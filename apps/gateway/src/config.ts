/**
 * Gateway configuration: the file format (JSON or YAML, snake_case keys) and its
 * validation with errors that name the offending field. The resolved shape is in
 * config-types.ts, the sections' validation in config-sections.ts.
 */
import { readFileSync } from 'node:fs';
import { dirname, extname, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { Checker, HEADER_NAME, isObj, NAME } from './config-check.js';
import { checkTargetsFrom } from './config-process.js';
import { parseAgent, parseRoute, parseServer, parseUpstream } from './config-sections.js';
import {
  type AdminConfig,
  type AgentConfig,
  ConfigError,
  DEFAULT_ADMIN_PREFIX,
  DEFAULT_LISTEN,
  type GatewayConfig,
  type RouteConfig,
  type UpstreamConfig,
} from './config-types.js';

// the public entry points: other modules and the tests import everything from here
export { parseListen } from './config-check.js';
export * from './config-types.js';

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
  // files named in the config (auth_token_file, an agent's cwd) are relative to the config file
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
  checkTargetsFrom(c, upstreams, agents, knownAgents);
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
