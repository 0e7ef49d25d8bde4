/**
 * Hostile request shapes over real sockets (issue 14, items 1–3): a client's
 * or upstream's `Connection` header naming what the gateway and agents add,
 * paths that only look different, and bad Host / request targets. The client
 * is a raw TCP socket, since HTTP clients normalise exactly what is tested.
 */
import { rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { type AddressInfo, connect } from 'node:net';
import { join } from 'node:path';
import { DenylistAgent } from '@picket/agents';
import {
  type AgentCapabilities,
  type AgentHandler,
  type AgentResponse,
  allow,
  createCapabilities,
  type RequestHeadersEvent,
  setHeader,
} from '@picket/protocol';
import { UdsAgentServerV2 } from '@picket/uds';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type GatewayProcess, killAll, startGateway, tempDir, writeYaml } from './helpers.js';

const silent = { debug() {}, info() {}, warn() {}, error() {} };

/** Adds a request and a response header; remembers every request-headers event. */
class RecordingAgent implements AgentHandler {
  readonly seen: RequestHeadersEvent[] = [];
  capabilities = (): AgentCapabilities =>
    createCapabilities({ agentId: 'recorder', name: 'recorder', version: '1.0.0' });
  onRequestHeaders(e: RequestHeadersEvent): AgentResponse {
    this.seen.push(e);
    const ops = [setHeader('x-echo-agent', 'stamped')];
    // an agent's own Connection header must not make the gateway drop anything either
    if (e.uri.startsWith('/agent-connection')) ops.push(setHeader('connection', 'x-echo-agent'));
    return allow({ requestHeaders: ops, responseHeaders: [setHeader('x-agent-resp', 'yes')] });
  }
}

interface Received {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: string;
}

/** An upstream that records what it received; `/conn` answers with a hostile Connection header. */
async function startUpstream(): Promise<{ server: Server; url: string; got: Received[] }> {
  const got: Received[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const r: Received = {
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        body: Buffer.concat(chunks).toString(),
      };
      got.push(r);
      const text = JSON.stringify(r);
      const headers: Record<string, string | number> = {
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(text),
      };
      if (req.url?.endsWith('/conn')) {
        headers.connection = 'keep-alive, x-agent-resp, x-request-id, content-length, x-private';
        headers['x-private'] = 'upstream-only';
      }
      res.writeHead(200, headers);
      res.end(text);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, got };
}

interface RawResponse {
  status: number;
  headers: Record<string, string[]>;
  body: string;
  /** the bytes as received, for framing checks */
  raw: string;
}

/**
 * Sends `request` verbatim on a fresh TCP connection and reads one response
 * (content-length, chunked, or until close).
 */
function rawRequest(port: number, request: string): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const sock = connect(port, '127.0.0.1');
    let buf = Buffer.alloc(0);
    let done = false;
    const timer = setTimeout(() => finish(new Error('no complete response within 15 s')), 15_000);
    const finish = (err?: Error) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      const parsed = parse(buf);
      if (parsed) resolve(parsed);
      else reject(err ?? new Error(`incomplete response: ${JSON.stringify(buf.toString())}`));
    };
    const parse = (b: Buffer): RawResponse | undefined => {
      const text = b.toString('latin1');
      const end = text.indexOf('\r\n\r\n');
      if (end === -1) return undefined;
      const [statusLine = '', ...lines] = text.slice(0, end).split('\r\n');
      const headers: Record<string, string[]> = {};
      for (const l of lines) {
        const i = l.indexOf(':');
        const k = l.slice(0, i).trim().toLowerCase();
        headers[k] = [...(headers[k] ?? []), l.slice(i + 1).trim()];
      }
      let body = text.slice(end + 4);
      const len = headers['content-length']?.[0];
      if (len !== undefined) {
        if (body.length < Number(len)) return undefined;
        body = body.slice(0, Number(len));
      } else if (headers['transfer-encoding']?.[0] === 'chunked') {
        if (!body.endsWith('0\r\n\r\n')) return undefined;
        let out = '';
        let rest = body;
        for (;;) {
          const nl = rest.indexOf('\r\n');
          const size = Number.parseInt(rest.slice(0, nl), 16);
          if (size === 0) break;
          out += rest.slice(nl + 2, nl + 2 + size);
          rest = rest.slice(nl + 2 + size + 2);
        }
        body = out;
      } else if (!done) return undefined;
      return { status: Number(statusLine.split(' ')[1]), headers, body, raw: text };
    };
    sock.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (parse(buf)) finish();
    });
    sock.on('end', () => finish());
    sock.on('error', (e) => finish(e));
    sock.write(Buffer.from(request, 'latin1'));
  });
}

let dir: string;
let up: Awaited<ReturnType<typeof startUpstream>>;
let recorder: RecordingAgent;
let servers: UdsAgentServerV2[];
let gw: GatewayProcess;

beforeAll(async () => {
  dir = tempDir();
  up = await startUpstream();
  recorder = new RecordingAgent();
  servers = [
    new UdsAgentServerV2(
      join(dir, 'denylist.sock'),
      new DenylistAgent({ blockedPaths: ['/admin'] }),
      { logger: silent },
    ),
    new UdsAgentServerV2(join(dir, 'recorder.sock'), recorder, { logger: silent }),
  ];
  await Promise.all(servers.map((s) => s.listen()));
  const config = {
    listen: '127.0.0.1:0',
    upstreams: { app: up.url, api: `${up.url}/api-base` },
    agents: {
      denylist: `unix:${join(dir, 'denylist.sock')}`,
      recorder: {
        endpoint: `unix:${join(dir, 'recorder.sock')}`,
        events: ['request_headers', 'response_headers'],
      },
    },
    routes: [
      { name: 'api', host: 'api.test', upstream: 'api', agents: ['denylist', 'recorder'] },
      {
        name: 'keep',
        path_prefix: '/keep',
        upstream: 'app',
        agents: ['denylist', 'recorder'],
        path: { escaped_slashes: 'keep' },
      },
      {
        name: 'raw',
        path_prefix: '/raw',
        upstream: 'app',
        agents: ['recorder'],
        path: { normalize: false, merge_slashes: false },
      },
      { name: 'main', upstream: 'app', agents: ['denylist', 'recorder'] },
    ],
  };
  gw = await startGateway(['--config', writeYaml(dir, config), '--quiet']);
}, 60_000);

afterAll(async () => {
  await killAll();
  await Promise.all(servers.map((s) => s.close({ drainTimeoutMs: 0 })));
  await new Promise<void>((r) => {
    up.server.close(() => r());
    up.server.closeAllConnections();
  });
  rmSync(dir, { recursive: true, force: true });
});

beforeEach(() => {
  up.got.length = 0;
  recorder.seen.length = 0;
});

const send = (request: string) => rawRequest(gw.port, request);
const lastUpstream = (): Received => {
  const r = up.got.at(-1);
  if (!r) throw new Error('the upstream received nothing');
  return r;
};

describe('hop-by-hop headers (item 1)', () => {
  it("a client's Connection header cannot delete what the gateway and agents add", async () => {
    const res = await send(
      'GET /echo HTTP/1.1\r\nHost: gw.test\r\n' +
        'Connection: x-forwarded-for, x-echo-agent, x-forwarded-proto, x-forwarded-host\r\n' +
        'Connection: traceparent, x-request-id, x-mine\r\n' +
        'X-Mine: client hop-by-hop\r\nX-Kept: end-to-end\r\n\r\n',
    );
    expect(res.status).toBe(200);
    const h = lastUpstream().headers;
    expect(h['x-echo-agent']).toBe('stamped');
    expect(h['x-forwarded-for']).toBe('127.0.0.1');
    expect(h['x-forwarded-proto']).toBe('http');
    expect(h['x-forwarded-host']).toBe('gw.test');
    expect(h.traceparent).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    expect(h['x-request-id']).toBe(res.headers['x-request-id']?.[0]);
    // what the client itself declared hop-by-hop does go, and agents never see it either
    expect(h['x-mine']).toBeUndefined();
    expect(h['x-kept']).toBe('end-to-end');
    const seen = recorder.seen.at(-1)?.headers ?? {};
    expect(seen['x-mine']).toBeUndefined();
    expect(seen.connection).toBeUndefined();
    expect(seen['x-forwarded-for']).toEqual(['127.0.0.1']);
  });

  it('Connection: host does not send the upstream its own address as Host', async () => {
    const res = await send('GET /echo HTTP/1.1\r\nHost: gw.test\r\nConnection: host\r\n\r\n');
    expect(res.status).toBe(200);
    expect(lastUpstream().headers.host).toBe('gw.test');
    expect(recorder.seen.at(-1)?.headers.host).toEqual(['gw.test']);
  });

  it('Connection: content-length does not turn the body chunked', async () => {
    const res = await send(
      'POST /echo HTTP/1.1\r\nHost: gw.test\r\nConnection: content-length, transfer-encoding\r\n' +
        'Content-Length: 11\r\n\r\nhello world',
    );
    expect(res.status).toBe(200);
    const r = lastUpstream();
    expect(r.headers['content-length']).toBe('11');
    expect(r.headers['transfer-encoding']).toBeUndefined();
    expect(r.body).toBe('hello world');
  });

  it("an agent's Connection header op removes nothing", async () => {
    const res = await send('GET /agent-connection HTTP/1.1\r\nHost: gw.test\r\n\r\n');
    expect(res.status).toBe(200);
    const h = lastUpstream().headers;
    expect(h['x-echo-agent']).toBe('stamped');
    expect(h.connection).not.toMatch(/x-echo-agent/);
  });

  it("the upstream's Connection header cannot delete the agents' response headers or change framing", async () => {
    const res = await send('GET /conn HTTP/1.1\r\nHost: gw.test\r\n\r\n');
    expect(res.status).toBe(200);
    expect(res.headers['x-agent-resp']).toEqual(['yes']);
    expect(res.headers['x-request-id']).toHaveLength(1);
    expect(res.headers['x-private']).toBeUndefined();
    expect(res.headers['content-length']).toEqual([String(Buffer.byteLength(res.body))]);
    expect(res.headers['transfer-encoding']).toBeUndefined();
    expect(JSON.parse(res.body).url).toBe('/conn');
  });
});

describe('one path for routing, agents and upstream (item 2)', () => {
  it.each([
    '/ok/../admin/x',
    '//admin/x',
    '/%61dmin/x',
    '/./admin/x',
    '/x/%2e%2E/admin/x',
    '/ok/..//admin',
  ])('%s is blocked by a denylist on /admin', async (path) => {
    const res = await send(`GET ${path} HTTP/1.1\r\nHost: gw.test\r\n\r\n`);
    expect(res.status).toBe(403);
    expect(res.body).toBe('Forbidden path');
    expect(up.got).toHaveLength(0);
  });

  it.each([
    ['/a%2Fb', /encoded "\/" \(%2F\)/],
    ['/a%5cb', /encoded "\\" \(%5C\)/],
    ['/a\\b', /backslash/],
    ['/../etc/passwd', /climbs above the root/],
    ['/a/%2e%2e/%2E%2E/etc', /climbs above the root/],
    ['/a%00b', /NUL/],
    ['/a%zzb', /invalid percent-escape/],
    ['/a#frag', /fragment/],
    ['/ok/..;/admin/x', /";" parameter/],
    ['*', /request target must be a path/],
  ])('%s is answered 400 saying what was wrong', async (target, reason) => {
    const res = await send(`GET ${target} HTTP/1.1\r\nHost: gw.test\r\n\r\n`);
    expect(res.status).toBe(400);
    expect(res.body).toMatch(/^Bad Request: /);
    expect(res.body).toMatch(reason);
    expect(up.got).toHaveLength(0);
    expect(recorder.seen).toHaveLength(0);
  });

  it('the agents and the upstream see the same normalised path; the query is untouched', async () => {
    const res = await send(
      'GET /ok/./a//b/../%7euser/%c3%a9?q=/../%2F&r=%zz HTTP/1.1\r\nHost: gw.test\r\n\r\n',
    );
    expect(res.status).toBe(200);
    const path = '/ok/a/~user/%C3%A9?q=/../%2F&r=%zz';
    expect(recorder.seen.at(-1)?.uri).toBe(path);
    expect(lastUpstream().url).toBe(path);
  });

  it('escaped_slashes: keep forwards %2F encoded; normalize: false forwards the path as sent', async () => {
    expect((await send('GET /keep/a%2fb HTTP/1.1\r\nHost: gw.test\r\n\r\n')).status).toBe(200);
    expect(lastUpstream().url).toBe('/keep/a%2Fb');
    expect(recorder.seen.at(-1)?.uri).toBe('/keep/a%2Fb');
    expect((await send('GET /raw//x/./%61 HTTP/1.1\r\nHost: gw.test\r\n\r\n')).status).toBe(200);
    expect(lastUpstream().url).toBe('/raw//x/./%61');
    // the default route refuses an encoded slash even though a laxer route exists
    expect((await send('GET /admin%2Fx HTTP/1.1\r\nHost: gw.test\r\n\r\n')).status).toBe(400);
  });
});

describe('Host and the request target (item 3)', () => {
  it.each([
    ['Host: a,b', /invalid Host/],
    ['Host: x@internal', /invalid Host/],
    ['Host: h:80:80', /invalid Host/],
    ['Host: ', /empty Host/],
    ['Host: h:99999', /port out of range/],
    ['Host: h:8x', /invalid Host/],
    ['Host: [zz]:80', /invalid/],
    ['Host: gw.test\r\nHost: other.test', /more than one Host/],
  ])('%s is answered 400', async (hostLines, reason) => {
    const res = await send(`GET /echo HTTP/1.1\r\n${hostLines}\r\n\r\n`);
    expect(res.status).toBe(400);
    expect(res.body).toMatch(reason);
    expect(up.got).toHaveLength(0);
    expect(recorder.seen).toHaveLength(0);
  });

  it('HTTP/1.1 without Host is refused (by Node itself); HTTP/1.0 without Host is served', async () => {
    expect((await send('GET /echo HTTP/1.1\r\n\r\n')).status).toBe(400);
    const res = await send('GET /echo HTTP/1.0\r\n\r\n');
    expect(res.status).toBe(200);
    expect(lastUpstream().url).toBe('/echo');
  });

  it("absolute-form: the target's authority replaces Host for routing, agents and upstream", async () => {
    const res = await send('GET http://API.test:8080/x?y=1 HTTP/1.1\r\nHost: other.test\r\n\r\n');
    expect(res.status).toBe(200);
    const r = lastUpstream();
    expect(r.url).toBe('/api-base/x?y=1'); // the api.test route's upstream
    expect(r.headers.host).toBe('API.test:8080');
    expect(r.headers['x-forwarded-host']).toBe('API.test:8080');
    const seen = recorder.seen.at(-1);
    expect(seen?.uri).toBe('/x?y=1');
    expect(seen?.headers.host).toEqual(['API.test:8080']);
    expect(seen?.metadata.server_name).toBe('API.test');
  });

  it('absolute-form paths get the same path policy; a bad authority is 400', async () => {
    const blocked = await send('GET http://gw.test/ok/../admin HTTP/1.1\r\nHost: gw.test\r\n\r\n');
    expect(blocked.status).toBe(403);
    const userinfo = await send('GET http://x@internal/ HTTP/1.1\r\nHost: gw.test\r\n\r\n');
    expect(userinfo.status).toBe(400);
    expect(userinfo.body).toMatch(/authority/);
    const scheme = await send('GET ftp://gw.test/ HTTP/1.1\r\nHost: gw.test\r\n\r\n');
    expect(scheme.status).toBe(400);
    expect(up.got).toHaveLength(0);
  });
});
