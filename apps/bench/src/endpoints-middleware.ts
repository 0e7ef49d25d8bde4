/**
 * Worker factory of the `middleware` scenario: three node:http servers in one process
 * answering the same small JSON — the plain handler, and the same handler wrapped by
 * @picket/http's `wrapListener` with no agents and with one UDS EchoAgent.
 */
import { createServer, type RequestListener, type Server } from 'node:http';
import { agentSpec, wrapListener } from '@picket/http';
import { poolClient } from './endpoints.js';
import type { Hosted } from './worker.js';

const BODY = JSON.stringify({
  items: Array.from({ length: 8 }, (_, i) => ({ id: i, name: `item ${i}` })),
});

const handler: RequestListener = (req, res) => {
  req.resume();
  res.writeHead(200, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(BODY),
  });
  res.end(BODY);
};

async function listen(listener: RequestListener): Promise<{ server: Server; origin: string }> {
  const server = createServer(listener);
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, origin: `http://127.0.0.1:${(server.address() as { port: number }).port}` };
}

/**
 * `info`: the origins `plain`, `none` (wrapped, no agents) and `one` (wrapped, the agent at
 * `agentPath` on request headers, reached through an AgentPool with `connections` msgpack
 * connections, as the gateway scenario configures its agents).
 */
export async function middlewareServers(args: {
  agentPath: string;
  connections: number;
}): Promise<Hosted> {
  const agents = await poolClient({
    path: args.agentPath,
    encoding: 'msgpack',
    connections: args.connections,
  });
  const { pool } = agents;
  const servers = {
    plain: await listen(handler),
    none: await listen(wrapListener(handler, { pool, agents: [] })),
    one: await listen(
      wrapListener(handler, { pool, agents: [agentSpec('echo', { timeoutMs: 5_000 })] }),
    ),
  };
  return {
    info: Object.fromEntries(Object.entries(servers).map(([k, s]) => [k, s.origin])),
    close: async () => {
      for (const { server } of Object.values(servers)) {
        server.closeAllConnections();
        await new Promise<void>((resolve) => server.close(() => resolve()));
      }
      await agents.close?.();
    },
  };
}
