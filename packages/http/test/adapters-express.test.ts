import { createServer } from 'node:http';
import express from 'express';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agentSpec, picket } from '../src/index.js';
import { type AgentFixture, startAgent } from './adapters-agent.js';
import { adapterScenarios, send } from './adapters-scenarios.js';
import { listen } from './adapters-serve.js';

adapterScenarios('Express', async (options) => {
  const calls: string[] = [];
  const app = express();
  app.use(picket(options));
  // a body parser after picket: it reads the body the agents cleared, checking its length
  app.use(express.text({ type: '*/*' }));
  app.get('/rewrite-response', (req, res) => {
    calls.push(req.url);
    res.set('x-app', '1').type('text/plain').send('original');
  });
  app.all('/{*rest}', (req, res) => {
    calls.push(req.url);
    const body = typeof req.body === 'string' ? req.body : '';
    res.set('x-app', '1').json({ method: req.method, url: req.url, headers: req.headers, body });
  });
  return { calls, ...(await listen(createServer(app))) };
});

describe('Express: picket after an asynchronous middleware', () => {
  let fx: AgentFixture;
  beforeAll(async () => {
    fx = await startAgent();
  });
  afterAll(async () => {
    await fx?.close();
  });

  it('a body that arrived before picket took over is still inspected and rewritten', async () => {
    const app = express();
    // by the time picket runs, Node has read the whole small body into the request
    app.use((_req, _res, next) => {
      setTimeout(next, 50);
    });
    app.use(picket({ pool: fx.pool, agents: [agentSpec('test', { events: ['request_body'] })] }));
    app.use(express.text({ type: '*/*' }));
    app.post('/late', (req, res) => {
      res.json({ body: req.body, length: req.get('content-length') });
    });
    const served = await listen(createServer(app));
    try {
      const r = await send(served.url, '/late', {
        headers: { 'content-type': 'text/plain' },
        body: 'late replace-me',
      });
      expect(r.status).toBe(200);
      expect(JSON.parse(r.body)).toEqual({
        body: 'the agent rewrote this body ✓',
        length: String(Buffer.byteLength('the agent rewrote this body ✓')),
      });
      expect(fx.agent.requestBodies).toContain('late replace-me');
    } finally {
      await served.close();
    }
  });

  it('mounted below a path: agents see the whole path, the routes below still match', async () => {
    const app = express();
    app.use('/api', picket({ pool: fx.pool, agents: ['test'] }));
    app.get('/api/items', (req, res) => {
      res.json({ url: req.url, agentHeader: req.get('x-agent-req') ?? null });
    });
    const served = await listen(createServer(app));
    try {
      const r = await send(served.url, '/api/items?x=1');
      expect(r.status).toBe(200);
      expect(JSON.parse(r.body)).toEqual({ url: '/api/items?x=1', agentHeader: 'yes' });
      expect(fx.agent.seen.some((e) => e.uri === '/api/items?x=1')).toBe(true);
    } finally {
      await served.close();
    }
  });

  it('picket after a body parser refuses clearly instead of passing an unread body', async () => {
    const app = express();
    app.use(express.text({ type: '*/*' }));
    app.use(picket({ pool: fx.pool, agents: [agentSpec('test', { events: ['request_body'] })] }));
    app.post('/parsed-first', (_req, res) => {
      res.send('reached');
    });
    app.use(
      (err: Error, _req: express.Request, res: express.Response, _next: express.NextFunction) => {
        res.status(500).send(err.message);
      },
    );
    const served = await listen(createServer(app));
    try {
      const r = await send(served.url, '/parsed-first', {
        headers: { 'content-type': 'text/plain' },
        body: 'x',
      });
      expect(r.status).toBe(500);
      expect(r.body).toContain('install picket before any body parser');
    } finally {
      await served.close();
    }
  });
});
