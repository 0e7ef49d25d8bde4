import { allow, block, createCapabilities } from '@picket/protocol';
import { AgentServer, connectV1 } from '@picket/v1';

const path = '/tmp/picket-v1-example.sock';

// Agent side: the same AgentHandler the v2 servers run.
const server = new AgentServer('admin-guard', path, {
  capabilities: () => createCapabilities({ agentId: 'admin-guard' }),
  onRequestHeaders: (e) =>
    e.uri.startsWith('/admin') ? block(403, { body: 'Forbidden path' }) : allow(),
});
await server.run();

// Proxy side: a pool of v1 connections behind the common AgentTransport interface.
const agent = await connectV1('admin-guard', path, { connections: 4, timeoutMs: 500 });
const reply = await agent.sendRequestHeaders({
  metadata: {
    correlation_id: 'req-1',
    request_id: 'req-1',
    client_ip: '127.0.0.1',
    client_port: 54321,
    protocol: 'HTTP/1.1',
    timestamp: new Date().toISOString(),
  },
  method: 'GET',
  uri: '/admin/secret',
  headers: { host: ['example.com'] },
});
console.log(reply.decision); // { block: { status: 403, body: 'Forbidden path', headers: null } }
await agent.close();
await server.close();
