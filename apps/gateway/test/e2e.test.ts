/**
 * End to end: the gateway runs as a child process with a YAML config; the
 * upstream and the agents run in this process on loopback and Unix sockets.
 */

import { rmSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { DenylistAgent } from '@picket/agents';
import { UdsAgentServerV2 } from '@picket/uds';
import { request } from 'undici';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type EchoUpstream, startEchoUpstream } from '../src/echo-upstream.js';
import {
  type GatewayProcess,
  killAll,
  startGateway,
  tempDir,
  until,
  writeYaml,
} from './helpers.js';
import { ControlAgent, StampAgent, UpperAgent } from './test-agents.js';

const silent = { debug() {}, info() {}, warn() {}, error() {} };

let dir: string;
let upstream: EchoUpstream;
let upstreamRequests = 0;
let servers: UdsAgentServerV2[];
let stamp: StampAgent;
let control: ControlAgent;
let upper: UpperAgent;

beforeEach(async () => {
  dir = tempDir();
  upstream = await startEchoUpstream('echo');
  upstreamRequests = 0;
  upstream.server.on('request', (req) => req.on('end', () => upstreamRequests++));
  stamp = new StampAgent();
  control = new ControlAgent();
  upper = new UpperAgent();
  servers = [
    new UdsAgentServerV2(
      join(dir, 'denylist.sock'),
      new DenylistAgent({ blockedPaths: ['/admin'], blockedIps: ['203.0.113.0/24'] }),
      { logger: silent },
    ),
    new UdsAgentServerV2(join(dir, 'stamp.sock'), stamp, { logger: silent }),
    new UdsAgentServerV2(join(dir, 'control.sock'), control, { logger: silent }),
    new UdsAgentServerV2(join(dir, 'upper.sock'), upper, { logger: silent }),
  ];
  await Promise.all(servers.map((s) => s.listen()));
});

afterEach(async () => {
  await killAll();
  await Promise.all(servers.map((s) => s.close({ drainTimeoutMs: 0 })));
  await upstream.close();
  rmSync(dir, { recursive: true, force: true });
});

function config(extra: Record<string, unknown> = {}) {
  return {
    listen: '127.0.0.1:0',
    client_ip_header: 'x-forwarded-for',
    upstreams: { echo: upstream.url, stalling: { url: upstream.url, timeout_ms: 300 } },
    agents: {
      denylist: `unix:${join(dir, 'denylist.sock')}`,
      stamp: `unix:${join(dir, 'stamp.sock')}`,
      control: {
        endpoint: `unix:${join(dir, 'control.sock')}`,
        events: ['request_headers', 'request_body', 'response_body', 'request_complete'],
        timeout_ms: 20_000,
      },
      upper: {
        endpoint: `unix:${join(dir, 'upper.sock')}`,
        events: ['request_body', 'response_body'],
        body_mode: 'stream',
      },
    },
    routes: [
      { name: 'stream', path_prefix: '/stream', upstream: 'echo', agents: ['upper'] },
      { name: 'stalling', path_prefix: '/stalling', upstream: 'stalling', agents: ['control'] },
      { name: 'main', upstream: 'echo', agents: ['denylist', 'stamp', 'control'] },
    ],
    ...extra,
  };
}

async function gateway(extra?: Record<string, unknown>): Promise<GatewayProcess> {
  return startGateway(['--config', writeYaml(dir, config(extra)), '--quiet']);
}

async function get(gw: GatewayProcess, path: string, init: Parameters<typeof request>[1] = {}) {
  const res = await request(gw.base + path, init);
  const text = await res.body.text();
  return { status: res.statusCode, headers: res.headers, text };
}

describe('gateway end to end', () => {
  it('proxies with header ops, metadata and traceparent; blocks path and IP with the agent body', async () => {
    const gw = await gateway();
    const traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
    const ok = await get(gw, '/items?page=2', {
      headers: { host: 'gw.test', traceparent, 'x-multi': 'one', 'x-remove-me': 'gone' },
    });
    expect(ok.status).toBe(200);
    const echoed = JSON.parse(ok.text);
    expect(echoed.path).toBe('/items?page=2');
    expect(echoed.headers['x-stamp']).toBe('stamped');
    expect(echoed.headers['x-multi']).toBe('one, two');
    expect(echoed.headers['x-remove-me']).toBeUndefined();
    expect(echoed.headers.traceparent).toBe(traceparent);
    expect(echoed.headers.host).toBe('gw.test');
    expect(ok.headers['x-resp-stamp']).toBe('yes');
    expect(Number(ok.headers['content-length'])).toBe(Buffer.byteLength(ok.text));

    const e = stamp.seen.at(-1);
    expect(e?.method).toBe('GET');
    expect(e?.uri).toBe('/items?page=2');
    expect(e?.metadata).toMatchObject({
      client_ip: '127.0.0.1',
      server_name: 'gw.test',
      protocol: 'HTTP/1.1',
      route_id: 'main',
      upstream_id: 'echo',
      traceparent,
      request_id: echoed.headers['x-request-id'],
    });
    expect(e?.metadata.correlation_id).toMatch(/^[0-9a-f-]{36}$/);
    expect(e?.metadata.correlation_id).not.toBe(e?.metadata.request_id);
    expect(e?.metadata.timestamp).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00$/);
    expect(e?.metadata.client_port).toBeGreaterThan(0);

    // no traceparent ⇒ one is generated, given to the agents and forwarded
    const fresh = JSON.parse((await get(gw, '/x')).text);
    expect(fresh.headers.traceparent).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    expect(stamp.seen.at(-1)?.metadata.traceparent).toBe(fresh.headers.traceparent);

    const path = await get(gw, '/admin/panel');
    expect(path).toMatchObject({ status: 403, text: 'Forbidden path' });
    const ip = await get(gw, '/items', { headers: { 'x-forwarded-for': '203.0.113.7' } });
    expect(ip).toMatchObject({ status: 403, text: 'Forbidden IP' });

    // request-complete reaches the agents configured for it
    const done = await until(() => control.completes.find((c) => c.status === 200));
    expect(done).toMatchObject({ upstream_attempts: 1, request_body_size: 0, error: null });
    expect(done.response_body_size).toBeGreaterThan(0);
    // …blocked ones included: control is after the denylist in the chain but still hears the end
    const blocked = await until(() => {
      const b = control.completes.filter((c) => c.status === 403);
      return b.length === 2 && b;
    });
    expect(blocked.every((c) => c.upstream_attempts === 0)).toBe(true);
  });

  it('applies redirect and challenge decisions', async () => {
    const gw = await gateway();
    const r = await get(gw, '/redirect');
    expect(r.status).toBe(307);
    expect(r.headers.location).toBe('https://login.example/next');
    expect(r.headers['x-resp-stamp']).toBe('yes'); // an earlier agent's response header op still applies
    const c = await get(gw, '/challenge');
    expect(c.status).toBe(401);
    expect(c.headers['www-authenticate']).toBe('Bearer realm="picket"');
    expect(JSON.parse(c.text)).toEqual({ challenge_type: 'bearer', params: { realm: 'picket' } });
  });

  it('rewrites request and response bodies with a correct Content-Length', async () => {
    const gw = await gateway();
    const req = await get(gw, '/submit', { method: 'POST', body: 'please replace-me now' });
    expect(req.status).toBe(200);
    const echoed = JSON.parse(req.text);
    const replaced = 'the agent rewrote this body ✓ — ü';
    expect(echoed.body).toBe(replaced);
    expect(echoed.headers['content-length']).toBe(String(Buffer.byteLength(replaced)));
    expect(echoed.headers['transfer-encoding']).toBeUndefined();
    expect(control.requestChunks.at(-1)).toMatchObject({
      is_last: true,
      chunk_index: 0,
      total_size: 21,
    });

    // the upstream body stalls while the gateway buffers it for an agent: 504, not a cut
    expect((await get(gw, '/stalling/drip?gap=3000')).status).toBe(504);

    const res = await get(gw, '/rewrite-response');
    expect(res.text).toBe('{"rewritten":"ja, straße"}');
    expect(res.headers['content-length']).toBe(String(Buffer.byteLength(res.text)));

    // stream mode: chunk by chunk, chunked transfer towards the upstream and the client
    async function* parts() {
      yield Buffer.from('first part, ');
      await new Promise((r) => setTimeout(r, 20));
      yield Buffer.from('second part');
    }
    const s = await get(gw, '/stream', { method: 'POST', body: Readable.from(parts()) });
    expect(s.status).toBe(200);
    expect(s.headers['content-length']).toBeUndefined();
    expect(s.headers['transfer-encoding']).toBe('chunked');
    const up = JSON.parse(s.text);
    expect(up.BODY).toBe('FIRST PART, SECOND PART');
    expect(up.HEADERS['TRANSFER-ENCODING']).toBe('CHUNKED');
    expect(upper.chunks.filter((c) => c.dir === 'req').at(-1)).toMatchObject({ last: true });
    expect(upper.chunks.some((c) => c.dir === 'resp' && c.last)).toBe(true);

    // a block on a later chunk, after the upstream request started, still answers the client
    async function* evil() {
      yield Buffer.from('harmless start, ');
      await new Promise((r) => setTimeout(r, 20));
      yield Buffer.from('then evil');
    }
    const before = upstreamRequests;
    const b = await get(gw, '/stream', { method: 'POST', body: Readable.from(evil()) });
    expect(b).toMatchObject({ status: 403, text: 'evil chunk' });
    expect(upstreamRequests).toBe(before); // the upstream never got a complete request

    // a response chunk blocked after the headers left: the client connection is cut
    const cutRes = await request(`${gw.base}/stream/drip?evil`);
    expect(cutRes.statusCode).toBe(200);
    await expect(cutRes.body.text()).rejects.toThrow();
    const m = await get(gw, '/_picket/metrics');
    expect(m.text).toContain(
      'picket_gateway_requests_total{route="stream",status="200",decision="block"} 1',
    );
  });

  it('a client disconnect cancels the pending agent call (client_disconnect)', async () => {
    const gw = await gateway();
    const req = httpRequest(`${gw.base}/hang`);
    req.on('error', () => {});
    req.end();
    const cid = await until(() => control.hanging[0]);
    req.destroy();
    const cancel = await until(() => control.cancels.find((c) => c.cid === cid));
    expect(cancel.reason).toBe('client_disconnect');
    await until(() => control.aborted.includes(cid));
    const complete = await until(() => control.completes.find((c) => c.correlation_id === cid));
    expect(complete).toMatchObject({
      status: 499,
      upstream_attempts: 0,
      error: 'client disconnected',
    });
  });

  it('a client disconnect while the upstream is slow tells agents that already answered', async () => {
    const gw = await gateway();
    let upstreamSaw = false;
    upstream.server.once('request', () => {
      upstreamSaw = true;
    });
    const req = httpRequest(`${gw.base}/slow?ms=20000`);
    req.on('error', () => {});
    req.end();
    await until(() => upstreamSaw || undefined);
    req.destroy();
    const complete = await until(() => control.completes.find((c) => c.status === 499));
    const cancel = await until(() =>
      control.cancels.find((c) => c.cid === complete.correlation_id),
    );
    expect(cancel.reason).toBe('client_disconnect');
  });

  it('serves /metrics and /healthz under the admin prefix', async () => {
    const gw = await gateway();
    await get(gw, '/one');
    await get(gw, '/admin');
    const m = await get(gw, '/_picket/metrics');
    expect(m.status).toBe(200);
    expect(m.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(m.text).toContain(
      'picket_gateway_requests_total{route="main",status="200",decision="allow"} 1',
    );
    expect(m.text).toContain(
      'picket_gateway_requests_total{route="main",status="403",decision="block"} 1',
    );
    expect(m.text).toContain(
      'picket_gateway_agent_decisions_total{agent="denylist",event="request_headers",decision="block"} 1',
    );
    expect(m.text).toMatch(/picket_gateway_upstream_duration_seconds_count\{upstream="echo"\} 1/);
    expect(m.text).toContain(
      'picket_pool_requests_total{agent_id="stamp",event="request_headers"} 1',
    );
    const h = await get(gw, '/_picket/healthz');
    expect(h.status).toBe(200);
    const report = JSON.parse(h.text);
    expect(report).toMatchObject({
      status: 'ok',
      listening: true,
      healthy_agents: 4,
      min_healthy_agents: 4,
    });
    expect(report.agents.stamp).toMatchObject({
      healthy: true,
      transport: 'uds',
      circuit_state: 'closed',
    });
    expect((await get(gw, '/nope', { headers: { host: 'x' } })).status).toBe(200); // the catch-all route
  });
});
