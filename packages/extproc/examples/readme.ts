import { ExtProcServer } from '@picket/extproc';
import { type AgentHandler, allow, block, createCapabilities, setHeader } from '@picket/protocol';

// Any picket AgentHandler: the same one can serve Zentinel proxies over UDS or gRPC.
const handler: AgentHandler = {
  capabilities: () => createCapabilities({ agentId: 'edge-guard' }),
  onRequestHeaders: (e) =>
    e.uri.startsWith('/admin')
      ? block(403, { body: 'Forbidden', headers: { 'x-blocked-by': 'picket' } })
      : allow({ requestHeaders: [setHeader('x-client-ip', e.metadata.client_ip)] }),
  // only called when Envoy's processing_mode sends bodies (BUFFERED: one chunk, is_last)
  onRequestBodyChunk: (e) =>
    Buffer.from(e.data).includes('DROP TABLE') ? block(400, { body: 'Bad request' }) : allow(),
};

const server = new ExtProcServer(handler, { address: 'extproc://127.0.0.1:50052' });
const endpoints = await server.listen();
console.log(`ext_proc server on ${endpoints.join(', ')}`);
process.once('SIGTERM', () => void server.drain(5_000));
