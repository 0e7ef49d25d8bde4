// Your first agent (docs/first-agent.md): lets a request through only with an API key.
import {
  type AgentHandler,
  allow,
  block,
  createCapabilities,
  redirect,
  setHeader,
} from '@picket/protocol';
import { UdsAgentServerV2 } from '@picket/uds';

const socket = process.argv[2] ?? '/tmp/first-agent.sock';

const agent: AgentHandler = {
  // who we are, and the one event we want: the request headers
  capabilities: () =>
    createCapabilities({
      agentId: 'first-agent',
      name: 'First Agent',
      version: '0.1.0',
      events: ['request_headers'],
    }),

  onRequestHeaders(event) {
    // a moved page: send the client to its new address
    if (event.uri.startsWith('/old/')) return redirect(`/new/${event.uri.slice(5)}`, 301);
    // header names arrive in lower case; each holds a list of values, one per header line
    const key = event.headers['x-api-key']?.[0];
    if (key === undefined) {
      return block(401, { body: 'missing x-api-key', reasonCodes: ['NO_API_KEY'] });
    }
    // let it through, telling the app who called and the client who checked
    return allow({
      requestHeaders: [setHeader('x-user', `user-${key}`)],
      responseHeaders: [setHeader('x-checked-by', 'first-agent')],
      tags: ['api-key'],
    });
  },
};

const server = new UdsAgentServerV2(socket, agent);
await server.listen();
console.log(`first-agent listening on unix:${socket}`);

// Ctrl-C or SIGTERM: answer what is in flight, remove the socket, exit
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => void server.close().then(() => process.exit(0)));
}
