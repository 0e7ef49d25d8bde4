/**
 * The command line as a user runs it: the embedded default (UDS, gRPC and
 * reverse agents, echo upstream) on port 0, `--demo`, bad arguments.
 */
import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { killAll, spawnTs, startGateway } from './helpers.js';

afterEach(async () => {
  await killAll();
});

async function get(base: string, path: string, headers: Record<string, string> = {}) {
  const res = await request(base + path, { headers });
  return { status: res.statusCode, headers: res.headers, text: await res.body.text() };
}

describe('picket-gateway command line', () => {
  it('--demo runs the scripted requests and exits 0', async () => {
    const p = spawnTs('src/main.ts', ['--demo']);
    expect(await p.exited).toBe(0);
    const out = p.stdout();
    expect(out).toContain('demo: every outcome as expected');
    expect(out).toMatch(/GET \/admin\/secret\s+default\s+req block 403/);
    expect(out).toMatch(/POST \/api\/query\s+api\s+req allow\s+req allow · body block 403/);
    expect(out).not.toContain('WRONG');
  });

  it('the embedded default serves allowed and blocked requests, metrics and health', async () => {
    const gw = await startGateway(['--listen', '127.0.0.1:0']);
    await gw.waitFor(/curl -i http:\/\/127\.0\.0\.1:\d+\/admin\/secret/);
    const ok = await get(gw.base, '/api/items');
    expect(ok.status).toBe(200);
    const seen = JSON.parse(ok.text).headers;
    expect(seen['x-echo-agent']).toBe('echo/1.0'); // gRPC agent
    expect(seen['x-inspected-by']).toBe('inspector'); // reverse-connected agent
    expect((await get(gw.base, '/admin/secret')).text).toBe('Forbidden path');
    expect((await get(gw.base, '/api/items', { 'x-forwarded-for': '203.0.113.7' })).text).toBe(
      'Forbidden IP',
    );

    const health = JSON.parse((await get(gw.base, '/_picket/healthz')).text);
    expect(health).toMatchObject({ status: 'ok', healthy_agents: 3 });
    expect(
      Object.fromEntries(
        Object.entries(health.agents).map(([k, v]) => [k, (v as { transport: string }).transport]),
      ),
    ).toEqual({
      denylist: 'uds',
      inspector: 'reverse',
      echo: 'grpc',
    });
    const metrics = (await get(gw.base, '/_picket/metrics')).text;
    for (const agent of ['denylist', 'inspector', 'echo']) {
      expect(metrics).toContain(
        `picket_pool_requests_total{agent_id="${agent}",event="request_headers"}`,
      );
    }
    await expect.poll(() => gw.stdout()).toMatch(/GET \/api\/items 200 allow route=api/); // access log
  });

  it('rejects unknown options and --demo with --config', async () => {
    const a = spawnTs('src/main.ts', ['--bogus']);
    const b = spawnTs('src/main.ts', ['--demo', '--config', 'x.yaml']);
    expect(await Promise.all([a.exited, b.exited])).toEqual([2, 2]);
    expect(a.stderr()).toContain('usage: picket-gateway');
    expect(b.stderr()).toContain('cannot be combined with --config');
  });
});
