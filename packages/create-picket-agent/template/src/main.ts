import { serve } from '@picket/transport';
import { createAgent } from './agent.js';

// Where to listen: the first argument, else AGENT_ENDPOINT, else a socket in /tmp.
// `unix:/path` is picket's v2 binary protocol over a Unix socket (what Zentinel proxies speak).
const endpoint = process.argv[2] ?? process.env.AGENT_ENDPOINT ?? 'unix:/tmp/my-agent.sock';
const adminToken = process.env.ADMIN_TOKEN ?? 'change-me';

const served = await serve(endpoint, createAgent({ adminToken }));
console.log(`my-agent listening on ${served.endpoints.join(', ')}`);

// Finish the requests in flight (up to 5 s), then exit.
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    served.drain(5_000).then(
      () => process.exit(0),
      () => process.exit(1),
    );
  });
}
