import { createHarness, expectAllow, expectBlock, expectRequestHeaderSet } from '@picket/testing';
import { describe, expect, it } from 'vitest';
import { createAgent } from '../src/agent.js';

// @picket/testing drives the agent as a proxy would, in process: no socket needed.
const harness = createHarness(createAgent({ adminToken: 'secret' }));

describe('my-agent', () => {
  it('blocks /admin without the token', async () => {
    const r = await harness.requestHeaders({ uri: '/admin/users' });
    expectBlock(r, 403);
    expect(r.audit.reason_codes).toEqual(['ADMIN_TOKEN_MISSING']);
  });

  it('lets /admin through with the token', async () => {
    const r = await harness.requestHeaders({
      uri: '/admin/users',
      headers: { 'x-admin-token': 'secret' },
    });
    expectAllow(r);
  });

  it('allows and tags everything else', async () => {
    const r = await harness.requestHeaders({ method: 'POST', uri: '/api/orders' });
    expectAllow(r);
    expectRequestHeaderSet(r, 'x-agent-checked', 'my-agent');
  });

  it('asks only for request headers', async () => {
    const capabilities = await harness.handshake();
    expect(capabilities.supported_events).toHaveLength(1);
  });
});
