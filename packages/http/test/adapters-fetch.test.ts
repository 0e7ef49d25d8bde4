import { createServer } from 'node:http';
import { getRequestListener, type HttpBindings } from '@hono/node-server';
import { Hono } from 'hono';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withAgents } from '../src/index.js';
import { type AgentFixture, startAgent } from './adapters-agent.js';
import { adapterScenarios, send } from './adapters-scenarios.js';
import { listen } from './adapters-serve.js';

adapterScenarios('fetch (Hono)', async (options) => {
  const calls: string[] = [];
  const app = new Hono();
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
  const handler = withAgents(app.fetch, options);
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

  it('reaches the agents as client_ip when clientAddress supplies it', async () => {
    const app = new Hono<{ Bindings: HttpBindings }>();
    app.get('*', (c) => c.text('ok'));
    const handler = withAgents(
      app.fetch,
      { pool: fx.pool, agents: ['test'] },
      {
        clientAddress: (_request, env) =>
          env && 'incoming' in env ? env.incoming.socket.remoteAddress : undefined,
      },
    );
    const served = await listen(createServer(getRequestListener(handler)));
    try {
      const r = await send(served.url, '/who-am-i');
      expect(r.status).toBe(200);
      const seen = fx.agent.seen.find((e) => e.uri === '/who-am-i');
      expect(seen?.metadata.client_ip).toBe('127.0.0.1');
    } finally {
      await served.close();
    }
  });
});
