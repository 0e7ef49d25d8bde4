/**
 * The response body with no agent reading it goes from the next hop's Node stream to the
 * client without stream.pipeline (exchange-state.ts `streamToClient`): whole bodies, a next
 * hop that fails mid-body, one that times out, and a client that leaves mid-body.
 */
import { createServer, type Server } from 'node:http';
import { type AddressInfo, connect } from 'node:net';
import { Readable } from 'node:stream';
import { createPool } from '@picket/transport';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ExchangeSummary, HttpEngine, type NextHop, singleRoute } from '../src/index.js';

/** The raw bytes a client got until the connection closed. */
function fetchRaw(port: number, path: string, leaveAfterBytes?: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1');
    let text = '';
    s.on('data', (c) => {
      text += c.toString('latin1');
      const body = text.split('\r\n\r\n')[1];
      if (leaveAfterBytes !== undefined && body !== undefined && body.length >= leaveAfterBytes) {
        s.destroy();
        resolve(text);
      }
    });
    s.on('error', reject);
    s.on('close', () => resolve(text));
    s.write(`GET ${path} HTTP/1.1\r\nHost: a.example\r\nConnection: close\r\n\r\n`);
  });
}

describe('response body without agents', () => {
  let server: Server;
  let port: number;
  const pool = createPool({ requestTimeoutMs: 1_000 });
  const summaries: ExchangeSummary[] = [];
  let endless: Readable | undefined;

  const hop: NextHop = async (request, exchange) => {
    exchange.countAttempt();
    const chunk = Buffer.alloc(16 * 1024, 0x61);
    if (request.uri === '/ok') {
      return {
        statusCode: 200,
        headers: { 'content-length': String(4 * chunk.length) },
        body: Readable.from([chunk, chunk, chunk, chunk]),
      };
    }
    if (request.uri === '/break' || request.uri === '/slow') {
      const code = request.uri === '/break' ? 'ECONNRESET' : 'UND_ERR_BODY_TIMEOUT';
      const body = new Readable({ read() {} });
      body.push(chunk);
      setTimeout(() => body.destroy(Object.assign(new Error('gone'), { code })), 20);
      return { statusCode: 200, headers: { 'content-length': String(4 * chunk.length) }, body };
    }
    if (request.uri === '/dead') {
      // the next hop's body failed before the engine started reading it
      const body = new Readable({ read() {} });
      body.on('error', () => {});
      body.destroy(Object.assign(new Error('reset early'), { code: 'ECONNRESET' }));
      await new Promise((r) => setImmediate(r));
      return { statusCode: 200, headers: { 'content-length': '10' }, body };
    }
    // /endless: a body that never ends; the client leaves after the first bytes
    endless = new Readable({
      read() {
        setTimeout(() => this.push(chunk), 5);
      },
    });
    return { statusCode: 200, headers: {}, body: endless };
  };

  beforeAll(async () => {
    const engine = new HttpEngine({
      pool,
      router: singleRoute({ chain: [], name: 'r', upstreamId: 'fn', nextHop: hop }),
      hooks: { exchangeFinished: (s) => summaries.push(s) },
    });
    server = createServer((rq, rs) => void engine.handle(rq, rs));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as AddressInfo).port;
  });

  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
    await pool.close({ drainTimeoutMs: 0 });
  });

  /** The summary of the exchange that just ran (the 'close' that completes it may lag). */
  async function lastSummary(count: number): Promise<ExchangeSummary> {
    for (let i = 0; i < 100 && summaries.length < count; i++) {
      await new Promise((r) => setTimeout(r, 10));
    }
    expect(summaries.length).toBe(count);
    return summaries.at(-1) as ExchangeSummary;
  }

  it('streams a whole body and counts its bytes', async () => {
    const text = await fetchRaw(port, '/ok');
    expect(text.startsWith('HTTP/1.1 200')).toBe(true);
    expect(text.split('\r\n\r\n')[1]?.length).toBe(64 * 1024);
    expect(await lastSummary(1)).toMatchObject({
      status: 200,
      outcome: 'allow',
      responseBodySize: 64 * 1024,
    });
  });

  it('cuts the response when the next hop fails mid-body: upstream_error', async () => {
    const text = await fetchRaw(port, '/break');
    expect(text.startsWith('HTTP/1.1 200')).toBe(true);
    expect(text.split('\r\n\r\n')[1]?.length).toBe(16 * 1024);
    expect(await lastSummary(2)).toMatchObject({
      outcome: 'upstream_error',
      error: 'response body: gone',
    });
  });

  it('a body timeout mid-body is upstream_timeout', async () => {
    await fetchRaw(port, '/slow');
    expect(await lastSummary(3)).toMatchObject({ outcome: 'upstream_timeout' });
  });

  it('a client that leaves mid-body stops the next hop: client_disconnect', async () => {
    await fetchRaw(port, '/endless', 1);
    expect(await lastSummary(4)).toMatchObject({ status: 499, outcome: 'client_disconnect' });
    expect(endless?.destroyed).toBe(true);
  });

  it('a body that failed before streaming started: upstream_error, the exchange ends', async () => {
    // the connection is cut (before this fix the exchange waited forever for a 'close' already gone)
    const text = await fetchRaw(port, '/dead');
    expect(text).not.toMatch(/\r\n\r\n.{10}/s);
    expect(await lastSummary(5)).toMatchObject({
      outcome: 'upstream_error',
      error: 'response body: reset early',
    });
  });
});
