import { type AgentHandler, allow, block, createCapabilities, setHeader } from '@picket/protocol';
import {
  createHarness,
  expectAllow,
  expectBlock,
  expectHandlerError,
  expectRequestHeaderSet,
} from '@picket/testing';
import { describe, expect, it } from 'vitest';

// The agent under test: blocks /admin, stamps the rest, refuses bodies that mention "DROP TABLE".
const guard: AgentHandler = {
  capabilities: () => createCapabilities({ agentId: 'guard' }),
  onRequestHeaders(event, ctx) {
    if (event.uri.startsWith('/admin')) return block(403, { body: 'Forbidden' });
    if (event.headers['x-crash']) throw new Error('bug');
    return allow({ requestHeaders: [setHeader('x-request-id', ctx.correlationId)] });
  },
  onRequestBodyChunk(event) {
    const text = new TextDecoder().decode(event.data);
    return text.includes('DROP TABLE') ? block(400) : allow();
  },
};

describe('guard', () => {
  const harness = createHarness(guard);

  it('blocks /admin and stamps everything else', async () => {
    expectBlock(await harness.requestHeaders({ uri: '/admin/users' }), 403);
    const ok = await harness.requestHeaders({
      method: 'POST',
      uri: '/',
      headers: { host: 'a.test' },
    });
    expectAllow(ok);
    expectRequestHeaderSet(ok, 'X-Request-Id');
  });

  it('a handler bug is answered as on the wire: block 500, never allow', async () => {
    expectHandlerError(await harness.requestHeaders({ headers: { 'x-crash': '1' } }));
  });

  it('runs a whole request and stops where a proxy would', async () => {
    const flow = await harness.flow({ method: 'POST', requestBody: ['id=1;', 'DROP TABLE users'] });
    expect(flow.decidedAt).toBe('request_body_chunk');
    expect(flow.responseHeaders).toBeUndefined(); // never reached the upstream
    expect(flow.answers.map((a) => a.type)).toEqual([
      'request_headers',
      'request_body_chunk',
      'request_body_chunk',
      'request_complete',
    ]);
  });
});
