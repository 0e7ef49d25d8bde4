import Fastify from 'fastify';
import { picketFastify } from '../src/index.js';
import { adapterScenarios } from './adapters-scenarios.js';

adapterScenarios('Fastify', async (options) => {
  const calls: string[] = [];
  const app = Fastify();
  await app.register(picketFastify, options);
  app.get('/rewrite-response', async (req, reply) => {
    calls.push(req.url);
    return reply.header('x-app', '1').type('text/plain').send('original');
  });
  app.all('/*', async (req, reply) => {
    calls.push(req.url);
    const body = typeof req.body === 'string' ? req.body : '';
    return reply
      .header('x-app', '1')
      .send({ method: req.method, url: req.url, headers: req.headers, body });
  });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    url: `http://127.0.0.1:${port}`,
    calls,
    close: async () => {
      app.server.closeAllConnections();
      await app.close();
    },
  };
});
