import { createServer, type Server } from 'node:http';
import { Readable } from 'node:stream';
import { agentSpec, HttpEngine, type NextHop, singleRoute } from '@picket/http';
import type { AgentPool } from '@picket/pool';
import { escapeForLog } from '@picket/protocol';

/** A server whose requests pass the `waf` agent before `hello` answers them. */
export function guardedServer(pool: AgentPool): Server {
  // the next hop: here a function; in the gateway an upstream, in an adapter the app
  const hello: NextHop = async (request) => {
    const text = `hello from ${request.uri}\n`;
    return {
      statusCode: 200,
      headers: { 'content-type': 'text/plain', 'content-length': String(text.length) },
      body: Readable.from([Buffer.from(text)]),
    };
  };
  const engine = new HttpEngine({
    pool, // agents added: createPool() of @picket/transport, then addAgent('waf', …)
    router: singleRoute({
      chain: [agentSpec('waf', { events: ['request_headers', 'request_body'] })],
      nextHop: hello,
    }),
    hooks: {
      exchangeFinished: (s) =>
        console.log(escapeForLog(`${s.method} ${s.uri} ${s.status} ${s.outcome}`)),
    },
  });
  return createServer((req, res) => void engine.handle(req, res));
}
