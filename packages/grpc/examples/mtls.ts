import { AgentClientV2, GrpcAgentServerV2 } from '@picket/grpc';
import { allow, createCapabilities } from '@picket/protocol';

// mTLS: the agent presents its certificate and requires one signed by `ca` from the proxy.
// Certificate fields take PEM text, PEM bytes or a file path.
const server = new GrpcAgentServerV2(
  { capabilities: () => createCapabilities({ agentId: 'waf' }), onRequestHeaders: () => allow() },
  { tls: { cert: 'certs/agent.crt', key: 'certs/agent.key', ca: 'certs/ca.crt' } },
);
await server.listen('0.0.0.0:50051');

const agent = await AgentClientV2.connectWithTls(
  'waf',
  'https://waf.internal:50051',
  {
    ca: 'certs/ca.crt',
    cert: 'certs/proxy.crt',
    key: 'certs/proxy.key',
    servername: 'waf.internal', // the name the agent's certificate is checked against
  },
  { timeoutMs: 1000, keepalive: { timeMs: 30_000, timeoutMs: 5_000 } },
);
agent.on('health', (h) => console.log('agent health', h.state));
