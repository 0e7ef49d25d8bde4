/**
 * A v1 agent that acknowledges request-complete with `{"success": true}` (as the
 * Zentinel Python / Go SDK agents do) behind the gateway: counted as allow, never
 * as fail_closed, and the connection stays up.
 */
import { rmSync } from 'node:fs';
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

describe('an SDK v1 agent acknowledging request-complete', () => {
  it('counts as allow for request_complete, no fail_closed', async () => {
    const sock = join(dir, 'sdk.sock');
    const agent = spawnTs('test/fixtures/ack-v1-agent.ts', [sock]);
    await agent.waitFor(/agent ready/);
    const gw = await startGateway([
      '--quiet',
      '--config',
      writeYaml(dir, {
        listen: '127.0.0.1:0',
        admin: { listen: '127.0.0.1:0' },
        upstreams: { echo: upstream.url },
        agents: {
          sdk: {
            endpoint: `v1+unix:${sock}`,
            events: ['request_headers', 'request_complete'],
            failure_mode: 'closed',
          },
        },
        routes: [{ name: 'all', path_prefix: '/', upstream: 'echo', agents: ['sdk'] }],
      }),
    ]);
    const admin = (await gw.waitFor(/picket gateway admin on (http:\/\/[\d.:]+)/))[1] as string;
    for (let i = 0; i < 3; i++) {
      const res = await request(`${gw.base}/r/${i}`);
      await res.body.text();
      expect(res.statusCode).toBe(200);
    }
    await agent.waitFor(/acks 3/);
    let metrics = '';
    await until(async () => {
      metrics = await (await request(`${admin}/metrics`)).body.text();
      return /picket_gateway_agent_decisions_total\{[^}]*event="request_complete"[^}]*decision="allow"[^}]*\} 3/.test(
        metrics,
      );
    });
    expect(metrics).not.toMatch(/decision="fail_closed"/);
  });
});
