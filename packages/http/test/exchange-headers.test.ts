import { createServer, type Server } from 'node:http';
import { connect } from 'node:net';
import { Readable } from 'node:stream';
import {
  type AgentHandler,
  allow,
  createCapabilities,
  type RequestHeadersEvent,
  setHeader,
} from '@picket/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  agentSpec,
  HttpEngine,
  type NextHop,
  type NextHopRequest,
  singleRoute,
} from '../src/index.js';
import { stripHopByHop, toOutgoing } from '../src/internal.js';
import { type AgentFixture, closeServer, listenLocal, servedAgent } from './agent-fixture.js';

/** Sets connection-level fields in both directions, and one end-to-end header each way. */
class HopByHopAgent implements AgentHandler {
  capabilities = () =>
    createCapabilities({ agentId: 'hop', name: 'hop', version: '1.0.0', features: {} });
  onRequestHeaders(_e: RequestHeadersEvent) {
    return allow({
      requestHeaders: [
        setHeader('connection', 'x-added'),
        setHeader('upgrade', 'h2c'),
        setHeader('keep-alive', 'timeout=1'),
        setHeader('x-added', 'yes'),
      ],
      responseHeaders: [
        setHeader('transfer-encoding', 'chunked'),
        setHeader('connection', 'close'),
        setHeader('proxy-authenticate', 'Basic'),
        setHeader('x-resp', 'yes'),
      ],
    });
  }
}

interface Head {
  status: number;
  headers: Map<string, string>;
  body: string;
}

/** One keep-alive request over a raw socket; resolves once the Content-Length body is in. */
function rawKeepAlive(port: number, head: string): Promise<Head> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1');
    let text = '';
    s.on('data', (c) => {
      text += c.toString('latin1');
      const end = text.indexOf('\r\n\r\n');
      if (end < 0) return;
      const [statusLine = '', ...lines] = text.slice(0, end).split('\r\n');
      const headers = new Map<string, string>();
      for (const l of lines) {
        const i = l.indexOf(':');
        headers.set(l.slice(0, i).toLowerCase(), l.slice(i + 1).trim());
      }
      const body = text.slice(end + 4);
      if (body.length < Number(headers.get('content-length') ?? 0)) return;
      s.destroy();
      resolve({ status: Number(statusLine.split(' ')[1]), headers, body });
    });
    s.on('error', reject);
    s.write(`${head}\r\n\r\n`);
  });
}

describe('one pass per header direction', () => {
  let fixture: AgentFixture;
  let server: Server;
  let port: number;
  const seen: NextHopRequest[] = [];
  const hop: NextHop = async (request, exchange) => {
    exchange.countAttempt();
    seen.push(request);
    const text = 'ok';
    return {
      statusCode: 200,
      headers: {
        'Content-Type': 'text/plain',
        'content-length': String(text.length),
        Connection: 'X-Hidden, close',
        'X-Hidden': 'next hop only',
        'X-Upper': 'kept',
        'Proxy-Authenticate': 'Basic',
      },
      body: Readable.from([Buffer.from(text)]),
    };
  };

  beforeAll(async () => {
    fixture = await servedAgent('picket-headers-', new HopByHopAgent(), 'hop', 'closed');
    const { pool } = fixture;
    const withAgent = new HttpEngine({
      pool,
      router: singleRoute({ chain: [agentSpec('hop')], nextHop: hop }),
    });
    const noAgent = new HttpEngine({ pool, router: singleRoute({ chain: [], nextHop: hop }) });
    server = createServer((rq, rs) => {
      void (rq.url?.startsWith('/agent') ? withAgent : noAgent).handle(rq, rs);
    });
    port = await listenLocal(server);
  });

  afterAll(async () => {
    await closeServer(server);
    await fixture.close();
  });

  it("an agent's hop-by-hop header ops reach neither the next hop nor the client", async () => {
    const r = await rawKeepAlive(port, 'GET /agent HTTP/1.1\r\nHost: a.example');
    expect(r.status).toBe(200);
    expect(r.body).toBe('ok');
    const up = seen.at(-1) as NextHopRequest;
    expect(up.headers['x-added']).toEqual(['yes']);
    for (const name of ['connection', 'upgrade', 'keep-alive']) {
      expect(up.headers[name]).toBeUndefined();
    }
    expect(r.headers.get('x-resp')).toBe('yes');
    expect(r.headers.get('content-length')).toBe('2');
    expect(r.headers.has('transfer-encoding')).toBe(false);
    expect(r.headers.has('proxy-authenticate')).toBe(false);
    // node:http's own keep-alive, not the agent's `close`
    expect(r.headers.get('connection')).toBe('keep-alive');
  });

  it("without agents: the client's Connection-named and the next hop's mixed-case hop-by-hop headers go", async () => {
    const r = await rawKeepAlive(
      port,
      'GET /plain HTTP/1.1\r\nHost: a.example\r\nConnection: keep-alive, X-Private\r\n' +
        'X-Private: client only\r\nTE: trailers\r\nKeep-Alive: timeout=9\r\nX-Kept: end-to-end',
    );
    expect(r.status).toBe(200);
    const up = seen.at(-1) as NextHopRequest;
    expect(up.headers['x-kept']).toEqual(['end-to-end']);
    expect(up.headers.host).toEqual(['a.example']);
    for (const name of ['connection', 'x-private', 'te', 'keep-alive']) {
      expect(up.headers[name]).toBeUndefined();
    }
    expect(r.headers.get('x-upper')).toBe('kept');
    expect(r.headers.get('content-type')).toBe('text/plain');
    expect(r.headers.has('x-hidden')).toBe(false);
    expect(r.headers.has('proxy-authenticate')).toBe(false);
    expect(r.headers.get('connection')).toBe('keep-alive');
  });
});

describe('header helpers', () => {
  it('stripHopByHop lower-cases, lists values and drops hop-by-hop and Connection-named fields', () => {
    const out = stripHopByHop({
      'X-Upper': 'a',
      'x-list': ['1', '2'],
      'x-none': undefined,
      Connection: 'X-Upper2, Host, Content-Length, X-Forwarded-For, traceparent',
      connection: ['x-lower'],
      'X-Upper2': 'gone',
      'x-lower': 'gone',
      host: 'h',
      'content-length': '3',
      'x-forwarded-for': '1.2.3.4',
      traceparent: 't',
      'Keep-Alive': 'timeout=5',
      TE: 'trailers',
    });
    expect(out).toEqual({
      'x-upper': ['a'],
      'x-list': ['1', '2'],
      host: ['h'],
      'content-length': ['3'],
      'x-forwarded-for': ['1.2.3.4'],
      traceparent: ['t'],
    });
  });

  it('toOutgoing flattens single values and leaves out hop-by-hop names', () => {
    expect(
      toOutgoing({
        a: ['1'],
        b: ['1', '2'],
        host: ['h', 'ignored'],
        empty: [],
        connection: ['close'],
        'transfer-encoding': ['chunked'],
        upgrade: ['h2c'],
      }),
    ).toEqual({ a: '1', b: ['1', '2'], host: 'h' });
  });
});
