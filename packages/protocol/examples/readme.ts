import {
  type AgentHandler,
  allow,
  block,
  createCapabilities,
  parseAgentResponse,
  type RequestHeadersEvent,
  setHeader,
} from '@picket/protocol';

// An agent is an AgentHandler: capabilities plus the hooks it cares about.
export const tenantGuard: AgentHandler = {
  capabilities: () => createCapabilities({ agentId: 'tenant-guard', events: ['request_headers'] }),
  onRequestHeaders(e: RequestHeadersEvent) {
    const tenant = e.headers['x-tenant']?.[0];
    if (!tenant) return block(401, { body: 'missing tenant', reasonCodes: ['NO_TENANT'] });
    return allow({ requestHeaders: [setHeader('x-tenant-verified', tenant)], tags: ['tenant'] });
  },
};

// Untrusted bytes from a peer become typed messages, or INVALID_MESSAGE naming the field.
const reply = parseAgentResponse(JSON.parse('{"version":2,"decision":{"block":{"status":403}}}'));
console.log(reply.decision); // { block: { status: 403, body: null, headers: null } }
