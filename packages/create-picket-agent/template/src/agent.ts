import {
  type AgentHandler,
  allow,
  block,
  createCapabilities,
  type RequestHeadersEvent,
  setHeader,
} from '@picket/protocol';

/** Paths only callers with the admin token may reach. */
const ADMIN_PREFIX = '/admin';

function hasAdminToken(event: RequestHeadersEvent, token: string): boolean {
  return event.headers['x-admin-token']?.includes(token) ?? false;
}

/**
 * The agent: one rule. Requests under /admin without the right `x-admin-token`
 * header are blocked with 403; everything else is allowed and tagged with an
 * `x-agent-checked` request header for the upstream.
 */
export function createAgent(options: { adminToken: string }): AgentHandler {
  return {
    capabilities: () =>
      createCapabilities({ agentId: 'my-agent', version: '0.1.0', events: ['request_headers'] }),

    onRequestHeaders(event) {
      if (event.uri.startsWith(ADMIN_PREFIX) && !hasAdminToken(event, options.adminToken)) {
        return block(403, { body: 'Forbidden', reasonCodes: ['ADMIN_TOKEN_MISSING'] });
      }
      return allow({ requestHeaders: [setHeader('x-agent-checked', 'my-agent')] });
    },
  };
}
