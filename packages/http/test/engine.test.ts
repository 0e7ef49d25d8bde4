/**
 * The engine on its own: a node:http server whose requests go through HttpEngine to a
 * next hop that is a plain function (no upstream, no gateway), with a real agent over a
 * Unix socket. The request hygiene the gateway guarantees holds here too.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { createServer as createTlsServer, request as tlsRequest } from 'node:https';
import { type AddressInfo, connect } from 'node:net';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import {
  type AgentHandler,
  type AgentResponse,
  allow,
  block,
  type CancelReason,
  createCapabilities,
  type RequestBodyChunkEvent,
  type RequestContext,
  type RequestHeadersEvent,
  replaceBody,
  setHeader,
} from '@picket/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  agentSpec,
  type ExchangeSummary,
  HttpEngine,
  type NextHop,
  type NextHopRequest,
  singleRoute,
  UpstreamFailure,
} from '../src/index.js';
import { type AgentFixture, closeServer, listenLocal, servedAgent } from './agent-fixture.js';

const TRACEPARENT = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';

class Agent implements AgentHandler {
  readonly seen: RequestHeadersEvent[] = [];
  readonly cancels: { cid: string; reason: CancelReason }[] = [];
  capabilities = () =>
    createCapabilities({
      agentId: 'engine-test',
      name: 'engine-test',
      version: '1.0.0',
      features: { streaming_body: true, cancellation: true, concurrent_requests: 100 },
    });
  onRequestHeaders(
    e: RequestHeadersEvent,
    ctx: RequestContext,
  ): Promise<AgentResponse> | AgentResponse {
    this.seen.push(e);
    if (e.uri.startsWith('/blocked')) return block(403, { body: 'no entry\n' });
    if (e.uri.startsWith('/hang')) {
      return new Promise((resolve) => {
        ctx.signal.addEventListener('abort', () => resolve(allow()), { once: true });
      });
    }
    return allow({
      // transfer-encoding is connection-level: the engine must not forward it
      requestHeaders: [setHeader('x-agent', 'yes'), setHeader('transfer-encoding', 'chunked')],
      responseHeaders: [setHeader('x-agent-resp', 'yes')],
    });
  }
  onRequestBodyChunk(_e: RequestBodyChunkEvent): AgentResponse {
    return allow({ requestBodyMutation: replaceBody('rewritten ✓', 0) });
  }
  onResponseBodyChunk(): AgentResponse {
    return allow({ responseBodyMutation: replaceBody('answer ✓✓', 0) });
  }
  onCancel(cid: string, reason: CancelReason): void {
    this.cancels.push({ cid, reason });
  }
}

interface RawResponse {
  status: number;
  headers: Map<string, string>;
  body: string;
}

/** Sends raw request bytes (so duplicate Host lines and hop-by-hop headers go as written). */
function raw(port: number, request: string): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    s.on('data', (c) => chunks.push(c));
    s.on('error', reject);
    s.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      const [head = '', ...rest] = text.split('\r\n\r\n');
      const [statusLine = '', ...lines] = head.split('\r\n');
      const headers = new Map<string, string>();
      for (const l of lines) {
        const i = l.indexOf(':');
        headers.set(l.slice(0, i).toLowerCase(), l.slice(i + 1).trim());
      }
      resolve({ status: Number(statusLine.split(' ')[1]), headers, body: rest.join('\r\n\r\n') });
    });
    // no half-close: Node would take the FIN for a client that left
    s.write(request);
  });
}

const req = (lines: string[], body = ''): string =>
  `${[...lines, 'Connection: close'].join('\r\n')}\r\n\r\n${body}`;

describe('HttpEngine with a function as the next hop', () => {
  let fixture: AgentFixture;
  let pool: AgentFixture['pool'];
  const agent = new Agent();
  let server: Server;
  let port: number;
  const summaries: ExchangeSummary[] = [];
  const decisions: string[] = [];
  const hopRequests: { request: NextHopRequest; body: string }[] = [];

  /** Echoes what it got, after failing on request for `/fail-*` paths. */
  const hop: NextHop = async (request, exchange) => {
    exchange.countAttempt();
    const chunks: Buffer[] = [];
    if (Buffer.isBuffer(request.body)) chunks.push(request.body);
    else if (request.body) for await (const c of request.body) chunks.push(c as Buffer);
    hopRequests.push({ request, body: Buffer.concat(chunks).toString('utf8') });
    const path = request.uri.split('?')[0];
    if (path === '/fail-timeout') throw new UpstreamFailure('timeout', 'took too long');
    if (path === '/fail-unavailable') throw new UpstreamFailure('unavailable', 'no servers');
    if (path === '/fail-error') throw new UpstreamFailure('error', 'refused');
    if (path === '/fail-bug') throw new TypeError('a bug in the next hop');
    const text = 'from the next hop';
    return {
      statusCode: 200,
      headers: {
        'content-type': 'text/plain',
        'content-length': String(text.length),
        connection: 'x-internal',
        'x-internal': '1',
      },
      body: Readable.from([Buffer.from(text)]),
    };
  };

  beforeAll(async () => {
    fixture = await servedAgent('picket-engine-', agent, 'a', 'closed');
    pool = fixture.pool;
    const nobody = join(fixture.dir, 'nobody.sock');
    await pool.addAgent('down-open', nobody, { failureMode: 'open' });
    await pool.addAgent('down-closed', nobody, { failureMode: 'closed' });
    const chain = [
      agentSpec('a', {
        events: ['request_headers', 'request_body', 'response_body', 'request_complete'],
      }),
    ];
    const engine = new HttpEngine({
      pool,
      router: singleRoute({ chain, name: 'r', upstreamId: 'fn', nextHop: hop }),
      hooks: {
        agentDecision: (a, e, d) => decisions.push(`${a} ${e} ${d}`),
        exchangeFinished: (s) => summaries.push(s),
      },
    });
    // no hooks, no log, no route next hop: each request brings its own
    const bare = new HttpEngine({
      pool,
      router: singleRoute({ chain: [agentSpec('down-open', { failureMode: 'open' })] }),
    });
    const closed = new HttpEngine({
      pool,
      router: singleRoute({ chain: [agentSpec('down-closed')], nextHop: hop }),
    });
    const streaming = new HttpEngine({
      pool,
      router: singleRoute({
        chain: [
          agentSpec('a', { events: ['request_headers', 'request_body'], bodyMode: 'stream' }),
        ],
        nextHop: hop,
      }),
    });
    server = createServer((rq, rs) => {
      if (rq.url?.startsWith('/stream')) return void streaming.handle(rq, rs);
      if (rq.url?.startsWith('/bare/')) void bare.handle(rq, rs, hop);
      else if (rq.url === '/bare-without-hop') void bare.handle(rq, rs);
      else if (rq.url === '/closed') void closed.handle(rq, rs);
      else void engine.handle(rq, rs);
    });
    port = await listenLocal(server);
  });

  afterAll(async () => {
    await closeServer(server);
    await fixture.close();
  });

  it('runs the chain, rewrites both bodies with a correct Content-Length, keeps header hygiene', async () => {
    const r = await raw(
      port,
      req(
        [
          'POST /x/../api//items?q=1 HTTP/1.1',
          'Host: shop.example',
          'Connection: x-secret',
          'X-Secret: from the client',
          'TE: trailers',
          `traceparent: ${TRACEPARENT}`,
          'Content-Length: 5',
        ],
        'hello',
      ),
    );
    expect(r.status).toBe(200);
    expect(r.body).toBe('answer ✓✓');
    expect(r.headers.get('content-length')).toBe(String(Buffer.byteLength('answer ✓✓')));
    expect(r.headers.get('x-agent-resp')).toBe('yes');
    // the next hop's Connection header named its own x-internal: not for the client
    expect(r.headers.has('x-internal')).toBe(false);
    expect(r.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);

    const seen = agent.seen.at(-1) as RequestHeadersEvent;
    expect(seen.uri).toBe('/api/items?q=1');
    expect(seen.method).toBe('POST');
    expect(seen.headers['x-secret']).toBeUndefined();
    expect(seen.headers.te).toBeUndefined();
    expect(seen.metadata.traceparent).toBe(TRACEPARENT);
    expect(seen.metadata.route_id).toBe('r');
    expect(seen.metadata.upstream_id).toBe('fn');
    expect(seen.metadata.tls_version).toBeNull();

    const { request, body } = hopRequests.at(-1) as { request: NextHopRequest; body: string };
    expect(request.uri).toBe('/api/items?q=1');
    expect(body).toBe('rewritten ✓');
    expect(request.replayable).toBe(true);
    expect(request.headers['content-length']).toEqual([String(Buffer.byteLength('rewritten ✓'))]);
    expect(request.headers['x-agent']).toEqual(['yes']);
    expect(request.headers['transfer-encoding']).toBeUndefined();
    expect(request.headers.connection).toBeUndefined();
    expect(request.headers['x-secret']).toBeUndefined();
    expect(request.headers.traceparent).toEqual([TRACEPARENT]);
    expect(request.headers['x-forwarded-for']).toEqual(['127.0.0.1']);
    expect(request.headers['x-forwarded-proto']).toEqual(['http']);

    const s = summaries.at(-1) as ExchangeSummary;
    expect(s).toMatchObject({ outcome: 'allow', status: 200, route: 'r', upstream: 'fn' });
    expect(s.upstreamAttempts).toBe(1);
    expect(decisions).toContain('a request_headers allow');
  });

  it('stream mode: the next hop gets a stream, chunked, not replayable, with the cleared bytes', async () => {
    const r = await raw(
      port,
      req(['POST /stream HTTP/1.1', 'Host: a.example', 'Content-Length: 5'], 'hello'),
    );
    expect(r.status).toBe(200);
    const { request, body } = hopRequests.at(-1) as { request: NextHopRequest; body: string };
    expect(request.uri).toBe('/stream');
    expect(request.body).toBeInstanceOf(Readable);
    expect(request.replayable).toBe(false);
    expect(request.headers['content-length']).toBeUndefined();
    expect(body).toBe('rewritten ✓');
  });

  it('refuses an ambiguous Host or path with 400 before any agent sees it', async () => {
    const before = agent.seen.length;
    const twoHosts = await raw(port, req(['GET / HTTP/1.1', 'Host: a.example', 'Host: b.example']));
    expect(twoHosts.status).toBe(400);
    expect(twoHosts.body).toContain('more than one Host header');
    const noHost = await raw(port, req(['GET / HTTP/1.1']));
    expect(noHost.status).toBe(400);
    const slash = await raw(port, req(['GET /a%2Fb HTTP/1.1', 'Host: a.example']));
    expect(slash.status).toBe(400);
    expect(slash.body).toContain('%2F');
    const climb = await raw(port, req(['GET /../etc/passwd HTTP/1.1', 'Host: a.example']));
    expect(climb.status).toBe(400);
    expect(agent.seen.length).toBe(before);
    expect(summaries.at(-1)?.outcome).toBe('bad_request');
  });

  it("applies a block: the agent's answer, and the next hop never sees the request", async () => {
    const calls = hopRequests.length;
    const r = await raw(port, req(['GET /blocked HTTP/1.1', 'Host: a.example']));
    expect(r.status).toBe(403);
    expect(r.body).toBe('no entry\n');
    expect(hopRequests.length).toBe(calls);
    expect(summaries.at(-1)).toMatchObject({ outcome: 'block', decidedBy: 'a' });
  });

  it('maps next-hop failures: timeout 504, unavailable 503, error 502, anything else 500', async () => {
    const status = async (path: string) =>
      (await raw(port, req([`GET ${path} HTTP/1.1`, 'Host: a.example']))).status;
    expect(await status('/fail-timeout')).toBe(504);
    expect(summaries.at(-1)?.outcome).toBe('upstream_timeout');
    expect(await status('/fail-unavailable')).toBe(503);
    expect(summaries.at(-1)?.outcome).toBe('no_upstream_target');
    expect(await status('/fail-error')).toBe(502);
    expect(summaries.at(-1)?.outcome).toBe('upstream_error');
    expect(await status('/fail-bug')).toBe(500);
    expect(summaries.at(-1)).toMatchObject({ outcome: 'error', error: 'a bug in the next hop' });
  });

  it("takes handle()'s next hop; without hooks; a down agent gets its failure mode", async () => {
    // fail-open agent down: allowed, and handle()'s next hop answers
    const open = await raw(port, req(['GET /bare/x HTTP/1.1', 'Host: a.example']));
    expect(open.status).toBe(200);
    expect(open.body).toBe('from the next hop');
    // fail-closed agent down: 503, the next hop is not called
    const calls = hopRequests.length;
    const closed = await raw(port, req(['GET /closed HTTP/1.1', 'Host: a.example']));
    expect(closed.status).toBe(503);
    expect(hopRequests.length).toBe(calls);
    // no next hop anywhere: an error, never an allow
    const none = await raw(port, req(['GET /bare-without-hop HTTP/1.1', 'Host: a.example']));
    expect(none.status).toBe(500);
  });

  it('a client that goes away cancels the pending agent call', async () => {
    const s = connect(port, '127.0.0.1');
    s.on('error', () => {});
    s.write('GET /hang HTTP/1.1\r\nHost: a.example\r\n\r\n');
    for (let i = 0; i < 400 && !agent.seen.some((e) => e.uri === '/hang'); i++) {
      await new Promise((r) => setTimeout(r, 25));
    }
    s.destroy();
    for (let i = 0; i < 400 && summaries.at(-1)?.outcome !== 'client_disconnect'; i++) {
      await new Promise((r) => setTimeout(r, 25));
    }
    expect(summaries.at(-1)).toMatchObject({ outcome: 'client_disconnect', status: 499 });
    const cid = summaries.at(-1)?.correlationId;
    for (let i = 0; i < 400 && !agent.cancels.some((c) => c.cid === cid); i++) {
      await new Promise((r) => setTimeout(r, 25));
    }
    expect(agent.cancels).toContainEqual({ cid, reason: 'client_disconnect' });
  });
});

describe('HttpEngine on node:https', () => {
  it('tells agents the TLS version and cipher, and the next hop x-forwarded-proto https', async () => {
    const agent = new Agent();
    const fixture = await servedAgent('picket-engine-tls-', agent, 'a');
    const { dir, pool } = fixture;
    // a throwaway self-signed certificate
    const key = join(dir, 'key.pem');
    const cert = join(dir, 'cert.pem');
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-subj',
        '/CN=localhost',
        '-days',
        '1',
        '-keyout',
        key,
        '-out',
        cert,
      ],
      { stdio: 'ignore' },
    );
    const seen: string[] = [];
    const engine = new HttpEngine({
      pool,
      router: singleRoute({
        chain: [agentSpec('a')],
        nextHop: async (request) => {
          seen.push(...(request.headers['x-forwarded-proto'] ?? []));
          return { statusCode: 204, headers: {}, body: Readable.from([]) };
        },
      }),
    });
    const server = createTlsServer(
      { key: readFileSync(key), cert: readFileSync(cert) },
      (rq, rs) => void engine.handle(rq, rs),
    );
    try {
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      const status = await new Promise<number | undefined>((resolve, reject) => {
        const r = tlsRequest(
          {
            host: '127.0.0.1',
            port: (server.address() as AddressInfo).port,
            path: '/tls',
            rejectUnauthorized: false,
          },
          (res) => {
            res.resume();
            res.on('end', () => resolve(res.statusCode));
          },
        );
        r.on('error', reject);
        r.end();
      });
      expect(status).toBe(204);
      expect(seen).toEqual(['https']);
      const m = (agent.seen.at(-1) as RequestHeadersEvent).metadata;
      expect(m.tls_version).toMatch(/^TLSv1\.[23]$/);
      expect(m.tls_cipher).toMatch(/^[A-Z0-9_-]+$/);
    } finally {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
      await fixture.close();
    }
  });
});

describe('agentSpec', () => {
  it('fills in the defaults', () => {
    const a = agentSpec('waf');
    expect([...a.events]).toEqual(['request_headers']);
    expect(a).toMatchObject({
      bodyMode: 'buffer',
      maxBodyBytes: 1024 * 1024,
      timeoutMs: 1000,
      failureMode: 'closed',
    });
  });

  it('names what is wrong', () => {
    expect(() => agentSpec('')).toThrow(/agent name is empty/);
    // @ts-expect-error an unknown event, as plain JavaScript could pass it
    expect(() => agentSpec('x', { events: ['request_header'] })).toThrow(
      'agentSpec("x"): unknown event "request_header"',
    );
    // @ts-expect-error
    expect(() => agentSpec('x', { bodyMode: 'chunked' })).toThrow(/bodyMode/);
    expect(() => agentSpec('x', { timeoutMs: 0 })).toThrow(/timeoutMs/);
    expect(() => agentSpec('x', { maxBodyBytes: -1 })).toThrow(/maxBodyBytes/);
  });
});
