import { createServer } from 'node:http';
import express from 'express';
import { picket } from '../src/index.js';
import { adapterScenarios } from './adapters-scenarios.js';
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
