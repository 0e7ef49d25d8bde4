// Any picket AgentHandler as a prox plugin: here the reference denylist.
import { DenylistAgent } from '@picket/agents';
import { serveAgentAsProxPlugin } from '@picket/prox';

await serveAgentAsProxPlugin(
  new DenylistAgent({ blockedPaths: ['/admin'], blockedIps: ['10.0.0.0/8'] }),
);
