/**
 * End to end against a real HAProxy 2.6 (Debian's package), started here:
 * allow, block with status and body, redirect, header set / add / remove reaching
 * a real upstream, response headers, a handler exception (block 500, never
 * allow), a body check, pipelining, and the agent going down (`option spop-check`
 * marks it DOWN, `set-on-error` turns requests into 503).
 */
import type * as http from 'node:http';
import {
  type AgentHandler,
  type AgentResponse,
  addHeader,
  allow,
  block,
  type RequestBodyChunkEvent,
  type RequestHeadersEvent,
  redirect,
  removeHeader,
  setHeader,
  silentLogger,
} from '@picket/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SpoeAgentServer } from '../src/index.js';
import {
  findHaproxy,
  type Haproxy,
  request,
  serverStat,
  startHaproxy,
  startUpstream,
  waitFor,
} from './haproxy-helpers.js';

const found = findHaproxy();
const haproxy = 'bin' in found ? found : undefined;
if (haproxy === undefined) {
  // visible in the test output: these tests did not run
  console.warn(`[@picket/spoe] ${(found as { missing: string }).missing}`);
} else {
  console.info(`[@picket/spoe] end-to-end tests against ${haproxy.version}`);
}

const seen: RequestHeadersEvent[] = [];

const handler: AgentHandler = {
  capabilities: () => ({
    agent_id: 'spoe-test',
    name: 'spoe-test',
    version: '1',
    supported_events: [1, 2],
    features: {
      streaming_body: false,
      websocket: false,
      guardrails: false,
      config_push: false,
      metrics_export: false,
      concurrent_requests: 100,
      cancellation: false,
      flow_control: false,
      health_reporting: false,
    },
    limits: { max_body_size: 1 << 20, max_concurrency: 100, preferred_chunk_size: 65536 },
  }),
  async onRequestHeaders(e): Promise<AgentResponse> {
    seen.push(e);
    const url = new URL(e.uri, 'http://x');
    if (url.pathname === '/block') {
      return block(403, { body: 'blocked by picket', reasonCodes: ['TEST_BLOCK'] });
    }
    if (url.pathname === '/limited') return block(429);
    if (url.pathname === '/redirect') return redirect('https://login.example.test/?from=spoe', 302);
    if (url.pathname === '/throw') throw new Error('handler exploded');
    if (url.pathname === '/headers') {
      return allow({
        requestHeaders: [
          setHeader('X-User', 'alice'),
          addHeader('X-Tag', 'one'),
          addHeader('X-Tag', 'two'),
          removeHeader('X-Internal'),
        ],
        responseHeaders: [setHeader('X-Frame-Options', 'DENY')],
      });
    }
    if (url.pathname === '/slow') {
      // later requests answer first: ACKs leave out of order
      const n = Number(url.searchParams.get('n'));
      await new Promise((r) => setTimeout(r, 50 + (20 - n) * 15));
      return allow({ requestHeaders: [setHeader('X-User', `user-${n}`)] });
    }
    return allow();
  },
  onRequestBodyChunk(e: RequestBodyChunkEvent): AgentResponse {
    const text = Buffer.from(e.data).toString('utf8');
    return text.includes('forbidden') ? block(403, { body: 'body refused' }) : allow();
  },
};

interface Upstreamed {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

describe.skipIf(haproxy === undefined)('SpoeAgentServer behind a real HAProxy', () => {
  let agent: SpoeAgentServer;
  let proxy: Haproxy;
  let upstream: { port: number; server: http.Server };

  beforeAll(async () => {
    upstream = await startUpstream();
    agent = new SpoeAgentServer(handler, { port: 0, logger: silentLogger });
    const [endpoint] = await agent.listen();
    const agentPort = Number(new URL(endpoint as string).port);
    proxy = await startHaproxy((haproxy as { bin: string }).bin, upstream.port, agentPort);
    // `option spop-check` must see the agent answer its health-check HELLO
    await waitFor(async () => {
      const s = await serverStat(proxy.dir, 'picket-agents', 'agent1');
      return s.status === 'UP' && s.check_status === 'L7OK';
    }, 'HAProxy to mark the agent UP');
  });

  afterAll(async () => {
    await proxy?.stop();
    await agent?.close();
    await new Promise((r) => upstream?.server.close(r));
  });

  it('answers the spop-check health check (HELLO then close)', async () => {
    expect(agent.stats.healthchecks).toBeGreaterThan(0);
    const s = await serverStat(proxy.dir, 'picket-agents', 'agent1');
    expect(s.check_status).toBe('L7OK');
  });

  it('allow: the request reaches the upstream, and the agent saw method, uri, headers, client', async () => {
    const r = await request(proxy.frontPort, '/hello/world?q=1&x=%20y', {
      headers: { 'x-custom': 'abc' },
    });
    expect(r.status).toBe(200);
    const up = JSON.parse(r.body) as Upstreamed;
    expect(up.url).toBe('/hello/world?q=1&x=%20y');
    const e = seen.find((s) => s.uri === '/hello/world?q=1&x=%20y');
    expect(e).toBeDefined();
    expect(e?.method).toBe('GET');
    expect(e?.headers['x-custom']).toEqual(['abc']);
    expect(e?.headers.host?.[0]).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(e?.metadata.client_ip).toBe('127.0.0.1');
    expect(e?.metadata.client_port).toBeGreaterThan(0);
  });

  it('block: the configured status and the block body, never the upstream', async () => {
    const r = await request(proxy.frontPort, '/block');
    expect(r.status).toBe(403);
    expect(r.body).toBe('blocked by picket');
    expect(r.headers['x-picket-reason']).toBe('TEST_BLOCK');
    const limited = await request(proxy.frontPort, '/limited');
    expect(limited.status).toBe(429);
  });

  it('redirect: the location and status from the answer', async () => {
    const r = await request(proxy.frontPort, '/redirect');
    expect(r.status).toBe(302);
    expect(r.headers.location).toBe('https://login.example.test/?from=spoe');
  });

  it('header ops: set, add (twice) and remove reach the real upstream; a response header is set', async () => {
    const r = await request(proxy.frontPort, '/headers', {
      headers: { 'x-internal': 'secret', 'x-user': 'mallory' },
    });
    expect(r.status).toBe(200);
    const up = JSON.parse(r.body) as Upstreamed;
    expect(up.headers['x-user']).toBe('alice');
    expect(up.headers['x-tag']).toBe('one, two');
    expect(up.headers['x-internal']).toBeUndefined();
    expect(r.headers['x-frame-options']).toBe('DENY');
  });

  it('a handler exception blocks with 500 (AGENT_HANDLER_ERROR), never allow', async () => {
    const r = await request(proxy.frontPort, '/throw');
    expect(r.status).toBe(500);
    expect(r.body).toBe('Agent handler error');
    expect(r.headers['x-picket-reason']).toBe('AGENT_HANDLER_ERROR');
  });

  it('the body (option http-buffer-request, req.body) goes to onRequestBodyChunk', async () => {
    const ok = await request(proxy.frontPort, '/upload', { method: 'POST', body: 'harmless' });
    expect(ok.status).toBe(200);
    expect((JSON.parse(ok.body) as Upstreamed).body).toBe('harmless');
    const refused = await request(proxy.frontPort, '/upload', {
      method: 'POST',
      body: 'this is forbidden text',
    });
    expect(refused.status).toBe(403);
    expect(refused.body).toBe('body refused');
  });

  it('pipelining: concurrent requests answered out of order each get their own answer', async () => {
    const n = 20;
    const replies = await Promise.all(
      Array.from({ length: n }, (_, i) => request(proxy.frontPort, `/slow?n=${i}`)),
    );
    replies.forEach((r, i) => {
      expect(r.status).toBe(200);
      expect((JSON.parse(r.body) as Upstreamed).headers['x-user']).toBe(`user-${i}`);
    });
    // HAProxy announced pipelining and sent several NOTIFYs on one connection
    expect(agent.stats.peakInFlight).toBeGreaterThan(1);
  });

  it('agent down: spop-check marks it DOWN and set-on-error fails closed with 503', async () => {
    await agent.close();
    await waitFor(async () => {
      const s = await serverStat(proxy.dir, 'picket-agents', 'agent1');
      return s.status === 'DOWN';
    }, 'HAProxy to mark the agent DOWN');
    const before = seen.length;
    const r = await request(proxy.frontPort, '/block-me-not');
    expect(r.status).toBe(503);
    expect(r.headers['x-picket-error']).toBeDefined(); // set-on-error, not only "no decision"
    expect(r.body).not.toContain('"url"'); // not the upstream's answer
    expect(seen.length).toBe(before);
  });
});
