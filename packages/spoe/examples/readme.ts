import {
  type AgentHandler,
  allow,
  block,
  createCapabilities,
  redirect,
  removeHeader,
  setHeader,
} from '@picket/protocol';
import { SpoeAgentServer } from '@picket/spoe';

// Any picket AgentHandler: the same one UDS, gRPC or v1 servers run.
export const edgeGuard: AgentHandler = {
  capabilities: () => createCapabilities({ agentId: 'edge-guard' }),
  onRequestHeaders: (e) => {
    if (e.uri.startsWith('/admin')) return block(403, { body: 'Forbidden' });
    if (e.uri === '/old') return redirect('https://example.com/new', 301);
    const user = e.headers['x-api-key']?.[0] === 'k1' ? 'alice' : 'anonymous';
    return allow({
      requestHeaders: [setHeader('X-User', user), removeHeader('X-Internal')],
      responseHeaders: [setHeader('X-Frame-Options', 'DENY')],
    });
  },
};

// HAProxy's backend `picket-agents` points at this address (see haproxy.cfg below).
export async function startEdgeGuard(port = 12345): Promise<SpoeAgentServer> {
  const server = new SpoeAgentServer(edgeGuard, { host: '127.0.0.1', port });
  console.log('SPOE agent on', (await server.listen()).join(', ')); // spoe://127.0.0.1:12345
  return server;
}
