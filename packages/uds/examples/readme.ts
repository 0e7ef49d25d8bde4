// The README's example, compiled by `tsc -p tsconfig.json` so it never rots.
import { allow, block, createCapabilities, setHeader } from '@picket/protocol';
import { AgentClientV2Uds, UdsAgentServerV2 } from '@picket/uds';

// --- an agent: block /admin, tag everything else --------------------------------
const server = new UdsAgentServerV2('/tmp/waf.sock', {
  capabilities: () => createCapabilities({ agentId: 'waf', name: 'Tiny WAF', version: '1.0.0' }),
  onRequestHeaders(event, ctx) {
    if (event.uri.startsWith('/admin')) {
      return block(403, { body: 'Forbidden', reasonCodes: ['PATH_BLOCKED'] });
    }
    return allow({ requestHeaders: [setHeader('x-waf', ctx.correlationId)] });
  },
});
await server.listen();

// --- a proxy calling it ----------------------------------------------------------
const agent = await AgentClientV2Uds.connect('waf', '/tmp/waf.sock', { timeoutMs: 200 });
const reply = await agent.sendRequestHeaders({
  metadata: {
    correlation_id: 'req-1',
    request_id: 'req-1',
    client_ip: '127.0.0.1',
    client_port: 50000,
    protocol: 'HTTP/1.1',
    timestamp: new Date().toISOString(),
  },
  method: 'GET',
  uri: '/admin/users',
  headers: { host: ['example.com'] },
});
console.log(reply.decision); // { block: { status: 403, body: 'Forbidden', headers: null } }

await agent.close();
await server.close();
