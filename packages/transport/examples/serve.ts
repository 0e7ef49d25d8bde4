import { type AgentHandler, allow, block, createCapabilities } from '@picket/protocol';
import { readTokenFile, serve } from '@picket/transport';

const handler: AgentHandler = {
  capabilities: () => createCapabilities({ agentId: 'waf', events: ['request_headers'] }),
  onRequestHeaders: (event) => (event.uri.startsWith('/admin') ? block(403) : allow()),
};

// one handler on several endpoints: each string picks its server, port 0 picks a free port
const agent = await serve(
  [
    'unix:/run/picket/waf.sock', // UDS (needs @picket/uds)
    'grpc://127.0.0.1:0', // gRPC, plaintext (needs @picket/grpc)
    'grpcs://0.0.0.0:50443', // gRPC over TLS: tls.cert and tls.key below
    'reverse+tcp://proxy.internal:9090', // dial a proxy's reverse listener (needs @picket/reverse)
  ],
  handler,
  {
    agentId: 'waf',
    tls: { cert: '/etc/picket/waf.pem', key: '/etc/picket/waf.key' },
    reverse: { authToken: readTokenFile('/run/secrets/waf-token'), wait: false },
  },
);
console.log(agent.endpoints);
// [ 'unix:/run/picket/waf.sock', 'grpc://127.0.0.1:40233', 'grpcs://0.0.0.0:50443',
//   'reverse+tcp://proxy.internal:9090' ]

process.once('SIGTERM', () => void agent.drain(5_000)); // every server at once
