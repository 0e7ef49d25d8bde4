import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_PATH_POLICY } from '@picket/http';
import { afterEach, describe, expect, it } from 'vitest';
import {
  ConfigError,
  loadConfigFile,
  parseConfig,
  parseConfigText,
  parseListen,
} from '../src/config.js';
import { hostMatches, hostWithoutPort, matchRoute, pathMatches } from '../src/routes.js';
import { APP_DIR } from './helpers.js';

const base = () => ({
  upstreams: {
    app: 'http://127.0.0.1:9000',
    api: { url: 'http://127.0.0.1:9001/base', retries: 1 },
  },
  agents: {
    waf: 'unix:/tmp/waf.sock',
    auth: {
      endpoint: '127.0.0.1:50051',
      events: ['request_headers', 'request_body', 'request_complete'],
      body_mode: 'stream',
      timeout_ms: 250,
      failure_mode: 'open',
    },
  },
  routes: [
    {
      name: 'api',
      host: 'api.example.com',
      path_prefix: '/v1',
      upstream: 'api',
      agents: ['waf', 'auth'],
    },
    { upstream: 'app', agents: ['waf'] },
  ],
});

function problems(raw: unknown): string[] {
  try {
    parseConfig(raw);
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return [...(e as ConfigError).problems];
  }
  throw new Error('config was accepted');
}

describe('parseConfig', () => {
  it('resolves a valid config with defaults', () => {
    const c = parseConfig(base());
    expect(c.listen).toBe('127.0.0.1:8080');
    expect(c.admin).toEqual({ prefix: '/_picket', listen: undefined, minHealthyAgents: 'all' });
    expect(c.upstreams.get('app')?.url?.href).toBe('http://127.0.0.1:9000/');
    expect(c.upstreams.get('api')).toMatchObject({
      retries: 1,
      timeoutMs: 30_000,
      connectTimeoutMs: 5_000,
    });
    const waf = c.agents.get('waf');
    expect(waf).toMatchObject({
      endpoint: 'unix:/tmp/waf.sock',
      bodyMode: 'buffer',
      maxBodyBytes: 1024 * 1024,
      timeoutMs: 1000,
      failureMode: 'closed',
    });
    expect([...(waf?.events ?? [])]).toEqual(['request_headers']);
    const auth = c.agents.get('auth');
    expect([...(auth?.events ?? [])]).toEqual([
      'request_headers',
      'request_body',
      'request_complete',
    ]);
    expect(auth).toMatchObject({ bodyMode: 'stream', timeoutMs: 250, failureMode: 'open' });
    expect(c.routes).toEqual([
      {
        name: 'api',
        host: 'api.example.com',
        pathPrefix: '/v1',
        upstream: 'api',
        agents: ['waf', 'auth'],
        path: DEFAULT_PATH_POLICY,
      },
      {
        name: 'route-1',
        host: undefined,
        pathPrefix: '/',
        upstream: 'app',
        agents: ['waf'],
        path: DEFAULT_PATH_POLICY,
      },
    ]);
  });

  it('names the field of an unknown upstream or agent in a route', () => {
    const raw = base();
    raw.routes.push({ upstream: 'x', agents: ['waf', 'nope'] });
    expect(problems(raw)).toEqual([
      'routes[2].upstream: unknown upstream "x"',
      'routes[2].agents[1]: unknown agent "nope"',
    ]);
  });

  it('reports every problem at once, each with its path', () => {
    const p = problems({
      listen: 'nowhere',
      admin: { prefix: 'metrics', min_healthy_agents: -1 },
      client_ip_header: 'bad header',
      upstreams: {
        a: 'ftp://x',
        b: { url: 'http://h?q=1' },
        c: { url: 'http://h', timeout_ms: 0 },
      },
      agents: {
        w: { events: ['request_headers', 'bogus'], body_mode: 'chunks', failure_mode: 'maybe' },
        v: { endpoint: 'unix:/x', max_body_bytes: 1.5, connections: 0, colour: 'red' },
      },
      routes: [{ upstream: 'a', path_prefix: 'api', host: 'exa mple', agents: ['w', 'w'] }],
      extra: true,
    });
    expect(p).toEqual(
      expect.arrayContaining([
        'extra: unknown field (expected one of listen, admin, server, client_ip_header, upstreams, agents, routes)',
        'listen: "nowhere" is not a host:port address',
        'admin.prefix: "metrics" must start with "/", not end with "/" and not be "/"',
        'admin.min_healthy_agents: must be an integer between 0 and 9007199254740991',
        'client_ip_header: "bad header" is not a valid header name',
        'upstreams.a.url: "ftp://x" must be an http:// or https:// URL',
        'upstreams.b.url: "http://h?q=1" must not have a query, fragment or credentials',
        'upstreams.c.timeout_ms: must be an integer between 1 and 9007199254740991',
        'agents.w.endpoint: must be a non-empty string',
        'agents.w.events[1]: must be one of "request_headers", "request_body", "response_headers", "response_body", "request_complete"',
        'agents.w.body_mode: must be one of "buffer", "stream"',
        'agents.w.failure_mode: must be one of "open", "closed"',
        'agents.v.colour: unknown field (expected one of endpoint, events, body_mode, max_body_bytes, timeout_ms, failure_mode, connections, auth_token, auth_token_file, command, env, cwd, ready_timeout_ms, stop_grace_ms, targets_only)',
        'agents.v.max_body_bytes: must be an integer between 0 and 9007199254740991',
        'agents.v.connections: must be an integer between 1 and 64',
        'routes[0].host: "exa mple" is not a host name or "*.domain" pattern (no port)',
        'routes[0].path_prefix: "api" must start with "/"',
        'routes[0].agents[1]: agent "w" is listed twice',
      ]),
    );
  });

  it('requires upstreams and routes, and checks min_healthy_agents against the agents', () => {
    expect(problems({})).toEqual([
      'upstreams: must map at least one upstream name to a URL',
      'routes: must be a non-empty list',
    ]);
    expect(problems([])).toEqual(['(root): must be an object (a mapping)']);
    const raw = { ...base(), admin: { min_healthy_agents: 3 } };
    expect(problems(raw)).toEqual([
      'admin.min_healthy_agents: 3 is more than the 2 configured agent(s)',
    ]);
  });

  it('rejects duplicate route names', () => {
    const raw = base();
    raw.routes[1] = { ...raw.routes[1], name: 'api' } as (typeof raw.routes)[number];
    expect(problems(raw)).toEqual(['routes[1].name: duplicate route name "api"']);
  });

  it('lists an endpoint no transport understands with every other problem', () => {
    const raw = base();
    raw.agents.waf = 'foo://bar';
    raw.routes[1] = { ...raw.routes[1], upstream: 'nope' } as (typeof raw.routes)[number];
    expect(problems(raw)).toEqual([
      expect.stringMatching(/^agents\.waf\.endpoint: invalid agent endpoint "foo:\/\/bar": /),
      'routes[1].upstream: unknown upstream "nope"',
    ]);
  });

  it('the error message lists the problems under the source name', () => {
    const err = (() => {
      try {
        parseConfig({ upstreams: {}, routes: [] }, 'gw.yaml');
      } catch (e) {
        return e as Error;
      }
    })();
    expect(err?.message).toBe(
      'invalid gateway config (gw.yaml):\n  - upstreams: must map at least one upstream name to a URL\n  - routes: must be a non-empty list',
    );
  });
});

describe('config files', () => {
  let dir = '';
  afterEach(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
    dir = '';
  });

  it('reads YAML and JSON', () => {
    dir = mkdtempSync(join(tmpdir(), 'picket-'));
    const yamlFile = join(dir, 'gw.yaml');
    writeFileSync(
      yamlFile,
      [
        'listen: 127.0.0.1:0',
        'admin: { listen: "127.0.0.1:0", min_healthy_agents: 0 }',
        'upstreams:',
        '  app: http://127.0.0.1:9000',
        'agents:',
        '  waf: { endpoint: "unix:/tmp/w.sock", events: [request_headers, response_body] }',
        'routes:',
        '  - { host: "*.example.com", upstream: app, agents: [waf] }',
      ].join('\n'),
    );
    const c = loadConfigFile(yamlFile);
    expect(c.admin.listen).toBe('127.0.0.1:0');
    expect(c.admin.minHealthyAgents).toBe(0);
    expect(c.routes[0]?.host).toBe('*.example.com');
    const jsonFile = join(dir, 'gw.json');
    writeFileSync(jsonFile, JSON.stringify(base()));
    expect(loadConfigFile(jsonFile).routes).toHaveLength(2);
  });

  it('reports unreadable and unparsable files', () => {
    expect(() => loadConfigFile('/nonexistent/gw.yaml')).toThrow(/\(file\): cannot read/);
    expect(() => parseConfigText('{ not json', 'x.json')).toThrow(/\(file\): cannot parse/);
    expect(() => parseConfigText('a: [1, 2', 'x.yaml')).toThrow(/\(file\): cannot parse/);
  });
});

describe('parseListen', () => {
  it('splits host and port', () => {
    expect(parseListen('127.0.0.1:8080')).toEqual({ host: '127.0.0.1', port: 8080 });
    expect(parseListen('[::1]:0')).toEqual({ host: '::1', port: 0 });
    expect(parseListen(':9000')).toEqual({ host: '127.0.0.1', port: 9000 });
    expect(parseListen('9000')).toEqual({ host: '127.0.0.1', port: 9000 });
    expect(() => parseListen('localhost')).toThrow(/not a host:port/);
    expect(() => parseListen('h:70000')).toThrow(/out of range/);
  });
});

describe('route matching', () => {
  const routes = parseConfig({
    upstreams: { a: 'http://127.0.0.1:1' },
    routes: [
      { name: 'exact-host', host: 'api.example.com', path_prefix: '/v1', upstream: 'a' },
      { name: 'wildcard', host: '*.example.com', path_prefix: '/static/', upstream: 'a' },
      { name: 'api', path_prefix: '/api', upstream: 'a' },
      { name: 'all', upstream: 'a' },
    ],
  }).routes;
  const m = (host: string | undefined, path: string) => matchRoute(routes, host, path)?.name;

  it('first match wins, host and path both count', () => {
    expect(m('api.example.com', '/v1/users')).toBe('exact-host');
    expect(m('API.Example.com:8443', '/v1')).toBe('exact-host');
    expect(m('other.example.com', '/v1/users')).toBe('all');
    expect(m('cdn.example.com', '/static/app.js')).toBe('wildcard');
    expect(m('example.com', '/static/app.js')).toBe('all');
    expect(m(undefined, '/api/items?x=1')).toBe('api');
    expect(m('anything', '/')).toBe('all');
  });

  it('path prefixes match on segment boundaries', () => {
    expect(pathMatches('/api', '/api')).toBe(true);
    expect(pathMatches('/api', '/api/')).toBe(true);
    expect(pathMatches('/api', '/api?q')).toBe(true);
    expect(pathMatches('/api', '/apix')).toBe(false);
    expect(pathMatches('/static/', '/static/x')).toBe(true);
    expect(pathMatches('/', '/anything')).toBe(true);
    expect(m('h', '/apiary')).toBe('all');
  });

  it('host patterns', () => {
    expect(hostMatches(undefined, '')).toBe(true);
    expect(hostMatches('*.example.com', 'a.b.example.com')).toBe(true);
    expect(hostMatches('*.example.com', 'example.com')).toBe(false);
    expect(hostMatches('*.example.com', 'badexample.com')).toBe(false);
    expect(hostWithoutPort('[::1]:8080')).toBe('[::1]');
    expect(hostWithoutPort('Example.COM.:80')).toBe('example.com');
    expect(hostWithoutPort(undefined)).toBe('');
  });

  it('no route ⇒ undefined', () => {
    const only = parseConfig({
      upstreams: { a: 'http://127.0.0.1:1' },
      routes: [{ host: 'a.test', upstream: 'a' }],
    }).routes;
    expect(matchRoute(only, 'b.test', '/')).toBeUndefined();
  });
});

describe('examples/gateway.yaml', () => {
  it('is valid and is the example the README shows', () => {
    const file = join(APP_DIR, 'examples', 'gateway.yaml');
    const c = loadConfigFile(file);
    expect([...c.agents.keys()]).toEqual(['waf', 'auth', 'dlp']);
    expect(c.routes.map((r) => r.name)).toEqual(['api', 'site']);
    const readme = readFileSync(join(APP_DIR, 'README.md'), 'utf8');
    expect(readme).toContain(readFileSync(file, 'utf8').trim());
  });
});
