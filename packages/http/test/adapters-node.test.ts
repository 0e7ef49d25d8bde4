import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { wrapListener } from '../src/index.js';
import { adapterScenarios, type Served } from './adapters-scenarios.js';

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

adapterScenarios('node:http', async (options) => {
  const calls: string[] = [];
  const listener = wrapListener(async (req, res) => {
    calls.push(req.url ?? '');
    const body = await readBody(req);
    res.setHeader('x-app', '1');
    if (req.url === '/rewrite-response') {
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '8' });
      res.end('original');
      return;
    }
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ method: req.method, url: req.url, headers: req.headers, body }));
  }, options);
  const server = createServer(listener);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const served: Served = {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    calls,
    close: () =>
      new Promise((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
  return served;
});
