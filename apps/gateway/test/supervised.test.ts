/**
 * End to end, supervised agents (real gateway process, real agent processes, real sockets):
 * a Zentinel agent (`picket serve denylist --listen unix:…`) and a prox plugin
 * (`picket serve denylist --prox`) started by the gateway, SIGKILLed, failing closed while
 * down, restarted (visible in /metrics) and stopped with the gateway; an upstream whose
 * servers come from a prox plugin's `set_targets` pushes.
 */
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'undici';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type EchoUpstream, startEchoUpstream } from '../src/echo-upstream.js';
import {
  APP_DIR,
  type GatewayProcess,
  killAll,
  PICKET_BIN,
  spawnTs,
  startGateway,
  tempDir,
  until,
  writeYaml,
} from './helpers.js';

let dir: string;
const upstreams: EchoUpstream[] = [];

beforeEach(async () => {
  dir = tempDir();
  upstreams.push(await startEchoUpstream('echo'));
});

afterEach(async () => {
  await killAll();
  for (const u of upstreams.splice(0)) await u.close();
  rmSync(dir, { recursive: true, force: true });
});

async function get(base: string, path: string) {
  const res = await request(base + path);
  return { status: res.statusCode, headers: res.headers, text: await res.body.text() };
}

/** Whether a process (or, with a negative id, a process group) exists. */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

interface ProcessInfo {
  kind: string;
  state: string;
  pid: number | null;
  restarts: number;
}

async function processOf(admin: string, agent: string): Promise<ProcessInfo> {
  const r = await get(admin, '/healthz');
  return JSON.parse(r.text).agents[agent].process as ProcessInfo;
}

async function startWithAdmin(config: unknown): Promise<{ gw: GatewayProcess; admin: string }> {
  const gw = await startGateway(['--quiet', '--config', writeYaml(dir, config)]);
  const admin = (await gw.waitFor(/picket gateway admin on (http:\/\/[\d.:]+)/))[1] as string;
  return { gw, admin };
}

/**
 * Kills the agent process with SIGKILL under load (4 clients requesting `/x` and `/admin` in a
 * loop) and waits until `/x` passes again. Every answer meanwhile must be the fail-closed 503 or
 * the agent's own (`/admin`: 403): never an allow without the agent.
 */
async function killAndWatch(
  gw: GatewayProcess,
  admin: string,
  agent: string,
): Promise<{ before: ProcessInfo; after: ProcessInfo; seen: Map<string, Set<number>> }> {
  const before = await processOf(admin, agent);
  expect(before.state).toBe('ready');
  const pid = before.pid as number;
  const seen = new Map<string, Set<number>>([
    ['/x', new Set()],
    ['/admin', new Set()],
  ]);
  let killed = false;
  let recovered = false;
  const client = async () => {
    while (!recovered) {
      for (const path of ['/x', '/admin']) {
        const afterKill = killed; // an answer to a request sent before the kill proves nothing
        const r = await get(gw.base, path);
        if (afterKill || path === '/admin') seen.get(path)?.add(r.status);
        if (afterKill && path === '/x' && r.status === 200) recovered = true;
      }
    }
  };
  const clients = [client(), client(), client(), client()];
  await new Promise((r) => setTimeout(r, 200)); // calls in flight when it dies
  process.kill(pid, 'SIGKILL');
  await until(() => !alive(pid));
  killed = true; // from here on `/x` is recorded: while it is down, and back
  await Promise.race([
    Promise.all(clients),
    until(() => recovered, 30_000).then(() => Promise.all(clients)),
  ]);
  const after = await until(async () => {
    const p = await processOf(admin, agent);
    return p.state === 'ready' && p;
  });
  // and it decides again
  expect((await get(gw.base, '/admin')).status).toBe(403);
  return { before, after, seen };
}

/** SIGTERM to the gateway: it exits 0 and no agent process (nor its group) is left. */
async function stopAndCheck(gw: GatewayProcess, pids: number[], boundMs: number): Promise<void> {
  const t0 = Date.now();
  gw.proc.kill('SIGTERM');
  expect(await gw.exited).toBe(0);
  expect(Date.now() - t0).toBeLessThan(boundMs);
  for (const pid of pids) {
    expect(alive(pid)).toBe(false);
    // nothing left in its process group either (helpers such as tsx's esbuild got SIGKILL
    // when the leader exited; give the kernel a moment to finish them)
    await until(() => !alive(-pid), 2_000);
  }
  expect(gw.stdout()).toContain('picket gateway stopped');
}

describe('supervised agents', () => {
  it('a Zentinel agent started by the gateway: killed, fails closed, restarted, stopped', async () => {
    const sock = join(dir, 'deny.sock');
    const { gw, admin } = await startWithAdmin({
      listen: '127.0.0.1:0',
      admin: { listen: '127.0.0.1:0' },
      upstreams: { echo: upstreams[0]?.url },
      agents: {
        deny: {
          command: [
            process.execPath,
            PICKET_BIN,
            'serve',
            'denylist',
            '--listen',
            `unix:${sock}`,
            '--block-path',
            '/admin',
          ],
          endpoint: `unix:${sock}`,
          failure_mode: 'closed',
          stop_grace_ms: 500,
        },
      },
      routes: [{ name: 'all', path_prefix: '/', upstream: 'echo', agents: ['deny'] }],
    });
    // ready before serving: the very first requests are answered by the agent
    expect((await get(gw.base, '/x')).status).toBe(200);
    expect((await get(gw.base, '/admin')).status).toBe(403);
    // its stdout and stderr reach the gateway's log, tagged with its name
    await until(() => /\[deny\] .*listening on unix:/.test(gw.stderr()));

    const { before, after, seen } = await killAndWatch(gw, admin, 'deny');
    expect(seen.get('/x')).toContain(503); // it was down, and that was not an allow
    expect([...(seen.get('/x') ?? [])].every((s) => s === 503 || s === 200)).toBe(true);
    expect([...(seen.get('/admin') ?? [])].every((s) => s === 503 || s === 403)).toBe(true);
    expect(after.pid).not.toBe(before.pid);
    expect(after.restarts).toBe(1);
    expect(after.kind).toBe('agent');

    const m = (await get(admin, '/metrics')).text;
    expect(m).toContain('picket_gateway_agent_process_restarts_total{agent="deny"} 1');
    expect(m).toContain('picket_gateway_agent_process_up{agent="deny"} 1');
    expect(m).toContain('picket_gateway_agent_process_state{agent="deny",state="ready"} 1');
    expect(m).toContain('picket_gateway_agent_process_state{agent="deny",state="backoff"} 0');

    // stop: stdin closed, 500 ms, SIGTERM (picket serve drains and exits)
    await stopAndCheck(gw, [before.pid as number, after.pid as number], 2 * 500 + 1_000 + 6_000);
  }, 90_000);

  it('a prox plugin (picket serve denylist --prox) started by the gateway: killed, fails closed, restarted', async () => {
    const { gw, admin } = await startWithAdmin({
      listen: '127.0.0.1:0',
      admin: { listen: '127.0.0.1:0' },
      upstreams: { echo: upstreams[0]?.url },
      agents: {
        deny: {
          endpoint: 'prox',
          command: [
            process.execPath,
            PICKET_BIN,
            'serve',
            'denylist',
            '--prox',
            '--block-path',
            '/admin',
          ],
          failure_mode: 'closed',
          stop_grace_ms: 500,
        },
      },
      routes: [{ name: 'all', path_prefix: '/', upstream: 'echo', agents: ['deny'] }],
    });
    expect((await get(gw.base, '/x')).status).toBe(200);
    expect((await get(gw.base, '/admin')).status).toBe(403);
    const h = JSON.parse((await get(admin, '/healthz')).text);
    expect(h.agents.deny).toMatchObject({ healthy: true, transport: 'prox' });

    const { before, after, seen } = await killAndWatch(gw, admin, 'deny');
    expect(seen.get('/x')).toContain(503);
    expect([...(seen.get('/x') ?? [])].every((s) => s === 503 || s === 200)).toBe(true);
    expect([...(seen.get('/admin') ?? [])].every((s) => s === 503 || s === 403)).toBe(true);
    expect(after.pid).not.toBe(before.pid);
    expect(after).toMatchObject({ kind: 'prox', restarts: 1 });
    const m = (await get(admin, '/metrics')).text;
    expect(m).toContain('picket_gateway_agent_process_restarts_total{agent="deny"} 1');
    expect(m).toContain('picket_gateway_agent_process_up{agent="deny"} 1');

    // a prox plugin exits on stdin EOF: the stop is quick
    await stopAndCheck(gw, [after.pid as number], 2 * 500 + 1_000 + 6_000);
  }, 90_000);
});

describe('upstreams.<name>.targets_from', () => {
  it('balances over the targets a prox plugin pushes; a new push replaces them', async () => {
    upstreams.push(await startEchoUpstream('a'), await startEchoUpstream('b'));
    const [, a, b] = upstreams as [EchoUpstream, EchoUpstream, EchoUpstream];
    const hostPort = (u: EchoUpstream) => new URL(u.url).host;
    const file = join(dir, 'targets.json');
    const plugin = join(APP_DIR, 'test/fixtures/targets-plugin.ts');
    const { gw, admin } = await startWithAdmin({
      listen: '127.0.0.1:0',
      admin: { listen: '127.0.0.1:0' },
      upstreams: { dyn: { targets_from: 'disco' }, fixed: upstreams[0]?.url },
      agents: {
        // the prox+exec: form of a supervised prox plugin; cwd: where `--import tsx` resolves
        disco: {
          endpoint: `prox+exec:${process.execPath} --import tsx ${plugin} ${file}`,
          cwd: APP_DIR,
          // not a test of timeouts: a plugin starved of CPU on a loaded machine still answers
          timeout_ms: 20_000,
        },
      },
      routes: [
        { name: 'dyn', path_prefix: '/dyn', upstream: 'dyn', agents: ['disco'] },
        { name: 'other', path_prefix: '/', upstream: 'fixed' },
      ],
    });

    // no push yet: 503 naming what is missing
    const early = await get(gw.base, '/dyn/x');
    expect(early.status).toBe(503);
    expect(early.text).toContain(
      'upstream "dyn" has no targets yet: waiting for agent "disco" to push set_targets',
    );

    // a push for the route using the upstream: both servers, in turn
    writeFileSync(file, JSON.stringify({ to: 'dyn', targets: [hostPort(a), hostPort(b)] }));
    await until(async () => (await get(gw.base, '/dyn/x')).status === 200, 20_000);
    const served: string[] = [];
    for (let i = 0; i < 6; i++) {
      const r = await get(gw.base, '/dyn/x');
      expect(r.status).toBe(200);
      expect(JSON.parse(r.text).headers['x-targets-plugin']).toBe('seen');
      served.push(JSON.parse(r.text).upstream);
    }
    expect(served.filter((s) => s === 'a')).toHaveLength(3);
    expect(served.filter((s) => s === 'b')).toHaveLength(3);
    expect(served.every((s, i) => i === 0 || s !== served[i - 1])).toBe(true); // round robin

    // a push naming the upstream as prox's action replaces them wholesale
    writeFileSync(
      file,
      JSON.stringify({ to: { action: 'dyn' }, targets: [`http://${hostPort(b)}`] }),
    );
    await until(async () => {
      const all = await Promise.all([1, 2, 3, 4].map(() => get(gw.base, '/dyn/x')));
      return all.every((r) => JSON.parse(r.text).upstream === 'b');
    }, 20_000);
    let m = (await get(admin, '/metrics')).text;
    expect(m).toContain('picket_gateway_upstream_targets{upstream="dyn"} 1');

    // a push for a route that does not use the upstream changes nothing
    writeFileSync(file, JSON.stringify({ to: 'other', targets: [hostPort(a)] }));
    await until(() =>
      /set_targets from agent "disco" for route_id "other" ignored: no upstream takes it/.test(
        gw.stderr(),
      ),
    );
    for (let i = 0; i < 3; i++)
      expect(JSON.parse((await get(gw.base, '/dyn/x')).text).upstream).toBe('b');

    // a bad target refuses the whole push: the servers stay
    writeFileSync(file, JSON.stringify({ to: '*', targets: [hostPort(a), 'a.example/path'] }));
    await until(() => /refused, the servers stay as they were/.test(gw.stderr()));
    expect(JSON.parse((await get(gw.base, '/dyn/x')).text).upstream).toBe('b');

    // an empty push: no servers, 503
    writeFileSync(file, JSON.stringify({ to: '*', targets: [] }));
    // (a 503 for another reason, e.g. the plugin slow under load, does not count)
    await until(
      async () => /pushed an empty list/.test((await get(gw.base, '/dyn/x')).text),
      20_000,
    );
    m = (await get(admin, '/metrics')).text;
    expect(m).toContain('picket_gateway_upstream_targets{upstream="dyn"} 0');
    expect(m).toMatch(
      /picket_gateway_requests_total\{route="dyn",status="503",decision="no_upstream_target"\} [1-9]/,
    );

    const pid = (await processOf(admin, 'disco')).pid as number;
    await stopAndCheck(gw, [pid], 2 * 2_000 + 1_000 + 6_000);
  }, 90_000);

  it('a targets-only plugin (no hooks, no ready) feeds an upstream too', async () => {
    upstreams.push(await startEchoUpstream('a'));
    const a = upstreams[1] as EchoUpstream;
    const file = join(dir, 'targets.json');
    writeFileSync(file, JSON.stringify({ to: '*', targets: [new URL(a.url).host] }));
    const { gw, admin } = await startWithAdmin({
      listen: '127.0.0.1:0',
      admin: { listen: '127.0.0.1:0' },
      upstreams: { dyn: { targets_from: 'disco' } },
      agents: {
        disco: {
          endpoint: 'prox',
          command: [process.execPath, '--import', 'tsx', 'test/fixtures/targets-plugin.ts', file],
          cwd: APP_DIR,
          env: { TARGETS_ONLY: '1' },
          targets_only: true,
        },
      },
      routes: [{ name: 'dyn', path_prefix: '/', upstream: 'dyn' }],
    });
    await until(async () => (await get(gw.base, '/x')).status === 200, 30_000);
    expect(JSON.parse((await get(gw.base, '/x')).text).upstream).toBe('a');
    const p = await processOf(admin, 'disco');
    expect(p).toMatchObject({ kind: 'prox', state: 'ready', restarts: 0 });
    await stopAndCheck(gw, [p.pid as number], 2 * 2_000 + 1_000 + 6_000);
  }, 60_000);
});

describe('a prox plugin that does not answer for a while', () => {
  it('is used again once it answers: unanswered calls do not shut it out for good', async () => {
    const { gw } = await startWithAdmin({
      listen: '127.0.0.1:0',
      admin: { listen: '127.0.0.1:0' },
      upstreams: { echo: upstreams[0]?.url },
      agents: {
        slow: {
          endpoint: 'prox',
          command: [process.execPath, '--import', 'tsx', 'test/fixtures/hang-plugin.ts'],
          cwd: APP_DIR,
          timeout_ms: 300,
          failure_mode: 'closed',
        },
      },
      routes: [{ path_prefix: '/', upstream: 'echo', agents: ['slow'] }],
    });
    // answered (a first call over 300 ms on a loaded machine is a 503, not a failure of this test)
    await until(async () => (await get(gw.base, '/x')).status === 200, 30_000);
    // more unanswered calls in a row than the pool's error threshold (3)
    for (let i = 0; i < 4; i++) expect((await get(gw.base, `/hang/${i}`)).status).toBe(503);
    // the plugin answers again: so does the gateway (after the circuit breaker's pause)
    // (the pool's next health probe, at most 5 s away, lets the plugin's connection back in)
    await until(async () => (await get(gw.base, '/x')).status === 200, 30_000);
  }, 60_000);
});

describe('an agent process that never becomes ready', () => {
  it('the gateway does not start: exit 1 naming the agent and what was wrong, no process left', async () => {
    const pidFile = join(dir, 'pid');
    const never = [
      process.execPath,
      '-e',
      `require('fs').writeFileSync(${JSON.stringify(pidFile)}, String(process.pid)); setInterval(() => {}, 1000)`,
    ];
    const zentinel = startGateway([
      '--config',
      writeYaml(dir, {
        listen: '127.0.0.1:0',
        upstreams: { echo: upstreams[0]?.url },
        agents: {
          mute: {
            command: never,
            endpoint: `unix:${join(dir, 'never.sock')}`,
            ready_timeout_ms: 1_500,
            stop_grace_ms: 300,
          },
        },
        routes: [{ upstream: 'echo', agents: ['mute'] }],
      }),
    ]);
    await expect(zentinel).rejects.toThrow(
      /process exited \(1\)[\s\S]*cannot start: agents\.mute\.command: agent process ".*" was not accepting connections on unix:.*never\.sock within 1500 ms/,
    );
    const pid = Number(readFileSync(pidFile, 'utf8'));
    expect(alive(pid)).toBe(false);

    const prox = startGateway([
      '--config',
      writeYaml(dir, {
        listen: '127.0.0.1:0',
        upstreams: { echo: upstreams[0]?.url },
        agents: {
          mute: { endpoint: 'prox', command: never, ready_timeout_ms: 1_500, stop_grace_ms: 300 },
        },
        routes: [{ upstream: 'echo', agents: ['mute'] }],
      }),
    ]);
    const err = await prox.then(
      () => '',
      (e: Error) => e.message,
    );
    expect(err).toMatch(
      /cannot start: agents\.mute\.command: .*prox plugin "mute" .*did not send ready within 1500 ms/,
    );
    expect(alive(Number(readFileSync(pidFile, 'utf8')))).toBe(false);
  }, 60_000);

  it('SIGTERM while the gateway waits for an agent: it stops it and exits 0 at once', async () => {
    const pidFile = join(dir, 'pid');
    const gw = spawnTs('src/main.ts', [
      '--config',
      writeYaml(dir, {
        listen: '127.0.0.1:0',
        upstreams: { echo: upstreams[0]?.url },
        agents: {
          mute: {
            command: [
              process.execPath,
              '-e',
              `require('fs').writeFileSync(${JSON.stringify(pidFile)}, String(process.pid)); setInterval(() => {}, 1000)`,
            ],
            endpoint: `unix:${join(dir, 'never.sock')}`,
            ready_timeout_ms: 60_000,
            stop_grace_ms: 300,
          },
        },
        routes: [{ upstream: 'echo', agents: ['mute'] }],
      }),
    ]);
    const pid = await until(() => {
      try {
        return Number(readFileSync(pidFile, 'utf8')) || undefined;
      } catch {
        return undefined;
      }
    }, 20_000);
    const t0 = Date.now();
    gw.proc.kill('SIGTERM');
    expect(await gw.exited).toBe(0);
    expect(Date.now() - t0).toBeLessThan(2 * 300 + 1_000 + 6_000); // not the 60 s ready wait
    expect(gw.stdout()).toContain('picket gateway stopped');
    expect(alive(pid)).toBe(false);
  }, 60_000);
});
