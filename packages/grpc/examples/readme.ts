import { AgentClientV2, GrpcAgentServerV2 } from '@picket/grpc';
import { allow, block, createCapabilities } from '@picket/protocol';

// Agent side: serve a handler as zentinel.agent.v2.AgentServiceV2.
const server = new GrpcAgentServerV2({
  capabilities: () => createCapabilities({ agentId: 'no-admin', events: ['request_headers'] }),
  onRequestHeaders: (e) =>
    e.uri.startsWith('/admin') ? block(403, { reasonCodes: ['ADMIN_PATH'] }) : allow(),
});
const { address } = await server.listen('127.0.0.1:0'); // or 'unix:/run/agent.sock'

// Proxy side: one ProcessStream, requests multiplexed by correlation id.
const agent = await AgentClientV2.connect('no-admin', address, { timeoutMs: 1000 });
const metadata = {
  correlation_id: 'req-1',
  request_id: 'req-1',
  client_ip: '192.0.2.1',
  client_port: 40000,
  protocol: 'HTTP/1.1',
  timestamp: new Date().toISOString(),
};
const reply = await agent.sendRequestHeaders({
  metadata,
  method: 'GET',
  uri: '/admin',
  headers: {},
});
console.log(reply.decision); // { block: { status: 403, body: null, headers: null } }

await agent.close();
await server.close();
