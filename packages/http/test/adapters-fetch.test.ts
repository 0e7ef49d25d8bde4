import { createServer, request as httpRequest } from 'node:http';
import { getRequestListener, type HttpBindings } from '@hono/node-server';
import { Hono } from 'hono';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agentSpec, withAgents } from '../src/index.js';
import { type AgentFixture, startAgent, until } from './adapters-agent.js';
import { adapterScenarios, send } from './adapters-scenarios.js';
import { listen } from './adapters-serve.js';

const clientAddress = (_request: Request, env?: HttpBindings | object) =>
  env && 'incoming' in env ? env.incoming.socket.remoteAddress : undefined;

adapterScenarios('fetch (Hono)', async (options) => {
  const calls: string[] = [];
  const app = new Hono<{ Bindings: HttpBindings }>();
  app.get('/rewrite-response', (c) => {
    calls.push(new URL(c.req.url).pathname);
    c.header('x-app', '1');
    return c.text('original');
  });
  app.all('*', async (c) => {
    const url = new URL(c.req.url);
    calls.push(url.pathname);
    const headers = Object.fromEntries(c.req.raw.headers);
    const body = await c.req.text();
    c.header('x-app', '1');
    return c.json({ method: c.req.method, url: url.pathname + url.search, headers, body });
  });
  const handler = withAgents(app.fetch, options, { clientAddress });
  return { calls, ...(await listen(createServer(getRequestListener(handler)))) };
});

describe('fetch adapter: the client address', () => {
  let fx: AgentFixture;
  beforeAll(async () => {
    fx = await startAgent();
  });
  afterAll(async () => {
    await fx?.close();
  });

  it('is unknown to the agents without clientAddress, and reaches them with it', async () => {
    const app = new Hono<{ Bindings: HttpBindings }>();
    app.get('*', (c) => c.text('ok'));
    const handler = withAgents(app.fetch, { pool: fx.pool, agents: ['test'] }, { clientAddress });
    const bare = withAgents(app.fetch, { pool: fx.pool, agents: ['test'] });
    const served = await listen(createServer(getRequestListener(handler)));
    const unknown = await listen(createServer(getRequestListener(bare)));
    try {
      await send(unknown.url, '/who-knows');
      expect(fx.agent.seen.find((e) => e.uri === '/who-knows')?.metadata.client_ip).toBe('');
      const r = await send(served.url, '/who-am-i');
      expect(r.status).toBe(200);
      const seen = fx.agent.seen.find((e) => e.uri === '/who-am-i');
      expect(seen?.metadata.client_ip).toBe('127.0.0.1');
    } finally {
      await served.close();
      await unknown.close();
    }
  });

  it('a stream-mode block in the middle of the body reaches the client; the handler sees the body fail', async () => {
    let appSaw: string | undefined;
    let started!: () => void;
    const appStarted = new Promise<void>((r) => {
      started = r;
    });
    const app = new Hono();
    app.post('*', async (c) => {
      started();
      try {
        appSaw = `complete: ${await c.req.text()}`;
      } catch (e) {
        appSaw = `failed: ${(e as Error).message}`;
      }
      return c.text('handler answered');
    });
    const handler = withAgents(app.fetch, {
      pool: fx.pool,
      agents: [
        agentSpec('test', { events: ['request_headers', 'request_body'], bodyMode: 'stream' }),
      ],
    });
    const served = await listen(createServer(getRequestListener(handler)));
    try {
      const r = await new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = httpRequest(`${served.url}/upload`, { method: 'POST' }, (res) => {
          let body = '';
          res.on('data', (c: Buffer) => {
            body += c.toString('utf8');
          });
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        });
        req.on('error', reject);
        req.write('a good first part;');
        void appStarted.then(() => req.end('then an evil part'));
      });
      expect(r.status).toBe(403);
      expect(r.body).toBe('evil chunk\n');
      await until(() => appSaw, 'the handler to finish');
      expect(appSaw).toMatch(/^failed: /);
    } finally {
      await served.close();
    }
  });
});
