/** The Express middleware with Express 4 (4.21+): the same scenarios as with Express 5. */
import { createServer } from 'node:http';
import express4 from 'express4';
import { picket } from '../src/index.js';
import { adapterScenarios } from './adapters-scenarios.js';
import { listen } from './adapters-serve.js';

adapterScenarios('Express 4', async (options) => {
  const calls: string[] = [];
  const app = express4();
  app.use(picket(options));
  app.use(express4.text({ type: '*/*' }));
  app.get('/rewrite-response', (req, res) => {
    calls.push(req.url);
    res.set('x-app', '1').type('text/plain').send('original');
  });
  // Express 4's catch-all (Express 5 spells it '/{*rest}')
  app.all('*', (req, res) => {
    calls.push(req.url);
    const body = typeof req.body === 'string' ? req.body : '';
    res.set('x-app', '1').json({ method: req.method, url: req.url, headers: req.headers, body });
  });
  return { calls, ...(await listen(createServer(app))) };
});
