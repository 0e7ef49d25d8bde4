import { createServer } from 'node:http';
import { getRequestListener } from '@hono/node-server';
import { Hono } from 'hono';
import { withAgents } from '../src/index.js';
import { adapterScenarios } from './adapters-scenarios.js';
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
