/**
 * End to end, failures: an agent process killed under a fail-open and a
 * fail-closed route, an upstream that is down (502) or too slow (504).
 */
import { rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { request } from 'undici';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type EchoUpstream, startEchoUpstream } from '../src/echo-upstream.js';
import { killAll, spawnTs, startGateway, tempDir, until, writeYaml } from './helpers.js';

let dir: string;
let upstream: EchoUpstream;

beforeEach(async () => {
  dir = tempDir();
  upstream = await startEchoUpstream('echo');
});

afterEach(async () => {
  await killAll();
  await upstream.close();
  rmSync(dir, { recursive: true, force: true });
});

/** A loopback port nothing listens on. */
async function deadPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

async function get(base: string, path: string) {
  const res = await request(base + path);
  return { status: res.statusCode, headers: res.headers, text: await res.body.text() };
}

describe('gateway failures', () => {
  it('an agent killed: the fail-open route passes, the fail-closed route gets 503', async () => {
    const sock = join(dir, 'victim.sock');
    const agent = spawnTs('test/fixtures/agent-process.ts', [sock]);
    await agent.waitFor(/agent ready/);
    const gw = await startGateway([
      '--quiet',
      '--config',
      writeYaml(dir, {
        listen: '127.0.0.1:0',
        admin: { listen: '127.0.0.1:0' },
        upstreams: { echo: upstream.url },
        agents: {
          'victim-open': { endpoint: `unix:${sock}`, failure_mode: 'open' },
          'victim-closed': { endpoint: `unix:${sock}`, failure_mode: 'closed' },
        },
        routes: [
          { name: 'open', path_prefix: '/open', upstream: 'echo', agents: ['victim-open'] },
          { name: 'closed', path_prefix: '/closed', upstream: 'echo', agents: ['victim-closed'] },
        ],
      }),
    ]);
    const admin = (await gw.waitFor(/picket gateway admin on (http:\/\/[\d.:]+)/))[1] as string;
    // the admin endpoints live only on the admin address now
    expect((await get(gw.base, '/_picket/healthz')).status).toBe(404); // no route matches it
    expect((await get(admin, '/healthz')).status).toBe(200);

    for (const path of ['/open', '/closed']) {
      const r = await get(gw.base, path);
      expect(r.status).toBe(200);
      expect(JSON.parse(r.text).headers['x-victim']).toBe('alive');
    }

    agent.proc.kill('SIGKILL');
    await agent.exited;

    const open = await get(gw.base, '/open/after');
    expect(open.status).toBe(200);
    expect(JSON.parse(open.text).headers['x-victim']).toBeUndefined();
    const closed = await get(gw.base, '/closed/after');
    expect(closed.status).toBe(503);

    const h = await until(async () => {
      const r = await get(admin, '/healthz');
      return r.status === 503 && r;
    });
    const report = JSON.parse(h.text);
    expect(report).toMatchObject({ status: 'unhealthy', healthy_agents: 0, min_healthy_agents: 2 });
    expect(report.agents['victim-open'].healthy).toBe(false);

    const m = await get(admin, '/metrics');
    expect(m.text).toContain(
      'picket_gateway_requests_total{route="closed",status="503",decision="block"} 1',
    );
    expect(m.text).toMatch(
      /picket_gateway_agent_decisions_total\{agent="victim-open",event="request_headers",decision="fail_open"\} 1/,
    );
    expect(m.text).toMatch(
      /picket_pool_failure_responses_total\{agent_id="victim-closed",mode="closed",reason="AGENT_\w+"\} 1/,
    );
  });

  it('upstream down ⇒ 502, upstream too slow ⇒ 504', async () => {
    const gw = await startGateway([
      '--quiet',
      '--config',
      writeYaml(dir, {
        listen: '127.0.0.1:0',
        upstreams: {
          down: { url: `http://127.0.0.1:${await deadPort()}`, retries: 1 },
          slow: { url: upstream.url, timeout_ms: 200 },
        },
        routes: [
          { path_prefix: '/down', upstream: 'down' },
          { path_prefix: '/slow', upstream: 'slow' },
        ],
      }),
    ]);
    expect((await get(gw.base, '/down')).status).toBe(502);
    expect((await get(gw.base, '/slow?ms=5000')).status).toBe(504);
    const m = await get(gw.base, '/_picket/metrics');
    expect(m.text).toContain(
      'picket_gateway_upstream_errors_total{upstream="down",kind="error"} 2',
    ); // one retry
    expect(m.text).toContain(
      'picket_gateway_upstream_errors_total{upstream="slow",kind="timeout"} 1',
    );
    expect(m.text).toContain(
      'picket_gateway_requests_total{route="route-0",status="502",decision="upstream_error"} 1',
    );
    expect(m.text).toContain(
      'picket_gateway_requests_total{route="route-1",status="504",decision="upstream_timeout"} 1',
    );
    // no agents configured: healthy with zero of zero
    expect((await get(gw.base, '/_picket/healthz')).status).toBe(200);
  });

  it('an invalid config exits 1 naming the field', async () => {
    const p = spawnTs('src/main.ts', [
      '--config',
      writeYaml(dir, { upstreams: { a: 'http://127.0.0.1:1' }, routes: [{ upstream: 'x' }] }),
    ]);
    expect(await p.exited).toBe(1);
    expect(p.stderr()).toContain('routes[0].upstream: unknown upstream "x"');
  });
});
