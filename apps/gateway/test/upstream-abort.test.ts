/**
 * The upstream request is aborted when the exchange ends before the upstream answered (the
 * engine's AbortNotice handed to undici as its `signal`): the held upstream connection is
 * closed at once, not at the upstream timeout, and the next request is served.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { type AddressInfo, connect } from 'node:net';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AgentLayer, createAgentLayer } from '../src/agents.js';
import { parseConfig } from '../src/config.js';
import { Gateway } from '../src/gateway.js';
import { until } from './helpers.js';

const silent = { debug() {}, info() {}, warn() {}, error() {} };
/** far beyond every wait below: only an abort closes a held request before it */
const UPSTREAM_TIMEOUT_MS = 120_000;

describe('upstream abort', () => {
  let upstream: Server;
  const held: IncomingMessage[] = [];
  const closed: IncomingMessage[] = [];
  let layer: AgentLayer;
  let gw: Gateway;
  let port: number;

  beforeAll(async () => {
    // `/hold` never gets an answer; anything else does
    upstream = createServer((req, res) => {
      if (req.url === '/hold') {
        held.push(req);
        req.socket.once('close', () => closed.push(req));
        return;
      }
      res.end('ok');
    });
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
    const config = parseConfig({
      listen: '127.0.0.1:0',
      upstreams: {
        slow: {
          url: `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`,
          timeout_ms: UPSTREAM_TIMEOUT_MS,
        },
      },
      routes: [{ name: 'all', upstream: 'slow' }],
    });
    layer = await createAgentLayer(config);
    gw = new Gateway(config, { pool: layer.pool, logger: silent });
    port = (await gw.listen()).port;
  });

  afterAll(async () => {
    await gw.close();
    await layer.close();
    upstream.closeAllConnections();
    await new Promise((r) => upstream.close(r));
  });

  it('a client that leaves while the upstream has not answered releases the upstream connection', async () => {
    const s = connect(port, '127.0.0.1');
    s.on('error', () => {});
    s.write('GET /hold HTTP/1.1\r\nHost: gw.test\r\n\r\n');
    await until(() => held.length === 1, 20_000);
    s.destroy();
    // hang guard only; without the abort this would take UPSTREAM_TIMEOUT_MS
    await until(() => closed.length === 1, 20_000);
    const res = await request(`http://127.0.0.1:${port}/after`);
    expect(res.statusCode).toBe(200);
    expect(await res.body.text()).toBe('ok');
  });
});
