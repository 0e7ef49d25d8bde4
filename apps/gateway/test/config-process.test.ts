/**
 * Config of supervised agents (`command`, `env`, `cwd`, `ready_timeout_ms`, `stop_grace_ms`),
 * prox plugins (`endpoint: prox` + command, `prox+exec:`) and `targets_from` upstreams.
 */
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfigFile, parseConfig } from '../src/config.js';
import { proxBindings } from '../src/config-process.js';
import { APP_DIR, tempDir } from './helpers.js';

const dir = tempDir();
mkdirSync(join(dir, 'agents'));
const source = join(dir, 'gateway.yaml');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function config(agents: Record<string, unknown>, upstreams: Record<string, unknown> = {}) {
  return {
    upstreams: { app: 'http://127.0.0.1:9000', ...upstreams },
    agents,
    routes: [{ name: 'main', path_prefix: '/', upstream: 'app', agents: Object.keys(agents) }],
  };
}

function problems(raw: unknown): readonly string[] {
  try {
    parseConfig(raw, source);
  } catch (e) {
    if (e instanceof ConfigError) return e.problems;
    throw e;
  }
  throw new Error('config was accepted');
}

describe('agents.<name>.command', () => {
  it('a Zentinel agent: argv, env, cwd relative to the config file, limits and defaults', () => {
    const c = parseConfig(
      config({
        deny: {
          command: ['picket', 'serve', 'denylist', '--listen', 'unix:/run/d.sock'],
          endpoint: 'unix:/run/d.sock',
          env: { LOG: 'debug' },
          cwd: 'agents',
          ready_timeout_ms: 3000,
          stop_grace_ms: 500,
        },
        plain: { command: ['./agent'], endpoint: '127.0.0.1:7000' },
      }),
      source,
    );
    expect(c.agents.get('deny')?.process).toEqual({
      command: ['picket', 'serve', 'denylist', '--listen', 'unix:/run/d.sock'],
      env: { LOG: 'debug' },
      cwd: join(dir, 'agents'),
      readyTimeoutMs: 3000,
      stopGraceMs: 500,
    });
    expect(c.agents.get('deny')?.prox).toBeUndefined();
    expect(c.agents.get('plain')?.process).toEqual({
      command: ['./agent'],
      env: {},
      cwd: dir,
      readyTimeoutMs: 10_000,
      stopGraceMs: 2_000,
    });
  });

  it('a prox plugin: command with "endpoint: prox", or prox+exec: alone (the same thing)', () => {
    const c = parseConfig(
      config({
        a: { command: ['/opt/plugin', '--strict'], endpoint: 'prox', targets_only: true },
        b: { endpoint: "prox+exec:/opt/plugin '--strict'", env: { K: 'v' } },
      }),
      source,
    );
    expect(c.agents.get('a')?.process?.command).toEqual(['/opt/plugin', '--strict']);
    expect(c.agents.get('a')?.prox).toEqual({ targetsOnly: true });
    expect(c.agents.get('b')?.process).toMatchObject({
      command: ['/opt/plugin', '--strict'],
      env: { K: 'v' },
      cwd: dir,
    });
    expect(c.agents.get('b')?.prox).toEqual({ targetsOnly: false });
  });

  it('an agent without command has no process', () => {
    const c = parseConfig(config({ x: 'unix:/run/x.sock' }), source);
    expect(c.agents.get('x')?.process).toBeUndefined();
  });

  it('refuses a command that is not a non-empty list of strings', () => {
    expect(problems(config({ a: { command: 'picket serve', endpoint: 'unix:/a' } }))).toEqual([
      'agents.a.command: must be a non-empty list of strings: [program, args…]',
    ]);
    expect(problems(config({ a: { command: [], endpoint: 'unix:/a' } }))).toEqual([
      'agents.a.command: must be a non-empty list of strings: [program, args…]',
    ]);
    expect(problems(config({ a: { command: ['x', 8080, null], endpoint: 'unix:/a' } }))).toEqual([
      'agents.a.command[1]: must be a string (got number)',
      'agents.a.command[2]: must be a string (got null)',
    ]);
    expect(problems(config({ a: { command: ['', 'x'], endpoint: 'unix:/a' } }))).toEqual([
      'agents.a.command[0]: the program must not be empty',
    ]);
    expect(problems(config({ a: { command: ['x\0y'], endpoint: 'unix:/a' } }))).toEqual([
      'agents.a.command[0]: must not contain a NUL character',
    ]);
  });

  it('refuses env values that are not strings, bad names, and a cwd that is no directory', () => {
    expect(
      problems(
        config({
          a: {
            command: ['x'],
            endpoint: 'unix:/a',
            env: { PORT: 8080, DEBUG: true, 'A=B': 'x', OK: 'yes' },
            cwd: 'missing',
          },
        }),
      ),
    ).toEqual([
      'agents.a.env.PORT: must be a string (got number; quote numbers and booleans in YAML)',
      'agents.a.env.DEBUG: must be a string (got boolean; quote numbers and booleans in YAML)',
      'agents.a.env.A=B: a variable name must be non-empty, without "=" or NUL',
      `agents.a.cwd: "missing" (${join(dir, 'missing')}) is not a directory`,
    ]);
    expect(problems(config({ a: { command: ['x'], endpoint: 'unix:/a', env: ['A=1'] } }))).toEqual([
      'agents.a.env: must map variable names to string values',
    ]);
  });

  it('refuses limits out of range', () => {
    expect(
      problems(
        config({
          a: { command: ['x'], endpoint: 'unix:/a', ready_timeout_ms: 0, stop_grace_ms: 60_000 },
        }),
      ),
    ).toEqual([
      'agents.a.ready_timeout_ms: must be an integer between 1 and 600000',
      'agents.a.stop_grace_ms: must be an integer between 1 and 30000',
    ]);
  });

  it('refuses process settings without a command, and targets_only for a Zentinel agent', () => {
    expect(
      problems(
        config({
          a: { endpoint: 'unix:/a', env: { A: '1' }, cwd: '.', stop_grace_ms: 10 },
          b: { command: ['x'], endpoint: 'unix:/b', targets_only: true },
        }),
      ),
    ).toEqual([
      'agents.a.env: only for an agent the gateway starts (give command)',
      'agents.a.cwd: only for an agent the gateway starts (give command)',
      'agents.a.stop_grace_ms: only for an agent the gateway starts (give command)',
      'agents.b.targets_only: only for prox plugins ("endpoint: prox" or prox+exec:)',
    ]);
  });

  it('refuses command with a reverse endpoint, with prox+exec:, and "endpoint: prox" without one', () => {
    const p = problems(
      config({
        r: { command: ['x'], endpoint: 'reverse+unix:/tmp/r.sock' },
        e: { command: ['x'], endpoint: 'prox+exec:/opt/plugin' },
        p: { endpoint: 'prox' },
        q: { endpoint: "prox+exec:/opt/plugin 'unterminated" },
      }),
    );
    expect(p[0]).toMatch(
      /^agents\.r\.command: a reverse endpoint \(reverse\+unix:\/tmp\/r\.sock\) is one the agent dials; the gateway cannot tell when it is ready/,
    );
    expect(p[1]).toMatch(
      /^agents\.e\.command: the prox\+exec: endpoint already names the plugin and its arguments/,
    );
    expect(p[2]).toBe(
      'agents.p.command: "endpoint: prox" needs the plugin\'s command: [program, args…]',
    );
    expect(p[3]).toMatch(/^agents\.q\.endpoint: .*unterminated ' quote/);
    expect(p).toHaveLength(4);
  });
});

describe('upstreams.<name>.targets_from', () => {
  const plugin = { command: ['/opt/discovery'], endpoint: 'prox' };

  it('takes a prox plugin agent; the plugin is bound to the routes using the upstream', () => {
    const raw = {
      upstreams: { app: 'http://127.0.0.1:9000', dyn: { targets_from: 'disco', retries: 2 } },
      agents: { disco: plugin, deny: { command: ['/opt/deny'], endpoint: 'prox' } },
      routes: [
        { name: 'api', host: 'api.example.com', path_prefix: '/v1', upstream: 'dyn' },
        { name: 'web', path_prefix: '/', upstream: 'app', agents: ['deny'] },
      ],
    };
    const c = parseConfig(raw, source);
    expect(c.upstreams.get('dyn')).toMatchObject({
      url: undefined,
      targetsFrom: 'disco',
      retries: 2,
    });
    expect(proxBindings('disco', c.routes, c.upstreams)).toEqual([
      { routeId: 'api', match: { domain: 'api.example.com', path: '/v1' } },
    ]);
    expect(proxBindings('deny', c.routes, c.upstreams)).toEqual([
      { routeId: 'web', match: { domain: '', path: '/' } },
    ]);
  });

  it('refuses an unknown agent, an agent that is no prox plugin, and url together with it', () => {
    expect(
      problems({
        upstreams: {
          a: { targets_from: 'nobody' },
          b: { targets_from: 'zen' },
          c: { targets_from: 'disco', url: 'http://127.0.0.1:1' },
          d: { targets_from: '' },
        },
        agents: { disco: plugin, zen: { command: ['z'], endpoint: 'unix:/z' } },
        routes: [{ upstream: 'a' }],
      }),
    ).toEqual([
      'upstreams.c: give url or targets_from, not both',
      'upstreams.d.targets_from: must be a non-empty string',
      'upstreams.a.targets_from: unknown agent "nobody"',
      'upstreams.b.targets_from: agent "zen" is not a prox plugin: only a prox plugin ("endpoint: prox" with command, or prox+exec:) pushes targets',
    ]);
  });
});

describe('examples/supervised.yaml', () => {
  it('is valid and is the example the README shows', () => {
    const file = join(APP_DIR, 'examples', 'supervised.yaml');
    const c = loadConfigFile(file);
    expect(c.agents.get('denylist')?.process?.cwd).toBe(join(APP_DIR, 'examples'));
    expect(c.agents.get('auth')?.prox).toEqual({ targetsOnly: false });
    expect(c.agents.get('discovery')?.process?.command).toEqual(['./plugins/discovery']);
    expect(c.upstreams.get('api')?.targetsFrom).toBe('discovery');
    const readme = readFileSync(join(APP_DIR, 'README.md'), 'utf8');
    expect(readme).toContain(readFileSync(file, 'utf8').trim());
  });
});
